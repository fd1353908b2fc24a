#include "client/connection.h"

#include <chrono>
#include <fstream>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace bertd::client {
namespace {

absl::Status ReadPem(const std::string& path, const char* flag, std::string* out) {
  if (path.empty()) return absl::OkStatus();
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(flag, ": cannot read ", path));
  std::stringstream buffer;
  buffer << in.rdbuf();
  *out = buffer.str();
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::string> ReadTokenFile(const std::string& path) {
  std::string contents;
  if (auto s = ReadPem(path, "--token-file", &contents); !s.ok()) return s;
  const std::string first_line = contents.substr(0, contents.find('\n'));
  absl::string_view token = absl::StripAsciiWhitespace(first_line);
  if (token.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("--token-file: ", path, " is empty"));
  }
  return std::string(token);
}

absl::StatusOr<std::shared_ptr<grpc::Channel>> CreateChannel(const ConnectionOptions& options) {
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  if (options.UsesTls()) {
    grpc::SslCredentialsOptions ssl;
    if (auto s = ReadPem(options.tls_ca, "--tls-ca", &ssl.pem_root_certs); !s.ok()) return s;
    if (auto s = ReadPem(options.tls_cert, "--tls-cert", &ssl.pem_cert_chain); !s.ok()) return s;
    if (auto s = ReadPem(options.tls_key, "--tls-key", &ssl.pem_private_key); !s.ok()) return s;
    if (ssl.pem_cert_chain.empty() != ssl.pem_private_key.empty()) {
      return absl::InvalidArgumentError("--tls-cert and --tls-key must be given together");
    }
    credentials = grpc::SslCredentials(ssl);
  } else {
    credentials = grpc::InsecureChannelCredentials();
  }
  grpc::ChannelArguments args;
  if (!options.tls_server_name.empty()) args.SetSslTargetNameOverride(options.tls_server_name);
  // Long texts and tokenizations of many inputs exceed gRPC's default 4 MiB receive limit.
  args.SetMaxReceiveMessageSize(64 << 20);
  return grpc::CreateCustomChannel(options.server, credentials, args);
}

void ConfigureContext(const ConnectionOptions& options, grpc::ClientContext* context,
                      bool streaming) {
  if (!options.token.empty()) {
    context->AddMetadata("authorization", absl::StrCat("Bearer ", options.token));
  }
  if (!streaming && options.timeout_seconds > 0) {
    context->set_deadline(std::chrono::system_clock::now() +
                          std::chrono::milliseconds(
                              static_cast<int64_t>(options.timeout_seconds * 1000)));
  }
}

}  // namespace bertd::client
