#include "text/tokenizer.h"

#include <cmath>
#include <filesystem>
#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/json.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"
#include "text/tokenizer_json.h"

namespace bertd::text {
namespace {

using Json = nlohmann::json;

std::string JoinPath(const std::string& dir, absl::string_view file) {
  return (std::filesystem::path(dir) / std::string(file)).string();
}

absl::Status ConfigError(const std::string& path, absl::string_view key, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(path, ": \"", key, "\" ", what));
}

absl::Status ReadBool(const Json& config, const std::string& path, const char* key,
                      std::optional<bool>* out) {
  auto it = config.find(key);
  if (it == config.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_boolean()) return ConfigError(path, key, "must be true, false or null");
  *out = it->get<bool>();
  return absl::OkStatus();
}

// Special tokens are saved either as plain strings or as AddedToken objects with a "content".
absl::Status ReadTokenString(const Json& config, const std::string& path, const char* key,
                             std::string* out) {
  auto it = config.find(key);
  if (it == config.end() || it->is_null()) return absl::OkStatus();
  if (it->is_string()) {
    *out = it->get<std::string>();
    return absl::OkStatus();
  }
  if (it->is_object()) {
    auto content = it->find("content");
    if (content != it->end() && content->is_string()) {
      *out = content->get<std::string>();
      return absl::OkStatus();
    }
  }
  return ConfigError(path, key, "must be a string or an object with a string \"content\"");
}

// Hugging Face writes a huge number (int(1e30)) when a model has no length limit.
absl::Status ReadModelMaxLength(const Json& config, const std::string& path,
                                std::optional<int32_t>* out) {
  auto it = config.find("model_max_length");
  if (it == config.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_number()) return ConfigError(path, "model_max_length", "must be a number");
  const double value = it->get<double>();
  if (std::isfinite(value) && value > 0 && value <= std::numeric_limits<int32_t>::max()) {
    *out = static_cast<int32_t>(value);
  }
  return absl::OkStatus();
}

absl::Status ApplyConfig(const Json& config, const std::string& path, TokenizerOptions* options,
                         std::optional<bool>* do_lower_case) {
  if (!config.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": expected a JSON object"));
  }
  BERTD_RETURN_IF_ERROR(ReadBool(config, path, "do_lower_case", do_lower_case));
  BERTD_RETURN_IF_ERROR(ReadBool(config, path, "strip_accents", &options->strip_accents));
  std::optional<bool> chinese;
  BERTD_RETURN_IF_ERROR(ReadBool(config, path, "tokenize_chinese_chars", &chinese));
  if (chinese.has_value()) options->tokenize_chinese_chars = *chinese;
  BERTD_RETURN_IF_ERROR(ReadModelMaxLength(config, path, &options->model_max_length));
  SpecialTokens& special = options->special_tokens;
  BERTD_RETURN_IF_ERROR(ReadTokenString(config, path, "unk_token", &special.unk));
  BERTD_RETURN_IF_ERROR(ReadTokenString(config, path, "sep_token", &special.sep));
  BERTD_RETURN_IF_ERROR(ReadTokenString(config, path, "pad_token", &special.pad));
  BERTD_RETURN_IF_ERROR(ReadTokenString(config, path, "cls_token", &special.cls));
  BERTD_RETURN_IF_ERROR(ReadTokenString(config, path, "mask_token", &special.mask));
  auto never_split = config.find("never_split");
  if (never_split != config.end() && !never_split->is_null()) {
    if (!never_split->is_array()) return ConfigError(path, "never_split", "must be a list");
    for (const Json& entry : *never_split) {
      if (!entry.is_string()) return ConfigError(path, "never_split", "must hold strings");
      options->never_split.push_back(entry.get<std::string>());
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<int32_t> RequireToken(const Vocab& vocab, const std::string& token,
                                     absl::string_view role) {
  std::optional<int32_t> id = vocab.Find(token);
  if (!id.has_value()) {
    return absl::InvalidArgumentError(
        absl::StrCat("the vocabulary has no ", role, " token \"", token, "\""));
  }
  return *id;
}

}  // namespace

BertTokenizer::BertTokenizer(std::shared_ptr<const Vocab> vocab, TokenizerOptions options,
                             BasicTokenizer basic, WordPiece wordpiece, FramingTokens framing,
                             int32_t unk_id, std::optional<int32_t> mask_id)
    : vocab_(std::move(vocab)),
      options_(std::move(options)),
      basic_(std::move(basic)),
      wordpiece_(std::move(wordpiece)),
      framing_(std::move(framing)),
      unk_id_(unk_id),
      mask_id_(mask_id) {}

absl::StatusOr<BertTokenizer> BertTokenizer::Create(Vocab vocab, TokenizerOptions options) {
  const SpecialTokens& special = options.special_tokens;
  BERTD_ASSIGN_OR_RETURN(int32_t unk_id, RequireToken(vocab, special.unk, "unknown"));
  BERTD_ASSIGN_OR_RETURN(int32_t cls_id, RequireToken(vocab, special.cls, "classification"));
  BERTD_ASSIGN_OR_RETURN(int32_t sep_id, RequireToken(vocab, special.sep, "separator"));
  BERTD_ASSIGN_OR_RETURN(int32_t pad_id, RequireToken(vocab, special.pad, "padding"));
  std::optional<int32_t> mask_id = vocab.Find(special.mask);

  std::vector<UnsplittableToken> unsplittable;
  for (const std::string* token :
       {&special.unk, &special.sep, &special.pad, &special.cls, &special.mask}) {
    unsplittable.push_back({*token, vocab.Find(*token).value_or(unk_id)});
  }
  for (const std::string& token : options.never_split) {
    unsplittable.push_back({token, vocab.Find(token).value_or(unk_id)});
  }
  BasicTokenizerOptions basic_options;
  basic_options.lowercase = options.do_lower_case;
  basic_options.strip_accents = options.strip_accents.value_or(options.do_lower_case);
  basic_options.split_chinese_chars = options.tokenize_chinese_chars;

  FramingTokens framing{
      {cls_id, special.cls, 0, 0}, {sep_id, special.sep, 0, 0}, {pad_id, special.pad, 0, 0}};
  auto shared_vocab = std::make_shared<const Vocab>(std::move(vocab));
  WordPiece wordpiece(shared_vocab, unk_id, options.max_input_chars_per_word);
  return BertTokenizer(std::move(shared_vocab), std::move(options),
                       BasicTokenizer(basic_options, std::move(unsplittable)), std::move(wordpiece),
                       std::move(framing), unk_id, mask_id);
}

absl::StatusOr<BertTokenizer> BertTokenizer::FromDirectory(const std::string& model_dir) {
  std::error_code ec;
  const std::string json_path = JoinPath(model_dir, kTokenizerJsonFileName);
  std::optional<TokenizerJson> fast;
  if (std::filesystem::exists(json_path, ec)) {
    BERTD_ASSIGN_OR_RETURN(TokenizerJson parsed, ReadTokenizerJson(json_path));
    fast = std::move(parsed);
  }
  Vocab vocab = Vocab::FromTokens({});
  TokenizerOptions options;
  std::optional<bool> do_lower_case;
  if (fast.has_value()) {
    vocab = std::move(fast->vocab);
    options = std::move(fast->options);
    do_lower_case = options.do_lower_case;
  } else {
    BERTD_ASSIGN_OR_RETURN(vocab, Vocab::Load(JoinPath(model_dir, kVocabFileName)));
  }
  const std::string config_path = JoinPath(model_dir, kConfigFileName);
  if (std::filesystem::exists(config_path, ec)) {
    BERTD_ASSIGN_OR_RETURN(std::string contents, ReadFileToString(config_path));
    absl::StatusOr<Json> config = ParseJson(contents);
    if (!config.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(config_path, ": ", config.status().message()));
    }
    const SpecialTokens framing = options.special_tokens;
    BERTD_RETURN_IF_ERROR(ApplyConfig(*config, config_path, &options, &do_lower_case));
    if (fast.has_value()) {
      // tokenizer.json's post-processor frames the sequences, whatever the config names.
      options.special_tokens.cls = framing.cls;
      options.special_tokens.sep = framing.sep;
    }
  }
  // An uncased vocabulary cannot match uppercase text, so its text must have been lowercased.
  options.do_lower_case = do_lower_case.value_or(!vocab.HasUppercase());
  return Create(std::move(vocab), std::move(options));
}

