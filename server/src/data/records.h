#ifndef BERTD_DATA_RECORDS_H_
#define BERTD_DATA_RECORDS_H_

// Low-level pieces of dataset parsing: splitting text into records and saying where a byte is.

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/json.h"  // LocateByte, TextPosition

namespace bertd::data {

// One row of a delimited file.
struct Record {
  int64_t line = 0;  // 1-based line the record starts on
  std::vector<std::string> fields;
};

// One record per line, with the line as its only field. Splits on '\n', dropping a '\r' before
// it; nothing follows a final line break.
std::vector<Record> SplitLines(absl::string_view text);

// Splits on '\n' (dropping a '\r' before it) and then on '\t', with no quote processing: this is
// how GLUE's TSVs are written, with literal '"' inside fields. Every line is a record, empty ones
// included (as one empty field); nothing follows a final line break.
std::vector<Record> SplitTsv(absl::string_view text);

// RFC 4180: fields separated by ',', records by "\n" or "\r\n". A field starting with '"' runs to
// the next lone '"' and may hold ',', line breaks and '""' (one quote). A '"' inside an unquoted
// field is kept as is, as Python's csv module does. INVALID_ARGUMENT for an unterminated quote
// (naming the line where it opened) or for text after a closing quote.
absl::StatusOr<std::vector<Record>> SplitCsv(absl::string_view text);

// INVALID_ARGUMENT "line L, byte column C: invalid UTF-8" for the first bad sequence.
absl::Status CheckUtf8(absl::string_view text);

// Byte offset of every code point of valid UTF-8 `text`, plus text.size() at the end.
std::vector<size_t> CodePointByteOffsets(absl::string_view text);

// `text` as a quoted string for messages, cut short (at a code point boundary) when long.
std::string QuoteForMessage(absl::string_view text, size_t max_bytes = 80);

}  // namespace bertd::data

#endif  // BERTD_DATA_RECORDS_H_
