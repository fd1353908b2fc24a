#include "jobs/worker_protocol.h"

#include <filesystem>

#include "absl/strings/str_cat.h"

namespace bertd::jobs {

std::string ChannelPath(const std::string& job_dir, int rank) {
  return (std::filesystem::path(job_dir) / absl::StrCat("rank-", rank, ".jsonl")).string();
}

std::string StopFilePath(const std::string& job_dir) {
  return (std::filesystem::path(job_dir) / "stop").string();
}

}  // namespace bertd::jobs
