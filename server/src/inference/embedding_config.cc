#include "inference/embedding_config.h"

#include <filesystem>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/json.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"

namespace bertd::inference {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;

// These files are a few hundred bytes; anything much larger is not one.
constexpr uintmax_t kMaxConfigBytes = 1 << 20;

absl::StatusOr<std::optional<Json>> ReadOptionalJson(const fs::path& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) return std::optional<Json>();
  const uintmax_t size = fs::file_size(path, ec);
  if (!ec && size > kMaxConfigBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(path.string(), ": ", size, " bytes; the limit is ", kMaxConfigBytes));
  }
  BERTD_ASSIGN_OR_RETURN(std::string text, ReadFileToString(path.string()));
  absl::StatusOr<Json> parsed = ParseJson(text);
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(path.string(), ": ", parsed.status().message()));
  }
  return std::optional<Json>(*std::move(parsed));
}

absl::Status FieldError(const fs::path& path, absl::string_view field, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(path.string(), ": \"", field, "\" ", what));
}

bool Flag(const Json& config, const char* key) {
  auto it = config.find(key);
  return it != config.end() && it->is_boolean() && it->get<bool>();
}

// 1_Pooling/config.json: the boolean pooling_mode_* flags, or the newer "pooling_mode" string.
absl::Status ReadPooling(const fs::path& path, EmbeddingConfig* config) {
  BERTD_ASSIGN_OR_RETURN(std::optional<Json> json, ReadOptionalJson(path));
  if (!json.has_value()) {
    config->warnings.push_back(absl::StrCat(path.string(), " is missing: mean pooling"));
    return absl::OkStatus();
  }
  if (!json->is_object()) return FieldError(path, "(top level)", "must be an object");
  std::vector<Pooling> modes;
  std::vector<std::string> unsupported;
  if (auto it = json->find("pooling_mode"); it != json->end() && !it->is_null()) {
    if (!it->is_string()) return FieldError(path, "pooling_mode", "must be a string");
    const std::string mode = it->get<std::string>();
    if (mode == "cls") modes.push_back(Pooling::kCls);
    else if (mode == "mean") modes.push_back(Pooling::kMean);
    else if (mode == "max") modes.push_back(Pooling::kMax);
    else unsupported.push_back(mode);
  } else {
    if (Flag(*json, "pooling_mode_cls_token")) modes.push_back(Pooling::kCls);
    if (Flag(*json, "pooling_mode_mean_tokens")) modes.push_back(Pooling::kMean);
    if (Flag(*json, "pooling_mode_max_tokens")) modes.push_back(Pooling::kMax);
    for (const char* other : {"pooling_mode_mean_sqrt_len_tokens", "pooling_mode_weightedmean_tokens",
                              "pooling_mode_lasttoken"}) {
      if (Flag(*json, other)) unsupported.push_back(other);
    }
  }
  if (modes.size() == 1 && unsupported.empty()) {
    config->pooling = modes.front();
    return absl::OkStatus();
  }
  // sentence-transformers concatenates several modes; bertd makes one vector of one mode.
  config->pooling = modes.empty() ? Pooling::kMean : modes.front();
  config->warnings.push_back(absl::StrCat(path.string(),
                                          ": only one of cls, mean or max pooling is supported; "
                                          "embeddings use ",
                                          PoolingName(config->pooling), " pooling"));
  return absl::OkStatus();
}

}  // namespace

absl::string_view PoolingName(Pooling pooling) {
  switch (pooling) {
    case Pooling::kCls:
      return "cls";
    case Pooling::kMean:
      return "mean";
    case Pooling::kMax:
      return "max";
  }
  return "mean";
}

absl::StatusOr<EmbeddingConfig> ReadEmbeddingConfig(const std::string& model_dir) {
  EmbeddingConfig config;
  const fs::path dir(model_dir);
  const fs::path modules_path = dir / "modules.json";
  BERTD_ASSIGN_OR_RETURN(std::optional<Json> modules, ReadOptionalJson(modules_path));
  if (!modules.has_value()) return config;
  if (!modules->is_array()) return FieldError(modules_path, "(top level)", "must be a list of modules");
  config.from_sentence_transformers = true;
  bool has_pooling = false;
  for (size_t i = 0; i < modules->size(); ++i) {
    const Json& module = (*modules)[i];
    const std::string field = absl::StrCat("[", i, "]");
    if (!module.is_object()) return FieldError(modules_path, field, "must be an object");
    auto type = module.find("type");
    if (type == module.end() || !type->is_string()) {
      return FieldError(modules_path, field + ".type", "must be a string");
    }
    const std::string type_name = type->get<std::string>();
    std::string folder;
    if (auto path = module.find("path"); path != module.end() && path->is_string()) {
      folder = path->get<std::string>();
    }
    // The module folder is read below the model directory only.
    if (absl::StrContains(folder, "..") || (!folder.empty() && folder.front() == '/')) {
      return FieldError(modules_path, field + ".path", "must be a folder inside the model directory");
    }
    if (absl::EndsWith(type_name, ".Transformer")) continue;
    if (absl::EndsWith(type_name, ".Pooling")) {
      has_pooling = true;
      BERTD_RETURN_IF_ERROR(ReadPooling(dir / folder / "config.json", &config));
    } else if (absl::EndsWith(type_name, ".Normalize")) {
      config.normalize = true;
    } else {
      config.warnings.push_back(absl::StrCat("modules.json", field, ": module ", type_name,
                                             " is not applied; embeddings are taken before it"));
    }
  }
  if (!has_pooling) config.warnings.push_back("modules.json has no Pooling module: mean pooling");
  const fs::path bert_config_path = dir / "sentence_bert_config.json";
  BERTD_ASSIGN_OR_RETURN(std::optional<Json> bert_config, ReadOptionalJson(bert_config_path));
  if (bert_config.has_value() && bert_config->is_object()) {
    if (auto it = bert_config->find("max_seq_length"); it != bert_config->end() && !it->is_null()) {
      if (!it->is_number_integer() || it->get<int64_t>() < 2 || it->get<int64_t>() > 1 << 20) {
        return FieldError(bert_config_path, "max_seq_length", "must be an integer from 2");
      }
      config.max_seq_length = static_cast<int>(it->get<int64_t>());
    }
  }
  return config;
}

}  // namespace bertd::inference
