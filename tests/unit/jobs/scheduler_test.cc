#include "jobs/scheduler.h"

#include <atomic>
#include <map>
#include <set>
#include <string>
#include <filesystem>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "absl/strings/match.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "test_util.h"

namespace bertd::jobs {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// A countdown that waiters can give up on (C++17 has no std::latch).
class Latch {
 public:
  explicit Latch(int count) : count_(count) {}
  void CountDown() {
    absl::MutexLock lock(&mu_);
    --count_;
  }
  bool WaitFor(absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    return mu_.AwaitWithTimeout(absl::Condition(
                                    +[](int* count) { return *count <= 0; }, &count_),
                                timeout);
  }

 private:
  absl::Mutex mu_;
  int count_ ABSL_GUARDED_BY(mu_);
};

class JobSchedulerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = bertd::testing::MakeTempDir("jobs-scheduler");
    absl::StatusOr<std::unique_ptr<JobStore>> store = JobStore::Open(dir_ + "/bertd.db");
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
  }
  void TearDown() override {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  std::string Submit(const std::string& name, int priority = 0) {
    JobRecord job;
    job.name = name;
    job.priority = priority;
    absl::StatusOr<JobRecord> created = store_->Create(job);
    EXPECT_TRUE(created.ok()) << created.status();
    return created.value_or(JobRecord{}).id;
  }

  // Polls the store until the job is in `state` (the scheduler writes it from its own thread).
  JobRecord WaitForState(const std::string& id, JobState state,
                         absl::Duration timeout = absl::Seconds(10)) {
    absl::Time deadline = absl::Now() + timeout;
    absl::StatusOr<JobRecord> job = store_->Get(id);
    while (job.ok() && job->state != state && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(5));
      job = store_->Get(id);
    }
    EXPECT_TRUE(job.ok()) << job.status();
    EXPECT_EQ(JobStateName(job.value_or(JobRecord{}).state), std::string(JobStateName(state)))
        << id << ": " << job.value_or(JobRecord{}).error;
    return job.value_or(JobRecord{});
  }

  std::vector<std::string> StateHistory(const std::string& id) {
    std::vector<std::string> states;
    absl::StatusOr<std::vector<JobEvent>> events = store_->Events(id);
    EXPECT_TRUE(events.ok()) << events.status();
    for (const JobEvent& event : events.value_or(std::vector<JobEvent>{})) {
      if (event.type == "state") {
        states.push_back(nlohmann::json::parse(event.payload_json).value("state", ""));
      }
    }
    return states;
  }

  std::string dir_;
  std::unique_ptr<JobStore> store_;
};

TEST_F(JobSchedulerTest, TwoWorkersRunTwoJobsAtOnce) {
  Latch both_running(2);
  std::map<std::string, std::string> worker_of;
  absl::Mutex mu;
  JobScheduler scheduler(store_.get(), std::vector<std::string>{"cpu:0", "cpu:1"},
                         [&](const JobRecord& job, const std::string& worker, JobContext& context) {
                           {
                             absl::MutexLock lock(&mu);
                             worker_of[job.id] = worker;
                           }
                           both_running.CountDown();
                           // Only returns OK if the other job is running at the same time.
                           if (!both_running.WaitFor(absl::Seconds(10))) {
                             return absl::DeadlineExceededError("jobs never overlapped");
                           }
                           EXPECT_TRUE(context.Emit("progress", R"({"step":1})").ok());
                           context.set_result_model(job.name + "@1");
                           return absl::OkStatus();
                         });
  std::string a = Submit("a");
  std::string b = Submit("b");
  ASSERT_TRUE(scheduler.Start().ok());
  JobRecord done_a = WaitForState(a, JobState::kSucceeded);
  JobRecord done_b = WaitForState(b, JobState::kSucceeded);
  scheduler.Stop();

  EXPECT_EQ(done_a.result_model, "a@1");
  EXPECT_EQ(done_b.result_model, "b@1");
  EXPECT_NE(worker_of[a], worker_of[b]);
  EXPECT_THAT(StateHistory(a), ElementsAre("QUEUED", "RUNNING", "SUCCEEDED"));
  EXPECT_EQ(store_->Events(a)->size(), 4u);  // + the progress event
}

