#ifndef BERTD_TRAINING_TRAIN_LOOP_H_
#define BERTD_TRAINING_TRAIN_LOOP_H_

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "model/bert.h"
#include "training/checkpointing.h"
#include "training/job_spec.h"
#include "training/trainer.h"

// The optimization loop fine-tuning and pretraining share: epochs of seeded shuffles, micro-batches
// split over data-parallel ranks, gradient accumulation, clipping, AdamW with a schedule,
// progress/eval/checkpoint events, early stopping, cancellation and exact resume.
namespace bertd::training {

// splitmix64 of a few integers: an independent, well-mixed seed per (seed, a, b).
uint64_t MixSeed(uint64_t seed, uint64_t a, uint64_t b);

// This rank's share of an evaluation set of `n` items under `data_parallel` (null: all of them):
// the items i with i % world_size == rank.
std::vector<int64_t> EvaluationShard(int64_t n, const DataParallel* data_parallel);

// What a task plugs into the loop.
struct LoopTask {
  // Training samples (features, sentence pairs); the loop shuffles their indices.
  int64_t num_samples = 0;
  // The mean loss over `indices` (never empty; `epoch` for per-epoch choices such as MLM masks),
  // differentiable; and the values named by `part_names`, averaged the same way, for progress.
  struct Loss {
    at::Tensor loss;
    std::vector<double> parts;
  };
  std::function<Loss(const std::vector<int64_t>& indices, int64_t epoch)> micro_batch_loss;
  std::vector<std::string> part_names;
  // Metrics on the held-out data, called on every rank at the same steps (so it may use the
  // data-parallel collectives to reduce shards); null when there is no evaluation data.
  std::function<absl::StatusOr<std::map<std::string, double>>()> evaluate;
  std::string best_metric;
  bool lower_is_better = false;
};

struct LoopResult {
  TrainerState state;
  // The final evaluation of the model as it ends (the best one with load_best_model_at_end);
  // empty without evaluation.
  std::map<std::string, double> eval_metrics;
};

// Trains `model` (already initialized) with `args`. Checkpoints go to `work_dir`; when it holds
// one, the run resumes from it. With hooks.data_parallel every rank runs this with the same
// arguments: rank 0's weights are broadcast, each global micro-batch of
// per_device_train_batch_size x world_size samples is split by rank, gradients are summed so that
// every rank takes the step one process would take on the whole micro-batch, and only rank 0
// writes checkpoints and emits events.
absl::StatusOr<LoopResult> RunTrainingLoop(const TrainingArguments& args, model::BertImpl& model,
                                           const std::filesystem::path& work_dir,
                                           const LoopTask& task, const TrainerHooks& hooks);

}  // namespace bertd::training

#endif  // BERTD_TRAINING_TRAIN_LOOP_H_
