#include "bertctl_process.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <thread>

#include "test_util.h"

extern char** environ;

namespace bertd::testing {

BertctlProcess::BertctlProcess(const std::vector<std::string>& args, const std::string& input) {
  static int counter = 0;
  base_ = MakeTempDir("bertctl-run") + "/" + std::to_string(counter++);
  std::ofstream(base_ + ".in") << input;
  std::vector<std::string> argv_strings = {BERTCTL_BINARY};
  argv_strings.insert(argv_strings.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& arg : argv_strings) argv.push_back(arg.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, (base_ + ".in").c_str(), O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, (base_ + ".out").c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, (base_ + ".err").c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), environ) != 0) pid_ = -1;
  posix_spawn_file_actions_destroy(&actions);
}

BertctlProcess::~BertctlProcess() {
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
}

std::string BertctlProcess::out() const { return ReadWholeFile(base_ + ".out"); }

bool BertctlProcess::WaitForOutput(const std::string& text, int timeout_seconds) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_seconds);
  while (std::chrono::steady_clock::now() < deadline) {
    if (out().find(text) != std::string::npos) return true;
    int status = 0;
    if (pid_ > 0 && ::waitpid(pid_, &status, WNOHANG) == pid_) {
      exited_status_ = status;
      pid_ = -1;
      return out().find(text) != std::string::npos;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

void BertctlProcess::Signal(int signal) {
  if (pid_ > 0) ::kill(pid_, signal);
}

BertctlResult BertctlProcess::Wait() {
  BertctlResult result;
  int status = exited_status_;
  if (pid_ > 0) {
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
  }
  if (status >= 0) result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  result.out = out();
  result.err = ReadWholeFile(base_ + ".err");
  return result;
}

BertctlResult RunBertctl(const std::vector<std::string>& args, const std::string& input) {
  return BertctlProcess(args, input).Wait();
}

}  // namespace bertd::testing
