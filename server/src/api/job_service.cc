#include "api/job_service.h"

#include <algorithm>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "api/grpc_status.h"
#include "api/edge.h"
#include "auth/ownership.h"
#include "common/byte_size.h"
#include "common/names.h"
#include "common/status_macros.h"
#include "jobs/event_cursor.h"
#include "jobs/training_runner.h"
#include "model/config.h"
#include "training/memory_estimate.h"
#include "training/pretrainer.h"

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

v1::JobState ToProto(jobs::JobState state) {
  for (const auto& [proto, value] : kStates) {
    if (value == state) return proto;
  }
  return v1::JOB_STATE_UNSPECIFIED;
}

void SetTime(int64_t ms, google::protobuf::Timestamp* out) {
  out->set_seconds(ms / 1000);
  out->set_nanos(static_cast<int32_t>(ms % 1000) * 1000000);
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

}  // namespace

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
    state->set_state(parsed.ok() ? ToProto(*parsed) : v1::JOB_STATE_UNSPECIFIED);
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

JobServiceImpl::JobServiceImpl(jobs::JobStore* store, jobs::JobScheduler* scheduler,
                               registry::ModelRegistry* registry, JobServiceOptions options)
    : store_(store),
      scheduler_(scheduler),
      registry_(registry),
      options_(options),
      watches_({options.max_watch_streams, options.max_watch_streams_per_caller,
                "--max_watch_streams", "--max_watch_streams_per_caller"}) {}

absl::Status JobServiceImpl::ToJobProto(const jobs::JobRecord& record, v1::Job* job) {
  job->set_id(record.id);
  job->set_name(record.name);
  job->set_state(ToProto(record.state));
  job->set_error(record.error);
  job->set_worker(record.worker);
  job->set_result_model(record.result_model);
  job->set_attempts(record.attempts);
  job->set_cancel_requested(record.cancel_requested);
  job->set_owner(record.owner);
  if (!record.worker.empty()) {
    for (absl::string_view device : absl::StrSplit(record.worker, ',')) job->add_devices(std::string(device));
  }
  SetTime(record.created_at_ms, job->mutable_created_at());
  if (record.started_at_ms > 0) SetTime(record.started_at_ms, job->mutable_started_at());
  if (record.finished_at_ms > 0) SetTime(record.finished_at_ms, job->mutable_finished_at());
  absl::StatusOr<training::TrainingJobSpec> spec =
      training::TrainingJobSpec::FromJson(record.spec_json);
  if (spec.ok()) SpecToProto(*spec, job->mutable_spec());

  // The latest of each kind, by index: a job's thousands of progress events are never read here.
  BERTD_ASSIGN_OR_RETURN(std::optional<jobs::JobEvent> progress,
                         store_->LatestEvent(record.id, "progress"));
  if (progress.has_value()) {
    const json payload = json::parse(progress->payload_json, nullptr, false);
    if (payload.is_object()) ProgressFromJson(payload, job->mutable_progress());
  }
  BERTD_ASSIGN_OR_RETURN(std::optional<jobs::JobEvent> eval, store_->LatestEvent(record.id, "eval"));
  if (eval.has_value()) {
    const json payload = json::parse(eval->payload_json, nullptr, false);
    if (payload.is_object()) MetricsFromJson(payload, job->mutable_eval_metrics());
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> JobServiceImpl::CheckDataset(const std::string& id_or_name,
                                                         const char* field,
                                                         training::TrainingTask task,
                                                         const auth::Caller& caller) {
  absl::StatusOr<jobs::DatasetRecord> record = store_->GetDataset(id_or_name);
  if (record.status().code() == absl::StatusCode::kNotFound) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": dataset '", id_or_name, "' does not exist"));
  }
  if (!record.ok()) return record.status();
  BERTD_RETURN_IF_ERROR(auth::CheckOwner(
      caller, absl::StrCat(field, ": dataset '", id_or_name, "'"), record->owner));
  BERTD_ASSIGN_OR_RETURN(data::DatasetSpec spec, jobs::DatasetSpecFromJson(record->spec_json));
  BERTD_RETURN_IF_ERROR(jobs::CheckDatasetFitsTask(spec, task, field));
  return record->id;
}

bool JobServiceImpl::InRepository(const std::string& model) const {
  std::error_code ec;
  return registry_->Get(model).ok() ||
         std::filesystem::exists(std::filesystem::path(registry_->repository_root()) / model, ec);
}

absl::Status JobServiceImpl::CheckOutputModel(const std::string& model, const auth::Caller& caller) {
  BERTD_ASSIGN_OR_RETURN(std::optional<std::string> owner, store_->ModelOwner(model));
  return auth::CheckModelWrite(caller, "output_model", model, owner, InRepository(model));
}

