#include "inference/batcher.h"

#include <algorithm>
#include <atomic>
#include <map>
#include <memory>
#include <random>
#include <stdexcept>
#include <thread>
#include <utility>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace bertd::inference {
namespace {

// Generous: only reached when something is broken, never a performance expectation.
constexpr absl::Duration kWait = absl::Seconds(20);

struct Seen {
  int64_t id;
  int32_t num_tokens;
};

// Records every batch run_batch receives and every dropped item, and lets the test wait for them.
class Recorder {
 public:
  BatchFn Fn() {
    return [this](std::vector<std::unique_ptr<BatchItem>>& batch) { Record(batch); };
  }

  void Record(const std::vector<std::unique_ptr<BatchItem>>& batch) {
    absl::MutexLock lock(&mu_);
    std::vector<Seen> seen;
    for (const auto& item : batch) {
      seen.push_back({item->id, item->num_tokens});
      ++runs_[item->id];
    }
    batches_.push_back(std::move(seen));
    items_run_ += static_cast<int>(batch.size());
  }

  std::function<void(absl::Status)> OnDropped(int64_t id) {
    return [this, id](absl::Status status) {
      absl::MutexLock lock(&mu_);
      drops_[id].push_back(status.code());
    };
  }

  // True once `n` items ran and `drops` were dropped.
  bool WaitFor(int n, int drops = 0) {
    auto done = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
      int dropped = 0;
      for (const auto& [id, codes] : drops_) dropped += static_cast<int>(codes.size());
      return items_run_ >= n && dropped >= drops;
    };
    absl::MutexLock lock(&mu_);
    return mu_.AwaitWithTimeout(absl::Condition(&done), kWait);
  }

  std::vector<std::vector<Seen>> batches() {
    absl::MutexLock lock(&mu_);
    return batches_;
  }
  std::map<int64_t, int> runs() {
    absl::MutexLock lock(&mu_);
    return runs_;
  }
  std::map<int64_t, std::vector<absl::StatusCode>> drops() {
    absl::MutexLock lock(&mu_);
    return drops_;
  }

 private:
  absl::Mutex mu_;
  std::vector<std::vector<Seen>> batches_ ABSL_GUARDED_BY(mu_);
  std::map<int64_t, int> runs_ ABSL_GUARDED_BY(mu_);
  std::map<int64_t, std::vector<absl::StatusCode>> drops_ ABSL_GUARDED_BY(mu_);
  int items_run_ ABSL_GUARDED_BY(mu_) = 0;
};

std::unique_ptr<BatchItem> Item(int64_t id, int32_t num_tokens) {
  auto item = std::make_unique<BatchItem>();
  item->id = id;
  item->num_tokens = num_tokens;
  return item;
}

std::vector<int32_t> SortedLengths(const std::vector<Seen>& batch) {
  std::vector<int32_t> lengths;
  for (const Seen& s : batch) lengths.push_back(s.num_tokens);
  std::sort(lengths.begin(), lengths.end());
  return lengths;
}

// A run_batch that parks the worker in the first batch until released, so the test can fill the
// queue deterministically while nothing is being taken out of it.
class BlockFirstBatch {
 public:
  explicit BlockFirstBatch(Recorder* recorder) : recorder_(recorder) {}

  BatchFn Fn() {
    return [this](std::vector<std::unique_ptr<BatchItem>>& batch) {
      if (!first_done_) {
        first_done_ = true;  // only the worker thread touches it
        entered_.Notify();
        release_.WaitForNotification();
      }
      recorder_->Record(batch);
    };
  }
  void WaitUntilBlocked() { ASSERT_TRUE(entered_.WaitForNotificationWithTimeout(kWait)); }
  void Release() { release_.Notify(); }

 private:
  Recorder* recorder_;
  bool first_done_ = false;
  absl::Notification entered_;
  absl::Notification release_;
};

TEST(ClockTest, ManualClockMovesOnlyWhenTold) {
  ManualClock clock;
  absl::Time t0 = clock.Now();
  EXPECT_EQ(clock.Now(), t0);
  clock.Advance(absl::Seconds(3));
  EXPECT_EQ(clock.Now(), t0 + absl::Seconds(3));
  EXPECT_NE(Clock::Real(), nullptr);
  EXPECT_LE(absl::AbsDuration(Clock::Real()->Now() - absl::Now()), absl::Seconds(5));
}

