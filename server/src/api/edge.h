#ifndef BERTD_API_EDGE_H_
#define BERTD_API_EDGE_H_

#include <grpcpp/server_context.h>
#include <grpcpp/support/server_interceptor.h>

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "auth/authorizer.h"
#include "metrics/server_metrics.h"

namespace bertd::api {

// The edge of the server: what every call of every service goes through, attached once to the
// gRPC server instead of typed into each handler. For each call it
//   - authenticates the caller and checks the role its RPC declares (api/access.h) as soon as the
//     call's metadata arrives, before the handler runs;
//   - records bertd_requests_total / bertd_request_duration_seconds with the method, the model the
//     handler resolved (if any) and the final status code, when the status is sent;
//   - makes sure a refused call ends with its refusal, whatever the handler returned.
// Handlers ask the edge who called (CallerOf) before doing anything; a handler that never asks is
// reported on stderr as a bug ("... ran without asking who called"), which the security tests catch.
class Edge final : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  Edge(auth::Authorizer authorizer, metrics::ServerMetrics* metrics)
      : authorizer_(std::move(authorizer)), metrics_(metrics) {}

  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override;

  const auth::Authorizer& authorizer() const { return authorizer_; }
  metrics::ServerMetrics* metrics() const { return metrics_; }

 private:
  const auth::Authorizer authorizer_;
  metrics::ServerMetrics* const metrics_;
};

// Who is calling, or why the call is refused (UNAUTHENTICATED, PERMISSION_DENIED). Handlers call it
// first and return its error as it is. A call the edge never saw is refused (INTERNAL): closed by
// default.
absl::StatusOr<auth::Caller> CallerOf(const grpc::ServerContextBase& context);

// The model label of the call's metrics: the model version the handler resolved. Unresolved names
// are never labels (clients could create unbounded series).
void SetModelLabel(const grpc::ServerContextBase& context, absl::string_view label);

}  // namespace bertd::api

#endif  // BERTD_API_EDGE_H_
