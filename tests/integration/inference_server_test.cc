// Starts the real bertd on loopback with the tiny fixture models and calls every RPC through a
// real gRPC channel.
#include <sys/stat.h>

#include <cmath>
#include <optional>
#include <filesystem>
#include <fstream>
#include <regex>
#include <thread>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "bertd/v1/inference.grpc.pb.h"
#include "bertd/v1/models.grpc.pb.h"
#include "bertd_process.h"
#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"
#include "gtest/gtest.h"
#include "test_util.h"

namespace bertd::testing {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

std::vector<float> SoftmaxOf(const std::vector<float>& logits) {
  float max = *std::max_element(logits.begin(), logits.end());
  double sum = 0;
  for (float x : logits) sum += std::exp(x - max);
  std::vector<float> out;
  for (float x : logits) out.push_back(static_cast<float>(std::exp(x - max) / sum));
  return out;
}

// One server for the whole suite: fixtures copied into a fresh model repository, plus a model
// directory that cannot load.
class InferenceServerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!SharedFileExists("fixtures/tiny-bert/golden.json")) return;
    data_dir_ = new std::string(MakeTempDir("bertd-it"));
    const fs::path models = fs::path(*data_dir_) / "models";
    for (const char* name : {"classifier", "pretraining", "qa"}) {
      InstallFixtureModel(name, models.string(), name);
    }
    fs::create_directories(models / "broken" / "1");
    std::ofstream(models / "broken" / "1" / "config.json") << "{\"hidden_size\": 30, \"num_attention_heads\": 4}";
    server_ = new BertdProcess(*data_dir_, {"--max_inputs_per_request=100", "--max_text_bytes=2000",
                                            "--max_queue_delay_ms=20"});
    ASSERT_TRUE(server_->WaitUntilServing()) << server_->log();
    std::ifstream in(SharedPath("fixtures/tiny-bert/golden.json"));
    golden_ = new nlohmann::json(nlohmann::json::parse(in));
  }

  static void TearDownTestSuite() {
    if (server_ != nullptr) {
      EXPECT_EQ(server_->Terminate(), 0) << "bertd must exit 0 on SIGTERM\n" << server_->log();
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

  static std::vector<float> GoldenRow(const std::string& output, int row) {
    const auto& entry = (*golden_)["outputs"][output];
    int64_t width = entry["shape"][1];
    std::vector<float> values = entry["values"];
    return std::vector<float>(values.begin() + row * width, values.begin() + (row + 1) * width);
  }

  static v1::TextInput GoldenInput(int row) {
    v1::TextInput input;
    input.set_text((*golden_)["texts"][row]["text"].get<std::string>());
    if ((*golden_)["texts"][row].contains("text_pair")) {
      input.set_text_pair((*golden_)["texts"][row]["text_pair"].get<std::string>());
    }
    return input;
  }

  static std::string* data_dir_;
  static BertdProcess* server_;
  static nlohmann::json* golden_;
  std::unique_ptr<v1::InferenceService::Stub> inference_;
  std::unique_ptr<v1::ModelService::Stub> models_;
};

std::string* InferenceServerTest::data_dir_ = nullptr;
BertdProcess* InferenceServerTest::server_ = nullptr;
nlohmann::json* InferenceServerTest::golden_ = nullptr;

TEST_F(InferenceServerTest, ClassifyScoresAreSoftmaxOfGoldenLogits) {
  v1::ClassifyRequest request;
  request.set_model("classifier");
  for (int row = 0; row < 5; ++row) *request.add_inputs() = GoldenInput(row);
  v1::ClassifyResponse response;
  grpc::ClientContext context;
  grpc::Status status = inference_->Classify(&context, request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.model_version(), "classifier@1");
  ASSERT_EQ(response.results_size(), 5);
  const std::vector<std::string> labels = {"negative", "neutral", "positive"};
  for (int row = 0; row < 5; ++row) {
    std::vector<float> expected = SoftmaxOf(GoldenRow("classifier_logits", row));
    const v1::Classification& result = response.results(row);
    ASSERT_EQ(result.scores_size(), 3);
    for (const auto& score : result.scores()) {
      int id = std::find(labels.begin(), labels.end(), score.label()) - labels.begin();
      ASSERT_LT(id, 3) << score.label();
      EXPECT_NEAR(score.score(), expected[id], 1e-4) << "row " << row << " " << score.label();
    }
    EXPECT_GE(result.scores(0).score(), result.scores(1).score());
    EXPECT_GE(result.scores(1).score(), result.scores(2).score());
    EXPECT_EQ(result.label(), result.scores(0).label());
    EXPECT_FLOAT_EQ(result.score(), result.scores(0).score());
  }
}

TEST_F(InferenceServerTest, TokenizeMatchesGoldenTokensIdsAndOffsets) {
  v1::TokenizeRequest request;
  request.set_model("classifier");
  for (int row = 0; row < 5; ++row) *request.add_inputs() = GoldenInput(row);
  v1::TokenizeResponse response;
  grpc::ClientContext context;
  ASSERT_TRUE(inference_->Tokenize(&context, request, &response).ok());
  ASSERT_EQ(response.results_size(), 5);
  for (int row = 0; row < 5; ++row) {
    const auto& golden_text = (*golden_)["texts"][row];
    const v1::TokenizedInput& result = response.results(row);
    std::vector<std::string> tokens(result.tokens().begin(), result.tokens().end());
    EXPECT_EQ(tokens, golden_text["tokens"].get<std::vector<std::string>>()) << "row " << row;
    std::vector<int64_t> golden_ids = (*golden_)["input_ids"][row];
    for (int t = 0; t < result.ids_size(); ++t) EXPECT_EQ(result.ids(t), golden_ids[t]);
    std::vector<int64_t> golden_types = (*golden_)["token_type_ids"][row];
    for (int t = 0; t < result.type_ids_size(); ++t) EXPECT_EQ(result.type_ids(t), golden_types[t]);
    auto offsets = golden_text["offsets"].get<std::vector<std::vector<int>>>();
    ASSERT_EQ(result.offsets_size(), static_cast<int>(offsets.size()));
    for (int t = 0; t < result.offsets_size(); ++t) {
      EXPECT_EQ(result.offsets(t).start(), offsets[t][0]) << "row " << row << " token " << t;
      EXPECT_EQ(result.offsets(t).end(), offsets[t][1]) << "row " << row << " token " << t;
    }
  }
}

TEST_F(InferenceServerTest, NextSentenceIsSoftmaxOfGoldenNspLogits) {
  v1::NextSentenceRequest request;
  request.set_model("pretraining@1");
  const std::vector<int> pair_rows = {1, 4};  // the golden rows that are sentence pairs
  for (int row : pair_rows) {
    v1::SentencePair* pair = request.add_pairs();
    pair->set_first((*golden_)["texts"][row]["text"].get<std::string>());
    pair->set_second((*golden_)["texts"][row]["text_pair"].get<std::string>());
  }
  v1::NextSentenceResponse response;
  grpc::ClientContext context;
  grpc::Status status = inference_->PredictNextSentence(&context, request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(response.results_size(), 2);
  for (size_t i = 0; i < pair_rows.size(); ++i) {
    std::vector<float> expected = SoftmaxOf(GoldenRow("nsp_logits", pair_rows[i]));
    EXPECT_NEAR(response.results(i).is_next_probability(), expected[0], 1e-4);
    EXPECT_EQ(response.results(i).is_next(), expected[0] >= expected[1]);
  }
}

TEST_F(InferenceServerTest, ExtractSpanReturnsContextSlicesAcrossWindows) {
  // Longer than the fixture's 64-position window, so the context is split into windows.
  std::string context =
      "Zürich is the largest city in Switzerland. BERT was developed by Google in 2018 for "
      "natural language processing. It stands for Bidirectional Encoder Representations from "
      "Transformers, and it is pretrained with masked language modelling and next sentence "
      "prediction on a large corpus of books and encyclopedia articles.";
  v1::ExtractSpanRequest request;
  request.set_model("qa");
  request.set_question("Who developed BERT?");
  request.set_context(context);
  request.set_top_k(5);
  request.set_max_answer_length(10);
  request.set_doc_stride(16);
  v1::ExtractSpanResponse response;
  grpc::ClientContext client_context;
  grpc::Status status = inference_->ExtractSpan(&client_context, request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(response.spans_size(), 5);
  std::u32string code_points;
  for (size_t i = 0; i < context.size();) {
    unsigned char c = context[i];
    int n = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    code_points.push_back(c);  // only positions matter below
    i += n;
  }
  for (int i = 0; i < response.spans_size(); ++i) {
    const v1::Span& span = response.spans(i);
    EXPECT_LE(span.start(), span.end());
    EXPECT_LE(span.end(), static_cast<int>(code_points.size()));
    EXPECT_FALSE(span.text().empty());
    // text is exactly the code point slice of the context (question text never appears).
    size_t byte_start = 0, cp = 0;
    while (cp < static_cast<size_t>(span.start())) {
      unsigned char c = context[byte_start];
      byte_start += c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
      ++cp;
    }
    EXPECT_EQ(context.compare(byte_start, span.text().size(), span.text()), 0) << span.text();
    EXPECT_GT(span.score(), 0.0f);
    if (i > 0) EXPECT_GE(response.spans(i - 1).score(), span.score());
  }
}

// SQuAD 2.0's "no answer", decided from the golden Hugging Face QA logits of the fixture's pairs
// (question = text, context = text_pair): null score = start + end logit at [CLS], against the best
// context span of at most max_answer_length tokens.
TEST_F(InferenceServerTest, ExtractSpanAnswersNoAnswerWhenTheNullScoreWinsByTheThreshold) {
  for (int row : {1, 4}) {
    const std::vector<float> start = GoldenRow("qa_start_logits", row);
    const std::vector<float> end = GoldenRow("qa_end_logits", row);
    const std::vector<int> types = (*golden_)["token_type_ids"][row];
    const std::vector<int> mask = (*golden_)["attention_mask"][row];
    int last = 0;  // the final [SEP]
    for (size_t t = 0; t < mask.size(); ++t) {
      if (mask[t]) last = static_cast<int>(t);
    }
    float best = -INFINITY;
    for (int s = 0; s < last; ++s) {
      for (int e = s; e < last && e - s + 1 <= 30; ++e) {
        if (types[s] == 1 && types[e] == 1) best = std::max(best, start[s] + end[e]);
      }
    }
    const float diff = start[0] + end[0] - best;
    auto ask = [&](std::optional<float> threshold) {
      v1::ExtractSpanRequest request;
      request.set_model("qa");
      request.set_question((*golden_)["texts"][row]["text"].get<std::string>());
      request.set_context((*golden_)["texts"][row]["text_pair"].get<std::string>());
      if (threshold) request.set_null_score_threshold(*threshold);
      v1::ExtractSpanResponse response;
      grpc::ClientContext context;
      grpc::Status status = inference_->ExtractSpan(&context, request, &response);
      EXPECT_TRUE(status.ok()) << status.error_message();
      return response;
    };
    SCOPED_TRACE(::testing::Message() << "row " << row << ", null - best = " << diff);
    v1::ExtractSpanResponse below = ask(diff - 0.5f);
    EXPECT_TRUE(below.no_answer());
    EXPECT_NEAR(below.null_score_diff(), diff, 1e-3);
    EXPECT_GT(below.spans_size(), 0) << "the candidates are still listed";
    v1::ExtractSpanResponse above = ask(diff + 0.5f);
    EXPECT_FALSE(above.no_answer());
    EXPECT_GT(above.spans_size(), 0);
    v1::ExtractSpanResponse unset = ask(std::nullopt);  // SQuAD 1.1 behaviour
    EXPECT_FALSE(unset.no_answer());
  }
  v1::ExtractSpanRequest request;
  request.set_model("qa");
  request.set_question("q");
  request.set_context("c");
  request.set_null_score_threshold(NAN);
  v1::ExtractSpanResponse response;
  grpc::ClientContext context;
  grpc::Status status = inference_->ExtractSpan(&context, request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("null_score_threshold"));
}

TEST_F(InferenceServerTest, FillMaskReturnsTopTokensInScoreOrder) {
  v1::FillMaskRequest request;
  request.set_model("pretraining");
  request.set_text("The quick [MASK] fox jumps over the [MASK] dog.");
  request.set_top_k(4);
  v1::FillMaskResponse response;
  grpc::ClientContext context;
  grpc::Status status = inference_->FillMask(&context, request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(response.masks_size(), 2);
  EXPECT_EQ(response.masks(0).mask_start(), 10);
  EXPECT_EQ(response.masks(1).mask_start(), 36);
  for (const auto& mask : response.masks()) {
    ASSERT_EQ(mask.predictions_size(), 4);
    for (int i = 0; i < 4; ++i) {
      const auto& prediction = mask.predictions(i);
      EXPECT_GT(prediction.score(), 0.0f);
      if (i > 0) EXPECT_GE(mask.predictions(i - 1).score(), prediction.score());
      std::string word = prediction.token().rfind("##", 0) == 0 ? prediction.token().substr(2)
                                                               : prediction.token();
      EXPECT_THAT(prediction.sequence(), HasSubstr(word));
      EXPECT_THAT(prediction.sequence(), HasSubstr("[MASK]"));  // the other mask stays
    }
  }
  // Token ids agree with what Tokenize says about the token strings.
  v1::TokenizeRequest tokenize;
  tokenize.set_model("pretraining");
  tokenize.add_inputs()->set_text(response.masks(0).predictions(0).token());
  v1::TokenizeResponse tokenized;
  grpc::ClientContext tokenize_context;
  ASSERT_TRUE(inference_->Tokenize(&tokenize_context, tokenize, &tokenized).ok());
  if (tokenized.results(0).ids_size() == 3) {
    EXPECT_EQ(tokenized.results(0).ids(1), response.masks(0).predictions(0).token_id());
  }
}

TEST_F(InferenceServerTest, ConcurrentRequestsAreBatchedAndMatchSequentialResults) {
  const int kRequests = 64;
  auto make_request = [&](int i) {
    v1::ClassifyRequest request;
    request.set_model("classifier");
    v1::TextInput input = GoldenInput(i % 5);
    input.set_text(absl::StrCat(input.text(), " variant ", i));
    *request.add_inputs() = input;
    return request;
  };
  std::vector<v1::ClassifyResponse> sequential(kRequests);
  for (int i = 0; i < kRequests; ++i) {
    grpc::ClientContext context;
    ASSERT_TRUE(inference_->Classify(&context, make_request(i), &sequential[i]).ok());
  }
  std::vector<v1::ClassifyResponse> concurrent(kRequests);
  std::vector<grpc::Status> statuses(kRequests);
  std::vector<std::thread> threads;
  for (int i = 0; i < kRequests; ++i) {
    threads.emplace_back([&, i] {
      grpc::ClientContext context;
      statuses[i] = inference_->Classify(&context, make_request(i), &concurrent[i]);
    });
  }
  for (auto& thread : threads) thread.join();
  for (int i = 0; i < kRequests; ++i) {
    ASSERT_TRUE(statuses[i].ok()) << statuses[i].error_message();
    ASSERT_EQ(concurrent[i].results(0).scores_size(), 3);
    EXPECT_EQ(concurrent[i].results(0).label(), sequential[i].results(0).label());
    for (int j = 0; j < 3; ++j) {
      // Padding in a batch changes float rounding slightly, never the answer.
      EXPECT_NEAR(concurrent[i].results(0).scores(j).score(), sequential[i].results(0).scores(j).score(), 1e-5);
    }
  }
  // The batch-size histogram saw batches larger than one.
  std::string metrics = HttpGet(server_->metrics_port(), "/metrics");
  std::smatch match;
  std::regex le1(R"re(bertd_batch_size_bucket\{model="classifier@1",le="1"\} (\d+))re");
  std::regex count(R"re(bertd_batch_size_count\{model="classifier@1"\} (\d+))re");
  ASSERT_TRUE(std::regex_search(metrics, match, le1)) << metrics.substr(0, 2000);
  int64_t single = std::stoll(match[1]);
  ASSERT_TRUE(std::regex_search(metrics, match, count));
  int64_t batches = std::stoll(match[1]);
  EXPECT_LT(single, batches) << "no batch was larger than 1";
  EXPECT_LT(batches, 2 * kRequests) << "concurrent requests were not merged";
}

grpc::Status ClassifyStatus(v1::InferenceService::Stub* stub, const std::string& model,
                            std::vector<std::string> texts, int deadline_ms = 30000) {
  v1::ClassifyRequest request;
  request.set_model(model);
  for (const std::string& text : texts) request.add_inputs()->set_text(text);
  v1::ClassifyResponse response;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(deadline_ms));
  return stub->Classify(&context, request, &response);
}

TEST_F(InferenceServerTest, ErrorPathsGiveClearCodes) {
  grpc::Status unknown_model = ClassifyStatus(inference_.get(), "nope", {"hi"});
  EXPECT_EQ(unknown_model.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(unknown_model.error_message(), HasSubstr("nope"));

  grpc::Status unknown_version = ClassifyStatus(inference_.get(), "classifier@9", {"hi"});
  EXPECT_EQ(unknown_version.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(unknown_version.error_message(), HasSubstr("no version '9'"));

  grpc::Status wrong_task = ClassifyStatus(inference_.get(), "qa", {"hi"});
  EXPECT_EQ(wrong_task.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(wrong_task.error_message(), HasSubstr("span_extraction"));

  grpc::Status no_inputs = ClassifyStatus(inference_.get(), "classifier", {});
  EXPECT_EQ(no_inputs.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(no_inputs.error_message(), HasSubstr("inputs is empty"));

  grpc::Status empty_text = ClassifyStatus(inference_.get(), "classifier", {"ok", ""});
  EXPECT_EQ(empty_text.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(empty_text.error_message(), HasSubstr("inputs[1].text is empty"));

  grpc::Status too_long = ClassifyStatus(inference_.get(), "classifier", {std::string(3000, 'a')});
  EXPECT_EQ(too_long.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(too_long.error_message(), HasSubstr("--max_text_bytes"));

  grpc::Status too_many =
      ClassifyStatus(inference_.get(), "classifier", std::vector<std::string>(101, "x"));
  EXPECT_EQ(too_many.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(too_many.error_message(), HasSubstr("--max_inputs_per_request"));

  grpc::Status broken = ClassifyStatus(inference_.get(), "broken", {"hi"});
  EXPECT_EQ(broken.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(broken.error_message(), HasSubstr("FAILED"));

  grpc::Status bad_utf8 = ClassifyStatus(inference_.get(), "classifier", {"caf\xc3"});
  EXPECT_NE(bad_utf8.error_code(), grpc::StatusCode::OK);  // gRPC or bertd rejects it

  v1::FillMaskRequest no_mask;
  no_mask.set_model("pretraining");
  no_mask.set_text("nothing to fill");
  v1::FillMaskResponse fill_response;
  grpc::ClientContext fill_context;
  grpc::Status fill = inference_->FillMask(&fill_context, no_mask, &fill_response);
  EXPECT_EQ(fill.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(fill.error_message(), HasSubstr("[MASK]"));

  // The server is still healthy afterwards.
  EXPECT_TRUE(ClassifyStatus(inference_.get(), "classifier", {"still fine"}).ok());
}

TEST_F(InferenceServerTest, ExpiredDeadlineAndCancelledCallsAreDropped) {
  // 20 ms batching delay: a 1 ms deadline expires in the queue.
  grpc::Status expired = ClassifyStatus(inference_.get(), "classifier", {"late"}, 1);
  EXPECT_EQ(expired.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);

  v1::ClassifyRequest request;
  request.set_model("classifier");
  request.add_inputs()->set_text("cancel me");
  v1::ClassifyResponse response;
  grpc::ClientContext context;
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  grpc::Status cancelled;
  inference_->async()->Classify(&context, &request, &response, [&](grpc::Status status) {
    std::lock_guard<std::mutex> lock(mu);
    cancelled = status;
    done = true;
    cv.notify_all();
  });
  context.TryCancel();
  std::unique_lock<std::mutex> lock(mu);
  ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(30), [&] { return done; }));
  EXPECT_EQ(cancelled.error_code(), grpc::StatusCode::CANCELLED);
}

TEST_F(InferenceServerTest, ModelServiceDescribesModelsAndFailures) {
  v1::ListModelsResponse list;
  grpc::ClientContext list_context;
  ASSERT_TRUE(models_->ListModels(&list_context, {}, &list).ok());
  ASSERT_EQ(list.models_size(), 4);
  EXPECT_EQ(list.models(0).name(), "broken");

  v1::GetModelRequest get;
  get.set_model("classifier");
  v1::ModelInfo info;
  grpc::ClientContext get_context;
  ASSERT_TRUE(models_->GetModel(&get_context, get, &info).ok());
  EXPECT_EQ(info.state(), v1::MODEL_STATE_READY);
  EXPECT_EQ(info.architecture(), "BertForSequenceClassification");
  EXPECT_THAT(std::vector<std::string>(info.labels().begin(), info.labels().end()),
              ::testing::ElementsAre("negative", "neutral", "positive"));
  EXPECT_THAT(std::vector<int>(info.tasks().begin(), info.tasks().end()),
              ::testing::ElementsAre(v1::TASK_SEQUENCE_CLASSIFICATION, v1::TASK_EMBEDDING,
                                     v1::TASK_TOKENIZATION));
  EXPECT_EQ(info.max_sequence_length(), 64);
  EXPECT_EQ(info.hidden_size(), 32);
  EXPECT_GT(info.parameter_count(), 30522 * 32);
  EXPECT_EQ(info.device(), "cpu");

  get.set_model("broken");
  grpc::ClientContext broken_context;
  ASSERT_TRUE(models_->GetModel(&broken_context, get, &info).ok());
  EXPECT_EQ(info.state(), v1::MODEL_STATE_FAILED);
  EXPECT_THAT(info.load_error(), HasSubstr("num_attention_heads"));
}

TEST_F(InferenceServerTest, UnloadAndReloadAModel) {
  v1::UnloadModelRequest unload;
  unload.set_model("qa@1");
  v1::UnloadModelResponse unloaded;
  grpc::ClientContext unload_context;
  ASSERT_TRUE(models_->UnloadModel(&unload_context, unload, &unloaded).ok());
  EXPECT_THAT(std::vector<std::string>(unloaded.unloaded().begin(), unloaded.unloaded().end()),
              ::testing::ElementsAre("qa@1"));
  v1::TokenizeRequest tokenize;
  tokenize.set_model("qa");
  tokenize.add_inputs()->set_text("hello");
  v1::TokenizeResponse tokenized;
  grpc::ClientContext gone_context;
  EXPECT_EQ(inference_->Tokenize(&gone_context, tokenize, &tokenized).error_code(),
            grpc::StatusCode::NOT_FOUND);

  v1::LoadModelRequest load;
  load.set_name("qa");
  v1::ModelInfo info;
  grpc::ClientContext load_context;
  ASSERT_TRUE(models_->LoadModel(&load_context, load, &info).ok());
  EXPECT_EQ(info.state(), v1::MODEL_STATE_READY);
  EXPECT_EQ(info.version(), "1");
  grpc::ClientContext back_context;
  EXPECT_TRUE(inference_->Tokenize(&back_context, tokenize, &tokenized).ok());

  load.set_name("../models");
  grpc::ClientContext escape_context;
  EXPECT_EQ(models_->LoadModel(&escape_context, load, &info).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(InferenceServerTest, HealthPerModelAndReflection) {
  auto health = grpc::health::v1::Health::NewStub(server_->channel());
  auto check = [&](const std::string& service) {
    grpc::health::v1::HealthCheckRequest request;
    request.set_service(service);
    grpc::health::v1::HealthCheckResponse response;
    grpc::ClientContext context;
    grpc::Status status = health->Check(&context, request, &response);
    return status.ok() ? static_cast<int>(response.status()) : -static_cast<int>(status.error_code());
  };
  EXPECT_EQ(check(""), grpc::health::v1::HealthCheckResponse::SERVING);
  EXPECT_EQ(check("classifier"), grpc::health::v1::HealthCheckResponse::SERVING);
  EXPECT_EQ(check("classifier@1"), grpc::health::v1::HealthCheckResponse::SERVING);
  EXPECT_EQ(check("broken@1"), grpc::health::v1::HealthCheckResponse::NOT_SERVING);
  EXPECT_EQ(check("bertd.v1.InferenceService"), grpc::health::v1::HealthCheckResponse::SERVING);

  auto reflection = grpc::reflection::v1alpha::ServerReflection::NewStub(server_->channel());
  grpc::ClientContext context;
  auto stream = reflection->ServerReflectionInfo(&context);
  grpc::reflection::v1alpha::ServerReflectionRequest request;
  request.set_list_services("");
  ASSERT_TRUE(stream->Write(request));
  grpc::reflection::v1alpha::ServerReflectionResponse response;
  ASSERT_TRUE(stream->Read(&response));
  stream->WritesDone();
  std::vector<std::string> services;
  for (const auto& service : response.list_services_response().service()) {
    services.push_back(service.name());
  }
  EXPECT_THAT(services, ::testing::IsSupersetOf({"bertd.v1.InferenceService",
                                                 "bertd.v1.ModelService", "grpc.health.v1.Health"}));
}

TEST_F(InferenceServerTest, MetricsParseAsPrometheusTextAndCoverTheServer) {
  ASSERT_TRUE(ClassifyStatus(inference_.get(), "classifier", {"warm up"}).ok());
  ASSERT_EQ(ClassifyStatus(inference_.get(), "nope", {"x"}).error_code(), grpc::StatusCode::NOT_FOUND);
  // Batch metrics are recorded just after a batch's requests are answered: allow a moment.
  std::string text;
  for (int attempt = 0; attempt < 100; ++attempt) {
    text = HttpGet(server_->metrics_port(), "/metrics");
    if (text.find("bertd_inference_duration_seconds_bucket") != std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_FALSE(text.empty());
  std::regex sample(R"re(^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*",?)*\})? [-+]?([0-9.eE+-]+|NaN|[+-]?Inf)( -?[0-9]+)?$)re");
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (line.empty() || line[0] == '#') continue;
    EXPECT_TRUE(std::regex_match(std::string(line), sample)) << line;
  }
  for (const char* name :
       {"bertd_requests_total", "bertd_request_duration_seconds_bucket",
        "bertd_queue_duration_seconds_bucket", "bertd_inference_duration_seconds_bucket",
        "bertd_batch_size_bucket", "bertd_batch_tokens_bucket", "bertd_queue_depth",
        "bertd_model_state", "bertd_model_load_duration_seconds_bucket",
        "process_cpu_seconds_total", "process_resident_memory_bytes"}) {
    EXPECT_THAT(text, HasSubstr(name));
  }
  EXPECT_THAT(text, HasSubstr(R"(bertd_requests_total{code="NOT_FOUND",method="Classify",model="unknown"})"));
  EXPECT_THAT(text, HasSubstr(R"(bertd_model_state{model="broken@1",state="FAILED",version="1"} 1)"));
}

}  // namespace
}  // namespace bertd::testing
