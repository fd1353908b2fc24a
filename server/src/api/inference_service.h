#ifndef BERTD_API_INFERENCE_SERVICE_H_
#define BERTD_API_INFERENCE_SERVICE_H_

#include "api/limits.h"
#include "bertd/v1/inference.grpc.pb.h"
#include "metrics/server_metrics.h"
#include "registry/model_registry.h"

namespace bertd::api {

// bertd.v1.InferenceService on gRPC's callback API: a request waiting for its batch holds no
// thread, so many clients can wait while the batcher fills.
class InferenceServiceImpl final : public bertd::v1::InferenceService::CallbackService {
 public:
  InferenceServiceImpl(registry::ModelRegistry* registry, metrics::ServerMetrics* metrics,
                       RequestLimits limits);

  grpc::ServerUnaryReactor* Classify(grpc::CallbackServerContext* context,
                                     const v1::ClassifyRequest* request,
                                     v1::ClassifyResponse* response) override;
  grpc::ServerUnaryReactor* PredictNextSentence(grpc::CallbackServerContext* context,
                                                const v1::NextSentenceRequest* request,
                                                v1::NextSentenceResponse* response) override;
  grpc::ServerUnaryReactor* ExtractSpan(grpc::CallbackServerContext* context,
                                        const v1::ExtractSpanRequest* request,
                                        v1::ExtractSpanResponse* response) override;
  grpc::ServerUnaryReactor* FillMask(grpc::CallbackServerContext* context,
                                     const v1::FillMaskRequest* request,
                                     v1::FillMaskResponse* response) override;
  grpc::ServerUnaryReactor* Embed(grpc::CallbackServerContext* context,
                                  const v1::EmbedRequest* request,
                                  v1::EmbedResponse* response) override;
  grpc::ServerUnaryReactor* Tokenize(grpc::CallbackServerContext* context,
                                     const v1::TokenizeRequest* request,
                                     v1::TokenizeResponse* response) override;

 private:
  registry::ModelRegistry* const registry_;
  metrics::ServerMetrics* const metrics_;
  const RequestLimits limits_;
};

}  // namespace bertd::api

#endif  // BERTD_API_INFERENCE_SERVICE_H_