TEST(DynamicBatcherTest, SingleItemRunsAfterQueueDelay) {
  Recorder recorder;
  std::vector<BatchStats> stats;
  absl::Mutex stats_mu;
  BatcherOptions options;
  options.max_queue_delay = absl::Milliseconds(50);
  DynamicBatcher batcher(options, recorder.Fn(), Clock::Real(), [&](const BatchStats& s) {
    absl::MutexLock lock(&stats_mu);
    stats.push_back(s);
  });
  ASSERT_TRUE(batcher.Enqueue(Item(7, 12)).ok());
  ASSERT_TRUE(recorder.WaitFor(1));
  batcher.Stop();
  ASSERT_EQ(recorder.batches().size(), 1u);
  EXPECT_EQ(recorder.batches()[0][0].id, 7);
  absl::MutexLock lock(&stats_mu);
  ASSERT_EQ(stats.size(), 1u);
  EXPECT_EQ(stats[0].size, 1);
  EXPECT_EQ(stats[0].computed_tokens, 12);
  EXPECT_EQ(stats[0].real_tokens, 12);
  ASSERT_EQ(stats[0].queue_times.size(), 1u);
  // A lone item waits for company for the whole delay (a lower bound, so this cannot flake).
  EXPECT_GE(stats[0].queue_times[0], options.max_queue_delay);
}

TEST(DynamicBatcherTest, WaitsForTheInjectedClock) {
  ManualClock clock;
  Recorder recorder;
  BatcherOptions options;
  options.max_queue_delay = absl::Milliseconds(200);
  DynamicBatcher batcher(options, recorder.Fn(), &clock);
  ASSERT_TRUE(batcher.Enqueue(Item(1, 4)).ok());
  // Real time passes but the batcher's time does not: the item is not due.
  absl::SleepFor(absl::Milliseconds(400));
  EXPECT_TRUE(recorder.batches().empty());
  EXPECT_EQ(batcher.queue_depth(), 1);
  clock.Advance(absl::Milliseconds(200));
  ASSERT_TRUE(recorder.WaitFor(1));
  EXPECT_EQ(batcher.queue_depth(), 0);
}

TEST(DynamicBatcherTest, ManyItemsRunOnceInBatchesOfAtMostMax) {
  Recorder recorder;
  BatcherOptions options;
  options.max_batch_size = 8;
  options.max_queue_delay = absl::Milliseconds(2);
  DynamicBatcher batcher(options, recorder.Fn());
  constexpr int kItems = 100;
  for (int i = 0; i < kItems; ++i) ASSERT_TRUE(batcher.Enqueue(Item(i, 1 + i % 17)).ok());
  ASSERT_TRUE(recorder.WaitFor(kItems));
  batcher.Stop();
  for (const auto& batch : recorder.batches()) {
    EXPECT_GE(batch.size(), 1u);
    EXPECT_LE(batch.size(), 8u);
  }
  std::map<int64_t, int> runs = recorder.runs();
  ASSERT_EQ(runs.size(), static_cast<size_t>(kItems));
  for (const auto& [id, count] : runs) EXPECT_EQ(count, 1) << "item " << id;
}

TEST(DynamicBatcherTest, FullBatchRunsWithoutWaitingForTheDelay) {
  // The batcher's clock never moves, so only a full batch can end the wait.
  ManualClock clock;
  Recorder recorder;
  BatcherOptions options;
  options.max_batch_size = 4;
  options.max_queue_delay = absl::Seconds(10);
  DynamicBatcher batcher(options, recorder.Fn(), &clock);
  absl::Time start = absl::Now();
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(batcher.Enqueue(Item(i, 10)).ok());
  ASSERT_TRUE(recorder.WaitFor(4));
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  ASSERT_EQ(recorder.batches().size(), 1u);
  EXPECT_EQ(recorder.batches()[0].size(), 4u);
}

TEST(DynamicBatcherTest, FilledTokenBudgetRunsWithoutWaitingForTheDelay) {
  ManualClock clock;
  Recorder recorder;
  BatcherOptions options;
  options.max_batch_size = 32;
  options.max_batch_tokens = 100;
  options.max_queue_delay = absl::Seconds(10);
  DynamicBatcher batcher(options, recorder.Fn(), &clock);
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(batcher.Enqueue(Item(i, 50)).ok());
  ASSERT_TRUE(recorder.WaitFor(4));
  for (const auto& batch : recorder.batches()) EXPECT_LE(batch.size() * 50, 100u);
}

