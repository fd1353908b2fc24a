#include "model/config.h"

#include <nlohmann/json.hpp>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/json.h"
#include "common/file_util.h"
#include "common/status_macros.h"

namespace bertd::model {
namespace {

using nlohmann::json;

constexpr std::pair<Architecture, absl::string_view> kArchitectureNames[] = {
    {Architecture::kBertModel, "BertModel"},
    {Architecture::kBertForPreTraining, "BertForPreTraining"},
    {Architecture::kBertForMaskedLM, "BertForMaskedLM"},
    {Architecture::kBertForNextSentencePrediction, "BertForNextSentencePrediction"},
    {Architecture::kBertForSequenceClassification, "BertForSequenceClassification"},
    {Architecture::kBertForQuestionAnswering, "BertForQuestionAnswering"},
};

// Reads `key` into `out` when present; a present value of the wrong type is an error.
template <typename T>
absl::Status ReadField(const json& object, const char* key, T* out) {
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) return absl::OkStatus();
  try {
    if constexpr (std::is_same_v<T, int>) {
      if (!it->is_number_integer()) throw std::invalid_argument("expected an integer");
    } else if constexpr (std::is_same_v<T, double>) {
      if (!it->is_number()) throw std::invalid_argument("expected a number");
    } else if constexpr (std::is_same_v<T, std::string>) {
      if (!it->is_string()) throw std::invalid_argument("expected a string");
    }
    *out = it->get<T>();
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("config.json field '", key, "': ", e.what(), ", got ", it->dump()));
  }
  return absl::OkStatus();
}

const char* const kKnownFields[] = {
    "vocab_size",        "hidden_size",          "num_hidden_layers",
    "num_attention_heads", "intermediate_size",  "hidden_act",
    "hidden_dropout_prob", "attention_probs_dropout_prob", "max_position_embeddings",
    "type_vocab_size",   "initializer_range",    "layer_norm_eps",
    "pad_token_id",      "position_embedding_type", "id2label",
    "label2id",          "num_labels",           "problem_type",
    "architectures",     "model_type",
};

}  // namespace

absl::string_view ArchitectureName(Architecture architecture) {
  for (const auto& [value, name] : kArchitectureNames) {
    if (value == architecture) return name;
  }
  return "BertModel";
}

absl::StatusOr<Architecture> ParseArchitecture(absl::string_view name) {
  for (const auto& [value, known] : kArchitectureNames) {
    if (known == name) return value;
  }
  std::string names;
  for (const auto& entry : kArchitectureNames) absl::StrAppend(&names, names.empty() ? "" : ", ", entry.second);
  return absl::InvalidArgumentError(
      absl::StrCat("unknown architecture '", name, "'; expected one of ", names));
}

