#include "api/pooling_codec.h"
#include "api/model_service.h"

#include "api/grpc_status.h"
#include "api/edge.h"

namespace bertd::api {
namespace {

v1::ModelState ToProto(registry::ModelState state) {
  switch (state) {
    case registry::ModelState::kLoading:
      return v1::MODEL_STATE_LOADING;
    case registry::ModelState::kReady:
      return v1::MODEL_STATE_READY;
    case registry::ModelState::kFailed:
      return v1::MODEL_STATE_FAILED;
    case registry::ModelState::kUnloading:
      return v1::MODEL_STATE_UNLOADING;
  }
  return v1::MODEL_STATE_UNSPECIFIED;
}

v1::Task ToProto(registry::Task task) {
  switch (task) {
    case registry::Task::kSequenceClassification:
      return v1::TASK_SEQUENCE_CLASSIFICATION;
    case registry::Task::kNextSentencePrediction:
      return v1::TASK_NEXT_SENTENCE_PREDICTION;
    case registry::Task::kSpanExtraction:
      return v1::TASK_SPAN_EXTRACTION;
    case registry::Task::kFillMask:
      return v1::TASK_FILL_MASK;
    case registry::Task::kTokenization:
      return v1::TASK_TOKENIZATION;
    case registry::Task::kEmbedding:
      return v1::TASK_EMBEDDING;
  }
  return v1::TASK_UNSPECIFIED;
}

}  // namespace

void ToModelInfo(const registry::ModelStatus& status, v1::ModelInfo* info) {
  const registry::ModelDescription& d = status.description;
  info->set_name(status.key.name);
  info->set_version(status.key.version);
  info->set_state(ToProto(status.state));
  info->set_load_error(status.load_error);
  info->set_path(status.path);
  info->set_load_seconds(status.load_seconds);
  info->set_architecture(d.architecture);
  for (registry::Task task : d.tasks) info->add_tasks(ToProto(task));
  for (const std::string& label : d.labels) info->add_labels(label);
  info->set_max_sequence_length(d.max_sequence_length);
  info->set_parameter_count(d.parameter_count);
  info->set_device(d.device);
  info->set_precision(d.precision);
  for (const std::string& warning : d.warnings) info->add_warnings(warning);
  info->set_hidden_size(d.hidden_size);
  info->set_num_layers(d.num_layers);
  info->set_num_attention_heads(d.num_attention_heads);
  info->set_vocab_size(d.vocab_size);
  info->set_embedding_pooling(PoolingToProto(d.embedding_pooling));
  info->set_embedding_normalized(d.embedding_normalized);
  info->set_embedding_max_tokens(d.embedding_max_tokens);
  info->set_problem_type(d.problem_type);
}

ModelServiceImpl::ModelServiceImpl(registry::ModelRegistry* registry) : registry_(registry) {}

grpc::Status ModelServiceImpl::ListModels(grpc::ServerContext* context,
                                          const v1::ListModelsRequest*,
                                          v1::ListModelsResponse* response) {
  absl::StatusOr<auth::Caller> caller = CallerOf(*context);
  if (!caller.ok()) return ToGrpcStatus(caller.status());
  for (const registry::ModelStatus& status : registry_->List()) {
    ToModelInfo(status, response->add_models());
  }
  return ToGrpcStatus(absl::OkStatus());
}

grpc::Status ModelServiceImpl::GetModel(grpc::ServerContext* context,
                                        const v1::GetModelRequest* request,
                                        v1::ModelInfo* response) {
  absl::StatusOr<auth::Caller> caller = CallerOf(*context);
  if (!caller.ok()) return ToGrpcStatus(caller.status());
  absl::StatusOr<registry::ModelStatus> status = registry_->Get(request->model());
  if (status.ok()) ToModelInfo(*status, response);
  return ToGrpcStatus(status.status());
}

grpc::Status ModelServiceImpl::LoadModel(grpc::ServerContext* context,
                                         const v1::LoadModelRequest* request,
                                         v1::ModelInfo* response) {
  absl::StatusOr<auth::Caller> caller = CallerOf(*context);
  if (!caller.ok()) return ToGrpcStatus(caller.status());
  absl::StatusOr<registry::ModelStatus> status = registry_->Load(request->name(), request->version());
  if (status.ok()) ToModelInfo(*status, response);
  return ToGrpcStatus(status.status());
}

grpc::Status ModelServiceImpl::UnloadModel(grpc::ServerContext* context,
                                           const v1::UnloadModelRequest* request,
                                           v1::UnloadModelResponse* response) {
  absl::StatusOr<auth::Caller> caller = CallerOf(*context);
  if (!caller.ok()) return ToGrpcStatus(caller.status());
  absl::StatusOr<std::vector<registry::ModelKey>> unloaded = registry_->Unload(request->model());
  if (unloaded.ok()) {
    for (const registry::ModelKey& key : *unloaded) response->add_unloaded(key.ToString());
  }
  return ToGrpcStatus(unloaded.status());
}

}  // namespace bertd::api
