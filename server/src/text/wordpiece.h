#ifndef BERTD_TEXT_WORDPIECE_H_
#define BERTD_TEXT_WORDPIECE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "text/basic_tokenizer.h"
#include "text/vocab.h"

namespace bertd::text {

// Greedy longest-match-first WordPiece over one normalized word.
class WordPiece {
 public:
  static constexpr int kDefaultMaxInputCharsPerWord = 100;
  static constexpr absl::string_view kContinuationPrefix = "##";

  struct Piece {
    int32_t id;
    int32_t char_begin;  // [char_begin, char_end) in characters of the word
    int32_t char_end;
    bool continuation;  // matched as "##" + text
    bool unknown;       // the whole word became the unknown token
  };

  WordPiece(std::shared_ptr<const Vocab> vocab, int32_t unk_id,
            int max_input_chars_per_word = kDefaultMaxInputCharsPerWord);

  // `chars` are the word's characters followed by the one after it (only its byte_offset is read),
  // byte offsets pointing into `text`. Appends the pieces to `out`; a word longer than the limit
  // or with no matching split becomes a single unknown piece.
  void Tokenize(absl::string_view text, absl::Span<const NormalizedChar> chars,
                std::vector<Piece>* out) const;

 private:
  std::shared_ptr<const Vocab> vocab_;
  int32_t unk_id_;
  int max_input_chars_per_word_;
  // Continuation pieces keyed without their "##", so lookups need no string concatenation.
  absl::flat_hash_map<std::string, int32_t> continuations_;
  size_t max_begin_bytes_ = 0;
  size_t max_continuation_bytes_ = 0;
};

}  // namespace bertd::text

#endif  // BERTD_TEXT_WORDPIECE_H_