absl::Status BertTokenizer::SaveToDirectory(const std::string& dir) const {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    return absl::InternalError(absl::StrCat("cannot create directory ", dir, ": ", ec.message()));
  }
  BERTD_RETURN_IF_ERROR(vocab_->Save(JoinPath(dir, kVocabFileName)));

  nlohmann::ordered_json config;
  config["tokenizer_class"] = "BertTokenizer";
  config["do_lower_case"] = options_.do_lower_case;
  config["strip_accents"] = options_.strip_accents.has_value()
                                ? nlohmann::ordered_json(*options_.strip_accents)
                                : nlohmann::ordered_json(nullptr);
  config["tokenize_chinese_chars"] = options_.tokenize_chinese_chars;
  if (options_.model_max_length.has_value()) {
    config["model_max_length"] = *options_.model_max_length;
  }
  const SpecialTokens& special = options_.special_tokens;
  config["unk_token"] = special.unk;
  config["sep_token"] = special.sep;
  config["pad_token"] = special.pad;
  config["cls_token"] = special.cls;
  config["mask_token"] = special.mask;
  if (!options_.never_split.empty()) config["never_split"] = options_.never_split;
  return WriteFileAtomically(JoinPath(dir, kConfigFileName), config.dump(2) + "\n");
}

absl::Status BertTokenizer::AppendTokens(absl::string_view text, std::vector<Token>* out) const {
  PreTokenized pre;
  BERTD_RETURN_IF_ERROR(basic_.Split(text, &pre));
  std::vector<WordPiece::Piece> pieces;
  out->reserve(out->size() + pre.words.size() + pre.words.size() / 4);
  const absl::Span<const NormalizedChar> all_chars(pre.chars);
  for (const PreTokenizedWord& word : pre.words) {
    if (word.special_id >= 0) {
      const NormalizedChar& c = all_chars[static_cast<size_t>(word.char_begin)];
      out->push_back(
          {word.special_id, std::string(pre.WordText(word)), c.source_start, c.source_end});
      continue;
    }
    // The word's characters plus the one after it, which marks where the word's bytes end.
    absl::Span<const NormalizedChar> chars =
        all_chars.subspan(static_cast<size_t>(word.char_begin),
                          static_cast<size_t>(word.char_end - word.char_begin) + 1);
    pieces.clear();
    wordpiece_.Tokenize(pre.text, chars, &pieces);
    for (const WordPiece::Piece& piece : pieces) {
      Token token;
      token.id = piece.id;
      if (piece.unknown) {
        token.text = options_.special_tokens.unk;
      } else {
        const uint32_t begin = chars[static_cast<size_t>(piece.char_begin)].byte_offset;
        const uint32_t end = chars[static_cast<size_t>(piece.char_end)].byte_offset;
        absl::string_view piece_text = absl::string_view(pre.text).substr(begin, end - begin);
        token.text = piece.continuation ? absl::StrCat(WordPiece::kContinuationPrefix, piece_text)
                                        : std::string(piece_text);
      }
      token.start = chars[static_cast<size_t>(piece.char_begin)].source_start;
      token.end = chars[static_cast<size_t>(piece.char_end) - 1].source_end;
      out->push_back(std::move(token));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<Token>> BertTokenizer::Tokenize(absl::string_view text) const {
  std::vector<Token> tokens;
  BERTD_RETURN_IF_ERROR(AppendTokens(text, &tokens));
  return tokens;
}

absl::StatusOr<std::vector<Encoding>> BertTokenizer::Encode(absl::string_view text,
                                                            std::optional<absl::string_view> pair,
                                                            const EncodeOptions& options) const {
  std::vector<Token> first;
  BERTD_RETURN_IF_ERROR(AppendTokens(text, &first));
  if (!pair.has_value()) return AssembleEncodings(first, std::nullopt, options, framing_);
  std::vector<Token> second;
  BERTD_RETURN_IF_ERROR(AppendTokens(*pair, &second));
  return AssembleEncodings(first, absl::Span<const Token>(second), options, framing_);
}

absl::StatusOr<std::vector<std::vector<Encoding>>> BertTokenizer::EncodeBatch(
    absl::Span<const absl::string_view> texts, const EncodeOptions& options) const {
  std::vector<std::vector<Encoding>> batch;
  batch.reserve(texts.size());
  for (size_t i = 0; i < texts.size(); ++i) {
    absl::StatusOr<std::vector<Encoding>> encodings = Encode(texts[i], std::nullopt, options);
    if (!encodings.ok()) {
      return absl::Status(encodings.status().code(),
                          absl::StrCat("batch item ", i, ": ", encodings.status().message()));
    }
    batch.push_back(*std::move(encodings));
  }
  return batch;
}

absl::StatusOr<std::vector<std::vector<Encoding>>> BertTokenizer::EncodeBatch(
    absl::Span<const std::pair<absl::string_view, absl::string_view>> pairs,
    const EncodeOptions& options) const {
  std::vector<std::vector<Encoding>> batch;
  batch.reserve(pairs.size());
  for (size_t i = 0; i < pairs.size(); ++i) {
    absl::StatusOr<std::vector<Encoding>> encodings =
        Encode(pairs[i].first, pairs[i].second, options);
    if (!encodings.ok()) {
      return absl::Status(encodings.status().code(),
                          absl::StrCat("batch item ", i, ": ", encodings.status().message()));
    }
    batch.push_back(*std::move(encodings));
  }
  return batch;
}

}  // namespace bertd::text