TEST_F(JobSchedulerTest, ThrowingRunnerFailsTheJobAndTheWorkerGoesOn) {
  JobScheduler scheduler(store_.get(), std::vector<std::string>{"cpu:0"},
                         [&](const JobRecord& job, const std::string&, JobContext&) {
                           if (job.name == "throws") throw std::runtime_error("CUDA out of memory");
                           if (job.name == "fails") return absl::InvalidArgumentError("bad spec");
                           return absl::OkStatus();
                         });
  // Priorities make the order deterministic on one worker.
  std::string throws = Submit("throws", 3);
  std::string fails = Submit("fails", 2);
  std::string fine = Submit("fine", 1);
  ASSERT_TRUE(scheduler.Start().ok());
  JobRecord thrown = WaitForState(throws, JobState::kFailed);
  EXPECT_THAT(thrown.error, HasSubstr("CUDA out of memory"));
  EXPECT_EQ(WaitForState(fails, JobState::kFailed).error, "bad spec");
  WaitForState(fine, JobState::kSucceeded);
  EXPECT_THAT(StateHistory(throws), ElementsAre("QUEUED", "RUNNING", "FAILED"));
}

TEST_F(JobSchedulerTest, CancelsQueuedAndRunningJobs) {
  absl::Notification started;
  JobScheduler scheduler(store_.get(), std::vector<std::string>{"cpu:0"},
                         [&](const JobRecord& job, const std::string&, JobContext& context) {
                           started.Notify();
                           if (!context.WaitForCancel(absl::Now() + absl::Seconds(20))) {
                             return absl::DeadlineExceededError("never cancelled");
                           }
                           EXPECT_EQ(context.cancel_reason(), "cancelled by request");
                           return absl::CancelledError(context.cancel_reason());
                         });
  std::string running = Submit("running", 1);
  std::string queued = Submit("queued", 0);
  ASSERT_TRUE(scheduler.Start().ok());
  ASSERT_TRUE(started.WaitForNotificationWithTimeout(absl::Seconds(10)));

  ASSERT_TRUE(scheduler.Cancel(queued).ok());
  EXPECT_EQ(store_->Get(queued)->state, JobState::kCancelled);  // at once

  absl::Time cancel_time = absl::Now();
  ASSERT_TRUE(scheduler.Cancel(running).ok());
  JobRecord cancelled = WaitForState(running, JobState::kCancelled);
  EXPECT_LT(absl::Now() - cancel_time, absl::Seconds(5));
  EXPECT_EQ(cancelled.error, "cancelled by request");
  EXPECT_THAT(StateHistory(running), ElementsAre("QUEUED", "RUNNING", "CANCELLED"));
  EXPECT_THAT(StateHistory(queued), ElementsAre("QUEUED", "CANCELLED"));
}

TEST_F(JobSchedulerTest, CancelThroughTheStoreIsSeenByPolling) {
  absl::Notification started;
  JobScheduler scheduler(store_.get(), std::vector<std::string>{"cpu:0"},
                         [&](const JobRecord&, const std::string&, JobContext& context) {
                           started.Notify();
                           // A training loop: checks cancelled() between steps; returns OK.
                           absl::Time deadline = absl::Now() + absl::Seconds(20);
                           while (!context.cancelled() && absl::Now() < deadline) {
                             absl::SleepFor(absl::Milliseconds(2));
                           }
                           return absl::OkStatus();
                         });
  std::string id = Submit("poll");
  ASSERT_TRUE(scheduler.Start().ok());
  ASSERT_TRUE(started.WaitForNotificationWithTimeout(absl::Seconds(10)));
  ASSERT_TRUE(store_->RequestCancel(id).ok());
  // Cancel requested wins even though the runner returned OK.
  WaitForState(id, JobState::kCancelled, absl::Seconds(5));
}

