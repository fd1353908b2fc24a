#ifndef BERTD_INFERENCE_EMBEDDING_CONFIG_H_
#define BERTD_INFERENCE_EMBEDDING_CONFIG_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace bertd::inference {

// How one vector is made from a sequence's final hidden states.
enum class Pooling {
  kCls,   // the [CLS] token's state
  kMean,  // the average over every token, [CLS] and [SEP] included (sentence-transformers)
  kMax,   // the element-wise maximum over every token
};
absl::string_view PoolingName(Pooling pooling);

// A model's own embedding settings. sentence-transformers models say them in modules.json
// (a Pooling module, whose folder's config.json names the mode, and an optional Normalize
// module) and sentence_bert_config.json (max_seq_length). Other models get what
// sentence-transformers gives a plain transformers checkpoint: mean pooling, no normalization.
struct EmbeddingConfig {
  Pooling pooling = Pooling::kMean;
  bool normalize = false;
  std::optional<int> max_seq_length;  // tokens; the model's own window when unset
  bool from_sentence_transformers = false;
  // What was found and not applied (a Dense module, an unsupported pooling mode): the model still
  // loads, and the embeddings are the pooled vectors before those modules.
  std::vector<std::string> warnings;
};

// Reads `model_dir`'s sentence-transformers files when present. INVALID_ARGUMENT naming the file
// and field for malformed JSON; absent files give the defaults above.
absl::StatusOr<EmbeddingConfig> ReadEmbeddingConfig(const std::string& model_dir);

}  // namespace bertd::inference

#endif  // BERTD_INFERENCE_EMBEDDING_CONFIG_H_
