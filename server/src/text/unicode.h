#ifndef BERTD_TEXT_UNICODE_H_
#define BERTD_TEXT_UNICODE_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"

// Thin wrappers over utf8proc with the character classes BERT's tokenizer uses.
namespace bertd::text::unicode {

// Decodes the code point starting at byte `pos` of `text`. Returns the number of bytes it
// occupies, or 0 when the bytes there are not valid UTF-8 (overlong forms and surrogates included).
int DecodeUtf8(absl::string_view text, size_t pos, char32_t* code_point);

void AppendUtf8(char32_t code_point, std::string* out);

// Number of code points in `text`, or -1 when it is not valid UTF-8.
int64_t CountCodePoints(absl::string_view text);

// Byte offset of the first invalid UTF-8 sequence, or -1 when `text` is valid.
int64_t FindInvalidUtf8(absl::string_view text);

// Positions in text already known to be valid UTF-8 (offsets reported to users count code points).
// Bytes in the sequence that `lead` starts.
size_t Utf8SequenceLength(unsigned char lead);
// Byte offset where code point `index` starts; text.size() when `index` is at or past the end.
size_t ByteOffsetOfCodePoint(absl::string_view text, int64_t index);
// Code points [start, end) of `text`, clamped to its length; empty when end <= start.
std::string CodePointSubstr(absl::string_view text, int64_t start, int64_t end);

// What BERT's text cleaning does with a character.
enum class CleanClass : uint8_t {
  kDrop,        // U+FFFD and categories C* (control, format, private use, unassigned) but \t \n \r
  kWhitespace,  // \t \n \r and space separators; these end words
  kKeep,
};
CleanClass ClassifyForCleaning(char32_t code_point);

// Unicode P* categories plus every non-alphanumeric printable ASCII character ($, +, ^, ...).
bool IsBertPunctuation(char32_t code_point);

// The CJK ideograph blocks BERT splits into single-character words (not Hangul, kana, ...).
bool IsChineseChar(char32_t code_point);

bool IsNonSpacingMark(char32_t code_point);
// True for characters lowercasing would change: uppercase and titlecase letters, but not
// caseless "uppercase" symbols such as U+211D (double-struck R), found in uncased vocabularies.
bool ChangesWhenLowercased(char32_t code_point);

// Lowercasing as Python's str.lower() / Rust's char::to_lowercase does it, one character at a
// time. Appends to `out` because U+0130 lowercases to two code points.
void AppendLowercase(char32_t code_point, std::u32string* out);

// Canonical decomposition (NFD) of one character, appended to `out`.
void AppendCanonicalDecomposition(char32_t code_point, std::u32string* out);

}  // namespace bertd::text::unicode

#endif  // BERTD_TEXT_UNICODE_H_
