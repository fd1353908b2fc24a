#include "api/server_service.h"

#include "api/edge.h"
#include "api/grpc_status.h"

namespace bertd::api {

ServerServiceImpl::ServerServiceImpl(v1::ServerInfo info) : info_(std::move(info)) {}

grpc::Status ServerServiceImpl::GetServerInfo(grpc::ServerContext* context,
                                              const v1::GetServerInfoRequest*,
                                              v1::ServerInfo* response) {
  absl::StatusOr<auth::Caller> caller = CallerOf(*context);
  if (!caller.ok()) return ToGrpcStatus(caller.status());
  *response = info_;
  return grpc::Status::OK;
}

}  // namespace bertd::api
