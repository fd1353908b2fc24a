#include "jobs/scheduler.h"

#include <algorithm>
#include <cstdio>
#include <exception>
#include <utility>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
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

namespace {

std::vector<Slot> SlotsFromNames(const std::vector<std::string>& names) {
  std::vector<Slot> slots;
  for (const std::string& name : names) slots.push_back(SlotFromName(name));
  return slots;
}

}  // namespace

JobScheduler::JobScheduler(JobStore* store, std::vector<Slot> slots, JobRunner runner,
                           DemandFunction demand)
    : store_(store),
      slots_(std::move(slots)),
      runner_(std::move(runner)),
      demand_(std::move(demand)),
      slot_jobs_(slots_.size()) {}

JobScheduler::JobScheduler(JobStore* store, const std::vector<std::string>& slot_names,
                           JobRunner runner, DemandFunction demand)
    : JobScheduler(store, SlotsFromNames(slot_names), std::move(runner), std::move(demand)) {}

JobScheduler::~JobScheduler() { Stop(); }

absl::Status JobScheduler::Start() {
  absl::MutexLock lifecycle(&lifecycle_mu_);
  if (dispatcher_.joinable()) return absl::FailedPreconditionError("job scheduler already started");
  if (slots_.empty()) return absl::InvalidArgumentError("job scheduler has no slots");
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
  dispatcher_ = std::thread([this] { DispatchLoop(); });
  return absl::OkStatus();
}

void JobScheduler::Stop() {
  absl::MutexLock lifecycle(&lifecycle_mu_);
  if (!dispatcher_.joinable()) return;
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    for (auto& [id, context] : running_) context->RequestShutdown();
    wake_.SignalAll();
  }
  dispatcher_.join();  // starts nothing more
  std::map<std::string, std::thread> threads;
  {
    absl::MutexLock lock(&mu_);
    threads.swap(job_threads_);
    ended_.clear();
  }
  for (auto& [id, thread] : threads) thread.join();
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
  for (size_t i = 0; i < slots_.size(); ++i) result[slots_[i].name] = slot_jobs_[i];
  return result;
}

void JobScheduler::DispatchLoop() {
  for (;;) {
    uint64_t seen;
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return;
      seen = generation_;
    }
    Dispatch();
    // A Notify() since `seen` (a job submitted or ended) means look again at once.
    absl::MutexLock lock(&mu_);
    absl::Time deadline = absl::Now() + kIdleRecheck;
    while (!stopping_ && generation_ == seen) {
      if (wake_.WaitWithDeadline(&mu_, deadline)) break;
    }
  }
}

std::vector<size_t> JobScheduler::Pick(const SlotDemand& demand,
                                       const std::set<DeviceType>& reserved) const {
  // "any": the types in pool order (auto lists CUDA devices first).
  std::vector<DeviceType> types;
  for (const Slot& slot : slots_) {
    if (demand.type.has_value() && slot.type != *demand.type) continue;
    if (std::find(types.begin(), types.end(), slot.type) == types.end()) types.push_back(slot.type);
  }
  for (DeviceType type : types) {
    if (reserved.count(type) > 0) continue;
    std::vector<size_t> picked;
    for (size_t i = 0; i < slots_.size() && static_cast<int>(picked.size()) < demand.count; ++i) {
      if (slots_[i].type == type && slot_jobs_[i].empty()) picked.push_back(i);
    }
    if (static_cast<int>(picked.size()) == demand.count) return picked;
  }
  return {};
}

