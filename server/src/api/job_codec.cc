#include "api/job_codec.h"

#include <nlohmann/json.hpp>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace bertd::api {
namespace {

using nlohmann::json;

constexpr std::pair<v1::TrainingTask, training::TrainingTask> kTasks[] = {
    {v1::TRAINING_TASK_SEQUENCE_CLASSIFICATION, training::TrainingTask::kSequenceClassification},
    {v1::TRAINING_TASK_SENTENCE_PAIR_CLASSIFICATION,
     training::TrainingTask::kSentencePairClassification},
    {v1::TRAINING_TASK_NEXT_SENTENCE, training::TrainingTask::kNextSentence},
    {v1::TRAINING_TASK_SPAN_EXTRACTION, training::TrainingTask::kSpanExtraction},
    {v1::TRAINING_TASK_PRETRAINING, training::TrainingTask::kPretraining},
};

constexpr std::pair<v1::JobState, jobs::JobState> kStates[] = {
    {v1::JOB_STATE_QUEUED, jobs::JobState::kQueued},
    {v1::JOB_STATE_RUNNING, jobs::JobState::kRunning},
    {v1::JOB_STATE_SUCCEEDED, jobs::JobState::kSucceeded},
    {v1::JOB_STATE_FAILED, jobs::JobState::kFailed},
    {v1::JOB_STATE_CANCELLED, jobs::JobState::kCancelled},
};

double Number(const json& object, const char* key) {
  auto it = object.find(key);
  return it != object.end() && it->is_number() ? it->get<double>() : 0;
}

int64_t Integer(const json& object, const char* key) {
  auto it = object.find(key);
  return it != object.end() && it->is_number() ? it->get<int64_t>() : 0;
}

std::string String(const json& object, const char* key) {
  auto it = object.find(key);
  return it != object.end() && it->is_string() ? it->get<std::string>() : "";
}

// The JSON form TrainingJobSpec::FromJson reads. Only hyperparameters the client set are
// written, so the others take TrainingArguments' defaults.
json SpecToJson(const v1::JobSpec& spec, const std::string& task) {
  json root = {{"name", spec.name().empty() ? spec.output_model() : spec.name()},
               {"task", task},
               {"base_model", spec.base_model()},
               {"train_dataset", spec.train_dataset()},
               {"eval_dataset", spec.eval_dataset()},
               {"eval_split", spec.eval_split()},
               {"problem_type", spec.problem_type()},
               {"output_model", spec.output_model()},
               {"priority", spec.priority()}};
  const v1::Hyperparameters& h = spec.hyperparameters();
  json hp = json::object();
#define BERTD_COPY_IF_SET(field) \
  if (h.has_##field()) hp[#field] = h.field()
  BERTD_COPY_IF_SET(learning_rate);
  BERTD_COPY_IF_SET(num_train_epochs);
  BERTD_COPY_IF_SET(max_steps);
  BERTD_COPY_IF_SET(per_device_train_batch_size);
  BERTD_COPY_IF_SET(per_device_eval_batch_size);
  BERTD_COPY_IF_SET(gradient_accumulation_steps);
  BERTD_COPY_IF_SET(weight_decay);
  BERTD_COPY_IF_SET(adam_beta1);
  BERTD_COPY_IF_SET(adam_beta2);
  BERTD_COPY_IF_SET(adam_epsilon);
  BERTD_COPY_IF_SET(max_grad_norm);
  BERTD_COPY_IF_SET(lr_scheduler_type);
  BERTD_COPY_IF_SET(warmup_steps);
  BERTD_COPY_IF_SET(warmup_ratio);
  BERTD_COPY_IF_SET(seed);
  BERTD_COPY_IF_SET(max_seq_length);
  BERTD_COPY_IF_SET(doc_stride);
  BERTD_COPY_IF_SET(eval_strategy);
  BERTD_COPY_IF_SET(eval_steps);
  BERTD_COPY_IF_SET(save_steps);
  BERTD_COPY_IF_SET(save_total_limit);
  BERTD_COPY_IF_SET(load_best_model_at_end);
  BERTD_COPY_IF_SET(metric_for_best_model);
  BERTD_COPY_IF_SET(early_stopping_patience);
  BERTD_COPY_IF_SET(bf16);
  BERTD_COPY_IF_SET(fp16);
#undef BERTD_COPY_IF_SET
  root["hyperparameters"] = hp;
  // New-model settings: only the fields the client set, as for hyperparameters.
  json vocabulary = json::object(), size = json::object(), pretraining = json::object();
#define BERTD_COPY_IF_SET(target, message, field) \
  if (spec.message().has_##field()) target[#field] = spec.message().field()
  if (!spec.vocabulary().source().empty()) vocabulary["source"] = spec.vocabulary().source();
  BERTD_COPY_IF_SET(vocabulary, vocabulary, vocab_size);
  BERTD_COPY_IF_SET(vocabulary, vocabulary, min_frequency);
  BERTD_COPY_IF_SET(vocabulary, vocabulary, limit_alphabet);
  BERTD_COPY_IF_SET(vocabulary, vocabulary, lowercase);
  BERTD_COPY_IF_SET(size, model_size, num_hidden_layers);
  BERTD_COPY_IF_SET(size, model_size, hidden_size);
  BERTD_COPY_IF_SET(size, model_size, num_attention_heads);
  BERTD_COPY_IF_SET(size, model_size, intermediate_size);
  BERTD_COPY_IF_SET(size, model_size, max_position_embeddings);
  BERTD_COPY_IF_SET(pretraining, pretraining, masked_lm_prob);
  BERTD_COPY_IF_SET(pretraining, pretraining, max_predictions_per_seq);
  BERTD_COPY_IF_SET(pretraining, pretraining, whole_word_masking);
  BERTD_COPY_IF_SET(pretraining, pretraining, short_seq_prob);
  BERTD_COPY_IF_SET(pretraining, pretraining, dupe_factor);
  json distributed = json::object();
  BERTD_COPY_IF_SET(distributed, distributed, world_size);
  BERTD_COPY_IF_SET(distributed, distributed, timeout_seconds);
  BERTD_COPY_IF_SET(distributed, distributed, restart_policy);
  BERTD_COPY_IF_SET(distributed, distributed, max_restarts);
  BERTD_COPY_IF_SET(distributed, distributed, launcher);
  root["distributed"] = distributed;
  json resources = json::object();
  BERTD_COPY_IF_SET(resources, resources, device);
  root["resources"] = resources;
  root["vocabulary"] = vocabulary;
  root["model_size"] = size;
  root["pretraining"] = pretraining;
  return root;
}

void ProgressFromJson(const json& payload, v1::Progress* out) {
  out->set_epoch(Number(payload, "epoch"));
  out->set_step(Integer(payload, "step"));
  out->set_total_steps(Integer(payload, "total_steps"));
  out->set_loss(Number(payload, "loss"));
  out->set_learning_rate(Number(payload, "learning_rate"));
  out->set_samples_per_second(Number(payload, "samples_per_second"));
  out->set_eta_seconds(Number(payload, "eta_seconds"));
  if (payload.contains("mlm_loss")) out->set_mlm_loss(Number(payload, "mlm_loss"));
  if (payload.contains("nsp_loss")) out->set_nsp_loss(Number(payload, "nsp_loss"));
  out->set_memory_bytes(Integer(payload, "memory_bytes"));
  if (payload.contains("world_size")) {
    out->set_world_size(static_cast<int32_t>(Integer(payload, "world_size")));
    out->set_allreduce_seconds_per_step(Number(payload, "allreduce_seconds_per_step"));
    auto ranks = payload.find("rank_samples_per_second");
    if (ranks != payload.end() && ranks->is_array()) {
      for (const json& value : *ranks) out->add_rank_samples_per_second(value.is_number() ? value.get<double>() : 0);
    }
  }
}

void MetricsFromJson(const json& payload, google::protobuf::Map<std::string, double>* out) {
  auto it = payload.find("metrics");
  if (it == payload.end() || !it->is_object()) return;
  for (const auto& [name, value] : it->items()) {
    if (value.is_number()) (*out)[name] = value.get<double>();
  }
}

// ListJobs page tokens: the last job of the page, versioned and base64url-encoded so that clients
// treat them as opaque.
constexpr absl::string_view kPageTokenPrefix = "jobs.v1:";

}  // namespace

v1::JobState JobStateToProto(jobs::JobState state) {
  for (const auto& [proto, value] : kStates) {
    if (value == state) return proto;
  }
  return v1::JOB_STATE_UNSPECIFIED;
}

std::optional<jobs::JobState> JobStateFromProto(v1::JobState state) {
  for (const auto& [proto, value] : kStates) {
    if (proto == state) return value;
  }
  return std::nullopt;
}

void SetTime(int64_t ms, google::protobuf::Timestamp* out) {
  out->set_seconds(ms / 1000);
  out->set_nanos(static_cast<int32_t>(ms % 1000) * 1000000);
}

absl::StatusOr<training::TrainingJobSpec> SpecFromProto(const v1::JobSpec& proto) {
  std::string task;
  for (const auto& [value, domain] : kTasks) {
    if (value == proto.task()) task = training::TrainingTaskName(domain);
  }
  if (task.empty()) {
    return absl::InvalidArgumentError(
        "task: required (sequence_classification, sentence_pair_classification, next_sentence, "
        "span_extraction or pretraining)");
  }
  return training::TrainingJobSpec::FromJson(SpecToJson(proto, task).dump());
}

void SpecToProto(const training::TrainingJobSpec& spec, v1::JobSpec* out) {
  out->set_name(spec.name);
  for (const auto& [proto, value] : kTasks) {
    if (value == spec.task) out->set_task(proto);
  }
  out->set_base_model(spec.base_model);
  out->set_train_dataset(spec.train_dataset);
  out->set_eval_dataset(spec.eval_dataset);
  out->set_eval_split(spec.eval_split);
  out->set_problem_type(spec.problem_type);
  out->set_output_model(spec.output_model);
  out->set_priority(spec.priority);
  const training::TrainingArguments& a = spec.args;
  v1::Hyperparameters* h = out->mutable_hyperparameters();
  h->set_learning_rate(a.learning_rate);
  h->set_num_train_epochs(a.num_train_epochs);
  h->set_max_steps(a.max_steps);
  h->set_per_device_train_batch_size(a.per_device_train_batch_size);
  h->set_per_device_eval_batch_size(a.per_device_eval_batch_size);
  h->set_gradient_accumulation_steps(a.gradient_accumulation_steps);
  h->set_weight_decay(a.weight_decay);
  h->set_adam_beta1(a.adam_beta1);
  h->set_adam_beta2(a.adam_beta2);
  h->set_adam_epsilon(a.adam_epsilon);
  h->set_max_grad_norm(a.max_grad_norm);
  h->set_lr_scheduler_type(a.lr_scheduler_type);
  h->set_warmup_steps(a.warmup_steps);
  h->set_warmup_ratio(a.warmup_ratio);
  h->set_seed(a.seed);
  h->set_max_seq_length(a.max_seq_length);
  h->set_doc_stride(a.doc_stride);
  h->set_eval_strategy(a.eval_strategy);
  h->set_eval_steps(a.eval_steps);
  h->set_save_steps(a.save_steps);
  h->set_save_total_limit(a.save_total_limit);
  h->set_load_best_model_at_end(a.load_best_model_at_end);
  h->set_metric_for_best_model(a.metric_for_best_model);
  h->set_early_stopping_patience(a.early_stopping_patience);
  h->set_bf16(a.bf16);
  h->set_fp16(a.fp16);
  const bool scratch = spec.scratch();
  const bool pretraining = spec.task == training::TrainingTask::kPretraining;
  if (scratch) {
    v1::VocabularyOptions* v = out->mutable_vocabulary();
    v->set_source(spec.vocabulary.source);
    v->set_vocab_size(spec.vocabulary.vocab_size);
    v->set_min_frequency(spec.vocabulary.min_frequency);
    v->set_limit_alphabet(spec.vocabulary.limit_alphabet);
    v->set_lowercase(spec.vocabulary.lowercase);
    const model::ModelSize& m = spec.model_size;
    v1::ModelSize* size = out->mutable_model_size();
    if (m.num_hidden_layers > 0) size->set_num_hidden_layers(m.num_hidden_layers);
    if (m.hidden_size > 0) size->set_hidden_size(m.hidden_size);
    if (m.num_attention_heads > 0) size->set_num_attention_heads(m.num_attention_heads);
    if (m.intermediate_size > 0) size->set_intermediate_size(m.intermediate_size);
    if (m.max_position_embeddings > 0) size->set_max_position_embeddings(m.max_position_embeddings);
  }
  v1::DistributedOptions* d = out->mutable_distributed();
  d->set_world_size(spec.distributed.world_size);
  d->set_timeout_seconds(spec.distributed.timeout_seconds);
  d->set_restart_policy(spec.distributed.restart_policy);
  d->set_max_restarts(spec.distributed.max_restarts);
  d->set_launcher(spec.distributed.launcher);
  out->mutable_resources()->set_device(spec.resources.device);
  if (pretraining) {
    const training::PretrainingOptions& o = spec.pretraining;
    v1::PretrainingOptions* p = out->mutable_pretraining();
    p->set_masked_lm_prob(o.masked_lm_prob);
    p->set_max_predictions_per_seq(o.max_predictions_per_seq);
    p->set_whole_word_masking(o.whole_word_masking);
    p->set_short_seq_prob(o.short_seq_prob);
    p->set_dupe_factor(o.dupe_factor);
  }
}

void ProgressFromPayload(const std::string& payload_json, v1::Progress* out) {
  const json payload = json::parse(payload_json, nullptr, false);
  if (payload.is_object()) ProgressFromJson(payload, out);
}

void MetricsFromPayload(const std::string& payload_json,
                        google::protobuf::Map<std::string, double>* out) {
  const json payload = json::parse(payload_json, nullptr, false);
  if (payload.is_object()) MetricsFromJson(payload, out);
}

std::string EncodePageToken(const std::string& last_job_id) {
  return absl::WebSafeBase64Escape(absl::StrCat(kPageTokenPrefix, last_job_id));
}

absl::StatusOr<std::string> DecodePageToken(const std::string& token) {
  std::string decoded;
  constexpr size_t kMaxTokenBytes = 256;
  if (token.size() > kMaxTokenBytes || !absl::WebSafeBase64Unescape(token, &decoded) ||
      !absl::StartsWith(decoded, kPageTokenPrefix) || decoded.size() == kPageTokenPrefix.size()) {
    return absl::InvalidArgumentError("page_token: not a token from ListJobs");
  }
  return decoded.substr(kPageTokenPrefix.size());
}

absl::Status ToJobEventProto(const jobs::JobEvent& event, v1::JobEvent* out) {
  out->set_seq(event.seq);
  out->set_job_id(event.job_id);
  SetTime(event.time_ms, out->mutable_time());
  const json payload = json::parse(event.payload_json, nullptr, false);
  if (!payload.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat("event ", event.seq, " of ", event.job_id, ": payload is not a JSON object"));
  }
  if (event.type == "state") {
    v1::StateChange* state = out->mutable_state();
    absl::StatusOr<jobs::JobState> parsed = jobs::ParseJobState(String(payload, "state"));
    state->set_state(parsed.ok() ? JobStateToProto(*parsed) : v1::JOB_STATE_UNSPECIFIED);
    state->set_error(String(payload, "error"));
    state->set_result_model(String(payload, "result_model"));
    state->set_worker(String(payload, "worker"));
    state->set_reason(String(payload, "reason"));
    state->set_attempts(static_cast<int32_t>(Integer(payload, "attempts")));
  } else if (event.type == "progress") {
    ProgressFromJson(payload, out->mutable_progress());
  } else if (event.type == "eval") {
    out->mutable_evaluation()->set_step(Integer(payload, "step"));
    MetricsFromJson(payload, out->mutable_evaluation()->mutable_metrics());
  } else if (event.type == "checkpoint") {
    out->mutable_checkpoint()->set_step(Integer(payload, "step"));
    out->mutable_checkpoint()->set_path(String(payload, "path"));
  } else {
    // "log", and any type added later, reaches the client as a line of text.
    std::string line = String(payload, "message");
    if (line.empty() && event.type != "log") line = absl::StrCat(event.type, ": ", event.payload_json);
    out->mutable_log()->set_line(line);
  }
  return absl::OkStatus();
}

}  // namespace bertd::api
