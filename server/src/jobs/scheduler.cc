#include "jobs/scheduler.h"

#include <cstdio>
#include <exception>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace bertd::jobs {

// --- JobContext -------------------------------------------------------------------------------

JobContext::JobContext(JobStore* store, JobRecord job, std::string worker)
    : store_(store), job_(std::move(job)), worker_(std::move(worker)) {}

bool JobContext::cancelled() {
  if (shutting_down_.load() || cancel_requested_.load()) return true;
  {
    // A cancel issued straight on the store (another process, or without the scheduler) is only
    // visible there; poll it, but not on every training step.
    absl::MutexLock lock(&mu_);
    absl::Time now = absl::Now();
    if (now - last_poll_ < kCancelPollInterval) return false;
    last_poll_ = now;
  }
  absl::StatusOr<bool> requested = store_->IsCancelRequested(job_.id);
  if (requested.ok() && *requested) RequestCancel();
  return cancel_requested_.load();
}

std::string JobContext::cancel_reason() {
  if (cancel_requested_.load()) return "cancelled by request";
  if (shutting_down_.load()) return "shutting down";
  return cancelled() ? "cancelled by request" : "";
}

bool JobContext::WaitForCancel(absl::Time deadline) {
  for (;;) {
    if (cancelled()) return true;
    absl::Time now = absl::Now();
    if (now >= deadline) return false;
    absl::MutexLock lock(&mu_);
    if (shutting_down_.load() || cancel_requested_.load()) continue;
    cv_.WaitWithDeadline(&mu_, std::min(deadline, now + kCancelPollInterval));
  }
}

absl::Status JobContext::Emit(const std::string& type, const std::string& payload_json) {
  if (type == "state") {
    return absl::InvalidArgumentError("runners cannot emit state events; return a status");
  }
  return store_->AppendEvent(job_.id, type, payload_json).status();
}

void JobContext::set_result_model(std::string model) {
  absl::MutexLock lock(&mu_);
  result_model_ = std::move(model);
}

std::string JobContext::result_model() const {
  absl::MutexLock lock(&mu_);
  return result_model_;
}

void JobContext::RequestCancel() {
  absl::MutexLock lock(&mu_);
  cancel_requested_.store(true);
  cv_.SignalAll();
}

void JobContext::RequestShutdown() {
  absl::MutexLock lock(&mu_);
  shutting_down_.store(true);
  cv_.SignalAll();
}

// --- JobScheduler -----------------------------------------------------------------------------

JobScheduler::JobScheduler(JobStore* store, std::vector<std::string> worker_names,
                           JobRunner runner)
    : store_(store), worker_names_(std::move(worker_names)), runner_(std::move(runner)) {}

JobScheduler::~JobScheduler() { Stop(); }

absl::Status JobScheduler::Start() {
  absl::MutexLock lifecycle(&lifecycle_mu_);
  if (!threads_.empty()) return absl::FailedPreconditionError("job scheduler already started");
  if (worker_names_.empty()) return absl::InvalidArgumentError("job scheduler has no workers");
  // Whatever is RUNNING was interrupted (crash, kill -9 or Stop()): queue it again.
  absl::StatusOr<std::vector<std::string>> requeued = store_->RequeueRunning();
  if (!requeued.ok()) return requeued.status();
  for (const std::string& id : *requeued) {
    std::fprintf(stderr, "bertd scheduler: job %s was interrupted; queued again to resume\n",
                 id.c_str());
  }
  {
    absl::MutexLock lock(&mu_);
    stopping_ = false;
  }
  for (const std::string& worker : worker_names_) {
    threads_.emplace_back([this, worker] { WorkerLoop(worker); });
  }
  return absl::OkStatus();
}

void JobScheduler::Stop() {
  absl::MutexLock lifecycle(&lifecycle_mu_);
  if (threads_.empty()) return;
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    for (auto& [id, context] : running_) context->RequestShutdown();
    wake_.SignalAll();
  }
  for (std::thread& thread : threads_) thread.join();
  threads_.clear();
}

