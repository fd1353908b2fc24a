#ifndef BERTD_INFERENCE_MODEL_RUNNER_H_
#define BERTD_INFERENCE_MODEL_RUNNER_H_

#include <vector>

#include "inference/sequence_work.h"
#include "model/bert.h"

namespace bertd::inference {

// Runs one padded batch through the encoder once and applies, per sequence, the head it asked for.
class ModelRunner {
 public:
  ModelRunner(model::Bert model, c10::Device device);

  // Fills each work's outputs. Throws c10::Error when LibTorch fails.
  void Run(const std::vector<SequenceWork*>& works);

 private:
  model::Bert model_;
  c10::Device device_;
  int64_t pad_token_id_;
};

}  // namespace bertd::inference

#endif  // BERTD_INFERENCE_MODEL_RUNNER_H_
