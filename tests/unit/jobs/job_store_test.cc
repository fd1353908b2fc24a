#include "jobs/job_store.h"

#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "test_util.h"

namespace bertd::jobs {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::MatchesRegex;
using ::testing::UnorderedElementsAre;

std::string StateOf(const JobEvent& event) {
  return nlohmann::json::parse(event.payload_json).value("state", "");
}

class JobStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = bertd::testing::MakeTempDir("jobs");
    path_ = dir_ + "/bertd.db";
    Reopen();
  }
  void TearDown() override {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }
  void Reopen() {
    store_.reset();
    absl::StatusOr<std::unique_ptr<JobStore>> store = JobStore::Open(path_);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
  }
  JobRecord NewJob(const std::string& name, int priority = 0,
                   const std::vector<std::string>& datasets = {}) {
    JobRecord job;
    job.name = name;
    job.task = "sequence_classification";
    job.priority = priority;
    job.spec_json = R"({"epochs":1})";
    absl::StatusOr<JobRecord> created = store_->Create(job, datasets);
    EXPECT_TRUE(created.ok()) << created.status();
    return created.value_or(JobRecord{});
  }

  std::string dir_;
  std::string path_;
  std::unique_ptr<JobStore> store_;
};

TEST_F(JobStoreTest, StateNamesRoundTrip) {
  for (JobState state : {JobState::kQueued, JobState::kRunning, JobState::kSucceeded,
                         JobState::kFailed, JobState::kCancelled}) {
    EXPECT_EQ(*ParseJobState(JobStateName(state)), state);
  }
  EXPECT_EQ(*ParseJobState("running"), JobState::kRunning);
  EXPECT_FALSE(ParseJobState("paused").ok());
  EXPECT_FALSE(IsFinal(JobState::kRunning));
  EXPECT_TRUE(IsFinal(JobState::kCancelled));
}

TEST_F(JobStoreTest, CreateAssignsIdAndTimeAndGetReadsItBack) {
  JobRecord job = NewJob("sst2", 3);
  EXPECT_THAT(job.id, MatchesRegex("job-[0-9a-f]{12}"));
  EXPECT_GT(job.created_at_ms, 0);
  EXPECT_EQ(job.state, JobState::kQueued);

  absl::StatusOr<JobRecord> read = store_->Get(job.id);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->name, "sst2");
  EXPECT_EQ(read->task, "sequence_classification");
  EXPECT_EQ(read->priority, 3);
  EXPECT_EQ(read->spec_json, R"({"epochs":1})");
  EXPECT_EQ(read->created_at_ms, job.created_at_ms);
  EXPECT_EQ(read->state, JobState::kQueued);
  EXPECT_EQ(read->attempts, 0);

  absl::StatusOr<JobRecord> missing = store_->Get("job-000000000000");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(missing.status().message(), HasSubstr("job-000000000000"));

  JobRecord bad;
  bad.spec_json = "{not json";
  EXPECT_EQ(store_->Create(bad).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(JobStoreTest, OwnersAreStoredAndFilterListings) {
  JobRecord job;
  job.name = "mine";
  job.owner = "alice";
  ASSERT_TRUE(store_->Create(job).ok());
  job.name = "theirs";
  job.owner = "bob";
  ASSERT_TRUE(store_->Create(job).ok());
  NewJob("no-owner");
  absl::StatusOr<std::vector<JobRecord>> alice = store_->List(std::nullopt, 0, "alice");
  ASSERT_TRUE(alice.ok()) << alice.status();
  ASSERT_EQ(alice->size(), 1u);
  EXPECT_EQ(alice->at(0).name, "mine");
  EXPECT_EQ(alice->at(0).owner, "alice");
  EXPECT_EQ(store_->List(JobState::kQueued, 0, "bob")->at(0).name, "theirs");
  EXPECT_TRUE(store_->List(JobState::kRunning, 0, "bob")->empty());
  EXPECT_EQ(store_->List(std::nullopt, 0, "")->at(0).name, "no-owner");
  EXPECT_EQ(store_->List()->size(), 3u);

  DatasetRecord dataset;
  dataset.name = "alice-data";
  dataset.owner = "alice";
  ASSERT_TRUE(store_->CreateDataset(dataset).ok());
  dataset.name = "bob-data";
  dataset.owner = "bob";
  ASSERT_TRUE(store_->CreateDataset(dataset).ok());
  EXPECT_EQ(store_->GetDataset("bob-data")->owner, "bob");
  ASSERT_EQ(store_->ListDatasets("alice")->size(), 1u);
  EXPECT_EQ(store_->ListDatasets("alice")->at(0).name, "alice-data");
  EXPECT_EQ(store_->ListDatasets()->size(), 2u);
}

TEST_F(JobStoreTest, TheFirstClaimOfAModelWinsAndLasts) {
  EXPECT_EQ(*store_->ModelOwner("sentiment"), std::nullopt);
  EXPECT_EQ(*store_->ClaimModel("sentiment", "alice"), "alice");
  EXPECT_EQ(*store_->ClaimModel("sentiment", "bob"), "alice");
  EXPECT_EQ(*store_->ModelOwner("sentiment"), "alice");
  Reopen();
  EXPECT_EQ(*store_->ModelOwner("sentiment"), "alice");

  // Claims at once from many threads: exactly one owner, and every claimer is told the same one.
  std::vector<std::thread> threads;
  std::mutex mu;
  std::set<std::string> answers;
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&, i] {
      absl::StatusOr<std::string> owner = store_->ClaimModel("contested", "t" + std::to_string(i));
      std::lock_guard<std::mutex> lock(mu);
      answers.insert(owner.ok() ? *owner : "error: " + std::string(owner.status().message()));
    });
  }
  for (std::thread& thread : threads) thread.join();
  ASSERT_EQ(answers.size(), 1u);
  EXPECT_EQ(*answers.begin(), **store_->ModelOwner("contested"));
}

