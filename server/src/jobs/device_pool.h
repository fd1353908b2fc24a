#ifndef BERTD_JOBS_DEVICE_POOL_H_
#define BERTD_JOBS_DEVICE_POOL_H_

// The training pool: the slots jobs run on (--training_devices), what a job asks of it, and
// whether it can ever fit. Each CUDA device is one slot; CPU slots share the machine's cores
// (each gets its own CPUs and thread count). No LibTorch here: the caller says how many CUDA
// devices there are.

#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace bertd::jobs {

enum class DeviceType { kCpu, kCuda };

// "cpu" or "cuda".
absl::string_view DeviceTypeName(DeviceType type);

struct Slot {
  std::string name;  // "cpu:0", "cuda:1": the type and the slot's index within its type
  DeviceType type = DeviceType::kCpu;
  int index = 0;  // CPU slot number, or CUDA device index
};

// Parses --training_devices:
//   auto                one slot per CUDA device (cuda_devices of them); cpu:1 when there is none
//   cpu:N               N CPU slots (N >= 1)
//   cuda:I              CUDA device I (I < cuda_devices); "cuda" alone: every CUDA device
//   a,b,...             several of the above, e.g. cuda:0,cuda:1 or cuda:0,cpu:1
//   none                no slot: jobs are accepted and wait (a node that only queues)
// INVALID_ARGUMENT naming --training_devices and the item for anything else (duplicates, a CUDA
// device this machine does not have).
absl::StatusOr<std::vector<Slot>> ParseTrainingDevices(absl::string_view spec, int cuda_devices);

// The slot a name from the pool stands for ("cuda:1": CUDA device 1; "cpu:0": CPU slot 0), as
// the scheduler hands it to a job's runner. A name without a number is index 0.
Slot SlotFromName(absl::string_view name);

// "cuda:0, cuda:1, cpu:0" or "none": for the start-up log, GetServerInfo and messages.
std::string DescribePool(const std::vector<Slot>& slots);

// Slots of `type` in `pool`.
int CountSlots(const std::vector<Slot>& pool, DeviceType type);

// `cpus` shared out among `slots` CPU slots: consecutive runs, every slot at least one (slots
// outnumbering CPUs share them round-robin).
std::vector<std::vector<int>> ShareCpus(const std::vector<int>& cpus, int slots);

// What a job holds while it runs: `count` slots of one type (nullopt: any type). 0 slots: the
// job runs elsewhere (external launcher) and only its supervision runs here.
struct SlotDemand {
  std::optional<DeviceType> type;
  int count = 1;
};

// OK when `demand` fits `pool` once every slot is free; INVALID_ARGUMENT naming the field that
// asks too much otherwise ("resources.device" for a type the pool lacks, "distributed.world_size"
// for more slots than it has). An empty pool (none) accepts everything: jobs wait there.
absl::Status CheckDemandFits(const SlotDemand& demand, const std::vector<Slot>& pool);

}  // namespace bertd::jobs

#endif  // BERTD_JOBS_DEVICE_POOL_H_
