#include "common/byte_size.h"

#include <cmath>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/match.h"
#include "absl/strings/str_format.h"

namespace bertd {
namespace {

constexpr const char* kUnits[] = {"K", "M", "G", "T"};

}  // namespace

absl::StatusOr<int64_t> ParseByteSize(absl::string_view text, absl::string_view flag) {
  absl::string_view rest = absl::StripAsciiWhitespace(text);
  if (rest.empty()) return 0;
  double scale = 1;
  std::string upper = absl::AsciiStrToUpper(rest);
  absl::string_view number = upper;
  if (absl::EndsWith(number, "IB")) number.remove_suffix(2);
  else if (absl::EndsWith(number, "B")) number.remove_suffix(1);
  for (int i = 0; i < 4; ++i) {
    if (absl::EndsWith(number, kUnits[i])) {
      number.remove_suffix(1);
      scale = std::pow(1024.0, i + 1);
      break;
    }
  }
  double value = 0;
  if (!absl::SimpleAtod(absl::StripAsciiWhitespace(number), &value) || !(value >= 0) ||
      value * scale > 9.0e18) {
    return absl::InvalidArgumentError(absl::StrCat(
        flag, ": '", text, "' is not a size; write bytes or a number with K, M, G or T (KiB, ...)"));
  }
  return static_cast<int64_t>(std::llround(value * scale));
}

std::string FormatBytes(int64_t bytes) {
  if (bytes < 1024) return absl::StrCat(bytes, " bytes");
  double value = static_cast<double>(bytes);
  int unit = -1;
  while (value >= 1024 && unit < 3) {
    value /= 1024;
    ++unit;
  }
  std::string number = absl::StrFormat("%.1f", value);
  if (absl::EndsWith(number, ".0")) number.resize(number.size() - 2);
  return absl::StrCat(number, " ", kUnits[unit], "iB");
}

}  // namespace bertd