absl::Status JobServiceImpl::ClaimOutputModel(const std::string& model, const auth::Caller& caller) {
  // Of two jobs claiming a new model at once, the second sees the first's owner.
  BERTD_ASSIGN_OR_RETURN(std::string owner, store_->ClaimModel(model, caller.name));
  return auth::CheckModelWrite(caller, "output_model", model, owner, InRepository(model));
}

absl::StatusOr<jobs::JobRecord> JobServiceImpl::Submit(const v1::JobSpec& proto,
                                                       const auth::Caller& caller) {
  std::string task;
  for (const auto& [value, domain] : kTasks) {
    if (value == proto.task()) task = training::TrainingTaskName(domain);
  }
  if (task.empty()) {
    return absl::InvalidArgumentError(
        "task: required (sequence_classification, sentence_pair_classification, next_sentence, "
        "span_extraction or pretraining)");
  }
  BERTD_ASSIGN_OR_RETURN(training::TrainingJobSpec spec,
                         training::TrainingJobSpec::FromJson(SpecToJson(proto, task).dump()));
  BERTD_RETURN_IF_ERROR(registry::ValidateName("output_model", spec.output_model));
  // Names become directories (output_model) or are looked up (the rest): all plain names.
  BERTD_RETURN_IF_ERROR(ValidateName("name", spec.name));
  BERTD_RETURN_IF_ERROR(ValidateName("train_dataset", spec.train_dataset));
  if (!spec.eval_dataset.empty()) {
    BERTD_RETURN_IF_ERROR(ValidateName("eval_dataset", spec.eval_dataset));
  }
  // Refused before any other work; claimed (when new) only once the job is sure to be created.
  BERTD_RETURN_IF_ERROR(CheckOutputModel(spec.output_model, caller));

  std::string base_dir;
  if (!spec.scratch()) {
    absl::StatusOr<registry::ModelStatus> base = registry_->Get(spec.base_model);
    if (!base.ok() || base->state != registry::ModelState::kReady) {
      return absl::InvalidArgumentError(absl::StrCat(
          "base_model: model '", spec.base_model, "' is not loaded",
          base.ok() ? absl::StrCat(" (", registry::ModelStateName(base->state), ")") : ""));
    }
    base_dir = base->path;
  }
  const jobs::SlotDemand demand = jobs::DemandOf(spec);
  BERTD_RETURN_IF_ERROR(jobs::CheckDemandFits(demand, options_.pool));
  BERTD_RETURN_IF_ERROR(CheckMemory(spec, demand, base_dir));

  std::vector<std::string> dataset_ids;
  // A vocabulary named by the spec must exist now; a dataset one is kept until the job ends.
  const std::string& vocab_source = spec.vocabulary.source;
  if (vocab_source.rfind("model:", 0) == 0) {
    absl::StatusOr<registry::ModelStatus> vocab_model = registry_->Get(vocab_source.substr(6));
    if (!vocab_model.ok() || vocab_model->state != registry::ModelState::kReady) {
      return absl::InvalidArgumentError(absl::StrCat("vocabulary.source: model '",
                                                     vocab_source.substr(6), "' is not loaded"));
    }
  } else if (vocab_source.rfind("dataset:", 0) == 0) {
    absl::StatusOr<jobs::DatasetRecord> record = store_->GetDataset(vocab_source.substr(8));
    if (!record.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("vocabulary.source: dataset '",
                                                     vocab_source.substr(8), "' does not exist"));
    }
    BERTD_RETURN_IF_ERROR(auth::CheckOwner(
        caller, absl::StrCat("vocabulary.source: dataset '", vocab_source.substr(8), "'"),
        record->owner));
    if (record->format != "text") {
      return absl::InvalidArgumentError(absl::StrCat(
          "vocabulary.source: dataset '", vocab_source.substr(8),
          "' must be a text dataset holding a vocab.txt, got format ", record->format));
    }
    dataset_ids.push_back(record->id);
  }
  BERTD_ASSIGN_OR_RETURN(std::string train_id,
                         CheckDataset(spec.train_dataset, "train_dataset", spec.task, caller));
  if (std::find(dataset_ids.begin(), dataset_ids.end(), train_id) == dataset_ids.end()) {
    dataset_ids.push_back(train_id);
  }
  if (!spec.eval_dataset.empty()) {
    BERTD_ASSIGN_OR_RETURN(std::string eval_id,
                           CheckDataset(spec.eval_dataset, "eval_dataset", spec.task, caller));
    if (std::find(dataset_ids.begin(), dataset_ids.end(), eval_id) == dataset_ids.end()) {
      dataset_ids.push_back(eval_id);
    }
  }

  BERTD_ASSIGN_OR_RETURN(std::vector<jobs::JobRecord> queued, store_->List(jobs::JobState::kQueued));
  if (static_cast<int>(queued.size()) >= options_.max_queued_jobs) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "the queue holds ", queued.size(), " jobs (--max_queued_jobs=", options_.max_queued_jobs,
        "); retry when some have run"));
  }

  BERTD_RETURN_IF_ERROR(ClaimOutputModel(spec.output_model, caller));

  jobs::JobRecord job;
  job.owner = caller.name;
  job.name = spec.name;
  job.task = training::TrainingTaskName(spec.task);
  job.priority = spec.priority;
  job.spec_json = spec.ToJson();
  BERTD_ASSIGN_OR_RETURN(job, store_->Create(std::move(job), dataset_ids));
  scheduler_->Notify();
  return job;
}

