#ifndef BERTD_MODEL_PRESETS_H_
#define BERTD_MODEL_PRESETS_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "model/config.h"

// Sizes of models trained from scratch ("scratch:PRESET" base models).
namespace bertd::model {

// Explicit sizes; 0 = take the preset's (or the rule: heads = hidden / 64, intermediate =
// 4 x hidden, 512 positions).
struct ModelSize {
  int num_hidden_layers = 0;
  int hidden_size = 0;
  int num_attention_heads = 0;
  int intermediate_size = 0;
  int max_position_embeddings = 0;

  bool empty() const {
    return num_hidden_layers == 0 && hidden_size == 0 && num_attention_heads == 0 &&
           intermediate_size == 0 && max_position_embeddings == 0;
  }
};

// tiny 2x128, mini 4x256, small 4x512, medium 8x512, base 12x768 (layers x hidden), as Google's
// BERT miniatures and BERT-base.
std::vector<std::string> PresetNames();

// "scratch" -> "", "scratch:mini" -> "mini"; nullopt when `base_model` does not start a scratch
// model (it then names a model in the repository).
std::optional<std::string> ParseScratchBaseModel(absl::string_view base_model);

// The config of a new BertForPreTraining model: the preset (empty = none, then
// size.num_hidden_layers and size.hidden_size are required) with `size`'s non-zero fields on top,
// and `vocab_size` ids. Errors name the field: "model_size.hidden_size: 100 is not a multiple of
// num_attention_heads 3".
absl::StatusOr<BertConfig> ScratchConfig(absl::string_view preset, const ModelSize& size,
                                         int vocab_size);

}  // namespace bertd::model

#endif  // BERTD_MODEL_PRESETS_H_
