// The training pool (issue #17) through the real server: every job runs in a worker process of its
// own, pinned to the slot it holds; a pool of two CPU slots runs two jobs and queues a third; a
// worker killed with SIGKILL, or out of memory under --training_memory_limit, fails its job with a
// reason a user understands while the server goes on serving; a job that can never fit is refused
// at submit; a job checkpointed on one slot resumes on another.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "bertd/v1/inference.grpc.pb.h"
#include "bertd/v1/jobs.grpc.pb.h"
#include "bertd/v1/server.grpc.pb.h"
#include "bertd_process.h"
#include "job_client.h"
#include "test_util.h"

namespace bertd::testing {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

// The pid of the worker process of `job_id` (0: none), read from /proc like an operator would.
pid_t WorkerOf(const std::string& data_dir, const std::string& job_id) {
  const std::string plan = "--worker_plan=" + data_dir + "/jobs/" + job_id + "/plan.json";
  for (const auto& entry : fs::directory_iterator("/proc")) {
    const std::string name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    if (ReadWholeFile(entry.path().string() + "/cmdline").find(plan) != std::string::npos) {
      return std::stoi(name);
    }
  }
  return 0;
}

// A field of /proc/<pid>/status ("PPid", "Cpus_allowed_list").
std::string StatusField(pid_t pid, const std::string& field) {
  std::stringstream status(ReadWholeFile("/proc/" + std::to_string(pid) + "/status"));
  for (std::string line; std::getline(status, line);) {
    if (line.rfind(field + ":", 0) == 0) {
      line = line.substr(field.size() + 1);
      return line.substr(line.find_first_not_of(" \t"));
    }
  }
  return "";
}

class DevicePoolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    BERTD_REQUIRE_SHARED("fixtures/tiny-bert/classifier/config.json");
    BERTD_REQUIRE_SHARED("data/glue/SST-2/dev.tsv");
    data_dir_ = MakeTempDir("bertd-pool");
    InstallFixtureModel("classifier", data_dir_ + "/models", "classifier");
  }
  void TearDown() override {
    server_.reset();
    fs::remove_all(data_dir_);
  }

  void Start(std::vector<std::string> flags) {
    server_ = std::make_unique<BertdProcess>(data_dir_, std::move(flags));
    ASSERT_TRUE(server_->WaitUntilServing()) << server_->log();
    jobs_ = v1::JobService::NewStub(server_->channel());
  }

  static v1::JobSpec Spec(const std::string& output, int64_t max_steps) {
    v1::JobSpec spec;
    spec.set_task(v1::TRAINING_TASK_SEQUENCE_CLASSIFICATION);
    spec.set_base_model("classifier");
    spec.set_train_dataset("sst2");
    spec.set_output_model(output);
    auto* hp = spec.mutable_hyperparameters();
    hp->set_max_steps(max_steps);
    hp->set_per_device_train_batch_size(8);
    hp->set_max_seq_length(32);
    hp->set_save_steps(10);
    return spec;
  }

  grpc::Status TrySubmit(const v1::JobSpec& spec, v1::Job* job) {
    grpc::ClientContext context;
    v1::SubmitJobRequest request;
    *request.mutable_spec() = spec;
    return jobs_->SubmitJob(&context, request, job);
  }

  v1::Job Wait(const std::string& id, const std::function<bool(const v1::Job&)>& done,
               int seconds = 120) {
    v1::Job job;
    for (auto until = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
         std::chrono::steady_clock::now() < until;) {
      job = GetJob(server_->channel(), id);
      if (done(job)) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return job;
  }
  static bool Running(const v1::Job& job) { return job.state() == v1::JOB_STATE_RUNNING; }
  static bool Final(const v1::Job& job) {
    return job.state() == v1::JOB_STATE_SUCCEEDED || job.state() == v1::JOB_STATE_FAILED ||
           job.state() == v1::JOB_STATE_CANCELLED;
  }

  void Cancel(const std::string& id) {
    grpc::ClientContext context;
    v1::CancelJobRequest request;
    request.set_job_id(id);
    v1::Job job;
    EXPECT_TRUE(jobs_->CancelJob(&context, request, &job).ok());
  }

  // Waits for the job's worker process to appear; 0 if it does not within 60 s.
  pid_t WaitForWorker(const std::string& id) {
    for (int i = 0; i < 600; ++i) {
      if (pid_t pid = WorkerOf(data_dir_, id); pid > 0) return pid;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return 0;
  }

  std::string data_dir_;
  std::unique_ptr<BertdProcess> server_;
  std::unique_ptr<v1::JobService::Stub> jobs_;
};

TEST_F(DevicePoolTest, TwoCpuSlotsRunTwoJobsEachInItsOwnWorkerProcessAndAThirdWaits) {
  Start({"--training_devices=cpu:2"});
  ASSERT_TRUE(UploadSst2Tsv(server_->channel(), "sst2", Sst2DevRows(24)).ok());
  std::vector<std::string> ids;
  for (const char* output : {"first", "second", "third"}) {
    ids.push_back(SubmitJob(server_->channel(), Spec(output, 1000000)).id());
  }
  const v1::Job first = Wait(ids[0], Running), second = Wait(ids[1], Running);
  ASSERT_TRUE(Running(first) && Running(second)) << server_->log();
  ASSERT_EQ(first.devices_size(), 1);
  ASSERT_EQ(second.devices_size(), 1);
  EXPECT_EQ(std::set<std::string>({first.devices(0), second.devices(0)}),
            std::set<std::string>({"cpu:0", "cpu:1"}));
  std::this_thread::sleep_for(std::chrono::seconds(1));
  v1::Job third = GetJob(server_->channel(), ids[2]);
  EXPECT_EQ(third.state(), v1::JOB_STATE_QUEUED);
  EXPECT_EQ(third.devices_size(), 0);

  // Each running job is a child process of the server, pinned to CPUs of its own.
  const pid_t a = WaitForWorker(ids[0]), b = WaitForWorker(ids[1]);
  ASSERT_GT(a, 0);
  ASSERT_GT(b, 0);
  EXPECT_NE(a, b);
  EXPECT_EQ(StatusField(a, "PPid"), std::to_string(server_->pid()));
  EXPECT_EQ(StatusField(b, "PPid"), std::to_string(server_->pid()));
  EXPECT_NE(StatusField(a, "Cpus_allowed_list"), StatusField(b, "Cpus_allowed_list"));
  EXPECT_EQ(WorkerOf(data_dir_, ids[2]), 0);

  // The listing and the metrics say the same.
  {
    grpc::ClientContext context;
    v1::ListJobsRequest request;
    request.set_state(v1::JOB_STATE_RUNNING);
    v1::ListJobsResponse response;
    ASSERT_TRUE(jobs_->ListJobs(&context, request, &response).ok());
    ASSERT_EQ(response.jobs_size(), 2);
    for (const v1::Job& job : response.jobs()) EXPECT_EQ(job.devices_size(), 1);
  }
  const std::string metrics = HttpGet(server_->metrics_port(), "/metrics");
  EXPECT_THAT(metrics, HasSubstr("bertd_training_slots{device_type=\"cpu\"} 2"));
  EXPECT_THAT(metrics, HasSubstr("bertd_training_slots_busy{device_type=\"cpu\"} 2"));
  {
    auto stub = v1::ServerService::NewStub(server_->channel());
    grpc::ClientContext context;
    v1::ServerInfo info;
    ASSERT_TRUE(stub->GetServerInfo(&context, v1::GetServerInfoRequest(), &info).ok());
    EXPECT_THAT(info.training_slots(), ElementsAre("cpu:0", "cpu:1"));
    EXPECT_EQ(info.training_workers(), 2);
  }

  // Each job's memory is its worker's resident memory (LibTorch alone is over 100 MiB).
  const v1::Job measured = Wait(ids[0], [](const v1::Job& job) {
    return job.progress().memory_bytes() > (int64_t{100} << 20);
  }, 60);
  EXPECT_GT(measured.progress().memory_bytes(), int64_t{100} << 20);
  EXPECT_LT(measured.progress().memory_bytes(), int64_t{4} << 30);
  EXPECT_THAT(HttpGet(server_->metrics_port(), "/metrics"),
              HasSubstr("bertd_job_memory_bytes{job_id=\"" + ids[0] + "\"}"));

  // When one ends, the third starts on the slot it freed; its worker ends with it.
  Cancel(ids[0]);
  EXPECT_EQ(Wait(ids[0], Final).state(), v1::JOB_STATE_CANCELLED);
  third = Wait(ids[2], Running);
  ASSERT_TRUE(Running(third)) << server_->log();
  EXPECT_THAT(third.devices(), ElementsAre(first.devices(0)));
  for (int i = 0; i < 100 && WorkerOf(data_dir_, ids[0]) != 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(WorkerOf(data_dir_, ids[0]), 0);
  Cancel(ids[1]);
  Cancel(ids[2]);
  for (const std::string& id : ids) EXPECT_EQ(Wait(id, Final).state(), v1::JOB_STATE_CANCELLED);
}

TEST_F(DevicePoolTest, AJobThatCanNeverFitIsRefusedAtSubmit) {
  Start({"--training_devices=cpu:1"});
  ASSERT_TRUE(UploadSst2Tsv(server_->channel(), "sst2", Sst2DevRows(24)).ok());
  v1::JobSpec gpu = Spec("gpu", 10);
  gpu.mutable_resources()->set_device("cuda");
  v1::Job job;
  grpc::Status status = TrySubmit(gpu, &job);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("resources.device: the job asks for cuda"));
  v1::JobSpec wide = Spec("wide", 10);
  wide.mutable_distributed()->set_world_size(2);
  status = TrySubmit(wide, &job);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("distributed.world_size: 2 ranks need 2 slots"));
  v1::JobSpec unknown = Spec("unknown", 10);
  unknown.mutable_resources()->set_device("tpu");
  EXPECT_THAT(TrySubmit(unknown, &job).error_message(),
              HasSubstr("resources.device: 'tpu' is not one of any, cpu, cuda"));
  // "cpu" fits, and runs.
  v1::JobSpec cpu = Spec("cpu", 2);
  cpu.mutable_resources()->set_device("cpu");
  ASSERT_TRUE(TrySubmit(cpu, &job).ok());
  const v1::Job done = Wait(job.id(), Final);
  EXPECT_EQ(done.state(), v1::JOB_STATE_SUCCEEDED) << done.error();
  EXPECT_THAT(done.devices(), ElementsAre("cpu:0"));
}

