#ifndef BERTD_TRAINING_TRAINER_H_
#define BERTD_TRAINING_TRAINER_H_

#include <c10/core/Device.h>

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "data/dataset.h"
#include "training/job_spec.h"

namespace bertd::training {

class DataParallel;

struct TrainingData {
  std::vector<data::Example> train;
  std::vector<data::Example> eval;  // may be empty (no evaluation)
  // Classification labels in id order; empty = take them from the base model's config when it has
  // a classifier, else from the training set (sorted).
  std::vector<std::string> labels;
};

struct TrainerHooks {
  // Polled between optimizer steps; true stops the run (the last checkpoint is kept) and
  // RunFineTuning returns CANCELLED.
  std::function<bool()> should_stop;
  // Progress to the job's event stream: type is "progress", "eval", "checkpoint" or "log";
  // payload is a JSON object.
  std::function<void(const std::string& type, const std::string& payload_json)> emit;
  int intra_op_threads = 0;  // 0: leave LibTorch's setting alone
  // After every optimizer step, on every rank: the step number and this rank's samples in it.
  std::function<void(int64_t step, int64_t samples)> on_step;
  // Set on every rank of a data-parallel job (see RunTrainingLoop); null for one process.
  DataParallel* data_parallel = nullptr;
  // Where the model, its optimizer state and every batch live: the job's slot (a CUDA slot's
  // device is cuda:0 inside its worker, which sees only that GPU). Checkpoints are written from
  // the CPU and read onto this device, so a job may resume on another device type.
  c10::Device device = c10::Device(c10::DeviceType::CPU);
};

struct TrainingResult {
  std::map<std::string, double> eval_metrics;  // final evaluation (empty without eval data)
  int64_t global_step = 0;
  double train_loss = 0;  // mean loss over the run
};

// Fine-tunes `base_model_dir` for spec.task and saves the result as a complete Hugging Face model
// directory at `output_dir` (which must not exist), with training_summary.json. Checkpoints
// (model, optimizer, schedule position, RNG, data position) go to `work_dir` every save_steps and
// are written atomically; when `work_dir` holds one, training resumes from it and finishes with
// the same weights as an uninterrupted run.
absl::StatusOr<TrainingResult> RunFineTuning(const TrainingJobSpec& spec,
                                             const std::string& base_model_dir,
                                             const TrainingData& data, const std::string& work_dir,
                                             const std::string& output_dir,
                                             const TrainerHooks& hooks);

}  // namespace bertd::training

#endif  // BERTD_TRAINING_TRAINER_H_
