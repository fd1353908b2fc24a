#include "text/tokenizer_json.h"

#include <filesystem>
#include <limits>
#include <optional>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/json.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"

namespace bertd::text {
namespace {

using Json = nlohmann::json;

// Errors name the file and the JSON path of the field, never echo more than a token.
class Reader {
 public:
  explicit Reader(const std::string& path) : path_(path) {}

  absl::Status Error(absl::string_view field, absl::string_view what) const {
    return absl::InvalidArgumentError(absl::StrCat(path_, ": ", field, " ", what));
  }

  absl::StatusOr<const Json*> Object(const Json& parent, const char* key,
                                     absl::string_view field) const {
    auto it = parent.find(key);
    if (it == parent.end() || it->is_null()) return Error(field, "is missing");
    if (!it->is_object()) {
      return Error(field, absl::StrCat("must be an object, not ", JsonTypeName(*it)));
    }
    return &*it;
  }

  absl::StatusOr<std::string> String(const Json& parent, const char* key,
                                     absl::string_view field) const {
    auto it = parent.find(key);
    if (it == parent.end() || !it->is_string()) return Error(field, "must be a string");
    return it->get<std::string>();
  }

  // Absent or null: `fallback`.
  absl::StatusOr<std::optional<bool>> OptionalBool(const Json& parent, const char* key,
                                                   absl::string_view field) const {
    auto it = parent.find(key);
    if (it == parent.end() || it->is_null()) return std::optional<bool>();
    if (!it->is_boolean()) return Error(field, "must be true, false or null");
    return std::optional<bool>(it->get<bool>());
  }

