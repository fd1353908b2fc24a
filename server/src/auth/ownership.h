#ifndef BERTD_AUTH_OWNERSHIP_H_
#define BERTD_AUTH_OWNERSHIP_H_

// Who may use what a caller made. Jobs and datasets belong to the token that created them; a model
// that a job writes belongs to the token of the first job that wrote it. Admins may use
// everything; any other role only its own. Models that no job created (placed in the repository by
// hand) are changed by admins only. The one place these rules live: handlers call it.

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "auth/authorizer.h"

namespace bertd::auth {

bool MayUse(const Caller& caller, absl::string_view owner);

// OK, or PERMISSION_DENIED "<what> belongs to another token; token '<name>' (<role>) may only use
// its own (an admin may use any)". The other owner is not named.
absl::Status CheckOwner(const Caller& caller, absl::string_view what, absl::string_view owner);

// What a listing shows `caller`: everything (nullopt) for admins, else its own.
std::optional<std::string> VisibleOwner(const Caller& caller);

// Whether `caller` may add a version to `model` (named by the request's `field`): `owner` is the
// owner on record (nullopt: no job ever claimed it), `in_repository` whether the model already
// has a directory or a loaded version. A model without an owner and not in the repository is new:
// anyone who may train may create it (and then owns it).
absl::Status CheckModelWrite(const Caller& caller, absl::string_view field, absl::string_view model,
                             const std::optional<std::string>& owner, bool in_repository);

}  // namespace bertd::auth

#endif  // BERTD_AUTH_OWNERSHIP_H_
