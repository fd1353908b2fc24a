#include "auth/exposure.h"

#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/strip.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace bertd::auth {
namespace {

std::vector<std::string> MissingProtection(const ListenerProtection& protection) {
  std::vector<std::string> missing;
  if (!protection.tls) missing.push_back("--tls_cert/--tls_key");
  if (!protection.tokens) missing.push_back("--auth_tokens_file");
  return missing;
}

}  // namespace

bool IsLoopbackAddress(absl::string_view listen) {
  // gRPC's "ipv4:" / "ipv6:" URI prefixes name the same addresses.
  if (absl::ConsumePrefix(&listen, "ipv4:")) {
  } else if (absl::ConsumePrefix(&listen, "ipv6:")) {
  } else if (absl::ConsumePrefix(&listen, "dns:")) {
    absl::ConsumePrefix(&listen, "///");
  }
  if (absl::StartsWith(listen, "unix:") || absl::StartsWith(listen, "unix-abstract:")) return true;
  if (absl::StartsWith(listen, "127.")) return true;
  if (absl::StartsWith(listen, "localhost:")) return true;
  if (absl::StartsWith(listen, "[::1]:")) return true;
  return false;
}

absl::Status CheckListenerExposure(absl::string_view listen, const ListenerProtection& protection) {
  if (IsLoopbackAddress(listen) || protection.allow_insecure) return absl::OkStatus();
  const std::vector<std::string> missing = MissingProtection(protection);
  if (missing.empty()) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      "--listen=", listen, " is reachable from other machines but ", absl::StrJoin(missing, " and "),
      missing.size() == 1 ? " is" : " are",
      " not set: without TLS tokens travel in the clear, without tokens every caller is an admin. "
      "Give --tls_cert, --tls_key and --auth_tokens_file (docs/security.md), listen on loopback "
      "(127.0.0.1:50051), or pass --allow_insecure if the network is protected otherwise"));
}

std::string InsecureListenerWarning(absl::string_view listen, const ListenerProtection& protection) {
  if (IsLoopbackAddress(listen)) return "";
  const std::vector<std::string> missing = MissingProtection(protection);
  if (missing.empty()) return "";
  return absl::StrCat("WARNING: --allow_insecure: --listen=", listen,
                      " is reachable from other machines without ", absl::StrJoin(missing, " and "),
                      "; anyone who reaches the port can ",
                      protection.tokens ? "read the tokens in transit" : "do everything an admin can");
}

}  // namespace bertd::auth
