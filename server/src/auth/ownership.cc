#include "auth/ownership.h"

#include "absl/strings/str_cat.h"

namespace bertd::auth {

bool MayUse(const Caller& caller, absl::string_view owner) {
  return caller.role >= Role::kAdmin || caller.name == owner;
}

absl::Status CheckOwner(const Caller& caller, absl::string_view what, absl::string_view owner) {
  if (MayUse(caller, owner)) return absl::OkStatus();
  return absl::PermissionDeniedError(absl::StrCat(what, " belongs to another token; token '",
                                                  caller.name, "' (", RoleName(caller.role),
                                                  ") may only use its own (an admin may use any)"));
}

std::optional<std::string> VisibleOwner(const Caller& caller) {
  if (caller.role >= Role::kAdmin) return std::nullopt;
  return caller.name;
}

absl::Status CheckModelWrite(const Caller& caller, absl::string_view field, absl::string_view model,
                             const std::optional<std::string>& owner, bool in_repository) {
  if (caller.role >= Role::kAdmin) return absl::OkStatus();
  if (owner.has_value()) {
    return CheckOwner(caller, absl::StrCat(field, ": model '", model, "'"), *owner);
  }
  if (in_repository) {
    return absl::PermissionDeniedError(absl::StrCat(
        field, ": model '", model, "' was not created by a job of token '", caller.name,
        "'; only an admin may add versions to it"));
  }
  return absl::OkStatus();
}

}  // namespace bertd::auth
