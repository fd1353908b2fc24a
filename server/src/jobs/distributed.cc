#include "jobs/distributed.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/resource.h>
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
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/json.h"
#include "absl/time/clock.h"
#include "common/byte_size.h"
#include "common/file_util.h"
#include "common/status_macros.h"
#include "jobs/worker_protocol.h"

extern char** environ;

namespace bertd::jobs {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// How long ranks asked to stop may take to reach a step boundary and checkpoint.
constexpr absl::Duration kStopGrace = absl::Seconds(60);
// --external_launch_command submits workers; it does not wait for them.
constexpr absl::Duration kLaunchCommandTimeout = absl::Minutes(2);

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

// Text of allocation failures: LibTorch's allocator, the C++ runtime, OpenMP's thread stacks.
bool LooksOutOfMemory(absl::string_view error) {
  for (absl::string_view marker : {"not enough memory", "bad_alloc", "Cannot allocate memory",
                                   "can't allocate memory", "Thread creation failed",
                                   "out of memory"}) {
    if (absl::StrContains(error, marker)) return true;
  }
  return false;
}

// The job's error when a rank failed: what a user can act on first (out of memory, the signal),
// then what the worker said.
absl::Status DescribeFailure(int rank, int world, const std::string& how, const std::string& error,
                             int64_t memory_limit_bytes) {
  const std::string who = world == 1 ? "the worker process" : absl::StrCat("rank ", rank);
  std::string what = absl::StrCat(who, " ", how);
  if (LooksOutOfMemory(error)) {
    what = absl::StrCat(who, " ran out of memory",
                        memory_limit_bytes > 0
                            ? absl::StrCat(" (limit ", FormatBytes(memory_limit_bytes),
                                           ", --training_memory_limit)")
                            : "",
                        " and ", how);
  } else if (absl::StrContains(how, "signal 9 ")) {
    absl::StrAppend(&what, "; the kernel's out-of-memory killer sends SIGKILL when memory runs out");
  }
  return absl::AbortedError(absl::StrCat(what, error.empty() ? "" : ": ", error));
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


// What the server knows of one rank: its process (local launcher), its channel file and what it
// last said.
struct Rank {
  int index = 0;
  pid_t pid = -1;  // local launcher only
  bool exited = false;
  int status = 0;  // waitpid status (local)
  std::string log_path;
  std::string channel_path;
  int64_t offset = 0;    // bytes of the channel already read
  std::string partial;   // a line not yet ended
  bool heard = false;    // said anything in this attempt
  absl::Time last_heard = absl::InfinitePast();
  double samples_per_second = 0;
  int64_t rss_bytes = 0;  // from its heartbeats
  std::string error;     // from an "error" line
  int exit_code = -1;    // from an "exit" line (external launcher), -1 = none yet
};

// One line of a rank's channel.
void HandleLine(const json& line, Rank& rank, const std::vector<Rank>& all, JobContext& context) {
  const std::string type = line.value("type", "");
  if (type == "heartbeat") {
    rank.samples_per_second = line.value("samples_per_second", 0.0);
    // External ranks write this from other hosts: any number, read as a double and clamped.
    const double rss = line.value("rss_bytes", 0.0);
    rank.rss_bytes = rss > 0 && rss < 1e15 ? static_cast<int64_t>(rss) : 0;
  } else if (type == "error") {
    rank.error = absl::StrCat(line.value("code", "UNKNOWN"), ": ", line.value("message", ""));
  } else if (type == "exit") {
    rank.exit_code = line.value("code", 1);
  } else if (type == "event" && rank.index == 0) {
    const std::string event = line.value("event", "");
    json payload = line.contains("payload") ? line["payload"] : json::object();
    if (event == "progress") {
      std::vector<double> rates;
      int64_t memory = 0;
      for (const Rank& r : all) {
        rates.push_back(r.samples_per_second);
        memory += r.rss_bytes;
      }
      payload["rank_samples_per_second"] = rates;
      payload["memory_bytes"] = memory;
    }
    context.Emit(event, payload.dump()).IgnoreError();
  }
}

// Reads what `rank` appended to its channel since the last call: heartbeats and errors for every
// rank, events (rank 0) to the job, progress augmented with every rank's samples per second.
void Poll(Rank& rank, const std::vector<Rank>& all, JobContext& context) {
  std::ifstream in(rank.channel_path, std::ios::binary);
  if (!in) return;
  in.seekg(0, std::ios::end);
  const int64_t size = static_cast<int64_t>(in.tellg());
  if (size < rank.offset) rank.offset = 0;  // truncated: a new file
  if (size == rank.offset) return;
  in.seekg(rank.offset);
  std::string bytes(static_cast<size_t>(size - rank.offset), '\0');
  in.read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  rank.offset = size;
  rank.partial += bytes;
  size_t start = 0;
  for (size_t end; (end = rank.partial.find('\n', start)) != std::string::npos; start = end + 1) {
    // Bounded like any outside JSON: external ranks write these files from other hosts.
    absl::StatusOr<json> parsed = ParseJson(absl::string_view(rank.partial).substr(start, end - start));
    rank.heard = true;
    rank.last_heard = absl::Now();
    if (!parsed.ok() || !parsed->is_object()) continue;
    const json& line = *parsed;
    try {
      HandleLine(line, rank, all, context);
    } catch (const json::exception&) {
      // A line of the wrong shape is ignored like one that does not parse.
    }
  }
  rank.partial.erase(0, start);
}

// Our environment with `overrides` (NAME=value) replacing or adding variables; built before fork,
// since nothing after fork may allocate.
std::vector<std::string> EnvironmentWith(const std::vector<std::string>& overrides) {
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string entry = *e;
    bool replaced = false;
    for (const std::string& o : overrides) {
      replaced = replaced || entry.compare(0, o.find('=') + 1, o, 0, o.find('=') + 1) == 0;
    }
    if (!replaced) env.push_back(entry);
  }
  env.insert(env.end(), overrides.begin(), overrides.end());
  return env;
}

std::vector<std::string> WorkerEnvironment(int rank, int world_size, int port,
                                           const RankPlacement* placement) {
  std::vector<std::string> overrides = {
      "MASTER_ADDR=127.0.0.1", absl::StrCat("MASTER_PORT=", port),
      absl::StrCat("WORLD_SIZE=", world_size), absl::StrCat("RANK=", rank),
      absl::StrCat("LOCAL_RANK=", rank)};
  if (placement != nullptr) {
    // A CUDA rank sees only its slot's device (as cuda:0); a CPU rank sees none, so it can never
    // take GPU memory from the jobs that hold GPU slots.
    overrides.push_back(absl::StrCat("CUDA_VISIBLE_DEVICES=",
                                     placement->cuda_device >= 0 ? absl::StrCat(placement->cuda_device) : ""));
    overrides.push_back(absl::StrCat(kWorkerDeviceVariable, "=",
                                     placement->cuda_device >= 0 ? "cuda" : "cpu"));
  }
  return EnvironmentWith(overrides);
}

// Runs `command` with /bin/sh and `env`; returns its output (stdout and stderr) or why it failed.
absl::StatusOr<std::string> RunCommand(const std::string& command, std::vector<std::string> env,
                                       absl::Duration timeout) {
  std::vector<std::string> args = {"/bin/sh", "-c", command};
  std::vector<char*> argv, envp;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  for (std::string& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0) return absl::InternalError(absl::StrCat("pipe: ", strerror(errno)));
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(out[1], STDOUT_FILENO);
    ::dup2(out[1], STDERR_FILENO);
    ::close_range(3, ~0U, 0);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::execve(argv[0], argv.data(), envp.data());
    ::_exit(127);
  }
  ::close(out[1]);
  if (pid < 0) {
    ::close(out[0]);
    return absl::InternalError(absl::StrCat("fork: ", strerror(errno)));
  }
  ::fcntl(out[0], F_SETFL, O_NONBLOCK);
  std::string output;
  const absl::Time deadline = absl::Now() + timeout;
  int status = 0;
  bool done = false;
  while (!done) {
    char buffer[4096];
    ssize_t n;
    while ((n = ::read(out[0], buffer, sizeof(buffer))) > 0) output.append(buffer, n);
    done = ::waitpid(pid, &status, WNOHANG) == pid;
    if (!done && absl::Now() > deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      ::close(out[0]);
      return absl::DeadlineExceededError(absl::StrCat("did not finish within ", absl::FormatDuration(timeout)));
    }
    if (!done) absl::SleepFor(absl::Milliseconds(20));
  }
  char buffer[4096];
  ssize_t n;
  while ((n = ::read(out[0], buffer, sizeof(buffer))) > 0) output.append(buffer, n);
  ::close(out[0]);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return absl::FailedPreconditionError(absl::StrCat(DescribeExit(status), ": ", output));
  }
  return output;
}

