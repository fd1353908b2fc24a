#ifndef BERTD_INFERENCE_MODEL_RUNNER_H_
#define BERTD_INFERENCE_MODEL_RUNNER_H_

#include <memory>
#include <vector>

#include "inference/sequence_work.h"
#include "model/bert.h"
#include "runtime/fast_bert.h"

namespace bertd::inference {

struct RunnerOptions {
  // On the CPU, run the encoder on runtime::FastBert (oneDNN, prepacked weights, no padding) when
  // the model allows it; otherwise, or on CUDA, LibTorch runs the padded batch.
  bool fast_path = true;
  runtime::Precision precision = runtime::Precision::kFloat32;
  int threads = 0;  // 0 = every usable CPU
};

// Runs one batch through the encoder once and applies, per sequence, the head it asked for.
class ModelRunner {
 public:
  ModelRunner(model::Bert model, c10::Device device, const RunnerOptions& options = {});
  ~ModelRunner();

  // Whether the encoder runs on the fast path, and why not when it does not.
  bool uses_fast_path() const { return fast_ != nullptr; }
  const std::string& fallback_reason() const { return fallback_reason_; }
  // The precision the encoder actually computes in.
  runtime::Precision precision() const;

  // Fills each work's outputs. Throws c10::Error when LibTorch fails.
  void Run(const std::vector<SequenceWork*>& works);

 private:
  // Runs the encoder; returns the last hidden states as rows [tokens, hidden] and, per work, the
  // row of its first token.
  at::Tensor Encode(const std::vector<SequenceWork*>& works, std::vector<int64_t>* offsets);
  // Fills the embeddings of works[rows] from their rows of `hidden`.
  static void Pool(const at::Tensor& hidden, const std::vector<int64_t>& offsets,
                   const std::vector<SequenceWork*>& works, const std::vector<int64_t>& rows);

  model::Bert model_;
  c10::Device device_;
  int64_t pad_token_id_;
  std::unique_ptr<runtime::FastBert> fast_;
  std::string fallback_reason_;
};

}  // namespace bertd::inference

#endif  // BERTD_INFERENCE_MODEL_RUNNER_H_
