#ifndef BERTD_AUTH_ROLES_H_
#define BERTD_AUTH_ROLES_H_

#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace bertd::auth {

// Each role includes the ones before it: a trainer may do all a reader may, an admin everything.
enum class Role { kReader = 0, kTrainer = 1, kAdmin = 2 };

absl::string_view RoleName(Role role);
// "reader", "trainer" or "admin"; INVALID_ARGUMENT otherwise.
absl::StatusOr<Role> ParseRole(absl::string_view name);

// What an RPC needs. `open`: anyone, without a token (health checks, reflection).
struct MethodAccess {
  bool open = false;
  Role role = Role::kAdmin;
};

// The role each RPC needs, by full method name ("/bertd.v1.ModelService/LoadModel"). The rules are
// declared in the .proto files (option bertd.v1.required_role) and read from them by api/; this
// module knows nothing of protobuf. A method without a rule needs admin, so an RPC added without a
// declared role is closed rather than open. gRPC's health and reflection services are open.
class AccessTable {
 public:
  AccessTable() = default;
  explicit AccessTable(std::vector<std::pair<std::string, Role>> rules);

  MethodAccess Find(absl::string_view full_method) const;
  // Every method with a rule, sorted.
  std::vector<std::string> methods() const;

 private:
  std::map<std::string, Role, std::less<>> rules_;
};

}  // namespace bertd::auth

#endif  // BERTD_AUTH_ROLES_H_
