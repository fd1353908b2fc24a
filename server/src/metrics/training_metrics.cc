#include "metrics/training_metrics.h"

#include <cmath>
#include <utility>

#include "nlohmann/json.hpp"
#include "prometheus/client_metric.h"
#include "prometheus/metric_type.h"

namespace bertd::metrics {
namespace {

using json = nlohmann::json;

// The job states of jobs::JobStateName, in lifecycle order; every one is always exported so that
// a query for a state with no jobs answers 0 rather than nothing.
constexpr const char* kStates[] = {"QUEUED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED"};
constexpr const char* kFinalStates[] = {"SUCCEEDED", "FAILED", "CANCELLED"};

bool IsFinalState(const std::string& state) {
  for (const char* final_state : kFinalStates) {
    if (state == final_state) return true;
  }
  return false;
}

// 50 ms .. 205 s: a tiny model on tmpfs up to a BERT-large with AdamW state on network storage.
std::vector<double> CheckpointBuckets() {
  std::vector<double> buckets;
  for (int i = 0; i < 13; ++i) buckets.push_back(0.05 * std::pow(2.0, i));
  return buckets;
}

prometheus::MetricFamily Family(const char* name, const char* help, prometheus::MetricType type) {
  prometheus::MetricFamily family;
  family.name = name;
  family.help = help;
  family.type = type;
  return family;
}

void AddGauge(prometheus::MetricFamily& family, std::vector<prometheus::ClientMetric::Label> labels,
              double value) {
  prometheus::ClientMetric metric;
  metric.label = std::move(labels);
  metric.gauge.value = value;
  family.metric.push_back(std::move(metric));
}

void AddCounter(prometheus::MetricFamily& family, std::vector<prometheus::ClientMetric::Label> labels,
                double value) {
  prometheus::ClientMetric metric;
  metric.label = std::move(labels);
  metric.counter.value = value;
  family.metric.push_back(std::move(metric));
}

// A finite number from payload[key]; false when absent or not a number.
bool Number(const json& payload, const char* key, double* out) {
  auto it = payload.find(key);
  if (it == payload.end() || !it->is_number()) return false;
  const double value = it->get<double>();
  if (!std::isfinite(value)) return false;
  *out = value;
  return true;
}

}  // namespace

TrainingMetrics::TrainingMetrics() : TrainingMetrics(Options()) {}

TrainingMetrics::TrainingMetrics(Options options) : options_(std::move(options)) {
  absl::MutexLock lock(&mu_);
  for (const char* state : kStates) jobs_by_state_[state] = 0;
  for (const char* state : kFinalStates) finished_total_[state] = 0;
  checkpoint_duration_ = std::make_unique<prometheus::Histogram>(CheckpointBuckets());
}

void TrainingMetrics::SeedJob(absl::string_view job_id, absl::string_view state) {
  const std::string state_name(state);
  absl::MutexLock lock(&mu_);
  ++jobs_by_state_[state_name];
  if (!IsFinalState(state_name)) unfinished_[std::string(job_id)] = state_name;
}

void TrainingMetrics::SetWorkers(int count) {
  absl::MutexLock lock(&mu_);
  workers_ = count;
}

void TrainingMetrics::OnState(const std::string& job_id, const std::string& state,
                              const std::string& worker) {
  auto previous = unfinished_.find(job_id);
  if (previous != unfinished_.end()) {
    --jobs_by_state_[previous->second];
    unfinished_.erase(previous);
  }
  ++jobs_by_state_[state];
  if (IsFinalState(state)) {
    finished_total_[state] += 1;
  } else {
    unfinished_[job_id] = state;
  }

  // Also here, not only at scrape time, so that a server nobody scrapes stays bounded too.
  Prune();
  if (state == "RUNNING") {
    JobSeries& series = jobs_[job_id];
    series.running = true;
    series.worker = worker;
    return;
  }
  auto it = jobs_.find(job_id);
  if (it != jobs_.end() && it->second.running) {
    it->second.running = false;
    it->second.stopped_at = options_.now();
  }
}

void TrainingMetrics::OnJobEvent(absl::string_view job_id, absl::string_view type,
                                 absl::string_view payload_json) {
  if (type == "log") return;
  const json payload = json::parse(payload_json.begin(), payload_json.end(), nullptr, false);
  if (!payload.is_object()) return;
  const std::string id(job_id);
  absl::MutexLock lock(&mu_);
  if (type == "state") {
    auto state = payload.find("state");
    if (state == payload.end() || !state->is_string()) return;
    OnState(id, state->get<std::string>(), payload.value("worker", std::string()));
    return;
  }
  if (type == "checkpoint") {
    checkpoints_total_ += 1;
    double seconds = 0;
    // Observed when the trainer reports how long the write took.
    if (Number(payload, "seconds", &seconds) && seconds >= 0) checkpoint_duration_->Observe(seconds);
  }
  // Per-job series only for jobs seen running here: an event for anything else would create a
  // series that no state event ever expires.
  auto it = jobs_.find(id);
  if (it == jobs_.end()) return;
  JobSeries& series = it->second;
  if (type == "progress") {
    series.has_progress = true;
    Number(payload, "loss", &series.loss);
    Number(payload, "learning_rate", &series.learning_rate);
    Number(payload, "samples_per_second", &series.samples_per_second);
    Number(payload, "memory_bytes", &series.memory_bytes);
    Number(payload, "step", &series.step);
    Number(payload, "total_steps", &series.total_steps);
    Number(payload, "epoch", &series.epoch);
    Number(payload, "eta_seconds", &series.eta_seconds);
    if (Number(payload, "world_size", &series.world_size)) {
      Number(payload, "allreduce_seconds_per_step", &series.allreduce_seconds_per_step);
      auto ranks = payload.find("rank_samples_per_second");
      if (ranks != payload.end() && ranks->is_array()) {
        series.rank_samples_per_second.clear();
        for (const auto& value : *ranks) {
          series.rank_samples_per_second.push_back(value.is_number() ? value.get<double>() : 0.0);
        }
      }
    }
  } else if (type == "eval") {
    auto metrics = payload.find("metrics");
    if (metrics == payload.end() || !metrics->is_object()) return;
    for (const auto& [name, value] : metrics->items()) {
      if (value.is_number() && std::isfinite(value.get<double>())) {
        series.eval_metrics[name] = value.get<double>();
      }
    }
  } else if (type == "checkpoint") {
    series.last_checkpoint_unix = absl::ToDoubleSeconds(options_.now() - absl::UnixEpoch());
  }
}

void TrainingMetrics::Prune() const {
  const absl::Time cutoff = options_.now() - options_.retention;
  for (auto it = jobs_.begin(); it != jobs_.end();) {
    if (!it->second.running && it->second.stopped_at <= cutoff) {
      it = jobs_.erase(it);
    } else {
      ++it;
    }
  }
}

void TrainingMetrics::SetSlots(SlotSource source) {
  absl::MutexLock lock(&mu_);
  slots_ = std::move(source);
}

std::vector<prometheus::MetricFamily> TrainingMetrics::Collect() const {
  using prometheus::MetricType;
  // Asked outside mu_: the source takes the scheduler's lock.
  SlotSource source;
  {
    absl::MutexLock lock(&mu_);
    source = slots_;
  }
  // Both types always listed, so a dashboard shows 0 rather than no data.
  std::map<std::string, std::pair<int, int>> slots = {{"cpu", {0, 0}}, {"cuda", {0, 0}}};
  if (source) {
    for (const auto& [type, busy] : source()) {
      ++slots[type].first;
      slots[type].second += busy ? 1 : 0;
    }
  }
  auto slot_total = Family("bertd_training_slots",
                           "Slots of the training pool (--training_devices), by device type.",
                           MetricType::Gauge);
  auto slot_busy = Family("bertd_training_slots_busy",
                          "Slots of the training pool that a running job holds, by device type.",
                          MetricType::Gauge);
  for (const auto& [type, counts] : slots) {
    AddGauge(slot_total, {{"device_type", type}}, counts.first);
    AddGauge(slot_busy, {{"device_type", type}}, counts.second);
  }

  absl::MutexLock lock(&mu_);
  Prune();

  auto jobs = Family("bertd_jobs", "Training jobs in the store, by state.", MetricType::Gauge);
  for (const char* state : kStates) AddGauge(jobs, {{"state", state}}, jobs_by_state_.at(state));
  auto finished = Family("bertd_jobs_finished_total",
                         "Training jobs that ended since this process started, by final state.",
                         MetricType::Counter);
  for (const char* state : kFinalStates) {
    AddCounter(finished, {{"state", state}}, finished_total_.at(state));
  }
  auto workers = Family("bertd_training_workers",
                        "Slots of the training pool (jobs this server runs at once).",
                        MetricType::Gauge);
  AddGauge(workers, {}, workers_);
  auto checkpoints = Family("bertd_checkpoints_total",
                            "Training checkpoints written since this process started.",
                            MetricType::Counter);
  AddCounter(checkpoints, {}, checkpoints_total_);
  auto checkpoint_duration =
      Family("bertd_checkpoint_duration_seconds", "Time to write one training checkpoint.",
             MetricType::Histogram);
  checkpoint_duration.metric.push_back(checkpoint_duration_->Collect());

  auto running = Family("bertd_job_running",
                        "1 while the job runs, 0 for the retention period after it stopped.",
                        MetricType::Gauge);
  auto info = Family("bertd_job_info", "Always 1; the worker label says where the job ran.",
                     MetricType::Gauge);
  auto loss = Family("bertd_job_loss", "Training loss of the job's latest step.", MetricType::Gauge);
  auto lr = Family("bertd_job_learning_rate", "Learning rate of the job's latest step.",
                   MetricType::Gauge);
  auto sps = Family("bertd_job_samples_per_second",
                    "Training examples per second since the job (re)started.", MetricType::Gauge);
  auto step = Family("bertd_job_step", "Optimizer steps done.", MetricType::Gauge);
  auto total = Family("bertd_job_total_steps", "Optimizer steps the job will take.",
                      MetricType::Gauge);
  auto epoch = Family("bertd_job_epoch", "Epochs done (fractional).", MetricType::Gauge);
  auto eta = Family("bertd_job_eta_seconds", "Estimated seconds until the job's last step.",
                    MetricType::Gauge);
  auto eval = Family("bertd_job_eval_metric",
                     "Latest evaluation result of the job, by metric (accuracy, f1, eval_loss, ...).",
                     MetricType::Gauge);
  auto last_checkpoint = Family("bertd_job_last_checkpoint_timestamp_seconds",
                                "Unix time of the job's latest checkpoint.", MetricType::Gauge);
  auto world_size = Family("bertd_job_world_size",
                           "Data-parallel worker processes of the job (only jobs with more than one).",
                           MetricType::Gauge);
  auto allreduce = Family("bertd_job_allreduce_seconds_per_step",
                          "Seconds per optimizer step in gradient all-reduce, summed over buckets "
                          "(it overlaps the backward pass).",
                          MetricType::Gauge);
  auto memory = Family("bertd_job_memory_bytes",
                        "Resident memory of the job's worker processes on this host, summed.",
                        MetricType::Gauge);
  auto rank_sps = Family("bertd_job_rank_samples_per_second",
                         "Training examples per second of one data-parallel rank.", MetricType::Gauge);
  for (const auto& [id, series] : jobs_) {
    AddGauge(running, {{"job_id", id}}, series.running ? 1 : 0);
    AddGauge(info, {{"job_id", id}, {"worker", series.worker}}, 1);
    if (series.has_progress) {
      AddGauge(loss, {{"job_id", id}}, series.loss);
      AddGauge(lr, {{"job_id", id}}, series.learning_rate);
      AddGauge(sps, {{"job_id", id}}, series.samples_per_second);
      if (series.memory_bytes > 0) AddGauge(memory, {{"job_id", id}}, series.memory_bytes);
      AddGauge(step, {{"job_id", id}}, series.step);
      AddGauge(total, {{"job_id", id}}, series.total_steps);
      AddGauge(epoch, {{"job_id", id}}, series.epoch);
      AddGauge(eta, {{"job_id", id}}, series.eta_seconds);
    }
    for (const auto& [metric, value] : series.eval_metrics) {
      AddGauge(eval, {{"job_id", id}, {"metric", metric}}, value);
    }
    if (series.last_checkpoint_unix > 0) {
      AddGauge(last_checkpoint, {{"job_id", id}}, series.last_checkpoint_unix);
    }
    if (series.world_size > 1) {
      AddGauge(world_size, {{"job_id", id}}, series.world_size);
      AddGauge(allreduce, {{"job_id", id}}, series.allreduce_seconds_per_step);
      for (size_t r = 0; r < series.rank_samples_per_second.size(); ++r) {
        AddGauge(rank_sps, {{"job_id", id}, {"rank", std::to_string(r)}}, series.rank_samples_per_second[r]);
      }
    }
  }
  // Families without series are still listed (HELP and TYPE only), so every name is visible.
  return {std::move(jobs), std::move(finished), std::move(workers), std::move(slot_total),
          std::move(slot_busy), std::move(checkpoints),
          std::move(checkpoint_duration), std::move(running), std::move(info), std::move(loss),
          std::move(lr), std::move(sps), std::move(step), std::move(total), std::move(epoch),
          std::move(eta), std::move(eval), std::move(last_checkpoint), std::move(world_size),
          std::move(allreduce), std::move(rank_sps), std::move(memory)};
}

}  // namespace bertd::metrics
