// Faults (issue #8): the server is killed in the middle of an upload and in the middle of writing a
// checkpoint, its disk fills up, a loaded model's directory disappears, clients go away
// mid-stream. Nothing partial may appear, nothing committed may be lost, and the server keeps
// serving.
#include <signal.h>
#include <sys/mount.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "bertd/v1/datasets.grpc.pb.h"
#include "bertd/v1/inference.grpc.pb.h"
#include "bertd/v1/jobs.grpc.pb.h"
#include "bertd/v1/models.grpc.pb.h"
#include "bertd_process.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "job_client.h"
#include "test_util.h"

namespace bertd::testing {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using Clock = std::chrono::steady_clock;

constexpr char kFixture[] = "fixtures/tiny-bert/classifier/model.safetensors";

// The classifier fixture without its second weights file (pytorch_model.bin): 4 MB.
void InstallSmallClassifier(const std::string& repository) {
  const fs::path target = fs::path(repository) / "classifier" / "1";
  fs::create_directories(target);
  for (const char* file : {"config.json", "vocab.txt", "model.safetensors"}) {
    fs::copy_file(SharedPath(std::string("fixtures/tiny-bert/classifier/") + file), target / file);
  }
}

std::vector<std::string> DatasetNames(const std::shared_ptr<grpc::Channel>& channel) {
  auto stub = v1::DatasetService::NewStub(channel);
  v1::ListDatasetsResponse response;
  grpc::ClientContext context;
  EXPECT_TRUE(stub->ListDatasets(&context, {}, &response).ok());
  std::vector<std::string> names;
  for (const v1::Dataset& dataset : response.datasets()) names.push_back(dataset.name());
  return names;
}

std::vector<std::string> Entries(const fs::path& dir) {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) names.push_back(entry.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

grpc::Status Classify(const std::shared_ptr<grpc::Channel>& channel, const std::string& text) {
  auto stub = v1::InferenceService::NewStub(channel);
  v1::ClassifyRequest request;
  request.set_model("classifier");
  request.add_inputs()->set_text(text);
  v1::ClassifyResponse response;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  return stub->Classify(&context, request, &response);
}

// An upload of `chunks` TSV chunks of ~64 KB, `pause` apart; returns when the stream ends.
grpc::Status SlowUpload(const std::shared_ptr<grpc::Channel>& channel, const std::string& name,
                        int chunks, std::chrono::milliseconds pause, grpc::ClientContext* context,
                        std::atomic<int>* sent = nullptr) {
  auto stub = v1::DatasetService::NewStub(channel);
  v1::Dataset dataset;
  auto writer = StartSst2Upload(stub.get(), name, context, &dataset);
  std::string rows = "sentence\tlabel\n";
  while (rows.size() < 64 * 1024) rows += "a perfectly ordinary sentence\t1\n";
  for (int i = 0; i < chunks; ++i) {
    v1::UploadDatasetRequest chunk;
    chunk.set_chunk(i == 0 ? rows : rows.substr(rows.find('\n') + 1));
    if (!writer->Write(chunk)) break;
    if (sent) ++*sent;
    std::this_thread::sleep_for(pause);
  }
  writer->WritesDone();
  return writer->Finish();
}

class FaultTest : public ::testing::Test {
 protected:
  void SetUp() override {
    BERTD_REQUIRE_SHARED(kFixture);
    BERTD_REQUIRE_SHARED("data/glue/SST-2/dev.tsv");
    data_dir_ = MakeTempDir("bertd-fault");
  }
  void TearDown() override {
    server_.reset();
    if (mounted_) ::umount2(data_dir_.c_str(), MNT_DETACH);
    if (!data_dir_.empty()) fs::remove_all(data_dir_);
  }
  void Start(std::vector<std::string> flags = {}) {
    server_ = std::make_unique<BertdProcess>(data_dir_, std::move(flags));
    ASSERT_TRUE(server_->WaitUntilServing()) << server_->log();
  }

  std::string data_dir_;
  bool mounted_ = false;
  std::unique_ptr<BertdProcess> server_;
};

TEST_F(FaultTest, KilledDuringAnUploadLeavesNoPartialDatasetAndKeepsTheOthers) {
  InstallSmallClassifier(data_dir_ + "/models");
  Start();
  ASSERT_TRUE(UploadSst2Tsv(server_->channel(), "kept", Sst2DevRows(50)).ok());
  const std::vector<std::string> committed = Entries(fs::path(data_dir_) / "datasets");
  ASSERT_EQ(committed.size(), 1u);
  const std::string kept_file = data_dir_ + "/datasets/" + committed[0] + "/data.tsv";
  const std::string kept_bytes = ReadWholeFile(kept_file);

  std::atomic<int> sent{0};
  std::thread upload([&] {
    grpc::ClientContext context;
    SlowUpload(server_->channel(), "interrupted", 400, std::chrono::milliseconds(10), &context, &sent);
  });
  while (sent.load() < 20) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  // Mid-stream: the server has a temporary file with part of the upload.
  bool partial_on_disk = false;
  for (const std::string& name : Entries(fs::path(data_dir_) / "datasets")) {
    partial_on_disk = partial_on_disk || name.rfind(".tmp-", 0) == 0;
  }
  EXPECT_TRUE(partial_on_disk) << "the upload was not in flight when the server was killed";
  server_->Kill();
  upload.join();

  Start();
  EXPECT_EQ(DatasetNames(server_->channel()), std::vector<std::string>{"kept"});
  EXPECT_EQ(Entries(fs::path(data_dir_) / "datasets"), committed) << "a partial upload survived";
  EXPECT_EQ(ReadWholeFile(kept_file), kept_bytes);
  // And the name is free for the upload to be made again.
  grpc::ClientContext context;
  EXPECT_TRUE(SlowUpload(server_->channel(), "interrupted", 3, std::chrono::milliseconds(0), &context).ok());
}

TEST_F(FaultTest, KilledWhileWritingACheckpointResumesFromThePreviousOne) {
  // A model whose checkpoint takes long enough to write that the server can be killed in it:
  // scratch:mini with the 30522-token vocabulary of the fixture (~100 MB with the AdamW state).
  InstallSmallClassifier(data_dir_ + "/models");
  Start();
  ASSERT_TRUE(UploadSst2Tsv(server_->channel(), "sst2", Sst2DevRows(64)).ok());
  v1::JobSpec spec;
  spec.set_task(v1::TRAINING_TASK_SEQUENCE_CLASSIFICATION);
  spec.set_base_model("scratch:mini");
  spec.mutable_vocabulary()->set_source("model:classifier");
  spec.set_train_dataset("sst2");
  spec.set_output_model("resumed");
  auto* hp = spec.mutable_hyperparameters();
  hp->set_max_steps(12);
  hp->set_save_steps(2);
  hp->set_per_device_train_batch_size(4);
  hp->set_max_seq_length(16);
  const v1::Job job = SubmitJob(server_->channel(), spec);
  const fs::path work = fs::path(data_dir_) / "jobs" / job.id() / "work";

  // Kill the moment a checkpoint directory is being written (after the first complete one).
  std::string latest_before;
  bool killed_mid_write = false;
  for (auto until = Clock::now() + std::chrono::seconds(120); Clock::now() < until && !killed_mid_write;) {
    if (fs::exists(work / "latest")) {
      for (const std::string& name : Entries(work)) {
        if (name.rfind(".tmp-checkpoint-", 0) == 0) {
          server_->Kill();
          killed_mid_write = true;
          latest_before = ReadWholeFile((work / "latest").string());
          break;
        }
      }
    }
    std::this_thread::sleep_for(std::chrono::microseconds(500));
  }
  ASSERT_TRUE(killed_mid_write) << "never saw a checkpoint being written";
  ASSERT_FALSE(latest_before.empty());
  // The checkpoint `latest` names is complete; the one being written is not published.
  for (const char* file : {"model.safetensors", "optimizer.pt", "rng.pt", "trainer_state.json"}) {
    EXPECT_TRUE(fs::exists(work / latest_before / file)) << latest_before << "/" << file;
  }
  const int64_t resumable_step = std::stoll(latest_before.substr(strlen("checkpoint-")));

  Start();
  std::vector<std::string> logs;
  const v1::JobState state = WatchJob(server_->channel(), job.id(), [&](const v1::JobEvent& event) {
    if (event.has_log()) logs.push_back(event.log().line());
    return true;
  });
  ASSERT_EQ(state, v1::JOB_STATE_SUCCEEDED) << GetJob(server_->channel(), job.id()).error();
  const std::string expected = "resumed from checkpoint at step " + std::to_string(resumable_step);
  bool resumed = false;
  for (const std::string& line : logs) resumed = resumed || line.find(expected) != std::string::npos;
  EXPECT_TRUE(resumed) << "expected '" << expected << "' after the restart";
}

TEST_F(FaultTest, AFullDiskIsAClearErrorAndInferenceGoesOn) {
  fs::create_directories(data_dir_);
  if (::mount("tmpfs", data_dir_.c_str(), "tmpfs", 0, "size=24m") != 0) {
    GTEST_SKIP() << "cannot mount a small tmpfs for the data directory (needs root or "
                    "CAP_SYS_ADMIN): " << strerror(errno);
  }
  mounted_ = true;
  InstallSmallClassifier(data_dir_ + "/models");
  Start();
  ASSERT_TRUE(Classify(server_->channel(), "before the disk fills").ok());
  // Fill the disk, then give back 1 MB.
  const std::string filler = data_dir_ + "/filler";
  {
    std::ofstream out(filler, std::ios::binary);
    const std::string block(1 << 16, 'x');
    while (out.write(block.data(), block.size())) {
    }
  }
  fs::resize_file(filler, fs::file_size(filler) - (1 << 20));
  // 4 MB of TSV does not fit: the upload fails naming the cause, and leaves nothing.
  grpc::ClientContext context;
  grpc::Status upload = SlowUpload(server_->channel(), "too-big", 64, std::chrono::milliseconds(0), &context);
  EXPECT_EQ(upload.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << upload.error_message();
  EXPECT_THAT(upload.error_message(), HasSubstr("No space left on device"));
  EXPECT_TRUE(DatasetNames(server_->channel()).empty());
  for (const std::string& name : Entries(fs::path(data_dir_) / "datasets")) {
    EXPECT_NE(name.rfind(".tmp-", 0), 0u) << "partial upload left behind: " << name;
  }
  // Inference never needed the disk.
  EXPECT_TRUE(Classify(server_->channel(), "while the disk is full").ok());
  EXPECT_TRUE(server_->WaitUntilServing("", 5));

  // A job that cannot write its model fails with the reason; the server goes on.
  fs::resize_file(filler, fs::file_size(filler) - (512 << 10));
  ASSERT_TRUE(UploadSst2Tsv(server_->channel(), "small", Sst2DevRows(16)).ok());
  v1::JobSpec spec;
  spec.set_task(v1::TRAINING_TASK_SEQUENCE_CLASSIFICATION);
  spec.set_base_model("classifier");
  spec.set_train_dataset("small");
  spec.set_output_model("nowhere");
  spec.mutable_hyperparameters()->set_max_steps(2);
  spec.mutable_hyperparameters()->set_max_seq_length(16);
  const v1::Job job = SubmitJob(server_->channel(), spec);
  EXPECT_EQ(WatchJob(server_->channel(), job.id(), nullptr), v1::JOB_STATE_FAILED);
  EXPECT_THAT(GetJob(server_->channel(), job.id()).error(), HasSubstr("No space left on device"));
  EXPECT_TRUE(Classify(server_->channel(), "after the failed job").ok());

  // Space again: uploads work again.
  fs::remove(filler);
  grpc::ClientContext again;
  EXPECT_TRUE(SlowUpload(server_->channel(), "fits-now", 8, std::chrono::milliseconds(0), &again).ok());
}

TEST_F(FaultTest, ADeletedModelDirectoryLeavesTheLoadedModelServing) {
  InstallSmallClassifier(data_dir_ + "/models");
  Start();
  ASSERT_TRUE(Classify(server_->channel(), "before").ok());
  fs::remove_all(data_dir_ + "/models/classifier");
  // The weights are in memory: requests go on, and the model is still listed as READY.
  EXPECT_TRUE(Classify(server_->channel(), "after the directory is gone").ok());
  auto models = v1::ModelService::NewStub(server_->channel());
  {
    v1::GetModelRequest request;
    request.set_model("classifier");
    v1::ModelInfo info;
    grpc::ClientContext context;
    ASSERT_TRUE(models->GetModel(&context, request, &info).ok());
    EXPECT_EQ(info.state(), v1::MODEL_STATE_READY);
  }
  // Loading it again says what is missing, and does not take the served copy down.
  {
    v1::LoadModelRequest request;
    request.set_name("classifier");
    request.set_version("1");
    v1::ModelInfo info;
    grpc::ClientContext context;
    grpc::Status status = models->LoadModel(&context, request, &info);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
    EXPECT_THAT(status.error_message(), HasSubstr("no model directory"));
  }
  EXPECT_TRUE(Classify(server_->channel(), "still served").ok());
  {
    v1::UnloadModelRequest request;
    request.set_model("classifier");
    v1::UnloadModelResponse response;
    grpc::ClientContext context;
    EXPECT_TRUE(models->UnloadModel(&context, request, &response).ok());
  }
  EXPECT_EQ(Classify(server_->channel(), "unloaded").error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_TRUE(server_->WaitUntilServing("", 5));
}

TEST_F(FaultTest, ClientsThatGoAwayMidStreamLeaveNothingBehind) {
  InstallSmallClassifier(data_dir_ + "/models");
  Start();
  // An upload whose client cancels halfway.
  {
    grpc::ClientContext context;
    std::atomic<int> sent{0};
    std::thread cancel([&] {
      while (sent.load() < 10) std::this_thread::sleep_for(std::chrono::milliseconds(2));
      context.TryCancel();
    });
    grpc::Status status = SlowUpload(server_->channel(), "abandoned", 200, std::chrono::milliseconds(5), &context, &sent);
    cancel.join();
    EXPECT_EQ(status.error_code(), grpc::StatusCode::CANCELLED);
  }
  // Watchers of a running job that disconnect.
  ASSERT_TRUE(UploadSst2Tsv(server_->channel(), "sst2", Sst2DevRows(32)).ok());
  v1::JobSpec spec;
  spec.set_task(v1::TRAINING_TASK_SEQUENCE_CLASSIFICATION);
  spec.set_base_model("classifier");
  spec.set_train_dataset("sst2");
  spec.set_output_model("watched");
  spec.mutable_hyperparameters()->set_max_steps(400);
  spec.mutable_hyperparameters()->set_max_seq_length(16);
  const v1::Job job = SubmitJob(server_->channel(), spec);
  for (int i = 0; i < 8; ++i) {
    int events = 0;
    WatchJob(server_->channel(), job.id(), [&](const v1::JobEvent&) { return ++events < 3; });
  }
  EXPECT_EQ(WatchJob(server_->channel(), job.id(), nullptr), v1::JOB_STATE_SUCCEEDED);
  for (auto until = Clock::now() + std::chrono::seconds(10); Clock::now() < until;) {
    bool temp = false;
    for (const std::string& name : Entries(fs::path(data_dir_) / "datasets")) temp = temp || name.rfind(".tmp-", 0) == 0;
    if (!temp) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  for (const std::string& name : Entries(fs::path(data_dir_) / "datasets")) {
    EXPECT_NE(name.rfind(".tmp-", 0), 0u) << "abandoned upload left behind: " << name;
  }
  EXPECT_EQ(DatasetNames(server_->channel()), std::vector<std::string>{"sst2"});
  EXPECT_TRUE(Classify(server_->channel(), "still fine").ok());
  // Nothing the departed clients left holds the shutdown up.
  const auto stopping = Clock::now();
  EXPECT_EQ(server_->Terminate(), 0);
  EXPECT_LT(std::chrono::duration<double>(Clock::now() - stopping).count(), 20.0);
}

}  // namespace
}  // namespace bertd::testing