// Acceptance 2 of the issue: SIGKILL of a job's worker ends the job FAILED with the signal, and
// inference never stops meanwhile; with restart_policy on_failure the job restarts instead.
TEST_F(DevicePoolTest, AKilledWorkerFailsItsJobWhileTheServerKeepsClassifying) {
  Start({"--training_devices=cpu:1"});
  ASSERT_TRUE(UploadSst2Tsv(server_->channel(), "sst2", Sst2DevRows(24)).ok());
  const std::string id = SubmitJob(server_->channel(), Spec("killed", 1000000)).id();
  ASSERT_TRUE(Running(Wait(id, Running)));
  const pid_t worker = WaitForWorker(id);
  ASSERT_GT(worker, 0);

  std::atomic<bool> done{false};
  std::atomic<int> served{0}, failed{0};
  std::string first_error;
  std::thread classify([&] {
    auto stub = v1::InferenceService::NewStub(server_->channel());
    while (!done.load()) {
      grpc::ClientContext context;
      context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
      v1::ClassifyRequest request;
      request.set_model("classifier");
      request.add_inputs()->set_text("a gripping, funny film");
      v1::ClassifyResponse response;
      grpc::Status status = stub->Classify(&context, request, &response);
      if (status.ok()) {
        ++served;
      } else if (failed++ == 0) {
        first_error = status.error_message();
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  ASSERT_EQ(::kill(worker, SIGKILL), 0);
  const v1::Job ended = Wait(id, Final);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  done.store(true);
  classify.join();
  EXPECT_EQ(ended.state(), v1::JOB_STATE_FAILED);
  EXPECT_THAT(ended.error(), HasSubstr("the worker process was killed by signal 9"));
  EXPECT_EQ(failed.load(), 0) << first_error;
  EXPECT_GT(served.load(), 10);
  EXPECT_TRUE(server_->WaitUntilServing("", 5));

  // The same with restart_policy on_failure: a new worker process takes over.
  v1::JobSpec restarting = Spec("restarted", 1000000);
  restarting.mutable_distributed()->set_restart_policy("on_failure");
  const std::string again = SubmitJob(server_->channel(), restarting).id();
  ASSERT_TRUE(Running(Wait(again, Running)));
  const pid_t before = WaitForWorker(again);
  ASSERT_GT(before, 0);
  ASSERT_EQ(::kill(before, SIGKILL), 0);
  pid_t after = 0;
  for (int i = 0; i < 600 && (after == 0 || after == before); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    after = WorkerOf(data_dir_, again);
  }
  EXPECT_GT(after, 0);
  EXPECT_NE(after, before);
  EXPECT_EQ(GetJob(server_->channel(), again).state(), v1::JOB_STATE_RUNNING);
  Cancel(again);
  EXPECT_EQ(Wait(again, Final).state(), v1::JOB_STATE_CANCELLED);
}

// Acceptance 3: a worker over --training_memory_limit fails its job with the out-of-memory
// reason; a spec whose estimate cannot fit is refused at submit, naming the estimate.
TEST_F(DevicePoolTest, AWorkerOverTheMemoryLimitFailsAndAJobThatCannotFitIsRefused) {
  // Queued on a node that runs nothing, so that it gets past the submit-time estimate; then run
  // by a server whose workers are limited to 1 GiB. A batch of 4096 needs about 3 GiB.
  Start({"--training_devices=none"});
  std::string rows = Sst2DevRows(872);
  const std::string header = rows.substr(0, rows.find('\n') + 1);
  const std::string body = rows.substr(header.size());
  std::string many = header;
  for (int i = 0; i < 5; ++i) many += body;  // 4360 rows: one batch of 4096
  ASSERT_TRUE(UploadSst2Tsv(server_->channel(), "sst2", many).ok());
  v1::JobSpec big = Spec("big", 2);
  big.mutable_hyperparameters()->set_per_device_train_batch_size(4096);
  big.mutable_hyperparameters()->set_max_seq_length(64);
  const std::string id = SubmitJob(server_->channel(), big).id();
  ASSERT_EQ(server_->Terminate(), 0);

  Start({"--training_devices=cpu:1", "--training_memory_limit=1GiB"});
  const v1::Job failed = Wait(id, Final, 300);
  EXPECT_EQ(failed.state(), v1::JOB_STATE_FAILED);
  EXPECT_THAT(failed.error(),
              HasSubstr("the worker process ran out of memory (limit 1 GiB, --training_memory_limit)"));
  EXPECT_TRUE(server_->WaitUntilServing("", 5)) << server_->log();

  v1::Job refused;
  grpc::Status status = TrySubmit(big, &refused);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(),
              HasSubstr("hyperparameters.per_device_train_batch_size: the job needs an estimated"));
  EXPECT_THAT(status.error_message(), HasSubstr("activations for a batch of 4096 x 64 tokens"));
  EXPECT_THAT(status.error_message(), HasSubstr("over the 1 GiB a CPU training worker may use"));
  // A job of a sensible size still fits and runs under the limit.
  v1::Job small;
  ASSERT_TRUE(TrySubmit(Spec("small", 3), &small).ok());
  const v1::Job done = Wait(small.id(), Final);
  EXPECT_EQ(done.state(), v1::JOB_STATE_SUCCEEDED) << done.error();
}

// Acceptance 4: a checkpoint is not tied to the slot that wrote it.
TEST_F(DevicePoolTest, AJobCheckpointedOnOneSlotResumesOnAnother) {
  Start({"--training_devices=cpu:2"});
  ASSERT_TRUE(UploadSst2Tsv(server_->channel(), "sst2", Sst2DevRows(64)).ok());
  const std::string blocker = SubmitJob(server_->channel(), Spec("blocker", 1000000)).id();
  ASSERT_THAT(Wait(blocker, Running).devices(), ElementsAre("cpu:0"));
  // Higher priority: after a restart it is dispatched first and takes cpu:0.
  v1::JobSpec moved_spec = Spec("moved", 200);
  moved_spec.set_priority(5);
  const std::string moved = SubmitJob(server_->channel(), moved_spec).id();
  ASSERT_THAT(Wait(moved, Running).devices(), ElementsAre("cpu:1"));
  ASSERT_EQ(WatchJob(server_->channel(), moved,
                     [](const v1::JobEvent& event) { return !event.has_checkpoint(); }),
            v1::JOB_STATE_UNSPECIFIED)
      << "the job ended before its first checkpoint";
  server_->Kill();

  Start({"--training_devices=cpu:2"});
  std::vector<std::string> logs;
  const v1::JobState state = WatchJob(server_->channel(), moved, [&](const v1::JobEvent& event) {
    if (event.has_log()) logs.push_back(event.log().line());
    return true;
  });
  EXPECT_EQ(state, v1::JOB_STATE_SUCCEEDED) << server_->log();
  const v1::Job done = GetJob(server_->channel(), moved);
  EXPECT_THAT(done.devices(), ElementsAre("cpu:0"));
  EXPECT_EQ(done.attempts(), 1);
  bool resumed = false, on_cpu0 = false;
  for (const std::string& line : logs) {
    resumed = resumed || line.find("resumed from checkpoint at step") != std::string::npos;
    on_cpu0 = on_cpu0 || line.find("a worker process on cpu:0") != std::string::npos;
  }
  EXPECT_TRUE(resumed);
  EXPECT_TRUE(on_cpu0);
  Cancel(blocker);
  EXPECT_EQ(Wait(blocker, Final).state(), v1::JOB_STATE_CANCELLED);
}

// --inference_cpus: the server process (serving) runs on the CPUs it names; a training worker
// keeps its slot's share of all of them.
TEST_F(DevicePoolTest, ServingKeepsTheInferenceCpusAndWorkersKeepTheirSlots) {
  const std::vector<int> cpus = [] {
    std::vector<int> all;
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) == 0) {
      for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
        if (CPU_ISSET(cpu, &set)) all.push_back(cpu);
      }
    }
    return all;
  }();
  ASSERT_FALSE(cpus.empty());
  const std::string first = std::to_string(cpus.front());
  Start({"--training_devices=cpu:1", "--inference_cpus=" + first});
  EXPECT_EQ(StatusField(server_->pid(), "Cpus_allowed_list"), first);
  EXPECT_THAT(server_->log(), HasSubstr("serving on CPUs " + first + " (--inference_cpus)"));
  ASSERT_TRUE(UploadSst2Tsv(server_->channel(), "sst2", Sst2DevRows(24)).ok());
  const std::string id = SubmitJob(server_->channel(), Spec("pinned", 1000000)).id();
  const pid_t worker = WaitForWorker(id);
  ASSERT_GT(worker, 0);
  const std::string all = cpus.size() == 1 ? first
                                           : std::to_string(cpus.front()) + "-" + std::to_string(cpus.back());
  if (cpus.back() - cpus.front() + 1 == static_cast<int>(cpus.size())) {
    EXPECT_EQ(StatusField(worker, "Cpus_allowed_list"), all);
  }
  Cancel(id);
  EXPECT_EQ(Wait(id, Final).state(), v1::JOB_STATE_CANCELLED);

  // A CPU the process may not use stops the start, naming the flag.
  server_.reset();
  BertdProcess refused(data_dir_, {"--inference_cpus=4000"});
  for (int i = 0; i < 100 && refused.log().find("--inference_cpus") == std::string::npos; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_THAT(refused.log(), HasSubstr("--inference_cpus: CPU 4000 is not one this process may use"));
  EXPECT_EQ(refused.Terminate(30), 1);
}

}  // namespace
}  // namespace bertd::testing
