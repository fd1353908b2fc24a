// Server behaviour around startup, overload and shutdown, each with its own bertd process.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "bertd/v1/inference.grpc.pb.h"
#include "bertd_process.h"
#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "gtest/gtest.h"
#include "test_util.h"

namespace bertd::testing {
namespace {

namespace fs = std::filesystem;

std::string MakeRepositoryWithClassifier() {
  std::string data_dir = MakeTempDir("bertd-lifecycle");
  InstallFixtureModel("classifier", data_dir + "/models", "classifier");
  return data_dir;
}

int HealthStatus(const std::shared_ptr<grpc::Channel>& channel, const std::string& service) {
  auto stub = grpc::health::v1::Health::NewStub(channel);
  grpc::health::v1::HealthCheckRequest request;
  request.set_service(service);
  grpc::health::v1::HealthCheckResponse response;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  grpc::Status status = stub->Check(&context, request, &response);
  return status.ok() ? static_cast<int>(response.status()) : -1;
}

grpc::Status Classify(const std::shared_ptr<grpc::Channel>& channel, int inputs) {
  auto stub = v1::InferenceService::NewStub(channel);
  v1::ClassifyRequest request;
  request.set_model("classifier");
  for (int i = 0; i < inputs; ++i) request.add_inputs()->set_text("text " + std::to_string(i));
  v1::ClassifyResponse response;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  return stub->Classify(&context, request, &response);
}

TEST(ServerLifecycleTest, NotServingUntilModelsAreLoaded) {
  BERTD_REQUIRE_SHARED("fixtures/tiny-bert/classifier/model.safetensors");
  std::string data_dir = MakeRepositoryWithClassifier();
  // A model whose vocab.txt is a FIFO: loading blocks on it until the test writes, which holds
  // the server in its loading phase for as long as the test needs.
  fs::path slow = fs::path(data_dir) / "models" / "slow" / "1";
  fs::create_directories(slow);
  fs::copy_file(SharedPath("fixtures/tiny-bert/classifier/config.json"), slow / "config.json");
  fs::copy_file(SharedPath("fixtures/tiny-bert/classifier/model.safetensors"),
                slow / "model.safetensors");
  ASSERT_EQ(::mkfifo((slow / "vocab.txt").c_str(), 0644), 0);

  BertdProcess server(data_dir);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  int status = -1;
  while (status == -1 && std::chrono::steady_clock::now() < deadline) {
    status = HealthStatus(server.channel(), "");
    if (status == -1) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(status, grpc::health::v1::HealthCheckResponse::NOT_SERVING) << server.log();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(HealthStatus(server.channel(), ""), grpc::health::v1::HealthCheckResponse::NOT_SERVING);

  // Release the loader: the vocabulary arrives through the FIFO and every model serves.
  {
    std::ofstream fifo(slow / "vocab.txt");
    std::ifstream vocab(SharedPath("fixtures/tiny-bert/classifier/vocab.txt"));
    fifo << vocab.rdbuf();
  }
  ASSERT_TRUE(server.WaitUntilServing("", 30)) << server.log();
  EXPECT_EQ(HealthStatus(server.channel(), "classifier"), grpc::health::v1::HealthCheckResponse::SERVING);
  EXPECT_EQ(HealthStatus(server.channel(), "slow@1"), grpc::health::v1::HealthCheckResponse::SERVING);
  EXPECT_TRUE(Classify(server.channel(), 1).ok());
  EXPECT_EQ(server.Terminate(), 0);
  fs::remove_all(data_dir);
}

TEST(ServerLifecycleTest, FullQueueRejectsAtOnceAndShutdownDrainsInFlightRequests) {
  BERTD_REQUIRE_SHARED("fixtures/tiny-bert/classifier/model.safetensors");
  std::string data_dir = MakeRepositoryWithClassifier();
  // Batches wait up to 3 s to fill; the queue holds two sequences.
  BertdProcess server(data_dir, {"--max_queue_size=2", "--max_queue_delay_ms=3000",
                                 "--max_batch_size=64"});
  ASSERT_TRUE(server.WaitUntilServing()) << server.log();

  auto start = std::chrono::steady_clock::now();
  grpc::Status overflow = Classify(server.channel(), 3);
  EXPECT_EQ(overflow.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << overflow.error_message();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3))
      << "a full queue must refuse before the batch delay passes";

  // Wait for the queue to empty, then put one request in flight and stop the server under it.
  std::this_thread::sleep_for(std::chrono::milliseconds(3500));
  grpc::Status in_flight;
  std::thread client([&] { in_flight = Classify(server.channel(), 1); });
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_EQ(server.Terminate(), 0) << server.log();
  client.join();
  EXPECT_TRUE(in_flight.ok()) << "request in flight at SIGTERM: " << in_flight.error_message();
  fs::remove_all(data_dir);
}

}  // namespace
}  // namespace bertd::testing
