#include "model/config.h"

#include <nlohmann/json.hpp>

#include "gtest/gtest.h"
#include "test_util.h"

namespace bertd::model {
namespace {

TEST(BertConfigTest, ReadsHuggingFaceFields) {
  absl::StatusOr<BertConfig> config = BertConfig::FromJson(R"({
    "architectures": ["BertForSequenceClassification"], "model_type": "bert",
    "vocab_size": 100, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
    "intermediate_size": 64, "hidden_act": "gelu_new", "max_position_embeddings": 64,
    "type_vocab_size": 2, "layer_norm_eps": 1e-5, "initializer_range": 0.05,
    "id2label": {"0": "neg", "1": "pos"}, "label2id": {"neg": 0, "pos": 1},
    "transformers_version": "4.40.0", "classifier_dropout": null})");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->vocab_size, 100);
  EXPECT_EQ(config->hidden_size, 32);
  EXPECT_EQ(config->head_size(), 8);
  EXPECT_EQ(config->hidden_act, "gelu_new");
  EXPECT_DOUBLE_EQ(config->layer_norm_eps, 1e-5);
  EXPECT_DOUBLE_EQ(config->initializer_range, 0.05);
  EXPECT_EQ(config->num_labels, 2);
  EXPECT_EQ(config->LabelName(1), "pos");
  EXPECT_EQ(config->LabelName(7), "LABEL_7");
  EXPECT_EQ(config->PrimaryArchitecture(), Architecture::kBertForSequenceClassification);
}

TEST(BertConfigTest, DefaultsAreBertBase) {
  absl::StatusOr<BertConfig> config = BertConfig::FromJson("{}");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->hidden_size, 768);
  EXPECT_EQ(config->num_hidden_layers, 12);
  EXPECT_EQ(config->num_labels, 2);
  EXPECT_EQ(config->PrimaryArchitecture(), Architecture::kBertModel);
}

TEST(BertConfigTest, NumLabelsWithoutNames) {
  absl::StatusOr<BertConfig> config = BertConfig::FromJson(R"({"num_labels": 5})");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->num_labels, 5);
  EXPECT_EQ(config->LabelName(4), "LABEL_4");
}

TEST(BertConfigTest, RoundTripKeepsUnknownFieldsAndLabels) {
  absl::StatusOr<BertConfig> config = BertConfig::FromJson(
      R"({"hidden_size": 64, "num_attention_heads": 4, "id2label": {"0": "a", "1": "b", "2": "c"},
          "architectures": ["BertForSequenceClassification"], "custom_field": [1, 2]})");
  ASSERT_TRUE(config.ok()) << config.status();
  nlohmann::json saved = nlohmann::json::parse(config->ToJson());
  EXPECT_EQ(saved["custom_field"], nlohmann::json({1, 2}));
  EXPECT_EQ(saved["id2label"]["2"], "c");
  EXPECT_EQ(saved["label2id"]["b"], 1);
  EXPECT_EQ(saved["model_type"], "bert");
  absl::StatusOr<BertConfig> reloaded = BertConfig::FromJson(config->ToJson());
  ASSERT_TRUE(reloaded.ok()) << reloaded.status();
  EXPECT_EQ(reloaded->id2label, config->id2label);
  EXPECT_EQ(reloaded->hidden_size, 64);
}

struct BadConfigCase {
  const char* json;
  const char* message;  // substring the error must contain
};

class BadConfigTest : public ::testing::TestWithParam<BadConfigCase> {};

TEST_P(BadConfigTest, IsRejectedWithReason) {
  absl::StatusOr<BertConfig> config = BertConfig::FromJson(GetParam().json);
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(config.status().message().find(GetParam().message), std::string::npos)
      << config.status();
}

// Deep nesting is refused before anything walks it (issue #18: walking it overflowed the stack).
const std::string kDeeplyNested = std::string(100000, '[') + std::string(100000, ']');

INSTANTIATE_TEST_SUITE_P(
    Cases, BadConfigTest,
    ::testing::Values(
        BadConfigCase{"{", "config.json: line 1, byte column 2: invalid JSON"},
        BadConfigCase{kDeeplyNested.c_str(), "JSON nested deeper than 64 levels"}, BadConfigCase{"[1]", "must be a JSON object"},
        BadConfigCase{R"({"hidden_size": "big"})", "hidden_size"},
        BadConfigCase{R"({"hidden_size": 30, "num_attention_heads": 4})", "not a multiple"},
        BadConfigCase{R"({"num_hidden_layers": 0})", "num_hidden_layers must be positive"},
        BadConfigCase{R"({"hidden_act": "tanhish"})", "hidden_act 'tanhish'"},
        BadConfigCase{R"({"model_type": "roberta"})", "only 'bert'"},
        BadConfigCase{R"({"position_embedding_type": "relative_key"})", "relative_key"},
        BadConfigCase{R"({"id2label": {"0": "a", "2": "c"}})", "no entry for label id 1"},
        BadConfigCase{R"({"id2label": {"x": "a"}})", "id2label"},
        BadConfigCase{R"({"architectures": "BertModel"})", "architectures"},
        BadConfigCase{R"({"pad_token_id": 50000})", "pad_token_id"}));

TEST(BertConfigTest, FromFileNamesThePath) {
  absl::StatusOr<BertConfig> config = BertConfig::FromFile("/nonexistent/config.json");
  EXPECT_EQ(config.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(config.status().message().find("/nonexistent/config.json"), std::string::npos);
}

TEST(BertConfigTest, ReadsFixtureConfig) {
  BERTD_REQUIRE_SHARED("fixtures/tiny-bert/classifier/config.json");
  absl::StatusOr<BertConfig> config =
      BertConfig::FromFile(testing::SharedPath("fixtures/tiny-bert/classifier/config.json"));
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->num_labels, 3);
  EXPECT_EQ(config->LabelName(0), "negative");
  EXPECT_EQ(config->max_position_embeddings, 64);
}

}  // namespace
}  // namespace bertd::model