absl::Status JobServiceImpl::CheckMemory(const training::TrainingJobSpec& spec,
                                         const jobs::SlotDemand& demand,
                                         const std::string& base_dir) {
  // CPU workers share this machine's memory (and --training_memory_limit each); a job that can
  // only run on CUDA slots is not checked here.
  const bool may_run_on_cpu = !demand.type.has_value() || *demand.type == jobs::DeviceType::kCpu;
  if (demand.count == 0 || !may_run_on_cpu ||
      jobs::CountSlots(options_.pool, jobs::DeviceType::kCpu) == 0 ||
      (options_.memory_limit_bytes <= 0 && options_.machine_memory_bytes <= 0)) {
    return absl::OkStatus();
  }
  absl::StatusOr<model::BertConfig> config =
      spec.scratch() ? training::ScratchModelConfig(spec, spec.vocabulary.vocab_size,
                                                    training::ArchitectureFor(spec.task))
                     : model::BertConfig::FromFile(base_dir + "/config.json");
  if (!config.ok()) return absl::OkStatus();  // the job reports what is wrong with its model
  const training::MemoryEstimate estimate =
      training::EstimateTrainingMemory(*config, spec.task, spec.args, spec.pretraining);
  const int tokens = std::min(spec.args.max_seq_length, config->max_position_embeddings);
  const int local_ranks = spec.distributed.launcher == "local" ? spec.distributed.world_size : 1;
  return training::CheckMemoryFits(estimate, spec.args.per_device_train_batch_size, tokens,
                                   {options_.memory_limit_bytes, options_.machine_memory_bytes,
                                    local_ranks});
}

std::string JobServiceImpl::WatcherKey(const grpc::ServerContext& context,
                                      const auth::Caller& caller) {
  if (!caller.name.empty()) return "token:" + caller.name;
  // Without tokens, the client's address: "ipv4:127.0.0.1:52344" without its port.
  const std::string peer = context.peer();
  const size_t colon = peer.rfind(':');
  return "peer:" + (colon == std::string::npos ? peer : peer.substr(0, colon));
}

absl::StatusOr<jobs::JobRecord> JobServiceImpl::OwnJob(const std::string& job_id,
                                                       const auth::Caller& caller) {
  if (job_id.empty()) return absl::InvalidArgumentError("job_id is empty");
  BERTD_ASSIGN_OR_RETURN(jobs::JobRecord job, store_->Get(job_id));
  BERTD_RETURN_IF_ERROR(auth::CheckOwner(caller, absl::StrCat("job ", job_id), job.owner));
  return job;
}

grpc::Status JobServiceImpl::SubmitJob(grpc::ServerContext* context,
                                       const v1::SubmitJobRequest* request,
                                       v1::Job* response) {
  absl::StatusOr<auth::Caller> caller = CallerOf(*context);
  if (!caller.ok()) return ToGrpcStatus(caller.status());
  absl::StatusOr<jobs::JobRecord> job = Submit(request->spec(), *caller);
  absl::Status status = job.status();
  if (job.ok()) status = ToJobProto(*job, response);
  return ToGrpcStatus(status);
}

grpc::Status JobServiceImpl::GetJob(grpc::ServerContext* context,
                                    const v1::GetJobRequest* request,
                                    v1::Job* response) {
  absl::StatusOr<auth::Caller> caller = CallerOf(*context);
  if (!caller.ok()) return ToGrpcStatus(caller.status());
  absl::StatusOr<jobs::JobRecord> job = OwnJob(request->job_id(), *caller);
  absl::Status status = job.status();
  if (job.ok()) status = ToJobProto(*job, response);
  return ToGrpcStatus(status);
}

