// InferenceService.Embed through the real server: pooled vectors and token states against the
// golden outputs of Hugging Face's BertModel on the tiny fixture, a model's own
// sentence-transformers settings, truncation, and the refusals.
#include <algorithm>
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

constexpr float kTolerance = 1e-4f;  // golden.json's atol

void WriteFile(const fs::path& path, const std::string& contents) {
  fs::create_directories(path.parent_path());
  std::ofstream(path) << contents;
}

// The golden row's real tokens ([tokens, hidden]).
std::vector<std::vector<float>> GoldenStates(const nlohmann::json& golden, int row) {
  const auto& entry = golden["outputs"]["last_hidden_state"];
  const int64_t length = entry["shape"][1], hidden = entry["shape"][2];
  const std::vector<float> values = entry["values"];
  int real = 0;
  for (int m : golden["attention_mask"][row].get<std::vector<int>>()) real += m;
  std::vector<std::vector<float>> states;
  for (int t = 0; t < real; ++t) {
    auto begin = values.begin() + (row * length + t) * hidden;
    states.emplace_back(begin, begin + hidden);
  }
  return states;
}

std::vector<float> Mean(const std::vector<std::vector<float>>& states) {
  std::vector<float> out(states[0].size(), 0.f);
  for (const auto& token : states) {
    for (size_t i = 0; i < out.size(); ++i) out[i] += token[i] / static_cast<float>(states.size());
  }
  return out;
}

std::vector<float> Max(const std::vector<std::vector<float>>& states) {
  std::vector<float> out = states[0];
  for (const auto& token : states) {
    for (size_t i = 0; i < out.size(); ++i) out[i] = std::max(out[i], token[i]);
  }
  return out;
}

std::vector<float> Unit(std::vector<float> v) {
  double norm = 0;
  for (float x : v) norm += double{x} * x;
  for (float& x : v) x = static_cast<float>(x / std::sqrt(norm));
  return v;
}

void ExpectNear(const google::protobuf::RepeatedField<float>& got, const std::vector<float>& want,
                const std::string& what) {
  ASSERT_EQ(static_cast<size_t>(got.size()), want.size()) << what;
  for (size_t i = 0; i < want.size(); ++i) {
    ASSERT_NEAR(got[static_cast<int>(i)], want[i], kTolerance) << what << " [" << i << "]";
  }
}

class EmbedTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!SharedFileExists("fixtures/tiny-bert/golden.json") ||
        !SharedFileExists("fixtures/tiny-bert/classifier-tokenizer-json")) {
      return;
    }
    data_dir_ = new std::string(MakeTempDir("bertd-embed"));
    const fs::path models = fs::path(*data_dir_) / "models";
    InstallFixtureModel("classifier", models.string(), "plain");
    InstallFixtureModel("classifier-tokenizer-json", models.string(), "fast");
    // A sentence-transformers layout: CLS pooling, Normalize, an 8-token window, and a Dense module
    // bertd does not apply (a warning).
    InstallFixtureModel("classifier", models.string(), "st");
    const fs::path st = models / "st" / "1";
    WriteFile(st / "modules.json", R"([
      {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
      {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
      {"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"},
      {"idx": 3, "name": "3", "path": "3_Normalize", "type": "sentence_transformers.models.Normalize"}])");
    WriteFile(st / "1_Pooling" / "config.json",
              R"({"word_embedding_dimension": 32, "pooling_mode_cls_token": true,
                  "pooling_mode_mean_tokens": false, "pooling_mode_max_tokens": false})");
    WriteFile(st / "sentence_bert_config.json", R"({"max_seq_length": 8, "do_lower_case": false})");
    InstallFixtureModel("classifier", models.string(), "broken-st");
    WriteFile(models / "broken-st" / "1" / "modules.json", R"({"not": "a list"})");
    server_ = new BertdProcess(*data_dir_, {"--max_tokenize_tokens=100"});
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
    BERTD_REQUIRE_SHARED("fixtures/tiny-bert/classifier-tokenizer-json");
    inference_ = v1::InferenceService::NewStub(server_->channel());
    models_ = v1::ModelService::NewStub(server_->channel());
  }

  v1::EmbedRequest Request(const std::string& model, int rows) const {
    v1::EmbedRequest request;
    request.set_model(model);
    for (int row = 0; row < rows; ++row) {
      auto* input = request.add_inputs();
      input->set_text((*golden_)["texts"][row]["text"].get<std::string>());
      if ((*golden_)["texts"][row].contains("text_pair")) {
        input->set_text_pair((*golden_)["texts"][row]["text_pair"].get<std::string>());
      }
    }
    return request;
  }

  grpc::Status Embed(const v1::EmbedRequest& request, v1::EmbedResponse* response) {
    grpc::ClientContext context;
    return inference_->Embed(&context, request, response);
  }

  v1::ModelInfo Describe(const std::string& name) {
    v1::ListModelsRequest request;
    v1::ListModelsResponse response;
    grpc::ClientContext context;
    EXPECT_TRUE(models_->ListModels(&context, request, &response).ok());
    for (const auto& model : response.models()) {
      if (model.name() == name) return model;
    }
    ADD_FAILURE() << "no model " << name;
    return {};
  }

  static std::string* data_dir_;
  static BertdProcess* server_;
  static nlohmann::json* golden_;
  std::unique_ptr<v1::InferenceService::Stub> inference_;
  std::unique_ptr<v1::ModelService::Stub> models_;
};

std::string* EmbedTest::data_dir_ = nullptr;
BertdProcess* EmbedTest::server_ = nullptr;
nlohmann::json* EmbedTest::golden_ = nullptr;

