#ifndef BERTD_INFERENCE_SEQUENCE_WORK_H_
#define BERTD_INFERENCE_SEQUENCE_WORK_H_

#include <cstdint>
#include <utility>
#include <vector>

#include "inference/embedding_config.h"

namespace bertd::inference {

// Which head output one sequence needs.
enum class Head { kClassifier, kNextSentence, kSpan, kMaskedLm, kEmbedding };

// One encoded sequence travelling through the batcher: its inputs, and the outputs the model
// runner fills in. Owned jointly by the request and the batch (shared_ptr) so either may finish
// first.
struct SequenceWork {
  Head head = Head::kClassifier;
  std::vector<int32_t> ids;
  std::vector<int32_t> type_ids;
  std::vector<int32_t> mask_positions;  // kMaskedLm: token positions to predict
  int top_k = 5;                        // kMaskedLm: predictions per position
  Pooling pooling = Pooling::kMean;     // kEmbedding
  bool normalize = false;               // kEmbedding: L2-normalize the pooled vector
  bool token_states = false;            // kEmbedding: also return every token's final state

  std::vector<float> logits;  // kClassifier, kNextSentence
  std::vector<float> start_logits;  // kSpan, one per token
  std::vector<float> end_logits;
  std::vector<std::vector<std::pair<int32_t, float>>> mask_top;  // per position: (id, probability)
  std::vector<float> embedding;     // kEmbedding: [hidden]
  std::vector<float> states;        // kEmbedding with token_states: [tokens, hidden], row-major
};

}  // namespace bertd::inference

#endif  // BERTD_INFERENCE_SEQUENCE_WORK_H_
