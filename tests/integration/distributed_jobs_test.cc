// Data-parallel training jobs (issue #10) through the real server: worker processes that meet over
// c10d (TCPStore + Gloo) on loopback. Two workers with half the batch each end with the weights of
// one process with the whole batch; a worker that dies or stops fails the job within its timeout
// (or restarts it, by policy) and leaves the server healthy; a killed server takes its workers
// with it and resumes the job after a restart.
#include <signal.h>
#include <spawn.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <fcntl.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "bertd/v1/inference.grpc.pb.h"
#include "bertd_process.h"
#include "gtest/gtest.h"
#include "job_client.h"
#include "model/io/safetensors.h"
#include "test_util.h"

#include <torch/torch.h>

namespace bertd::testing {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// Rank -> pid of the worker processes whose plan lies under `data_dir`.
std::map<int, pid_t> WorkerProcesses(const std::string& data_dir) {
  std::map<int, pid_t> workers;
  for (const auto& entry : fs::directory_iterator("/proc")) {
    const std::string name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string cmdline = ReadWholeFile(entry.path().string() + "/cmdline");
    if (cmdline.find("--worker_plan=" + data_dir) == std::string::npos) continue;
    std::string environ = ReadWholeFile(entry.path().string() + "/environ");
    std::stringstream variables(environ);
    std::string variable;
    while (std::getline(variables, variable, '\0')) {
      if (variable.rfind("RANK=", 0) == 0) workers[std::stoi(variable.substr(5))] = std::stoi(name);
    }
  }
  return workers;
}

// Starts `bertd --worker_plan=PLAN` as a launcher other than bertd would (torchrun, a Kubernetes
// Indexed Job): only the plan and the rendezvous variables.
pid_t StartExternalWorker(const std::string& plan, int rank, int world_size, int port) {
  std::vector<std::string> args = {BERTD_BINARY, "--worker_plan=" + plan};
  std::vector<std::string> env = {"MASTER_ADDR=127.0.0.1", "MASTER_PORT=" + std::to_string(port),
                                  "WORLD_SIZE=" + std::to_string(world_size),
                                  "RANK=" + std::to_string(rank), "PATH=/usr/bin:/bin"};
  // A sanitizer build's options (suppressions, exit codes) must reach this child too.
  for (const char* name : {"ASAN_OPTIONS", "UBSAN_OPTIONS", "TSAN_OPTIONS"}) {
    if (const char* value = std::getenv(name)) env.push_back(std::string(name) + "=" + value);
  }
  std::vector<char*> argv, envp;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  for (std::string& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  pid_t pid = -1;
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  const std::string log = fs::path(plan).parent_path().string() + "/external-" + std::to_string(rank) + ".log";
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  if (posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), envp.data()) != 0) pid = -1;
  posix_spawn_file_actions_destroy(&actions);
  return pid;
}

