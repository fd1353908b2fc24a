#include "jobs/distributed.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/file_util.h"
#include "common/status_macros.h"

extern char** environ;

namespace bertd::jobs {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr int kExitStopped = 3;
// How long ranks asked to stop may take to reach a step boundary and checkpoint.
constexpr absl::Duration kStopGrace = absl::Seconds(60);

int FreeLoopbackPort() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  ::close(fd);
  return port;
}

std::string DescribeExit(int status) {
  if (WIFEXITED(status)) return absl::StrCat("exited with code ", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    return absl::StrCat("was killed by signal ", WTERMSIG(status), " (", strsignal(WTERMSIG(status)), ")");
  }
  return "ended";
}

// The last non-empty line of a file (a rank's stderr log), for failure messages.
std::string LastLine(const std::string& path) {
  std::ifstream in(path);
  std::string line, last;
  while (std::getline(in, line)) {
    if (!line.empty()) last = line;
  }
  return last.size() > 300 ? last.substr(0, 300) + "..." : last;
}

// One rank's process and what the server has heard from it.
struct Rank {
  int index = 0;
  pid_t pid = -1;
  int out_fd = -1;  // read end of its stdout
  std::string log_path;
  bool exited = false;
  int status = 0;
  std::thread reader;
};

// What the reader threads share with the watching thread.
struct Shared {
  absl::Mutex mu;
  std::vector<absl::Time> last_heard ABSL_GUARDED_BY(mu);
  std::vector<double> samples_per_second ABSL_GUARDED_BY(mu);
  std::vector<std::string> errors ABSL_GUARDED_BY(mu);
  int64_t step ABSL_GUARDED_BY(mu) = 0;
};

// Reads one rank's lines until EOF: heartbeats and errors for every rank, events for rank 0.
void ReadRank(int rank, int fd, Shared* shared, JobContext* context) {
  std::unique_ptr<FILE, int (*)(FILE*)> in(::fdopen(fd, "r"), &::fclose);
  if (!in) {
    ::close(fd);
    return;
  }
  char* buffer = nullptr;
  size_t capacity = 0;
  ssize_t n;
  while ((n = ::getline(&buffer, &capacity, in.get())) > 0) {
    json line = json::parse(std::string(buffer, n), nullptr, false);
    {
      absl::MutexLock lock(&shared->mu);
      shared->last_heard[rank] = absl::Now();
    }
    if (!line.is_object()) continue;
    const std::string type = line.value("type", "");
    if (type == "heartbeat") {
      absl::MutexLock lock(&shared->mu);
      shared->samples_per_second[rank] = line.value("samples_per_second", 0.0);
      if (rank == 0) shared->step = line.value("step", int64_t{0});
    } else if (type == "error") {
      absl::MutexLock lock(&shared->mu);
      shared->errors[rank] = absl::StrCat(line.value("code", "UNKNOWN"), ": ", line.value("message", ""));
    } else if (type == "event" && rank == 0) {
      const std::string event = line.value("event", "");
      json payload = line.contains("payload") ? line["payload"] : json::object();
      if (event == "progress") {
        absl::MutexLock lock(&shared->mu);
        payload["rank_samples_per_second"] = shared->samples_per_second;
      }
      context->Emit(event, payload.dump()).IgnoreError();
    }
  }
  std::free(buffer);
}

// The environment of a worker: ours plus the rendezvous variables (built before fork: nothing
// after fork may allocate).
std::vector<std::string> WorkerEnvironment(int rank, int world_size, int port) {
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string entry = *e;
    bool ours = false;
    for (const char* name : {"MASTER_ADDR=", "MASTER_PORT=", "WORLD_SIZE=", "RANK=", "LOCAL_RANK="}) {
      ours = ours || entry.rfind(name, 0) == 0;
    }
    if (!ours) env.push_back(entry);
  }
  env.push_back("MASTER_ADDR=127.0.0.1");
  env.push_back(absl::StrCat("MASTER_PORT=", port));
  env.push_back(absl::StrCat("WORLD_SIZE=", world_size));
  env.push_back(absl::StrCat("RANK=", rank));
  env.push_back(absl::StrCat("LOCAL_RANK=", rank));
  return env;
}