absl::StatusOr<BertConfig> BertConfig::FromJson(absl::string_view json_text) {
  absl::StatusOr<json> parsed = ParseJson(json_text);
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("config.json: ", parsed.status().message()));
  }
  json root = *std::move(parsed);
  if (!root.is_object()) return absl::InvalidArgumentError("config.json must be a JSON object");

  if (auto type = root.find("model_type"); type != root.end() && type->is_string() &&
                                           type->get<std::string>() != "bert") {
    return absl::InvalidArgumentError(absl::StrCat(
        "config.json: model_type is '", type->get<std::string>(), "', only 'bert' is supported"));
  }

  BertConfig config;
  BERTD_RETURN_IF_ERROR(ReadField(root, "vocab_size", &config.vocab_size));
  BERTD_RETURN_IF_ERROR(ReadField(root, "hidden_size", &config.hidden_size));
  BERTD_RETURN_IF_ERROR(ReadField(root, "num_hidden_layers", &config.num_hidden_layers));
  BERTD_RETURN_IF_ERROR(ReadField(root, "num_attention_heads", &config.num_attention_heads));
  BERTD_RETURN_IF_ERROR(ReadField(root, "intermediate_size", &config.intermediate_size));
  BERTD_RETURN_IF_ERROR(ReadField(root, "hidden_act", &config.hidden_act));
  BERTD_RETURN_IF_ERROR(ReadField(root, "hidden_dropout_prob", &config.hidden_dropout_prob));
  BERTD_RETURN_IF_ERROR(
      ReadField(root, "attention_probs_dropout_prob", &config.attention_probs_dropout_prob));
  BERTD_RETURN_IF_ERROR(
      ReadField(root, "max_position_embeddings", &config.max_position_embeddings));
  BERTD_RETURN_IF_ERROR(ReadField(root, "type_vocab_size", &config.type_vocab_size));
  BERTD_RETURN_IF_ERROR(ReadField(root, "initializer_range", &config.initializer_range));
  BERTD_RETURN_IF_ERROR(ReadField(root, "layer_norm_eps", &config.layer_norm_eps));
  BERTD_RETURN_IF_ERROR(ReadField(root, "pad_token_id", &config.pad_token_id));
  BERTD_RETURN_IF_ERROR(
      ReadField(root, "position_embedding_type", &config.position_embedding_type));
  BERTD_RETURN_IF_ERROR(ReadField(root, "problem_type", &config.problem_type));

  if (auto it = root.find("architectures"); it != root.end() && !it->is_null()) {
    if (!it->is_array()) return absl::InvalidArgumentError("config.json: 'architectures' must be a list");
    for (const json& name : *it) {
      if (!name.is_string()) {
        return absl::InvalidArgumentError("config.json: 'architectures' must list strings");
      }
      config.architectures.push_back(name.get<std::string>());
    }
  }

  // id2label keys are strings holding integers ("0", "1", ...).
  if (auto it = root.find("id2label"); it != root.end() && !it->is_null()) {
    if (!it->is_object()) return absl::InvalidArgumentError("config.json: 'id2label' must be an object");
    for (const auto& [key, value] : it->items()) {
      int id = 0;
      if (!absl::SimpleAtoi(key, &id) || id < 0 || !value.is_string()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "config.json: 'id2label' entry \"", key, "\" must map a non-negative integer to a string"));
      }
      config.id2label[id] = value.get<std::string>();
    }
    for (int id = 0; id < static_cast<int>(config.id2label.size()); ++id) {
      if (!config.id2label.count(id)) {
        return absl::InvalidArgumentError(
            absl::StrCat("config.json: 'id2label' has no entry for label id ", id));
      }
    }
  }
  int declared_num_labels = -1;
  BERTD_RETURN_IF_ERROR(ReadField(root, "num_labels", &declared_num_labels));
  if (!config.id2label.empty()) {
    config.num_labels = static_cast<int>(config.id2label.size());
  } else if (declared_num_labels > 0) {
    config.num_labels = declared_num_labels;
  }

  json extra = json::object();
  for (const auto& [key, value] : root.items()) {
    bool known = false;
    for (const char* field : kKnownFields) known = known || key == field;
    if (!known) extra[key] = value;
  }
  config.extra_json = extra.dump();

  BERTD_RETURN_IF_ERROR(config.Validate());
  return config;
}

absl::StatusOr<BertConfig> BertConfig::FromFile(const std::string& path) {
  BERTD_ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  absl::StatusOr<BertConfig> config = FromJson(text);
  if (!config.ok()) {
    return absl::Status(config.status().code(), absl::StrCat(path, ": ", config.status().message()));
  }
  return config;
}

