// Load generator for the served path: N concurrent clients send Classify requests with texts drawn
// from a file (one per line) for a fixed time, through gRPC and bertd's dynamic batcher.
//   bench_load --server=127.0.0.1:50051 --model=base --texts=sst2_dev.txt --concurrency=32
//              --duration=30 [--texts_per_request=1] [--wait_ready=120]
// Prints one JSON line: requests/s, sequences/s, latency percentiles (ms), errors.
// With --wait_ready=S it first retries a Classify call for up to S seconds and reports how long
// the model took to answer (ready_after_s), measured from --since_epoch_ms when given.
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "bertd/v1/inference.grpc.pb.h"

namespace {

namespace v1 = bertd::v1;
using Clock = std::chrono::steady_clock;

std::string Flag(int argc, char** argv, const char* name, const char* fallback) {
  const size_t n = std::strlen(name);
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--", 2) == 0 && std::strncmp(argv[i] + 2, name, n) == 0 &&
        argv[i][2 + n] == '=') {
      return argv[i] + 3 + n;
    }
  }
  return fallback;
}

double Percentile(std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  const size_t i = std::min(sorted.size() - 1, static_cast<size_t>(p * sorted.size()));
  return sorted[i];
}

}  // namespace

int main(int argc, char** argv) {
  const std::string server = Flag(argc, argv, "server", "127.0.0.1:50051");
  const std::string model = Flag(argc, argv, "model", "base");
  const std::string texts_path = Flag(argc, argv, "texts", "");
  const int concurrency = std::atoi(Flag(argc, argv, "concurrency", "16").c_str());
  const double duration = std::atof(Flag(argc, argv, "duration", "20").c_str());
  const int per_request = std::atoi(Flag(argc, argv, "texts_per_request", "1").c_str());
  const double wait_ready = std::atof(Flag(argc, argv, "wait_ready", "0").c_str());
  const double since_epoch_ms = std::atof(Flag(argc, argv, "since_epoch_ms", "0").c_str());

  std::vector<std::string> texts;
  {
    std::ifstream in(texts_path);
    std::string line;
    while (std::getline(in, line)) {
      if (!line.empty()) texts.push_back(line);
    }
  }
  if (texts.empty()) {
    std::fprintf(stderr, "--texts: no lines read from '%s'\n", texts_path.c_str());
    return 2;
  }
  auto channel = grpc::CreateChannel(server, grpc::InsecureChannelCredentials());
  auto stub = v1::InferenceService::NewStub(channel);

  auto call = [&](v1::InferenceService::Stub& s, std::mt19937& rng) {
    v1::ClassifyRequest request;
    request.set_model(model);
    for (int i = 0; i < per_request; ++i) {
      request.add_inputs()->set_text(texts[rng() % texts.size()]);
    }
    v1::ClassifyResponse response;
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
    return s.Classify(&context, request, &response);
  };

  double ready_after = -1;
  if (wait_ready > 0) {
    std::mt19937 rng(0);
    const auto start = Clock::now();
    while (true) {
      grpc::Status status = call(*stub, rng);
      if (status.ok()) break;
      if (std::chrono::duration<double>(Clock::now() - start).count() > wait_ready) {
        std::fprintf(stderr, "model not ready after %.0f s: %s\n", wait_ready,
                     status.error_message().c_str());
        return 1;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    const double now_ms = std::chrono::duration<double, std::milli>(
                              std::chrono::system_clock::now().time_since_epoch())
                              .count();
    ready_after = since_epoch_ms > 0 ? (now_ms - since_epoch_ms) / 1000.0 : 0;
  }

  std::mutex mu;
  std::vector<double> latencies_ms;
  std::atomic<int64_t> errors{0};
  std::string first_error;
  const auto start = Clock::now();
  const auto end = start + std::chrono::duration_cast<Clock::duration>(
                               std::chrono::duration<double>(duration));
  std::vector<std::thread> clients;
  for (int c = 0; c < concurrency; ++c) {
    clients.emplace_back([&, c] {
      auto client_stub = v1::InferenceService::NewStub(channel);
      std::mt19937 rng(1000 + c);
      std::vector<double> mine;
      while (Clock::now() < end) {
        const auto t0 = Clock::now();
        grpc::Status status = call(*client_stub, rng);
        const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
        if (status.ok()) {
          mine.push_back(ms);
        } else {
          ++errors;
          std::lock_guard<std::mutex> lock(mu);
          if (first_error.empty()) first_error = status.error_message();
        }
      }
      std::lock_guard<std::mutex> lock(mu);
      latencies_ms.insert(latencies_ms.end(), mine.begin(), mine.end());
    });
  }
  for (auto& t : clients) t.join();
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  std::sort(latencies_ms.begin(), latencies_ms.end());
  std::printf(
      "{\"impl\": \"bertd-served\", \"concurrency\": %d, \"texts_per_request\": %d, "
      "\"seconds\": %.2f, \"requests\": %zu, \"errors\": %lld, \"requests_per_s\": %.3f, "
      "\"seq_per_s\": %.3f, \"p50_ms\": %.1f, \"p90_ms\": %.1f, \"p99_ms\": %.1f, "
      "\"ready_after_s\": %.2f, \"first_error\": \"%s\"}\n",
      concurrency, per_request, elapsed, latencies_ms.size(), static_cast<long long>(errors.load()),
      latencies_ms.size() / elapsed, latencies_ms.size() * per_request / elapsed,
      Percentile(latencies_ms, 0.5), Percentile(latencies_ms, 0.9), Percentile(latencies_ms, 0.99),
      ready_after, first_error.substr(0, 200).c_str());
  return 0;
}
