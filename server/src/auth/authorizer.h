#ifndef BERTD_AUTH_AUTHORIZER_H_
#define BERTD_AUTH_AUTHORIZER_H_

#include <grpcpp/support/string_ref.h>

#include <map>
#include <optional>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "auth/roles.h"
#include "auth/tokens.h"

namespace bertd::auth {

using ClientMetadata = std::multimap<grpc::string_ref, grpc::string_ref>;

// Who is calling: the name and role of its token. Without --auth_tokens_file every caller is an
// admin named "" (the server is then as open as its listener); open methods see a reader named "".
struct Caller {
  std::string name;
  Role role = Role::kAdmin;
};

// Decides whether a call may run from its "authorization: Bearer <token>" metadata and the rule of
// its method. Without a token table (no --auth_tokens_file) every call runs, as an admin named "".
class Authorizer {
 public:
  Authorizer(std::optional<TokenTable> tokens, AccessTable access)
      : tokens_(std::move(tokens)), access_(std::move(access)) {}

  // OK, or UNAUTHENTICATED (no, malformed or unknown token) or PERMISSION_DENIED (a known token
  // whose role is too low). Messages never contain the token.
  absl::Status Check(absl::string_view full_method, const ClientMetadata& metadata) const {
    return Identify(full_method, metadata).status();
  }
  // Check, and on success who the caller is.
  absl::StatusOr<Caller> Identify(absl::string_view full_method,
                                  const ClientMetadata& metadata) const;

  const AccessTable& access() const { return access_; }

 private:
  std::optional<TokenTable> tokens_;
  AccessTable access_;
};

}  // namespace bertd::auth

#endif  // BERTD_AUTH_AUTHORIZER_H_
