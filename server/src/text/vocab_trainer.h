#ifndef BERTD_TEXT_VOCAB_TRAINER_H_
#define BERTD_TEXT_VOCAB_TRAINER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "text/basic_tokenizer.h"
#include "text/vocab.h"

namespace bertd::text {

struct VocabTrainerOptions {
  int32_t vocab_size = 30522;  // upper bound on the result, specials included
  int32_t min_frequency = 2;   // pairs seen fewer times are never merged
  int32_t limit_alphabet = 1000;  // most frequent initial characters kept; the rest become [UNK]
  bool lowercase = true;          // also strips accents, as BERT uncased does
  std::vector<std::string> special_tokens = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};
  std::string continuing_subword_prefix = "##";
};

// Learns a WordPiece vocabulary from text, as Hugging Face's WordPieceTrainer does: words come
// from BERT's basic tokenizer (CJK characters are single words), the alphabet is seeded with
// their characters (word-initial and "##"-prefixed forms), and the most frequent adjacent pairs
// are merged until vocab_size is reached. Specials come first, in the given order. The result
// depends only on the counted text and the options (ties are broken by token text), so the same
// corpus gives the same vocab.txt on any machine.
//
// Details (docs/training.md, "Vocabulary training"):
// - Merge score: the pair's frequency over word occurrences, as Hugging Face (not Google's
//   likelihood score). Ties: the pair whose (left, right) token texts sort first, byte-wise.
//   Merging stops at vocab_size tokens or when the best pair is seen < min_frequency times.
// - Alphabet: ties in character frequency go to the lower code point. Words holding a character
//   outside it, or longer than WordPiece's 100 characters, are [UNK] when tokenizing and take no
//   part in the merges.
// - Order: specials, alphabet characters by code point, "##" forms by code point, then merges
//   in the order made. When specials + forms exceed vocab_size, the most used forms are kept.
// - Options are checked by Train(): vocab_size >= specials + 1, limit_alphabet >= 1,
//   min_frequency >= 0, specials non-empty, distinct and without line breaks, non-empty prefix.
class WordPieceTrainer {
 public:
  explicit WordPieceTrainer(VocabTrainerOptions options);

  // Counts the words of one piece of text (a line, a document). INVALID_ARGUMENT when it is not
  // valid UTF-8.
  absl::Status AddText(absl::string_view text);

  // INVALID_ARGUMENT for options that cannot work (vocab_size smaller than specials + 1, ...) or
  // when no text was added.
  absl::StatusOr<Vocab> Train() const;

  int64_t words_counted() const { return words_counted_; }

 private:
  VocabTrainerOptions options_;
  BasicTokenizer basic_;  // special tokens found in the text stay whole and are not counted
  absl::flat_hash_map<std::string, int64_t> word_counts_;
  int64_t words_counted_ = 0;
};

}  // namespace bertd::text

#endif  // BERTD_TEXT_VOCAB_TRAINER_H_