TEST(DynamicBatcherTest, TokenBudgetIsNeverExceeded) {
  Recorder recorder;
  BatcherOptions options;
  options.max_batch_size = 32;
  options.max_batch_tokens = 256;
  options.max_queue_delay = absl::Milliseconds(2);
  std::atomic<int> over_budget{0};
  DynamicBatcher batcher(options, recorder.Fn(), Clock::Real(), [&](const BatchStats& s) {
    if (s.computed_tokens > 256) ++over_budget;
  });
  std::mt19937 rng(42);
  std::uniform_int_distribution<int32_t> length(1, 128);
  constexpr int kItems = 300;
  for (int i = 0; i < kItems; ++i) ASSERT_TRUE(batcher.Enqueue(Item(i, length(rng))).ok());
  ASSERT_TRUE(recorder.WaitFor(kItems));
  batcher.Stop();
  for (const auto& batch : recorder.batches()) {
    int32_t longest = 0;
    for (const Seen& s : batch) longest = std::max(longest, s.num_tokens);
    EXPECT_LE(static_cast<int64_t>(batch.size()) * longest, 256);
  }
  EXPECT_EQ(over_budget.load(), 0);
  EXPECT_EQ(recorder.runs().size(), static_cast<size_t>(kItems));
}

TEST(DynamicBatcherTest, GroupsSimilarLengths) {
  Recorder recorder;
  BlockFirstBatch blocker(&recorder);
  std::vector<BatchStats> stats;
  absl::Mutex stats_mu;
  BatcherOptions options;
  options.max_batch_size = 3;
  options.max_queue_delay = absl::Milliseconds(1);
  DynamicBatcher batcher(options, blocker.Fn(), Clock::Real(), [&](const BatchStats& s) {
    absl::MutexLock lock(&stats_mu);
    stats.push_back(s);
  });
  ASSERT_TRUE(batcher.Enqueue(Item(0, 50)).ok());
  blocker.WaitUntilBlocked();
  int64_t id = 1;
  for (int32_t length : {5, 100, 6, 101, 7, 102}) {
    ASSERT_TRUE(batcher.Enqueue(Item(id++, length)).ok());
  }
  blocker.Release();
  ASSERT_TRUE(recorder.WaitFor(7));
  std::vector<std::vector<Seen>> batches = recorder.batches();
  ASSERT_EQ(batches.size(), 3u);
  EXPECT_EQ(SortedLengths(batches[1]), (std::vector<int32_t>{5, 6, 7}));
  EXPECT_EQ(SortedLengths(batches[2]), (std::vector<int32_t>{100, 101, 102}));
  batcher.Stop();
  absl::MutexLock lock(&stats_mu);
  ASSERT_EQ(stats.size(), 3u);
  EXPECT_EQ(stats[1].computed_tokens, 3 * 7);
  EXPECT_EQ(stats[1].real_tokens, 5 + 6 + 7);
}

TEST(DynamicBatcherTest, FullQueueIsRejectedAtOnce) {
  Recorder recorder;
  BlockFirstBatch blocker(&recorder);
  BatcherOptions options;
  options.max_queue_size = 4;
  options.max_batch_size = 32;
  options.max_queue_delay = absl::Milliseconds(1);
  DynamicBatcher batcher(options, blocker.Fn());
  ASSERT_TRUE(batcher.Enqueue(Item(0, 8)).ok());
  blocker.WaitUntilBlocked();
  for (int i = 1; i <= 4; ++i) ASSERT_TRUE(batcher.Enqueue(Item(i, 8)).ok());
  EXPECT_EQ(batcher.queue_depth(), 4);
  absl::Status status = batcher.Enqueue(Item(5, 8));
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted) << status;
  blocker.Release();
  ASSERT_TRUE(recorder.WaitFor(5));
  batcher.Stop();
  EXPECT_EQ(recorder.runs().count(5), 0u);
}

