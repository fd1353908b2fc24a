#ifndef BERTD_AUTH_AUTHORIZER_H_
#define BERTD_AUTH_AUTHORIZER_H_

#include <grpcpp/server_context.h>
#include <grpcpp/support/string_ref.h>

#include <map>
#include <memory>
#include <string>

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
// its method (auth/roles.h).
class Authorizer {
 public:
  explicit Authorizer(TokenTable tokens) : tokens_(std::move(tokens)) {}

  // OK, or UNAUTHENTICATED (no, malformed or unknown token) or PERMISSION_DENIED (a known token
  // whose role is too low). Messages never contain the token.
  absl::Status Check(absl::string_view full_method, const ClientMetadata& metadata) const {
    return Identify(full_method, metadata).status();
  }
  // Check, and on success who the caller is.
  absl::StatusOr<Caller> Identify(absl::string_view full_method,
                                  const ClientMetadata& metadata) const;

 private:
  TokenTable tokens_;
};

// The process's authorizer; none (the default) lets every call through, as without
// --auth_tokens_file. Installed once at startup, before the server accepts calls.
void InstallAuthorizer(std::unique_ptr<const Authorizer> authorizer);

// What every bertd RPC handler calls first: checks `context`'s metadata against the installed
// authorizer for `full_method`.
absl::Status CheckCall(const grpc::ServerContextBase& context, absl::string_view full_method);
// CheckCall for handlers that act on what callers own (auth/ownership.h): also says who it is.
absl::StatusOr<Caller> Authenticate(const grpc::ServerContextBase& context,
                                    absl::string_view full_method);

}  // namespace bertd::auth

#endif  // BERTD_AUTH_AUTHORIZER_H_