std::string BertConfig::ToJson() const {
  json root = json::parse(extra_json, nullptr, /*allow_exceptions=*/false);
  if (!root.is_object()) root = json::object();
  root["model_type"] = "bert";
  root["architectures"] = architectures;
  root["vocab_size"] = vocab_size;
  root["hidden_size"] = hidden_size;
  root["num_hidden_layers"] = num_hidden_layers;
  root["num_attention_heads"] = num_attention_heads;
  root["intermediate_size"] = intermediate_size;
  root["hidden_act"] = hidden_act;
  root["hidden_dropout_prob"] = hidden_dropout_prob;
  root["attention_probs_dropout_prob"] = attention_probs_dropout_prob;
  root["max_position_embeddings"] = max_position_embeddings;
  root["type_vocab_size"] = type_vocab_size;
  root["initializer_range"] = initializer_range;
  root["layer_norm_eps"] = layer_norm_eps;
  root["pad_token_id"] = pad_token_id;
  root["position_embedding_type"] = position_embedding_type;
  if (!problem_type.empty()) root["problem_type"] = problem_type;
  // Hugging Face writes labels for every model; keep them whenever a classifier could use them.
  json id2label_json = json::object();
  json label2id_json = json::object();
  for (int id = 0; id < num_labels; ++id) {
    std::string name = LabelName(id);
    id2label_json[std::to_string(id)] = name;
    label2id_json[name] = id;
  }
  root["id2label"] = id2label_json;
  root["label2id"] = label2id_json;
  return root.dump(2);
}

absl::Status BertConfig::Validate() const {
  auto positive = [](const char* name, int value) -> absl::Status {
    if (value > 0) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrCat("config: ", name, " must be positive, got ", value));
  };
  BERTD_RETURN_IF_ERROR(positive("vocab_size", vocab_size));
  BERTD_RETURN_IF_ERROR(positive("hidden_size", hidden_size));
  BERTD_RETURN_IF_ERROR(positive("num_hidden_layers", num_hidden_layers));
  BERTD_RETURN_IF_ERROR(positive("num_attention_heads", num_attention_heads));
  BERTD_RETURN_IF_ERROR(positive("intermediate_size", intermediate_size));
  BERTD_RETURN_IF_ERROR(positive("max_position_embeddings", max_position_embeddings));
  BERTD_RETURN_IF_ERROR(positive("type_vocab_size", type_vocab_size));
  BERTD_RETURN_IF_ERROR(positive("num_labels", num_labels));
  if (hidden_size % num_attention_heads != 0) {
    return absl::InvalidArgumentError(absl::StrCat("config: hidden_size ", hidden_size,
                                                   " is not a multiple of num_attention_heads ",
                                                   num_attention_heads));
  }
  if (hidden_act != "gelu" && hidden_act != "gelu_new" && hidden_act != "gelu_pytorch_tanh" &&
      hidden_act != "gelu_fast" && hidden_act != "relu" && hidden_act != "silu" &&
      hidden_act != "swish") {
    return absl::InvalidArgumentError(absl::StrCat(
        "config: hidden_act '", hidden_act,
        "' is not supported; expected gelu, gelu_new, gelu_pytorch_tanh, gelu_fast, relu or silu"));
  }
  if (position_embedding_type != "absolute") {
    return absl::InvalidArgumentError(absl::StrCat("config: position_embedding_type '",
                                                   position_embedding_type,
                                                   "' is not supported; only 'absolute'"));
  }
  if (!(layer_norm_eps > 0)) {
    return absl::InvalidArgumentError("config: layer_norm_eps must be positive");
  }
  if (pad_token_id < 0 || pad_token_id >= vocab_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("config: pad_token_id ", pad_token_id, " is outside the vocabulary"));
  }
  return absl::OkStatus();
}

Architecture BertConfig::PrimaryArchitecture() const {
  if (architectures.empty()) return Architecture::kBertModel;
  absl::StatusOr<Architecture> parsed = ParseArchitecture(architectures.front());
  return parsed.ok() ? *parsed : Architecture::kBertModel;
}

std::string BertConfig::LabelName(int id) const {
  auto it = id2label.find(id);
  return it != id2label.end() ? it->second : absl::StrCat("LABEL_", id);
}

}  // namespace bertd::model