TEST_F(EmbedTest, TokenStatesAndEveryPoolingMatchHuggingFace) {
  for (const char* model : {"plain", "fast"}) {
    for (v1::Pooling pooling : {v1::POOLING_CLS, v1::POOLING_MEAN, v1::POOLING_MAX}) {
      for (bool normalize : {false, true}) {
        SCOPED_TRACE(::testing::Message() << model << " pooling " << v1::Pooling_Name(pooling)
                                          << " normalize " << normalize);
        // Texts and pairs; token states for the first three (75 tokens, under the limit of 100).
        const bool states = pooling == v1::POOLING_CLS;
        const int rows = states ? 3 : 5;
        v1::EmbedRequest request = Request(model, rows);
        request.set_pooling(pooling);
        request.set_normalize(normalize);
        request.set_include_token_embeddings(states);
        v1::EmbedResponse response;
        grpc::Status status = Embed(request, &response);
        ASSERT_TRUE(status.ok()) << status.error_message();
        EXPECT_EQ(response.model_version(), std::string(model) + "@1");
        EXPECT_EQ(response.dimensions(), 32);
        EXPECT_EQ(response.pooling(), pooling);
        EXPECT_EQ(response.normalized(), normalize);
        ASSERT_EQ(response.embeddings_size(), rows);
        for (int row = 0; row < rows; ++row) {
          const auto states = GoldenStates(*golden_, row);
          const v1::Embedding& embedding = response.embeddings(row);
          EXPECT_EQ(embedding.num_tokens(), static_cast<int>(states.size()));
          EXPECT_FALSE(embedding.truncated());
          std::vector<float> want = pooling == v1::POOLING_CLS    ? states[0]
                                    : pooling == v1::POOLING_MEAN ? Mean(states)
                                                                  : Max(states);
          if (normalize) want = Unit(want);
          ExpectNear(embedding.vector(), want, "row " + std::to_string(row));
          if (request.include_token_embeddings()) {
            std::vector<float> flat;
            for (const auto& token : states) flat.insert(flat.end(), token.begin(), token.end());
            ExpectNear(embedding.token_embeddings(), flat, "states of row " + std::to_string(row));
          } else {
            EXPECT_EQ(embedding.token_embeddings_size(), 0);
          }
        }
      }
    }
  }
}

TEST_F(EmbedTest, APlainModelDefaultsToMeanPoolingWithoutNormalization) {
  v1::ModelInfo info = Describe("plain");
  EXPECT_EQ(info.embedding_pooling(), v1::POOLING_MEAN);
  EXPECT_FALSE(info.embedding_normalized());
  EXPECT_EQ(info.embedding_max_tokens(), info.max_sequence_length());
  EXPECT_THAT(info.tasks(), ::testing::Contains(v1::TASK_EMBEDDING));
  v1::EmbedResponse response;
  ASSERT_TRUE(Embed(Request("plain", 1), &response).ok());
  EXPECT_EQ(response.pooling(), v1::POOLING_MEAN);
  EXPECT_FALSE(response.normalized());
  ExpectNear(response.embeddings(0).vector(), Mean(GoldenStates(*golden_, 0)), "row 0");
}

TEST_F(EmbedTest, SentenceTransformersSettingsAreTheModelsDefaults) {
  v1::ModelInfo info = Describe("st");
  EXPECT_EQ(info.state(), v1::MODEL_STATE_READY) << info.load_error();
  EXPECT_EQ(info.embedding_pooling(), v1::POOLING_CLS);
  EXPECT_TRUE(info.embedding_normalized());
  EXPECT_EQ(info.embedding_max_tokens(), 8);
  EXPECT_THAT(info.warnings(), ::testing::Contains(HasSubstr("Dense")));

  v1::EmbedRequest request;
  request.set_model("st");
  request.add_inputs()->set_text("hello world");  // 4 tokens: fits the 8-token window
  request.add_inputs()->set_text((*golden_)["texts"][1]["text"].get<std::string>());  // 35 tokens
  v1::EmbedResponse response;
  grpc::Status status = Embed(request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.pooling(), v1::POOLING_CLS);
  EXPECT_TRUE(response.normalized());
  EXPECT_EQ(response.embeddings(0).num_tokens(), 4);
  EXPECT_FALSE(response.embeddings(0).truncated());
  EXPECT_EQ(response.embeddings(1).num_tokens(), 8);
  EXPECT_TRUE(response.embeddings(1).truncated());
  for (const auto& embedding : response.embeddings()) {
    double norm = 0;
    for (float x : embedding.vector()) norm += double{x} * x;
    EXPECT_NEAR(norm, 1.0, 1e-5);
  }
}

TEST_F(EmbedTest, AMalformedModulesJsonFailsTheModelNamingTheFile) {
  v1::ModelInfo info = Describe("broken-st");
  EXPECT_EQ(info.state(), v1::MODEL_STATE_FAILED);
  EXPECT_THAT(info.load_error(), HasSubstr("modules.json"));
}

TEST_F(EmbedTest, RefusalsNameTheFieldOrTheLimit) {
  v1::EmbedResponse response;
  v1::EmbedRequest request = Request("plain", 1);
  request.set_pooling(static_cast<v1::Pooling>(42));
  grpc::Status status = Embed(request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("pooling"));

  request = Request("plain", 5);  // 140 tokens: more states than --max_tokenize_tokens=100
  request.set_include_token_embeddings(true);
  status = Embed(request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("--max_tokenize_tokens"));
  request.set_include_token_embeddings(false);  // vectors only: no such limit
  EXPECT_TRUE(Embed(request, &response).ok());

  request.clear_inputs();
  status = Embed(request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("inputs"));

  request = Request("nosuchmodel", 1);
  EXPECT_EQ(Embed(request, &response).error_code(), grpc::StatusCode::NOT_FOUND);
}

}  // namespace
}  // namespace bertd::testing
