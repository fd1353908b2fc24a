#ifndef BERTD_API_MODEL_SERVICE_H_
#define BERTD_API_MODEL_SERVICE_H_

#include "bertd/v1/models.grpc.pb.h"
#include "registry/model_registry.h"

namespace bertd::api {

// bertd.v1.ModelService. Synchronous handlers: loading a model blocks for seconds, which gRPC's
// sync thread pool absorbs without stalling the callback threads that serve inference.
class ModelServiceImpl final : public bertd::v1::ModelService::Service {
 public:
  explicit ModelServiceImpl(registry::ModelRegistry* registry);

  grpc::Status ListModels(grpc::ServerContext* context, const v1::ListModelsRequest* request,
                          v1::ListModelsResponse* response) override;
  grpc::Status GetModel(grpc::ServerContext* context, const v1::GetModelRequest* request,
                        v1::ModelInfo* response) override;
  grpc::Status LoadModel(grpc::ServerContext* context, const v1::LoadModelRequest* request,
                         v1::ModelInfo* response) override;
  grpc::Status UnloadModel(grpc::ServerContext* context, const v1::UnloadModelRequest* request,
                           v1::UnloadModelResponse* response) override;

 private:

  registry::ModelRegistry* const registry_;
};

// Fills a ModelInfo from the registry's view of a model version.
void ToModelInfo(const registry::ModelStatus& status, v1::ModelInfo* info);

}  // namespace bertd::api

#endif  // BERTD_API_MODEL_SERVICE_H_
