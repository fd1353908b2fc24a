#ifndef BERTD_TESTS_E2E_BERTCTL_PROCESS_H_
#define BERTD_TESTS_E2E_BERTCTL_PROCESS_H_

#include <sys/types.h>

#include <string>
#include <vector>

namespace bertd::testing {

struct BertctlResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// A bertctl process whose stdin is a file (never a terminal) and whose stdout/stderr go to files,
// so a test can watch its output while it runs.
class BertctlProcess {
 public:
  explicit BertctlProcess(const std::vector<std::string>& args, const std::string& input = "");
  ~BertctlProcess();  // SIGKILLs a process still running

  std::string out() const;
  // Waits until stdout contains `text`; false on timeout or when the process exited first.
  bool WaitForOutput(const std::string& text, int timeout_seconds);
  void Signal(int signal);
  BertctlResult Wait();

 private:
  std::string base_;
  pid_t pid_ = -1;
  int exited_status_ = -1;
};

// Runs bertctl to completion.
BertctlResult RunBertctl(const std::vector<std::string>& args, const std::string& input = "");

}  // namespace bertd::testing

#endif  // BERTD_TESTS_E2E_BERTCTL_PROCESS_H_