grpc::Status JobServiceImpl::ListJobs(grpc::ServerContext* context,
                                      const v1::ListJobsRequest* request,
                                      v1::ListJobsResponse* response) {
  absl::StatusOr<auth::Caller> caller = CallerOf(*context);
  if (!caller.ok()) return ToGrpcStatus(caller.status());
  std::optional<jobs::JobState> state;
  for (const auto& [proto, value] : kStates) {
    if (proto == request->state()) state = value;
  }
  return ToGrpcStatus(ListPage(*request, state, *caller, response));
}

absl::Status JobServiceImpl::ListPage(const v1::ListJobsRequest& request,
                                      std::optional<jobs::JobState> state,
                                      const auth::Caller& caller, v1::ListJobsResponse* response) {
  if (request.page_size() < 0 || request.limit() < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(request.page_size() < 0 ? "page_size" : "limit", " must not be negative"));
  }
  int page_size = request.page_size() > 0 ? request.page_size() : request.limit();
  if (page_size == 0) page_size = options_.default_page_size;
  page_size = std::min(page_size, options_.max_page_size);
  std::string after_id;
  if (!request.page_token().empty()) {
    absl::StatusOr<std::string> decoded = DecodePageToken(request.page_token());
    if (!decoded.ok()) return decoded.status();
    after_id = *std::move(decoded);
  }
  // One more than the page: whether another page follows, without counting.
  absl::StatusOr<std::vector<jobs::JobRecord>> jobs =
      store_->List(state, page_size + 1, auth::VisibleOwner(caller), after_id);
  if (absl::IsNotFound(jobs.status())) {
    return absl::InvalidArgumentError("page_token: names no job of this server");
  }
  if (!jobs.ok()) return jobs.status();
  const bool more = static_cast<int>(jobs->size()) > page_size;
  if (more) jobs->resize(page_size);
  for (const jobs::JobRecord& job : *jobs) {
    BERTD_RETURN_IF_ERROR(ToJobProto(job, response->add_jobs()));
  }
  // The old `limit` alone asked for at most that many jobs: no further page.
  if (more && (request.page_size() > 0 || request.limit() == 0)) {
    response->set_next_page_token(EncodePageToken(jobs->back().id));
  }
  return absl::OkStatus();
}

grpc::Status JobServiceImpl::CancelJob(grpc::ServerContext* context,
                                       const v1::CancelJobRequest* request,
                                       v1::Job* response) {
  absl::StatusOr<auth::Caller> caller = CallerOf(*context);
  if (!caller.ok()) return ToGrpcStatus(caller.status());
  absl::StatusOr<jobs::JobRecord> job = OwnJob(request->job_id(), *caller);
  if (job.ok()) job = scheduler_->Cancel(request->job_id());
  absl::Status status = job.status();
  if (job.ok()) status = ToJobProto(*job, response);
  return ToGrpcStatus(status);
}

grpc::Status JobServiceImpl::WatchJob(grpc::ServerContext* context, const v1::WatchJobRequest* request,
                                      grpc::ServerWriter<v1::JobEvent>* writer) {
  absl::StatusOr<auth::Caller> caller = CallerOf(*context);
  if (!caller.ok()) return ToGrpcStatus(caller.status());
  if (absl::Status own = OwnJob(request->job_id(), *caller).status(); !own.ok()) {
    return ToGrpcStatus(own);
  }
  // Each watch holds a server thread while it is open: bounded in total and per caller.
  absl::StatusOr<StreamLimiter::Lease> lease = watches_.Acquire(WatcherKey(*context, *caller));
  if (!lease.ok()) return ToGrpcStatus(lease.status());
  jobs::EventCursor cursor(store_, request->job_id(), request->after_seq());
  jobs::JobEvent event;
  absl::Status status;
  // Short waits: the loop notices a client that went away or a server shutdown within them.
  constexpr absl::Duration kPoll = absl::Milliseconds(250);
  while (true) {
    if (context->IsCancelled()) {
      status = absl::CancelledError("the client cancelled the watch");
      break;
    }
    if (shutting_down_) {
      status = absl::UnavailableError("the server is shutting down; watch again with after_seq");
      break;
    }
    if (cursor.Next(&event, absl::Now() + kPoll)) {
      v1::JobEvent proto;
      status = ToJobEventProto(event, &proto);
      if (!status.ok()) break;
      if (!writer->Write(proto)) {
        status = absl::CancelledError("the client went away");
        break;
      }
      continue;
    }
    if (cursor.done()) {
      status = cursor.status();
      break;
    }
  }
  cursor.Cancel();
  return ToGrpcStatus(status);
}

}  // namespace bertd::api
