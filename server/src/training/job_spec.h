#ifndef BERTD_TRAINING_JOB_SPEC_H_
#define BERTD_TRAINING_JOB_SPEC_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "model/presets.h"

namespace bertd::training {

enum class TrainingTask {
  kSequenceClassification,      // one text -> label
  kSentencePairClassification,  // two texts -> label (MRPC, RTE)
  kNextSentence,                // two texts -> is-next (label 0) or not (label 1)
  kSpanExtraction,              // SQuAD-style extractive QA
  kPretraining,                 // raw text -> masked LM + next sentence (BertForPreTraining)
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
  // fp16 mixed precision with dynamic loss scaling (training/loss_scaler.h): CUDA only.
  bool fp16 = false;
};

// Where a new model's vocabulary comes from; used by pretraining and by "scratch" base models
// (a loaded base model always brings its own).
struct VocabularyOptions {
  // "": learn WordPiece from train_dataset; "model:NAME[@VERSION]": a loaded model's vocab.txt and
  // casing; "dataset:ID_OR_NAME": an uploaded text dataset holding a vocab.txt.
  std::string source;
  int vocab_size = 30522;
  int min_frequency = 2;
  int limit_alphabet = 1000;
  bool lowercase = true;
};

// NSP pairs and MLM masks (task pretraining).
struct PretrainingOptions {
  double masked_lm_prob = 0.15;
  int max_predictions_per_seq = 20;  // <= 0: no cap
  bool whole_word_masking = false;
  double short_seq_prob = 0.1;
  int dupe_factor = 1;
};

// Data-parallel training across processes (c10d: Gloo on CPU).
struct DistributedOptions {
  int world_size = 1;  // processes, each with its share of every batch; 1 = in the server
  // A rank that sends nothing (no heartbeat, or a collective that does not complete) for this
  // long fails the attempt; never a silent hang.
  int64_t timeout_seconds = 300;
  // What a failed attempt (a rank died or timed out) does: "never" fails the job, "on_failure"
  // restarts every rank from rank 0's last checkpoint, up to max_restarts times.
  std::string restart_policy = "never";
  int max_restarts = 3;
  // "local": the server starts the worker processes on its own host. "external": the server
  // writes the plan to the data directory and waits for world_size workers that something else
  // starts (a Kubernetes Indexed Job on shared storage); they report through files beside it.
  std::string launcher = "local";
};

// What the job runs on: "any" slot of the training pool, or only "cpu" or "cuda" ones.
struct ResourceOptions {
  std::string device = "any";
};

// A training job as submitted: what to train, on what, into which model name.
struct TrainingJobSpec {
  std::string name;
  TrainingTask task = TrainingTask::kSequenceClassification;
  std::string base_model;     // "name[@version]" in the repository, or "scratch[:PRESET]"
  std::string train_dataset;  // dataset id or name
  std::string eval_dataset;   // optional
  double eval_split = 0.0;    // fraction of train held out when no eval_dataset
  // (Sentence-pair) sequence classification: "single_label_classification",
  // "multi_label_classification" (labels as lists; a sigmoid and binary cross-entropy per label)
  // or "regression" (STS-B: one output, MSE, Pearson/Spearman). "": multi-label when some
  // training example has a list of labels, regression when every label is a number and some is
  // not an integer (as run_glue decides from a float label column), else single-label.
  std::string problem_type;
  std::string output_model;
  int priority = 0;
  TrainingArguments args;
  VocabularyOptions vocabulary;
  model::ModelSize model_size;  // scratch base models only
  PretrainingOptions pretraining;
  DistributedOptions distributed;
  ResourceOptions resources;

  // True for base_model "scratch" / "scratch:PRESET" (random initialization).
  bool scratch() const { return model::ParseScratchBaseModel(base_model).has_value(); }

  // Parses the JSON form (hyperparameters under "hyperparameters" with HF names). Errors name the
  // field: "hyperparameters.learning_rate: must be > 0, got -1".
  static absl::StatusOr<TrainingJobSpec> FromJson(absl::string_view json_text);
  std::string ToJson() const;
  absl::Status Validate() const;

 private:
  // base_model scratch, model_size, vocabulary and pretraining settings.
  absl::Status ValidateNewModelOptions() const;
};

}  // namespace bertd::training

#endif  // BERTD_TRAINING_JOB_SPEC_H_
