#ifndef BERTD_JOBS_EVENT_BUS_H_
#define BERTD_JOBS_EVENT_BUS_H_

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace bertd::jobs {

struct JobEvent {
  int64_t seq = 0;  // per job, 1, 2, 3, ... without gaps
  std::string job_id;
  int64_t time_ms = 0;
  std::string type;  // "state", "progress", "eval", "checkpoint", "log"
  std::string payload_json;
};

// In-process fan-out of committed job events. JobStore publishes every event it commits, in
// commit order, while it still holds its own lock; so callbacks must be quick (queue and signal)
// and must never call back into the JobStore or the bus.
class EventBus {
 public:
  using Callback = std::function<void(const JobEvent&)>;

  // Move-only handle; destroying it unsubscribes and waits for a callback already running.
  class Subscription {
   public:
    Subscription() = default;
    Subscription(Subscription&& other) noexcept;
    Subscription& operator=(Subscription&& other) noexcept;
    Subscription(const Subscription&) = delete;
    Subscription& operator=(const Subscription&) = delete;
    ~Subscription() { Reset(); }

    void Reset();
    bool active() const { return bus_ != nullptr; }

   private:
    friend class EventBus;
    Subscription(EventBus* bus, uint64_t id) : bus_(bus), id_(id) {}
    EventBus* bus_ = nullptr;
    uint64_t id_ = 0;
  };

  EventBus() = default;
  EventBus(const EventBus&) = delete;
  EventBus& operator=(const EventBus&) = delete;

  // `job_id` empty: every job's events.
  Subscription Subscribe(const std::string& job_id, Callback callback);
  void Publish(const JobEvent& event);
  int subscriber_count() const;

 private:
  struct Entry {
    std::string job_id;
    Callback callback;
  };
  void Unsubscribe(uint64_t id);

  mutable absl::Mutex mu_;
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  std::map<uint64_t, Entry> entries_ ABSL_GUARDED_BY(mu_);
};

}  // namespace bertd::jobs

#endif  // BERTD_JOBS_EVENT_BUS_H_
