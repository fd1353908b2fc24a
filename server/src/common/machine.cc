#include "common/machine.h"

#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <set>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace bertd {
namespace {

// Larger CPU numbers than any machine has: bounds a range such as 0-2000000000.
constexpr int kMaxCpu = 4095;

}  // namespace

std::vector<int> UsableCpuList() {
  std::vector<int> cpus;
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
      if (CPU_ISSET(cpu, &set)) cpus.push_back(cpu);
    }
  }
  return cpus;
}

int UsableCpus() {
  const int listed = static_cast<int>(UsableCpuList().size());
  if (listed > 0) return listed;
  return std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
}

int64_t PhysicalMemoryBytes() {
  const long pages = sysconf(_SC_PHYS_PAGES);
  const long page_size = sysconf(_SC_PAGESIZE);
  return pages > 0 && page_size > 0 ? static_cast<int64_t>(pages) * page_size : 0;
}

absl::StatusOr<std::vector<int>> ParseCpuList(absl::string_view text, const std::vector<int>& usable,
                                              absl::string_view flag) {
  std::set<int> cpus;
  const std::set<int> allowed(usable.begin(), usable.end());
  text = absl::StripAsciiWhitespace(text);
  if (text.empty()) return std::vector<int>();
  for (absl::string_view part : absl::StrSplit(text, ',')) {
    part = absl::StripAsciiWhitespace(part);
    int first = 0, last = 0;
    const std::vector<absl::string_view> ends = absl::StrSplit(part, absl::MaxSplits('-', 1));
    const bool ok = ends.size() == 1 ? absl::SimpleAtoi(ends[0], &first) && (last = first, true)
                                     : absl::SimpleAtoi(ends[0], &first) && absl::SimpleAtoi(ends[1], &last);
    if (!ok || first < 0 || last < first || last > kMaxCpu) {
      return absl::InvalidArgumentError(absl::StrCat(
          flag, ": '", part, "' is not a CPU number or range (expected a list such as 0-3,6)"));
    }
    for (int cpu = first; cpu <= last; ++cpu) {
      if (allowed.count(cpu) == 0) {
        return absl::InvalidArgumentError(absl::StrCat(flag, ": CPU ", cpu,
                                                       " is not one this process may use (",
                                                       FormatCpuList(usable), ")"));
      }
      cpus.insert(cpu);
    }
  }
  return std::vector<int>(cpus.begin(), cpus.end());
}

std::string FormatCpuList(const std::vector<int>& cpus) {
  std::vector<int> sorted = cpus;
  std::sort(sorted.begin(), sorted.end());
  sorted.erase(std::unique(sorted.begin(), sorted.end()), sorted.end());
  std::vector<std::string> parts;
  for (size_t i = 0; i < sorted.size();) {
    size_t j = i;
    while (j + 1 < sorted.size() && sorted[j + 1] == sorted[j] + 1) ++j;
    parts.push_back(j == i ? absl::StrCat(sorted[i]) : absl::StrCat(sorted[i], "-", sorted[j]));
    i = j + 1;
  }
  return absl::StrJoin(parts, ",");
}

}  // namespace bertd
