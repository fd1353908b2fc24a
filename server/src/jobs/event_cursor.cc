#include "jobs/event_cursor.h"

#include <utility>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"

namespace bertd::jobs {

bool IsFinalStateEvent(const JobEvent& event) {
  if (event.type != "state") return false;
  nlohmann::json payload = nlohmann::json::parse(event.payload_json, nullptr,
                                                 /*allow_exceptions=*/false);
  if (!payload.is_object() || !payload.contains("state") || !payload["state"].is_string()) {
    return false;
  }
  absl::StatusOr<JobState> state = ParseJobState(payload["state"].get<std::string>());
  return state.ok() && IsFinal(*state);
}

EventCursor::EventCursor(JobStore* store, std::string job_id, int64_t after_seq)
    : store_(store), job_id_(std::move(job_id)), delivered_(after_seq) {
  // Subscribe before the first history read (in Next), so nothing committed in between is lost.
  subscription_ = store_->Subscribe(job_id_, [this](const JobEvent& event) { OnEvent(event); });
}

EventCursor::~EventCursor() { subscription_.Reset(); }

void EventCursor::OnEvent(const JobEvent& event) {
  absl::MutexLock lock(&mu_);
  if (event.seq > delivered_) pending_.emplace(event.seq, event);
  cv_.Signal();
}

void EventCursor::Refill() {
  int64_t after;
  {
    absl::MutexLock lock(&mu_);
    after = delivered_;
  }
  absl::StatusOr<std::vector<JobEvent>> events = store_->Events(job_id_, after);
  // Read the state after the events: if it is final here, its final event was committed (and
  // published to us) before this read, so it is in `events` or already in pending_.
  absl::StatusOr<JobRecord> job =
      events.ok() ? store_->Get(job_id_) : absl::StatusOr<JobRecord>(events.status());
  absl::MutexLock lock(&mu_);
  if (!job.ok()) {
    done_ = true;
    status_ = job.status();
    return;
  }
  for (JobEvent& event : *events) {
    if (event.seq > delivered_) pending_.emplace(event.seq, std::move(event));
  }
  // A cursor started at or after the final event has nothing left to wait for.
  if (IsFinal(job->state) && pending_.empty()) done_ = true;
}

bool EventCursor::Next(JobEvent* out, absl::Time deadline) {
  mu_.Lock();
  bool refilled_for_gap = false;
  bool timed_out = false;
  for (;;) {
    if (done_) break;
    if (final_delivered_) {
      done_ = true;
      break;
    }
    while (!pending_.empty() && pending_.begin()->first <= delivered_) {
      pending_.erase(pending_.begin());
    }
    if (!pending_.empty()) {
      auto first = pending_.begin();
      if (first->first == delivered_ + 1) {
        *out = std::move(first->second);
        pending_.erase(first);
        delivered_ = out->seq;
        final_delivered_ = IsFinalStateEvent(*out);
        mu_.Unlock();
        return true;
      }
      // A gap: publication is ordered, so only the history can fill it.
      if (refilled_for_gap) {
        done_ = true;
        status_ = absl::InternalError(absl::StrCat("event ", delivered_ + 1, " of job ", job_id_,
                                                   " is missing from the store"));
        break;
      }
      need_refill_ = true;
      refilled_for_gap = true;
    }
    if (need_refill_) {
      need_refill_ = false;
      mu_.Unlock();  // the store publishes to OnEvent under its own lock: never hold ours here
      Refill();
      mu_.Lock();
      continue;
    }
    if (timed_out) break;
    timed_out = cv_.WaitWithDeadline(&mu_, deadline);
  }
  mu_.Unlock();
  return false;
}

bool EventCursor::done() const {
  absl::MutexLock lock(&mu_);
  return done_;
}

absl::Status EventCursor::status() const {
  absl::MutexLock lock(&mu_);
  return status_;
}

void EventCursor::Cancel() {
  absl::MutexLock lock(&mu_);
  if (!done_) {
    done_ = true;
    status_ = absl::CancelledError(absl::StrCat("event stream of job ", job_id_, " cancelled"));
  }
  cv_.SignalAll();
}

}  // namespace bertd::jobs
