#include "text/unicode.h"

#include <utf8proc.h>

#include <algorithm>

namespace bertd::text::unicode {

int DecodeUtf8(absl::string_view text, size_t pos, char32_t* code_point) {
  const auto byte = static_cast<unsigned char>(text[pos]);
  if (byte < 0x80) {
    *code_point = byte;
    return 1;
  }
  utf8proc_int32_t decoded = -1;
  utf8proc_ssize_t length =
      utf8proc_iterate(reinterpret_cast<const utf8proc_uint8_t*>(text.data() + pos),
                       static_cast<utf8proc_ssize_t>(text.size() - pos), &decoded);
  if (length <= 0 || decoded < 0) return 0;
  *code_point = static_cast<char32_t>(decoded);
  return static_cast<int>(length);
}

void AppendUtf8(char32_t code_point, std::string* out) {
  if (code_point < 0x80) {
    out->push_back(static_cast<char>(code_point));
    return;
  }
  utf8proc_uint8_t buffer[4];
  utf8proc_ssize_t length = utf8proc_encode_char(static_cast<utf8proc_int32_t>(code_point), buffer);
  out->append(reinterpret_cast<const char*>(buffer), static_cast<size_t>(length));
}

int64_t CountCodePoints(absl::string_view text) {
  int64_t count = 0;
  for (size_t pos = 0; pos < text.size(); ++count) {
    char32_t code_point;
    int length = DecodeUtf8(text, pos, &code_point);
    if (length == 0) return -1;
    pos += static_cast<size_t>(length);
  }
  return count;
}

int64_t FindInvalidUtf8(absl::string_view text) {
  for (size_t pos = 0; pos < text.size();) {
    char32_t code_point;
    int length = DecodeUtf8(text, pos, &code_point);
    if (length == 0) return static_cast<int64_t>(pos);
    pos += static_cast<size_t>(length);
  }
  return -1;
}

size_t Utf8SequenceLength(unsigned char lead) {
  if (lead < 0x80) return 1;
  if (lead < 0xE0) return 2;
  if (lead < 0xF0) return 3;
  return 4;
}

size_t ByteOffsetOfCodePoint(absl::string_view text, int64_t index) {
  size_t pos = 0;
  for (int64_t seen = 0; pos < text.size() && seen < index; ++seen) {
    pos += Utf8SequenceLength(static_cast<unsigned char>(text[pos]));
  }
  return std::min(pos, text.size());
}

std::string CodePointSubstr(absl::string_view text, int64_t start, int64_t end) {
  const size_t begin = ByteOffsetOfCodePoint(text, start);
  const size_t finish = ByteOffsetOfCodePoint(text, end);
  return finish > begin ? std::string(text.substr(begin, finish - begin)) : std::string();
}

namespace {

utf8proc_category_t Category(char32_t code_point) {
  return utf8proc_category(static_cast<utf8proc_int32_t>(code_point));
}

}  // namespace

CleanClass ClassifyForCleaning(char32_t code_point) {
  if (code_point == '\t' || code_point == '\n' || code_point == '\r' || code_point == ' ') {
    return CleanClass::kWhitespace;
  }
  if (code_point == 0 || code_point == 0xFFFD) return CleanClass::kDrop;
  switch (Category(code_point)) {
    // Every "other" category, as BERT's _is_control (cat.startswith("C")) and Hugging Face's
    // char::is_other do: control, format, private use, surrogate and unassigned.
    case UTF8PROC_CATEGORY_CC:
    case UTF8PROC_CATEGORY_CF:
    case UTF8PROC_CATEGORY_CO:
    case UTF8PROC_CATEGORY_CS:
    case UTF8PROC_CATEGORY_CN:
      return CleanClass::kDrop;
    case UTF8PROC_CATEGORY_ZS:
    // Line/paragraph separators: Python's str.split() and Rust's char::is_whitespace both split
    // on them, so every BERT implementation treats them as whitespace.
    case UTF8PROC_CATEGORY_ZL:
    case UTF8PROC_CATEGORY_ZP:
      return CleanClass::kWhitespace;
    default:
      return CleanClass::kKeep;
  }
}

bool IsBertPunctuation(char32_t code_point) {
  if ((code_point >= 33 && code_point <= 47) || (code_point >= 58 && code_point <= 64) ||
      (code_point >= 91 && code_point <= 96) || (code_point >= 123 && code_point <= 126)) {
    return true;
  }
  if (code_point < 0x80) return false;
  utf8proc_category_t category = Category(code_point);
  return category >= UTF8PROC_CATEGORY_PC && category <= UTF8PROC_CATEGORY_PO;
}

bool IsChineseChar(char32_t cp) {
  return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) ||
         (cp >= 0x20000 && cp <= 0x2A6DF) || (cp >= 0x2A700 && cp <= 0x2B73F) ||
         (cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B820 && cp <= 0x2CEAF) ||
         (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

bool IsNonSpacingMark(char32_t code_point) {
  return code_point >= 0x80 && Category(code_point) == UTF8PROC_CATEGORY_MN;
}

bool ChangesWhenLowercased(char32_t code_point) {
  if (code_point < 0x80) return code_point >= 'A' && code_point <= 'Z';
  const auto c = static_cast<utf8proc_int32_t>(code_point);
  return utf8proc_tolower(c) != c;
}

void AppendLowercase(char32_t code_point, std::u32string* out) {
  // utf8proc has only the simple (one-to-one) mappings; U+0130 is the one character whose full,
  // unconditional lowercase mapping differs from its simple one.
  if (code_point == 0x130) {
    out->push_back(U'i');
    out->push_back(0x307);
    return;
  }
  out->push_back(
      static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(code_point))));
}

void AppendCanonicalDecomposition(char32_t code_point, std::u32string* out) {
  // The longest canonical decomposition in Unicode 15 is 4 code points.
  utf8proc_int32_t buffer[8];
  int boundclass = UTF8PROC_BOUNDCLASS_START;
  utf8proc_ssize_t length = utf8proc_decompose_char(static_cast<utf8proc_int32_t>(code_point),
                                                    buffer, 8, UTF8PROC_DECOMPOSE, &boundclass);
  if (length <= 0 || length > 8) {
    out->push_back(code_point);
    return;
  }
  for (utf8proc_ssize_t i = 0; i < length; ++i) out->push_back(static_cast<char32_t>(buffer[i]));
}

}  // namespace bertd::text::unicode
