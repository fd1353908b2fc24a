#include "jobs/event_cursor.h"

#include <filesystem>
#include <thread>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "jobs/job_store.h"
#include "test_util.h"

namespace bertd::jobs {
namespace {

class EventCursorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = bertd::testing::MakeTempDir("jobs-events");
    absl::StatusOr<std::unique_ptr<JobStore>> store = JobStore::Open(dir_ + "/bertd.db");
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
    JobRecord job;
    job.name = "watched";
    job_id_ = store_->Create(job)->id;
  }
  void TearDown() override {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  // Drains the cursor until it ends; fails the test if it stalls.
  std::vector<JobEvent> Drain(EventCursor& cursor) {
    std::vector<JobEvent> events;
    JobEvent event;
    while (!cursor.done()) {
      if (cursor.Next(&event, absl::Now() + absl::Seconds(10))) {
        events.push_back(event);
      } else if (!cursor.done()) {
        ADD_FAILURE() << "cursor stalled after seq " << (events.empty() ? 0 : events.back().seq);
        break;
      }
    }
    return events;
  }

  std::string dir_;
  std::unique_ptr<JobStore> store_;
  std::string job_id_;
};

TEST_F(EventCursorTest, LateWatcherGetsHistoryThenLiveEventsWithoutGapsOrDuplicates) {
  ASSERT_TRUE(store_->ClaimNext("cpu:0").ok());
  constexpr int kEvents = 300;
  absl::Notification some_written;
  std::thread producer([&] {
    for (int i = 0; i < kEvents; ++i) {
      ASSERT_TRUE(
          store_->AppendEvent(job_id_, "progress", R"({"step":)" + std::to_string(i) + "}").ok());
      if (i == 50) some_written.Notify();
    }
    ASSERT_TRUE(store_->Finish(job_id_, JobState::kSucceeded, "", "m@1").ok());
  });
  // The watcher connects while the producer is mid-way: part history, part live.
  some_written.WaitForNotification();
  EventCursor cursor(store_.get(), job_id_);
  std::vector<JobEvent> events = Drain(cursor);
  producer.join();

  EXPECT_TRUE(cursor.status().ok()) << cursor.status();
  // QUEUED, RUNNING, kEvents progress, SUCCEEDED.
  ASSERT_EQ(events.size(), static_cast<size_t>(kEvents + 3));
  for (size_t i = 0; i < events.size(); ++i) {
    ASSERT_EQ(events[i].seq, static_cast<int64_t>(i + 1));
  }
  EXPECT_TRUE(IsFinalStateEvent(events.back()));
  EXPECT_FALSE(IsFinalStateEvent(events[1]));  // RUNNING
  JobEvent extra;
  EXPECT_FALSE(cursor.Next(&extra, absl::Now()));
}

TEST_F(EventCursorTest, ResumesAfterSeqAndEndsAtOnceForFinishedJob) {
  ASSERT_TRUE(store_->AppendEvent(job_id_, "log", "{}").ok());
  ASSERT_TRUE(store_->RequestCancel(job_id_).ok());  // QUEUED -> CANCELLED: seq 3

  EventCursor from_two(store_.get(), job_id_, 2);
  std::vector<JobEvent> events = Drain(from_two);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].seq, 3);
  EXPECT_TRUE(IsFinalStateEvent(events[0]));

  // A watcher that already saw everything is told the stream is over, without waiting.
  EventCursor caught_up(store_.get(), job_id_, 3);
  JobEvent event;
  absl::Time start = absl::Now();
  EXPECT_FALSE(caught_up.Next(&event, absl::Now() + absl::Seconds(10)));
  EXPECT_TRUE(caught_up.done());
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
}

TEST_F(EventCursorTest, TimesOutWhileIdleAndCanBeCancelled) {
  EventCursor cursor(store_.get(), job_id_);
  JobEvent event;
  ASSERT_TRUE(cursor.Next(&event, absl::Now() + absl::Seconds(5)));  // QUEUED
  EXPECT_FALSE(cursor.Next(&event, absl::Now() + absl::Milliseconds(50)));
  EXPECT_FALSE(cursor.done());  // just a timeout: the job is still queued

  std::thread canceller([&] {
    absl::SleepFor(absl::Milliseconds(50));
    cursor.Cancel();
  });
  EXPECT_FALSE(cursor.Next(&event, absl::Now() + absl::Seconds(30)));
  canceller.join();
  EXPECT_TRUE(cursor.done());
  EXPECT_EQ(cursor.status().code(), absl::StatusCode::kCancelled);
}

TEST_F(EventCursorTest, UnknownJobEndsWithNotFound) {
  EventCursor cursor(store_.get(), "job-000000000000");
  JobEvent event;
  EXPECT_FALSE(cursor.Next(&event, absl::Now() + absl::Seconds(5)));
  EXPECT_TRUE(cursor.done());
  EXPECT_EQ(cursor.status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace bertd::jobs