void JobScheduler::Notify() {
  absl::MutexLock lock(&mu_);
  ++generation_;
  wake_.SignalAll();
}

absl::StatusOr<JobRecord> JobScheduler::Cancel(const std::string& job_id) {
  absl::StatusOr<JobRecord> job = store_->RequestCancel(job_id);
  if (job.ok()) {
    absl::MutexLock lock(&mu_);
    auto it = running_.find(job_id);
    if (it != running_.end()) it->second->RequestCancel();
  }
  return job;
}

std::map<std::string, std::string> JobScheduler::Running() const {
  absl::MutexLock lock(&mu_);
  std::map<std::string, std::string> result;
  for (const std::string& worker : worker_names_) {
    auto it = worker_jobs_.find(worker);
    result[worker] = it == worker_jobs_.end() ? "" : it->second;
  }
  return result;
}

void JobScheduler::WorkerLoop(const std::string& worker) {
  for (;;) {
    uint64_t seen;
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return;
      seen = generation_;
    }
    absl::StatusOr<std::optional<JobRecord>> claimed = store_->ClaimNext(worker);
    if (claimed.ok() && claimed->has_value()) {
      RunJob(**claimed, worker);
      continue;
    }
    if (!claimed.ok()) {
      std::fprintf(stderr, "bertd scheduler %s: cannot claim a job: %s\n", worker.c_str(),
                   claimed.status().ToString().c_str());
    }
    // Queue empty (or the store failing: retry later). A Notify() since `seen` means a job may
    // have been submitted after our claim looked, so look again at once.
    absl::MutexLock lock(&mu_);
    absl::Time deadline = absl::Now() + kIdleRecheck;
    while (!stopping_ && generation_ == seen) {
      if (wake_.WaitWithDeadline(&mu_, deadline)) break;
    }
  }
}

void JobScheduler::RunJob(const JobRecord& job, const std::string& worker) {
  JobContext context(store_, job, worker);
  {
    absl::MutexLock lock(&mu_);
    running_[job.id] = &context;
    worker_jobs_[worker] = job.id;
    if (stopping_) context.RequestShutdown();  // claimed just as Stop() began
  }

  absl::Status status;
  try {
    status = runner_(job, worker, context);
  } catch (const std::exception& e) {
    status = absl::InternalError(absl::StrCat("runner threw: ", e.what()));
  } catch (...) {
    status = absl::InternalError("runner threw a non-standard exception");
  }

  {
    absl::MutexLock lock(&mu_);
    running_.erase(job.id);
    worker_jobs_.erase(worker);
  }

  // The flag in the store counts too: the cancel may have come after the runner's last poll.
  bool user_cancel = context.cancel_requested() || store_->IsCancelRequested(job.id).value_or(false);
  JobState state;
  std::string error;
  if (user_cancel) {
    state = JobState::kCancelled;
    error = status.ok() ? "cancelled by request" : std::string(status.message());
  } else if (status.ok()) {
    state = JobState::kSucceeded;
  } else if (context.shutting_down()) {
    return;  // stays RUNNING; the next Start() requeues it and it resumes from its checkpoint
  } else if (absl::IsCancelled(status)) {
    state = JobState::kCancelled;
    error = std::string(status.message());
  } else {
    state = JobState::kFailed;
    error = std::string(status.message());
  }
  absl::Status finished = store_->Finish(
      job.id, state, error, state == JobState::kSucceeded ? context.result_model() : "");
  // FAILED_PRECONDITION means someone else finished the job meanwhile; theirs stands. Otherwise
  // the job stays RUNNING in the store and the next start runs it again.
  if (!finished.ok() && !absl::IsFailedPrecondition(finished)) {
    std::fprintf(stderr, "bertd scheduler %s: cannot record %s for job %s: %s\n", worker.c_str(),
                 JobStateName(state), job.id.c_str(), finished.ToString().c_str());
  }
}

}  // namespace bertd::jobs