absl::Status Spawn(const std::string& executable, const std::string& plan_path, int world_size,
                   int port, const RankPlacement* placement, int64_t memory_limit_bytes,
                   Rank* rank) {
  // The server's JSON depth limit: the worker parses the same datasets and model files again.
  std::vector<std::string> args = {executable, "--worker_plan=" + plan_path,
                                   absl::StrCat("--max_json_depth=", MaxJsonDepth())};
  std::vector<std::string> env = WorkerEnvironment(rank->index, world_size, port, placement);
  // Built before fork: nothing after it may allocate.
  cpu_set_t cpus;
  CPU_ZERO(&cpus);
  const bool pin = placement != nullptr && !placement->cpus.empty();
  if (pin) {
    for (int cpu : placement->cpus) CPU_SET(cpu, &cpus);
  }
  const bool cpu_rank = placement == nullptr || placement->cuda_device < 0;
  struct rlimit limit {};
  limit.rlim_cur = limit.rlim_max = static_cast<rlim_t>(memory_limit_bytes);
  const bool limit_memory = cpu_rank && memory_limit_bytes > 0;
  std::vector<char*> argv, envp;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  for (std::string& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  const int log_fd = ::open(rank->log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) {
    return absl::InternalError(absl::StrCat("cannot open ", rank->log_path, ": ", strerror(errno)));
  }
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid == 0) {
    // Child: only async-signal-safe calls until exec.
    ::dup2(log_fd, STDOUT_FILENO);
    ::dup2(log_fd, STDERR_FILENO);
    ::close_range(3, ~0U, 0);
    // The server blocks SIGTERM/SIGINT in every thread for sigwait; the worker needs them.
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);  // the server died before prctl
    if (pin && ::sched_setaffinity(0, sizeof(cpus), &cpus) != 0) ::_exit(126);
    if (limit_memory && ::setrlimit(RLIMIT_DATA, &limit) != 0) ::_exit(126);
    ::execve(argv[0], argv.data(), envp.data());
    ::_exit(127);
  }
  ::close(log_fd);
  if (pid < 0) return absl::InternalError(absl::StrCat("fork: ", strerror(errno)));
  rank->pid = pid;
  return absl::OkStatus();
}


