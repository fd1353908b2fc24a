#include "metrics/server_metrics.h"

#include <cmath>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"

#ifndef BERTD_VERSION
#define BERTD_VERSION "unknown"
#endif

namespace bertd::metrics {
namespace {


std::vector<double> ExponentialBuckets(double start, double factor, int count) {
  std::vector<double> buckets;
  buckets.reserve(count);
  for (int i = 0; i < count; ++i) buckets.push_back(start * std::pow(factor, i));
  return buckets;
}

// 0.5 ms .. 32.8 s: from a short sequence on a GPU to a long batch on a busy CPU.
const std::vector<double>& LatencyBuckets() {
  static const auto* buckets = new std::vector<double>(ExponentialBuckets(0.0005, 2, 17));
  return *buckets;
}

// 0.1 s .. 410 s: a small model from page cache up to a large one from a slow disk.
const std::vector<double>& LoadBuckets() {
  static const auto* buckets = new std::vector<double>(ExponentialBuckets(0.1, 2, 13));
  return *buckets;
}

const std::vector<double>& BatchSizeBuckets() {
  static const auto* buckets = new std::vector<double>(ExponentialBuckets(1, 2, 9));  // 1..256
  return *buckets;
}

const std::vector<double>& BatchTokenBuckets() {
  static const auto* buckets = new std::vector<double>(ExponentialBuckets(16, 2, 13));  // ..65536
  return *buckets;
}

const std::vector<double>& PaddingRatioBuckets() {
  static const auto* buckets =
      new std::vector<double>{0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9};
  return *buckets;
}

template <typename T>
prometheus::Family<T>& Register(prometheus::detail::Builder<T> builder, const char* name,
                                const char* help, prometheus::Registry& registry) {
  return builder.Name(name).Help(help).Register(registry);
}

std::string SeriesKey(const prometheus::Labels& labels) {
  std::string key;
  for (const auto& [name, value] : labels) absl::StrAppend(&key, value, absl::string_view("\0", 1));
  return key;
}

}  // namespace

std::string ModelLabel(absl::string_view name, absl::string_view version) {
  return absl::StrCat(name, "@", version);
}

absl::string_view ServerMetrics::Version() { return BERTD_VERSION; }

ServerMetrics::ServerMetrics() : ServerMetrics(BERTD_VERSION) {}

ServerMetrics::ServerMetrics(absl::string_view build_version)
    : registry_(std::make_shared<prometheus::Registry>()) {
  prometheus::Registry& r = *registry_;
  absl::MutexLock lock(&mutex_);
  requests_.family = &Register(prometheus::BuildCounter(), "bertd_requests_total",
                               "RPCs handled, by method, model and gRPC status code.", r);
  request_duration_.family =
      &Register(prometheus::BuildHistogram(), "bertd_request_duration_seconds",
                "Time from receiving an RPC to sending its answer.", r);
  queue_duration_.family =
      &Register(prometheus::BuildHistogram(), "bertd_queue_duration_seconds",
                "Time a request waited in the batcher queue before its batch started.", r);
  inference_duration_.family =
      &Register(prometheus::BuildHistogram(), "bertd_inference_duration_seconds",
                "Time of one batch forward pass.", r);
  batch_size_.family = &Register(prometheus::BuildHistogram(), "bertd_batch_size",
                                 "Requests merged into one batch.", r);
  batch_tokens_.family = &Register(prometheus::BuildHistogram(), "bertd_batch_tokens",
                                   "Tokens computed per batch, padding included.", r);
  batch_padding_ratio_.family =
      &Register(prometheus::BuildHistogram(), "bertd_batch_padding_ratio",
                "Fraction of the tokens computed per batch that are padding.", r);
  queue_depth_.family = &Register(prometheus::BuildGauge(), "bertd_queue_depth",
                                  "Requests waiting in the batcher queue.", r);
  model_state_.family =
      &Register(prometheus::BuildGauge(), "bertd_model_state",
                "1 for the current state of a model version (LOADING, READY, FAILED, "
                "UNLOADING), 0 for the others.",
                r);
  model_load_duration_.family =
      &Register(prometheus::BuildHistogram(), "bertd_model_load_duration_seconds",
                "Time to load a model version.", r);
  queue_capacity_ = &Register(prometheus::BuildGauge(), "bertd_queue_capacity",
                              "Most sequences one model version's batcher queue holds.", r)
                         .Add({});
  Register(prometheus::BuildGauge(), "bertd_build_info",
           "Always 1; the version label says which bertd is running.", r)
      .Add({{"version", std::string(build_version)}})
      .Set(1);
}

template <typename T, typename... Args>
T& ServerMetrics::Series(CachedFamily<T>& cached, const prometheus::Labels& labels,
                         const Args&... args) {
  std::string key = SeriesKey(labels);
  auto it = cached.series.find(key);
  if (it != cached.series.end()) return *it->second;
  T& series = cached.family->Add(labels, args...);
  cached.series.emplace(std::move(key), &series);
  return series;
}

template <typename T>
void ServerMetrics::RemoveSeries(CachedFamily<T>& cached, const prometheus::Labels& labels) {
  auto it = cached.series.find(SeriesKey(labels));
  if (it == cached.series.end()) return;
  cached.family->Remove(it->second);
  cached.series.erase(it);
}

void ServerMetrics::RecordRequest(absl::string_view method, absl::string_view model,
                                  absl::string_view code, double seconds) {
  std::string method_label(method);
  std::string model_label(model);
  absl::MutexLock lock(&mutex_);
  Series(requests_, {{"method", method_label}, {"model", model_label}, {"code", std::string(code)}})
      .Increment();
  Series(request_duration_, {{"method", method_label}, {"model", model_label}}, LatencyBuckets())
      .Observe(seconds);
}

void ServerMetrics::ObserveQueueWait(absl::string_view model, double seconds) {
  absl::MutexLock lock(&mutex_);
  Series(queue_duration_, {{"model", std::string(model)}}, LatencyBuckets()).Observe(seconds);
}

void ServerMetrics::RecordBatch(absl::string_view model, double inference_seconds,
                                int64_t batch_size, int64_t computed_tokens,
                                int64_t padding_tokens) {
  prometheus::Labels labels = {{"model", std::string(model)}};
  absl::MutexLock lock(&mutex_);
  Series(inference_duration_, labels, LatencyBuckets()).Observe(inference_seconds);
  Series(batch_size_, labels, BatchSizeBuckets()).Observe(static_cast<double>(batch_size));
  Series(batch_tokens_, labels, BatchTokenBuckets()).Observe(static_cast<double>(computed_tokens));
  if (computed_tokens > 0) {
    Series(batch_padding_ratio_, labels, PaddingRatioBuckets())
        .Observe(static_cast<double>(padding_tokens) / static_cast<double>(computed_tokens));
  }
}

void ServerMetrics::SetQueueDepth(absl::string_view model, int64_t depth) {
  absl::MutexLock lock(&mutex_);
  Series(queue_depth_, {{"model", std::string(model)}}).Set(static_cast<double>(depth));
}

void ServerMetrics::SetQueueCapacity(int64_t sequences) {
  absl::MutexLock lock(&mutex_);
  queue_capacity_->Set(static_cast<double>(sequences));
}

void ServerMetrics::SetModelState(absl::string_view name, absl::string_view version,
                                  ModelState state) {
  std::string model = ModelLabel(name, version);
  std::string version_label(version);
  absl::MutexLock lock(&mutex_);
  for (ModelState each : kAllModelStates) {
    Series(model_state_, {{"model", model},
                          {"version", version_label},
                          {"state", std::string(ModelStateName(each))}})
        .Set(each == state ? 1 : 0);
  }
}

void ServerMetrics::RemoveModel(absl::string_view name, absl::string_view version) {
  std::string model = ModelLabel(name, version);
  std::string version_label(version);
  absl::MutexLock lock(&mutex_);
  for (ModelState each : kAllModelStates) {
    RemoveSeries(model_state_, {{"model", model},
                                {"version", version_label},
                                {"state", std::string(ModelStateName(each))}});
  }
  RemoveSeries(queue_depth_, {{"model", model}});
}

void ServerMetrics::ObserveModelLoad(absl::string_view model, double seconds) {
  absl::MutexLock lock(&mutex_);
  Series(model_load_duration_, {{"model", std::string(model)}}, LoadBuckets()).Observe(seconds);
}

}  // namespace bertd::metrics
