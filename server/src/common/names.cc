#include "common/names.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace bertd {
namespace {

bool Allowed(char c) { return absl::ascii_isalnum(c) || c == '-' || c == '_' || c == '.'; }

// The name for an error message: quoted when harmless, otherwise only its length.
std::string Describe(absl::string_view name) {
  for (char c : name) {
    if (!absl::ascii_isprint(c)) return absl::StrCat("(", name.size(), " bytes, not printable)");
  }
  if (name.size() > kMaxNameLength) return absl::StrCat("(", name.size(), " characters)");
  return absl::StrCat("'", name, "'");
}

}  // namespace

absl::Status ValidateName(absl::string_view field, absl::string_view name) {
  auto invalid = [&](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat(field, " ", Describe(name), " ", why));
  };
  if (name.empty()) return absl::InvalidArgumentError(absl::StrCat(field, " is empty"));
  if (name.size() > kMaxNameLength) {
    return invalid(absl::StrCat("is longer than ", kMaxNameLength, " characters"));
  }
  if (absl::StrContains(name, absl::string_view("\0", 1))) return invalid("contains a NUL byte");
  if (name[0] == '/') return invalid("is an absolute path; expected a plain name");
  if (absl::StrContains(name, '/') || absl::StrContains(name, '\\')) {
    return invalid("contains a path separator; expected a plain name");
  }
  if (name == "." || name == "..") return invalid("is a relative path; expected a plain name");
  if (name[0] == '.') return invalid("must not start with '.'");
  for (char c : name) {
    if (!Allowed(c)) return invalid("may contain only letters, digits, '-', '_' and '.'");
  }
  return absl::OkStatus();
}

}  // namespace bertd
