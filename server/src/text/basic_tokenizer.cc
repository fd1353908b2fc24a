#include "text/basic_tokenizer.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "text/unicode.h"

namespace bertd::text {

absl::string_view PreTokenized::WordText(const PreTokenizedWord& word) const {
  const uint32_t begin = chars[static_cast<size_t>(word.char_begin)].byte_offset;
  const uint32_t end = chars[static_cast<size_t>(word.char_end)].byte_offset;
  return absl::string_view(text).substr(begin, end - begin);
}

BasicTokenizer::BasicTokenizer(BasicTokenizerOptions options,
                               std::vector<UnsplittableToken> unsplittable)
    : options_(options) {
  for (UnsplittableToken& token : unsplittable) {
    if (token.text.empty()) continue;
    const bool duplicate =
        std::any_of(unsplittable_.begin(), unsplittable_.end(),
                    [&](const UnsplittableToken& seen) { return seen.text == token.text; });
    if (!duplicate) unsplittable_.push_back(std::move(token));
  }
  // Longest first, so that the first match at a position is the longest one.
  std::stable_sort(unsplittable_.begin(), unsplittable_.end(),
                   [](const UnsplittableToken& a, const UnsplittableToken& b) {
                     return a.text.size() > b.text.size();
                   });
  for (const UnsplittableToken& token : unsplittable_) {
    unsplittable_code_points_.push_back(
        static_cast<int32_t>(std::max<int64_t>(unicode::CountCodePoints(token.text), 1)));
    may_start_unsplittable_[static_cast<unsigned char>(token.text[0])] = true;
  }
  for (char32_t c = 0; c < 128; ++c) {
    switch (unicode::ClassifyForCleaning(c)) {
      case unicode::CleanClass::kDrop:
        ascii_class_[c] = AsciiClass::kDrop;
        break;
      case unicode::CleanClass::kWhitespace:
        ascii_class_[c] = AsciiClass::kWhitespace;
        break;
      case unicode::CleanClass::kKeep:
        ascii_class_[c] =
            unicode::IsBertPunctuation(c) ? AsciiClass::kPunctuation : AsciiClass::kWordChar;
        break;
    }
  }
}

const UnsplittableToken* BasicTokenizer::MatchUnsplittable(absl::string_view text,
                                                           size_t pos) const {
  absl::string_view rest = text.substr(pos);
  for (const UnsplittableToken& token : unsplittable_) {
    if (rest.size() >= token.text.size() && rest.compare(0, token.text.size(), token.text) == 0) {
      return &token;
    }
  }
  return nullptr;
}

absl::Status BasicTokenizer::Split(absl::string_view text, PreTokenized* out) const {
  out->text.clear();
  out->chars.clear();
  out->words.clear();
  out->text.reserve(text.size());
  out->chars.reserve(text.size() + 1);

  int32_t word_begin = 0;
  auto close_word = [&] {
    const auto end = static_cast<int32_t>(out->chars.size());
    if (end > word_begin) out->words.push_back({word_begin, end, -1});
    word_begin = end;
  };
  auto push_char = [&](char32_t code_point, int32_t source) {
    out->chars.push_back({static_cast<uint32_t>(out->text.size()), source, source + 1});
    unicode::AppendUtf8(code_point, &out->text);
  };
  auto push_punctuation = [&](char32_t code_point, int32_t source) {
    close_word();
    push_char(code_point, source);
    close_word();
  };

  std::u32string normalized;
  std::u32string decomposed;
  int32_t source_index = 0;  // code point index into `text`
  size_t pos = 0;
  while (pos < text.size()) {
    const auto byte = static_cast<unsigned char>(text[pos]);
    if (may_start_unsplittable_[byte]) {
      if (const UnsplittableToken* token = MatchUnsplittable(text, pos); token != nullptr) {
        close_word();
        const int32_t code_points = unsplittable_code_points_[token - unsplittable_.data()];
        out->chars.push_back(
            {static_cast<uint32_t>(out->text.size()), source_index, source_index + code_points});
        out->text.append(token->text);
        out->words.push_back({word_begin, word_begin + 1, token->id});
        ++word_begin;
        pos += token->text.size();
        source_index += code_points;
        continue;
      }
    }

    if (byte < 0x80) {  // fast path: ASCII never decomposes and lowercases to one character
      const int32_t source = source_index++;
      ++pos;
      switch (ascii_class_[byte]) {
        case AsciiClass::kDrop:
          break;
        case AsciiClass::kWhitespace:
          close_word();
          break;
        case AsciiClass::kPunctuation:
          push_punctuation(byte, source);
          break;
        case AsciiClass::kWordChar:
          push_char(options_.lowercase && byte >= 'A' && byte <= 'Z' ? byte + ('a' - 'A') : byte,
                    source);
          break;
      }
      continue;
    }

    char32_t code_point;
    const int length = unicode::DecodeUtf8(text, pos, &code_point);
    if (length == 0) {
      return absl::InvalidArgumentError(absl::StrCat("invalid UTF-8 at byte offset ", pos));
    }
    pos += static_cast<size_t>(length);
    const int32_t source = source_index++;
    const unicode::CleanClass clean = unicode::ClassifyForCleaning(code_point);
    if (clean == unicode::CleanClass::kDrop) continue;
    if (clean == unicode::CleanClass::kWhitespace) {
      close_word();
      continue;
    }

    // Decided on the original character, before NFD maps compatibility ideographs elsewhere.
    const bool chinese = options_.split_chinese_chars && unicode::IsChineseChar(code_point);
    if (chinese) close_word();

    normalized.clear();
    if (options_.lowercase) {
      unicode::AppendLowercase(code_point, &normalized);
    } else {
      normalized.push_back(code_point);
    }
    if (options_.strip_accents) {
      decomposed.clear();
      for (char32_t c : normalized) unicode::AppendCanonicalDecomposition(c, &decomposed);
      normalized.clear();
      for (char32_t c : decomposed) {
        if (!unicode::IsNonSpacingMark(c)) normalized.push_back(c);
      }
    }
    // Punctuation is judged after normalization, as Hugging Face pre-tokenizes normalized text.
    for (char32_t c : normalized) {
      if (unicode::IsBertPunctuation(c)) {
        push_punctuation(c, source);
      } else if (unicode::ClassifyForCleaning(c) == unicode::CleanClass::kWhitespace) {
        close_word();
      } else {
        push_char(c, source);
      }
    }
    if (chinese) close_word();
  }
  close_word();
  out->chars.push_back({static_cast<uint32_t>(out->text.size()), source_index, source_index});
  return absl::OkStatus();
}

}  // namespace bertd::text
