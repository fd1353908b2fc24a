#ifndef BERTD_METRICS_SERVER_METRICS_H_
#define BERTD_METRICS_SERVER_METRICS_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "common/model_state.h"
#include "prometheus/registry.h"

namespace bertd::metrics {

// The `state` label of bertd_model_state is ModelStateName(state).
using ::bertd::ModelState;
using ::bertd::ModelStateName;

// The `model` label value of every per-model series: "name@version".
std::string ModelLabel(absl::string_view name, absl::string_view version);

// The metric families bertd exports (see docs/metrics.md), in one registry, behind typed helpers
// so that callers never build prometheus labels themselves. `model` arguments are ModelLabel()
// values. Thread-safe.
//
// Counters and histograms of a model stay after it is unloaded (they are history, and dropping
// them would make rate() over a window that spans the unload wrong); its gauges are removed,
// because a gauge of an unloaded model would claim a present state that no longer exists.
class ServerMetrics {
 public:
  // Exports bertd_build_info{version=<the bertd version this was built as>} 1.
  ServerMetrics();
  // As above with an explicit version label, for tests and embedders.
  explicit ServerMetrics(absl::string_view build_version);
  // The version this bertd was built as (CMake's project version).
  static absl::string_view Version();

  ServerMetrics(const ServerMetrics&) = delete;
  ServerMetrics& operator=(const ServerMetrics&) = delete;

  // For modules that export their own families (e.g. training jobs), and for MetricsHttpServer.
  const std::shared_ptr<prometheus::Registry>& registry() const { return registry_; }

  // One finished RPC: bertd_requests_total and bertd_request_duration_seconds. `code` is the gRPC
  // status code name ("OK", "NOT_FOUND", ...); `model` may be empty for RPCs that name none.
  void RecordRequest(absl::string_view method, absl::string_view model, absl::string_view code,
                     double seconds);

  // How long one request waited in the batcher queue before its batch started.
  void ObserveQueueWait(absl::string_view model, double seconds);

  // One batch forward: its duration, how many requests it merged, and the tokens it computed
  // (rows x padded length) of which `padding_tokens` were padding.
  void RecordBatch(absl::string_view model, double inference_seconds, int64_t batch_size,
                   int64_t computed_tokens, int64_t padding_tokens);

  // Requests waiting in the model's batcher queue now.
  void SetQueueDepth(absl::string_view model, int64_t depth);

  // The most sequences one model version's queue holds (--max_queue_size), so that alerts and
  // autoscaling can compare bertd_queue_depth with it.
  void SetQueueCapacity(int64_t sequences);

  // Sets bertd_model_state{model=name@version, version, state} to 1 for `state` and 0 for the
  // other states.
  void SetModelState(absl::string_view name, absl::string_view version, ModelState state);

  // Drops the model version's gauge series (state and queue depth) once it is unloaded.
  void RemoveModel(absl::string_view name, absl::string_view version);

  // Time to load a model version, from request to READY (or FAILED).
  void ObserveModelLoad(absl::string_view model, double seconds);

 private:
  // Family::Add looks up (and for histograms allocates) on every call; callers on the request
  // path get their series from these caches instead, keyed by the joined label values.
  template <typename T>
  struct CachedFamily {
    prometheus::Family<T>* family = nullptr;
    absl::flat_hash_map<std::string, T*> series;
  };

  template <typename T, typename... Args>
  T& Series(CachedFamily<T>& cached, const prometheus::Labels& labels, const Args&... args)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  template <typename T>
  void RemoveSeries(CachedFamily<T>& cached, const prometheus::Labels& labels)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);

  const std::shared_ptr<prometheus::Registry> registry_;

  absl::Mutex mutex_;
  CachedFamily<prometheus::Counter> requests_ ABSL_GUARDED_BY(mutex_);
  CachedFamily<prometheus::Histogram> request_duration_ ABSL_GUARDED_BY(mutex_);
  CachedFamily<prometheus::Histogram> queue_duration_ ABSL_GUARDED_BY(mutex_);
  CachedFamily<prometheus::Histogram> inference_duration_ ABSL_GUARDED_BY(mutex_);
  CachedFamily<prometheus::Histogram> batch_size_ ABSL_GUARDED_BY(mutex_);
  CachedFamily<prometheus::Histogram> batch_tokens_ ABSL_GUARDED_BY(mutex_);
  CachedFamily<prometheus::Histogram> batch_padding_ratio_ ABSL_GUARDED_BY(mutex_);
  CachedFamily<prometheus::Gauge> queue_depth_ ABSL_GUARDED_BY(mutex_);
  CachedFamily<prometheus::Gauge> model_state_ ABSL_GUARDED_BY(mutex_);
  CachedFamily<prometheus::Histogram> model_load_duration_ ABSL_GUARDED_BY(mutex_);
  prometheus::Gauge* queue_capacity_ ABSL_GUARDED_BY(mutex_) = nullptr;
};

}  // namespace bertd::metrics

#endif  // BERTD_METRICS_SERVER_METRICS_H_
