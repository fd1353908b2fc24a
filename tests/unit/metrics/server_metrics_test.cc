#include "metrics/server_metrics.h"

#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "exposition_format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace bertd::metrics {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

std::string Scrape(const ServerMetrics& metrics) {
  std::string text = testing::Serialize(*metrics.registry());
  absl::Status format = testing::CheckExpositionFormat(text);
  EXPECT_TRUE(format.ok()) << format << "\n" << text;
  return text;
}

TEST(ServerMetricsTest, ModelLabelIsNameAtVersion) {
  EXPECT_EQ(ModelLabel("sst2", "3"), "sst2@3");
  EXPECT_EQ(ModelStateName(ModelState::kLoading), "LOADING");
  EXPECT_EQ(ModelStateName(ModelState::kReady), "READY");
  EXPECT_EQ(ModelStateName(ModelState::kFailed), "FAILED");
  EXPECT_EQ(ModelStateName(ModelState::kUnloading), "UNLOADING");
}

TEST(ServerMetricsTest, ExportsEveryFamilyWithHelpAndType) {
  ServerMetrics metrics("1.2.3");
  metrics.RecordRequest("Classify", "m@1", "OK", 0.01);
  metrics.ObserveQueueWait("m@1", 0.001);
  metrics.RecordBatch("m@1", 0.02, 4, 512, 100);
  metrics.SetQueueDepth("m@1", 2);
  metrics.SetModelState("m", "1", ModelState::kReady);
  metrics.ObserveModelLoad("m@1", 3);
  std::string text = Scrape(metrics);
  for (const char* counter : {"bertd_requests_total"}) {
    EXPECT_THAT(text, HasSubstr(absl::StrCat("# TYPE ", counter, " counter\n")));
  }
  for (const char* gauge : {"bertd_queue_depth", "bertd_model_state", "bertd_build_info"}) {
    EXPECT_THAT(text, HasSubstr(absl::StrCat("# TYPE ", gauge, " gauge\n")));
  }
  EXPECT_THAT(text, HasSubstr("# TYPE bertd_request_duration_seconds histogram\n"));
  EXPECT_THAT(
      text,
      HasSubstr("bertd_request_duration_seconds_count{method=\"Classify\",model=\"m@1\"} 1\n"));
  for (const char* histogram :
       {"bertd_queue_duration_seconds", "bertd_inference_duration_seconds", "bertd_batch_size",
        "bertd_batch_tokens", "bertd_batch_padding_ratio", "bertd_model_load_duration_seconds"}) {
    EXPECT_THAT(text, HasSubstr(absl::StrCat("# TYPE ", histogram, " histogram\n")));
    EXPECT_THAT(text, HasSubstr(absl::StrCat(histogram, "_count{model=\"m@1\"")));
  }
  EXPECT_THAT(text, HasSubstr("bertd_build_info{version=\"1.2.3\"} 1\n"));
}

TEST(ServerMetricsTest, QueueCapacityIsOneUnlabelledGauge) {
  ServerMetrics metrics("1.2.3");
  metrics.SetQueueCapacity(1024);
  std::string text = Scrape(metrics);
  EXPECT_THAT(text, HasSubstr("# TYPE bertd_queue_capacity gauge\nbertd_queue_capacity 1024\n"));
}

TEST(ServerMetricsTest, DefaultBuildInfoCarriesTheBuiltVersion) {
  ServerMetrics metrics;
  EXPECT_THAT(
      Scrape(metrics),
      ::testing::ContainsRegex("\nbertd_build_info\\{version=\"[0-9]+\\.[0-9]+\\.[0-9]+\"\\} 1\n"));
}

TEST(ServerMetricsTest, CountsRequestsByMethodModelAndCode) {
  ServerMetrics metrics("test");
  metrics.RecordRequest("Classify", "m@1", "OK", 0.003);
  std::string text = Scrape(metrics);
  EXPECT_THAT(
      text, HasSubstr("\nbertd_requests_total{code=\"OK\",method=\"Classify\",model=\"m@1\"} 1\n"));

  metrics.RecordRequest("Classify", "m@1", "OK", 0.003);
  metrics.RecordRequest("Classify", "m@1", "NOT_FOUND", 0.0001);
  metrics.RecordRequest("FillMask", "m@1", "OK", 0.003);
  text = Scrape(metrics);
  EXPECT_THAT(
      text, HasSubstr("\nbertd_requests_total{code=\"OK\",method=\"Classify\",model=\"m@1\"} 2\n"));
  EXPECT_THAT(
      text,
      HasSubstr(
          "\nbertd_requests_total{code=\"NOT_FOUND\",method=\"Classify\",model=\"m@1\"} 1\n"));
  EXPECT_THAT(
      text, HasSubstr("\nbertd_requests_total{code=\"OK\",method=\"FillMask\",model=\"m@1\"} 1\n"));
}