TEST(DynamicBatcherTest, DropsExpiredAndCancelledItems) {
  ManualClock clock;
  Recorder recorder;
  BlockFirstBatch blocker(&recorder);
  BatcherOptions options;
  options.max_batch_size = 32;
  options.max_queue_delay = absl::ZeroDuration();
  DynamicBatcher batcher(options, blocker.Fn(), &clock);
  ASSERT_TRUE(batcher.Enqueue(Item(0, 8)).ok());
  blocker.WaitUntilBlocked();

  auto expires = Item(1, 8);
  expires->deadline = clock.Now() + absl::Seconds(1);
  expires->on_dropped = recorder.OnDropped(1);
  auto already_expired = Item(2, 8);
  already_expired->deadline = clock.Now() - absl::Seconds(1);
  already_expired->on_dropped = recorder.OnDropped(2);
  auto cancelled_flag = std::make_shared<std::atomic<bool>>(false);
  auto cancelled = Item(3, 8);
  cancelled->is_cancelled = [cancelled_flag] { return cancelled_flag->load(); };
  cancelled->on_dropped = recorder.OnDropped(3);
  auto live = Item(4, 8);
  live->deadline = clock.Now() + absl::Hours(1);
  live->is_cancelled = [] { return false; };
  live->on_dropped = recorder.OnDropped(4);
  for (auto* item : {&expires, &already_expired, &cancelled, &live}) {
    ASSERT_TRUE(batcher.Enqueue(std::move(*item)).ok());
  }
  // Both happen while the items wait in the queue.
  clock.Advance(absl::Seconds(2));
  cancelled_flag->store(true);
  blocker.Release();

  ASSERT_TRUE(recorder.WaitFor(2, 3));
  batcher.Stop();
  std::map<int64_t, int> runs = recorder.runs();
  EXPECT_EQ(runs, (std::map<int64_t, int>{{0, 1}, {4, 1}}));
  std::map<int64_t, std::vector<absl::StatusCode>> drops = recorder.drops();
  EXPECT_EQ(drops, (std::map<int64_t, std::vector<absl::StatusCode>>{
                       {1, {absl::StatusCode::kDeadlineExceeded}},
                       {2, {absl::StatusCode::kDeadlineExceeded}},
                       {3, {absl::StatusCode::kCancelled}}}));
}

TEST(DynamicBatcherTest, StopDrainsQueuedItemsThenRejects) {
  // The delay never passes on this clock and the batch is not full: only Stop makes items run.
  ManualClock clock;
  Recorder recorder;
  BatcherOptions options;
  options.max_batch_size = 8;
  options.max_queue_delay = absl::Seconds(10);
  DynamicBatcher batcher(options, recorder.Fn(), &clock);
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(batcher.Enqueue(Item(i, 3)).ok());
  EXPECT_EQ(batcher.queue_depth(), 5);
  batcher.Stop();
  EXPECT_EQ(recorder.runs().size(), 5u);
  EXPECT_EQ(batcher.queue_depth(), 0);

  absl::Status status = batcher.Enqueue(Item(9, 3));
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  batcher.Stop();  // idempotent
}

TEST(DynamicBatcherTest, StopDrainsSeveralBatches) {
  ManualClock clock;
  Recorder recorder;
  BlockFirstBatch blocker(&recorder);
  BatcherOptions options;
  options.max_batch_size = 2;
  options.max_queue_delay = absl::ZeroDuration();
  DynamicBatcher batcher(options, blocker.Fn(), &clock);
  ASSERT_TRUE(batcher.Enqueue(Item(0, 3)).ok());
  blocker.WaitUntilBlocked();
  for (int i = 1; i <= 5; ++i) {
    auto item = Item(i, 3);
    item->on_dropped = recorder.OnDropped(i);
    ASSERT_TRUE(batcher.Enqueue(std::move(item)).ok());
  }
  std::thread stopper([&] { batcher.Stop(); });
  blocker.Release();
  stopper.join();
  EXPECT_EQ(recorder.runs().size(), 6u);
  EXPECT_TRUE(recorder.drops().empty());
  EXPECT_EQ(batcher.queue_depth(), 0);
}

TEST(DynamicBatcherTest, DrainTimeoutDropsWhatIsLeftAsUnavailable) {
  ManualClock clock;
  Recorder recorder;
  BatcherOptions options;
  options.max_queue_delay = absl::Seconds(10);
  DynamicBatcher batcher(options, recorder.Fn(), &clock);
  for (int i = 0; i < 3; ++i) {
    auto item = Item(i, 5);
    item->on_dropped = recorder.OnDropped(i);
    ASSERT_TRUE(batcher.Enqueue(std::move(item)).ok());
  }
  batcher.Stop(absl::ZeroDuration());
  EXPECT_TRUE(recorder.runs().empty());
  std::map<int64_t, std::vector<absl::StatusCode>> drops = recorder.drops();
  ASSERT_EQ(drops.size(), 3u);
  for (const auto& [id, codes] : drops) {
    EXPECT_EQ(codes, std::vector<absl::StatusCode>{absl::StatusCode::kUnavailable}) << id;
  }
}

