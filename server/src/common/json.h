#ifndef BERTD_COMMON_JSON_H_
#define BERTD_COMMON_JSON_H_

// The one way bertd parses JSON that came from outside the process: dataset files, a model's
// config.json and tokenizer files, weight indexes, job files. nlohmann-json parses iteratively and
// frees iteratively, but everything that walks a value afterwards (dump(), comparisons, our own
// visitors) recurses, so a 400 KB file of "[[[[..." would overflow the stack. Depth is therefore
// bounded before a value is built, and client JSON is never serialized back into messages.

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"

namespace bertd {

// Deepest nesting of arrays and objects accepted; `--max_json_depth` sets it at start. The
// deepest file bertd reads legitimately (SQuAD) nests 9 levels.
inline constexpr int kDefaultMaxJsonDepth = 64;
void SetMaxJsonDepth(int depth);  // values below 1 are taken as 1
int MaxJsonDepth();

// 1-based line and byte column of `offset` in `text`.
struct TextPosition {
  int64_t line;
  int64_t column;
};
TextPosition LocateByte(absl::string_view text, size_t offset);

// Where `text` first opens its (max_depth + 1)-th level of nesting, or -1 when it never does.
// Strings (and escapes in them) are skipped; for valid JSON the answer is exact.
int64_t FindJsonDepthExcess(absl::string_view text, int max_depth);

// Parses `text`; INVALID_ARGUMENT "line L, byte column C: invalid JSON: <why>" or "line L, byte
// column C: JSON nested deeper than N levels (--max_json_depth)". Numbers nlohmann refuses
// (1e309) are invalid JSON too ("invalid JSON: number overflow ..."; nlohmann does not say where).
// A JSON Lines record passes its line number as `record_line`: positions are then on that line,
// and every message starts with it. Never throws.
absl::StatusOr<nlohmann::json> ParseJson(absl::string_view text, int max_depth = MaxJsonDepth(),
                                         int64_t record_line = 0);

// nlohmann-json's exception text without its "[json.exception.parse_error.101] parse error at
// line 1, column 2: " prefix, so that parsers can state the position in their own form.
std::string StripJsonErrorPrefix(absl::string_view what);

// A value's JSON type for messages ("null", "array", "number", ...): what to say about client JSON
// instead of echoing it.
absl::string_view JsonTypeName(const nlohmann::json& value);

}  // namespace bertd

#endif  // BERTD_COMMON_JSON_H_