TEST(ServerMetricsTest, RequestDurationIsAnExponentialHistogramFromHalfAMillisecond) {
  ServerMetrics metrics("test");
  metrics.RecordRequest("Classify", "m@1", "OK", 0.003);
  metrics.RecordRequest("Classify", "m@1", "INTERNAL", 100);  // Beyond the last bucket.
  std::string text = Scrape(metrics);
  const std::string series =
      "bertd_request_duration_seconds_bucket{method=\"Classify\",model=\"m@1\",";
  EXPECT_THAT(text, HasSubstr(series + "le=\"0.0005\"} 0\n"));
  EXPECT_THAT(text, HasSubstr(series + "le=\"0.002\"} 0\n"));
  EXPECT_THAT(text, HasSubstr(series + "le=\"0.004\"} 1\n"));
  EXPECT_THAT(text, HasSubstr(series + "le=\"32.768\"} 1\n"));
  EXPECT_THAT(text, HasSubstr(series + "le=\"+Inf\"} 2\n"));
  EXPECT_THAT(
      text,
      HasSubstr("\nbertd_request_duration_seconds_count{method=\"Classify\",model=\"m@1\"} 2\n"));
  EXPECT_THAT(
      text,
      HasSubstr(
          "\nbertd_request_duration_seconds_sum{method=\"Classify\",model=\"m@1\"} 100.003\n"));
}

