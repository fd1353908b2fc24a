#include "data/records.h"

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "text/unicode.h"

namespace bertd::data {
using text::unicode::Utf8SequenceLength;

std::vector<Record> SplitLines(absl::string_view text) {
  std::vector<Record> records;
  if (text.empty()) return records;
  if (text.back() == '\n') text.remove_suffix(1);
  int64_t line = 0;
  for (absl::string_view row : absl::StrSplit(text, '\n')) {
    if (!row.empty() && row.back() == '\r') row.remove_suffix(1);
    Record record;
    record.line = ++line;
    record.fields.emplace_back(row);
    records.push_back(std::move(record));
  }
  return records;
}

std::vector<Record> SplitTsv(absl::string_view text) {
  std::vector<Record> records = SplitLines(text);
  for (Record& record : records) {
    if (record.fields[0].find('\t') == std::string::npos) continue;
    std::vector<std::string> fields = absl::StrSplit(record.fields[0], '\t');
    record.fields = std::move(fields);
  }
  return records;
}

absl::StatusOr<std::vector<Record>> SplitCsv(absl::string_view text) {
  std::vector<Record> records;
  const size_t n = text.size();
  size_t pos = 0;
  int64_t line = 1;
  size_t line_start = 0;  // byte offset where `line` begins, for column numbers

  // A line break at `pos`: "\n" or "\r\n". Returns its length, 0 when there is none.
  auto line_break_at = [&](size_t at) -> size_t {
    if (at < n && text[at] == '\n') return 1;
    if (at + 1 < n && text[at] == '\r' && text[at + 1] == '\n') return 2;
    return 0;
  };

  while (pos < n) {
    Record record;
    record.line = line;
    bool record_done = false;
    while (!record_done) {
      std::string field;
      if (pos < n && text[pos] == '"') {
        const int64_t open_line = line;
        const size_t open_column = pos - line_start + 1;
        ++pos;
        bool closed = false;
        while (pos < n) {
          const char c = text[pos];
          if (c == '"') {
            if (pos + 1 < n && text[pos + 1] == '"') {
              field.push_back('"');
              pos += 2;
              continue;
            }
            ++pos;
            closed = true;
            break;
          }
          if (c == '\n') {
            ++line;
            line_start = pos + 1;
          }
          field.push_back(c);
          ++pos;
        }
        if (!closed) {
          return absl::InvalidArgumentError(
              absl::StrCat("line ", open_line,
                           ": unterminated quoted field (the quote opening at "
                           "byte column ",
                           open_column, " is never closed)"));
        }
        if (pos < n && text[pos] != ',' && line_break_at(pos) == 0) {
          return absl::InvalidArgumentError(absl::StrCat(
              "line ", line, ", byte column ", pos - line_start + 1, ": unexpected ",
              QuoteForMessage(
                  text.substr(pos, Utf8SequenceLength(static_cast<unsigned char>(text[pos])))),
              " after the closing quote of a quoted field (a quote inside a quoted field is "
              "written as two quotes)"));
        }
      } else {
        const size_t begin = pos;
        while (pos < n && text[pos] != ',' && line_break_at(pos) == 0) ++pos;
        field.assign(text.data() + begin, pos - begin);
      }
      record.fields.push_back(std::move(field));
      if (pos < n && text[pos] == ',') {
        ++pos;
        continue;  // a ',' at the very end still opens one more (empty) field
      }
      pos += line_break_at(pos);
      ++line;
      line_start = pos;
      record_done = true;
    }
    records.push_back(std::move(record));
  }
  return records;
}

absl::Status CheckUtf8(absl::string_view text) {
  const int64_t bad = text::unicode::FindInvalidUtf8(text);
  if (bad < 0) return absl::OkStatus();
  const TextPosition where = LocateByte(text, static_cast<size_t>(bad));
  return absl::InvalidArgumentError(
      absl::StrCat("line ", where.line, ", byte column ", where.column, ": invalid UTF-8 (byte 0x",
                   absl::Hex(static_cast<unsigned char>(text[bad]), absl::kZeroPad2), ")"));
}

std::vector<size_t> CodePointByteOffsets(absl::string_view text) {
  std::vector<size_t> offsets;
  offsets.reserve(text.size() + 1);
  for (size_t pos = 0; pos < text.size();
       pos += Utf8SequenceLength(static_cast<unsigned char>(text[pos]))) {
    offsets.push_back(pos);
  }
  offsets.push_back(text.size());
  return offsets;
}

std::string QuoteForMessage(absl::string_view text, size_t max_bytes) {
  bool cut = false;
  if (text.size() > max_bytes) {
    size_t end = max_bytes;
    // Back up to a code point boundary so the message stays valid UTF-8.
    while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) --end;
    text = text.substr(0, end);
    cut = true;
  }
  std::string out = "\"";
  for (char c : text) {
    switch (c) {
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      default:
        out.push_back(c);
    }
  }
  out += cut ? "\"..." : "\"";
  return out;
}

}  // namespace bertd::data
