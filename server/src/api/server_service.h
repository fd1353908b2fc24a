#ifndef BERTD_API_SERVER_SERVICE_H_
#define BERTD_API_SERVER_SERVICE_H_

#include "bertd/v1/server.grpc.pb.h"

namespace bertd::api {

// bertd.v1.ServerService: answers with what main resolved at start.
class ServerServiceImpl final : public bertd::v1::ServerService::Service {
 public:
  explicit ServerServiceImpl(v1::ServerInfo info);

  grpc::Status GetServerInfo(grpc::ServerContext* context, const v1::GetServerInfoRequest* request,
                             v1::ServerInfo* response) override;

 private:
  const v1::ServerInfo info_;
};

}  // namespace bertd::api

#endif  // BERTD_API_SERVER_SERVICE_H_
