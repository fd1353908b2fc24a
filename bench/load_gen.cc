// Load generator for the served path: N concurrent clients send Classify requests with texts drawn
// from a file (one per line) for a fixed time, through gRPC and bertd's dynamic batcher.
//   bench_load --server=127.0.0.1:50051 --model=base --texts=sst2_dev.txt --concurrency=32
//              --duration=30 [--texts_per_request=1] [--wait_ready=120] [--tokenize_every=0]
//              [--timeline=FILE]
// Prints one JSON line: requests/s, sequences/s, latency percentiles (ms), errors by status code.
// --tokenize_every=N makes every Nth request of a client a Tokenize call (a request mix);
// --timeline=FILE writes one JSON line per second of the run (requests, errors by code, p50/p99).
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
#include <map>
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

std::string JsonString(const std::string& text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out += ' ';
    } else {
      out += c;
    }
  }
  return out + "\"";
}

std::string CodeName(grpc::StatusCode code) {
  static const char* const kNames[] = {
      "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
      "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
      "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
      "UNAUTHENTICATED"};
  const int i = static_cast<int>(code);
  return i >= 0 && i < 17 ? kNames[i] : "CODE_" + std::to_string(i);
}

std::string CountsJson(const std::map<std::string, int64_t>& counts) {
  std::string out = "{";
  for (const auto& [name, n] : counts) {
    if (out.size() > 1) out += ", ";
    out += JsonString(name) + ": " + std::to_string(n);
  }
  return out + "}";
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
  const int tokenize_every = std::atoi(Flag(argc, argv, "tokenize_every", "0").c_str());
  const std::string timeline_path = Flag(argc, argv, "timeline", "");

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

  // Per second of the run: latencies of the calls that ended in it, and errors by code.
  struct Second {
    std::vector<double> latencies_ms;
    std::map<std::string, int64_t> errors;
  };
  std::mutex mu;
  std::vector<double> latencies_ms;
  std::map<std::string, int64_t> errors_by_code;
  std::map<int64_t, Second> timeline;
  int64_t errors = 0;
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
      for (int64_t n = 1; Clock::now() < end; ++n) {
        const auto t0 = Clock::now();
        grpc::Status status;
        if (tokenize_every > 0 && n % tokenize_every == 0) {
          v1::TokenizeRequest request;
          request.set_model(model);
          request.add_inputs()->set_text(texts[rng() % texts.size()]);
          v1::TokenizeResponse response;
          grpc::ClientContext context;
          context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
          status = client_stub->Tokenize(&context, request, &response);
        } else {
          status = call(*client_stub, rng);
        }
        const auto t1 = Clock::now();
        const double ms = std::chrono::duration<double, std::milli>(t1 - t0).count();
        const int64_t second = std::chrono::duration_cast<std::chrono::seconds>(t1 - start).count();
        std::lock_guard<std::mutex> lock(mu);
        Second& bucket = timeline[second];
        if (status.ok()) {
          mine.push_back(ms);
          bucket.latencies_ms.push_back(ms);
        } else {
          ++errors;
          ++errors_by_code[CodeName(status.error_code())];
          ++bucket.errors[CodeName(status.error_code())];
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
  if (!timeline_path.empty()) {
    std::ofstream out(timeline_path);
    for (auto& [second, bucket] : timeline) {
      std::sort(bucket.latencies_ms.begin(), bucket.latencies_ms.end());
      out << "{\"t\": " << second << ", \"ok\": " << bucket.latencies_ms.size()
          << ", \"errors\": " << CountsJson(bucket.errors)
          << ", \"p50_ms\": " << Percentile(bucket.latencies_ms, 0.5)
          << ", \"p99_ms\": " << Percentile(bucket.latencies_ms, 0.99) << "}\n";
    }
  }
  std::printf(
      "{\"impl\": \"bertd-served\", \"concurrency\": %d, \"texts_per_request\": %d, "
      "\"seconds\": %.2f, \"requests\": %zu, \"errors\": %lld, \"errors_by_code\": %s, "
      "\"requests_per_s\": %.3f, \"seq_per_s\": %.3f, \"p50_ms\": %.1f, \"p90_ms\": %.1f, "
      "\"p99_ms\": %.1f, \"ready_after_s\": %.2f, \"first_error\": %s}\n",
      concurrency, per_request, elapsed, latencies_ms.size(), static_cast<long long>(errors),
      CountsJson(errors_by_code).c_str(), latencies_ms.size() / elapsed,
      latencies_ms.size() * per_request / elapsed, Percentile(latencies_ms, 0.5),
      Percentile(latencies_ms, 0.9), Percentile(latencies_ms, 0.99), ready_after,
      JsonString(first_error.substr(0, 200)).c_str());
  return 0;
}
