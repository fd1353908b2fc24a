#ifndef BERTD_TESTS_INTEGRATION_BERTD_PROCESS_H_
#define BERTD_TESTS_INTEGRATION_BERTD_PROCESS_H_

#include <grpcpp/grpcpp.h>
#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

namespace bertd::testing {

// A free TCP port on 127.0.0.1 (bound and released; fine for tests on one machine).
int PickFreePort();

// Runs the real bertd binary on loopback as a child process.
class BertdProcess {
 public:
  // Starts bertd with --listen/--metrics_listen on free loopback ports and `extra_flags`.
  explicit BertdProcess(std::string data_dir, std::vector<std::string> extra_flags = {});
  ~BertdProcess();  // SIGKILLs the process if it is still running

  // Waits until a health check of `service` answers SERVING; false on timeout or exit.
  bool WaitUntilServing(const std::string& service = "", int timeout_seconds = 60);
  // Sends SIGTERM and waits; returns the exit code (or 128 + signal).
  int Terminate(int timeout_seconds = 60);
  // SIGKILL, as a crash or an OOM kill would: nothing is flushed or cleaned up.
  void Kill();

  std::shared_ptr<grpc::Channel> channel() const { return channel_; }
  int grpc_port() const { return grpc_port_; }
  int metrics_port() const { return metrics_port_; }
  pid_t pid() const { return pid_; }
  std::string log() const;  // what bertd wrote to stderr

 private:
  std::string data_dir_;
  std::string log_path_;
  int grpc_port_ = 0;
  int metrics_port_ = 0;
  pid_t pid_ = -1;
  std::shared_ptr<grpc::Channel> channel_;
};

// GET http://127.0.0.1:<port><path>; returns the body ("" on failure).
std::string HttpGet(int port, const std::string& path);

}  // namespace bertd::testing

#endif  // BERTD_TESTS_INTEGRATION_BERTD_PROCESS_H_
