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
//
// Details: a run of terminators ("?!", "...", "！？") ends one sentence, together with the
// closing quotes and brackets right after it (" ' ) ] } ” ’ » › 」 』 ） 》 〉 】 〕 〗 ］ ＂ ＇).
// After an English terminator the sentence ends only when whitespace or the end follows, so
// "3.14" and "e.g.x" stay whole (but "Mr. Smith" is split: there is no abbreviation list);
// Chinese terminators end it whatever follows. Trimming removes Unicode whitespace (U+3000 too).
std::vector<std::string> SplitSentences(absl::string_view document);

// One document of a corpus before sentence splitting.
struct CorpusDocument {
  int64_t line = 0;  // 1-based line of the corpus where the document starts
  std::string text;  // its lines (without '\r') joined by '\n'
};

// The documents of a corpus. When a blank line (only whitespace) stands between two non-blank
// lines, blank-line separated blocks are documents; otherwise every non-blank line is one.
// A leading UTF-8 byte order mark is ignored.
std::vector<CorpusDocument> SplitDocuments(absl::string_view corpus);

// A corpus as documents of sentences: SplitDocuments, then SplitSentences on each document.
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

// A corpus as token ids, in the shape BuildSentencePairs takes.
struct TokenizedCorpus {
  std::vector<std::vector<std::vector<int32_t>>> tokens;     // [document][sentence][token]
  std::vector<std::vector<std::vector<bool>>> word_starts;  // parallel: token not "##"-prefixed
};

// Word pieces of every sentence (no [CLS]/[SEP]); a sentence may come out empty (only dropped
// characters), which BuildSentencePairs skips. INVALID_ARGUMENT naming the document and sentence
// (0-based) for text the tokenizer refuses (invalid UTF-8).
absl::StatusOr<TokenizedCorpus> TokenizeCorpus(
    const std::vector<std::vector<std::string>>& documents, const text::BertTokenizer& tokenizer);

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
//
// Details, where this differs from Google's script so that the NSP label is a fair coin for
// every pair that is made:
// - A chunk of one sentence with sentences after it takes B (when true next) from those.
// - A chunk of one sentence with nothing after it in its document (the last sentence, or a
//   one-sentence document such as a line of a line-per-document corpus) is cut at a random word
//   start: A is the part before, and the true B the part after. Without a word start inside it
//   (a one-word sentence) it makes no pair.
// - Whether a pair can be made is settled before the coin is drawn; chunks that cannot make both
//   kinds make none (so the label ratio stays 0.5 in expectation).
// - The random document is drawn uniformly among the other non-empty documents (never A's own),
//   B starting at a uniform sentence of it and running to the target length or the document's
//   end. With a single document, B starts at a uniform sentence at least two sentences away from
//   A's ends (a B before A stops two sentences before it); no pair when there is no such start.
// - Truncation removes tokens from the longer side (B on ties), at the front or the back with
//   equal probability, until [CLS] A [SEP] B [SEP] fits in max_seq_length; both sides keep >= 1
//   token. Empty sentences and documents are skipped. The pairs come out shuffled.
// - word_starts may be empty (or not match the tokens): every token then starts a word.
// - max_seq_length < 5 gives no pairs. Random numbers come from rng() directly (no
//   std::*_distribution), so results are the same with any standard library.
std::vector<SentencePair> BuildSentencePairs(
    const std::vector<std::vector<std::vector<int32_t>>>& tokenized_documents,
    const std::vector<std::vector<std::vector<bool>>>& word_starts, const PairOptions& options,
    std::mt19937_64& rng);

struct MaskingOptions {
  double masked_lm_prob = 0.15;           // of the non-special tokens
  int32_t max_predictions_per_seq = 20;   // cap per sequence; <= 0 means no cap
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
//
// Details: "special" means the ids of [PAD] [UNK] [CLS] [SEP] [MASK] (so a literal [MASK] or an
// [UNK] in the text is never a target). Random replacements are uniform over the vocabulary
// without those and without bracketed entries such as [unused0]; they may equal the original.
// With whole_word_masking, a word (a token with word_start set and the continuation tokens after
// it) is chosen or skipped as a whole, in random order, as long as it fits under the count;
// the 80/10/10 rule is then drawn per token. The vocabulary must have [CLS], [SEP] and [PAD]
// ([MASK] falls back to [UNK]). A pair longer than max_seq_length - 3 is cut at its ends, the
// longer side first.
MaskedExample MaskPair(const SentencePair& pair, const text::Vocab& vocab, int32_t max_seq_length,
                       const MaskingOptions& options, std::mt19937_64& rng);

}  // namespace bertd::data

#endif  // BERTD_DATA_PRETRAINING_DATA_H_
