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
#include "common/json.h"
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

// The last non-empty line of a file (a rank's stderr log), for failure messages.
std::string LastLine(const std::string& path) {
  std::ifstream in(path);
  std::string line, last;
  while (std::getline(in, line)) {
    if (!line.empty()) last = line;
  }
  return last.size() > 300 ? last.substr(0, 300) + "..." : last;
}

std::string ChannelPath(const std::string& job_dir, int rank) {
  return (fs::path(job_dir) / absl::StrCat("rank-", rank, ".jsonl")).string();
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
  std::string error;     // from an "error" line
  int exit_code = -1;    // from an "exit" line (external launcher), -1 = none yet
};

// One line of a rank's channel.
void HandleLine(const json& line, Rank& rank, const std::vector<Rank>& all, JobContext& context) {
  const std::string type = line.value("type", "");
  if (type == "heartbeat") {
    rank.samples_per_second = line.value("samples_per_second", 0.0);
  } else if (type == "error") {
    rank.error = absl::StrCat(line.value("code", "UNKNOWN"), ": ", line.value("message", ""));
  } else if (type == "exit") {
    rank.exit_code = line.value("code", 1);
  } else if (type == "event" && rank.index == 0) {
    const std::string event = line.value("event", "");
    json payload = line.contains("payload") ? line["payload"] : json::object();
    if (event == "progress") {
      std::vector<double> rates;
      for (const Rank& r : all) rates.push_back(r.samples_per_second);
      payload["rank_samples_per_second"] = rates;
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

std::vector<std::string> WorkerEnvironment(int rank, int world_size, int port) {
  return EnvironmentWith({"MASTER_ADDR=127.0.0.1", absl::StrCat("MASTER_PORT=", port),
                          absl::StrCat("WORLD_SIZE=", world_size), absl::StrCat("RANK=", rank),
                          absl::StrCat("LOCAL_RANK=", rank)});
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
                   int port, Rank* rank) {
  std::vector<std::string> args = {executable, "--worker_plan=" + plan_path};
  std::vector<std::string> env = WorkerEnvironment(rank->index, world_size, port);
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
    ::execve(argv[0], argv.data(), envp.data());
    ::_exit(127);
  }
  ::close(log_fd);
  if (pid < 0) return absl::InternalError(absl::StrCat("fork: ", strerror(errno)));
  rank->pid = pid;
  return absl::OkStatus();
}

std::string StopFilePath(const std::string& job_dir) { return (fs::path(job_dir) / "stop").string(); }

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
      failure = Spawn(options.executable, plan_path, world, port, &rank);
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
    return absl::AbortedError(absl::StrCat("rank ", rank.index, " ", how, error.empty() ? "" : ": ", error));
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

// --- worker side ------------------------------------------------------------------------------

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
      channel.Send({{"type", "heartbeat"}, {"step", step.load()}, {"samples_per_second", samples_per_second.load()}});
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
  absl::StatusOr<std::unique_ptr<training::DataParallel>> group = training::DataParallel::Join(config);
  if (!group.ok()) return finish(fail(group.status()));

  training::TrainerHooks hooks;
  hooks.data_parallel = group->get();
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
