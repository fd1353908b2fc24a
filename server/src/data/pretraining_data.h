#ifndef BERTD_DATA_PRETRAINING_DATA_H_
#define BERTD_DATA_PRETRAINING_DATA_H_

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "text/tokenizer.h"
#include "text/vocab.h"

namespace bertd::data {

// Splits a document into sentences after English `.!?` (followed by whitespace or the end, with
// closing quotes/brackets kept on the sentence) and Chinese `。！？；` (full-width closing quotes
// kept too); line breaks also end a sentence. Sentences are trimmed; empty ones are dropped.
std::vector<std::string> SplitSentences(absl::string_view document);

// A corpus as documents of sentences. With blank lines in the text, blank-line separated blocks
// are documents; without any, every non-empty line is a document.
std::vector<std::vector<std::string>> SplitCorpus(absl::string_view corpus);

// One sentence pair before masking: token ids without [CLS]/[SEP].
struct SentencePair {
  std::vector<int32_t> tokens_a;
  std::vector<int32_t> tokens_b;
  // Word starts (true where a token does not begin with "##"), parallel to the tokens; used by
  // whole-word masking.
  std::vector<bool> word_start_a;
  std::vector<bool> word_start_b;
  bool is_random_next = false;  // NSP label 1
};

struct PairOptions {
  int32_t max_seq_length = 128;  // [CLS] A [SEP] B [SEP] fits in it
  double short_seq_prob = 0.1;   // sometimes pack shorter pairs, as BERT's create_pretraining_data
  int32_t dupe_factor = 1;       // passes over the corpus with different pairings
};

// Builds NSP pairs as BERT's create_pretraining_data does: sentences of a document are packed into
// segment A up to a random split, B is the true continuation with probability 0.5, else a span of
// sentences from another document (never adjacent to A: a document different from A's), and the
// pair is truncated from the longer side to fit. Deterministic for a given rng state. Needs two or
// more documents for random negatives; with one document, negatives come from non-adjacent
// sentences of that document.
std::vector<SentencePair> BuildSentencePairs(
    const std::vector<std::vector<std::vector<int32_t>>>& tokenized_documents,
    const std::vector<std::vector<std::vector<bool>>>& word_starts, const PairOptions& options,
    std::mt19937_64& rng);

struct MaskingOptions {
  double masked_lm_prob = 0.15;           // of the non-special tokens
  int32_t max_predictions_per_seq = 20;   // cap per sequence
  bool whole_word_masking = false;        // mask every piece of a chosen word
};

// A model input: [CLS] A [SEP] B [SEP], padded to max_seq_length.
struct MaskedExample {
  std::vector<int32_t> input_ids;
  std::vector<int32_t> token_type_ids;
  std::vector<int32_t> attention_mask;
  std::vector<int32_t> mlm_labels;  // original id at masked positions, -100 elsewhere
  int32_t nsp_label = 0;            // 0 = B follows A, 1 = random
};

// Chooses round(masked_lm_prob * non-special tokens) positions (at least 1, at most
// max_predictions_per_seq) and replaces them with the 80/10/10 rule: [MASK], a random
// non-special vocabulary token, or unchanged. [CLS], [SEP] and padding are never chosen.
MaskedExample MaskPair(const SentencePair& pair, const text::Vocab& vocab, int32_t max_seq_length,
                       const MaskingOptions& options, std::mt19937_64& rng);

}  // namespace bertd::data

#endif  // BERTD_DATA_PRETRAINING_DATA_H_
