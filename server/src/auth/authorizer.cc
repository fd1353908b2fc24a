#include "auth/authorizer.h"

#include <iterator>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace bertd::auth {
namespace {

// Longer "tokens" are not hashed: they are not ours, and the bound keeps the work per call small.
constexpr size_t kMaxTokenBytes = 4096;

absl::string_view View(grpc::string_ref ref) { return absl::string_view(ref.data(), ref.size()); }

}  // namespace

absl::StatusOr<Caller> Authorizer::Identify(absl::string_view full_method,
                                            const ClientMetadata& metadata) const {
  const MethodAccess access = access_.Find(full_method);
  if (access.open) return Caller{"", Role::kReader};
  if (!tokens_.has_value()) return Caller{"", Role::kAdmin};

  // gRPC lower-cases metadata keys on the wire.
  auto [begin, end] = metadata.equal_range("authorization");
  if (begin == end) {
    return absl::UnauthenticatedError(
        "missing credentials: send metadata 'authorization: Bearer <token>'");
  }
  if (std::next(begin) != end) {
    return absl::UnauthenticatedError("more than one 'authorization' metadata entry");
  }
  absl::string_view value = View(begin->second);
  constexpr absl::string_view kScheme = "bearer ";
  if (value.size() < kScheme.size() ||
      !absl::EqualsIgnoreCase(value.substr(0, kScheme.size()), kScheme)) {
    return absl::UnauthenticatedError("'authorization' metadata must be 'Bearer <token>'");
  }
  absl::string_view token = absl::StripAsciiWhitespace(value.substr(kScheme.size()));
  if (token.empty()) return absl::UnauthenticatedError("the bearer token is empty");
  if (token.size() > kMaxTokenBytes) return absl::UnauthenticatedError("invalid bearer token");

  const TokenEntry* entry = tokens_->Find(token);
  if (entry == nullptr) return absl::UnauthenticatedError("invalid bearer token");
  if (entry->role < access.role) {
    return absl::PermissionDeniedError(absl::StrCat("token '", entry->name, "' has role ",
                                                    RoleName(entry->role), "; ", full_method,
                                                    " needs ", RoleName(access.role)));
  }
  return Caller{entry->name, entry->role};
}

}  // namespace bertd::auth
