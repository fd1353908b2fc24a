#ifndef BERTD_CLIENT_BERTCTL_OUTPUT_H_
#define BERTD_CLIENT_BERTCTL_OUTPUT_H_

#include <cstdio>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "client/connection.h"
#include "google/protobuf/message.h"

namespace bertd::bertctl {

// Exit codes (docs/cli.md).
inline constexpr int kExitOk = 0;
inline constexpr int kExitError = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitJobFailed = 3;

// A mistake in how bertctl was called that the parser cannot see (exit 2).
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Flags every command shares, and the channel built from them on first use.
struct Globals {
  client::ConnectionOptions connection;
  std::string output = "table";

  bool json() const { return output == "json"; }
  // Exits the process with kExitError when a TLS file cannot be read.
  std::shared_ptr<grpc::Channel> channel();

 private:
  std::shared_ptr<grpc::Channel> channel_;
};

// Prints "bertctl: <message>" to stderr and returns kExitError.
int Fail(const std::string& message);
// The same for a failed RPC, with FormatRpcError's advice.
int FailRpc(Globals& globals, const grpc::Status& status, const std::string& action);

bool StdoutIsTerminal();
bool StderrIsTerminal();
bool StdinIsTerminal();

// Proto3 JSON (camelCase names, as grpcurl and docs/api.md show), with zero values included.
std::string ToJson(const google::protobuf::Message& message, bool pretty);

// Columns padded to their widest cell; the header is upper case.
class Table {
 public:
  explicit Table(std::vector<std::string> header) : rows_{std::move(header)} {}
  void Add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  void Print(std::FILE* out = stdout) const;

 private:
  std::vector<std::vector<std::string>> rows_;
};

// "0.9312"
std::string Score(double value);
// "12.3 MiB", "870 B"
std::string Bytes(int64_t bytes);
// "1m05s"
std::string Duration(double seconds);

}  // namespace bertd::bertctl

#endif  // BERTD_CLIENT_BERTCTL_OUTPUT_H_
