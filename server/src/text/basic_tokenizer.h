#ifndef BERTD_TEXT_BASIC_TOKENIZER_H_
#define BERTD_TEXT_BASIC_TOKENIZER_H_

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace bertd::text {

// One character of normalized text and the original code points [source_start, source_end) it
// came from, so that offsets survive lowercasing, accent stripping and dropped characters.
struct NormalizedChar {
  uint32_t byte_offset;  // into PreTokenized::text
  int32_t source_start;
  int32_t source_end;
};

struct PreTokenizedWord {
  int32_t char_begin;  // [char_begin, char_end) indexes PreTokenized::chars
  int32_t char_end;
  int32_t special_id;  // vocabulary id of an unsplittable token found in the text, else -1
};

// The words of one text after cleaning, normalization and whitespace/punctuation splitting.
// Words are stored back to back in `text`; `chars` ends with a sentinel whose byte_offset is
// text.size(), so a word's bytes are [chars[char_begin].byte_offset, chars[char_end].byte_offset).
struct PreTokenized {
  std::string text;
  std::vector<NormalizedChar> chars;
  std::vector<PreTokenizedWord> words;

  absl::string_view WordText(const PreTokenizedWord& word) const;
};

struct BasicTokenizerOptions {
  bool lowercase = true;
  bool strip_accents = true;
  bool split_chinese_chars = true;
};

// A token that is matched verbatim in the raw text and never split nor normalized ([CLS], ...).
struct UnsplittableToken {
  std::string text;
  int32_t id;
};

// BERT's "basic" tokenization: cleaning, CJK splitting, lowercasing/accent stripping and
// whitespace/punctuation splitting, as BertNormalizer + BertPreTokenizer do it in Hugging Face.
class BasicTokenizer {
 public:
  BasicTokenizer(BasicTokenizerOptions options, std::vector<UnsplittableToken> unsplittable);

  // Replaces `out` with the words of `text`. INVALID_ARGUMENT naming the byte offset when `text`
  // is not valid UTF-8.
  absl::Status Split(absl::string_view text, PreTokenized* out) const;

  const BasicTokenizerOptions& options() const { return options_; }

 private:
  enum class AsciiClass : uint8_t { kDrop, kWhitespace, kPunctuation, kWordChar };

  // Longest unsplittable token starting at `text[pos]`, or nullptr.
  const UnsplittableToken* MatchUnsplittable(absl::string_view text, size_t pos) const;

  BasicTokenizerOptions options_;
  std::vector<UnsplittableToken> unsplittable_;  // longest first
  std::vector<int32_t> unsplittable_code_points_;
  std::array<bool, 256> may_start_unsplittable_{};
  std::array<AsciiClass, 128> ascii_class_{};
};

}  // namespace bertd::text

#endif  // BERTD_TEXT_BASIC_TOKENIZER_H_