// A database written by a bertd of schema 1 (before owners): the upgrade keeps every row, and the
// old jobs and datasets belong to "" (admins only).
TEST_F(JobStoreTest, SchemaOneDatabasesUpgradeWithEmptyOwners) {
  store_.reset();
  std::filesystem::remove_all(dir_);
  std::filesystem::create_directories(dir_);
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
  // Schema 1 as shipped (the first entry of kMigrations), with one job and one dataset.
  const char* v1 = R"sql(
    CREATE TABLE schema_version (version INTEGER NOT NULL);
    INSERT INTO schema_version VALUES (1);
    CREATE TABLE jobs (
      seqno INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, name TEXT NOT NULL DEFAULT '',
      task TEXT NOT NULL DEFAULT '', priority INTEGER NOT NULL DEFAULT 0,
      spec_json TEXT NOT NULL DEFAULT '{}',
      state TEXT NOT NULL
        CHECK (state IN ('QUEUED', 'RUNNING', 'SUCCEEDED', 'FAILED', 'CANCELLED')),
      error TEXT NOT NULL DEFAULT '', result_model TEXT NOT NULL DEFAULT '',
      worker TEXT NOT NULL DEFAULT '', created_at_ms INTEGER NOT NULL,
      started_at_ms INTEGER NOT NULL DEFAULT 0, finished_at_ms INTEGER NOT NULL DEFAULT 0,
      attempts INTEGER NOT NULL DEFAULT 0, cancel_requested INTEGER NOT NULL DEFAULT 0);
    CREATE INDEX jobs_queue ON jobs (state, priority DESC, seqno);
    CREATE TABLE job_events (
      job_id TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE, seq INTEGER NOT NULL,
      time_ms INTEGER NOT NULL, type TEXT NOT NULL, payload_json TEXT NOT NULL,
      PRIMARY KEY (job_id, seq)) WITHOUT ROWID;
    CREATE TABLE datasets (
      id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, format TEXT NOT NULL DEFAULT '',
      path TEXT NOT NULL DEFAULT '', rows INTEGER NOT NULL DEFAULT 0,
      size_bytes INTEGER NOT NULL DEFAULT 0, sha256 TEXT NOT NULL DEFAULT '',
      labels_json TEXT NOT NULL DEFAULT '[]', spec_json TEXT NOT NULL DEFAULT '{}',
      created_at_ms INTEGER NOT NULL);
    CREATE TABLE job_datasets (
      job_id TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
      dataset_id TEXT NOT NULL REFERENCES datasets (id) ON DELETE CASCADE,
      PRIMARY KEY (job_id, dataset_id)) WITHOUT ROWID;
    CREATE INDEX job_datasets_by_dataset ON job_datasets (dataset_id);
    INSERT INTO jobs (id, name, state, created_at_ms) VALUES ('job-old', 'old', 'SUCCEEDED', 1);
    INSERT INTO datasets (id, name, created_at_ms) VALUES ('ds-old', 'old-data', 1);
  )sql";
  char* error = nullptr;
  ASSERT_EQ(sqlite3_exec(db, v1, nullptr, nullptr, &error), SQLITE_OK) << error;
  sqlite3_close(db);

  Reopen();
  EXPECT_EQ(store_->schema_version(), 3);
  EXPECT_EQ(store_->Get("job-old")->name, "old");
  EXPECT_EQ(store_->Get("job-old")->owner, "");
  EXPECT_EQ(store_->GetDataset("old-data")->owner, "");
  EXPECT_EQ(store_->List(std::nullopt, 0, "")->size(), 1u);
  EXPECT_TRUE(store_->CheckIntegrity().ok());
}

