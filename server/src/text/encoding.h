#ifndef BERTD_TEXT_ENCODING_H_
#define BERTD_TEXT_ENCODING_H_

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace bertd::text {

// One token of a text. [start, end) are Unicode code point positions in the original input,
// which is what Hugging Face reports as offsets. Special tokens added by encoding have [0, 0).
struct Token {
  int32_t id;
  std::string text;
  int32_t start;
  int32_t end;
};

struct EncodeOptions {
  enum class Truncation { kLongestFirst, kOnlyFirst, kOnlySecond, kNone };

  // Maximum length including [CLS]/[SEP]; 0 means no limit.
  int max_length = 512;
  Truncation truncation = Truncation::kLongestFirst;
  // Pads every returned encoding up to max_length with [PAD].
  bool pad_to_max_length = false;
  // Tokens shared by consecutive overflow windows of the same sequence.
  int stride = 0;
  // Also returns the windows that did not fit (Hugging Face's return_overflowing_tokens).
  bool return_overflowing = false;
  // With return_overflowing: more encodings than this is INVALID_ARGUMENT, refused before any is
  // built (a long text with a small step would otherwise make thousands). 0: no limit.
  size_t max_encodings = 0;
};

// Model inputs for one window of a text (or text pair), all vectors the same length.
struct Encoding {
  std::vector<int32_t> ids;
  std::vector<int32_t> type_ids;
  std::vector<int32_t> attention_mask;
  std::vector<int32_t> special_tokens_mask;  // 1 for [CLS]/[SEP]/[PAD] added by encoding
  std::vector<int8_t> sequence_ids;          // -1 special or pad, 0 first text, 1 pair
  std::vector<std::pair<int32_t, int32_t>> offsets;
  std::vector<std::string> tokens;

  size_t size() const { return ids.size(); }
};

// The tokens encoding wraps around sequences and pads with.
struct FramingTokens {
  Token cls;
  Token sep;
  Token pad;
};

// Builds `[CLS] first [SEP]` or `[CLS] first [SEP] second [SEP]`, truncating, windowing and
// padding as Hugging Face's tokenizers do. The first result is the main encoding; with
// options.return_overflowing the overflow windows follow in Hugging Face's order. For a pair whose
// sequences are both windowed, that is every combination (a1,b0) (a1,b1) .. (a2,b0) .. then
// (a0,b1) (a0,b2) ..; with kOnlySecond the first sequence is repeated whole in every window.
// INVALID_ARGUMENT when the truncation strategy cannot make the input fit or the stride is not
// smaller than the room a truncated sequence gets.
absl::StatusOr<std::vector<Encoding>> AssembleEncodings(
    absl::Span<const Token> first, std::optional<absl::Span<const Token>> second,
    const EncodeOptions& options, const FramingTokens& framing);

}  // namespace bertd::text

#endif  // BERTD_TEXT_ENCODING_H_
