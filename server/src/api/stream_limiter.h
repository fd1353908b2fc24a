#ifndef BERTD_API_STREAM_LIMITER_H_
#define BERTD_API_STREAM_LIMITER_H_

#include <map>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace bertd::api {

// Long-lived streams (WatchJob, UploadDataset) each hold a server thread for as long as the client
// keeps them open: this counts them, in total and per caller, against two caps. Thread-safe.
class StreamLimiter {
 public:
  struct Limits {
    int max_total = 256;
    int max_per_caller = 32;
    std::string total_flag;       // named in refusals, e.g. "--max_watch_streams"
    std::string per_caller_flag;  // e.g. "--max_watch_streams_per_caller"
    std::string what = "streams";  // what is counted, in refusals ("uploads")
  };

  // An open stream; closing it (destruction) gives its place back.
  class Lease {
   public:
    Lease(Lease&& other) noexcept : limiter_(other.limiter_), caller_(std::move(other.caller_)) {
      other.limiter_ = nullptr;
    }
    Lease& operator=(Lease&&) = delete;
    ~Lease() {
      if (limiter_ != nullptr) limiter_->Release(caller_);
    }

   private:
    friend class StreamLimiter;
    Lease(StreamLimiter* limiter, std::string caller)
        : limiter_(limiter), caller_(std::move(caller)) {}
    StreamLimiter* limiter_;
    std::string caller_;
  };

  explicit StreamLimiter(Limits limits) : limits_(std::move(limits)) {}

  // A place for one more stream of `caller`, or RESOURCE_EXHAUSTED naming the cap it would pass.
  absl::StatusOr<Lease> Acquire(const std::string& caller);

  int open() const;

 private:
  void Release(const std::string& caller);

  const Limits limits_;
  mutable absl::Mutex mu_;
  int open_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<std::string, int> by_caller_ ABSL_GUARDED_BY(mu_);
};

}  // namespace bertd::api

#endif  // BERTD_API_STREAM_LIMITER_H_
