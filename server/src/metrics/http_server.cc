#include "metrics/http_server.h"

#include <netdb.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <iterator>
#include <utility>

#include "absl/algorithm/container.h"
#include "absl/memory/memory.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/status_macros.h"
#include "httplib.h"
#include "prometheus/metric_family.h"
#include "prometheus/text_serializer.h"

namespace bertd::metrics {
namespace {

constexpr char kContentType[] = "text/plain; version=0.0.4; charset=utf-8";

// Scrapes are rare and cheap; httplib's default pool (>= 8 threads) would be idle weight.
constexpr size_t kWorkerThreads = 2;

// Bounds how long Stop() waits on an idle keep-alive connection from a scraper.
constexpr time_t kKeepAliveTimeoutSeconds = 1;

absl::Status InvalidAddress(absl::string_view listen, absl::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrCat("invalid metrics listen address '", listen, "': ", why));
}

// SO_REUSEADDR only. httplib's default also sets SO_REUSEPORT, under which a second process
// (say, a second bertd) could bind the same port without error and steal half the scrapes.
void SetSocketOptions(socket_t sock) {
  int yes = 1;
  setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
}

// Resolves `host` up front so that a typo is reported as such, not as a bind failure.
absl::Status CheckResolvable(const std::string& host, absl::string_view listen) {
  addrinfo hints = {};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* result = nullptr;
  int rc = getaddrinfo(host.c_str(), "0", &hints, &result);
  if (rc != 0) {
    return InvalidAddress(listen,
                          absl::StrCat("cannot resolve host '", host, "': ", gai_strerror(rc)));
  }
  freeaddrinfo(result);
  return absl::OkStatus();
}

}  // namespace

absl::Status ParseListenAddress(absl::string_view listen, std::string* host, int* port) {
  absl::string_view host_part;
  absl::string_view port_part;
  if (absl::StartsWith(listen, "[")) {
    size_t close = listen.find("]:");
    if (close == absl::string_view::npos) return InvalidAddress(listen, "expected [ipv6]:port");
    host_part = listen.substr(1, close - 1);
    port_part = listen.substr(close + 2);
  } else {
    size_t colon = listen.rfind(':');
    if (colon == absl::string_view::npos) return InvalidAddress(listen, "expected host:port");
    host_part = listen.substr(0, colon);
    port_part = listen.substr(colon + 1);
    if (absl::StrContains(host_part, ':')) {
      return InvalidAddress(listen, "write IPv6 addresses in brackets, e.g. [::]:9464");
    }
  }
  if (host_part.empty()) {
    return InvalidAddress(listen, "empty host (use 0.0.0.0 or [::] for all interfaces)");
  }
  int value = -1;
  if (port_part.empty() || !absl::c_all_of(port_part, absl::ascii_isdigit) ||
      !absl::SimpleAtoi(port_part, &value) || value > 65535) {
    return InvalidAddress(listen, "port must be a number from 0 to 65535");
  }
  *host = std::string(host_part);
  *port = value;
  return absl::OkStatus();
}

MetricsHttpServer::MetricsHttpServer(
    std::vector<std::weak_ptr<prometheus::Collectable>> collectables)
    : collectables_(std::move(collectables)), server_(std::make_unique<httplib::Server>()) {}

MetricsHttpServer::~MetricsHttpServer() { Stop(); }

absl::StatusOr<std::unique_ptr<MetricsHttpServer>> MetricsHttpServer::Start(
    const std::string& listen, std::vector<std::weak_ptr<prometheus::Collectable>> collectables) {
  std::string host;
  int port = 0;
  BERTD_RETURN_IF_ERROR(ParseListenAddress(listen, &host, &port));
  BERTD_RETURN_IF_ERROR(CheckResolvable(host, listen));

  auto server = absl::WrapUnique(new MetricsHttpServer(std::move(collectables)));
  MetricsHttpServer* self = server.get();
  httplib::Server& http = *server->server_;
  http.set_socket_options(SetSocketOptions);
  http.new_task_queue = [] { return new httplib::ThreadPool(kWorkerThreads); };
  http.set_keep_alive_timeout(kKeepAliveTimeoutSeconds);
  http.Get("/metrics", [self](const httplib::Request&, httplib::Response& response) {
    response.set_content(self->Scrape(), kContentType);
  });

  errno = 0;
  int bound_port =
      port == 0 ? http.bind_to_any_port(host) : (http.bind_to_port(host, port) ? port : -1);
  if (bound_port < 0) {
    int error = errno;  // httplib reports only failure; errno still holds bind()'s reason.
    return absl::UnavailableError(
        absl::StrCat("cannot listen for metrics on ", listen,
                     error != 0 ? absl::StrCat(": ", std::strerror(error)) : std::string()));
  }
  server->port_ = bound_port;

  server->thread_ = std::thread([self] {
    self->server_->listen_after_bind();
    self->listen_returned_ = true;
  });
  // httplib's stop() does nothing until listen_after_bind() has marked the server running, so a
  // Stop() right after Start() would be lost and its join would hang; wait for that mark.
  while (!http.is_running() && !server->listen_returned_) {
    absl::SleepFor(absl::Microseconds(200));
  }
  if (server->listen_returned_ && !http.is_running()) {
    return absl::UnavailableError(absl::StrCat("metrics server on ", listen, " stopped at once"));
  }
  return server;
}

void MetricsHttpServer::Stop() {
  absl::MutexLock lock(&stop_mutex_);
  if (!thread_.joinable()) return;
  server_->stop();
  thread_.join();
}

std::string MetricsHttpServer::Scrape() const {
  std::vector<prometheus::MetricFamily> families;
  for (const std::weak_ptr<prometheus::Collectable>& weak : collectables_) {
    if (std::shared_ptr<prometheus::Collectable> collectable = weak.lock()) {
      std::vector<prometheus::MetricFamily> collected = collectable->Collect();
      families.insert(families.end(), std::make_move_iterator(collected.begin()),
                      std::make_move_iterator(collected.end()));
    }
  }
  return prometheus::TextSerializer().Serialize(families);
}

}  // namespace bertd::metrics
