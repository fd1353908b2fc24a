// Fine-tunes with bertctl against a real bertd, as a new user would: upload a TSV, submit with
// --follow, classify with the new model, inspect jobs and datasets; and the ways a job ends badly
// (bad data refused up front, a job that FAILS at run time, Ctrl-C with --cancel-on-interrupt).
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "bertctl_process.h"
#include "bertd_process.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "test_util.h"

namespace bertd::testing {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kFixture[] = "fixtures/tiny-bert/classifier/model.safetensors";
constexpr char kSst2Dev[] = "data/glue/SST-2/dev.tsv";

// One server per test: ctest runs each test in its own process anyway.
class BertctlTrainingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    BERTD_REQUIRE_SHARED(kFixture);
    BERTD_REQUIRE_SHARED(kSst2Dev);
    data_dir_ = MakeTempDir("bertctl-training-e2e");
    // Two copies of the classifier: `base2` can be unloaded without touching `classifier`.
    for (const char* name : {"classifier", "base2"}) {
      InstallFixtureModel("classifier", data_dir_ + "/models", name);
    }
    // The header and the first 32 rows of SST-2 dev: both labels, real sentences.
    train_tsv_ = data_dir_ + "/small.tsv";
    std::ifstream dev(SharedPath(kSst2Dev));
    std::ofstream train(train_tsv_);
    std::string line;
    for (int i = 0; i < 33 && std::getline(dev, line); ++i) train << line << "\n";
    train.close();
    server_ = std::make_unique<BertdProcess>(data_dir_);
    ASSERT_TRUE(server_->WaitUntilServing()) << server_->log();
  }

  void TearDown() override {
    if (server_ != nullptr) {
      server_->Terminate();
      server_.reset();
    }
    if (!data_dir_.empty()) fs::remove_all(data_dir_);
  }

  std::vector<std::string> WithServer(std::vector<std::string> args) const {
    args.insert(args.begin(), "--server=127.0.0.1:" + std::to_string(server_->grpc_port()));
    return args;
  }

  BertctlResult Run(std::vector<std::string> args) const { return BertctlProcess(WithServer(args)).Wait(); }

  static nlohmann::json Json(const BertctlResult& result) {
    nlohmann::json json = nlohmann::json::parse(result.out, nullptr, false);
    EXPECT_FALSE(json.is_discarded()) << "not JSON: " << result.out << result.err;
    return json;
  }

  // Submits without following and returns the job id.
  std::string SubmitQuietly(const std::string& base_model, const std::string& output,
                            const std::string& max_steps) const {
    BertctlResult submit = Run({"submit-job", "--task", "sequence_classification", "--train", train_tsv_,
                         "--base-model", base_model, "--output", output, "--set",
                         "max_steps=" + max_steps, "-o", "json"});
    EXPECT_EQ(submit.exit_code, 0) << submit.err;
    return Json(submit).value("id", "");
  }

  std::string JobState(const std::string& id) const {
    BertctlResult get = Run({"jobs", "get", id, "--output", "json"});
    EXPECT_EQ(get.exit_code, 0) << get.err;
    return Json(get).value("state", "");
  }

  std::string data_dir_;
  std::string train_tsv_;
  std::unique_ptr<BertdProcess> server_;
};

