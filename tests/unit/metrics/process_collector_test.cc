#include "metrics/process_collector.h"

#include <fcntl.h>
#include <unistd.h>

#include <ctime>
#include <map>
#include <string>
#include <thread>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "exposition_format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "prometheus/metric_family.h"
#include "prometheus/metric_type.h"

namespace bertd::metrics {
namespace {

struct Sample {
  prometheus::MetricType type;
  double value;
};

// name -> the family's only sample.
std::map<std::string, Sample> CollectByName(const ProcessCollector& collector) {
  std::map<std::string, Sample> samples;
  for (const prometheus::MetricFamily& family : collector.Collect()) {
    EXPECT_EQ(family.metric.size(), 1u) << family.name;
    if (family.metric.empty()) continue;
    const prometheus::ClientMetric& metric = family.metric.front();
    EXPECT_TRUE(metric.label.empty()) << family.name;
    double value =
        family.type == prometheus::MetricType::Counter ? metric.counter.value : metric.gauge.value;
    samples[family.name] = {family.type, value};
  }
  return samples;
}

TEST(ProcessCollectorTest, ReportsTheStandardProcessMetricsWithPlausibleValues) {
  ProcessCollector collector;
  std::map<std::string, Sample> samples = CollectByName(collector);
  ASSERT_EQ(samples.size(), 7u);

  EXPECT_EQ(samples["process_cpu_seconds_total"].type, prometheus::MetricType::Counter);
  EXPECT_GE(samples["process_cpu_seconds_total"].value, 0);
  EXPECT_GT(samples["process_resident_memory_bytes"].value, 1 << 20);
  EXPECT_GE(samples["process_virtual_memory_bytes"].value,
            samples["process_resident_memory_bytes"].value);
  EXPECT_GE(samples["process_threads"].value, 1);
  EXPECT_GE(samples["process_open_fds"].value, 1);
  EXPECT_GE(samples["process_max_fds"].value, samples["process_open_fds"].value);

  double now = static_cast<double>(std::time(nullptr));
  double start = samples["process_start_time_seconds"].value;
  EXPECT_LE(start, now + 1);
  EXPECT_GT(start, now - 24 * 3600) << "this test process started more than a day ago?";
  for (const char* gauge :
       {"process_resident_memory_bytes", "process_virtual_memory_bytes", "process_threads",
        "process_open_fds", "process_max_fds", "process_start_time_seconds"}) {
    EXPECT_EQ(samples[gauge].type, prometheus::MetricType::Gauge) << gauge;
  }
}

TEST(ProcessCollectorTest, ReadsFreshValuesAtEveryCollect) {
  ProcessCollector collector;
  double fds_before = CollectByName(collector)["process_open_fds"].value;
  double threads_before = CollectByName(collector)["process_threads"].value;

  int fd = open("/dev/null", O_RDONLY);
  ASSERT_GE(fd, 0);
  absl::Notification started;
  absl::Notification release;
  std::thread thread([&] {
    started.Notify();
    release.WaitForNotification();
  });
  started.WaitForNotification();

  std::map<std::string, Sample> samples = CollectByName(collector);
  EXPECT_EQ(samples["process_open_fds"].value, fds_before + 1);
  // At least one more: a runtime may start a helper thread of its own with the first
  // std::thread (ThreadSanitizer does). Joining ours must then take exactly one away.
  double threads_while_running = samples["process_threads"].value;
  EXPECT_GE(threads_while_running, threads_before + 1);

  release.Notify();
  thread.join();
  close(fd);
  EXPECT_EQ(CollectByName(collector)["process_open_fds"].value, fds_before);
  // The kernel drops a joined thread from the count a moment after join returns.
  double threads_after = 0;
  for (absl::Time deadline = absl::Now() + absl::Seconds(5); absl::Now() < deadline;
       absl::SleepFor(absl::Milliseconds(10))) {
    threads_after = CollectByName(collector)["process_threads"].value;
    if (threads_after == threads_while_running - 1) break;
  }
  EXPECT_EQ(threads_after, threads_while_running - 1);
}

TEST(ProcessCollectorTest, SerializesWithTheStandardHelpTexts) {
  std::string text = testing::Serialize(ProcessCollector());
  EXPECT_TRUE(testing::CheckExpositionFormat(text).ok()) << text;
  EXPECT_THAT(text, ::testing::HasSubstr(
                        "# HELP process_cpu_seconds_total Total user and system CPU time spent "
                        "in seconds.\n# TYPE process_cpu_seconds_total counter\n"));
  EXPECT_THAT(text, ::testing::HasSubstr(
                        "# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
                        "# TYPE process_resident_memory_bytes gauge\n"));
  EXPECT_THAT(text, ::testing::HasSubstr("# HELP process_start_time_seconds Start time of the "
                                         "process since unix epoch in seconds.\n"));
}

}  // namespace
}  // namespace bertd::metrics
