#ifndef BERTD_API_GRPC_STATUS_H_
#define BERTD_API_GRPC_STATUS_H_

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace bertd::api {

// absl and gRPC share the canonical code numbering, so the mapping is one to one.
inline grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()));
}

}  // namespace bertd::api

#endif  // BERTD_API_GRPC_STATUS_H_
