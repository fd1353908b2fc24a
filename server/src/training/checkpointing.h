#ifndef BERTD_TRAINING_CHECKPOINTING_H_
#define BERTD_TRAINING_CHECKPOINTING_H_

#include <ATen/autocast_mode.h>
#include <torch/optim/adamw.h>

#include <cmath>
#include <cstdint>
#include <filesystem>

#include "absl/status/statusor.h"
#include "model/bert.h"

// What fine-tuning and pretraining share: the run's position, atomic checkpoints, bf16 autocast.
namespace bertd::training {

// Mixed precision on the job's device, as torch.autocast(device, dtype) does: matrix products run
// in bf16 (CPU or CUDA) or fp16 (CUDA only, with a LossScaler), reductions and the loss in fp32,
// master weights stay fp32. The setting is thread-local, so training never changes inference
// threads. Neither flag: nothing changes.
class Autocast {
 public:
  Autocast(c10::DeviceType device, bool bf16, bool fp16);
  ~Autocast();
  Autocast(const Autocast&) = delete;
  Autocast& operator=(const Autocast&) = delete;

 private:
  const c10::DeviceType device_;
  bool previous_ = false;
};

// Where a run stands; saved with every checkpoint.
struct TrainerState {
  int64_t global_step = 0;
  int64_t epoch = 0;           // epoch of the next micro-batch
  int64_t batch_in_epoch = 0;  // index of the next micro-batch within that epoch
  double loss_sum = 0;
  int64_t loss_count = 0;
  double best_metric = -INFINITY;
  int64_t evaluations_without_improvement = 0;
  // fp16's dynamic loss scale and its clean steps (0: not fp16), so a resume scales exactly.
  double loss_scale = 0;
  int64_t loss_scale_clean_steps = 0;
};

// Checkpoint = a directory checkpoint-<step>/ with model.safetensors, optimizer.pt, rng.pt and
// trainer_state.json, written under a temporary name and renamed; `latest` names the newest.
// save_total_limit > 0 keeps only that many of the newest.
absl::Status SaveCheckpoint(const std::filesystem::path& work_dir, model::BertImpl& model,
                            torch::optim::AdamW& optimizer, const TrainerState& state,
                            int save_total_limit);

// Restores the newest checkpoint into model/optimizer/RNG; false when there is none.
absl::StatusOr<bool> RestoreCheckpoint(const std::filesystem::path& work_dir,
                                       model::BertImpl& model, torch::optim::AdamW& optimizer,
                                       TrainerState* state);

}  // namespace bertd::training

#endif  // BERTD_TRAINING_CHECKPOINTING_H_
