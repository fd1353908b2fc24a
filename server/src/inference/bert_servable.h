#ifndef BERTD_INFERENCE_BERT_SERVABLE_H_
#define BERTD_INFERENCE_BERT_SERVABLE_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "inference/batcher.h"
#include "model/config.h"
#include "inference/embedding_config.h"
#include "inference/requests.h"
#include "inference/sequence_work.h"
#include "registry/model_registry.h"
#include "registry/servable.h"
#include "runtime/fast_bert.h"
#include "text/encoding.h"
#include "text/tokenizer.h"

namespace bertd::inference {

class ModelRunner;

// How a classifier's outputs are read (config.json's problem_type).
enum class ProblemType { kSingleLabel, kMultiLabel, kRegression };
ProblemType ProblemTypeOf(const model::BertConfig& config);
absl::string_view ProblemTypeName(ProblemType type);

struct ServableOptions {
  std::string device = "cpu";
  // Encoder precision on the CPU fast path (runtime::FastBert); bf16 falls back to fp32 where
  // the fast path cannot run the model.
  runtime::Precision precision = runtime::Precision::kFloat32;
  int threads = 0;          // encoder threads; 0 = every usable CPU
  bool fast_path = true;    // false: LibTorch's padded forward (the reference path)
  BatcherOptions batcher;
  // Called after every batch (metrics); `key` is "name@version".
  std::function<void(const std::string& key, const BatchStats& stats, int queue_depth)> on_batch;
};

// A loaded BERT model version: tokenizer, model and its dynamic batcher. Requests are tokenized
// on the caller's thread; their sequences are computed in batches with other callers'; the
// callback runs on the batcher thread once every sequence of the request is done.
class BertServable : public registry::Servable {
 public:
  static absl::StatusOr<std::shared_ptr<BertServable>> Create(const registry::ModelKey& key,
                                                              const std::string& directory,
                                                              const ServableOptions& options);
  ~BertServable() override;

  const registry::ModelDescription& description() const override { return description_; }
  void Drain() override;

  const registry::ModelKey& key() const { return key_; }
  bool Supports(registry::Task task) const;
  // FAILED_PRECONDITION naming the model's tasks when `task` is not among them.
  absl::Status CheckSupports(registry::Task task) const;
  int queue_depth() const { return batcher_->queue_depth(); }

  // Multi-label models: sigmoid scores, and `labels` lists those at or above `threshold`.
  void Classify(const std::vector<TextPair>& inputs, const RequestContext& context,
                Callback<std::vector<ClassificationResult>> done, float threshold = 0.5f);
  void PredictNextSentence(const std::vector<TextPair>& pairs, const RequestContext& context,
                           Callback<std::vector<NextSentenceResult>> done);
  void ExtractSpan(const SpanQuery& query, const RequestContext& context,
                   Callback<SpanAnswer> done);
  void FillMask(const std::string& text, int top_k, const RequestContext& context,
                Callback<std::vector<MaskResult>> done);
  // One vector per input (pooled final hidden states), from every model. Inputs longer than the
  // embedding window (the model's, or sentence_bert_config.json's max_seq_length when smaller)
  // are truncated, and the result says so. With token states, INVALID_ARGUMENT once the inputs
  // make more than `max_state_tokens` tokens (0: no limit).
  void Embed(const std::vector<TextPair>& inputs, const EmbedOptions& options,
             const RequestContext& context, Callback<std::vector<EmbeddingResult>> done,
             int64_t max_state_tokens = 0);
  const EmbeddingConfig& embedding_config() const { return embedding_; }
  int embedding_window() const { return embedding_window_; }
  int hidden_size() const { return description_.hidden_size; }

  // INVALID_ARGUMENT once the inputs make more than `max_tokens` tokens (0: no limit).
  absl::StatusOr<std::vector<text::Encoding>> Tokenize(const std::vector<TextPair>& inputs,
                                                        int64_t max_tokens = 0) const;

 private:
  BertServable() = default;

  // Encodes `input` truncated to the model's window (longest_first).
  absl::StatusOr<text::Encoding> EncodeTruncated(const TextPair& input) const;
  // Queues every work; `done` runs once: OK when all were computed, else the first error.
  void Submit(std::vector<std::shared_ptr<SequenceWork>> works, const RequestContext& context,
              std::function<void(absl::Status)> done);

  registry::ModelKey key_;
  registry::ModelDescription description_;
  std::unique_ptr<text::BertTokenizer> tokenizer_;
  std::vector<std::string> labels_;
  ProblemType problem_ = ProblemType::kSingleLabel;
  int max_sequence_length_ = 0;
  EmbeddingConfig embedding_;
  int embedding_window_ = 0;
  std::unique_ptr<ModelRunner> runner_;
  std::unique_ptr<DynamicBatcher> batcher_;
};

}  // namespace bertd::inference

#endif  // BERTD_INFERENCE_BERT_SERVABLE_H_
