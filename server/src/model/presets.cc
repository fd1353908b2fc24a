#include "model/presets.h"

#include <algorithm>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace bertd::model {
namespace {

struct Preset {
  const char* name;
  int layers;
  int hidden;
};

constexpr Preset kPresets[] = {
    {"tiny", 2, 128}, {"mini", 4, 256}, {"small", 4, 512}, {"medium", 8, 512}, {"base", 12, 768},
};

constexpr absl::string_view kScratch = "scratch";

}  // namespace

std::vector<std::string> PresetNames() {
  std::vector<std::string> names;
  for (const Preset& preset : kPresets) names.emplace_back(preset.name);
  return names;
}

std::optional<std::string> ParseScratchBaseModel(absl::string_view base_model) {
  if (base_model == kScratch) return std::string();
  if (absl::StartsWith(base_model, "scratch:")) {
    return std::string(base_model.substr(kScratch.size() + 1));
  }
  return std::nullopt;
}

absl::StatusOr<BertConfig> ScratchConfig(absl::string_view preset, const ModelSize& size,
                                         int vocab_size) {
  int layers = 0, hidden = 0;
  if (!preset.empty()) {
    bool found = false;
    for (const Preset& p : kPresets) {
      if (preset == p.name) {
        layers = p.layers;
        hidden = p.hidden;
        found = true;
      }
    }
    if (!found) {
      return absl::InvalidArgumentError(absl::StrCat("base_model: 'scratch:", preset,
                                                     "' names no preset; expected one of ",
                                                     absl::StrJoin(PresetNames(), ", ")));
    }
  }
  auto positive = [](int value, const char* field) -> absl::Status {
    if (value >= 0) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrCat("model_size.", field, ": must be > 0 (0 = unset), got ", value));
  };
  for (auto [value, field] : {std::pair{size.num_hidden_layers, "num_hidden_layers"},
                              std::pair{size.hidden_size, "hidden_size"},
                              std::pair{size.num_attention_heads, "num_attention_heads"},
                              std::pair{size.intermediate_size, "intermediate_size"},
                              std::pair{size.max_position_embeddings, "max_position_embeddings"}}) {
    if (absl::Status status = positive(value, field); !status.ok()) return status;
  }
  if (size.num_hidden_layers > 0) layers = size.num_hidden_layers;
  if (size.hidden_size > 0) hidden = size.hidden_size;
  if (layers == 0 || hidden == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "model_size: base_model 'scratch' without a preset needs num_hidden_layers and "
        "hidden_size (or use scratch:PRESET with PRESET one of ",
        absl::StrJoin(PresetNames(), ", "), ")"));
  }
  BertConfig config;
  config.vocab_size = vocab_size;
  config.num_hidden_layers = layers;
  config.hidden_size = hidden;
  config.num_attention_heads =
      size.num_attention_heads > 0 ? size.num_attention_heads : std::max(1, hidden / 64);
  config.intermediate_size = size.intermediate_size > 0 ? size.intermediate_size : 4 * hidden;
  config.max_position_embeddings =
      size.max_position_embeddings > 0 ? size.max_position_embeddings : 512;
  config.architectures = {"BertForPreTraining"};
  if (hidden % config.num_attention_heads != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "model_size.hidden_size: ", hidden, " is not a multiple of num_attention_heads ",
        config.num_attention_heads));
  }
  if (layers > 96 || hidden > 8192 || config.intermediate_size > 65536 ||
      config.max_position_embeddings > 8192) {
    return absl::InvalidArgumentError(absl::StrCat(
        "model_size: ", layers, " layers x ", hidden, " hidden (intermediate ",
        config.intermediate_size, ", ", config.max_position_embeddings,
        " positions) is beyond the supported sizes (<= 96 layers, 8192 hidden)"));
  }
  if (absl::Status status = config.Validate(); !status.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("model_size: ", status.message()));
  }
  return config;
}

}  // namespace bertd::model