absl::Status Spawn(const std::string& executable, const std::string& plan_path, int world_size,
                   int port, Rank* rank) {
  std::vector<std::string> args = {executable, "--worker_plan=" + plan_path};
  std::vector<std::string> env = WorkerEnvironment(rank->index, world_size, port);
  std::vector<char*> argv, envp;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  for (std::string& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) return absl::InternalError(absl::StrCat("pipe: ", strerror(errno)));
  const int log_fd = ::open(rank->log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) {
    ::close(pipe_fds[0]);
    ::close(pipe_fds[1]);
    return absl::InternalError(absl::StrCat("cannot open ", rank->log_path, ": ", strerror(errno)));
  }
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid == 0) {
    // Child: only async-signal-safe calls until exec.
    ::dup2(pipe_fds[1], STDOUT_FILENO);
    ::dup2(log_fd, STDERR_FILENO);
    ::close_range(3, ~0U, 0);
    // The server blocks SIGTERM/SIGINT in every thread for sigwait; the worker needs them.
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);  // the server died before prctl
    ::execve(argv[0], argv.data(), envp.data());
    ::_exit(127);
  }
  ::close(pipe_fds[1]);
  ::close(log_fd);
  if (pid < 0) {
    ::close(pipe_fds[0]);
    return absl::InternalError(absl::StrCat("fork: ", strerror(errno)));
  }
  rank->pid = pid;
  rank->out_fd = pipe_fds[0];
  return absl::OkStatus();
}

// One attempt: start every rank, watch them until they are all done or the attempt fails.
// OK, CANCELLED (stopped on request), or the failure.
absl::Status RunAttempt(const LaunchOptions& options, const std::string& plan_path, int attempt,
                        JobContext& context) {
  const int world = options.distributed.world_size;
  const absl::Duration timeout = absl::Seconds(options.distributed.timeout_seconds);
  const int port = FreeLoopbackPort();
  if (port == 0) return absl::UnavailableError("no free loopback port for the rendezvous");
  Shared shared;
  {
    absl::MutexLock lock(&shared.mu);
    shared.last_heard.assign(world, absl::Now());
    shared.samples_per_second.assign(world, 0.0);
    shared.errors.assign(world, "");
  }
  std::vector<Rank> ranks(world);
  absl::Status failure;
  for (int r = 0; r < world; ++r) {
    ranks[r].index = r;
    ranks[r].log_path = (fs::path(options.job_dir) / absl::StrCat("rank-", r, ".log")).string();
    if (std::FILE* log = std::fopen(ranks[r].log_path.c_str(), "a")) {
      std::fprintf(log, "--- attempt %d, rank %d of %d, MASTER_PORT=%d\n", attempt, r, world, port);
      std::fclose(log);
    }
    failure = Spawn(options.executable, plan_path, world, port, &ranks[r]);
    if (!failure.ok()) break;
    ranks[r].reader = std::thread(ReadRank, r, ranks[r].out_fd, &shared, &context);
  }

  auto kill_all = [&](int signal) {
    for (Rank& rank : ranks) {
      if (rank.pid > 0 && !rank.exited) ::kill(rank.pid, signal);
    }
  };
  bool stopping = false;
  absl::Time stop_deadline = absl::InfiniteFuture();
  while (failure.ok()) {
    int running = 0;
    for (Rank& rank : ranks) {
      if (rank.pid <= 0 || rank.exited) continue;
      if (::waitpid(rank.pid, &rank.status, WNOHANG) == rank.pid) {
        rank.exited = true;
        const bool clean = WIFEXITED(rank.status) &&
                           (WEXITSTATUS(rank.status) == 0 ||
                            (stopping && WEXITSTATUS(rank.status) == kExitStopped));
        if (!clean && !stopping) {
          std::string error;
          {
            absl::MutexLock lock(&shared.mu);
            error = shared.errors[rank.index];
          }
          if (error.empty()) error = LastLine(rank.log_path);
          failure = absl::AbortedError(absl::StrCat("rank ", rank.index, " ", DescribeExit(rank.status),
                                                    error.empty() ? "" : ": ", error));
        }
      } else {
        ++running;
      }
    }
    if (!failure.ok() || running == 0) break;
    if (!stopping && context.cancelled()) {
      // Every rank sees the request at the same step (it is all-reduced); rank 0 checkpoints.
      stopping = true;
      stop_deadline = absl::Now() + kStopGrace;
      kill_all(SIGTERM);
    }
    if (stopping && absl::Now() > stop_deadline) kill_all(SIGKILL);
    if (!stopping) {
      absl::MutexLock lock(&shared.mu);
      for (int r = 0; r < world; ++r) {
        if (!ranks[r].exited && absl::Now() - shared.last_heard[r] > timeout) {
          failure = absl::DeadlineExceededError(absl::StrCat(
              "rank ", r, " sent nothing for ", absl::FormatDuration(timeout),
              " (distributed.timeout_seconds); it is stuck or stopped"));
          break;
        }
      }
    }
    absl::SleepFor(absl::Milliseconds(100));
  }
  if (!failure.ok()) kill_all(SIGKILL);  // the others would only wait for the lost rank
  for (Rank& rank : ranks) {
    if (rank.pid > 0 && !rank.exited) {
      ::waitpid(rank.pid, &rank.status, 0);
      rank.exited = true;
    }
    if (rank.reader.joinable()) rank.reader.join();
  }
  if (!failure.ok()) return failure;
  if (stopping) return absl::CancelledError(absl::StrCat("stopped: ", context.cancel_reason()));
  return absl::OkStatus();
}

