#ifndef BERTD_REGISTRY_SERVABLE_H_
#define BERTD_REGISTRY_SERVABLE_H_

#include <cstdint>
#include <string>
#include <vector>

namespace bertd::registry {

// Tasks a loaded model can serve, derived from its heads.
enum class Task {
  kSequenceClassification,
  kNextSentencePrediction,
  kSpanExtraction,
  kFillMask,
  kTokenization,
  kEmbedding,
};

const char* TaskName(Task task);

// What ModelService reports about a loaded model.
struct ModelDescription {
  std::string architecture;
  std::vector<Task> tasks;
  std::vector<std::string> labels;
  std::string problem_type;  // classifiers: config.json's problem_type, or what it defaults to
  int32_t max_sequence_length = 0;
  int64_t parameter_count = 0;
  std::string device;
  std::string precision;
  std::vector<std::string> warnings;
  int32_t hidden_size = 0;
  int32_t num_layers = 0;
  int32_t num_attention_heads = 0;
  int32_t vocab_size = 0;
  std::string embedding_pooling;  // "cls", "mean" or "max"
  bool embedding_normalized = false;
  int32_t embedding_max_tokens = 0;
};

// A loaded model version as the registry holds it. The registry knows nothing about how it
// computes; inference/ provides the implementation.
class Servable {
 public:
  virtual ~Servable() = default;
  virtual const ModelDescription& description() const = 0;
  // Stops accepting work and finishes what is already queued. Called once, on unload.
  virtual void Drain() = 0;
};

}  // namespace bertd::registry

#endif  // BERTD_REGISTRY_SERVABLE_H_
