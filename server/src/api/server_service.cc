#include "api/server_service.h"

#include "absl/time/clock.h"
#include "api/grpc_status.h"
#include "auth/authorizer.h"

namespace bertd::api {

ServerServiceImpl::ServerServiceImpl(v1::ServerInfo info, metrics::ServerMetrics* metrics)
    : info_(std::move(info)), metrics_(metrics) {}

grpc::Status ServerServiceImpl::GetServerInfo(grpc::ServerContext* context,
                                              const v1::GetServerInfoRequest*,
                                              v1::ServerInfo* response) {
  const absl::Time start = absl::Now();
  absl::Status status = auth::CheckCall(*context, "/bertd.v1.ServerService/GetServerInfo");
  if (status.ok()) *response = info_;
  metrics_->RecordRequest("GetServerInfo", "", absl::StatusCodeToString(status.code()),
                          absl::ToDoubleSeconds(absl::Now() - start));
  return ToGrpcStatus(status);
}

}  // namespace bertd::api
