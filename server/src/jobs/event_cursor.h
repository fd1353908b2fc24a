#ifndef BERTD_JOBS_EVENT_CURSOR_H_
#define BERTD_JOBS_EVENT_CURSOR_H_

#include <cstdint>
#include <map>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "jobs/event_bus.h"
#include "jobs/job_store.h"

namespace bertd::jobs {

// Reads one job's events in seq order: the stored history after `after_seq`, then live events
// as they are committed, each exactly once, and ends after the final "state" event. Meant for a
// gRPC server-streaming handler:
//
//   EventCursor cursor(store, job_id);
//   JobEvent event;
//   while (!context->IsCancelled()) {
//     if (cursor.Next(&event, absl::Now() + absl::Seconds(1))) { writer->Write(...); continue; }
//     if (cursor.done()) break;
//   }
//   return ToGrpc(cursor.status());
//
// How it avoids gaps and duplicates: it subscribes first, then reads the history; everything
// lands in one seq-keyed buffer, so an event that arrives both ways is kept once, and a missing
// seq (which ordered publication should never produce) is re-read from the store.
// The store must outlive the cursor.
class EventCursor {
 public:
  EventCursor(JobStore* store, std::string job_id, int64_t after_seq = 0);
  ~EventCursor();
  EventCursor(const EventCursor&) = delete;
  EventCursor& operator=(const EventCursor&) = delete;

  // The next event. False when `deadline` passed first (done() false: call again) or when the
  // stream ended (done() true; status() is OK after the final state, or the error, e.g.
  // NOT_FOUND for an unknown job, CANCELLED after Cancel()).
  bool Next(JobEvent* out, absl::Time deadline);
  bool done() const;
  absl::Status status() const;
  // Ends the stream and wakes a blocked Next (e.g. the client went away).
  void Cancel();

 private:
  void OnEvent(const JobEvent& event);
  // Reads events after delivered_ from the store into pending_; ends the stream when the job
  // is already final and nothing is left to deliver.
  void Refill();

  JobStore* const store_;
  const std::string job_id_;

  mutable absl::Mutex mu_;
  absl::CondVar cv_;
  int64_t delivered_ ABSL_GUARDED_BY(mu_);
  std::map<int64_t, JobEvent> pending_ ABSL_GUARDED_BY(mu_);
  bool need_refill_ ABSL_GUARDED_BY(mu_) = true;
  bool final_delivered_ ABSL_GUARDED_BY(mu_) = false;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status status_ ABSL_GUARDED_BY(mu_);

  // Last member: destroyed first, so no callback runs into a half-destroyed cursor.
  EventBus::Subscription subscription_;
};

// True for a "state" event whose payload names SUCCEEDED, FAILED or CANCELLED.
bool IsFinalStateEvent(const JobEvent& event);

}  // namespace bertd::jobs

#endif  // BERTD_JOBS_EVENT_CURSOR_H_
