#include "metrics/training_metrics.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "exposition_format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace bertd::metrics {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// A clock the test moves by hand, to see per-job series expire.
struct FakeClock {
  absl::Time now = absl::FromUnixSeconds(1700000000);
};

class TrainingMetricsTest : public ::testing::Test {
 protected:
  TrainingMetricsTest()
      : metrics_(TrainingMetrics::Options{absl::Minutes(5), [this] { return clock_.now; }}) {}

  std::string Scrape() {
    std::string text = testing::Serialize(metrics_);
    absl::Status format = testing::CheckExpositionFormat(text);
    EXPECT_TRUE(format.ok()) << format << "\n" << text;
    return text;
  }

  void State(const std::string& job, const std::string& state, const std::string& worker = "") {
    std::string payload = absl::StrCat(R"({"state":")", state, R"(","attempts":0)");
    if (!worker.empty()) absl::StrAppend(&payload, R"(,"worker":")", worker, R"(")");
    metrics_.OnJobEvent(job, "state", payload + "}");
  }

  FakeClock clock_;
  TrainingMetrics metrics_;
};

TEST_F(TrainingMetricsTest, EveryFamilyIsListedBeforeAnyJob) {
  std::string text = Scrape();
  for (const char* gauge :
       {"bertd_jobs", "bertd_training_workers", "bertd_job_running", "bertd_job_info",
        "bertd_job_loss", "bertd_job_learning_rate", "bertd_job_samples_per_second",
        "bertd_job_step", "bertd_job_total_steps", "bertd_job_epoch", "bertd_job_eta_seconds",
        "bertd_job_eval_metric", "bertd_job_last_checkpoint_timestamp_seconds",
        "bertd_job_world_size", "bertd_job_allreduce_seconds_per_step",
        "bertd_job_rank_samples_per_second"}) {
    EXPECT_THAT(text, HasSubstr(absl::StrCat("# TYPE ", gauge, " gauge\n")));
  }
  EXPECT_THAT(text, HasSubstr("# TYPE bertd_jobs_finished_total counter\n"));
  EXPECT_THAT(text, HasSubstr("# TYPE bertd_checkpoints_total counter\n"));
  EXPECT_THAT(text, HasSubstr("# TYPE bertd_checkpoint_duration_seconds histogram\n"));
  // Every state answers, with 0 when no job is in it.
  for (const char* state : {"QUEUED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED"}) {
    EXPECT_THAT(text, HasSubstr(absl::StrCat("bertd_jobs{state=\"", state, "\"} 0\n")));
  }
  EXPECT_THAT(text, HasSubstr("bertd_jobs_finished_total{state=\"FAILED\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("bertd_checkpoint_duration_seconds_count 0\n"));
}

TEST_F(TrainingMetricsTest, CountsJobsByStateThroughTheirLifecycle) {
  metrics_.SeedJob("job-old1", "SUCCEEDED");
  metrics_.SeedJob("job-old2", "FAILED");
  metrics_.SeedJob("job-crashed", "RUNNING");  // left RUNNING by a killed process
  metrics_.SetWorkers(2);
  State("job-crashed", "QUEUED");  // requeued at start
  State("job-a", "QUEUED");
  State("job-a", "RUNNING", "cpu-0");
  State("job-crashed", "RUNNING", "cpu-1");
  std::string text = Scrape();
  EXPECT_THAT(text, HasSubstr("bertd_jobs{state=\"QUEUED\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("bertd_jobs{state=\"RUNNING\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("bertd_jobs{state=\"SUCCEEDED\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("bertd_jobs{state=\"FAILED\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("bertd_training_workers 2\n"));
  EXPECT_THAT(text, HasSubstr("bertd_job_info{job_id=\"job-a\",worker=\"cpu-0\"} 1\n"));

  State("job-a", "FAILED", "cpu-0");
  State("job-crashed", "SUCCEEDED", "cpu-1");
  text = Scrape();
  EXPECT_THAT(text, HasSubstr("bertd_jobs{state=\"RUNNING\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("bertd_jobs{state=\"SUCCEEDED\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("bertd_jobs{state=\"FAILED\"} 2\n"));
  // Counters count what ended in this process only, not the seeded history.
  EXPECT_THAT(text, HasSubstr("bertd_jobs_finished_total{state=\"FAILED\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("bertd_jobs_finished_total{state=\"SUCCEEDED\"} 1\n"));
}

TEST_F(TrainingMetricsTest, ProgressEvalAndCheckpointOfARunningJob) {
  State("job-b", "QUEUED");
  State("job-b", "RUNNING", "cpu-0");
  metrics_.OnJobEvent("job-b", "progress",
                      R"({"epoch":0.5,"step":5,"total_steps":10,"loss":0.6931,)"
                      R"("learning_rate":0.0005,"samples_per_second":42.5,"eta_seconds":3})");
  metrics_.OnJobEvent("job-b", "eval", R"({"step":5,"metrics":{"accuracy":0.75,"eval_loss":0.5}})");
  metrics_.OnJobEvent("job-b", "checkpoint", R"({"step":5,"path":"/x/checkpoint-5"})");
  metrics_.OnJobEvent("job-b", "checkpoint", R"({"step":10,"path":"/x/checkpoint-10","seconds":0.3})");
  metrics_.OnJobEvent("job-b", "log", R"({"message":"ignored"})");
  std::string text = Scrape();
  EXPECT_THAT(text, HasSubstr("bertd_job_loss{job_id=\"job-b\"} 0.6931\n"));
  EXPECT_THAT(text, HasSubstr("bertd_job_learning_rate{job_id=\"job-b\"} 0.0005\n"));
  EXPECT_THAT(text, HasSubstr("bertd_job_samples_per_second{job_id=\"job-b\"} 42.5\n"));
  EXPECT_THAT(text, HasSubstr("bertd_job_step{job_id=\"job-b\"} 5\n"));
  EXPECT_THAT(text, HasSubstr("bertd_job_total_steps{job_id=\"job-b\"} 10\n"));
  EXPECT_THAT(text, HasSubstr("bertd_job_epoch{job_id=\"job-b\"} 0.5\n"));
  EXPECT_THAT(text, HasSubstr("bertd_job_eta_seconds{job_id=\"job-b\"} 3\n"));
  EXPECT_THAT(text, HasSubstr("bertd_job_eval_metric{job_id=\"job-b\",metric=\"accuracy\"} 0.75\n"));
  EXPECT_THAT(text, HasSubstr("bertd_job_eval_metric{job_id=\"job-b\",metric=\"eval_loss\"} 0.5\n"));
  EXPECT_THAT(text, HasSubstr("bertd_job_running{job_id=\"job-b\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("bertd_checkpoints_total 2\n"));
  EXPECT_THAT(text, HasSubstr("bertd_job_last_checkpoint_timestamp_seconds{job_id=\"job-b\"} 1700000000\n"));
  // Only the checkpoint that reported its duration is observed; 0.3 s falls in the 0.4 s bucket.
  EXPECT_THAT(text, HasSubstr("bertd_checkpoint_duration_seconds_count 1\n"));
  EXPECT_THAT(text, HasSubstr("bertd_checkpoint_duration_seconds_bucket{le=\"0.2\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("bertd_checkpoint_duration_seconds_bucket{le=\"0.4\"} 1\n"));
}

TEST_F(TrainingMetricsTest, DataParallelJobsReportWorldSizeAllReduceTimeAndEachRank) {
  State("job-d", "QUEUED");
  State("job-d", "RUNNING", "cpu-0");
  metrics_.OnJobEvent("job-d", "progress", R"({"step":1,"loss":0.7})");
  std::string text = Scrape();
  // One process: no data-parallel series.
  EXPECT_THAT(text, Not(HasSubstr("bertd_job_world_size{")));
  EXPECT_THAT(text, Not(HasSubstr("bertd_job_rank_samples_per_second{")));
  metrics_.OnJobEvent("job-d", "progress",
                      R"({"step":2,"loss":0.6,"world_size":2,"allreduce_seconds_per_step":0.0125,)"
                      R"("rank_samples_per_second":[40.5,39]})");
  text = Scrape();
  EXPECT_THAT(text, HasSubstr("bertd_job_world_size{job_id=\"job-d\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("bertd_job_allreduce_seconds_per_step{job_id=\"job-d\"} 0.0125\n"));
  EXPECT_THAT(text, HasSubstr("bertd_job_rank_samples_per_second{job_id=\"job-d\",rank=\"0\"} 40.5\n"));
  EXPECT_THAT(text, HasSubstr("bertd_job_rank_samples_per_second{job_id=\"job-d\",rank=\"1\"} 39\n"));
}

TEST_F(TrainingMetricsTest, PerJobSeriesExpireAfterTheRetention) {
  State("job-c", "QUEUED");
  State("job-c", "RUNNING", "cpu-0");
  metrics_.OnJobEvent("job-c", "progress", R"({"step":1,"loss":1.5})");
  State("job-c", "SUCCEEDED", "cpu-0");
  clock_.now += absl::Minutes(4);
  std::string text = Scrape();
  EXPECT_THAT(text, HasSubstr("bertd_job_loss{job_id=\"job-c\"} 1.5\n"));  // still visible
  EXPECT_THAT(text, HasSubstr("bertd_job_running{job_id=\"job-c\"} 0\n"));
  clock_.now += absl::Minutes(1);
  text = Scrape();
  EXPECT_THAT(text, Not(HasSubstr("job-c")));
  EXPECT_THAT(text, HasSubstr("bertd_jobs{state=\"SUCCEEDED\"} 1\n"));  // the count stays

  // A job that comes back (requeued after a restart) gets its series again.
  State("job-c2", "RUNNING", "cpu-0");
  State("job-c2", "QUEUED");
  clock_.now += absl::Minutes(3);
  State("job-c2", "RUNNING", "cpu-1");
  clock_.now += absl::Minutes(10);
  EXPECT_THAT(Scrape(), HasSubstr("bertd_job_info{job_id=\"job-c2\",worker=\"cpu-1\"} 1\n"));
}

TEST_F(TrainingMetricsTest, IgnoresMalformedEventsAndJobsItNeverSawRun) {
  metrics_.OnJobEvent("job-d", "state", "not json");
  metrics_.OnJobEvent("job-d", "state", R"({"attempts":1})");
  metrics_.OnJobEvent("job-d", "progress", R"({"step":1,"loss":2})");  // never RUNNING here
  State("job-e", "RUNNING", "cpu-0");
  metrics_.OnJobEvent("job-e", "progress", R"({"loss":"high","step":3})");
  metrics_.OnJobEvent("job-e", "eval", R"({"metrics":[1,2]})");
  std::string text = Scrape();
  EXPECT_THAT(text, Not(HasSubstr("job-d")));
  EXPECT_THAT(text, HasSubstr("bertd_job_step{job_id=\"job-e\"} 3\n"));
  EXPECT_THAT(text, HasSubstr("bertd_job_loss{job_id=\"job-e\"} 0\n"));  // a string is not a loss
  EXPECT_THAT(text, Not(HasSubstr("bertd_job_eval_metric{")));
}

}  // namespace
}  // namespace bertd::metrics
