#ifndef BERTD_TRAINING_DATA_PARALLEL_H_
#define BERTD_TRAINING_DATA_PARALLEL_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace torch::nn {
class Module;
}
namespace at {
class Tensor;
}

// Data-parallel training over LibTorch's c10d: a TCPStore rendezvous, a Gloo process group, and
// c10d's Reducer (the engine of PyTorch's DistributedDataParallel) for bucketed gradient
// all-reduce that overlaps the backward pass. No LibTorch in this header.
namespace bertd::training {

// Where a rank finds its peers: the variables torchrun and Kubernetes launchers set.
struct RendezvousConfig {
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  int world_size = 1;
  int rank = 0;
  int local_rank = 0;
  // A collective, or the rendezvous, that waits longer than this fails with DEADLINE_EXCEEDED
  // instead of hanging: a dead or stuck rank ends the job.
  absl::Duration timeout = absl::Minutes(5);
};

// MASTER_ADDR, MASTER_PORT, WORLD_SIZE, RANK and LOCAL_RANK from `getenv` (a function so that
// the caller decides where the environment comes from). INVALID_ARGUMENT names the variable.
absl::StatusOr<RendezvousConfig> RendezvousFromEnvironment(const char* (*getenv)(const char*));

class DataParallel {
 public:
  // Joins the group: blocks until all world_size ranks have connected (or config.timeout).
  static absl::StatusOr<std::unique_ptr<DataParallel>> Join(const RendezvousConfig& config);
  ~DataParallel();

  int rank() const { return config_.rank; }
  int world_size() const { return config_.world_size; }
  const RendezvousConfig& config() const { return config_; }

  // Rank 0's parameters and buffers to every rank (identical start).
  absl::Status BroadcastFromRankZero(torch::nn::Module& model);

  // Gradient synchronization for `model`'s trainable parameters. After Attach, a backward pass
  // that follows ExpectBackward(loss) leaves every parameter's .grad equal to the SUM over ranks
  // of their local gradients (scale each rank's loss so that the sum is what you want); a
  // backward without ExpectBackward accumulates locally (gradient accumulation). Parameters that
  // a task leaves unused are found and reduced as zeros.
  absl::Status Attach(torch::nn::Module& model, int64_t bucket_bytes = 25 << 20);
  void ExpectBackward(const at::Tensor& loss);
  // Seconds spent in gradient all-reduces (summed over buckets, launch to completion) since the
  // previous call.
  double TakeAllReduceSeconds();

  // Element-wise sum over ranks, in place (losses, counts, stop flags; small vectors).
  absl::Status AllReduceSum(std::vector<double>* values);
  // Every rank's `values` (the same length on every rank), rank by rank.
  absl::StatusOr<std::vector<int64_t>> AllGather(const std::vector<int64_t>& values);
  absl::Status Barrier();

 private:
  struct Impl;
  DataParallel(RendezvousConfig config, std::unique_ptr<Impl> impl);
  RendezvousConfig config_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace bertd::training

#endif  // BERTD_TRAINING_DATA_PARALLEL_H_
