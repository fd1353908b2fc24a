#ifndef BERTD_METRICS_PROCESS_COLLECTOR_H_
#define BERTD_METRICS_PROCESS_COLLECTOR_H_

#include <vector>

#include "prometheus/collectable.h"
#include "prometheus/metric_family.h"

namespace bertd::metrics {

// The standard Prometheus process_* metrics (the names and help texts of the official clients),
// read from /proc/self at every scrape so they are never stale. A value that cannot be read is
// left out of that scrape rather than failing it.
class ProcessCollector : public prometheus::Collectable {
 public:
  ProcessCollector();

  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  // Unix time the process started; computed once because it never changes. < 0 when unknown.
  double start_time_seconds_ = -1;
};

}  // namespace bertd::metrics

#endif  // BERTD_METRICS_PROCESS_COLLECTOR_H_
