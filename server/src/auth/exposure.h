#ifndef BERTD_AUTH_EXPOSURE_H_
#define BERTD_AUTH_EXPOSURE_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace bertd::auth {

// Whether a listen address ("host:port", "unix:path") is reachable only from this machine:
// 127.0.0.0/8, localhost, [::1] and Unix sockets. Anything else (0.0.0.0, [::], a host name or an
// interface address) counts as exposed.
bool IsLoopbackAddress(absl::string_view listen);

// How the gRPC listener is protected, as the flags say.
struct ListenerProtection {
  bool tls = false;            // --tls_cert and --tls_key
  bool tokens = false;         // --auth_tokens_file
  bool allow_insecure = false;  // --allow_insecure
};

// The rule for exposing the gRPC port. On loopback anything goes (the default listener). Exposed,
// bertd needs TLS and tokens both, since without TLS tokens travel in the clear and without tokens
// every caller is an admin; --allow_insecure overrides, for networks the operator protects otherwise.
// FAILED_PRECONDITION names the flags that are missing.
absl::Status CheckListenerExposure(absl::string_view listen, const ListenerProtection& protection);

// The line bertd prints at every start when --allow_insecure lets an unprotected exposed listener
// through ("" when there is nothing to warn about).
std::string InsecureListenerWarning(absl::string_view listen, const ListenerProtection& protection);

}  // namespace bertd::auth

#endif  // BERTD_AUTH_EXPOSURE_H_
