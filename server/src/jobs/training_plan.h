#ifndef BERTD_JOBS_TRAINING_PLAN_H_
#define BERTD_JOBS_TRAINING_PLAN_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "data/dataset.h"
#include "training/trainer.h"

namespace bertd::jobs {

// DatasetRecord::spec_json: format, has_header, text/text_pair/label as {"name": ...} or
// {"index": ...}, allowed_labels. max_bytes is not stored (it limits uploads, not stored files).
std::string DatasetSpecToJson(const data::DatasetSpec& spec);
absl::StatusOr<data::DatasetSpec> DatasetSpecFromJson(absl::string_view json_text);

// Splits `examples` into (train, eval): a seeded shuffle picks round(fraction * n) examples for
// eval, both parts keep file order. Same seed and data -> same split on every machine and run,
// so a resumed job trains on exactly the examples it started with.
void SplitForEval(std::vector<data::Example> examples, double fraction, uint64_t seed,
                  std::vector<data::Example>* train, std::vector<data::Example>* eval);

// The held-out share of a pretraining corpus when the job names neither eval_dataset nor
// eval_split.
inline constexpr double kDefaultPretrainingEvalSplit = 0.05;

// A stored dataset as a file and the spec it was uploaded with (DatasetRecord::spec_json).
struct DatasetFile {
  std::string path;  // empty: none
  std::string spec_json;
};

// Everything a training run needs once the server has resolved names to files: what the
// in-process runner executes, and what a data-parallel worker process reads from plan.json. No
// registry or job store behind it, so a worker needs only the files.
struct TrainingPlan {
  std::string job_id;
  std::string spec_json;       // training::TrainingJobSpec
  std::string base_model_dir;  // fine-tuning: the base; pretraining: a model to continue ("" = new)
  DatasetFile train;
  DatasetFile eval;            // path empty: spec.eval_split (or none)
  std::string work_dir;        // checkpoints; a new model's vocabulary in work_dir/vocab/
  std::string output_dir;      // the trained model (must not exist)
  int intra_op_threads = 0;

  std::string ToJson() const;
  static absl::StatusOr<TrainingPlan> FromJson(absl::string_view json_text);
};

// Parses the datasets (again: a stored file is the only truth) and trains: RunFineTuning or
// RunPretraining. With hooks.data_parallel set this is one rank of the job.
absl::Status ExecutePlan(const TrainingPlan& plan, const training::TrainerHooks& hooks);

}  // namespace bertd::jobs

#endif  // BERTD_JOBS_TRAINING_PLAN_H_
