#ifndef BERTD_JOBS_SCHEDULER_H_
#define BERTD_JOBS_SCHEDULER_H_

#include <atomic>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "jobs/device_pool.h"
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

// Runs one job on `worker` (the names of the slots it holds, comma-separated: "cpu:0",
// "cuda:0,cuda:1"; "external" for a job whose workers run elsewhere). Return OK for success,
// CANCELLED (or anything once context.cancelled()) to stop; an exception counts as a failure with
// its text.
using JobRunner =
    std::function<absl::Status(const JobRecord& job, const std::string& worker, JobContext& context)>;

// The slots a job holds while it runs (device_pool.h).
using DemandFunction = std::function<SlotDemand(const JobRecord& job)>;

// Runs QUEUED jobs on a pool of slots. A dispatcher takes the queue in priority order (then
// oldest first) and starts each job that fits the free slots on a thread of its own. Outcomes:
// OK -> SUCCEEDED; user cancel or a CANCELLED status -> CANCELLED; any other error or an
// exception -> FAILED. During Stop() an unfinished job is left RUNNING in the store (unless the
// runner returned OK), so the next Start() requeues it and it resumes from its checkpoint.
//
// No starvation: the first job in queue order that does not fit *reserves* the device types it
// can use, so no later job takes a slot of those types until it has started; it gets slots as
// they free. Jobs that need other types go on meanwhile. A job that cannot fit the pool even when
// every slot is free (the pool shrank across a restart) fails with the reason.
//
// Only one scheduler may run per store: Start() treats every RUNNING job as orphaned.
class JobScheduler {
 public:
  // `demand` defaults to one slot of any type per job.
  JobScheduler(JobStore* store, std::vector<Slot> slots, JobRunner runner,
               DemandFunction demand = {});
  // Slots by name ("cpu:0", "cuda:1"), for tests.
  JobScheduler(JobStore* store, const std::vector<std::string>& slot_names, JobRunner runner,
               DemandFunction demand = {});
  ~JobScheduler();  // Stop()s
  JobScheduler(const JobScheduler&) = delete;
  JobScheduler& operator=(const JobScheduler&) = delete;

  // Requeues jobs a previous process left RUNNING, then starts dispatching.
  absl::Status Start();
  // Asks running jobs to stop (shutting down, not cancelled) and joins every thread.
  void Stop();
  // Wakes the dispatcher: call after creating a job. (It also looks every kIdleRecheck.)
  void Notify();
  // Store cancel, and a running job here sees cancelled() at once instead of at the next poll.
  absl::StatusOr<JobRecord> Cancel(const std::string& job_id);

  const std::vector<Slot>& slots() const { return slots_; }
  // Job ids running now, by slot name ("" when free).
  std::map<std::string, std::string> Running() const;

  static constexpr absl::Duration kIdleRecheck = absl::Seconds(1);

 private:
  void DispatchLoop();
  // Starts every queued job that fits now; joins the threads of jobs that ended.
  void Dispatch();
  // Free slots for `demand` that no earlier waiting job reserved; empty when none fit.
  std::vector<size_t> Pick(const SlotDemand& demand, const std::set<DeviceType>& reserved) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RunJob(const JobRecord& job, const std::string& worker, std::vector<size_t> held);

  JobStore* const store_;
  const std::vector<Slot> slots_;
  const JobRunner runner_;
  const DemandFunction demand_;

  absl::Mutex lifecycle_mu_;  // serializes Start/Stop
  std::thread dispatcher_ ABSL_GUARDED_BY(lifecycle_mu_);

  mutable absl::Mutex mu_;
  absl::CondVar wake_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t generation_ ABSL_GUARDED_BY(mu_) = 0;  // bumped by Notify: no lost wake-ups
  std::map<std::string, JobContext*> running_ ABSL_GUARDED_BY(mu_);  // by job id
  std::vector<std::string> slot_jobs_ ABSL_GUARDED_BY(mu_);          // by slot, "" when free
  std::map<std::string, std::thread> job_threads_ ABSL_GUARDED_BY(mu_);  // by job id
  std::vector<std::string> ended_ ABSL_GUARDED_BY(mu_);  // job ids whose thread is done
  // What each queued job needs, worked out (its spec parsed) once rather than on every pass.
  // Used by the dispatcher thread only; entries leave with the job's last pass in the queue.
  std::map<std::string, SlotDemand> demands_;
};

}  // namespace bertd::jobs

#endif  // BERTD_JOBS_SCHEDULER_H_