TEST_F(JobSchedulerTest, StopLeavesRunningJobRunningAndTheNextSchedulerResumesIt) {
  std::string id = Submit("long");
  absl::Notification started;
  {
    JobScheduler scheduler(store_.get(), std::vector<std::string>{"cuda:0"},
                           [&](const JobRecord&, const std::string&, JobContext& context) {
                             started.Notify();
                             context.WaitForCancel(absl::Now() + absl::Seconds(20));
                             EXPECT_TRUE(context.shutting_down());
                             EXPECT_EQ(context.cancel_reason(), "shutting down");
                             // Whatever the runner returns while shutting down, it resumes later.
                             return absl::CancelledError(context.cancel_reason());
                           });
    ASSERT_TRUE(scheduler.Start().ok());
    ASSERT_TRUE(started.WaitForNotificationWithTimeout(absl::Seconds(10)));
    scheduler.Stop();
    JobRecord job = *store_->Get(id);
    EXPECT_EQ(job.state, JobState::kRunning);
    EXPECT_FALSE(job.cancel_requested);
  }

  std::atomic<int> seen_attempts{-1};
  JobScheduler next(store_.get(), std::vector<std::string>{"cuda:0"},
                    [&](const JobRecord& job, const std::string&, JobContext& context) {
                      seen_attempts = job.attempts;
                      context.set_result_model("resumed@1");
                      return absl::OkStatus();
                    });
  ASSERT_TRUE(next.Start().ok());
  JobRecord done = WaitForState(id, JobState::kSucceeded);
  EXPECT_EQ(seen_attempts.load(), 1);
  EXPECT_EQ(done.attempts, 1);
  EXPECT_EQ(done.result_model, "resumed@1");
  EXPECT_THAT(StateHistory(id),
              ElementsAre("QUEUED", "RUNNING", "QUEUED", "RUNNING", "SUCCEEDED"));
}

// The scheduler's slot table once it equals `expected`, or as it is after 10 s.
std::map<std::string, std::string> EventuallyRunning(const JobScheduler& scheduler,
                                                     const std::map<std::string, std::string>& expected) {
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  std::map<std::string, std::string> running = scheduler.Running();
  while (running != expected && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(10));
    running = scheduler.Running();
  }
  return running;
}

TEST_F(JobSchedulerTest, NotifyWakesAnIdleWorkerWithoutWaitingForTheRecheck) {
  JobScheduler scheduler(store_.get(), std::vector<std::string>{"cpu:0"},
                         [](const JobRecord&, const std::string&, JobContext&) {
                           return absl::OkStatus();
                         });
  ASSERT_TRUE(scheduler.Start().ok());
  absl::SleepFor(absl::Milliseconds(100));  // the worker found nothing and sleeps
  absl::Time submitted = absl::Now();
  std::string id = Submit("quick");
  scheduler.Notify();
  WaitForState(id, JobState::kSucceeded);
  EXPECT_LT(absl::Now() - submitted, JobScheduler::kIdleRecheck * 0.8);
  // The outcome is recorded before the slot frees (so whoever sees it free sees the outcome):
  // the slot may still be held for a moment after the state is SUCCEEDED.
  EXPECT_THAT(EventuallyRunning(scheduler, {{"cpu:0", ""}}),
              ElementsAre(std::make_pair(std::string("cpu:0"), std::string())));
}

// ---- The pool: slots of a device type, jobs that hold several, reservation --------------------

// Demands written into job names, so each test states them where it submits: "cuda-..." or
// "cpu-..." (that type), "twoslots" anywhere (two slots), "external-..." (none); else one slot of
// any type.
SlotDemand DemandFromName(const JobRecord& job) {
  SlotDemand demand;
  if (absl::StartsWith(job.name, "cuda")) demand.type = DeviceType::kCuda;
  if (absl::StartsWith(job.name, "cpu")) demand.type = DeviceType::kCpu;
  if (absl::StrContains(job.name, "twoslots")) demand.count = 2;
  if (absl::StartsWith(job.name, "external")) demand.count = 0;
  return demand;
}

