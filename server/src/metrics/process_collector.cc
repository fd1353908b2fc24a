#include "metrics/process_collector.h"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "absl/types/optional.h"
#include "common/file_util.h"
#include "prometheus/client_metric.h"
#include "prometheus/metric_type.h"

namespace bertd::metrics {
namespace {

// The fields of /proc/self/stat that we report (see proc(5)).
struct ProcStat {
  uint64_t utime_ticks = 0;
  uint64_t stime_ticks = 0;
  uint64_t num_threads = 0;
  uint64_t start_time_ticks = 0;  // Since boot.
  uint64_t vsize_bytes = 0;
  uint64_t rss_pages = 0;
};

absl::optional<ProcStat> ReadProcStat() {
  absl::StatusOr<std::string> contents = ReadFileToString("/proc/self/stat");
  if (!contents.ok()) return absl::nullopt;
  // The command name (field 2) is in parentheses and may itself contain spaces or ')', so the
  // numbered fields are counted from the last ')'.
  size_t paren = contents->rfind(')');
  if (paren == std::string::npos) return absl::nullopt;
  std::vector<absl::string_view> fields =
      absl::StrSplit(absl::string_view(*contents).substr(paren + 1), ' ', absl::SkipEmpty());
  // fields[0] is field 3 (state), so field N of proc(5) is fields[N - 3].
  auto field = [&fields](size_t n, uint64_t* out) {
    return n - 3 < fields.size() && absl::SimpleAtoi(fields[n - 3], out);
  };
  ProcStat stat;
  if (!field(14, &stat.utime_ticks) || !field(15, &stat.stime_ticks) ||
      !field(20, &stat.num_threads) || !field(22, &stat.start_time_ticks) ||
      !field(23, &stat.vsize_bytes) || !field(24, &stat.rss_pages)) {
    return absl::nullopt;
  }
  return stat;
}

// Boot time as unix seconds, from the "btime" line of /proc/stat.
absl::optional<uint64_t> ReadBootTime() {
  absl::StatusOr<std::string> contents = ReadFileToString("/proc/stat");
  if (!contents.ok()) return absl::nullopt;
  for (absl::string_view line : absl::StrSplit(*contents, '\n')) {
    if (absl::ConsumePrefix(&line, "btime ")) {
      uint64_t btime = 0;
      if (absl::SimpleAtoi(line, &btime)) return btime;
    }
  }
  return absl::nullopt;
}

absl::optional<uint64_t> CountOpenFds() {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return absl::nullopt;
  uint64_t count = 0;
  while (const dirent* entry = readdir(dir)) {
    if (entry->d_name[0] != '.') ++count;
  }
  closedir(dir);
  // The directory stream's own descriptor was listed too; it is not the process's.
  return count > 0 ? count - 1 : 0;
}

prometheus::MetricFamily Single(const char* name, const char* help, prometheus::MetricType type,
                                double value) {
  prometheus::MetricFamily family;
  family.name = name;
  family.help = help;
  family.type = type;
  prometheus::ClientMetric metric;
  if (type == prometheus::MetricType::Counter) {
    metric.counter.value = value;
  } else {
    metric.gauge.value = value;
  }
  family.metric.push_back(std::move(metric));
  return family;
}

prometheus::MetricFamily Gauge(const char* name, const char* help, double value) {
  return Single(name, help, prometheus::MetricType::Gauge, value);
}

}  // namespace

ProcessCollector::ProcessCollector() {
  absl::optional<ProcStat> stat = ReadProcStat();
  absl::optional<uint64_t> boot_time = ReadBootTime();
  long ticks_per_second = sysconf(_SC_CLK_TCK);
  if (stat.has_value() && boot_time.has_value() && ticks_per_second > 0) {
    start_time_seconds_ = static_cast<double>(*boot_time) +
                          static_cast<double>(stat->start_time_ticks) / ticks_per_second;
  }
}

std::vector<prometheus::MetricFamily> ProcessCollector::Collect() const {
  std::vector<prometheus::MetricFamily> families;
  long ticks_per_second = sysconf(_SC_CLK_TCK);
  long page_size = sysconf(_SC_PAGESIZE);
  if (absl::optional<ProcStat> stat = ReadProcStat(); stat.has_value()) {
    if (ticks_per_second > 0) {
      families.push_back(
          Single("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.",
                 prometheus::MetricType::Counter,
                 static_cast<double>(stat->utime_ticks + stat->stime_ticks) / ticks_per_second));
    }
    if (page_size > 0) {
      families.push_back(Gauge("process_resident_memory_bytes", "Resident memory size in bytes.",
                               static_cast<double>(stat->rss_pages) * page_size));
    }
    families.push_back(Gauge("process_virtual_memory_bytes", "Virtual memory size in bytes.",
                             static_cast<double>(stat->vsize_bytes)));
    families.push_back(Gauge("process_threads", "Number of OS threads in the process.",
                             static_cast<double>(stat->num_threads)));
  }
  if (start_time_seconds_ >= 0) {
    families.push_back(Gauge("process_start_time_seconds",
                             "Start time of the process since unix epoch in seconds.",
                             start_time_seconds_));
  }
  if (absl::optional<uint64_t> open_fds = CountOpenFds(); open_fds.has_value()) {
    families.push_back(Gauge("process_open_fds", "Number of open file descriptors.",
                             static_cast<double>(*open_fds)));
  }
  rlimit limit;
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY) {
    families.push_back(Gauge("process_max_fds", "Maximum number of open file descriptors.",
                             static_cast<double>(limit.rlim_cur)));
  }
  return families;
}

}  // namespace bertd::metrics