 private:
  const std::string& path_;
};

absl::StatusOr<Vocab> ReadVocab(const Json& model, const Reader& reader) {
  auto it = model.find("vocab");
  if (it == model.end() || !it->is_object()) {
    return reader.Error("model.vocab", "must be an object of token: id");
  }
  if (it->empty()) return reader.Error("model.vocab", "is empty");
  std::vector<std::string> tokens(it->size());
  std::vector<bool> seen(it->size(), false);
  for (auto entry = it->begin(); entry != it->end(); ++entry) {
    const Json& id_value = entry.value();
    if (!id_value.is_number_integer()) {
      return reader.Error("model.vocab", "ids must be integers");
    }
    const int64_t id = id_value.get<int64_t>();
    if (id < 0 || id >= static_cast<int64_t>(tokens.size())) {
      return reader.Error("model.vocab", absl::StrCat("has id ", id, " outside 0..",
                                                      tokens.size() - 1,
                                                      ": ids must number the tokens without gaps"));
    }
    if (seen[static_cast<size_t>(id)]) {
      return reader.Error("model.vocab", absl::StrCat("gives id ", id, " to two tokens"));
    }
    seen[static_cast<size_t>(id)] = true;
    tokens[static_cast<size_t>(id)] = entry.key();
  }
  return Vocab::FromTokens(std::move(tokens));
}

absl::Status ReadModel(const Json& root, const Reader& reader, Vocab* vocab,
                       TokenizerOptions* options) {
  BERTD_ASSIGN_OR_RETURN(const Json* model, reader.Object(root, "model", "model"));
  BERTD_ASSIGN_OR_RETURN(std::string type, reader.String(*model, "type", "model.type"));
  if (type != "WordPiece") {
    return reader.Error("model.type", absl::StrCat("is \"", type,
                                                   "\"; bertd serves WordPiece (BERT) tokenizers"));
  }
  if (auto it = model->find("continuing_subword_prefix"); it != model->end() && !it->is_null()) {
    if (!it->is_string() || it->get<std::string>() != "##") {
      return reader.Error("model.continuing_subword_prefix", "must be \"##\"");
    }
  }
  if (auto it = model->find("max_input_chars_per_word"); it != model->end() && !it->is_null()) {
    if (!it->is_number_integer() || it->get<int64_t>() < 1 ||
        it->get<int64_t>() > std::numeric_limits<int32_t>::max()) {
      return reader.Error("model.max_input_chars_per_word", "must be a positive integer");
    }
    options->max_input_chars_per_word = static_cast<int>(it->get<int64_t>());
  }
  BERTD_ASSIGN_OR_RETURN(options->special_tokens.unk,
                         reader.String(*model, "unk_token", "model.unk_token"));
  BERTD_ASSIGN_OR_RETURN(*vocab, ReadVocab(*model, reader));
  return absl::OkStatus();
}

absl::Status ReadNormalizer(const Json& root, const Reader& reader, TokenizerJson* out) {
  BERTD_ASSIGN_OR_RETURN(const Json* normalizer, reader.Object(root, "normalizer", "normalizer"));
  BERTD_ASSIGN_OR_RETURN(std::string type,
                         reader.String(*normalizer, "type", "normalizer.type"));
  if (type != "BertNormalizer") {
    return reader.Error("normalizer.type", absl::StrCat("is \"", type, "\"; expected BertNormalizer"));
  }
  BERTD_ASSIGN_OR_RETURN(std::optional<bool> clean,
                         reader.OptionalBool(*normalizer, "clean_text", "normalizer.clean_text"));
  if (clean.has_value() && !*clean) {
    return reader.Error("normalizer.clean_text", "false is not supported (BERT cleans text)");
  }
  BERTD_ASSIGN_OR_RETURN(
      std::optional<bool> chinese,
      reader.OptionalBool(*normalizer, "handle_chinese_chars", "normalizer.handle_chinese_chars"));
  out->options.tokenize_chinese_chars = chinese.value_or(true);
  BERTD_ASSIGN_OR_RETURN(out->options.strip_accents,
                         reader.OptionalBool(*normalizer, "strip_accents", "normalizer.strip_accents"));
  BERTD_ASSIGN_OR_RETURN(std::optional<bool> lowercase,
                         reader.OptionalBool(*normalizer, "lowercase", "normalizer.lowercase"));
  out->options.do_lower_case = lowercase.value_or(true);
  return absl::OkStatus();
}

absl::Status ReadPreTokenizer(const Json& root, const Reader& reader) {
  BERTD_ASSIGN_OR_RETURN(const Json* pre, reader.Object(root, "pre_tokenizer", "pre_tokenizer"));
  BERTD_ASSIGN_OR_RETURN(std::string type, reader.String(*pre, "type", "pre_tokenizer.type"));
  if (type != "BertPreTokenizer") {
    return reader.Error("pre_tokenizer.type",
                        absl::StrCat("is \"", type, "\"; expected BertPreTokenizer"));
  }
  return absl::OkStatus();
}

// One element of a TemplateProcessing template: {"SpecialToken": {"id": T, "type_id": N}} or
// {"Sequence": {"id": "A"|"B", "type_id": N}}. Returns "A"/"B" for sequences, the token otherwise.
struct TemplatePiece {
  bool special = false;
  std::string id;
  int64_t type_id = 0;
};

absl::StatusOr<std::vector<TemplatePiece>> ReadTemplate(const Json& processor, const char* key,
                                                        const Reader& reader) {
  const std::string field = absl::StrCat("post_processor.", key);
  auto it = processor.find(key);
  if (it == processor.end() || !it->is_array()) return reader.Error(field, "must be a list");
  std::vector<TemplatePiece> pieces;
  for (const Json& element : *it) {
    TemplatePiece piece;
    const Json* body = nullptr;
    if (element.is_object() && element.contains("SpecialToken")) {
      piece.special = true;
      body = &element["SpecialToken"];
    } else if (element.is_object() && element.contains("Sequence")) {
      body = &element["Sequence"];
    } else {
      return reader.Error(field, "holds an entry that is neither SpecialToken nor Sequence");
    }
    if (!body->is_object()) return reader.Error(field, "holds an entry that is not an object");
    BERTD_ASSIGN_OR_RETURN(piece.id, reader.String(*body, "id", field + "[].id"));
    auto type_id = body->find("type_id");
    if (type_id != body->end() && type_id->is_number_integer()) piece.type_id = type_id->get<int64_t>();
    pieces.push_back(std::move(piece));
  }
  return pieces;
}

// BERT's framing: [CLS] A [SEP] and [CLS] A [SEP] B [SEP], with type ids 0 for A and 1 for B.
absl::Status ReadPostProcessor(const Json& root, const Reader& reader, SpecialTokens* special) {
  BERTD_ASSIGN_OR_RETURN(const Json* processor,
                         reader.Object(root, "post_processor", "post_processor"));
  BERTD_ASSIGN_OR_RETURN(std::string type,
                         reader.String(*processor, "type", "post_processor.type"));
  if (type == "BertProcessing") {
    for (const char* key : {"cls", "sep"}) {
      auto it = processor->find(key);
      if (it == processor->end() || !it->is_array() || it->empty() || !(*it)[0].is_string()) {
        return reader.Error(absl::StrCat("post_processor.", key), "must be [token, id]");
      }
      (std::string(key) == "cls" ? special->cls : special->sep) = (*it)[0].get<std::string>();
    }
    return absl::OkStatus();
  }
  if (type != "TemplateProcessing") {
    return reader.Error("post_processor.type",
                        absl::StrCat("is \"", type, "\"; expected BertProcessing or TemplateProcessing"));
  }
  BERTD_ASSIGN_OR_RETURN(std::vector<TemplatePiece> single, ReadTemplate(*processor, "single", reader));
  BERTD_ASSIGN_OR_RETURN(std::vector<TemplatePiece> pair, ReadTemplate(*processor, "pair", reader));
  const bool single_ok = single.size() == 3 && single[0].special && !single[1].special &&
                         single[1].id == "A" && single[2].special;
  if (!single_ok) return reader.Error("post_processor.single", "must be [CLS] $A [SEP]");
  const bool pair_ok = pair.size() == 5 && pair[0].special && pair[0].id == single[0].id &&
                       !pair[1].special && pair[1].id == "A" && pair[2].special &&
                       pair[2].id == single[2].id && !pair[3].special && pair[3].id == "B" &&
                       pair[3].type_id == 1 && pair[4].special && pair[4].id == single[2].id;
  if (!pair_ok) return reader.Error("post_processor.pair", "must be [CLS] $A [SEP] $B:1 [SEP]:1");
  special->cls = single[0].id;
  special->sep = single[2].id;
  return absl::OkStatus();
}

// Added tokens keep their ids; those past the vocabulary extend it (as the tokenizers library
// does), and all are matched verbatim.
absl::Status ReadAddedTokens(const Json& root, const Reader& reader, Vocab* vocab,
                             TokenizerOptions* options) {
  auto it = root.find("added_tokens");
  if (it == root.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_array()) return reader.Error("added_tokens", "must be a list");
  std::vector<std::string> tokens = vocab->tokens();
  bool extended = false;
  for (size_t i = 0; i < it->size(); ++i) {
    const Json& entry = (*it)[i];
    const std::string field = absl::StrCat("added_tokens[", i, "]");
    if (!entry.is_object()) return reader.Error(field, "must be an object");
    BERTD_ASSIGN_OR_RETURN(std::string content, reader.String(entry, "content", field + ".content"));
    auto id_value = entry.find("id");
    if (id_value == entry.end() || !id_value->is_number_integer()) {
      return reader.Error(field + ".id", "must be an integer");
    }
    const int64_t id = id_value->get<int64_t>();
    if (id >= 0 && id < static_cast<int64_t>(tokens.size())) {
      if (tokens[static_cast<size_t>(id)] != content) {
        return reader.Error(field, absl::StrCat("gives id ", id,
                                                " to a token that the vocabulary gives another"));
      }
    } else if (id == static_cast<int64_t>(tokens.size())) {
      tokens.push_back(content);
      extended = true;
    } else {
      return reader.Error(field + ".id", absl::StrCat("is ", id, "; the next free id is ", tokens.size()));
    }
    const SpecialTokens& special = options->special_tokens;
    if (content != special.unk && content != special.cls && content != special.sep &&
        content != special.pad && content != special.mask) {
      options->never_split.push_back(content);
    }
  }
  if (extended) *vocab = Vocab::FromTokens(std::move(tokens));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<TokenizerJson> ParseTokenizerJson(absl::string_view text,
                                                 const std::string& path_for_errors) {
  if (static_cast<int64_t>(text.size()) > kMaxTokenizerJsonBytes) {
    return absl::InvalidArgumentError(absl::StrCat(path_for_errors, ": ", text.size(),
                                                   " bytes; the limit is ", kMaxTokenizerJsonBytes));
  }
  absl::StatusOr<Json> root = ParseJson(text);
  if (!root.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(path_for_errors, ": ", root.status().message()));
  }
  Reader reader(path_for_errors);
  if (!root->is_object()) return reader.Error("the top level", "must be an object");
  TokenizerJson out{Vocab::FromTokens({}), TokenizerOptions{}};
  BERTD_RETURN_IF_ERROR(ReadModel(*root, reader, &out.vocab, &out.options));
  BERTD_RETURN_IF_ERROR(ReadNormalizer(*root, reader, &out));
  BERTD_RETURN_IF_ERROR(ReadPreTokenizer(*root, reader));
  BERTD_RETURN_IF_ERROR(ReadPostProcessor(*root, reader, &out.options.special_tokens));
  if (auto padding = root->find("padding"); padding != root->end() && padding->is_object()) {
    if (auto pad = padding->find("pad_token"); pad != padding->end() && pad->is_string()) {
      out.options.special_tokens.pad = pad->get<std::string>();
    }
  }
  BERTD_RETURN_IF_ERROR(ReadAddedTokens(*root, reader, &out.vocab, &out.options));
  return out;
}

absl::StatusOr<TokenizerJson> ReadTokenizerJson(const std::string& path) {
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  if (!ec && size > static_cast<uintmax_t>(kMaxTokenizerJsonBytes)) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": ", size, " bytes; the limit is ", kMaxTokenizerJsonBytes));
  }
  BERTD_ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  return ParseTokenizerJson(text, path);
}

}  // namespace bertd::text
