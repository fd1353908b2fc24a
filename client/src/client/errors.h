#ifndef BERTD_CLIENT_ERRORS_H_
#define BERTD_CLIENT_ERRORS_H_

#include <grpcpp/grpcpp.h>

#include <string>

namespace bertd::client {

// One line for a failed RPC that says what failed and what to do about it, e.g.
//   cannot reach bertd at localhost:50051: is it running? set --server or BERTD_ADDR
//   classify: model "x" not found (NOT_FOUND); `bertctl models list` shows what is served
// `action` names what was attempted ("classify", "upload x.tsv"); the server's own message (which
// names the field, file line, ...) is always kept.
std::string FormatRpcError(const grpc::Status& status, const std::string& action,
                           const std::string& server, double timeout_seconds = 0);

// "NOT_FOUND" etc.
std::string StatusCodeName(grpc::StatusCode code);

}  // namespace bertd::client

#endif  // BERTD_CLIENT_ERRORS_H_
