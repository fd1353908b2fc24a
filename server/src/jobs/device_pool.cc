#include "jobs/device_pool.h"

#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace bertd::jobs {
namespace {

// Far more CPU slots than any machine has cores for: a typo such as cpu:1000000 must not create a
// million scheduler entries.
constexpr int kMaxCpuSlots = 1024;

absl::Status Invalid(absl::string_view item, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat("--training_devices: '", item, "' ", why));
}

}  // namespace

absl::string_view DeviceTypeName(DeviceType type) {
  return type == DeviceType::kCuda ? "cuda" : "cpu";
}

absl::StatusOr<std::vector<Slot>> ParseTrainingDevices(absl::string_view spec, int cuda_devices) {
  spec = absl::StripAsciiWhitespace(spec);
  if (spec == "none") return std::vector<Slot>();
  if (spec == "auto" || spec.empty()) {
    return ParseTrainingDevices(cuda_devices > 0 ? "cuda" : "cpu:1", cuda_devices);
  }
  int cpu_slots = 0;
  std::vector<int> cuda;
  std::set<int> seen_cuda;
  auto add_cuda = [&](absl::string_view item, int index) -> absl::Status {
    if (index < 0 || index >= cuda_devices) {
      return Invalid(item, absl::StrCat("names CUDA device ", index, ", but this machine has ",
                                        cuda_devices, " CUDA device(s)"));
    }
    if (!seen_cuda.insert(index).second) return Invalid(item, "is listed twice");
    cuda.push_back(index);
    return absl::OkStatus();
  };
  for (absl::string_view item : absl::StrSplit(spec, ',')) {
    item = absl::StripAsciiWhitespace(item);
    std::pair<absl::string_view, absl::string_view> parts = absl::StrSplit(item, absl::MaxSplits(':', 1));
    const absl::string_view type = parts.first, number = parts.second;
    const bool has_number = item.find(':') != absl::string_view::npos;
    int value = 0;
    if (has_number && !absl::SimpleAtoi(number, &value)) {
      return Invalid(item, "has no number after ':'; expected cpu:N, cuda:I, cuda, auto or none");
    }
    if (type == "cpu") {
      if (!has_number) value = 1;
      if (value < 1 || value > kMaxCpuSlots) {
        return Invalid(item, absl::StrCat("must ask for 1 to ", kMaxCpuSlots, " CPU slots"));
      }
      if (cpu_slots > 0) return Invalid(item, "repeats the CPU slots; say cpu:N once");
      cpu_slots = value;
    } else if (type == "cuda" && !has_number) {
      if (cuda_devices == 0) return Invalid(item, "asks for every CUDA device, but there is none");
      for (int i = 0; i < cuda_devices; ++i) {
        absl::Status added = add_cuda(item, i);
        if (!added.ok()) return added;
      }
    } else if (type == "cuda") {
      absl::Status added = add_cuda(item, value);
      if (!added.ok()) return added;
    } else {
      return Invalid(item, "is not a device; expected cpu:N, cuda:I, cuda, auto or none");
    }
  }
  std::vector<Slot> slots;
  for (int index : cuda) slots.push_back({absl::StrCat("cuda:", index), DeviceType::kCuda, index});
  for (int i = 0; i < cpu_slots; ++i) slots.push_back({absl::StrCat("cpu:", i), DeviceType::kCpu, i});
  return slots;
}

Slot SlotFromName(absl::string_view name) {
  Slot slot;
  slot.name = std::string(name);
  slot.type = absl::StartsWith(name, "cuda") ? DeviceType::kCuda : DeviceType::kCpu;
  const size_t colon = name.find(':');
  if (colon == absl::string_view::npos || !absl::SimpleAtoi(name.substr(colon + 1), &slot.index)) {
    slot.index = 0;
  }
  return slot;
}

std::string DescribePool(const std::vector<Slot>& slots) {
  if (slots.empty()) return "none";
  return absl::StrJoin(slots, ", ", [](std::string* out, const Slot& slot) { out->append(slot.name); });
}

int CountSlots(const std::vector<Slot>& pool, DeviceType type) {
  int count = 0;
  for (const Slot& slot : pool) count += slot.type == type ? 1 : 0;
  return count;
}

absl::Status CheckDemandFits(const SlotDemand& demand, const std::vector<Slot>& pool) {
  if (pool.empty() || demand.count == 0) return absl::OkStatus();
  const std::string described = DescribePool(pool);
  if (demand.type.has_value() && CountSlots(pool, *demand.type) == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "resources.device: the job asks for ", DeviceTypeName(*demand.type),
        ", but the training pool (--training_devices) has no ", DeviceTypeName(*demand.type),
        " slot: ", described));
  }
  const int cpu = CountSlots(pool, DeviceType::kCpu), gpu = CountSlots(pool, DeviceType::kCuda);
  const int most = demand.type.has_value() ? CountSlots(pool, *demand.type) : std::max(cpu, gpu);
  if (demand.count > most) {
    return absl::InvalidArgumentError(absl::StrCat(
        "distributed.world_size: ", demand.count, " ranks need ", demand.count,
        " slots of one device type, but the training pool (--training_devices) has at most ",
        most, ": ", described));
  }
  return absl::OkStatus();
}

std::vector<std::vector<int>> ShareCpus(const std::vector<int>& cpus, int slots) {
  std::vector<std::vector<int>> shares(slots);
  const int n = static_cast<int>(cpus.size());
  if (n == 0) return shares;
  for (int slot = 0; slot < slots; ++slot) {
    if (n >= slots) {
      for (int i = slot * n / slots; i < (slot + 1) * n / slots; ++i) shares[slot].push_back(cpus[i]);
    } else {
      shares[slot].push_back(cpus[slot % n]);
    }
  }
  return shares;
}

}  // namespace bertd::jobs
