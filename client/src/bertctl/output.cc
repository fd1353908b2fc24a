#include "bertctl/output.h"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>

#include "absl/strings/str_format.h"
#include "client/errors.h"
#include "google/protobuf/util/json_util.h"

namespace bertd::bertctl {

std::shared_ptr<grpc::Channel> Globals::channel() {
  if (channel_ == nullptr) {
    auto channel = client::CreateChannel(connection);
    if (!channel.ok()) {
      Fail(std::string(channel.status().message()));
      std::exit(kExitError);
    }
    channel_ = *std::move(channel);
  }
  return channel_;
}

int Fail(const std::string& message) {
  std::fflush(stdout);
  std::fprintf(stderr, "bertctl: %s\n", message.c_str());
  return kExitError;
}

int FailRpc(Globals& globals, const grpc::Status& status, const std::string& action) {
  return Fail(client::FormatRpcError(status, action, globals.connection.server,
                                     globals.connection.timeout_seconds));
}

bool StdoutIsTerminal() { return ::isatty(STDOUT_FILENO) == 1; }
bool StderrIsTerminal() { return ::isatty(STDERR_FILENO) == 1; }
bool StdinIsTerminal() { return ::isatty(STDIN_FILENO) == 1; }

std::string ToJson(const google::protobuf::Message& message, bool pretty) {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = pretty;
  options.always_print_primitive_fields = true;
  std::string out;
  (void)google::protobuf::util::MessageToJsonString(message, &out, options);
  // add_whitespace leaves a trailing newline; callers add their own.
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

void Table::Print(std::FILE* out) const {
  std::vector<size_t> widths;
  for (const auto& row : rows_) {
    widths.resize(std::max(widths.size(), row.size()), 0);
    for (size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
  }
  for (size_t r = 0; r < rows_.size(); ++r) {
    std::string line;
    for (size_t i = 0; i < rows_[r].size(); ++i) {
      std::string cell = rows_[r][i];
      if (r == 0) {
        for (char& c : cell) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      }
      line += cell;
      if (i + 1 < rows_[r].size()) line += std::string(widths[i] - cell.size() + 2, ' ');
    }
    std::fprintf(out, "%s\n", line.c_str());
  }
}

std::string Score(double value) { return absl::StrFormat("%.4f", value); }

std::string Bytes(int64_t bytes) {
  if (bytes < 1024) return absl::StrFormat("%d B", bytes);
  if (bytes < (1 << 20)) return absl::StrFormat("%.1f KiB", bytes / 1024.0);
  if (bytes < (1LL << 30)) return absl::StrFormat("%.1f MiB", bytes / 1048576.0);
  return absl::StrFormat("%.2f GiB", bytes / 1073741824.0);
}

std::string Duration(double seconds) {
  if (seconds < 0) return "?";
  int64_t s = static_cast<int64_t>(seconds + 0.5);
  if (s < 60) return absl::StrFormat("%ds", s);
  if (s < 3600) return absl::StrFormat("%dm%02ds", s / 60, s % 60);
  return absl::StrFormat("%dh%02dm", s / 3600, (s % 3600) / 60);
}

}  // namespace bertd::bertctl
