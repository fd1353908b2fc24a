// The worker process's side of a training job (bertd --worker_plan=FILE): every job runs as one
// (or, data-parallel, several) of these, started by the launcher in distributed.cc.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <thread>

#include <nlohmann/json.hpp>
#include <torch/cuda.h>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/file_util.h"
#include "common/json.h"
#include "jobs/distributed.h"
#include "jobs/worker_protocol.h"

namespace bertd::jobs {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// This process's resident memory (/proc/self/statm), for the job's memory metric.
int64_t ResidentBytes() {
  std::FILE* statm = std::fopen("/proc/self/statm", "r");
  if (statm == nullptr) return 0;
  long long size = 0, resident = 0;
  const int read = std::fscanf(statm, "%lld %lld", &size, &resident);
  std::fclose(statm);
  return read == 2 ? static_cast<int64_t>(resident) * ::sysconf(_SC_PAGESIZE) : 0;
}

std::atomic<bool> stop_requested{false};
extern "C" void OnStopSignal(int) { stop_requested.store(true); }

// The worker's side of its channel file; serializes the training thread and the heartbeat
// thread. One line per write(2) on an O_APPEND file, so a reader never sees half a line mixed
// with another.
class Channel {
 public:
  explicit Channel(const std::string& path)
      : fd_(::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644)) {}
  ~Channel() {
    if (fd_ >= 0) ::close(fd_);
  }
  bool ok() const { return fd_ >= 0; }
  void Send(const json& line) {
    const std::string text = line.dump() + "\n";
    absl::MutexLock lock(&mu_);
    if (fd_ >= 0 && ::write(fd_, text.data(), text.size()) < 0) {
      std::fprintf(stderr, "bertd worker: cannot write its channel: %s\n", strerror(errno));
    }
  }

 private:
  const int fd_;
  absl::Mutex mu_;
};

}  // namespace

int RunWorker(const std::string& plan_path, const training::RendezvousConfig& rendezvous) {
  const std::string job_dir = fs::path(plan_path).parent_path().string();
  Channel channel(ChannelPath(job_dir, rendezvous.rank));
  if (!channel.ok()) {
    std::fprintf(stderr, "bertd worker (rank %d): cannot open %s: %s\n", rendezvous.rank,
                 ChannelPath(job_dir, rendezvous.rank).c_str(), strerror(errno));
    return 1;
  }
  // The last line of every run: the server learns the outcome even without seeing the process.
  auto exit_with = [&](int code) {
    channel.Send({{"type", "exit"}, {"code", code}});
    return code;
  };
  auto fail = [&](const absl::Status& status) {
    channel.Send({{"type", "error"},
                  {"code", absl::StatusCodeToString(status.code())},
                  {"message", std::string(status.message())}});
    std::fprintf(stderr, "bertd worker (rank %d): %s\n", rendezvous.rank, status.ToString().c_str());
    return 1;
  };
  absl::StatusOr<std::string> text = ReadFileToString(plan_path);
  if (!text.ok()) return exit_with(fail(text.status()));
  absl::StatusOr<TrainingPlan> plan = TrainingPlan::FromJson(*text);
  if (!plan.ok()) return exit_with(fail(plan.status()));
  absl::StatusOr<training::TrainingJobSpec> spec = training::TrainingJobSpec::FromJson(plan->spec_json);
  if (!spec.ok()) return exit_with(fail(spec.status()));

  struct sigaction action {};
  action.sa_handler = OnStopSignal;
  sigemptyset(&action.sa_mask);
  ::sigaction(SIGTERM, &action, nullptr);
  ::sigaction(SIGINT, &action, nullptr);
  const std::string stop_file = StopFilePath(job_dir);

  // Heartbeats from their own thread: a rank that is alive but waiting in a long collective still
  // reports; one that is stopped or gone does not.
  std::atomic<int64_t> step{0};
  std::atomic<double> samples_per_second{0};
  std::atomic<bool> finished{false};
  const absl::Duration beat = std::clamp(absl::Seconds(spec->distributed.timeout_seconds) / 10,
                                         absl::Milliseconds(200), absl::Seconds(5));
  std::thread heartbeat([&] {
    while (!finished.load()) {
      channel.Send({{"type", "heartbeat"},
                    {"step", step.load()},
                    {"samples_per_second", samples_per_second.load()},
                    {"rss_bytes", ResidentBytes()}});
      for (absl::Time until = absl::Now() + beat; !finished.load() && absl::Now() < until;) {
        absl::SleepFor(absl::Milliseconds(50));
      }
    }
  });
  auto finish = [&](int code) {
    finished.store(true);
    heartbeat.join();
    return exit_with(code);
  };

  training::RendezvousConfig config = rendezvous;
  config.timeout = absl::Seconds(spec->distributed.timeout_seconds);
  // A job of one rank trains alone: no process group, no all-reduce.
  std::unique_ptr<training::DataParallel> group;
  if (config.world_size > 1) {
    absl::StatusOr<std::unique_ptr<training::DataParallel>> joined = training::DataParallel::Join(config);
    if (!joined.ok()) return finish(fail(joined.status()));
    group = *std::move(joined);
  }

  training::TrainerHooks hooks;
  hooks.data_parallel = group.get();
  if (const char* device = std::getenv(kWorkerDeviceVariable); device != nullptr &&
                                                                 std::strcmp(device, "cuda") == 0) {
    if (!torch::cuda::is_available()) {
      return finish(fail(absl::FailedPreconditionError(
          "the job holds a CUDA slot but this worker sees no CUDA device (CUDA_VISIBLE_DEVICES, "
          "driver, or a LibTorch built without CUDA)")));
    }
    hooks.device = c10::Device(c10::DeviceType::CUDA, 0);
  }
  // SIGTERM (the local launcher) or the stop file (any launcher); the loop all-reduces the answer.
  hooks.should_stop = [&stop_file] {
    std::error_code ec;
    return stop_requested.load() || fs::exists(stop_file, ec);
  };
  const bool leader = rendezvous.rank == 0;
  hooks.emit = [&](const std::string& type, const std::string& payload_json) {
    if (leader) {
      channel.Send({{"type", "event"}, {"event", type}, {"payload", json::parse(payload_json, nullptr, false)}});
    } else if (type == "log") {
      std::fprintf(stderr, "%s\n", payload_json.c_str());
    }
  };
  auto window_start = std::chrono::steady_clock::now();
  int64_t window_samples = 0;
  hooks.on_step = [&](int64_t global_step, int64_t samples) {
    step.store(global_step);
    window_samples += samples;
    const auto now = std::chrono::steady_clock::now();
    const double seconds = std::chrono::duration<double>(now - window_start).count();
    if (seconds >= 1.0) {
      samples_per_second.store(window_samples / seconds);
      window_samples = 0;
      window_start = now;
    }
  };
  absl::Status status = ExecutePlan(*plan, hooks);
  if (absl::IsCancelled(status) && hooks.should_stop()) return finish(kExitStopped);
  if (!status.ok()) return finish(fail(status));
  return finish(0);
}

}  // namespace bertd::jobs
