#ifndef BERTD_AUTH_AUTHORIZER_H_
#define BERTD_AUTH_AUTHORIZER_H_

#include <grpcpp/server_context.h>
#include <grpcpp/support/string_ref.h>

#include <map>
#include <memory>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "auth/tokens.h"

namespace bertd::auth {

using ClientMetadata = std::multimap<grpc::string_ref, grpc::string_ref>;

// Decides whether a call may run from its "authorization: Bearer <token>" metadata and the rule of
// its method (auth/roles.h).
class Authorizer {
 public:
  explicit Authorizer(TokenTable tokens) : tokens_(std::move(tokens)) {}

  // OK, or UNAUTHENTICATED (no, malformed or unknown token) or PERMISSION_DENIED (a known token
  // whose role is too low). Messages never contain the token.
  absl::Status Check(absl::string_view full_method, const ClientMetadata& metadata) const;

 private:
  TokenTable tokens_;
};

// The process's authorizer; none (the default) lets every call through, as without
// --auth_tokens_file. Installed once at startup, before the server accepts calls.
void InstallAuthorizer(std::unique_ptr<const Authorizer> authorizer);

// What every bertd RPC handler calls first: checks `context`'s metadata against the installed
// authorizer for `full_method`.
absl::Status CheckCall(const grpc::ServerContextBase& context, absl::string_view full_method);

}  // namespace bertd::auth

#endif  // BERTD_AUTH_AUTHORIZER_H_