TEST_F(BertctlTrainingTest, FineTunesFollowsAndServesTheNewModel) {
  BertctlResult job = Run({"submit-job", "--task", "sequence_classification", "--train", train_tsv_,
                    "--base-model", "classifier", "--output", "sst2", "--set", "max_steps=10",
                    "--set", "per_device_train_batch_size=8", "--eval-split", "0.25", "--follow"});
  ASSERT_EQ(job.exit_code, 0) << job.out << job.err;
  EXPECT_THAT(job.err, HasSubstr("32 rows"));  // the upload
  EXPECT_THAT(job.out, HasSubstr("24 training and 8 evaluation examples"));
  EXPECT_THAT(job.out, HasSubstr("step 10/10"));  // stdout is a file: plain progress lines
  EXPECT_THAT(job.out, HasSubstr("state: succeeded"));
  EXPECT_THAT(job.out, HasSubstr("eval metrics: accuracy="));
  EXPECT_THAT(job.out, HasSubstr("model: sst2@1"));

  BertctlResult classify = Run({"classify", "a gripping film", "--model", "sst2", "--output", "json"});
  ASSERT_EQ(classify.exit_code, 0) << classify.err;
  nlohmann::json parsed = Json(classify);
  EXPECT_EQ(parsed["modelVersion"], "sst2@1");
  ASSERT_EQ(parsed["results"].size(), 1u);
  std::set<std::string> labels;
  for (const auto& score : parsed["results"][0]["scores"]) labels.insert(score["label"]);
  EXPECT_EQ(labels, (std::set<std::string>{"0", "1"}));  // SST-2's labels, not the base's three

  BertctlResult list = Run({"jobs", "list"});
  ASSERT_EQ(list.exit_code, 0) << list.err;
  EXPECT_THAT(list.out, HasSubstr("succeeded"));
  EXPECT_THAT(list.out, HasSubstr("sst2@1"));
  nlohmann::json jobs = Json(Run({"jobs", "list", "-o", "json"}));
  ASSERT_EQ(jobs["jobs"].size(), 1u);
  const std::string id = jobs["jobs"][0]["id"];
  BertctlResult get = Run({"jobs", "get", id});
  ASSERT_EQ(get.exit_code, 0) << get.err;
  EXPECT_THAT(get.out, HasSubstr("accuracy="));
  EXPECT_THAT(get.out, HasSubstr("step 10/10"));
  nlohmann::json got = Json(Run({"jobs", "get", id, "-o", "json"}));
  EXPECT_EQ(got["state"], "JOB_STATE_SUCCEEDED");
  EXPECT_EQ(got["resultModel"], "sst2@1");
  EXPECT_TRUE(got["evalMetrics"].contains("accuracy"));

  BertctlResult datasets = Run({"datasets", "list", "-o", "json"});
  ASSERT_EQ(datasets.exit_code, 0) << datasets.err;
  nlohmann::json stored = Json(datasets)["datasets"];
  ASSERT_EQ(stored.size(), 1u);
  EXPECT_EQ(stored[0]["rows"], "32");  // int64 is a string in proto JSON
  EXPECT_THAT(Run({"datasets", "list"}).out, HasSubstr("small-"));

  // The same file again is not uploaded twice, and the next version is sst2@2.
  BertctlResult again = Run({"submit-job", "--task", "sequence_classification", "--train", train_tsv_,
                      "--base-model", "classifier", "--output", "sst2", "--set", "max_steps=2",
                      "--follow"});
  ASSERT_EQ(again.exit_code, 0) << again.out << again.err;
  EXPECT_THAT(again.out, HasSubstr("model: sst2@2"));
  EXPECT_EQ(Json(Run({"datasets", "list", "-o", "json"}))["datasets"].size(), 1u);
}

TEST_F(BertctlTrainingTest, BadDataAndBadSpecsAreRefusedBeforeTraining) {
  BertctlResult no_column = Run({"datasets", "upload", train_tsv_, "--name", "bad", "--label", "polarity"});
  EXPECT_EQ(no_column.exit_code, 1);
  EXPECT_THAT(no_column.err, HasSubstr("unknown label column \"polarity\""));
  BertctlResult pair = Run({"submit-job", "--task", "sentence_pair_classification", "--train", train_tsv_,
                     "--base-model", "classifier", "--output", "x"});
  EXPECT_EQ(pair.exit_code, 1);
  EXPECT_THAT(pair.err, HasSubstr("text_pair"));
  BertctlResult lr = Run({"submit-job", "--task", "sequence_classification", "--train", train_tsv_,
                   "--base-model", "classifier", "--output", "x", "--set", "learning_rate=2"});
  EXPECT_EQ(lr.exit_code, 1);
  EXPECT_THAT(lr.err, HasSubstr("learning_rate"));
  EXPECT_EQ(Json(Run({"jobs", "list", "-o", "json"})).value("jobs", nlohmann::json::array()).size(), 0u);
}

