#include "inference/batcher.h"

#include <pthread.h>

#include <algorithm>
#include <cstdio>
#include <exception>
#include <iterator>

#include "absl/strings/str_cat.h"

namespace bertd::inference {
namespace {

// The batcher whose worker runs on this thread, so Stop() can tell it is called from run_batch.
thread_local const DynamicBatcher* current_worker = nullptr;

BatcherOptions Sanitize(BatcherOptions options) {
  options.max_batch_size = std::max(options.max_batch_size, 1);
  options.max_queue_size = std::max(options.max_queue_size, 1);
  options.max_queue_delay = std::max(options.max_queue_delay, absl::ZeroDuration());
  if (options.name.empty()) options.name = "batcher";
  return options;
}

// Why an item must not join a batch, or OK.
absl::Status DeadStatus(const BatchItem& item, absl::Time now) {
  if (item.deadline <= now) {
    return absl::DeadlineExceededError("deadline passed before the request was batched");
  }
  if (item.is_cancelled && item.is_cancelled()) {
    return absl::CancelledError("cancelled before the request was batched");
  }
  return absl::OkStatus();
}

// Caller callbacks run on the worker thread; one that throws must not take the thread down.
template <typename Fn>
void CallLogged(const std::string& batcher, const char* what, Fn&& fn) {
  try {
    fn();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bertd batcher %s: %s threw: %s\n", batcher.c_str(), what, e.what());
  } catch (...) {
    std::fprintf(stderr, "bertd batcher %s: %s threw a non-std exception\n", batcher.c_str(), what);
  }
}

}  // namespace

DynamicBatcher::DynamicBatcher(BatcherOptions options, BatchFn run_batch, Clock* clock,
                               std::function<void(const BatchStats&)> on_batch)
    : options_(Sanitize(std::move(options))),
      run_batch_(std::move(run_batch)),
      clock_(clock),
      on_batch_(std::move(on_batch)) {
  worker_ = std::thread([this] { WorkerLoop(); });
}

DynamicBatcher::~DynamicBatcher() { Stop(); }

absl::Status DynamicBatcher::Enqueue(std::unique_ptr<BatchItem> item) {
  if (item == nullptr) return absl::InvalidArgumentError("null batch item");
  if (item->num_tokens < 1) {
    return absl::InvalidArgumentError(absl::StrCat("item has ", item->num_tokens, " tokens"));
  }
  if (item->num_tokens > options_.max_batch_tokens) {
    return absl::InvalidArgumentError(absl::StrCat("item of ", item->num_tokens,
                                                   " tokens exceeds the batch token budget of ",
                                                   options_.max_batch_tokens));
  }
  absl::MutexLock lock(&mu_);
  if (stopping_) return absl::UnavailableError(absl::StrCat(options_.name, " is shutting down"));
  if (by_arrival_.size() >= static_cast<size_t>(options_.max_queue_size)) {
    return absl::ResourceExhaustedError(
        absl::StrCat(options_.name, ": ", options_.max_queue_size, " requests already queued"));
  }
  item->enqueue_time = clock_->Now();
  const uint64_t seq = next_seq_++;
  const bool was_empty = by_arrival_.empty();
  by_length_.emplace(item->num_tokens, seq);
  queued_tokens_ += item->num_tokens;
  by_arrival_.emplace(seq, std::move(item));
  // Only these two events change what the worker waits for: a first item sets a deadline, a full
  // batch ends the wait. Anything else would be a wasted wake-up.
  if (was_empty || FullBatchQueued()) work_cv_.Signal();
  return absl::OkStatus();
}

void DynamicBatcher::Stop(absl::Duration drain_timeout) {
  {
    absl::MutexLock lock(&mu_);
    if (!stopping_) {
      stopping_ = true;
      drain_deadline_ = clock_->Now() + std::max(drain_timeout, absl::ZeroDuration());
      work_cv_.Signal();
    }
  }
  // A thread cannot join itself; the destructor joins later.
  if (current_worker == this) return;
  absl::MutexLock stop_lock(&stop_mu_);
  if (joined_) return;
  worker_.join();
  joined_ = true;
}

int DynamicBatcher::queue_depth() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(by_arrival_.size());
}

bool DynamicBatcher::FullBatchQueued() const {
  // Real tokens underestimate the padded cost, so reaching the budget with them means no single
  // batch could take everything queued: waiting longer cannot make the next batch bigger.
  return by_arrival_.size() >= static_cast<size_t>(options_.max_batch_size) ||
         queued_tokens_ >= options_.max_batch_tokens;
}

void DynamicBatcher::WaitForWork() {
  while (!stopping_) {
    if (by_arrival_.empty()) {
      work_cv_.Wait(&mu_);
      continue;
    }
    if (FullBatchQueued()) return;
    absl::Duration remaining =
        by_arrival_.begin()->second->enqueue_time + options_.max_queue_delay - clock_->Now();
    if (remaining <= absl::ZeroDuration()) return;
    // Sleeps exactly until the oldest item is due. The cap only matters if the clock jumps back.
    work_cv_.WaitWithTimeout(&mu_, std::min(remaining, options_.max_queue_delay));
  }
}

std::unique_ptr<BatchItem> DynamicBatcher::Remove(uint64_t seq) {
  auto node = by_arrival_.extract(seq);
  std::unique_ptr<BatchItem> item = std::move(node.mapped());
  by_length_.erase({item->num_tokens, seq});
  queued_tokens_ -= item->num_tokens;
  return item;
}

