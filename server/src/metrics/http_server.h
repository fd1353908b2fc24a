#ifndef BERTD_METRICS_HTTP_SERVER_H_
#define BERTD_METRICS_HTTP_SERVER_H_

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "prometheus/collectable.h"

namespace httplib {
class Server;
}  // namespace httplib

namespace bertd::metrics {

// Serves GET /metrics in the Prometheus text format (0.0.4) from its own listening thread; every
// other path is 404. Built on cpp-httplib rather than prometheus-cpp's Exposer, whose civetweb
// threads have stacks too small for a process that links LibTorch.
class MetricsHttpServer {
 public:
  // Binds `listen` ("host:port", e.g. "0.0.0.0:9464", "[::]:9464", "127.0.0.1:0"; port 0 picks a
  // free port) and starts serving. Returns only once the socket is bound, so a scrape can follow
  // at once. INVALID_ARGUMENT for a malformed address, UNAVAILABLE when it cannot be bound (port in
  // use, address not local); both messages name the address. Collectables that have expired are
  // skipped at scrape time, so their owners may go away first.
  static absl::StatusOr<std::unique_ptr<MetricsHttpServer>> Start(
      const std::string& listen, std::vector<std::weak_ptr<prometheus::Collectable>> collectables);

  ~MetricsHttpServer();
  MetricsHttpServer(const MetricsHttpServer&) = delete;
  MetricsHttpServer& operator=(const MetricsHttpServer&) = delete;

  // The bound port (the chosen one when `listen` asked for port 0).
  int port() const { return port_; }

  // Stops accepting, finishes requests in flight and joins the thread. Idempotent.
  void Stop();

  // The text exposition of every live collectable, exactly what GET /metrics returns.
  std::string Scrape() const;

 private:
  explicit MetricsHttpServer(std::vector<std::weak_ptr<prometheus::Collectable>> collectables);

  const std::vector<std::weak_ptr<prometheus::Collectable>> collectables_;
  std::unique_ptr<httplib::Server> server_;
  int port_ = 0;
  std::thread thread_;
  std::atomic<bool> listen_returned_{false};
  absl::Mutex stop_mutex_;  // Serialises Stop() calls so only one of them joins.
};

// Splits "host:port" or "[ipv6]:port" into its parts (brackets removed). Exposed for tests.
absl::Status ParseListenAddress(absl::string_view listen, std::string* host, int* port);

}  // namespace bertd::metrics

#endif  // BERTD_METRICS_HTTP_SERVER_H_
