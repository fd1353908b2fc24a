#include "common/json.h"

#include <algorithm>
#include <atomic>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace bertd {
namespace {

std::atomic<int> g_max_json_depth{kDefaultMaxJsonDepth};

absl::Status InvalidAt(absl::string_view text, size_t offset, int64_t first_line,
                       absl::string_view why) {
  const TextPosition where = LocateByte(text, offset);
  return absl::InvalidArgumentError(absl::StrCat("line ", where.line + first_line - 1,
                                                 ", byte column ", where.column, ": ", why));
}

}  // namespace

void SetMaxJsonDepth(int depth) { g_max_json_depth.store(std::max(depth, 1)); }
int MaxJsonDepth() { return g_max_json_depth.load(); }

TextPosition LocateByte(absl::string_view text, size_t offset) {
  offset = std::min(offset, text.size());
  absl::string_view before = text.substr(0, offset);
  const int64_t line = 1 + std::count(before.begin(), before.end(), '\n');
  const size_t last_break = before.rfind('\n');
  const size_t line_start = last_break == absl::string_view::npos ? 0 : last_break + 1;
  return {line, static_cast<int64_t>(offset - line_start + 1)};
}

int64_t FindJsonDepthExcess(absl::string_view text, int max_depth) {
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;  // the escaped character cannot end the string
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > max_depth) return static_cast<int64_t>(i);
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return -1;
}

absl::StatusOr<nlohmann::json> ParseJson(absl::string_view text, int max_depth,
                                         int64_t record_line) {
  const int64_t first_line = record_line > 0 ? record_line : 1;
  const int64_t too_deep = FindJsonDepthExcess(text, max_depth);
  if (too_deep >= 0) {
    return InvalidAt(text, static_cast<size_t>(too_deep), first_line,
                     absl::StrCat("JSON nested deeper than ", max_depth,
                                  " levels (--max_json_depth)"));
  }
  try {
    return nlohmann::json::parse(text.begin(), text.end());
  } catch (const nlohmann::json::parse_error& e) {
    return InvalidAt(text, e.byte > 0 ? e.byte - 1 : 0, first_line,
                     absl::StrCat("invalid JSON: ", StripJsonErrorPrefix(e.what())));
  } catch (const nlohmann::json::exception& e) {
    // out_of_range: a number beyond double's range (1e309) is valid syntax nlohmann refuses.
    return absl::InvalidArgumentError(
        absl::StrCat(record_line > 0 ? absl::StrCat("line ", record_line, ": ") : "",
                     "invalid JSON: ", StripJsonErrorPrefix(e.what())));
  }
}

std::string StripJsonErrorPrefix(absl::string_view what) {
  if (absl::StartsWith(what, "[json.exception.")) {
    const size_t bracket = what.find("] ");
    if (bracket != absl::string_view::npos) what.remove_prefix(bracket + 2);
  }
  if (absl::StartsWith(what, "parse error")) {
    const size_t colon = what.find(": ");
    if (colon != absl::string_view::npos) what.remove_prefix(colon + 2);
  }
  // nlohmann quotes what it read ("; last read: '<the client's bytes>'"), of any length: the
  // position says where, so the bytes are left out.
  std::string message(what);
  const size_t last_read = message.find("; last read: '");
  if (last_read != std::string::npos) {
    const size_t expected = message.find("'; expected", last_read);
    message.erase(last_read, expected == std::string::npos ? std::string::npos
                                                           : expected + 1 - last_read);
  }
  // A number nlohmann cannot hold is quoted too: keep it short.
  constexpr size_t kMaxMessage = 160;
  if (message.size() > kMaxMessage) message = message.substr(0, kMaxMessage) + "...";
  return message;
}

absl::string_view JsonTypeName(const nlohmann::json& value) {
  return value.is_null() ? "null" : value.type_name();
}

}  // namespace bertd
