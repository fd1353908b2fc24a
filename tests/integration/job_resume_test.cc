// A training job survives SIGKILL of the whole server: after a restart it resumes from its last
// checkpoint and ends with the same weights as an uninterrupted run with the same seed.
#include <filesystem>

#include "bertd_process.h"
#include "gtest/gtest.h"
#include "job_client.h"
#include "model/io/safetensors.h"
#include "test_util.h"

#include <torch/torch.h>

namespace bertd::testing {
namespace {

namespace fs = std::filesystem;

v1::JobSpec ResumableSpec(const std::string& output) {
  v1::JobSpec spec;
  spec.set_task(v1::TRAINING_TASK_SEQUENCE_CLASSIFICATION);
  spec.set_base_model("classifier");
  spec.set_train_dataset("sst2-sample");
  spec.set_output_model(output);
  auto* hp = spec.mutable_hyperparameters();
  hp->set_max_steps(300);
  hp->set_per_device_train_batch_size(8);
  hp->set_learning_rate(1e-3);
  hp->set_save_steps(20);
  hp->set_max_seq_length(32);
  hp->set_seed(7);
  return spec;
}

// Follows the job's events; returns the final state, or UNSPECIFIED if `stop_at_checkpoint` and a
// checkpoint event came first.
v1::JobState Follow(const std::shared_ptr<grpc::Channel>& channel, const std::string& job_id,
                    bool stop_at_checkpoint, std::string* result_model,
                    std::vector<std::string>* logs = nullptr) {
  return WatchJob(channel, job_id, [&](const v1::JobEvent& event) {
    if (event.has_checkpoint() && stop_at_checkpoint && event.checkpoint().step() >= 20) return false;
    if (event.has_log() && logs) logs->push_back(event.log().line());
    if (event.has_state() && result_model) *result_model = event.state().result_model();
    return true;
  });
}

TEST(JobResumeTest, SigkillMidJobThenRestartResumesToTheSameWeights) {
  BERTD_REQUIRE_SHARED("data/glue/SST-2/dev.tsv");
  std::string data_dir = MakeTempDir("bertd-resume");
  InstallFixtureModel("classifier", data_dir + "/models", "classifier");
  // The fixture classifier has 3 labels; SST-2 has 2: the head is re-initialized (seeded).
  std::string interrupted_model;
  {
    BertdProcess server(data_dir);
    ASSERT_TRUE(server.WaitUntilServing()) << server.log();
    grpc::Status uploaded = UploadSst2Tsv(server.channel(), "sst2-sample", Sst2DevRows(64));
    ASSERT_TRUE(uploaded.ok()) << uploaded.error_message();
    v1::Job job = SubmitJob(server.channel(), ResumableSpec("interrupted"));
    ASSERT_FALSE(job.id().empty());
    ASSERT_EQ(Follow(server.channel(), job.id(), /*stop_at_checkpoint=*/true, nullptr),
              v1::JOB_STATE_UNSPECIFIED) << "job ended before its first checkpoint";
    server.Kill();

    BertdProcess restarted(data_dir);
    ASSERT_TRUE(restarted.WaitUntilServing()) << restarted.log();
    std::vector<std::string> logs;
    ASSERT_EQ(Follow(restarted.channel(), job.id(), false, &interrupted_model, &logs),
              v1::JOB_STATE_SUCCEEDED) << restarted.log();
    // It continued from a checkpoint rather than starting over.
    bool resumed = false;
    for (const std::string& line : logs) {
      resumed = resumed || line.find("resumed from checkpoint at step") != std::string::npos;
    }
    EXPECT_TRUE(resumed) << "no 'resumed from checkpoint' log line after the restart";

    v1::Job reference_job = SubmitJob(restarted.channel(), ResumableSpec("uninterrupted"));
    std::string reference_model;
    ASSERT_EQ(Follow(restarted.channel(), reference_job.id(), false, &reference_model),
              v1::JOB_STATE_SUCCEEDED);
    EXPECT_EQ(interrupted_model, "interrupted@1");
    EXPECT_EQ(reference_model, "uninterrupted@1");
    EXPECT_EQ(restarted.Terminate(), 0);
  }
  auto a = model::ReadSafetensors(data_dir + "/models/interrupted/1/model.safetensors");
  auto b = model::ReadSafetensors(data_dir + "/models/uninterrupted/1/model.safetensors");
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok()) << b.status();
  for (const auto& [name, tensor] : *a) {
    EXPECT_TRUE(torch::allclose(tensor, b->at(name), 0, 1e-5)) << name;
  }
  fs::remove_all(data_dir);
}

}  // namespace
}  // namespace bertd::testing
