#ifndef BERTD_INFERENCE_BATCHER_H_
#define BERTD_INFERENCE_BATCHER_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "inference/clock.h"

namespace bertd::inference {

// One sequence to compute. Owned by the batcher from Enqueue until it is handed to a batch or
// dropped.
struct BatchItem {
  int64_t id = 0;          // caller-defined, the batcher does not look at it
  int32_t num_tokens = 0;  // sequence length without padding: the cost and grouping key
  absl::Time deadline = absl::InfiniteFuture();
  // May be empty. Polled on the worker thread, under the batcher's lock, when the item is
  // considered for a batch: must be cheap and must not call into the batcher.
  std::function<bool()> is_cancelled;
  // Called once, on the worker thread, for an accepted item that never reaches a batch:
  // DEADLINE_EXCEEDED, CANCELLED, or UNAVAILABLE when Stop's drain timeout ran out.
  // Not called for items that Enqueue rejected (its status says so).
  std::function<void(absl::Status)> on_dropped;
  absl::Time enqueue_time;        // set by Enqueue
  std::shared_ptr<void> payload;  // caller's data (inputs, result promise)
};

struct BatcherOptions {
  int max_batch_size = 32;           // items per batch
  int64_t max_batch_tokens = 16384;  // batch size * longest item in the batch (padded cost)
  // How long the oldest waiting item may wait for company before a partial batch runs.
  absl::Duration max_queue_delay = absl::Milliseconds(5);
  int max_queue_size = 1024;  // items waiting; beyond it Enqueue fails at once
  std::string name;           // worker thread name (first 15 chars) and log prefix
};

struct BatchStats {
  int size = 0;
  int64_t computed_tokens = 0;  // size * longest item: what the model computes, padding included
  int64_t real_tokens = 0;      // sum of the items' lengths
  std::vector<absl::Duration> queue_times;  // per item, enqueue to batch formation
  absl::Duration run_time;                  // time spent in run_batch
};

// Runs one formed batch on the worker thread. It must complete every item itself (fulfil its
// promise, send its reply): the batcher does not look at results. It may move items out.
using BatchFn = std::function<void(std::vector<std::unique_ptr<BatchItem>>& batch)>;

// Merges concurrent requests into batches for one model. Items wait until either a full batch is
// available (max_batch_size items, or queued tokens reaching max_batch_tokens) or the oldest has
// waited max_queue_delay; then one worker thread forms a batch, grouping similar lengths to keep
// padding low, and runs it. Thread-safe.
class DynamicBatcher {
 public:
  // `clock` is not owned and must outlive the batcher. `on_batch` (may be empty) is called on the
  // worker thread after every batch, for metrics.
  DynamicBatcher(BatcherOptions options, BatchFn run_batch, Clock* clock = Clock::Real(),
                 std::function<void(const BatchStats&)> on_batch = {});
  // Stop() with the default drain timeout.
  ~DynamicBatcher();

  DynamicBatcher(const DynamicBatcher&) = delete;
  DynamicBatcher& operator=(const DynamicBatcher&) = delete;

  // Queues `item` and returns at once; never waits for compute. Errors (the item is destroyed):
  // INVALID_ARGUMENT for a null item, num_tokens < 1, or num_tokens > max_batch_tokens (it could
  // never fit a batch); UNAVAILABLE once Stop began; RESOURCE_EXHAUSTED when max_queue_size items
  // are waiting.
  absl::Status Enqueue(std::unique_ptr<BatchItem> item);

  // Stops accepting items. Queued items are still computed, without waiting for max_queue_delay,
  // until `drain_timeout` has passed (per the clock); what is left then is dropped with
  // UNAVAILABLE. A batch already running is not interrupted. Joins the worker thread. Idempotent
  // and thread-safe; must not be called from run_batch (it then only begins the stop).
  void Stop(absl::Duration drain_timeout = absl::Seconds(30));

  // Items waiting (not yet in a batch).
  int queue_depth() const;

 private:
  struct Dropped {
    std::unique_ptr<BatchItem> item;
    absl::Status status;
  };

  void WorkerLoop();
  void WaitForWork() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool FullBatchQueued() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::unique_ptr<BatchItem> Remove(uint64_t seq) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void FormBatch(absl::Time now, std::vector<std::unique_ptr<BatchItem>>* batch,
                 std::vector<Dropped>* dropped) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RunBatch(std::vector<std::unique_ptr<BatchItem>>& batch, absl::Time formed);
  void Drop(Dropped& dropped);

  const BatcherOptions options_;
  const BatchFn run_batch_;
  Clock* const clock_;
  const std::function<void(const BatchStats&)> on_batch_;

  mutable absl::Mutex mu_;
  absl::CondVar work_cv_;  // the worker waits on it; signalled when its wait condition may change
  // The queue, indexed twice: by arrival (sequence number) to find the oldest item, and by
  // (length, sequence) to find the items closest in length to it.
  std::map<uint64_t, std::unique_ptr<BatchItem>> by_arrival_ ABSL_GUARDED_BY(mu_);
  std::set<std::pair<int32_t, uint64_t>> by_length_ ABSL_GUARDED_BY(mu_);
  int64_t queued_tokens_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t next_seq_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time drain_deadline_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();

  // Serializes Stop() callers so that every caller returns only after the join. Taken before mu_.
  absl::Mutex stop_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  bool joined_ ABSL_GUARDED_BY(stop_mu_) = false;

  std::thread worker_;  // last: starts after everything above is initialized
};

}  // namespace bertd::inference

#endif  // BERTD_INFERENCE_BATCHER_H_
