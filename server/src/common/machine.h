#ifndef BERTD_COMMON_MACHINE_H_
#define BERTD_COMMON_MACHINE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

// What this machine offers a process: its CPUs and memory.
namespace bertd {

// The CPUs this process may run on (its affinity), ascending.
std::vector<int> UsableCpuList();
// Their number, at least 1.
int UsableCpus();
// The machine's physical memory (0 when the system will not say).
int64_t PhysicalMemoryBytes();

// A CPU list in the kernel's notation ("0-3,6", as in /proc/<pid>/status and taskset -c): the
// CPUs in ascending order, without duplicates. Every CPU must be in `usable` (the process's
// affinity). "" is an empty list. INVALID_ARGUMENT naming `flag` and the bad part otherwise.
absl::StatusOr<std::vector<int>> ParseCpuList(absl::string_view text, const std::vector<int>& usable,
                                              absl::string_view flag);

// The kernel's notation of `cpus` (sorted): {0,1,2,3,6} -> "0-3,6".
std::string FormatCpuList(const std::vector<int>& cpus);

}  // namespace bertd

#endif  // BERTD_COMMON_MACHINE_H_
