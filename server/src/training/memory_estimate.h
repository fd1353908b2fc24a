#ifndef BERTD_TRAINING_MEMORY_ESTIMATE_H_
#define BERTD_TRAINING_MEMORY_ESTIMATE_H_

// How much memory a training job needs, estimated before it runs, so that a job that cannot fit
// its worker's limit is refused at submit rather than killed hours later. An estimate of fp32
// training with AdamW; bf16 autocast needs less, so it errs on the safe side there.

#include <cstdint>
#include <string>

#include "absl/status/status.h"

#include "model/bert.h"
#include "model/config.h"
#include "training/job_spec.h"

namespace bertd::training {

// The model a task trains: sequence classification for both classification tasks, NSP, QA, and
// BertForPreTraining for pretraining.
model::Architecture ArchitectureFor(TrainingTask task);

struct MemoryEstimate {
  int64_t parameters = 0;
  // Weights, gradients and AdamW's two moments, fp32: 16 bytes a parameter.
  int64_t state_bytes = 0;
  // What the forward pass keeps for the backward one, for one micro-batch of
  // per_device_train_batch_size sequences of max_seq_length tokens.
  int64_t activation_bytes = 0;
  // The worker process itself: LibTorch, its threads, the tokenized dataset (a constant).
  int64_t runtime_bytes = 0;

  int64_t total() const { return state_bytes + activation_bytes + runtime_bytes; }
  // "2.1 GiB (1.6 GiB weights, gradients and AdamW state for 110M parameters, 128 MiB
  // activations for a batch of 8 x 128 tokens, 384 MiB runtime)".
  std::string Describe(int batch, int tokens) const;
};

// Parameters of `config` with `heads`, counted from the layer shapes (Hugging Face's layout).
int64_t CountParameters(const model::BertConfig& config, const model::HeadSet& heads);

// Per layer and sequence of s tokens (hidden h, intermediate i, heads a), the forward pass keeps
// about s * (16 h + 2 i) floats of projections, residuals, norms and GELU inputs plus 3 a s^2 of
// attention scores, probabilities and dropout masks; the embeddings keep 4 s h more, and a
// pretraining MLM head its logits over the vocabulary for the masked positions.
MemoryEstimate EstimateTrainingMemory(const model::BertConfig& config, TrainingTask task,
                                      const TrainingArguments& args,
                                      const PretrainingOptions& pretraining);

// Where a job's workers must fit. `worker_limit`: --training_memory_limit (0: none), the hard
// limit of each CPU worker; `machine_bytes`: the machine's physical memory (0: unknown), which
// all `local_ranks` workers of a data-parallel job share.
struct MemoryRoom {
  int64_t worker_limit = 0;
  int64_t machine_bytes = 0;
  int local_ranks = 1;
};

// OK when `estimate` fits `room`; otherwise INVALID_ARGUMENT that names the field to change
// (per_device_train_batch_size, or distributed.world_size when only the ranks together do not
// fit), the estimate and the limit.
absl::Status CheckMemoryFits(const MemoryEstimate& estimate, int batch, int tokens,
                             const MemoryRoom& room);

// Measured: a worker training the 1M-parameter test model with 2 threads holds 562 MiB of private
// writable memory (VmData, what --training_memory_limit counts); each further thread adds its
// stack (docs/training.md, "Memory").
inline constexpr int64_t kWorkerRuntimeBytes = int64_t{640} << 20;

}  // namespace bertd::training

#endif  // BERTD_TRAINING_MEMORY_ESTIMATE_H_
