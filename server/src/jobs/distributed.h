#ifndef BERTD_JOBS_DISTRIBUTED_H_
#define BERTD_JOBS_DISTRIBUTED_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "jobs/scheduler.h"
#include "jobs/training_plan.h"
#include "training/data_parallel.h"
#include "training/job_spec.h"

// Data-parallel jobs as processes: the server side starts (or, with the external launcher, waits
// for) one worker process per rank (bertd itself, in worker mode) and watches them; the worker
// side joins the c10d group and runs its share of the plan. Rank r reports by appending JSON lines
// to <job_dir>/rank-<r>.jsonl, beside plan.json (a file, so that workers on other hosts can report
// through shared storage):
//   {"type": "event", "event": "progress|eval|checkpoint|log", "payload": {...}}   rank 0 only
//   {"type": "heartbeat", "step": N, "samples_per_second": X}                      every rank
//   {"type": "error", "code": "INTERNAL", "message": "..."}
//   {"type": "exit", "code": 0|1|3}                                                last line
// The server asks ranks to stop by creating <job_dir>/stop (and, for its own processes, SIGTERM).
// What a local worker prints (LibTorch, Gloo) goes to <job_dir>/rank-<r>.log.
namespace bertd::jobs {

// Where one local rank runs: the slot of the training pool it holds.
// Where a local worker trains: "cuda" (its slot's GPU, which it sees as cuda:0) or "cpu" (also when
// unset, as for workers an external launcher starts).
inline constexpr char kWorkerDeviceVariable[] = "BERTD_WORKER_DEVICE";

struct RankPlacement {
  std::string slot;        // "cpu:0", "cuda:1" (for messages)
  std::vector<int> cpus;   // CPU affinity; empty: any CPU
  int cuda_device = -1;    // made its only visible device (cuda:0 inside); -1: GPUs hidden
};

struct LaunchOptions {
  std::string executable;  // local launcher: started as executable --worker_plan=<job_dir>/plan.json
  TrainingPlan plan;
  std::string job_dir;
  training::DistributedOptions distributed;
  int threads_per_rank = 1;
  // Local launcher: one per rank (empty: no pinning), and the memory limit of each CPU rank's
  // process (setrlimit RLIMIT_DATA: its heap and private writable mappings, which is where
  // tensors live; 0: none). A rank that runs out of it, or that the kernel kills, fails the
  // attempt with a reason that says so.
  std::vector<RankPlacement> placement;
  int64_t memory_limit_bytes = 0;
  // External launcher: run with /bin/sh once per attempt, with BERTD_JOB_ID, BERTD_WORLD_SIZE,
  // BERTD_PLAN, BERTD_JOB_DIR and BERTD_ATTEMPT set, to submit the workers (empty: someone else
  // starts them; the job log says how).
  std::string launch_command;
};

// Runs the plan as distributed.world_size workers and returns when they are done; rank 0's events
// become the job's. The local launcher starts them here with MASTER_ADDR=127.0.0.1, a free
// MASTER_PORT, WORLD_SIZE, RANK and LOCAL_RANK; the external one waits for workers started
// elsewhere on the same files. A rank that exits badly, or is silent for
// distributed.timeout_seconds (external ranks: after their first line), ends the attempt: the
// others are stopped, and the job fails, or with restart_policy on_failure every rank restarts
// from rank 0's last checkpoint. A cancel (or shutdown) asks every rank to stop at the same step;
// rank 0 checkpoints. Local workers die with the server (PDEATHSIG), so a killed server leaves no
// orphans and its restart resumes the job.
absl::Status RunDataParallel(const LaunchOptions& options, JobContext& context);

// Worker mode (bertd --worker_plan=FILE): joins the group described by `rendezvous`, runs the
// plan, and speaks the protocol above on stdout. Returns the process exit code: 0 done, 3 stopped
// (SIGTERM/SIGINT; rank 0 checkpointed), 1 failed.
int RunWorker(const std::string& plan_path, const training::RendezvousConfig& rendezvous);

}  // namespace bertd::jobs

#endif  // BERTD_JOBS_DISTRIBUTED_H_