TEST_F(JobStoreTest, CountJobsCountsOneState) {
  EXPECT_EQ(*store_->CountJobs(JobState::kQueued), 0);
  NewJob("a");
  NewJob("b");
  NewJob("c");
  ASSERT_TRUE(store_->ClaimNext("cpu:0").ok());
  EXPECT_EQ(*store_->CountJobs(JobState::kQueued), 2);
  EXPECT_EQ(*store_->CountJobs(JobState::kRunning), 1);
  EXPECT_EQ(*store_->CountJobs(JobState::kFailed), 0);
}

TEST_F(JobStoreTest, ClaimNextTakesHighestPriorityThenOldest) {
  std::string low1 = NewJob("low1", 0).id;
  std::string high1 = NewJob("high1", 5).id;
  std::string low2 = NewJob("low2", 0).id;
  std::string high2 = NewJob("high2", 5).id;
  std::string mid = NewJob("mid", 1).id;

  std::vector<std::string> order;
  for (;;) {
    absl::StatusOr<std::optional<JobRecord>> claimed = store_->ClaimNext("cpu:0");
    ASSERT_TRUE(claimed.ok()) << claimed.status();
    if (!claimed->has_value()) break;
    EXPECT_EQ((*claimed)->state, JobState::kRunning);
    EXPECT_EQ((*claimed)->worker, "cpu:0");
    EXPECT_GT((*claimed)->started_at_ms, 0);
    order.push_back((*claimed)->id);
  }
  EXPECT_THAT(order, ElementsAre(high1, high2, mid, low1, low2));
}

TEST_F(JobStoreTest, ListIsNewestFirstAndFilters) {
  std::string a = NewJob("a").id;
  std::string b = NewJob("b").id;
  std::string c = NewJob("c").id;
  ASSERT_TRUE(store_->ClaimNext("cpu:0").ok());  // a

  absl::StatusOr<std::vector<JobRecord>> all = store_->List();
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 3u);
  EXPECT_EQ((*all)[0].id, c);
  EXPECT_EQ((*all)[2].id, a);

  absl::StatusOr<std::vector<JobRecord>> queued = store_->List(JobState::kQueued);
  ASSERT_EQ(queued->size(), 2u);
  EXPECT_EQ((*queued)[0].id, c);
  EXPECT_EQ((*queued)[1].id, b);
  EXPECT_EQ(store_->List(std::nullopt, 1)->size(), 1u);
  EXPECT_EQ(store_->List(JobState::kRunning)->at(0).id, a);
}

