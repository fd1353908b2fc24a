#ifndef BERTD_RUNTIME_FROM_TORCH_H_
#define BERTD_RUNTIME_FROM_TORCH_H_

#include <memory>

#include "absl/status/statusor.h"
#include "model/bert.h"
#include "runtime/fast_bert.h"

namespace bertd::runtime {

// Whether the fast path can run this model (CPU fp32 parameters, absolute positions, a known
// activation). The reason when it cannot.
absl::Status CheckFastPathSupport(model::BertImpl& model);

// Packs the encoder of a loaded model. The embedding tables are shared with `model` (the MLM head
// reads the word embeddings too). With `release_encoder_weights`, the model's encoder layer
// parameters are then freed, so that only the packed copy stays in memory: model->bert->layers
// must not be run afterwards (the pooler and heads stay usable).
absl::StatusOr<std::unique_ptr<FastBert>> PackEncoder(model::BertImpl& model,
                                                      const FastBertOptions& options,
                                                      bool release_encoder_weights);

}  // namespace bertd::runtime

#endif  // BERTD_RUNTIME_FROM_TORCH_H_
