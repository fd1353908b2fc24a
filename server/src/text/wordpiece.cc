#include "text/wordpiece.h"

#include <algorithm>
#include <utility>

#include "absl/strings/match.h"

namespace bertd::text {

WordPiece::WordPiece(std::shared_ptr<const Vocab> vocab, int32_t unk_id,
                     int max_input_chars_per_word)
    : vocab_(std::move(vocab)),
      unk_id_(unk_id),
      max_input_chars_per_word_(max_input_chars_per_word) {
  for (const auto& [token, id] : vocab_->token_to_id()) {
    max_begin_bytes_ = std::max(max_begin_bytes_, token.size());
    if (absl::StartsWith(token, kContinuationPrefix)) {
      std::string suffix = token.substr(kContinuationPrefix.size());
      max_continuation_bytes_ = std::max(max_continuation_bytes_, suffix.size());
      continuations_.emplace(std::move(suffix), id);
    }
  }
}

void WordPiece::Tokenize(absl::string_view text, absl::Span<const NormalizedChar> chars,
                         std::vector<Piece>* out) const {
  const auto num_chars = static_cast<int32_t>(chars.size()) - 1;
  if (num_chars <= 0) return;
  if (num_chars > max_input_chars_per_word_) {
    out->push_back({unk_id_, 0, num_chars, false, true});
    return;
  }
  const size_t first_piece = out->size();
  const auto& begins = vocab_->token_to_id();
  int32_t start = 0;
  while (start < num_chars) {
    const bool continuation = start > 0;
    const size_t max_bytes = continuation ? max_continuation_bytes_ : max_begin_bytes_;
    const uint32_t begin_byte = chars[start].byte_offset;
    int32_t end = num_chars;
    while (end > start && chars[end].byte_offset - begin_byte > max_bytes) --end;
    bool matched = false;
    for (; end > start; --end) {
      absl::string_view candidate = text.substr(begin_byte, chars[end].byte_offset - begin_byte);
      const auto& table = continuation ? continuations_ : begins;
      auto it = table.find(candidate);
      if (it != table.end()) {
        out->push_back({it->second, start, end, continuation, false});
        matched = true;
        break;
      }
    }
    if (!matched) {
      out->resize(first_piece);
      out->push_back({unk_id_, 0, num_chars, false, true});
      return;
    }
    start = end;
  }
}

}  // namespace bertd::text
