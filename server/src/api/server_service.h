#ifndef BERTD_API_SERVER_SERVICE_H_
#define BERTD_API_SERVER_SERVICE_H_

#include "bertd/v1/server.grpc.pb.h"
#include "metrics/server_metrics.h"

namespace bertd::api {

// bertd.v1.ServerService: answers with what main resolved at start.
class ServerServiceImpl final : public bertd::v1::ServerService::Service {
 public:
  ServerServiceImpl(v1::ServerInfo info, metrics::ServerMetrics* metrics);

  grpc::Status GetServerInfo(grpc::ServerContext* context, const v1::GetServerInfoRequest* request,
                             v1::ServerInfo* response) override;

 private:
  const v1::ServerInfo info_;
  metrics::ServerMetrics* const metrics_;
};

}  // namespace bertd::api

#endif  // BERTD_API_SERVER_SERVICE_H_