// A runner whose jobs run until released by name; records the worker (slots) of each.
class GatedRunner {
 public:
  JobRunner AsRunner() {
    return [this](const JobRecord& job, const std::string& worker, JobContext& context) {
      {
        absl::MutexLock lock(&mu_);
        worker_[job.name] = worker;
      }
      for (absl::Time deadline = absl::Now() + absl::Seconds(20); absl::Now() < deadline;) {
        {
          absl::MutexLock lock(&mu_);
          if (released_.count(job.name) > 0) break;
        }
        if (context.cancelled()) break;
        absl::SleepFor(absl::Milliseconds(5));
      }
      return context.cancelled() ? absl::CancelledError("stopped") : absl::OkStatus();
    };
  }
  void Release(const std::string& name) {
    absl::MutexLock lock(&mu_);
    released_.insert(name);
  }
  std::string WorkerOf(const std::string& name) {
    absl::MutexLock lock(&mu_);
    auto it = worker_.find(name);
    return it == worker_.end() ? "" : it->second;
  }

 private:
  absl::Mutex mu_;
  std::set<std::string> released_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::string> worker_ ABSL_GUARDED_BY(mu_);
};

TEST_F(JobSchedulerTest, AJobHoldsAsManySlotsAsItNeedsOfOneType) {
  GatedRunner runner;
  JobScheduler scheduler(store_.get(), std::vector<std::string>{"cuda:0", "cpu:0", "cpu:1"},
                         runner.AsRunner(), DemandFromName);
  const std::string two = Submit("twoslots-cpu");  // "any" type, but only CPU has two slots free
  ASSERT_TRUE(scheduler.Start().ok());
  WaitForState(two, JobState::kRunning);
  // "any" takes the first type in pool order that has room: CUDA has one slot, not two.
  EXPECT_EQ(store_->Get(two)->worker, "cpu:0,cpu:1");
  const std::string gpu = Submit("cuda-job");
  WaitForState(gpu, JobState::kRunning);
  EXPECT_EQ(store_->Get(gpu)->worker, "cuda:0");
  // The store says RUNNING once the job is claimed; the scheduler's slot table follows.
  EXPECT_THAT(EventuallyRunning(scheduler, {{"cuda:0", gpu}, {"cpu:0", two}, {"cpu:1", two}}),
              ::testing::UnorderedElementsAre(std::make_pair(std::string("cuda:0"), gpu),
                                              std::make_pair(std::string("cpu:0"), two),
                                              std::make_pair(std::string("cpu:1"), two)));
  // A CPU job waits while both CPU slots are held; it runs once they free.
  const std::string cpu = Submit("cpu-job");
  absl::SleepFor(absl::Milliseconds(300));
  EXPECT_EQ(store_->Get(cpu)->state, JobState::kQueued);
  runner.Release("twoslots-cpu");
  WaitForState(two, JobState::kSucceeded);
  WaitForState(cpu, JobState::kRunning);
  EXPECT_EQ(store_->Get(cpu)->worker, "cpu:0");
  runner.Release("cuda-job");
  runner.Release("cpu-job");
  WaitForState(cpu, JobState::kSucceeded);
  scheduler.Stop();
}

// The issue's starvation case: small jobs keep one of two slots busy; a two-slot job queued
// before more small ones must not wait forever behind them.
TEST_F(JobSchedulerTest, AWaitingBigJobReservesSlotsSoSmallOnesCannotStarveIt) {
  GatedRunner runner;
  JobScheduler scheduler(store_.get(), std::vector<std::string>{"cpu:0", "cpu:1"},
                         runner.AsRunner(), DemandFromName);
  const std::string small1 = Submit("small1");
  ASSERT_TRUE(scheduler.Start().ok());
  WaitForState(small1, JobState::kRunning);
  const std::string big = Submit("twoslots");
  const std::string small2 = Submit("small2");
  absl::SleepFor(absl::Milliseconds(300));
  // cpu:1 is free, but reserved for the big job that waits longer.
  EXPECT_EQ(store_->Get(big)->state, JobState::kQueued);
  EXPECT_EQ(store_->Get(small2)->state, JobState::kQueued);
  runner.Release("small1");
  WaitForState(big, JobState::kRunning);
  EXPECT_EQ(store_->Get(small2)->state, JobState::kQueued);
  runner.Release("twoslots");
  WaitForState(small2, JobState::kRunning);
  runner.Release("small2");
  WaitForState(small2, JobState::kSucceeded);
  scheduler.Stop();
}

