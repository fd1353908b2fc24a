// Classify reads a classifier's outputs as its config.json's problem_type says: softmax for
// single-label models, a sigmoid per label (and the labels over a threshold) for multi-label
// models, raw values for regression. Expectations come from the golden logits of Hugging Face's
// BertForSequenceClassification on the tiny fixture, not from bertd.
#include <cmath>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "bertd/v1/inference.grpc.pb.h"
#include "bertd/v1/models.grpc.pb.h"
#include "bertd_process.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "test_util.h"

namespace bertd::testing {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

void SetProblemType(const fs::path& model_dir, const std::string& problem_type) {
  nlohmann::json config;
  std::ifstream(model_dir / "config.json") >> config;
  config["problem_type"] = problem_type;
  std::ofstream(model_dir / "config.json") << config.dump(2);
}

class ClassifyProblemTypesTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!SharedFileExists("fixtures/tiny-bert/golden.json")) return;
    data_dir_ = new std::string(MakeTempDir("bertd-problem"));
    const fs::path models = fs::path(*data_dir_) / "models";
    InstallFixtureModel("classifier", models.string(), "single");
    InstallFixtureModel("classifier", models.string(), "multi");
    SetProblemType(models / "multi" / "1", "multi_label_classification");
    InstallFixtureModel("classifier", models.string(), "regress");
    SetProblemType(models / "regress" / "1", "regression");
    server_ = new BertdProcess(*data_dir_);
    ASSERT_TRUE(server_->WaitUntilServing()) << server_->log();
    std::ifstream in(SharedPath("fixtures/tiny-bert/golden.json"));
    golden_ = new nlohmann::json(nlohmann::json::parse(in));
  }

  static void TearDownTestSuite() {
    if (server_ != nullptr) {
      EXPECT_EQ(server_->Terminate(), 0) << server_->log();
      delete server_;
      server_ = nullptr;
      fs::remove_all(*data_dir_);
    }
  }

  void SetUp() override {
    BERTD_REQUIRE_SHARED("fixtures/tiny-bert/golden.json");
    inference_ = v1::InferenceService::NewStub(server_->channel());
    models_ = v1::ModelService::NewStub(server_->channel());
  }

  static std::vector<float> Logits(int row) {
    const auto& entry = (*golden_)["outputs"]["classifier_logits"];
    const int64_t width = entry["shape"][1];
    const std::vector<float> values = entry["values"];
    return std::vector<float>(values.begin() + row * width, values.begin() + (row + 1) * width);
  }

  v1::ClassifyRequest Request(const std::string& model) const {
    v1::ClassifyRequest request;
    request.set_model(model);
    for (int row = 0; row < 5; ++row) {
      auto* input = request.add_inputs();
      input->set_text((*golden_)["texts"][row]["text"].get<std::string>());
      if ((*golden_)["texts"][row].contains("text_pair")) {
        input->set_text_pair((*golden_)["texts"][row]["text_pair"].get<std::string>());
      }
    }
    return request;
  }

  // label -> score of one result.
  static std::map<std::string, float> Scores(const v1::Classification& result) {
    std::map<std::string, float> scores;
    for (const auto& score : result.scores()) scores[score.label()] = score.score();
    return scores;
  }

  std::string ProblemType(const std::string& model) {
    v1::GetModelRequest request;
    request.set_model(model);
    v1::ModelInfo info;
    grpc::ClientContext context;
    EXPECT_TRUE(models_->GetModel(&context, request, &info).ok());
    return info.problem_type();
  }

  static std::string* data_dir_;
  static BertdProcess* server_;
  static nlohmann::json* golden_;
  std::unique_ptr<v1::InferenceService::Stub> inference_;
  std::unique_ptr<v1::ModelService::Stub> models_;
};

std::string* ClassifyProblemTypesTest::data_dir_ = nullptr;
BertdProcess* ClassifyProblemTypesTest::server_ = nullptr;
nlohmann::json* ClassifyProblemTypesTest::golden_ = nullptr;

const char* kLabels[] = {"negative", "neutral", "positive"};