TEST(DynamicBatcherTest, RejectsItemsThatCanNeverFit) {
  Recorder recorder;
  BatcherOptions options;
  options.max_batch_tokens = 100;
  DynamicBatcher batcher(options, recorder.Fn());
  EXPECT_EQ(batcher.Enqueue(Item(1, 101)).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(batcher.Enqueue(Item(2, 0)).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(batcher.Enqueue(nullptr).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(batcher.Enqueue(Item(3, 100)).ok());
  ASSERT_TRUE(recorder.WaitFor(1));
  EXPECT_EQ(recorder.runs(), (std::map<int64_t, int>{{3, 1}}));
}

TEST(DynamicBatcherTest, ExceptionInRunBatchDoesNotStopLaterBatches) {
  Recorder recorder;
  std::atomic<int> calls{0};
  BatcherOptions options;
  options.max_queue_delay = absl::Milliseconds(1);
  DynamicBatcher batcher(options, [&](std::vector<std::unique_ptr<BatchItem>>& batch) {
    if (calls++ == 0) throw std::runtime_error("injected failure");
    recorder.Record(batch);
  });
  ASSERT_TRUE(batcher.Enqueue(Item(1, 4)).ok());
  // Wait for the throwing call before sending the next item, so they are separate batches.
  while (calls.load() == 0) absl::SleepFor(absl::Milliseconds(1));
  ASSERT_TRUE(batcher.Enqueue(Item(2, 4)).ok());
  ASSERT_TRUE(recorder.WaitFor(1));
  EXPECT_EQ(recorder.runs(), (std::map<int64_t, int>{{2, 1}}));
}

TEST(DynamicBatcherTest, DestructorDrains) {
  Recorder recorder;
  {
    BatcherOptions options;
    options.max_queue_delay = absl::Seconds(30);
    DynamicBatcher batcher(options, recorder.Fn());
    for (int i = 0; i < 10; ++i) ASSERT_TRUE(batcher.Enqueue(Item(i, 4)).ok());
  }
  EXPECT_EQ(recorder.runs().size(), 10u);
}

TEST(DynamicBatcherTest, StressManyProducers) {
  constexpr int kThreads = 8;
  constexpr int kPerThread = 200;
  constexpr int kTotal = kThreads * kPerThread;
  std::vector<std::atomic<int>> completed(kTotal);
  std::vector<std::atomic<int>> dropped(kTotal);
  BatcherOptions options;
  options.max_batch_size = 16;
  options.max_batch_tokens = 16 * 64;
  options.max_queue_size = kTotal;
  options.max_queue_delay = absl::Microseconds(500);
  options.name = "stress-model@1";
  std::atomic<int> batches{0};
  auto batcher = std::make_unique<DynamicBatcher>(
      options,
      [&](std::vector<std::unique_ptr<BatchItem>>& batch) {
        for (auto& item : batch) ++completed[item->id];
      },
      Clock::Real(), [&](const BatchStats& s) { ++batches; });

  std::vector<std::thread> producers;
  for (int t = 0; t < kThreads; ++t) {
    producers.emplace_back([&, t] {
      std::mt19937 rng(t);
      std::uniform_int_distribution<int32_t> length(1, 64);
      for (int i = 0; i < kPerThread; ++i) {
        int64_t id = static_cast<int64_t>(t) * kPerThread + i;
        auto item = Item(id, length(rng));
        // Every tenth is cancelled: it must be dropped, not run, and still accounted for once.
        if (i % 10 == 0) item->is_cancelled = [] { return true; };
        item->on_dropped = [&dropped, id](absl::Status) { ++dropped[id]; };
        ASSERT_TRUE(batcher->Enqueue(std::move(item)).ok());
        if (i % 50 == 0) batcher->queue_depth();
      }
    });
  }
  for (auto& producer : producers) producer.join();
  batcher->Stop();
  batcher.reset();
  for (int id = 0; id < kTotal; ++id) {
    const bool cancelled = (id % kPerThread) % 10 == 0;
    EXPECT_EQ(completed[id].load(), cancelled ? 0 : 1) << "item " << id;
    EXPECT_EQ(dropped[id].load(), cancelled ? 1 : 0) << "item " << id;
  }
  EXPECT_GT(batches.load(), 0);
}

}  // namespace
}  // namespace bertd::inference