void JobScheduler::Dispatch() {
  {
    // Threads of jobs that ended: join them, so a long-lived server does not collect them.
    std::vector<std::thread> done;
    {
      absl::MutexLock lock(&mu_);
      for (const std::string& id : ended_) {
        auto it = job_threads_.find(id);
        if (it == job_threads_.end()) continue;
        done.push_back(std::move(it->second));
        job_threads_.erase(it);
      }
      ended_.clear();
    }
    for (std::thread& thread : done) thread.join();
  }
  absl::StatusOr<std::vector<JobRecord>> queue = store_->Queue();
  if (!queue.ok()) {
    std::fprintf(stderr, "bertd scheduler: cannot read the queue: %s\n",
                 queue.status().ToString().c_str());
    return;
  }
  std::set<DeviceType> reserved;  // held back for an earlier job that does not fit yet
  std::map<std::string, SlotDemand> demands;
  // Whatever happens below, the next pass knows the demands of the jobs still queued.
  absl::Cleanup keep = [&] { demands_ = std::move(demands); };
  for (const JobRecord& job : *queue) {
    auto known = demands_.find(job.id);
    const SlotDemand demand =
        known != demands_.end() ? known->second : (demand_ ? demand_(job) : SlotDemand{});
    demands[job.id] = demand;
    if (absl::Status fits = CheckDemandFits(demand, slots_); !fits.ok()) {
      store_->Finish(job.id, JobState::kFailed,
                     absl::StrCat(fits.message(), " (the pool is smaller than when it was submitted)"), "")
          .IgnoreError();
      continue;
    }
    std::vector<size_t> held;
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return;
      held = Pick(demand, reserved);
    }
    if (held.empty() && demand.count > 0) {
      // Only the types that could ever hold it: an "any" job of two ranks on a pool with one GPU
      // and two CPU slots waits for the CPU slots and leaves the GPU to others.
      for (const Slot& slot : slots_) {
        if ((!demand.type.has_value() || slot.type == *demand.type) &&
            CountSlots(slots_, slot.type) >= demand.count) {
          reserved.insert(slot.type);
        }
      }
      continue;
    }
    std::vector<std::string> names;
    for (size_t i : held) names.push_back(slots_[i].name);
    const std::string worker = names.empty() ? "external" : absl::StrJoin(names, ",");
    absl::StatusOr<std::optional<JobRecord>> claimed = store_->Claim(job.id, worker);
    if (!claimed.ok()) {
      std::fprintf(stderr, "bertd scheduler: cannot claim job %s: %s\n", job.id.c_str(),
                   claimed.status().ToString().c_str());
      continue;
    }
    if (!claimed->has_value()) continue;  // cancelled meanwhile
    absl::MutexLock lock(&mu_);
    for (size_t i : held) slot_jobs_[i] = job.id;
    job_threads_[job.id] = std::thread(
        [this, record = **claimed, worker, held] { RunJob(record, worker, held); });
  }
}

void JobScheduler::RunJob(const JobRecord& job, const std::string& worker, std::vector<size_t> held) {
  JobContext context(store_, job, worker);
  {
    absl::MutexLock lock(&mu_);
    running_[job.id] = &context;
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

  // The flag in the store counts too: the cancel may have come after the runner's last poll.
  bool user_cancel = context.cancel_requested() || store_->IsCancelRequested(job.id).value_or(false);
  std::optional<JobState> state;
  std::string error;
  if (user_cancel) {
    state = JobState::kCancelled;
    error = status.ok() ? "cancelled by request" : std::string(status.message());
  } else if (status.ok()) {
    state = JobState::kSucceeded;
  } else if (context.shutting_down()) {
    // Stays RUNNING; the next Start() requeues it and it resumes from its checkpoint.
  } else if (absl::IsCancelled(status)) {
    state = JobState::kCancelled;
    error = std::string(status.message());
  } else {
    state = JobState::kFailed;
    error = std::string(status.message());
  }
  if (state.has_value()) {
    absl::Status finished = store_->Finish(
        job.id, *state, error, *state == JobState::kSucceeded ? context.result_model() : "");
    // FAILED_PRECONDITION means someone else finished the job meanwhile; theirs stands.
    // Otherwise the job stays RUNNING in the store and the next start runs it again.
    if (!finished.ok() && !absl::IsFailedPrecondition(finished)) {
      std::fprintf(stderr, "bertd scheduler %s: cannot record %s for job %s: %s\n", worker.c_str(),
                   JobStateName(*state), job.id.c_str(), finished.ToString().c_str());
    }
  }
  // The slots free only once the outcome is recorded: whoever sees them free sees it too.
  absl::MutexLock lock(&mu_);
  running_.erase(job.id);
  for (size_t i : held) slot_jobs_[i].clear();
  ended_.push_back(job.id);
  ++generation_;
  wake_.SignalAll();
}

}  // namespace bertd::jobs
