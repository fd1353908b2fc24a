#ifndef BERTD_TRAINING_JOB_SPEC_H_
#define BERTD_TRAINING_JOB_SPEC_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace bertd::training {

enum class TrainingTask {
  kSequenceClassification,      // one text -> label
  kSentencePairClassification,  // two texts -> label (MRPC, RTE)
  kNextSentence,                // two texts -> is-next (label 0) or not (label 1)
  kSpanExtraction,              // SQuAD-style extractive QA
};

const char* TrainingTaskName(TrainingTask task);
absl::StatusOr<TrainingTask> ParseTrainingTask(absl::string_view name);

// Hyperparameters with Hugging Face TrainingArguments' names and defaults.
struct TrainingArguments {
  double learning_rate = 5e-5;
  double num_train_epochs = 3;
  int64_t max_steps = -1;  // > 0 overrides num_train_epochs
  int per_device_train_batch_size = 8;
  int per_device_eval_batch_size = 8;
  int gradient_accumulation_steps = 1;
  double weight_decay = 0.0;
  double adam_beta1 = 0.9;
  double adam_beta2 = 0.999;
  double adam_epsilon = 1e-8;
  double max_grad_norm = 1.0;
  std::string lr_scheduler_type = "linear";
  int64_t warmup_steps = 0;
  double warmup_ratio = 0.0;
  int64_t seed = 42;
  int max_seq_length = 128;
  int doc_stride = 128;
  std::string eval_strategy = "no";  // no, steps, epoch
  int64_t eval_steps = 500;
  int64_t save_steps = 500;
  int save_total_limit = 0;  // 0 = keep all
  bool load_best_model_at_end = false;
  std::string metric_for_best_model;  // default: the task's main metric
  int early_stopping_patience = 0;    // 0 = off; counted in evaluations
  bool bf16 = false;
};

// A training job as submitted: what to train, on what, into which model name.
struct TrainingJobSpec {
  std::string name;
  TrainingTask task = TrainingTask::kSequenceClassification;
  std::string base_model;     // "name[@version]" in the repository
  std::string train_dataset;  // dataset id or name
  std::string eval_dataset;   // optional
  double eval_split = 0.0;    // fraction of train held out when no eval_dataset
  std::string output_model;
  int priority = 0;
  TrainingArguments args;

  // Parses the JSON form (hyperparameters under "hyperparameters" with HF names). Errors name the
  // field: "hyperparameters.learning_rate: must be > 0, got -1".
  static absl::StatusOr<TrainingJobSpec> FromJson(absl::string_view json_text);
  std::string ToJson() const;
  absl::Status Validate() const;
};

}  // namespace bertd::training

#endif  // BERTD_TRAINING_JOB_SPEC_H_
