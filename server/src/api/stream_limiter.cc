#include "api/stream_limiter.h"

#include "absl/strings/str_cat.h"

namespace bertd::api {

absl::StatusOr<StreamLimiter::Lease> StreamLimiter::Acquire(const std::string& caller) {
  absl::MutexLock lock(&mu_);
  if (open_ >= limits_.max_total) {
    return absl::ResourceExhaustedError(absl::StrCat(
        open_, " ", limits_.what, " are open, the most this server keeps (", limits_.total_flag, "=",
        limits_.max_total, "); close one or retry later"));
  }
  int& mine = by_caller_[caller];
  if (mine >= limits_.max_per_caller) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "this caller has ", mine, " ", limits_.what, " open, the most one caller may (",
        limits_.per_caller_flag, "=", limits_.max_per_caller, "); close one first"));
  }
  ++mine;
  ++open_;
  return Lease(this, caller);
}

int StreamLimiter::open() const {
  absl::MutexLock lock(&mu_);
  return open_;
}

void StreamLimiter::Release(const std::string& caller) {
  absl::MutexLock lock(&mu_);
  --open_;
  auto it = by_caller_.find(caller);
  if (it != by_caller_.end() && --it->second <= 0) by_caller_.erase(it);
}

}  // namespace bertd::api