// One attempt: start every rank (local launcher) or wait for them (external), and watch them until
// they are all done or the attempt fails. OK, CANCELLED (stopped on request), or the failure.
absl::Status RunAttempt(const LaunchOptions& options, const std::string& plan_path, int attempt,
                        JobContext& context) {
  const int world = options.distributed.world_size;
  const bool local = options.distributed.launcher == "local";
  const absl::Duration timeout = absl::Seconds(options.distributed.timeout_seconds);
  std::error_code ec;
  fs::remove(StopFilePath(options.job_dir), ec);
  std::vector<Rank> ranks(world);
  for (int r = 0; r < world; ++r) {
    ranks[r].index = r;
    ranks[r].log_path = (fs::path(options.job_dir) / absl::StrCat("rank-", r, ".log")).string();
    ranks[r].channel_path = ChannelPath(options.job_dir, r);
    // Only what this attempt's workers write counts.
    ranks[r].offset = static_cast<int64_t>(fs::file_size(ranks[r].channel_path, ec));
    if (ec) ranks[r].offset = 0;
  }
  absl::Status failure;
  if (local) {
    const int port = FreeLoopbackPort();
    if (port == 0) return absl::UnavailableError("no free loopback port for the rendezvous");
    for (Rank& rank : ranks) {
      if (std::FILE* log = std::fopen(rank.log_path.c_str(), "a")) {
        std::fprintf(log, "--- attempt %d, rank %d of %d, MASTER_PORT=%d\n", attempt, rank.index, world, port);
        std::fclose(log);
      }
      rank.last_heard = absl::Now();  // a local rank has `timeout` to say its first word
      const RankPlacement* placement =
          rank.index < static_cast<int>(options.placement.size()) ? &options.placement[rank.index] : nullptr;
      failure = Spawn(options.executable, plan_path, world, port, placement,
                      options.memory_limit_bytes, &rank);
      if (!failure.ok()) break;
    }
  } else if (options.launch_command.empty()) {
    context.Emit("log", json({{"message", absl::StrCat(
                                              "waiting for ", world, " worker processes: start ",
                                              "them with --worker_plan=", plan_path, " and ",
                                              "WORLD_SIZE=", world, ", RANK, MASTER_ADDR, ",
                                              "MASTER_PORT (docs/distributed.md)")}})
                            .dump())
        .IgnoreError();
  } else {
    // The operator's command submits the workers (deploy/kubernetes/training/launch.sh creates an
    // Indexed Job); it must return once they are submitted, not when they finish.
    absl::StatusOr<std::string> output = RunCommand(
        options.launch_command,
        EnvironmentWith({absl::StrCat("BERTD_JOB_ID=", options.plan.job_id),
                         absl::StrCat("BERTD_WORLD_SIZE=", world),
                         absl::StrCat("BERTD_PLAN=", plan_path),
                         absl::StrCat("BERTD_JOB_DIR=", options.job_dir),
                         absl::StrCat("BERTD_ATTEMPT=", attempt)}),
        kLaunchCommandTimeout);
    if (!output.ok()) {
      return absl::Status(output.status().code(),
                          absl::StrCat("--external_launch_command: ", output.status().message()));
    }
    context.Emit("log", json({{"message", absl::StrCat("launched ", world, " workers for ", plan_path,
                                                        output->empty() ? "" : ": ", *output)}})
                            .dump())
        .IgnoreError();
  }

  auto signal_all = [&](int signal) {
    for (Rank& rank : ranks) {
      if (rank.pid > 0 && !rank.exited) ::kill(rank.pid, signal);
    }
  };
  auto ask_to_stop = [&] {
    // Local ranks get SIGTERM; external ones look for the stop file at every step.
    if (std::FILE* stop = std::fopen(StopFilePath(options.job_dir).c_str(), "w")) std::fclose(stop);
    signal_all(SIGTERM);
  };
  auto describe = [&](const Rank& rank, const std::string& how) {
    std::string error = rank.error;
    if (error.empty() && local) error = LastLine(rank.log_path);
    return DescribeFailure(rank.index, world, how, error, options.memory_limit_bytes);
  };
  bool stopping = false;
  absl::Time stop_deadline = absl::InfiniteFuture();
  while (failure.ok()) {
    int running = 0;
    for (Rank& rank : ranks) {
      Poll(rank, ranks, context);
      if (rank.exited) continue;
      if (local && ::waitpid(rank.pid, &rank.status, WNOHANG) == rank.pid) {
        rank.exited = true;
        Poll(rank, ranks, context);  // its last words
        const bool clean = WIFEXITED(rank.status) &&
                           (WEXITSTATUS(rank.status) == 0 ||
                            (stopping && WEXITSTATUS(rank.status) == kExitStopped));
        if (!clean && !stopping) failure = describe(rank, DescribeExit(rank.status));
      } else if (!local && rank.exit_code >= 0) {
        rank.exited = true;
        const bool clean = rank.exit_code == 0 || (stopping && rank.exit_code == kExitStopped);
        if (!clean && !stopping) failure = describe(rank, absl::StrCat("exited with code ", rank.exit_code));
      } else {
        ++running;
      }
    }
    if (!failure.ok() || running == 0) break;
    if (!stopping && context.cancelled()) {
      // Every rank sees the request at the same step (it is all-reduced); rank 0 checkpoints.
      stopping = true;
      stop_deadline = absl::Now() + kStopGrace;
      ask_to_stop();
    }
    if (stopping && absl::Now() > stop_deadline) {
      if (!local) break;  // external workers that do not answer are the launcher's to clean up
      signal_all(SIGKILL);
    }
    if (!stopping) {
      // External ranks are timed from their first word: their pods may wait to be scheduled.
      for (const Rank& rank : ranks) {
        if (!rank.exited && (local || rank.heard) && absl::Now() - rank.last_heard > timeout) {
          failure = absl::DeadlineExceededError(absl::StrCat(
              "rank ", rank.index, " sent nothing for ", absl::FormatDuration(timeout),
              " (distributed.timeout_seconds); it is stuck or stopped"));
          break;
        }
      }
    }
    absl::SleepFor(absl::Milliseconds(100));
  }
  if (!failure.ok()) {
    ask_to_stop();        // external survivors stop at their next step
    signal_all(SIGKILL);  // local ones would only wait for the lost rank
  }
  for (Rank& rank : ranks) {
    if (rank.pid > 0 && !rank.exited) {
      ::waitpid(rank.pid, &rank.status, 0);
      rank.exited = true;
    }
  }
  if (!failure.ok()) return failure;
  if (stopping) return absl::CancelledError(absl::StrCat("stopped: ", context.cancel_reason()));
  return absl::OkStatus();
}

}  // namespace

absl::Status RunDataParallel(const LaunchOptions& options, JobContext& context) {
  if (options.distributed.launcher == "local" && options.executable.empty()) {
    return absl::FailedPreconditionError("the local launcher needs the worker executable");
  }
  TrainingPlan plan = options.plan;
  plan.intra_op_threads = options.threads_per_rank;
  const std::string plan_path = (fs::path(options.job_dir) / "plan.json").string();
  BERTD_RETURN_IF_ERROR(WriteFileAtomically(plan_path, plan.ToJson()));
  const bool restarts = options.distributed.restart_policy == "on_failure";
  for (int attempt = 1;; ++attempt) {
    absl::Status status = RunAttempt(options, plan_path, attempt, context);
    if (status.ok()) {
      // The channels only matter while the job runs; the logs stay with the job.
      std::error_code ec;
      for (int r = 0; r < options.distributed.world_size; ++r) fs::remove(ChannelPath(options.job_dir, r), ec);
      return status;
    }
    if (absl::IsCancelled(status)) return status;
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

}  // namespace bertd::jobs
