#ifndef BERTD_AUTH_TLS_H_
#define BERTD_AUTH_TLS_H_

#include <grpcpp/security/server_credentials.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace bertd::auth {

// PEM files from --tls_cert, --tls_key and --tls_client_ca.
struct TlsFiles {
  std::string cert;       // server certificate chain
  std::string key;        // its private key
  std::string client_ca;  // when set, clients must present a certificate signed by it (mutual TLS)

  bool enabled() const { return !cert.empty() || !key.empty() || !client_ca.empty(); }
};

// Plaintext credentials when no file is given, else TLS (mutual TLS with client_ca). The files are
// read and checked here (a certificate, a key that matches it, a CA certificate), so a mistake
// fails at startup with the flag's name rather than as a handshake error on the first call.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(const TlsFiles& files);

}  // namespace bertd::auth

#endif  // BERTD_AUTH_TLS_H_
