#ifndef BERTD_JOBS_SCHEDULER_H_
#define BERTD_JOBS_SCHEDULER_H_

#include <atomic>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "jobs/job_store.h"

namespace bertd::jobs {

// What a running job sees of the scheduler. Thread-safe.
class JobContext {
 public:
  JobContext(JobStore* store, JobRecord job, std::string worker);

  const JobRecord& job() const { return job_; }
  const std::string& worker() const { return worker_; }
  JobStore& store() const { return *store_; }

  // True once the job should stop: a user cancel (the job ends CANCELLED) or a server shutdown
  // (the job stays RUNNING and resumes on the next start). Cheap enough for every training
  // step: the store is consulted at most every kCancelPollInterval.
  bool cancelled();
  bool shutting_down() const { return shutting_down_.load(); }
  // "cancelled by request", "shutting down", or "" while not cancelled.
  std::string cancel_reason();
  // Sleeps until cancelled() or `deadline`; returns cancelled().
  bool WaitForCancel(absl::Time deadline);

  // Appends a "progress", "eval", "checkpoint" or "log" event ("state" is the scheduler's).
  absl::Status Emit(const std::string& type, const std::string& payload_json);

  // Recorded on the job when the runner returns OK.
  void set_result_model(std::string model);
  std::string result_model() const;

  static constexpr absl::Duration kCancelPollInterval = absl::Milliseconds(200);

 private:
  friend class JobScheduler;
  void RequestCancel();
  void RequestShutdown();
  bool cancel_requested() const { return cancel_requested_.load(); }

  JobStore* const store_;
  const JobRecord job_;
  const std::string worker_;
  std::atomic<bool> cancel_requested_{false};
  std::atomic<bool> shutting_down_{false};

  mutable absl::Mutex mu_;
  absl::CondVar cv_;
  absl::Time last_poll_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  std::string result_model_ ABSL_GUARDED_BY(mu_);
};

// Runs one job on `worker`. Return OK for success, CANCELLED (or anything once
// context.cancelled()) to stop; an exception counts as a failure with its text.
using JobRunner =
    std::function<absl::Status(const JobRecord& job, const std::string& worker, JobContext& context)>;

// One thread per worker claims QUEUED jobs in priority order and runs them. Outcomes:
// OK -> SUCCEEDED; user cancel or a CANCELLED status -> CANCELLED; any other error or an
// exception -> FAILED. During Stop() an unfinished job is left RUNNING in the store (unless
// the runner returned OK), so the next Start() requeues it and it resumes from its checkpoint.
//
// Only one scheduler may run per store: Start() treats every RUNNING job as orphaned.
class JobScheduler {
 public:
  JobScheduler(JobStore* store, std::vector<std::string> worker_names, JobRunner runner);
  ~JobScheduler();  // Stop()s
  JobScheduler(const JobScheduler&) = delete;
  JobScheduler& operator=(const JobScheduler&) = delete;

  // Requeues jobs a previous process left RUNNING, then starts the workers.
  absl::Status Start();
  // Asks running jobs to stop (shutting down, not cancelled) and joins the workers.
  void Stop();
  // Wakes idle workers: call after creating a job. (They also look every kIdleRecheck.)
  void Notify();
  // Store cancel, and a running job here sees cancelled() at once instead of at the next poll.
  absl::StatusOr<JobRecord> Cancel(const std::string& job_id);

  // Job ids running now, by worker name ("" when idle).
  std::map<std::string, std::string> Running() const;

  static constexpr absl::Duration kIdleRecheck = absl::Seconds(1);

 private:
  void WorkerLoop(const std::string& worker);
  void RunJob(const JobRecord& job, const std::string& worker);

  JobStore* const store_;
  const std::vector<std::string> worker_names_;
  const JobRunner runner_;

  absl::Mutex lifecycle_mu_;  // serializes Start/Stop
  std::vector<std::thread> threads_ ABSL_GUARDED_BY(lifecycle_mu_);

  mutable absl::Mutex mu_;
  absl::CondVar wake_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t generation_ ABSL_GUARDED_BY(mu_) = 0;  // bumped by Notify: no lost wake-ups
  std::map<std::string, JobContext*> running_ ABSL_GUARDED_BY(mu_);  // by job id
  std::map<std::string, std::string> worker_jobs_ ABSL_GUARDED_BY(mu_);
};

}  // namespace bertd::jobs

#endif  // BERTD_JOBS_SCHEDULER_H_