TEST_F(JobStoreTest, ListPagesFollowCreationOrder) {
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) ids.push_back(NewJob("j" + std::to_string(i)).id);
  absl::StatusOr<std::vector<JobRecord>> first = store_->List(std::nullopt, 2);
  ASSERT_TRUE(first.ok());
  ASSERT_EQ(first->size(), 2u);
  EXPECT_EQ((*first)[0].id, ids[4]);
  EXPECT_EQ((*first)[1].id, ids[3]);
  // A job created meanwhile does not shift the next page.
  NewJob("late");
  absl::StatusOr<std::vector<JobRecord>> second = store_->List(std::nullopt, 2, std::nullopt, ids[3]);
  ASSERT_TRUE(second.ok());
  ASSERT_EQ(second->size(), 2u);
  EXPECT_EQ((*second)[0].id, ids[2]);
  EXPECT_EQ((*second)[1].id, ids[1]);
  absl::StatusOr<std::vector<JobRecord>> last = store_->List(std::nullopt, 2, std::nullopt, ids[1]);
  ASSERT_EQ(last->size(), 1u);
  EXPECT_EQ((*last)[0].id, ids[0]);
  EXPECT_TRUE(store_->List(std::nullopt, 2, std::nullopt, ids[0])->empty());
  EXPECT_EQ(store_->List(std::nullopt, 2, std::nullopt, "job-missing").status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(JobStoreTest, LatestEventOfATypeSkipsTheOthers) {
  std::string id = NewJob("a").id;
  EXPECT_FALSE(store_->LatestEvent(id, "progress")->has_value());
  ASSERT_TRUE(store_->AppendEvent(id, "progress", R"({"step":1})").ok());
  ASSERT_TRUE(store_->AppendEvent(id, "eval", R"({"loss":2})").ok());
  for (int step = 2; step <= 50; ++step) {
    ASSERT_TRUE(store_->AppendEvent(id, "progress", absl::StrCat(R"({"step":)", step, "}")).ok());
  }
  absl::StatusOr<std::optional<JobEvent>> progress = store_->LatestEvent(id, "progress");
  ASSERT_TRUE(progress.ok() && progress->has_value());
  EXPECT_EQ((*progress)->payload_json, R"({"step":50})");
  absl::StatusOr<std::optional<JobEvent>> eval = store_->LatestEvent(id, "eval");
  ASSERT_TRUE(eval->has_value());
  EXPECT_EQ((*eval)->payload_json, R"({"loss":2})");
  EXPECT_FALSE(store_->LatestEvent("job-missing", "eval")->has_value());
}

TEST_F(JobStoreTest, ConcurrentClaimersTakeEachJobOnce) {
  constexpr int kJobs = 120;
  std::set<std::string> created;
  for (int i = 0; i < kJobs; ++i) created.insert(NewJob("j" + std::to_string(i), i % 3).id);

  std::mutex mu;
  std::vector<std::string> claimed;
  std::atomic<int> errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (;;) {
        absl::StatusOr<std::optional<JobRecord>> job = store_->ClaimNext("cpu:" + std::to_string(t));
        if (!job.ok()) {
          ++errors;
          return;
        }
        if (!job->has_value()) return;
        std::lock_guard<std::mutex> lock(mu);
        claimed.push_back((*job)->id);
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(claimed.size(), static_cast<size_t>(kJobs));
  EXPECT_EQ(std::set<std::string>(claimed.begin(), claimed.end()), created);
  EXPECT_EQ(store_->List(JobState::kRunning)->size(), static_cast<size_t>(kJobs));
}

TEST_F(JobStoreTest, CancelQueuedRunningAndFinishedJobs) {
  std::string running = NewJob("running", 9).id;
  std::string queued = NewJob("queued").id;
  ASSERT_EQ((*store_->ClaimNext("cpu:0"))->id, running);

  absl::StatusOr<JobRecord> cancelled = store_->RequestCancel(queued);
  ASSERT_TRUE(cancelled.ok()) << cancelled.status();
  EXPECT_EQ(cancelled->state, JobState::kCancelled);
  EXPECT_EQ(store_->Get(queued)->state, JobState::kCancelled);
  EXPECT_GT(store_->Get(queued)->finished_at_ms, 0);
  EXPECT_FALSE(store_->ClaimNext("cpu:0")->has_value());  // never runs

  EXPECT_FALSE(*store_->IsCancelRequested(running));
  absl::StatusOr<JobRecord> flagged = store_->RequestCancel(running);
  ASSERT_TRUE(flagged.ok());
  EXPECT_EQ(flagged->state, JobState::kRunning);  // the runner decides when it stops
  EXPECT_TRUE(flagged->cancel_requested);
  EXPECT_TRUE(*store_->IsCancelRequested(running));
  EXPECT_TRUE(store_->RequestCancel(running).ok());  // idempotent

  ASSERT_TRUE(store_->Finish(running, JobState::kCancelled, "cancelled by request", "").ok());
  EXPECT_EQ(store_->RequestCancel(running).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(store_->Finish(running, JobState::kSucceeded, "", "m").code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(store_->Finish(queued, JobState::kRunning, "", "").code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->RequestCancel("job-nope").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(JobStoreTest, FinishRecordsOutcome) {
  std::string id = NewJob("a").id;
  ASSERT_TRUE(store_->ClaimNext("cuda:0").ok());
  ASSERT_TRUE(store_->Finish(id, JobState::kSucceeded, "", "sst2-bert@3").ok());
  JobRecord job = *store_->Get(id);
  EXPECT_EQ(job.state, JobState::kSucceeded);
  EXPECT_EQ(job.result_model, "sst2-bert@3");
  EXPECT_EQ(job.worker, "cuda:0");
  EXPECT_GE(job.finished_at_ms, job.started_at_ms);
}

TEST_F(JobStoreTest, DatasetDeleteRefusedWhileAnUnfinishedJobUsesIt) {
  DatasetRecord dataset;
  dataset.name = "sst2-train";
  dataset.format = "jsonl";
  dataset.path = "/data/datasets/sst2-train";
  dataset.rows = 67349;
  dataset.size_bytes = 1 << 20;
  dataset.sha256 = std::string(64, 'a');
  dataset.labels_json = R"(["negative","positive"])";
  absl::StatusOr<DatasetRecord> created = store_->CreateDataset(dataset);
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_THAT(created->id, MatchesRegex("ds-[0-9a-f]{12}"));
  EXPECT_EQ(store_->GetDataset(created->id)->name, "sst2-train");
  EXPECT_EQ(store_->GetDataset("sst2-train")->id, created->id);
  EXPECT_EQ(store_->GetDataset("sst2-train")->rows, 67349);
  EXPECT_EQ(store_->GetDataset("sst2-train")->labels_json, R"(["negative","positive"])");
  EXPECT_EQ(store_->CreateDataset(dataset).status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(store_->GetDataset("nope").status().code(), absl::StatusCode::kNotFound);

  DatasetRecord other;
  other.name = "other";
  other.id = "ds-custom";
  ASSERT_TRUE(store_->CreateDataset(other).ok());
  absl::StatusOr<std::vector<DatasetRecord>> all = store_->ListDatasets();
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].id, "ds-custom");  // newest first

  EXPECT_EQ(store_->Create(JobRecord{}, {"ds-missing"}).status().code(),
            absl::StatusCode::kNotFound);
  JobRecord job = NewJob("train", 0, {created->id, "other"});
  EXPECT_THAT(*store_->JobDatasets(job.id), UnorderedElementsAre("ds-custom", created->id));

  absl::Status refused = store_->DeleteDataset(created->id).status();
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(refused.message(), HasSubstr(job.id));

  ASSERT_TRUE(store_->ClaimNext("cpu:0").ok());
  EXPECT_EQ(store_->DeleteDataset("sst2-train").status().code(),
            absl::StatusCode::kFailedPrecondition);  // RUNNING still blocks

  ASSERT_TRUE(store_->Finish(job.id, JobState::kFailed, "oom", "").ok());
  absl::StatusOr<DatasetRecord> deleted = store_->DeleteDataset(created->id);
  ASSERT_TRUE(deleted.ok()) << deleted.status();
  EXPECT_EQ(deleted->path, "/data/datasets/sst2-train");
  EXPECT_EQ(store_->GetDataset(created->id).status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(*store_->JobDatasets(job.id), ElementsAre("ds-custom"));
  EXPECT_TRUE(store_->CheckIntegrity().ok());
}

TEST_F(JobStoreTest, EventsHavePerJobSeqAndStateTransitions) {
  std::string a = NewJob("a").id;
  std::string b = NewJob("b").id;
  ASSERT_TRUE(store_->ClaimNext("cpu:0").ok());  // a
  ASSERT_TRUE(store_->AppendEvent(a, "progress", R"({"step":1})").ok());
  ASSERT_TRUE(store_->AppendEvent(b, "log", R"({"message":"waiting"})").ok());
  absl::StatusOr<JobEvent> second = store_->AppendEvent(a, "progress", R"({"step":2})");
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second->seq, 4);
  ASSERT_TRUE(store_->Finish(a, JobState::kSucceeded, "", "m@1").ok());

  absl::StatusOr<std::vector<JobEvent>> events = store_->Events(a);
  ASSERT_TRUE(events.ok());
  std::vector<std::string> summary;
  for (size_t i = 0; i < events->size(); ++i) {
    EXPECT_EQ((*events)[i].seq, static_cast<int64_t>(i + 1));
    EXPECT_EQ((*events)[i].job_id, a);
    const JobEvent& event = (*events)[i];
    summary.push_back(event.type == "state" ? "state:" + StateOf(event) : event.type);
  }
  EXPECT_THAT(summary, ElementsAre("state:QUEUED", "state:RUNNING", "progress", "progress",
                                   "state:SUCCEEDED"));
  EXPECT_THAT(nlohmann::json::parse(events->back().payload_json).value("result_model", ""),
              "m@1");

  absl::StatusOr<std::vector<JobEvent>> tail = store_->Events(a, 3);
  ASSERT_EQ(tail->size(), 2u);
  EXPECT_EQ((*tail)[0].seq, 4);
  EXPECT_EQ(store_->Events(a, 0, 2)->size(), 2u);
  EXPECT_EQ(store_->Events(b)->size(), 2u);
  EXPECT_EQ(store_->Events("job-nope").status().code(), absl::StatusCode::kNotFound);

  EXPECT_EQ(store_->AppendEvent(a, "log", "{}").status().code(),
            absl::StatusCode::kFailedPrecondition);  // the final state event stays last
  EXPECT_EQ(store_->AppendEvent(b, "state", "{}").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->AppendEvent(b, "log", "{oops").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->AppendEvent(b, "log", "")->payload_json, "{}");
}

TEST_F(JobStoreTest, SubscribersSeeCommittedEventsUntilUnsubscribed) {
  std::string a = NewJob("a").id;
  std::string b = NewJob("b").id;
  std::vector<int64_t> seen_a;
  int seen_all = 0;
  {
    EventBus::Subscription sub_a =
        store_->Subscribe(a, [&](const JobEvent& event) { seen_a.push_back(event.seq); });
    EventBus::Subscription sub_all = store_->Subscribe("", [&](const JobEvent&) { ++seen_all; });
    ASSERT_TRUE(store_->AppendEvent(a, "log", "{}").ok());
    ASSERT_TRUE(store_->AppendEvent(b, "log", "{}").ok());
    ASSERT_FALSE(store_->AppendEvent(a, "state", "{}").ok());  // rejected: not published
    ASSERT_TRUE(store_->RequestCancel(a).ok());
  }
  ASSERT_TRUE(store_->AppendEvent(b, "log", "{}").ok());  // after unsubscribing
  EXPECT_THAT(seen_a, ElementsAre(2, 3));
  EXPECT_EQ(seen_all, 3);
}

TEST_F(JobStoreTest, SurvivesCloseAndReopen) {
  DatasetRecord dataset;
  dataset.name = "d";
  std::string dataset_id = store_->CreateDataset(dataset)->id;
  std::string a = NewJob("a", 1, {dataset_id}).id;
  std::string b = NewJob("b").id;
  ASSERT_TRUE(store_->ClaimNext("cpu:0").ok());
  ASSERT_TRUE(store_->AppendEvent(a, "checkpoint", R"({"path":"ckpt/1"})").ok());
  ASSERT_TRUE(store_->Finish(a, JobState::kSucceeded, "", "m@1").ok());
  EXPECT_EQ(store_->schema_version(), 3);
  EXPECT_TRUE(std::filesystem::exists(path_ + "-wal"));  // WAL mode took effect

  // A second open of the same database is refused while the first is alive.
  absl::StatusOr<std::unique_ptr<JobStore>> second = JobStore::Open(path_);
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);

  Reopen();
  EXPECT_EQ(store_->schema_version(), 3);
  EXPECT_EQ(store_->Get(a)->state, JobState::kSucceeded);
  EXPECT_EQ(store_->Get(a)->result_model, "m@1");
  EXPECT_EQ(store_->Get(b)->state, JobState::kQueued);
  EXPECT_EQ(store_->Events(a)->size(), 4u);
  EXPECT_EQ(store_->GetDataset("d")->id, dataset_id);
  EXPECT_THAT(*store_->JobDatasets(a), ElementsAre(dataset_id));
  // Seqs continue after a reopen.
  EXPECT_EQ(store_->AppendEvent(b, "log", "{}")->seq, 2);
  EXPECT_TRUE(store_->CheckIntegrity().ok());
}

TEST_F(JobStoreTest, RefusesNewerSchema) {
  store_.reset();
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "UPDATE schema_version SET version = 99", nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(db);
  absl::StatusOr<std::unique_ptr<JobStore>> store = JobStore::Open(path_);
  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(store.status().message(), HasSubstr("99"));
}

TEST_F(JobStoreTest, RequeueRunningAfterCrash) {
  std::string plain = NewJob("plain", 2).id;
  std::string cancel = NewJob("cancel", 1).id;
  std::string queued = NewJob("queued").id;
  ASSERT_TRUE(store_->ClaimNext("cuda:0").ok());
  ASSERT_TRUE(store_->ClaimNext("cpu:0").ok());
  ASSERT_TRUE(store_->RequestCancel(cancel).ok());

  Reopen();  // as if the process died with both jobs RUNNING
  absl::StatusOr<std::vector<std::string>> requeued = store_->RequeueRunning();
  ASSERT_TRUE(requeued.ok()) << requeued.status();
  EXPECT_THAT(*requeued, ElementsAre(plain));

  JobRecord job = *store_->Get(plain);
  EXPECT_EQ(job.state, JobState::kQueued);
  EXPECT_EQ(job.attempts, 1);
  EXPECT_EQ(job.worker, "");
  EXPECT_EQ(store_->Get(cancel)->state, JobState::kCancelled);
  EXPECT_EQ(store_->Get(queued)->attempts, 0);
  EXPECT_EQ(StateOf(store_->Events(plain)->back()), "QUEUED");

  // It is claimed again first (priority), and a second requeue without running ones is a no-op.
  EXPECT_EQ((*store_->ClaimNext("cuda:0"))->id, plain);
  ASSERT_TRUE(store_->Finish(plain, JobState::kSucceeded, "", "").ok());
  EXPECT_TRUE(store_->RequeueRunning()->empty());
}

// Forks a child that writes to the store as fast as it can (create, events, claim, finish) and
// SIGKILLs it after it reported `jobs` committed jobs, at an arbitrary point, most likely inside
// a transaction (commits dominate its time). Returns the ids the child saw committed.
std::set<std::string> RunWriterAndKillIt(const std::string& path, const std::string& dataset_id,
                                         size_t jobs, int kill_delay_us) {
  std::set<std::string> reported;
  int fds[2];
  if (::pipe(fds) != 0) {
    ADD_FAILURE() << "pipe failed";
    return reported;
  }
  pid_t pid = ::fork();
  if (pid == 0) {
    ::close(fds[0]);
    absl::StatusOr<std::unique_ptr<JobStore>> store = JobStore::Open(path);
    if (!store.ok()) ::_exit(2);
    for (int i = 0;; ++i) {
      JobRecord job;
      job.name = "crash-" + std::to_string(i);
      absl::StatusOr<JobRecord> created = (*store)->Create(job, {dataset_id});
      if (!created.ok()) ::_exit(3);
      std::string line = created->id + "\n";
      if (::write(fds[1], line.data(), line.size()) != static_cast<ssize_t>(line.size())) {
        ::_exit(4);
      }
      for (int e = 0; e < 3; ++e) {
        (*store)->AppendEvent(created->id, "progress", R"({"step":)" + std::to_string(e) + "}")
            .IgnoreError();
      }
      if (i % 2 == 0) {
        absl::StatusOr<std::optional<JobRecord>> claimed = (*store)->ClaimNext("cpu:0");
        if (claimed.ok() && claimed->has_value() && i % 4 == 0) {
          (*store)->Finish((*claimed)->id, JobState::kSucceeded, "", "m").IgnoreError();
        }
      }
    }
  }
  ::close(fds[1]);
  if (pid < 0) {
    ADD_FAILURE() << "fork failed";
    ::close(fds[0]);
    return reported;
  }
  std::string buffer;
  char chunk[256];
  while (reported.size() < jobs) {
    ssize_t n = ::read(fds[0], chunk, sizeof(chunk));
    if (n <= 0) {
      ADD_FAILURE() << "writer died early";
      break;
    }
    buffer.append(chunk, n);
    size_t newline;
    while ((newline = buffer.find('\n')) != std::string::npos) {
      reported.insert(buffer.substr(0, newline));
      buffer.erase(0, newline + 1);
    }
  }
  ::usleep(kill_delay_us);
  ::kill(pid, SIGKILL);
  int wstatus = 0;
  EXPECT_EQ(::waitpid(pid, &wstatus, 0), pid);
  EXPECT_TRUE(WIFSIGNALED(wstatus) && WTERMSIG(wstatus) == SIGKILL) << "writer status " << wstatus;
  // Read the ids written just before the kill too: they were committed.
  ssize_t n;
  while ((n = ::read(fds[0], chunk, sizeof(chunk))) > 0) buffer.append(chunk, n);
  size_t newline;
  while ((newline = buffer.find('\n')) != std::string::npos) {
    reported.insert(buffer.substr(0, newline));
    buffer.erase(0, newline + 1);
  }
  ::close(fds[0]);
  return reported;
}

TEST_F(JobStoreTest, ConsistentAfterSigkillMidTransaction) {
  DatasetRecord dataset;
  dataset.name = "d";
  std::string dataset_id = store_->CreateDataset(dataset)->id;

  std::set<std::string> reported;
  for (int round = 0; round < 3; ++round) {
    store_.reset();  // the child takes the database lock
    std::set<std::string> more = RunWriterAndKillIt(path_, dataset_id, 25, 1000 + 1700 * round);
    reported.insert(more.begin(), more.end());

    Reopen();
    ASSERT_TRUE(store_->CheckIntegrity().ok()) << store_->CheckIntegrity();
    absl::StatusOr<std::vector<JobRecord>> jobs = store_->List();
    ASSERT_TRUE(jobs.ok());
    std::set<std::string> stored;
    for (const JobRecord& job : *jobs) {
      stored.insert(job.id);
      // A job's row, its dataset link and its first state event share one transaction.
      absl::StatusOr<std::vector<JobEvent>> events = store_->Events(job.id);
      ASSERT_TRUE(events.ok());
      ASSERT_FALSE(events->empty()) << job.id;
      EXPECT_EQ(StateOf(events->front()), "QUEUED");
      std::string last_state;
      for (size_t i = 0; i < events->size(); ++i) {
        EXPECT_EQ((*events)[i].seq, static_cast<int64_t>(i + 1)) << job.id;
        if ((*events)[i].type == "state") last_state = StateOf((*events)[i]);
      }
      // A state change and its event share one transaction too.
      EXPECT_EQ(last_state, JobStateName(job.state)) << job.id;
      EXPECT_THAT(*store_->JobDatasets(job.id), ElementsAre(dataset_id));
    }
    for (const std::string& id : reported) EXPECT_TRUE(stored.count(id)) << id << " was lost";

    // Whatever it left RUNNING is requeued, and the store still takes writes.
    absl::StatusOr<std::vector<std::string>> requeued = store_->RequeueRunning();
    ASSERT_TRUE(requeued.ok()) << requeued.status();
    EXPECT_TRUE(store_->List(JobState::kRunning)->empty());
    EXPECT_EQ(store_->DeleteDataset(dataset_id).status().code(),
              absl::StatusCode::kFailedPrecondition);
  }
  EXPECT_TRUE(store_->Create(JobRecord{}).ok());
}

}  // namespace
}  // namespace bertd::jobs