TEST_F(JobSchedulerTest, AReservationHoldsBackOnlyTheTypesTheWaitingJobCanUse) {
  GatedRunner runner;
  JobScheduler scheduler(store_.get(), std::vector<std::string>{"cuda:0", "cpu:0"},
                         runner.AsRunner(), DemandFromName);
  const std::string first = Submit("cuda-first");
  ASSERT_TRUE(scheduler.Start().ok());
  WaitForState(first, JobState::kRunning);
  Submit("cuda-second");  // waits for cuda:0 and reserves CUDA only
  const std::string cpu = Submit("cpu-meanwhile");
  WaitForState(cpu, JobState::kRunning);
  EXPECT_EQ(store_->Get(cpu)->worker, "cpu:0");
  for (const char* name : {"cuda-first", "cuda-second", "cpu-meanwhile"}) runner.Release(name);
  scheduler.Stop();
}

// A waiting "any" job reserves only the types that could ever hold it: two ranks never fit one GPU,
// so the GPU stays free for a job that wants it.
TEST_F(JobSchedulerTest, AWaitingJobDoesNotReserveATypeThatCanNeverHoldIt) {
  GatedRunner runner;
  JobScheduler scheduler(store_.get(), std::vector<std::string>{"cuda:0", "cpu:0", "cpu:1"},
                         runner.AsRunner(), DemandFromName);
  const std::string first = Submit("cpu-twoslots-first");
  ASSERT_TRUE(scheduler.Start().ok());
  WaitForState(first, JobState::kRunning);
  const std::string waiting = Submit("any-twoslots");
  const std::string gpu = Submit("cuda-meanwhile");
  WaitForState(gpu, JobState::kRunning);
  EXPECT_EQ(store_->Get(gpu)->worker, "cuda:0");
  EXPECT_EQ(store_->Get(waiting)->state, JobState::kQueued);
  runner.Release("cpu-twoslots-first");
  WaitForState(waiting, JobState::kRunning);
  EXPECT_EQ(store_->Get(waiting)->worker, "cpu:0,cpu:1");
  for (const char* name : {"any-twoslots", "cuda-meanwhile"}) runner.Release(name);
  scheduler.Stop();
}

TEST_F(JobSchedulerTest, AJobThatCanNeverFitFailsWithTheReason) {
  GatedRunner runner;
  JobScheduler scheduler(store_.get(), std::vector<std::string>{"cpu:0"}, runner.AsRunner(),
                         DemandFromName);
  const std::string gpu = Submit("cuda-on-a-cpu-pool");
  const std::string two = Submit("twoslots-on-one");
  const std::string fine = Submit("fine");
  ASSERT_TRUE(scheduler.Start().ok());
  EXPECT_THAT(WaitForState(gpu, JobState::kFailed).error,
              HasSubstr("resources.device: the job asks for cuda, but the training pool"));
  EXPECT_THAT(WaitForState(two, JobState::kFailed).error,
              HasSubstr("distributed.world_size: 2 ranks need 2 slots"));
  WaitForState(fine, JobState::kRunning);
  runner.Release("fine");
  WaitForState(fine, JobState::kSucceeded);
  scheduler.Stop();
}

TEST_F(JobSchedulerTest, JobsWhoseWorkersRunElsewhereHoldNoSlot) {
  GatedRunner runner;
  JobScheduler scheduler(store_.get(), std::vector<std::string>{"cpu:0"}, runner.AsRunner(),
                         DemandFromName);
  const std::string local = Submit("local");
  const std::string external = Submit("external-job");
  ASSERT_TRUE(scheduler.Start().ok());
  WaitForState(local, JobState::kRunning);
  WaitForState(external, JobState::kRunning);
  EXPECT_EQ(store_->Get(external)->worker, "external");
  runner.Release("local");
  runner.Release("external-job");
  WaitForState(external, JobState::kSucceeded);
  scheduler.Stop();
}

}  // namespace
}  // namespace bertd::jobs