int ExitCode(pid_t pid) {
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

bool WaitForNoWorkers(const std::string& data_dir, std::chrono::seconds timeout) {
  for (auto until = Clock::now() + timeout; Clock::now() < until;) {
    if (WorkerProcesses(data_dir).empty()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return false;
}

class DistributedJobsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    BERTD_REQUIRE_SHARED("fixtures/tiny-bert/classifier/model.safetensors");
    BERTD_REQUIRE_SHARED("data/glue/SST-2/dev.tsv");
    data_dir_ = MakeTempDir("bertd-distributed");
    InstallFixtureModel("classifier", data_dir_ + "/models", "classifier");
    // Without dropout a step is a deterministic function of the batch, so runs that split the
    // batch differently can be compared weight for weight.
    const std::string config_path = data_dir_ + "/models/classifier/1/config.json";
    nlohmann::json config = nlohmann::json::parse(ReadWholeFile(config_path));
    config["hidden_dropout_prob"] = 0.0;
    config["attention_probs_dropout_prob"] = 0.0;
    std::ofstream(config_path) << config.dump(2);
    StartServer();
    grpc::Status uploaded = UploadSst2Tsv(server_->channel(), "sst2", Sst2DevRows(55));
    ASSERT_TRUE(uploaded.ok()) << uploaded.error_message();
  }

  void TearDown() override {
    server_.reset();
    if (!data_dir_.empty()) fs::remove_all(data_dir_);
  }

  void StartServer() {
    // Two CPU slots: a two-rank job holds one per rank.
    server_ = std::make_unique<BertdProcess>(data_dir_, std::vector<std::string>{"--training_devices=cpu:2"});
    ASSERT_TRUE(server_->WaitUntilServing()) << server_->log();
  }

  // 55 SST-2 rows, 11 held out: 44 training samples, so an epoch of 16-sample steps ends with a
  // short one (16, 16, 12).
  static v1::JobSpec Spec(const std::string& output, int world_size, int batch, int accumulation) {
    v1::JobSpec spec;
    spec.set_task(v1::TRAINING_TASK_SEQUENCE_CLASSIFICATION);
    spec.set_base_model("classifier");
    spec.set_train_dataset("sst2");
    spec.set_eval_split(0.2);
    spec.set_output_model(output);
    auto* hp = spec.mutable_hyperparameters();
    hp->set_num_train_epochs(2);
    hp->set_per_device_train_batch_size(batch);
    hp->set_gradient_accumulation_steps(accumulation);
    hp->set_learning_rate(1e-3);
    hp->set_max_grad_norm(0.5);  // small enough to clip: clipping must see the summed gradient
    // Adam turns a gradient that is zero up to rounding (attention key biases: softmax ignores
    // them) into a full step of random sign; a larger epsilon keeps rounding differences between
    // a split and a whole batch at rounding size.
    hp->set_adam_epsilon(1e-6);
    hp->set_max_seq_length(32);
    hp->set_eval_strategy("epoch");
    hp->set_seed(11);
    spec.mutable_distributed()->set_world_size(world_size);
    return spec;
  }

  // Runs a job to its end; returns it (state, metrics) and fills `logs`.
  v1::Job RunToEnd(const v1::JobSpec& spec, std::vector<std::string>* logs = nullptr) {
    v1::Job job = SubmitJob(server_->channel(), spec);
    WatchJob(server_->channel(), job.id(), [&](const v1::JobEvent& event) {
      if (event.has_log() && logs) logs->push_back(event.log().line());
      return true;
    });
    return GetJob(server_->channel(), job.id());
  }

  model::TensorMap Weights(const std::string& model) {
    auto tensors = model::ReadSafetensors(data_dir_ + "/models/" + model + "/1/model.safetensors");
    EXPECT_TRUE(tensors.ok()) << tensors.status();
    return tensors.ok() ? *tensors : model::TensorMap{};
  }

  void ExpectSameWeights(const std::string& a, const std::string& b) {
    model::TensorMap x = Weights(a), y = Weights(b);
    ASSERT_FALSE(x.empty());
    ASSERT_EQ(x.size(), y.size());
    for (const auto& [name, tensor] : x) {
      ASSERT_TRUE(y.count(name)) << name;
      EXPECT_TRUE(torch::allclose(tensor, y.at(name), 0, 1e-5))
          << a << " vs " << b << ": " << name << " differs by "
          << (tensor - y.at(name)).abs().max().item<float>();
    }
  }

  // Waits for the job's first progress event at or after `step`; a job that ends first fails
  // the test with its error and the server's log.
  void WaitForStep(const std::string& job_id, int64_t step) {
    bool reached = false;
    WatchJob(server_->channel(), job_id, [&](const v1::JobEvent& event) {
      reached = event.has_progress() && event.progress().step() >= step;
      return !reached;
    }, std::chrono::seconds(120));
    if (reached) return;
    const v1::Job job = GetJob(server_->channel(), job_id);
    FAIL() << "step " << step << " not reached; job state " << v1::JobState_Name(job.state())
           << ": " << job.error() << "\n" << server_->log();
  }

  void ExpectServerHealthy() {
    auto stub = v1::InferenceService::NewStub(server_->channel());
    v1::ClassifyRequest request;
    request.set_model("classifier");
    request.add_inputs()->set_text("still serving after the failed job");
    v1::ClassifyResponse response;
    grpc::ClientContext context;
    grpc::Status status = stub->Classify(&context, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    EXPECT_TRUE(server_->WaitUntilServing("", 5));
  }

  std::string data_dir_;
  std::unique_ptr<BertdProcess> server_;
};

TEST_F(DistributedJobsTest, TwoWorkersWithHalfTheBatchEqualOneProcessWithAllOfIt) {
  const v1::Job one = RunToEnd(Spec("one", 1, 16, 1));
  std::vector<std::string> logs;
  const v1::Job two = RunToEnd(Spec("two", 2, 8, 1), &logs);
  // Accumulation across ranks: micro-batches of 4 per rank, two per step. The epoch's last
  // micro-batch holds 4 samples, all on rank 0: rank 1 joins the all-reduce with none.
  const v1::Job accumulated = RunToEnd(Spec("accumulated", 2, 4, 2));
  for (const v1::Job* job : {&one, &two, &accumulated}) {
    ASSERT_EQ(job->state(), v1::JOB_STATE_SUCCEEDED) << job->error() << "\n" << server_->log();
  }
  EXPECT_EQ(two.progress().step(), 6);  // 2 epochs x (16, 16, 12): no sample dropped or repeated
  EXPECT_EQ(one.progress().step(), two.progress().step());
  EXPECT_EQ(two.progress().world_size(), 2);
  EXPECT_EQ(two.progress().rank_samples_per_second_size(), 2);
  bool ran_as_workers = false;
  for (const std::string& line : logs) {
    ran_as_workers = ran_as_workers || line.find("2 data-parallel worker processes") != std::string::npos;
  }
  EXPECT_TRUE(ran_as_workers);
  ExpectSameWeights("one", "two");
  ExpectSameWeights("one", "accumulated");
  // Evaluation is sharded over the ranks (6 and 5 of the 11 held-out rows) and reduced.
  for (const char* metric : {"accuracy", "f1", "matthews_correlation"}) {
    EXPECT_EQ(one.eval_metrics().at(metric), two.eval_metrics().at(metric)) << metric;
  }
  EXPECT_NEAR(one.eval_metrics().at("eval_loss"), two.eval_metrics().at("eval_loss"), 1e-5);
  EXPECT_TRUE(WaitForNoWorkers(data_dir_, std::chrono::seconds(5)));
}

TEST_F(DistributedJobsTest, AKilledWorkerFailsTheJobWithinTheTimeout) {
  v1::JobSpec spec = Spec("lost", 2, 8, 1);
  spec.mutable_hyperparameters()->set_max_steps(100000);
  spec.mutable_distributed()->set_timeout_seconds(10);
  v1::Job job = SubmitJob(server_->channel(), spec);
  ASSERT_NO_FATAL_FAILURE(WaitForStep(job.id(), 3));
  std::map<int, pid_t> workers = WorkerProcesses(data_dir_);
  ASSERT_EQ(workers.size(), 2u);
  const auto killed = Clock::now();
  ::kill(workers.at(1), SIGKILL);
  const v1::JobState state = WatchJob(server_->channel(), job.id(), nullptr, std::chrono::seconds(60));
  const auto seconds = std::chrono::duration<double>(Clock::now() - killed).count();
  EXPECT_EQ(state, v1::JOB_STATE_FAILED);
  EXPECT_LT(seconds, 10.0) << "the job took longer than distributed.timeout_seconds to fail";
  const v1::Job failed = GetJob(server_->channel(), job.id());
  EXPECT_NE(failed.error().find("rank 1"), std::string::npos) << failed.error();
  EXPECT_TRUE(WaitForNoWorkers(data_dir_, std::chrono::seconds(5))) << "rank 0 was left running";
  ExpectServerHealthy();
}

TEST_F(DistributedJobsTest, AStoppedWorkerFailsTheJobAfterTheTimeoutInsteadOfHanging) {
  v1::JobSpec spec = Spec("stuck", 2, 8, 1);
  spec.mutable_hyperparameters()->set_max_steps(100000);
  spec.mutable_distributed()->set_timeout_seconds(4);
  v1::Job job = SubmitJob(server_->channel(), spec);
  ASSERT_NO_FATAL_FAILURE(WaitForStep(job.id(), 3));
  std::map<int, pid_t> workers = WorkerProcesses(data_dir_);
  ASSERT_EQ(workers.size(), 2u);
  const auto stopped = Clock::now();
  ::kill(workers.at(1), SIGSTOP);  // alive, silent: a hang, not a crash
  const v1::JobState state = WatchJob(server_->channel(), job.id(), nullptr, std::chrono::seconds(60));
  const auto seconds = std::chrono::duration<double>(Clock::now() - stopped).count();
  EXPECT_EQ(state, v1::JOB_STATE_FAILED);
  EXPECT_GE(seconds, 3.0) << "failed before the timeout had passed";
  EXPECT_LT(seconds, 4 + 10.0);
  const v1::Job failed = GetJob(server_->channel(), job.id());
  EXPECT_NE(failed.error().find("rank"), std::string::npos) << failed.error();
  EXPECT_TRUE(WaitForNoWorkers(data_dir_, std::chrono::seconds(5)));
  ExpectServerHealthy();
}

TEST_F(DistributedJobsTest, RestartPolicyRestartsEveryRankFromTheLastCheckpoint) {
  v1::JobSpec spec = Spec("restarted", 2, 8, 1);
  spec.mutable_hyperparameters()->set_max_steps(300);
  spec.mutable_hyperparameters()->set_save_steps(20);
  spec.mutable_distributed()->set_restart_policy("on_failure");
  spec.mutable_distributed()->set_max_restarts(1);
  v1::Job job = SubmitJob(server_->channel(), spec);
  WatchJob(server_->channel(), job.id(),
           [](const v1::JobEvent& event) { return !event.has_checkpoint(); });
  std::map<int, pid_t> workers = WorkerProcesses(data_dir_);
  ASSERT_EQ(workers.size(), 2u);
  ::kill(workers.at(1), SIGKILL);
  std::vector<std::string> logs;
  const v1::JobState state = WatchJob(server_->channel(), job.id(), [&](const v1::JobEvent& event) {
    if (event.has_log()) logs.push_back(event.log().line());
    return true;
  });
  EXPECT_EQ(state, v1::JOB_STATE_SUCCEEDED) << GetJob(server_->channel(), job.id()).error();
  bool restarted = false, resumed = false;
  for (const std::string& line : logs) {
    restarted = restarted || line.find("restarting every rank from the last checkpoint") != std::string::npos;
    resumed = resumed || line.find("resumed from checkpoint at step") != std::string::npos;
  }
  EXPECT_TRUE(restarted);
  EXPECT_TRUE(resumed);
}

TEST_F(DistributedJobsTest, KilledServerTakesItsWorkersAndResumesTheJobAfterARestart) {
  v1::JobSpec spec = Spec("interrupted", 2, 8, 1);
  spec.mutable_hyperparameters()->set_max_steps(200);
  spec.mutable_hyperparameters()->set_save_steps(20);
  spec.set_eval_split(0);
  spec.mutable_hyperparameters()->set_eval_strategy("no");
  v1::Job job = SubmitJob(server_->channel(), spec);
  WatchJob(server_->channel(), job.id(), [](const v1::JobEvent& event) {
    return !(event.has_checkpoint() && event.checkpoint().step() >= 40);
  });
  ASSERT_EQ(WorkerProcesses(data_dir_).size(), 2u);
  server_->Kill();
  EXPECT_TRUE(WaitForNoWorkers(data_dir_, std::chrono::seconds(10))) << "workers outlived the server";

  StartServer();
  std::vector<std::string> logs;
  const v1::JobState state = WatchJob(server_->channel(), job.id(), [&](const v1::JobEvent& event) {
    if (event.has_log()) logs.push_back(event.log().line());
    return true;
  });
  ASSERT_EQ(state, v1::JOB_STATE_SUCCEEDED) << GetJob(server_->channel(), job.id()).error();
  bool resumed = false;
  for (const std::string& line : logs) {
    resumed = resumed || line.find("resumed from checkpoint at step") != std::string::npos;
  }
  EXPECT_TRUE(resumed) << "no 'resumed from checkpoint' after the restart";

  spec.set_output_model("uninterrupted");
  ASSERT_EQ(RunToEnd(spec).state(), v1::JOB_STATE_SUCCEEDED);
  ExpectSameWeights("interrupted", "uninterrupted");
}

TEST_F(DistributedJobsTest, ExternalLauncherWaitsForWorkersStartedElsewhereAndServesTheirModel) {
  v1::JobSpec spec = Spec("external", 2, 8, 1);
  spec.mutable_distributed()->set_launcher("external");
  v1::Job job = SubmitJob(server_->channel(), spec);
  // The server writes the plan and says how to start the workers; it starts none itself.
  std::string plan;
  WatchJob(server_->channel(), job.id(), [&](const v1::JobEvent& event) {
    const std::string& line = event.log().line();
    const size_t at = line.find("--worker_plan=");
    if (at == std::string::npos) return true;
    plan = line.substr(at + 14, line.find(' ', at) - at - 14);
    return false;
  });
  ASSERT_FALSE(plan.empty());
  ASSERT_TRUE(fs::exists(plan)) << plan;
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_TRUE(WorkerProcesses(data_dir_).empty()) << "the external launcher started workers itself";
  EXPECT_EQ(GetJob(server_->channel(), job.id()).state(), v1::JOB_STATE_RUNNING);

  const int port = PickFreePort();
  const pid_t rank0 = StartExternalWorker(plan, 0, 2, port);
  const pid_t rank1 = StartExternalWorker(plan, 1, 2, port);
  int64_t last_step = 0;
  const v1::JobState state = WatchJob(server_->channel(), job.id(), [&](const v1::JobEvent& event) {
    if (event.has_progress()) last_step = event.progress().step();
    return true;
  });
  EXPECT_EQ(ExitCode(rank0), 0);
  EXPECT_EQ(ExitCode(rank1), 0);
  ASSERT_EQ(state, v1::JOB_STATE_SUCCEEDED) << GetJob(server_->channel(), job.id()).error();
  EXPECT_EQ(last_step, 6);  // rank 0's progress reached the job through its channel file
  // Same weights as the server's own workers would have produced.
  ASSERT_EQ(RunToEnd(Spec("local", 2, 8, 1)).state(), v1::JOB_STATE_SUCCEEDED);
  ExpectSameWeights("external", "local");
}

TEST_F(DistributedJobsTest, ExternalLaunchCommandSubmitsTheWorkers) {
  // A launch command as deploy/kubernetes/training/launch.sh is one: it submits the ranks (here as
  // background processes on this host) and returns.
  const std::string script = data_dir_ + "/launch.sh";
  std::ofstream(script) << "#!/bin/sh\n"
                        << "set -e\n"
                        << "r=0\n"
                        << "while [ $r -lt \"$BERTD_WORLD_SIZE\" ]; do\n"
                        << "  MASTER_ADDR=127.0.0.1 MASTER_PORT=" << PickFreePort()
                        << " WORLD_SIZE=$BERTD_WORLD_SIZE RANK=$r " << BERTD_BINARY
                        << " --worker_plan=\"$BERTD_PLAN\" >>\"$BERTD_JOB_DIR/launched-$r.log\" 2>&1 &\n"
                        << "  r=$((r + 1))\n"
                        << "done\n"
                        << "echo \"submitted $BERTD_WORLD_SIZE ranks of $BERTD_JOB_ID\"\n";
  fs::permissions(script, fs::perms::owner_all);
  server_.reset();
  server_ = std::make_unique<BertdProcess>(data_dir_, std::vector<std::string>{"--external_launch_command=" + script});
  ASSERT_TRUE(server_->WaitUntilServing()) << server_->log();

  v1::JobSpec spec = Spec("launched", 2, 8, 1);
  spec.mutable_distributed()->set_launcher("external");
  std::vector<std::string> logs;
  const v1::Job job = RunToEnd(spec, &logs);
  ASSERT_EQ(job.state(), v1::JOB_STATE_SUCCEEDED) << job.error() << "\n" << server_->log();
  bool submitted = false;
  for (const std::string& line : logs) {
    submitted = submitted || line.find("submitted 2 ranks of " + job.id()) != std::string::npos;
  }
  EXPECT_TRUE(submitted) << "the command's output is not in the job log";
}

TEST_F(DistributedJobsTest, CancellingAnExternalJobStopsItsWorkersThroughTheStopFile) {
  v1::JobSpec spec = Spec("external-cancelled", 2, 8, 1);
  spec.mutable_hyperparameters()->set_max_steps(100000);
  spec.mutable_distributed()->set_launcher("external");
  v1::Job job = SubmitJob(server_->channel(), spec);
  const std::string plan = data_dir_ + "/jobs/" + job.id() + "/plan.json";
  for (auto until = Clock::now() + std::chrono::seconds(30); !fs::exists(plan) && Clock::now() < until;) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  const int port = PickFreePort();
  const pid_t rank0 = StartExternalWorker(plan, 0, 2, port);
  const pid_t rank1 = StartExternalWorker(plan, 1, 2, port);
  ASSERT_NO_FATAL_FAILURE(WaitForStep(job.id(), 3));
  auto stub = v1::JobService::NewStub(server_->channel());
  v1::CancelJobRequest cancel;
  cancel.set_job_id(job.id());
  v1::Job cancelled;
  grpc::ClientContext context;
  ASSERT_TRUE(stub->CancelJob(&context, cancel, &cancelled).ok());
  EXPECT_EQ(WatchJob(server_->channel(), job.id(), nullptr, std::chrono::seconds(60)),
            v1::JOB_STATE_CANCELLED);
  EXPECT_EQ(ExitCode(rank0), 3);  // stopped at a step boundary, rank 0 checkpointed
  EXPECT_EQ(ExitCode(rank1), 3);
}

}  // namespace
}  // namespace bertd::testing
