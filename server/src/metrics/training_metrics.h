#ifndef BERTD_METRICS_TRAINING_METRICS_H_
#define BERTD_METRICS_TRAINING_METRICS_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "prometheus/collectable.h"
#include "prometheus/histogram.h"
#include "prometheus/metric_family.h"

namespace bertd::metrics {

// Training-job metrics (docs/metrics.md, "Training"), fed from the job event stream: the state
// events the job store commits and the progress/eval/checkpoint events the trainer emits.
// Knows nothing of jobs/: callers pass the event's fields, so metrics stays below jobs.
//
// Series are bounded: per-job series (label `job_id`) exist while the job runs and for
// `retention` after it stops running, so that a short job is still scraped at least once and a
// dashboard shows its last values; then they are dropped. Counts by state and counters have no
// per-job label. A collectable of its own (not registry families) so that expiry happens at
// scrape time without a timer thread. Thread-safe.
class TrainingMetrics : public prometheus::Collectable {
 public:
  struct Options {
    absl::Duration retention = absl::Minutes(5);
    std::function<absl::Time()> now = [] { return absl::Now(); };
  };

  TrainingMetrics();
  explicit TrainingMetrics(Options options);

  // Startup: a job the store already holds, with its stored state ("QUEUED", ..., the names of
  // jobs::JobStateName). Call for every job before events flow.
  void SeedJob(absl::string_view job_id, absl::string_view state);
  // Slots of the training pool (--training_devices): jobs this server runs at once.
  void SetWorkers(int count);
  // Where bertd_training_slots{device_type} and bertd_training_slots_busy come from: every slot's
  // device type ("cpu", "cuda") and whether a job holds it. Called at each scrape.
  using SlotSource = std::function<std::vector<std::pair<std::string, bool>>()>;
  void SetSlots(SlotSource source);

  // One committed job event: jobs::JobEvent's job_id, type and payload_json. Unknown types and
  // malformed payloads are ignored (metrics never fail a job).
  void OnJobEvent(absl::string_view job_id, absl::string_view type,
                  absl::string_view payload_json);

  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  struct JobSeries {
    std::string worker;
    bool running = false;
    absl::Time stopped_at = absl::InfinitePast();  // when it last left RUNNING
    bool has_progress = false;
    double loss = 0, learning_rate = 0, samples_per_second = 0, step = 0, total_steps = 0,
           epoch = 0, eta_seconds = 0;
    std::map<std::string, double> eval_metrics;
    double last_checkpoint_unix = 0;  // 0: none yet
    // Data-parallel jobs (world_size > 1 in their progress events).
    double world_size = 0, allreduce_seconds_per_step = 0;
    double memory_bytes = 0;  // resident memory of its worker processes (0: not reported)
    std::vector<double> rank_samples_per_second;
  };

  void OnState(const std::string& job_id, const std::string& state, const std::string& worker)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Prune() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Options options_;

  mutable absl::Mutex mu_;
  int workers_ ABSL_GUARDED_BY(mu_) = 0;
  SlotSource slots_ ABSL_GUARDED_BY(mu_);
  // Jobs by state; unfinished jobs also in `unfinished_` so a transition knows what it leaves.
  std::map<std::string, int64_t> jobs_by_state_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::string> unfinished_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, double> finished_total_ ABSL_GUARDED_BY(mu_);
  double checkpoints_total_ ABSL_GUARDED_BY(mu_) = 0;
  std::unique_ptr<prometheus::Histogram> checkpoint_duration_ ABSL_GUARDED_BY(mu_);
  // Pruned from Collect() (const), hence mutable.
  mutable std::map<std::string, JobSeries> jobs_ ABSL_GUARDED_BY(mu_);
};

}  // namespace bertd::metrics

#endif  // BERTD_METRICS_TRAINING_METRICS_H_
