#ifndef BERTD_TEXT_TOKENIZER_JSON_H_
#define BERTD_TEXT_TOKENIZER_JSON_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "text/tokenizer.h"
#include "text/vocab.h"

namespace bertd::text {

// What a Hugging Face `tokenizer.json` (the `tokenizers` library's serialization) says about a BERT
// WordPiece tokenizer: the vocabulary and the options BertTokenizer needs.
struct TokenizerJson {
  Vocab vocab;
  // Lowercasing and accent stripping come from the normalizer; a tokenizer_config.json may still
  // override them, as BertTokenizerFast does.
  TokenizerOptions options;
};

inline constexpr int64_t kMaxTokenizerJsonBytes = int64_t{256} << 20;

// Reads the parts of tokenizer.json that decide the tokens: `model` (WordPiece: vocab, unk_token,
// continuing_subword_prefix "##", max_input_chars_per_word), `normalizer` (BertNormalizer),
// `pre_tokenizer` (BertPreTokenizer), `post_processor` ([CLS] A [SEP] (B [SEP])) and
// `added_tokens` (matched verbatim, never split). `truncation` and `padding` are ignored, as
// transformers ignores them: the caller decides lengths. Anything else (BPE, Unigram, another
// normalizer or template) is refused with INVALID_ARGUMENT naming the JSON field; so are
// vocabularies whose ids are not 0..N-1 without gaps.
absl::StatusOr<TokenizerJson> ParseTokenizerJson(absl::string_view text,
                                                 const std::string& path_for_errors);
absl::StatusOr<TokenizerJson> ReadTokenizerJson(const std::string& path);

}  // namespace bertd::text

#endif  // BERTD_TEXT_TOKENIZER_JSON_H_
