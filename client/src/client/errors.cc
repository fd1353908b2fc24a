#include "client/errors.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace bertd::client {

std::string StatusCodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK: return "OK";
    case grpc::StatusCode::CANCELLED: return "CANCELLED";
    case grpc::StatusCode::UNKNOWN: return "UNKNOWN";
    case grpc::StatusCode::INVALID_ARGUMENT: return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED: return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND: return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS: return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED: return "PERMISSION_DENIED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED: return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION: return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED: return "ABORTED";
    case grpc::StatusCode::OUT_OF_RANGE: return "OUT_OF_RANGE";
    case grpc::StatusCode::UNIMPLEMENTED: return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL: return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE: return "UNAVAILABLE";
    case grpc::StatusCode::DATA_LOSS: return "DATA_LOSS";
    case grpc::StatusCode::UNAUTHENTICATED: return "UNAUTHENTICATED";
    default: return absl::StrCat("code ", static_cast<int>(code));
  }
}

std::string FormatRpcError(const grpc::Status& status, const std::string& action,
                           const std::string& server, double timeout_seconds) {
  const std::string& message = status.error_message();
  const std::string code = StatusCodeName(status.error_code());
  switch (status.error_code()) {
    case grpc::StatusCode::UNAVAILABLE:
      // A server that is shutting down answers UNAVAILABLE with its own message; anything else
      // is the channel failing to connect.
      if (absl::StrContains(message, "shutting down")) {
        return absl::StrCat(action, ": bertd at ", server, " is shutting down (", message,
                            "); retry once it is back");
      }
      return absl::StrCat("cannot reach bertd at ", server,
                          ": is it running? set --server or BERTD_ADDR (", message, ")");
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return absl::StrCat(action, ": no answer from bertd at ", server,
                          timeout_seconds > 0 ? absl::StrCat(" within ", timeout_seconds, " s")
                                              : std::string(),
                          "; raise --timeout or check the server's load");
    case grpc::StatusCode::UNAUTHENTICATED:
      return absl::StrCat(action, ": bertd refused the credentials (", message,
                          "); set --token, --token-file or BERTD_TOKEN");
    case grpc::StatusCode::PERMISSION_DENIED:
      return absl::StrCat(action, ": permission denied (", message, ")");
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return absl::StrCat(action, ": bertd is busy (", message, "); retry later");
    case grpc::StatusCode::UNIMPLEMENTED:
      return absl::StrCat(action, ": bertd at ", server,
                          " does not offer this API (", message, "); is it an older version?");
    case grpc::StatusCode::NOT_FOUND:
      return absl::StrCat(action, ": ", message, " (NOT_FOUND)");
    default:
      return absl::StrCat(action, ": ", message.empty() ? "failed" : message, " (", code, ")");
  }
}

}  // namespace bertd::client