// A job that is valid at submit but FAILS when it runs: its base model is unloaded while it waits
// behind another job (one cpu worker). The job it waited for is cancelled.
TEST_F(BertctlTrainingTest, FailedAndCancelledJobsExitWith3) {
  const std::string blocker = SubmitQuietly("classifier", "long", "100000");
  const std::string doomed = SubmitQuietly("base2", "doomed", "5");
  ASSERT_FALSE(blocker.empty());
  ASSERT_FALSE(doomed.empty());
  EXPECT_EQ(JobState(doomed), "JOB_STATE_QUEUED");
  BertctlResult unload = Run({"models", "unload", "base2"});
  ASSERT_EQ(unload.exit_code, 0) << unload.err;
  BertctlResult cancel = Run({"jobs", "cancel", blocker});
  ASSERT_EQ(cancel.exit_code, 0) << cancel.err;

  BertctlResult blocker_watch = Run({"jobs", "watch", blocker});
  EXPECT_EQ(blocker_watch.exit_code, 3) << blocker_watch.out << blocker_watch.err;
  EXPECT_THAT(blocker_watch.out, HasSubstr("cancelled"));
  EXPECT_EQ(JobState(blocker), "JOB_STATE_CANCELLED");

  BertctlResult watch = Run({"jobs", "watch", doomed});
  EXPECT_EQ(watch.exit_code, 3) << watch.out << watch.err;
  EXPECT_THAT(watch.out, HasSubstr("failed: base_model: model 'base2' is not loaded"));
  BertctlResult get = Run({"jobs", "get", doomed});
  EXPECT_THAT(get.out, HasSubstr("failed"));
  EXPECT_THAT(get.out, HasSubstr("is not loaded"));
  EXPECT_EQ(JobState(doomed), "JOB_STATE_FAILED");
  EXPECT_EQ(Run({"jobs", "logs", doomed}).exit_code, 3);
  BertctlResult failed = Run({"jobs", "list", "--state", "failed"});
  EXPECT_THAT(failed.out, HasSubstr(doomed));
  EXPECT_THAT(failed.out, Not(HasSubstr(blocker)));
}

TEST_F(BertctlTrainingTest, InterruptWithCancelOnInterruptCancelsTheJob) {
  BertctlProcess follow(WithServer({"submit-job", "--task", "sequence_classification", "--train",
                                    train_tsv_, "--base-model", "classifier", "--output", "long",
                                    "--set", "max_steps=100000", "--follow",
                                    "--cancel-on-interrupt"}));
  // The first progress line: the job runs and bertctl has its SIGINT handler in place.
  ASSERT_TRUE(follow.WaitForOutput("step 1/100000", 30)) << follow.Wait().err;
  follow.Signal(SIGINT);
  BertctlResult result = follow.Wait();
  EXPECT_EQ(result.exit_code, 3) << result.out << result.err;
  EXPECT_THAT(result.err, HasSubstr("cancelled job job-"));
  nlohmann::json jobs = Json(Run({"jobs", "list", "-o", "json"}));
  ASSERT_EQ(jobs["jobs"].size(), 1u);
  const std::string id = jobs["jobs"][0]["id"];
  // Cancelling a RUNNING job takes effect at its next step; watch waits for the final state.
  EXPECT_EQ(Run({"jobs", "watch", id}).exit_code, 3);
  EXPECT_EQ(JobState(id), "JOB_STATE_CANCELLED");
}

}  // namespace
}  // namespace bertd::testing
