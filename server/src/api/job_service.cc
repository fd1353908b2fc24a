#include "api/job_service.h"

#include <algorithm>
#include <filesystem>


#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "api/grpc_status.h"
#include "api/job_codec.h"
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
  job->set_state(JobStateToProto(record.state));
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
  if (progress.has_value()) ProgressFromPayload(progress->payload_json, job->mutable_progress());
  BERTD_ASSIGN_OR_RETURN(std::optional<jobs::JobEvent> eval, store_->LatestEvent(record.id, "eval"));
  if (eval.has_value()) MetricsFromPayload(eval->payload_json, job->mutable_eval_metrics());
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
  BERTD_ASSIGN_OR_RETURN(training::TrainingJobSpec spec, SpecFromProto(proto));
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

  BERTD_ASSIGN_OR_RETURN(int64_t queued, store_->CountJobs(jobs::JobState::kQueued));
  if (queued >= options_.max_queued_jobs) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "the queue holds ", queued, " jobs (--max_queued_jobs=", options_.max_queued_jobs,
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
  return ToGrpcStatus(ListPage(*request, JobStateFromProto(request->state()), *caller, response));
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
