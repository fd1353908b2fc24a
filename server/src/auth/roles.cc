#include "auth/roles.h"

#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace bertd::auth {
namespace {

// Services open to everyone: probes must work without secrets, and reflection only describes the
// API, which is public anyway.
constexpr const char* kOpenServices[] = {
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1alpha.ServerReflection/",
    "/grpc.reflection.v1.ServerReflection/",
};

}  // namespace

absl::string_view RoleName(Role role) {
  switch (role) {
    case Role::kReader:
      return "reader";
    case Role::kTrainer:
      return "trainer";
    case Role::kAdmin:
      return "admin";
  }
  return "unknown";
}

absl::StatusOr<Role> ParseRole(absl::string_view name) {
  for (Role role : {Role::kReader, Role::kTrainer, Role::kAdmin}) {
    if (name == RoleName(role)) return role;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown role '", name, "'; expected reader, trainer or admin"));
}

AccessTable::AccessTable(std::vector<std::pair<std::string, Role>> rules) {
  for (auto& [method, role] : rules) rules_[std::move(method)] = role;
}

MethodAccess AccessTable::Find(absl::string_view full_method) const {
  for (const char* prefix : kOpenServices) {
    if (absl::StartsWith(full_method, prefix)) return {true, Role::kReader};
  }
  if (auto it = rules_.find(full_method); it != rules_.end()) return {false, it->second};
  return {false, Role::kAdmin};
}

std::vector<std::string> AccessTable::methods() const {
  std::vector<std::string> methods;
  for (const auto& rule : rules_) methods.push_back(rule.first);
  return methods;
}

}  // namespace bertd::auth
