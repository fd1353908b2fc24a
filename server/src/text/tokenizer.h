#ifndef BERTD_TEXT_TOKENIZER_H_
#define BERTD_TEXT_TOKENIZER_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "text/basic_tokenizer.h"
#include "text/encoding.h"
#include "text/vocab.h"
#include "text/wordpiece.h"

namespace bertd::text {

struct SpecialTokens {
  std::string unk = "[UNK]";
  std::string sep = "[SEP]";
  std::string pad = "[PAD]";
  std::string cls = "[CLS]";
  std::string mask = "[MASK]";
};

// The settings of Hugging Face's BertTokenizer(Fast) that change its output.
struct TokenizerOptions {
  bool do_lower_case = true;
  // Unset: strip accents exactly when lowercasing (Hugging Face semantics).
  std::optional<bool> strip_accents;
  bool tokenize_chinese_chars = true;
  // The model's maximum sequence length, when known; only carried to tokenizer_config.json.
  std::optional<int32_t> model_max_length;
  // Extra tokens that, like the special tokens, are matched verbatim and never split.
  std::vector<std::string> never_split;
  SpecialTokens special_tokens;
  // Longer words become the unknown token (tokenizer.json's model.max_input_chars_per_word).
  int max_input_chars_per_word = WordPiece::kDefaultMaxInputCharsPerWord;
};

// BERT's WordPiece tokenizer, matching Hugging Face's BertTokenizerFast token for token, including
// offsets. Immutable after creation, so one instance may serve many threads; copies are cheap.
class BertTokenizer {
 public:
  static constexpr absl::string_view kVocabFileName = "vocab.txt";
  static constexpr absl::string_view kConfigFileName = "tokenizer_config.json";
  static constexpr absl::string_view kTokenizerJsonFileName = "tokenizer.json";

  // INVALID_ARGUMENT when the vocabulary lacks the unknown, [CLS], [SEP] or [PAD] token.
  static absl::StatusOr<BertTokenizer> Create(Vocab vocab, TokenizerOptions options);

  // Loads the tokenizer as transformers' AutoTokenizer would: tokenizer.json when the directory has
  // one (the "fast" tokenizer; see text/tokenizer_json.h), else vocab.txt; then, when present,
  // tokenizer_config.json (do_lower_case, strip_accents, tokenize_chinese_chars, model_max_length,
  // never_split, special tokens), whose settings override tokenizer.json's normalizer as
  // BertTokenizerFast's do. With vocab.txt and no do_lower_case setting, the text is lowercased
  // iff the vocabulary has no uppercase entries.
  static absl::StatusOr<BertTokenizer> FromDirectory(const std::string& model_dir);

  // Writes vocab.txt and a tokenizer_config.json that Hugging Face's AutoTokenizer can load.
  absl::Status SaveToDirectory(const std::string& dir) const;

  // Word pieces of `text` without special tokens. Special tokens and never_split entries found in
  // the text come out as themselves. INVALID_ARGUMENT naming the byte offset for invalid UTF-8.
  absl::StatusOr<std::vector<Token>> Tokenize(absl::string_view text) const;

  // Model inputs for `text` (and `pair`); see AssembleEncodings for truncation and windows.
  absl::StatusOr<std::vector<Encoding>> Encode(absl::string_view text,
                                               std::optional<absl::string_view> pair = std::nullopt,
                                               const EncodeOptions& options = {}) const;

  // Encode over a batch; result[i] is Encode(texts[i]) or Encode(pairs[i].first, .second).
  absl::StatusOr<std::vector<std::vector<Encoding>>> EncodeBatch(
      absl::Span<const absl::string_view> texts, const EncodeOptions& options = {}) const;
  absl::StatusOr<std::vector<std::vector<Encoding>>> EncodeBatch(
      absl::Span<const std::pair<absl::string_view, absl::string_view>> pairs,
      const EncodeOptions& options = {}) const;

  const Vocab& vocab() const { return *vocab_; }
  const TokenizerOptions& options() const { return options_; }
  bool strip_accents() const { return basic_.options().strip_accents; }
  int32_t unk_id() const { return unk_id_; }
  int32_t cls_id() const { return framing_.cls.id; }
  int32_t sep_id() const { return framing_.sep.id; }
  int32_t pad_id() const { return framing_.pad.id; }
  std::optional<int32_t> mask_id() const { return mask_id_; }

 private:
  BertTokenizer(std::shared_ptr<const Vocab> vocab, TokenizerOptions options, BasicTokenizer basic,
                WordPiece wordpiece, FramingTokens framing, int32_t unk_id,
                std::optional<int32_t> mask_id);

  absl::Status AppendTokens(absl::string_view text, std::vector<Token>* out) const;

  std::shared_ptr<const Vocab> vocab_;
  TokenizerOptions options_;
  BasicTokenizer basic_;
  WordPiece wordpiece_;
  FramingTokens framing_;
  int32_t unk_id_;
  std::optional<int32_t> mask_id_;
};

}  // namespace bertd::text

#endif  // BERTD_TEXT_TOKENIZER_H_
