#ifndef BERTD_JOBS_TRAINING_RUNNER_H_
#define BERTD_JOBS_TRAINING_RUNNER_H_

#include <optional>
#include <set>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "data/dataset.h"
#include "jobs/job_store.h"
#include "jobs/scheduler.h"
#include "jobs/device_pool.h"
#include "jobs/distributed.h"
#include "jobs/training_plan.h"
#include "registry/model_registry.h"
#include "training/job_spec.h"
#include "training/pretrainer.h"
#include "training/trainer.h"

namespace bertd::jobs {

// --- Stored datasets ----------------------------------------------------------------------------
// Shared by the dataset upload (which stores them) and the runner (which parses the file again).

// Where a dataset's file is: records hold paths relative to the data directory, so the
// directory can move.
std::string DatasetFilePath(const std::string& data_dir, const DatasetRecord& record);

// INVALID_ARGUMENT naming `field` when the dataset's columns cannot feed `task`: classification
// needs text and label, pair tasks also text_pair, span_extraction needs squad_json, pretraining
// a text dataset (and only pretraining takes one).
absl::Status CheckDatasetFitsTask(const data::DatasetSpec& spec, training::TrainingTask task,
                                  absl::string_view field);

// 1 + the highest integer version directory under `model_dir`; 1 when there is none.
int64_t NextModelVersion(const std::string& model_dir);

// --- The pool -----------------------------------------------------------------------------------

// The slots a job holds: resources.device's type, one per rank with the local launcher, none
// with the external one (its workers run elsewhere; only their supervision runs here).
SlotDemand DemandOf(const training::TrainingJobSpec& spec);
// DemandOf a stored job (a DemandFunction); one slot of any type if its spec does not parse.
SlotDemand DemandOfJob(const JobRecord& job);

// --- Runner -------------------------------------------------------------------------------------

struct TrainingRunnerOptions {
  JobStore* store = nullptr;
  registry::ModelRegistry* registry = nullptr;
  std::string data_dir;       // jobs' work directories go under <data_dir>/jobs/<id>/
  // The binary every job runs in, once per rank (bertd itself, in worker mode).
  std::string worker_executable;
  // CPU slot i of the pool runs its worker on cpu_slot_cpus[i] (empty or missing: any CPU), with
  // threads_per_slot intra-op threads (CUDA slots too).
  std::vector<std::vector<int>> cpu_slot_cpus;
  int threads_per_slot = 1;
  int64_t memory_limit_bytes = 0;  // --training_memory_limit of CPU workers; 0: none
  // External launcher: the CPUs its ranks may use each (intra-op threads).
  int external_threads_per_rank = 1;
  std::string external_launch_command;  // see LaunchOptions::launch_command
};

// Turns a stored job into a TrainingPlan and serves the result: the plan runs in worker processes
// (RunDataParallel), one per rank, each pinned to a slot the job holds (the scheduler's `worker`
// names them), so that a crash or an out-of-memory kill ends the job and not the server; the
// model is written to
// <repository>/<output_model>/<next version>/ and loaded into the registry. A CANCELLED status
// during a shutdown leaves the work directory (with its checkpoints) for the resumed run.
class TrainingRunner {
 public:
  explicit TrainingRunner(TrainingRunnerOptions options);

  // A jobs::JobRunner.
  absl::Status Run(const JobRecord& job, const std::string& worker, JobContext& context);
  JobRunner AsJobRunner();

 private:
  // The vocabulary named by spec.vocabulary.source ("model:..." or "dataset:..."); nullopt when
  // the source is empty (the caller learns one).
  absl::StatusOr<std::optional<text::BertTokenizer>> ResolveVocabulary(
      const training::TrainingJobSpec& spec);
  // base_model scratch for fine-tuning: a random BertForPreTraining model directory in the work
  // directory (made once, so a resumed job starts from the same weights); returns its path.
  absl::StatusOr<std::string> PrepareScratchBase(const training::TrainingJobSpec& spec,
                                                 const DatasetFile& train,
                                                 const std::string& work_dir, JobContext& context);
  // Pretraining from scratch with spec.vocabulary.source: that vocabulary in work_dir/vocab/,
  // where RunPretraining (in this process or a worker) finds it.
  absl::Status PrepareNamedVocabulary(const training::TrainingJobSpec& spec,
                                      const std::string& work_dir);
  absl::StatusOr<DatasetFile> StoredDataset(const std::string& id_or_name);
  // Where each rank runs, from the slot names in `worker` ("cpu:0,cpu:1").
  std::vector<RankPlacement> Place(const std::string& worker) const;
  // Picks and reserves the output version so that two jobs writing the same model at once
  // cannot pick the same directory.
  std::string ReserveVersion(const std::string& model);
  void ReleaseVersion(const std::string& model, const std::string& version);

  const TrainingRunnerOptions options_;
  absl::Mutex mu_;
  std::set<std::pair<std::string, std::string>> reserved_ ABSL_GUARDED_BY(mu_);
};

}  // namespace bertd::jobs

#endif  // BERTD_JOBS_TRAINING_RUNNER_H_
