#ifndef BERTD_MODEL_CONFIG_H_
#define BERTD_MODEL_CONFIG_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace bertd::model {

// Which heads sit on top of the encoder; mirrors Hugging Face's `architectures` entry.
enum class Architecture {
  kBertModel,                           // encoder + pooler, no head
  kBertForPreTraining,                  // MLM + NSP
  kBertForMaskedLM,                     // MLM
  kBertForNextSentencePrediction,       // NSP
  kBertForSequenceClassification,       // pooled output -> num_labels
  kBertForQuestionAnswering,            // token -> start/end logits
};

absl::string_view ArchitectureName(Architecture architecture);
absl::StatusOr<Architecture> ParseArchitecture(absl::string_view name);

// The fields of a Hugging Face BERT `config.json`. Unknown fields survive a load/save round trip.
struct BertConfig {
  int vocab_size = 30522;
  int hidden_size = 768;
  int num_hidden_layers = 12;
  int num_attention_heads = 12;
  int intermediate_size = 3072;
  std::string hidden_act = "gelu";
  double hidden_dropout_prob = 0.1;
  double attention_probs_dropout_prob = 0.1;
  int max_position_embeddings = 512;
  int type_vocab_size = 2;
  double initializer_range = 0.02;
  double layer_norm_eps = 1e-12;
  int pad_token_id = 0;
  std::string position_embedding_type = "absolute";
  // Classification heads: labels by id. Empty means `num_labels` unnamed labels LABEL_0...
  std::map<int, std::string> id2label;
  int num_labels = 2;
  // "regression", "single_label_classification" or "multi_label_classification"; empty = infer.
  std::string problem_type;
  std::vector<std::string> architectures;
  // Remaining config.json members, serialized as a JSON object, written back on save.
  std::string extra_json = "{}";

  static absl::StatusOr<BertConfig> FromJson(absl::string_view json_text);
  static absl::StatusOr<BertConfig> FromFile(const std::string& path);
  std::string ToJson() const;

  // Checks sizes and options the runtime depends on (e.g. hidden_size divisible by heads).
  absl::Status Validate() const;

  // The architecture named first in `architectures`, or kBertModel when absent/unknown.
  Architecture PrimaryArchitecture() const;
  // Label name for an id: id2label when known, else "LABEL_<id>" as Hugging Face does.
  std::string LabelName(int id) const;
  int head_size() const { return hidden_size / num_attention_heads; }
};

}  // namespace bertd::model

#endif  // BERTD_MODEL_CONFIG_H_