TEST(ServerMetricsTest, RecordBatchFillsSizeTokensPaddingAndInferenceTime) {
  ServerMetrics metrics("test");
  metrics.RecordBatch("m@1", 0.02, 3, 128, 32);
  std::string text = Scrape(metrics);
  EXPECT_THAT(text, HasSubstr("\nbertd_batch_size_bucket{model=\"m@1\",le=\"2\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("\nbertd_batch_size_bucket{model=\"m@1\",le=\"4\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("\nbertd_batch_size_bucket{model=\"m@1\",le=\"256\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("\nbertd_batch_size_sum{model=\"m@1\"} 3\n"));
  EXPECT_THAT(text, HasSubstr("\nbertd_batch_tokens_bucket{model=\"m@1\",le=\"16\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("\nbertd_batch_tokens_bucket{model=\"m@1\",le=\"128\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("\nbertd_batch_tokens_bucket{model=\"m@1\",le=\"65536\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("\nbertd_batch_padding_ratio_bucket{model=\"m@1\",le=\"0.2\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("\nbertd_batch_padding_ratio_bucket{model=\"m@1\",le=\"0.3\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("\nbertd_batch_padding_ratio_sum{model=\"m@1\"} 0.25\n"));
  EXPECT_THAT(text, HasSubstr("\nbertd_inference_duration_seconds_count{model=\"m@1\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("\nbertd_inference_duration_seconds_sum{model=\"m@1\"} 0.02\n"));

  // An empty batch has no padding ratio; it must not record a NaN.
  metrics.RecordBatch("m@1", 0.0, 0, 0, 0);
  text = Scrape(metrics);
  EXPECT_THAT(text, HasSubstr("\nbertd_batch_padding_ratio_count{model=\"m@1\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("\nbertd_batch_size_count{model=\"m@1\"} 2\n"));
}

TEST(ServerMetricsTest, QueueWaitAndModelLoadAreHistogramsPerModel) {
  ServerMetrics metrics("test");
  metrics.ObserveQueueWait("a@1", 0.001);
  metrics.ObserveQueueWait("b@2", 0.001);
  metrics.ObserveQueueWait("b@2", 0.001);
  metrics.ObserveModelLoad("a@1", 2.5);
  std::string text = Scrape(metrics);
  EXPECT_THAT(text, HasSubstr("\nbertd_queue_duration_seconds_count{model=\"a@1\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("\nbertd_queue_duration_seconds_count{model=\"b@2\"} 2\n"));
  EXPECT_THAT(
      text, HasSubstr("\nbertd_model_load_duration_seconds_bucket{model=\"a@1\",le=\"1.6\"} 0\n"));
  EXPECT_THAT(
      text, HasSubstr("\nbertd_model_load_duration_seconds_bucket{model=\"a@1\",le=\"3.2\"} 1\n"));
}

TEST(ServerMetricsTest, ModelStateIsOneForTheCurrentStateOnly) {
  ServerMetrics metrics("test");
  const std::string prefix = "\nbertd_model_state{model=\"m@1\",state=\"";
  const std::string suffix = "\",version=\"1\"} ";

  metrics.SetModelState("m", "1", ModelState::kLoading);
  std::string text = Scrape(metrics);
  EXPECT_THAT(text, HasSubstr(prefix + "LOADING" + suffix + "1\n"));
  EXPECT_THAT(text, HasSubstr(prefix + "READY" + suffix + "0\n"));
  EXPECT_THAT(text, HasSubstr(prefix + "FAILED" + suffix + "0\n"));
  EXPECT_THAT(text, HasSubstr(prefix + "UNLOADING" + suffix + "0\n"));

  metrics.SetModelState("m", "1", ModelState::kReady);
  metrics.SetModelState("m", "2", ModelState::kFailed);
  text = Scrape(metrics);
  EXPECT_THAT(text, HasSubstr(prefix + "LOADING" + suffix + "0\n"));
  EXPECT_THAT(text, HasSubstr(prefix + "READY" + suffix + "1\n"));
  EXPECT_THAT(text, HasSubstr(prefix + "FAILED" + suffix + "0\n"));
  EXPECT_THAT(text, HasSubstr(prefix + "UNLOADING" + suffix + "0\n"));
  EXPECT_THAT(text,
              HasSubstr("\nbertd_model_state{model=\"m@2\",state=\"FAILED\",version=\"2\"} 1\n"));
}

TEST(ServerMetricsTest, RemoveModelDropsItsGaugesButKeepsItsHistory) {
  ServerMetrics metrics("test");
  metrics.SetModelState("m", "1", ModelState::kReady);
  metrics.SetModelState("m", "2", ModelState::kReady);
  metrics.SetQueueDepth("m@1", 5);
  metrics.SetQueueDepth("m@2", 7);
  metrics.RecordRequest("Classify", "m@1", "OK", 0.01);
  std::string text = Scrape(metrics);
  EXPECT_THAT(text, HasSubstr("\nbertd_queue_depth{model=\"m@1\"} 5\n"));

  metrics.SetModelState("m", "1", ModelState::kUnloading);
  metrics.RemoveModel("m", "1");
  text = Scrape(metrics);
  EXPECT_THAT(text, Not(HasSubstr("bertd_model_state{model=\"m@1\"")));
  EXPECT_THAT(text, Not(HasSubstr("bertd_queue_depth{model=\"m@1\"")));
  EXPECT_THAT(text,
              HasSubstr("\nbertd_model_state{model=\"m@2\",state=\"READY\",version=\"2\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("\nbertd_queue_depth{model=\"m@2\"} 7\n"));
  EXPECT_THAT(
      text, HasSubstr("\nbertd_requests_total{code=\"OK\",method=\"Classify\",model=\"m@1\"} 1\n"));

  // Removing twice is harmless, and a reloaded version starts fresh series.
  metrics.RemoveModel("m", "1");
  metrics.SetModelState("m", "1", ModelState::kLoading);
  metrics.SetQueueDepth("m@1", 0);
  text = Scrape(metrics);
  EXPECT_THAT(text,
              HasSubstr("\nbertd_model_state{model=\"m@1\",state=\"LOADING\",version=\"1\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("\nbertd_queue_depth{model=\"m@1\"} 0\n"));
}

TEST(ServerMetricsTest, EscapesLabelValues) {
  ServerMetrics metrics("test");
  metrics.RecordRequest("Classify", "we\"ird\\name@1", "OK", 0.01);
  EXPECT_THAT(Scrape(metrics), HasSubstr("model=\"we\\\"ird\\\\name@1\"} 1\n"));
}

TEST(ServerMetricsTest, IsSafeToRecordFromManyThreads) {
  ServerMetrics metrics("test");
  constexpr int kThreads = 8;
  constexpr int kPerThread = 2000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&metrics, t] {
      std::string model = absl::StrCat("m@", t % 2);
      for (int i = 0; i < kPerThread; ++i) {
        metrics.RecordRequest("Classify", "shared@1", "OK", 0.001);
        metrics.RecordBatch(model, 0.01, 4, 256, 10);
        metrics.SetQueueDepth(model, i);
        metrics.SetModelState("x", absl::StrCat(t), ModelState::kReady);
        if (i % 100 == 0) metrics.RemoveModel("x", absl::StrCat(t));
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  std::string text = Scrape(metrics);
  EXPECT_THAT(text,
              HasSubstr(absl::StrCat(
                  "\nbertd_requests_total{code=\"OK\",method=\"Classify\",model=\"shared@1\"} ",
                  kThreads * kPerThread, "\n")));
  EXPECT_THAT(text, HasSubstr(absl::StrCat("\nbertd_batch_size_count{model=\"m@0\"} ",
                                           kThreads / 2 * kPerThread, "\n")));
}

}  // namespace
}  // namespace bertd::metrics
