#ifndef BERTD_CLIENT_CONNECTION_H_
#define BERTD_CLIENT_CONNECTION_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace bertd::client {

// Where and how to reach bertd; filled from bertctl's global flags and environment.
struct ConnectionOptions {
  std::string server = "localhost:50051";
  // Sent as "authorization: Bearer <token>" when not empty.
  std::string token;
  // Per-RPC deadline in seconds; 0 means none. Streams that follow a job never get one.
  double timeout_seconds = 0;
  // TLS: any of these switches the channel to TLS. PEM files.
  std::string tls_ca;
  std::string tls_cert;
  std::string tls_key;
  // Name expected in the server's certificate when it differs from the host in `server`.
  std::string tls_server_name;

  bool UsesTls() const { return !tls_ca.empty() || !tls_cert.empty() || !tls_key.empty(); }
};

// A channel to `options.server`: plaintext, or TLS when a TLS file is given. Fails only when a TLS
// file cannot be read; an unreachable server shows up on the first RPC.
absl::StatusOr<std::shared_ptr<grpc::Channel>> CreateChannel(const ConnectionOptions& options);

// The token in a file (--token-file): its first line, without surrounding whitespace.
absl::StatusOr<std::string> ReadTokenFile(const std::string& path);

// Applies the token and, unless `streaming`, the deadline to a call's context.
void ConfigureContext(const ConnectionOptions& options, grpc::ClientContext* context,
                      bool streaming = false);

}  // namespace bertd::client

#endif  // BERTD_CLIENT_CONNECTION_H_
