#include "metrics/http_server.h"

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "exposition_format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "metrics/process_collector.h"
#include "metrics/server_metrics.h"

namespace bertd::metrics {
namespace {

using ::testing::HasSubstr;

class MetricsHttpServerTest : public ::testing::Test {
 protected:
  std::unique_ptr<MetricsHttpServer> StartOnLoopback() {
    absl::StatusOr<std::unique_ptr<MetricsHttpServer>> server =
        MetricsHttpServer::Start("127.0.0.1:0", {metrics_->registry(), process_});
    EXPECT_TRUE(server.ok()) << server.status();
    return server.ok() ? std::move(*server) : nullptr;
  }

  std::shared_ptr<ServerMetrics> metrics_ = std::make_shared<ServerMetrics>("test");
  std::shared_ptr<ProcessCollector> process_ = std::make_shared<ProcessCollector>();
};

TEST_F(MetricsHttpServerTest, ServesProcessAndServerMetrics) {
  std::unique_ptr<MetricsHttpServer> server = StartOnLoopback();
  ASSERT_NE(server, nullptr);
  ASSERT_GT(server->port(), 0);
  metrics_->RecordRequest("Classify", "m@1", "OK", 0.002);

  httplib::Client client("127.0.0.1", server->port());
  httplib::Result response = client.Get("/metrics");
  ASSERT_TRUE(response) << httplib::to_string(response.error());
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(response->get_header_value("Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
  const std::string& text = response->body;
  EXPECT_THAT(
      text, HasSubstr("\nbertd_requests_total{code=\"OK\",method=\"Classify\",model=\"m@1\"} 1\n"));
  EXPECT_THAT(
      text,
      HasSubstr("\nbertd_request_duration_seconds_count{method=\"Classify\",model=\"m@1\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("\nprocess_cpu_seconds_total "));
  EXPECT_THAT(text, HasSubstr("\nprocess_resident_memory_bytes "));
  EXPECT_THAT(text, HasSubstr("\nprocess_open_fds "));
  absl::Status format = testing::CheckExpositionFormat(text);
  EXPECT_TRUE(format.ok()) << format << "\n" << text;
}

TEST_F(MetricsHttpServerTest, ScrapesSeeNewValues) {
  std::unique_ptr<MetricsHttpServer> server = StartOnLoopback();
  ASSERT_NE(server, nullptr);
  httplib::Client client("127.0.0.1", server->port());
  for (int i = 1; i <= 3; ++i) {
    metrics_->SetQueueDepth("m@1", i);
    httplib::Result response = client.Get("/metrics");
    ASSERT_TRUE(response);
    EXPECT_THAT(response->body,
                HasSubstr(absl::StrCat("\nbertd_queue_depth{model=\"m@1\"} ", i, "\n")));
  }
}

TEST_F(MetricsHttpServerTest, OtherPathsAre404) {
  std::unique_ptr<MetricsHttpServer> server = StartOnLoopback();
  ASSERT_NE(server, nullptr);
  httplib::Client client("127.0.0.1", server->port());
  for (const char* path : {"/", "/metric", "/metrics/x", "/favicon.ico"}) {
    httplib::Result response = client.Get(path);
    ASSERT_TRUE(response) << path;
    EXPECT_EQ(response->status, 404) << path;
  }
  httplib::Result post = client.Post("/metrics", "x", "text/plain");
  ASSERT_TRUE(post);
  EXPECT_NE(post->status, 200);
}

TEST_F(MetricsHttpServerTest, SkipsCollectablesThatHaveGoneAway) {
  std::unique_ptr<MetricsHttpServer> server = StartOnLoopback();
  ASSERT_NE(server, nullptr);
  metrics_.reset();
  httplib::Client client("127.0.0.1", server->port());
  httplib::Result response = client.Get("/metrics");
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 200);
  EXPECT_THAT(response->body, ::testing::Not(HasSubstr("bertd_")));
  EXPECT_THAT(response->body, HasSubstr("process_threads"));
}

TEST_F(MetricsHttpServerTest, BindingAPortInUseFailsNamingTheAddress) {
  std::unique_ptr<MetricsHttpServer> first = StartOnLoopback();
  ASSERT_NE(first, nullptr);
  std::string address = absl::StrCat("127.0.0.1:", first->port());
  absl::StatusOr<std::unique_ptr<MetricsHttpServer>> second =
      MetricsHttpServer::Start(address, {process_});
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(second.status().message(), HasSubstr(address));
  EXPECT_THAT(second.status().message(), HasSubstr("in use"));
}

TEST_F(MetricsHttpServerTest, BadAddressesFailNamingTheAddress) {
  for (const char* address :
       {"nonsense", "127.0.0.1", "127.0.0.1:", "127.0.0.1:http", "127.0.0.1:65536", "127.0.0.1:-1",
        ":9464", "::1:9464", "[::1]9464", "no-such-host.invalid:9464"}) {
    absl::StatusOr<std::unique_ptr<MetricsHttpServer>> server =
        MetricsHttpServer::Start(address, {process_});
    ASSERT_FALSE(server.ok()) << address;
    EXPECT_EQ(server.status().code(), absl::StatusCode::kInvalidArgument) << server.status();
    EXPECT_THAT(server.status().message(), HasSubstr(address));
  }
  // A well-formed address that is not one of this host's cannot be bound.
  absl::StatusOr<std::unique_ptr<MetricsHttpServer>> foreign =
      MetricsHttpServer::Start("192.0.2.1:9464", {process_});
  ASSERT_FALSE(foreign.ok());
  EXPECT_EQ(foreign.status().code(), absl::StatusCode::kUnavailable) << foreign.status();
  EXPECT_THAT(foreign.status().message(), HasSubstr("192.0.2.1:9464"));
}

TEST(ParseListenAddressTest, SplitsHostAndPort) {
  std::string host;
  int port = -1;
  ASSERT_TRUE(ParseListenAddress("0.0.0.0:9464", &host, &port).ok());
  EXPECT_EQ(host, "0.0.0.0");
  EXPECT_EQ(port, 9464);
  ASSERT_TRUE(ParseListenAddress("[::]:9464", &host, &port).ok());
  EXPECT_EQ(host, "::");
  EXPECT_EQ(port, 9464);
  ASSERT_TRUE(ParseListenAddress("localhost:0", &host, &port).ok());
  EXPECT_EQ(host, "localhost");
  EXPECT_EQ(port, 0);
}

TEST_F(MetricsHttpServerTest, ServesOnIpv6Loopback) {
  absl::StatusOr<std::unique_ptr<MetricsHttpServer>> server =
      MetricsHttpServer::Start("[::1]:0", {process_});
  if (!server.ok()) GTEST_SKIP() << "no IPv6 loopback here: " << server.status();
  httplib::Client client("::1", (*server)->port());
  httplib::Result response = client.Get("/metrics");
  ASSERT_TRUE(response) << httplib::to_string(response.error());
  EXPECT_EQ(response->status, 200);
}

TEST_F(MetricsHttpServerTest, StopIsIdempotentAndClosesThePort) {
  std::unique_ptr<MetricsHttpServer> server = StartOnLoopback();
  ASSERT_NE(server, nullptr);
  int port = server->port();
  {
    httplib::Client client("127.0.0.1", port);
    ASSERT_TRUE(client.Get("/metrics"));
  }
  server->Stop();
  server->Stop();
  httplib::Client client("127.0.0.1", port);
  client.set_connection_timeout(1);
  EXPECT_FALSE(client.Get("/metrics"));

  // The port is free again at once, as for a restarted bertd.
  absl::StatusOr<std::unique_ptr<MetricsHttpServer>> again =
      MetricsHttpServer::Start(absl::StrCat("127.0.0.1:", port), {process_});
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ((*again)->port(), port);
  server.reset();  // The destructor's Stop() after an explicit one is harmless too.
}

TEST_F(MetricsHttpServerTest, StopRightAfterStartDoesNotHang) {
  for (int i = 0; i < 50; ++i) {
    std::unique_ptr<MetricsHttpServer> server = StartOnLoopback();
    ASSERT_NE(server, nullptr);
    server->Stop();
  }
}

TEST_F(MetricsHttpServerTest, StopsWhileAScraperKeepsItsConnectionOpen) {
  std::unique_ptr<MetricsHttpServer> server = StartOnLoopback();
  ASSERT_NE(server, nullptr);
  httplib::Client client("127.0.0.1", server->port());
  client.set_keep_alive(true);
  ASSERT_TRUE(client.Get("/metrics"));
  server->Stop();  // Bounded by the server's keep-alive timeout.
}

}  // namespace
}  // namespace bertd::metrics