// --- worker side ------------------------------------------------------------------------------

std::atomic<bool> stop_requested{false};
extern "C" void OnStopSignal(int) { stop_requested.store(true); }

// Serializes the protocol's lines (the training thread and the heartbeat thread both write).
class Channel {
 public:
  void Send(const json& line) {
    const std::string text = line.dump() + "\n";
    absl::MutexLock lock(&mu_);
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fflush(stdout);
  }

 private:
  absl::Mutex mu_;
};

}  // namespace

absl::Status RunDataParallel(const LaunchOptions& options, JobContext& context) {
  if (options.executable.empty()) {
    return absl::FailedPreconditionError("distributed.world_size > 1 needs the worker executable");
  }
  TrainingPlan plan = options.plan;
  plan.intra_op_threads = options.threads_per_rank;
  const std::string plan_path = (fs::path(options.job_dir) / "plan.json").string();
  BERTD_RETURN_IF_ERROR(WriteFileAtomically(plan_path, plan.ToJson()));
  const bool restarts = options.distributed.restart_policy == "on_failure";
  for (int attempt = 1;; ++attempt) {
    absl::Status status = RunAttempt(options, plan_path, attempt, context);
    if (status.ok() || absl::IsCancelled(status)) return status;
    const int restarts_used = attempt - 1;
    if (!restarts || restarts_used >= options.distributed.max_restarts || context.cancelled()) {
      if (restarts) {
        return absl::Status(status.code(), absl::StrCat(status.message(), " (after ", restarts_used,
                                                        " restarts)"));
      }
      return status;
    }
    context.Emit("log", json({{"message", absl::StrCat("attempt ", attempt, " failed: ", status.message(),
                                                        "; restarting every rank from the last "
                                                        "checkpoint (restart ", attempt, " of ",
                                                        options.distributed.max_restarts, ")")}})
                            .dump())
        .IgnoreError();
  }
}

int RunWorker(const std::string& plan_path, const training::RendezvousConfig& rendezvous) {
  Channel channel;
  auto fail = [&](const absl::Status& status) {
    channel.Send({{"type", "error"},
                  {"code", absl::StatusCodeToString(status.code())},
                  {"message", std::string(status.message())}});
    std::fprintf(stderr, "bertd worker (rank %d): %s\n", rendezvous.rank, status.ToString().c_str());
    return 1;
  };
  absl::StatusOr<std::string> text = ReadFileToString(plan_path);
  if (!text.ok()) return fail(text.status());
  absl::StatusOr<TrainingPlan> plan = TrainingPlan::FromJson(*text);
  if (!plan.ok()) return fail(plan.status());
  absl::StatusOr<training::TrainingJobSpec> spec = training::TrainingJobSpec::FromJson(plan->spec_json);
  if (!spec.ok()) return fail(spec.status());

  struct sigaction action {};
  action.sa_handler = OnStopSignal;
  sigemptyset(&action.sa_mask);
  ::sigaction(SIGTERM, &action, nullptr);
  ::sigaction(SIGINT, &action, nullptr);

  // Heartbeats from their own thread: a rank that is alive but waiting in a long collective still
  // reports; one that is stopped or gone does not.
  std::atomic<int64_t> step{0};
  std::atomic<double> samples_per_second{0};
  std::atomic<bool> finished{false};
  const absl::Duration beat = std::clamp(absl::Seconds(spec->distributed.timeout_seconds) / 10,
                                         absl::Milliseconds(200), absl::Seconds(5));
  std::thread heartbeat([&] {
    while (!finished.load()) {
      channel.Send({{"type", "heartbeat"}, {"step", step.load()}, {"samples_per_second", samples_per_second.load()}});
      for (absl::Time until = absl::Now() + beat; !finished.load() && absl::Now() < until;) {
        absl::SleepFor(absl::Milliseconds(50));
      }
    }
  });
  auto finish = [&](int code) {
    finished.store(true);
    heartbeat.join();
    return code;
  };

  training::RendezvousConfig config = rendezvous;
  config.timeout = absl::Seconds(spec->distributed.timeout_seconds);
  absl::StatusOr<std::unique_ptr<training::DataParallel>> group = training::DataParallel::Join(config);
  if (!group.ok()) return finish(fail(group.status()));

  training::TrainerHooks hooks;
  hooks.data_parallel = group->get();
  hooks.should_stop = [] { return stop_requested.load(); };
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
  if (absl::IsCancelled(status) && stop_requested.load()) return finish(kExitStopped);
  if (!status.ok()) return finish(fail(status));
  return finish(0);
}

}  // namespace bertd::jobs
