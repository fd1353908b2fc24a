#include "client/config_file.h"

#include "gtest/gtest.h"

namespace bertd::client {
namespace {

TEST(ConfigFileTest, YamlBecomesTheSameJsonAsTheJsonForm) {
  const std::string yaml = R"(task: sequence_classification
train: data/train.tsv
eval_split: 0.1
hyperparameters:
  learning_rate: 3e-5
  num_train_epochs: 2
  bf16: true
  lr_scheduler_type: cosine
  seed: "7"
)";
  absl::StatusOr<nlohmann::json> from_yaml = ParseConfigText(yaml, /*yaml=*/true, "job.yaml");
  ASSERT_TRUE(from_yaml.ok()) << from_yaml.status();
  EXPECT_EQ((*from_yaml)["task"], "sequence_classification");
  EXPECT_DOUBLE_EQ((*from_yaml)["eval_split"].get<double>(), 0.1);
  const nlohmann::json& hp = (*from_yaml)["hyperparameters"];
  EXPECT_DOUBLE_EQ(hp["learning_rate"].get<double>(), 3e-5);
  EXPECT_TRUE(hp["num_train_epochs"].is_number_integer());
  EXPECT_EQ(hp["bf16"], true);
  EXPECT_EQ(hp["lr_scheduler_type"], "cosine");
  EXPECT_EQ(hp["seed"], "7");  // quoted: stays a string, as YAML says
}

TEST(ConfigFileTest, ErrorsNameTheFileAndLine) {
  auto bad_yaml = ParseConfigText("task: [unclosed\n  train: x\n", true, "job.yaml");
  ASSERT_FALSE(bad_yaml.ok());
  EXPECT_NE(bad_yaml.status().message().find("job.yaml: line"), std::string::npos) << bad_yaml.status();
  auto not_a_mapping = ParseConfigText("- a\n- b\n", true, "job.yaml");
  EXPECT_FALSE(not_a_mapping.ok());
  auto bad_json = ParseConfigText("{\"task\": ", false, "job.json");
  ASSERT_FALSE(bad_json.ok());
  EXPECT_NE(bad_json.status().message().find("job.json"), std::string::npos);
  EXPECT_EQ(ReadConfigFile("/nonexistent/job.yaml").status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace bertd::client