// Batch formation policy:
//  1. The oldest live item (the anchor) always goes in, so every item is served within about
//     max_queue_delay of reaching the front, whatever its length. Dead items met on the way
//     (deadline passed, cancelled) are dropped instead.
//  2. The rest of the batch is filled with the queued items whose lengths are closest to the
//     anchor's, walking outwards from it in the by-length index (on a tie the shorter one, which
//     does not raise the padded length, and then the older one). Grouping similar lengths keeps
//     the padding, i.e. size * longest - sum of lengths, small.
//  3. Limits: at most max_batch_size items, and size * longest <= max_batch_tokens. A longer
//     candidate that breaks the budget ends the walk on the long side (all further ones are
//     longer); a shorter one that breaks it ends the walk (it does not raise the longest length,
//     so the size alone is over budget).
// Items not taken keep their place and enqueue time, so the next batch picks up the oldest of
// them soon.
void DynamicBatcher::FormBatch(absl::Time now, std::vector<std::unique_ptr<BatchItem>>* batch,
                               std::vector<Dropped>* dropped) {
  uint64_t anchor_seq = 0;
  bool have_anchor = false;
  while (!by_arrival_.empty() && !have_anchor) {
    const uint64_t seq = by_arrival_.begin()->first;
    absl::Status status = DeadStatus(*by_arrival_.begin()->second, now);
    if (status.ok()) {
      anchor_seq = seq;
      have_anchor = true;
    } else {
      dropped->push_back({Remove(seq), std::move(status)});
    }
  }
  if (!have_anchor) return;

  const int32_t anchor_len = by_arrival_.begin()->second->num_tokens;
  // Decide with the index untouched, then remove: no iterator is invalidated during the walk.
  std::vector<uint64_t> take = {anchor_seq};
  std::vector<std::pair<uint64_t, absl::Status>> dead;
  int32_t longest = anchor_len;
  const auto anchor_pos = by_length_.find({anchor_len, anchor_seq});
  auto lo = anchor_pos;  // the next shorter candidate is std::prev(lo)
  auto hi = std::next(anchor_pos);
  bool lo_open = lo != by_length_.begin();
  bool hi_open = hi != by_length_.end();
  while (take.size() < static_cast<size_t>(options_.max_batch_size) && (lo_open || hi_open)) {
    bool use_lo;
    if (!hi_open) {
      use_lo = true;
    } else if (!lo_open) {
      use_lo = false;
    } else {
      use_lo = anchor_len - std::prev(lo)->first <= hi->first - anchor_len;
    }
    const auto candidate = use_lo ? std::prev(lo) : hi;
    const uint64_t seq = candidate->second;
    absl::Status status = DeadStatus(*by_arrival_.at(seq), now);
    if (!status.ok()) {
      dead.emplace_back(seq, std::move(status));
    } else {
      const int32_t new_longest = std::max(longest, candidate->first);
      if (static_cast<int64_t>(take.size() + 1) * new_longest > options_.max_batch_tokens) {
        if (use_lo) break;
        hi_open = false;
        continue;
      }
      longest = new_longest;
      take.push_back(seq);
    }
    if (use_lo) {
      --lo;
      lo_open = lo != by_length_.begin();
    } else {
      ++hi;
      hi_open = hi != by_length_.end();
    }
  }

  for (auto& [seq, status] : dead) dropped->push_back({Remove(seq), std::move(status)});
  batch->reserve(take.size());
  for (uint64_t seq : take) batch->push_back(Remove(seq));
}

void DynamicBatcher::Drop(Dropped& dropped) {
  if (!dropped.item->on_dropped) return;
  CallLogged(options_.name, "on_dropped", [&] { dropped.item->on_dropped(dropped.status); });
}

void DynamicBatcher::RunBatch(std::vector<std::unique_ptr<BatchItem>>& batch, absl::Time formed) {
  // Collected before run_batch, which may move the items out.
  BatchStats stats;
  stats.size = static_cast<int>(batch.size());
  int32_t longest = 0;
  stats.queue_times.reserve(batch.size());
  for (const auto& item : batch) {
    longest = std::max(longest, item->num_tokens);
    stats.real_tokens += item->num_tokens;
    stats.queue_times.push_back(formed - item->enqueue_time);
  }
  stats.computed_tokens = static_cast<int64_t>(stats.size) * longest;

  const absl::Time start = clock_->Now();
  // The BatchFn contract makes it complete its items even when it fails, so an exception is only
  // logged: there is nothing the batcher could do for the items.
  CallLogged(options_.name, "run_batch", [&] { run_batch_(batch); });
  stats.run_time = clock_->Now() - start;
  if (on_batch_) CallLogged(options_.name, "on_batch", [&] { on_batch_(stats); });
}

void DynamicBatcher::WorkerLoop() {
  current_worker = this;
  // Linux limits thread names to 15 characters.
  pthread_setname_np(pthread_self(), options_.name.substr(0, 15).c_str());
  bool done = false;
  while (!done) {
    std::vector<std::unique_ptr<BatchItem>> batch;
    std::vector<Dropped> dropped;
    absl::Time now;
    {
      absl::MutexLock lock(&mu_);
      WaitForWork();
      now = clock_->Now();
      if (stopping_ && (by_arrival_.empty() || now >= drain_deadline_)) {
        while (!by_arrival_.empty()) {
          dropped.push_back({Remove(by_arrival_.begin()->first),
                             absl::UnavailableError(absl::StrCat(
                                 options_.name, " shut down before the request was computed"))});
        }
        done = true;
      } else {
        FormBatch(now, &batch, &dropped);
      }
    }
    // Callbacks run outside the lock: they may enqueue again or take their own locks.
    for (Dropped& d : dropped) Drop(d);
    dropped.clear();
    if (!batch.empty()) RunBatch(batch, now);
  }
}

}  // namespace bertd::inference
