#ifndef BERTD_JOBS_WORKER_PROTOCOL_H_
#define BERTD_JOBS_WORKER_PROTOCOL_H_

// What the launcher (distributed.cc) and the worker process (worker_main.cc) agree on: where a
// rank reports, how it is asked to stop and the exit codes (the line format: distributed.h).

#include <string>

namespace bertd::jobs {

// A worker asked to stop (SIGTERM or the stop file) exits with this once rank 0 has checkpointed.
inline constexpr int kExitStopped = 3;

// <job_dir>/rank-<r>.jsonl: the rank's channel.
std::string ChannelPath(const std::string& job_dir, int rank);
// <job_dir>/stop: created by the server to ask every rank to stop at its next step.
std::string StopFilePath(const std::string& job_dir);

}  // namespace bertd::jobs

#endif  // BERTD_JOBS_WORKER_PROTOCOL_H_