TEST_F(ClassifyProblemTypesTest, MultiLabelModelsScoreEachLabelWithASigmoid) {
  EXPECT_EQ(ProblemType("multi"), "multi_label_classification");
  for (float threshold : {0.5f, 0.3f, 0.0f, 1.0f}) {
    SCOPED_TRACE(threshold);
    v1::ClassifyRequest request = Request("multi");
    request.set_threshold(threshold);
    v1::ClassifyResponse response;
    grpc::ClientContext context;
    grpc::Status status = inference_->Classify(&context, request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    ASSERT_EQ(response.results_size(), 5);
    for (int row = 0; row < 5; ++row) {
      const std::vector<float> logits = Logits(row);
      const std::map<std::string, float> scores = Scores(response.results(row));
      std::vector<std::string> expected_labels;
      std::vector<std::pair<float, std::string>> ranked;
      for (size_t id = 0; id < logits.size(); ++id) {
        const float sigmoid = 1.0f / (1.0f + std::exp(-logits[id]));
        EXPECT_NEAR(scores.at(kLabels[id]), sigmoid, 1e-4) << "row " << row;
        ranked.emplace_back(-sigmoid, kLabels[id]);
      }
      std::sort(ranked.begin(), ranked.end());
      bool ambiguous = false;  // a score within the golden tolerance of the threshold
      for (const auto& [negative, label] : ranked) {
        ambiguous = ambiguous || std::abs(-negative - threshold) < 1e-4;
        if (-negative >= threshold) expected_labels.push_back(label);
      }
      ASSERT_FALSE(ambiguous) << "row " << row << ": pick another threshold for this fixture";
      EXPECT_EQ(std::vector<std::string>(response.results(row).labels().begin(),
                                         response.results(row).labels().end()),
                expected_labels)
          << "row " << row;
      EXPECT_EQ(response.results(row).label(), ranked.front().second);
    }
  }
}

TEST_F(ClassifyProblemTypesTest, SingleLabelModelsKeepSoftmaxAndReturnNoLabelList) {
  EXPECT_EQ(ProblemType("single"), "single_label_classification");
  v1::ClassifyRequest request = Request("single");
  request.set_threshold(0.1f);  // ignored
  v1::ClassifyResponse response;
  grpc::ClientContext context;
  ASSERT_TRUE(inference_->Classify(&context, request, &response).ok());
  for (int row = 0; row < 5; ++row) {
    const std::vector<float> logits = Logits(row);
    double sum = 0;
    for (float x : logits) sum += std::exp(x);
    const std::map<std::string, float> scores = Scores(response.results(row));
    for (size_t id = 0; id < logits.size(); ++id) {
      EXPECT_NEAR(scores.at(kLabels[id]), std::exp(logits[id]) / sum, 1e-4);
    }
    EXPECT_EQ(response.results(row).labels_size(), 0);
  }
}

TEST_F(ClassifyProblemTypesTest, RegressionModelsReturnTheRawOutputsInLabelOrder) {
  EXPECT_EQ(ProblemType("regress"), "regression");
  v1::ClassifyResponse response;
  grpc::ClientContext context;
  ASSERT_TRUE(inference_->Classify(&context, Request("regress"), &response).ok());
  for (int row = 0; row < 5; ++row) {
    const std::vector<float> logits = Logits(row);
    const auto& scores = response.results(row).scores();
    ASSERT_EQ(scores.size(), static_cast<int>(logits.size()));
    for (int id = 0; id < scores.size(); ++id) {
      EXPECT_EQ(scores[id].label(), kLabels[id]);
      EXPECT_NEAR(scores[id].score(), logits[id], 1e-4);
    }
  }
}

TEST_F(ClassifyProblemTypesTest, AThresholdOutsideZeroToOneIsRefused) {
  for (float threshold : {-0.1f, 1.5f, std::nanf("")}) {
    v1::ClassifyRequest request = Request("multi");
    request.set_threshold(threshold);
    v1::ClassifyResponse response;
    grpc::ClientContext context;
    grpc::Status status = inference_->Classify(&context, request, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(status.error_message(), HasSubstr("threshold"));
  }
}

}  // namespace
}  // namespace bertd::testing
