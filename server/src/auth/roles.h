#ifndef BERTD_AUTH_ROLES_H_
#define BERTD_AUTH_ROLES_H_

#include <string>
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

// The access rule of a full method name ("/bertd.v1.ModelService/LoadModel"). A method missing from
// the table needs admin, so an RPC added without a rule is closed rather than open.
MethodAccess RequiredAccess(absl::string_view full_method);

// Every method the table names (for tests that compare it with the services' descriptors).
std::vector<std::string> MethodsWithRules();

}  // namespace bertd::auth

#endif  // BERTD_AUTH_ROLES_H_
