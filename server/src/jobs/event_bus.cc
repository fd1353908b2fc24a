#include "jobs/event_bus.h"

#include <utility>

namespace bertd::jobs {

EventBus::Subscription::Subscription(Subscription&& other) noexcept
    : bus_(std::exchange(other.bus_, nullptr)), id_(other.id_) {}

EventBus::Subscription& EventBus::Subscription::operator=(Subscription&& other) noexcept {
  if (this != &other) {
    Reset();
    bus_ = std::exchange(other.bus_, nullptr);
    id_ = other.id_;
  }
  return *this;
}

void EventBus::Subscription::Reset() {
  if (bus_ != nullptr) std::exchange(bus_, nullptr)->Unsubscribe(id_);
}

EventBus::Subscription EventBus::Subscribe(const std::string& job_id, Callback callback) {
  absl::MutexLock lock(&mu_);
  uint64_t id = next_id_++;
  entries_.emplace(id, Entry{job_id, std::move(callback)});
  return Subscription(this, id);
}

void EventBus::Unsubscribe(uint64_t id) {
  // Publish runs callbacks under mu_, so once this returns no callback of `id` is running.
  absl::MutexLock lock(&mu_);
  entries_.erase(id);
}

void EventBus::Publish(const JobEvent& event) {
  absl::MutexLock lock(&mu_);
  for (const auto& [id, entry] : entries_) {
    if (entry.job_id.empty() || entry.job_id == event.job_id) entry.callback(event);
  }
}

int EventBus::subscriber_count() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(entries_.size());
}

}  // namespace bertd::jobs
