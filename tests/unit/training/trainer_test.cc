// Fine-tuning end to end on tiny models: loss falls, a learnable set is learnt, every task runs,
// and a stopped run resumes to exactly the weights of an uninterrupted one.
#include "training/trainer.h"

#include <torch/torch.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "model/checkpoint.h"
#include "model/io/safetensors.h"
#include "test_util.h"

namespace bertd::training {
namespace {

namespace fs = std::filesystem;

const std::vector<std::string> kWords = {"good", "bad", "great", "awful", "movie", "film",
                                         "the", "is", "was", "plot", "acting", "fine"};

// A small pretraining checkpoint with a word-level vocabulary, so tests do not need shared/.
std::string MakeBaseModel(const std::string& dir) {
  model::BertConfig config;
  config.vocab_size = 40;
  config.hidden_size = 32;
  config.num_hidden_layers = 2;
  config.num_attention_heads = 4;
  config.intermediate_size = 64;
  config.max_position_embeddings = 64;
  config.architectures = {"BertForPreTraining"};
  torch::manual_seed(3);
  model::Bert base(config, model::HeadSet::ForArchitecture(model::Architecture::kBertForPreTraining));
  std::vector<std::string> vocab = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};
  vocab.insert(vocab.end(), kWords.begin(), kWords.end());
  while (static_cast<int>(vocab.size()) < config.vocab_size) vocab.push_back("##x" + std::to_string(vocab.size()));
  text::TokenizerOptions options;
  options.do_lower_case = true;
  auto tokenizer = text::BertTokenizer::Create(text::Vocab::FromTokens(vocab), options);
  EXPECT_TRUE(tokenizer.ok());
  std::string path = dir + "/base";
  EXPECT_TRUE(model::SaveModelDirectory(path, *base, *tokenizer).ok());
  return path;
}

// "good"/"great" -> positive, "bad"/"awful" -> negative: learnable from one word.
std::vector<data::Example> SentimentExamples() {
  std::vector<data::Example> examples;
  const std::vector<std::pair<std::string, std::string>> rows = {
      {"the movie is good", "pos"}, {"the film was bad", "neg"},     {"great acting", "pos"},
      {"awful plot", "neg"},        {"the plot is great", "pos"},    {"bad acting", "neg"},
      {"good film", "pos"},         {"the movie was awful", "neg"},  {"fine and good", "pos"},
      {"the acting is bad", "neg"}, {"great movie", "pos"},          {"awful film", "neg"},
      {"good plot", "pos"},         {"the film is awful", "neg"},    {"great film", "pos"},
      {"bad movie", "neg"}};
  for (const auto& [text, label] : rows) {
    data::Example example;
    example.text = text;
    example.label = label;
    examples.push_back(example);
  }
  return examples;
}

class TrainerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::MakeTempDir("trainer-test");
    base_ = MakeBaseModel(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  TrainingJobSpec Spec() const {
    TrainingJobSpec spec;
    spec.task = TrainingTask::kSequenceClassification;
    spec.base_model = "base";
    spec.train_dataset = "train";
    spec.output_model = "out";
    spec.args.learning_rate = 2e-3;
    spec.args.max_steps = 40;
    spec.args.per_device_train_batch_size = 4;
    spec.args.warmup_steps = 2;
    spec.args.max_seq_length = 16;
    spec.args.save_steps = 10;
    return spec;
  }

  std::string dir_;
  std::string base_;
};

TEST_F(TrainerTest, LossFallsAndALearnableSetIsLearnt) {
  TrainingData data{SentimentExamples(), SentimentExamples(), {}};
  std::vector<double> losses;
  TrainerHooks hooks;
  hooks.emit = [&](const std::string& type, const std::string& payload) {
    if (type == "progress") losses.push_back(nlohmann::json::parse(payload)["loss"].get<double>());
  };
  TrainingJobSpec spec = Spec();
  spec.args.max_steps = 120;
  spec.args.learning_rate = 3e-3;
  spec.args.eval_strategy = "steps";
  spec.args.eval_steps = 40;
  spec.args.save_steps = 40;
  auto result = RunFineTuning(spec, base_, data, dir_ + "/work", dir_ + "/out/1", hooks);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->global_step, 120);
  EXPECT_DOUBLE_EQ(result->eval_metrics.at("accuracy"), 1.0);
  ASSERT_GE(losses.size(), 1u);
  // The first step's loss is about ln 2 for two balanced labels; training drives it far below.
  EXPECT_GT(losses.front(), 0.5);
  EXPECT_LT(result->eval_metrics.at("eval_loss"), 0.2);
  EXPECT_LT(result->eval_metrics.at("eval_loss"), losses.front() / 3);

  // The saved model is a complete version with labels in sorted order and a summary.
  auto loaded = model::LoadBertFromDirectory(dir_ + "/out/1");
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->config.LabelName(0), "neg");
  EXPECT_EQ(loaded->config.LabelName(1), "pos");
  EXPECT_TRUE(fs::exists(dir_ + "/out/1/training_summary.json"));
  EXPECT_TRUE(fs::exists(dir_ + "/out/1/vocab.txt"));
  EXPECT_TRUE(fs::exists(dir_ + "/work/checkpoint-120"));
}

TEST_F(TrainerTest, StoppedRunResumesToTheSameWeights) {
  TrainingData data{SentimentExamples(), {}, {}};
  TrainingJobSpec spec = Spec();
  spec.args.max_steps = 12;
  spec.args.save_steps = 5;
  spec.args.weight_decay = 0.01;
  ASSERT_TRUE(RunFineTuning(spec, base_, data, dir_ + "/work-a", dir_ + "/a", {}).ok());

  int steps_seen = 0;
  TrainerHooks stop_after_7;
  stop_after_7.should_stop = [&] { return ++steps_seen == 7; };
  auto stopped = RunFineTuning(spec, base_, data, dir_ + "/work-b", dir_ + "/b", stop_after_7);
  EXPECT_EQ(stopped.status().code(), absl::StatusCode::kCancelled) << stopped.status();
  EXPECT_FALSE(fs::exists(dir_ + "/b"));
  // Another process would start from nothing but the work directory: mess up the global RNG.
  torch::manual_seed(999);
  torch::randn({100});
  auto resumed = RunFineTuning(spec, base_, data, dir_ + "/work-b", dir_ + "/b", {});
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  EXPECT_EQ(resumed->global_step, 12);

  auto a = model::ReadSafetensors(dir_ + "/a/model.safetensors");
  auto b = model::ReadSafetensors(dir_ + "/b/model.safetensors");
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_EQ(a->size(), b->size());
  for (const auto& [name, tensor] : *a) {
    EXPECT_TRUE(torch::allclose(tensor, b->at(name), 0, 1e-6)) << name;
  }
  // The weights moved away from the base checkpoint, so the equality is not trivial.
  auto base = model::ReadSafetensors(base_ + "/model.safetensors");
  EXPECT_FALSE(torch::equal(base->at("bert.embeddings.word_embeddings.weight"),
                            a->at("bert.embeddings.word_embeddings.weight")));
}

TEST_F(TrainerTest, Bf16MixedPrecisionLearnsToo) {
  TrainingData data{SentimentExamples(), SentimentExamples(), {}};
  TrainingJobSpec spec = Spec();
  spec.args.max_steps = 120;
  spec.args.learning_rate = 3e-3;
  spec.args.bf16 = true;
  auto result = RunFineTuning(spec, base_, data, dir_ + "/work", dir_ + "/bf16", {});
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_DOUBLE_EQ(result->eval_metrics.at("accuracy"), 1.0);
  // Master weights stay fp32 (the saved model is F32).
  auto saved = model::ReadSafetensors(dir_ + "/bf16/model.safetensors");
  ASSERT_TRUE(saved.ok());
  EXPECT_EQ(saved->at("classifier.weight").scalar_type(), torch::kFloat);
  // bf16 really took effect: the same run in fp32 ends with other weights.
  spec.args.bf16 = false;
  ASSERT_TRUE(RunFineTuning(spec, base_, data, dir_ + "/work32", dir_ + "/fp32", {}).ok());
  auto fp32 = model::ReadSafetensors(dir_ + "/fp32/model.safetensors");
  ASSERT_TRUE(fp32.ok());
  EXPECT_FALSE(torch::equal(saved->at("classifier.weight"), fp32->at("classifier.weight")));
}

TEST_F(TrainerTest, NextSentenceAndPairClassificationRun) {
  std::vector<data::Example> pairs;
  for (int i = 0; i < 8; ++i) {
    data::Example example;
    example.text = i % 2 ? "the movie is good" : "the plot was bad";
    example.text_pair = i % 2 ? "great acting" : "awful film";
    example.label = i % 2 ? "0" : "1";
    pairs.push_back(example);
  }
  for (TrainingTask task : {TrainingTask::kNextSentence, TrainingTask::kSentencePairClassification}) {
    TrainingJobSpec spec = Spec();
    spec.task = task;
    spec.args.max_steps = 4;
    std::string name = TrainingTaskName(task);
    auto result = RunFineTuning(spec, base_, {pairs, pairs, {}}, dir_ + "/w-" + name,
                                dir_ + "/o-" + name, {});
    ASSERT_TRUE(result.ok()) << name << ": " << result.status();
    EXPECT_TRUE(result->eval_metrics.count("accuracy")) << name;
  }
}

TEST_F(TrainerTest, SpanExtractionReportsSquadMetrics) {
  std::vector<data::Example> examples;
  for (int i = 0; i < 6; ++i) {
    data::Example example;
    example.id = std::to_string(i);
    example.text = "what is the plot";
    example.text_pair = "the movie is fine and the plot is great";
    example.answers = {{"great", 34}};
    examples.push_back(example);
  }
  TrainingJobSpec spec = Spec();
  spec.task = TrainingTask::kSpanExtraction;
  spec.args.max_steps = 30;
  spec.args.max_seq_length = 24;
  auto result = RunFineTuning(spec, base_, {examples, examples, {}}, dir_ + "/w", dir_ + "/qa", {});
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_TRUE(result->eval_metrics.count("exact_match"));
  EXPECT_TRUE(result->eval_metrics.count("f1"));
  EXPECT_DOUBLE_EQ(result->eval_metrics.at("exact_match"), 100.0);
  EXPECT_FALSE(result->eval_metrics.count("NoAns_total")) << "SQuAD 1.1 data has no split";
  auto loaded = model::LoadBertFromDirectory(dir_ + "/qa");
  ASSERT_TRUE(loaded.ok());
  EXPECT_EQ(loaded->config.PrimaryArchitecture(), model::Architecture::kBertForQuestionAnswering);
}

TEST_F(TrainerTest, SquadV2DataReportsTheHasAnsAndNoAnsSplit) {
  std::vector<data::Example> examples;
  for (int i = 0; i < 6; ++i) {
    data::Example example;
    example.id = std::to_string(i);
    example.text = i < 4 ? "what is the plot" : "who directed it";
    example.text_pair = "the movie is fine and the plot is great";
    if (i < 4) example.answers = {{"great", 34}};
    example.is_impossible = i >= 4;
    examples.push_back(example);
  }
  TrainingJobSpec spec = Spec();
  spec.task = TrainingTask::kSpanExtraction;
  spec.args.max_steps = 4;
  spec.args.max_seq_length = 24;
  auto result = RunFineTuning(spec, base_, {examples, examples, {}}, dir_ + "/w2", dir_ + "/qa2", {});
  ASSERT_TRUE(result.ok()) << result.status();
  const auto& m = result->eval_metrics;
  ASSERT_TRUE(m.count("HasAns_exact") && m.count("HasAns_f1") && m.count("NoAns_exact") &&
              m.count("NoAns_f1"));
  EXPECT_EQ(m.at("HasAns_total"), 4);
  EXPECT_EQ(m.at("NoAns_total"), 2);
  // The overall scores are the halves weighted by their sizes, as in the official script.
  EXPECT_NEAR(m.at("exact_match"), (4 * m.at("HasAns_exact") + 2 * m.at("NoAns_exact")) / 6, 1e-9);
  EXPECT_NEAR(m.at("f1"), (4 * m.at("HasAns_f1") + 2 * m.at("NoAns_f1")) / 6, 1e-9);
  // A question without an answer scores 100 or 0: only an empty prediction matches it.
  EXPECT_TRUE(m.at("NoAns_exact") == 0 || m.at("NoAns_exact") == 50 || m.at("NoAns_exact") == 100);
}

// STS-B-like scores: "good"/"great" high, "bad"/"awful" low.
std::vector<data::Example> ScoredExamples() {
  std::vector<data::Example> examples;
  for (const data::Example& sentiment : SentimentExamples()) {
    data::Example example = sentiment;
    const bool positive = sentiment.label == "pos";
    example.label = positive ? "4.5" : "0.5";
    if (example.text.find("fine") != std::string::npos) example.label = "3.25";
    examples.push_back(example);
  }
  return examples;
}

TEST_F(TrainerTest, FractionalLabelsTrainARegressionHeadWithMseAndCorrelations) {
  TrainingJobSpec spec = Spec();
  spec.args.max_steps = 120;  // as the classification test that learns the same words
  spec.args.learning_rate = 3e-3;
  const std::vector<data::Example> examples = ScoredExamples();
  auto result = RunFineTuning(spec, base_, {examples, examples, {}}, dir_ + "/w-reg", dir_ + "/reg", {});
  ASSERT_TRUE(result.ok()) << result.status();
  const auto& m = result->eval_metrics;
  ASSERT_TRUE(m.count("pearson") && m.count("spearmanr") && m.count("eval_loss"));
  EXPECT_FALSE(m.count("accuracy"));
  EXPECT_GT(m.at("pearson"), 0.9) << "a learnable score is learnt";
  EXPECT_GT(m.at("spearmanr"), 0.8);
  auto config = model::BertConfig::FromFile(dir_ + "/reg/config.json");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->num_labels, 1);
  EXPECT_EQ(config->problem_type, "regression");
}

TEST_F(TrainerTest, ProblemTypeOverridesTheGuessBothWays) {
  // Integer scores are classes unless the job says regression...
  std::vector<data::Example> examples = SentimentExamples();
  for (data::Example& example : examples) example.label = example.label == "pos" ? "4" : "1";
  TrainingJobSpec spec = Spec();
  spec.args.max_steps = 2;
  spec.problem_type = "regression";
  auto result = RunFineTuning(spec, base_, {examples, examples, {}}, dir_ + "/w1", dir_ + "/o1", {});
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_TRUE(result->eval_metrics.count("pearson"));
  // ...and fractional ones are classes when it says single_label_classification.
  spec.problem_type = "single_label_classification";
  examples = ScoredExamples();
  result = RunFineTuning(spec, base_, {examples, examples, {}}, dir_ + "/w2", dir_ + "/o2", {});
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_TRUE(result->eval_metrics.count("accuracy"));
  auto config = model::BertConfig::FromFile(dir_ + "/o2/config.json");
  ASSERT_TRUE(config.ok());
  EXPECT_EQ(config->num_labels, 3);  // 0.5, 3.25, 4.5
  EXPECT_EQ(config->problem_type, "single_label_classification");
}

TEST_F(TrainerTest, ARegressionJobNamesTheExampleWithoutAScore) {
  std::vector<data::Example> examples = ScoredExamples();
  examples[3].label = "high";
  TrainingJobSpec spec = Spec();
  spec.args.max_steps = 2;
  spec.problem_type = "regression";
  auto result = RunFineTuning(spec, base_, {examples, {}, {}}, dir_ + "/w3", dir_ + "/o3", {});
  ASSERT_FALSE(result.ok());
  EXPECT_NE(result.status().message().find("is not a number"), std::string::npos)
      << result.status();
}

// Topics that can co-occur: "good"/"great" -> praise, "acting" -> acting, "plot" -> plot.
std::vector<data::Example> TaggedExamples() {
  std::vector<data::Example> examples;
  for (const data::Example& sentiment : SentimentExamples()) {
    data::Example example = sentiment;
    example.label.clear();
    example.multi_label = true;
    if (sentiment.label == "pos") example.labels.push_back("praise");
    if (sentiment.text.find("acting") != std::string::npos) example.labels.push_back("acting");
    if (sentiment.text.find("plot") != std::string::npos) example.labels.push_back("plot");
    examples.push_back(example);
  }
  return examples;
}

TEST_F(TrainerTest, ListLabelsTrainAMultiLabelHeadWithBinaryCrossEntropy) {
  TrainingJobSpec spec = Spec();
  spec.args.max_steps = 120;
  spec.args.learning_rate = 3e-3;
  const std::vector<data::Example> examples = TaggedExamples();
  auto result = RunFineTuning(spec, base_, {examples, examples, {}}, dir_ + "/w-ml", dir_ + "/ml", {});
  ASSERT_TRUE(result.ok()) << result.status();
  const auto& m = result->eval_metrics;
  ASSERT_TRUE(m.count("f1_micro") && m.count("f1_macro") && m.count("accuracy"));
  EXPECT_GT(m.at("f1_micro"), 0.9) << "learnable tags are learnt";
  EXPECT_GT(m.at("accuracy"), 0.7);
  auto config = model::BertConfig::FromFile(dir_ + "/ml/config.json");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->problem_type, "multi_label_classification");
  EXPECT_EQ(config->num_labels, 3);
  std::vector<std::string> names;
  for (int id = 0; id < 3; ++id) names.push_back(config->LabelName(id));
  EXPECT_EQ(names, (std::vector<std::string>{"acting", "plot", "praise"}));
}

TEST(JobSpecTest, ProblemTypeIsCheckedAndRoundTrips) {
  const char* base = R"({"task": "%s", "base_model": "b", "train_dataset": "t",
                         "output_model": "o", "problem_type": "%s"})";
  auto make = [&](const char* task, const char* problem) {
    char buffer[512];
    std::snprintf(buffer, sizeof buffer, base, task, problem);
    return TrainingJobSpec::FromJson(buffer);
  };
  auto spec = make("sentence_pair_classification", "regression");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->problem_type, "regression");
  auto again = TrainingJobSpec::FromJson(spec->ToJson());
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->problem_type, "regression");
  for (auto [task, problem] : {std::pair{"sequence_classification", "ordinal"},
                               std::pair{"span_extraction", "regression"}}) {
    auto bad = make(task, problem);
    ASSERT_FALSE(bad.ok()) << task << " " << problem;
    EXPECT_NE(bad.status().message().find("problem_type"), std::string::npos) << bad.status();
  }
}

TEST(JobSpecTest, ParsesHuggingFaceNamesAndNamesBadFields) {
  auto spec = TrainingJobSpec::FromJson(R"({"task": "sentence_pair_classification",
      "base_model": "bert@1", "train_dataset": "mrpc", "output_model": "mrpc-bert",
      "hyperparameters": {"learning_rate": 3e-5, "num_train_epochs": 2, "warmup_ratio": 0.1,
                          "lr_scheduler_type": "cosine", "bf16": true}})");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->task, TrainingTask::kSentencePairClassification);
  EXPECT_DOUBLE_EQ(spec->args.learning_rate, 3e-5);
  EXPECT_EQ(spec->args.per_device_train_batch_size, 8);  // HF default
  EXPECT_DOUBLE_EQ(spec->args.max_grad_norm, 1.0);
  auto again = TrainingJobSpec::FromJson(spec->ToJson());
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->args.lr_scheduler_type, "cosine");
  EXPECT_EQ(spec->distributed.world_size, 1);  // one process unless asked
  EXPECT_EQ(spec->distributed.launcher, "local");

  auto distributed = TrainingJobSpec::FromJson(R"({"base_model": "b", "train_dataset": "t",
      "output_model": "o", "distributed": {"world_size": 4, "timeout_seconds": 60,
      "restart_policy": "on_failure", "max_restarts": 2}})");
  ASSERT_TRUE(distributed.ok()) << distributed.status();
  auto round_trip = TrainingJobSpec::FromJson(distributed->ToJson());
  ASSERT_TRUE(round_trip.ok()) << round_trip.status();
  EXPECT_EQ(round_trip->distributed.world_size, 4);
  EXPECT_EQ(round_trip->distributed.timeout_seconds, 60);
  EXPECT_EQ(round_trip->distributed.restart_policy, "on_failure");
  EXPECT_EQ(round_trip->distributed.max_restarts, 2);

  const std::pair<const char*, const char*> bad[] = {
      {R"({"task": "translate", "base_model": "b", "train_dataset": "t", "output_model": "o"})", "task"},
      {R"({"train_dataset": "t", "output_model": "o"})", "base_model"},
      {R"({"base_model": "b", "train_dataset": "t", "output_model": "o", "hyperparameters": {"learning_rate": -1}})", "hyperparameters.learning_rate"},
      {R"({"base_model": "b", "train_dataset": "t", "output_model": "o", "hyperparameters": {"lr": 1}})", "hyperparameters.lr"},
      {R"({"base_model": "b", "train_dataset": "t", "output_model": "o", "hyperparameters": {"per_device_train_batch_size": 0}})", "per_device_train_batch_size"},
      {R"({"base_model": "b", "train_dataset": "t", "output_model": "o", "hyperparameters": {"eval_strategy": "sometimes"}})", "eval_strategy"},
      {R"({"base_model": "b", "train_dataset": "t", "output_model": "o", "hyperparameters": {"max_steps": 1.5}})", "max_steps"},
      {R"({"base_model": "b", "train_dataset": "t", "output_model": "o", "eval_split": 1.0})", "eval_split"},
      {R"({"base_model": "b", "train_dataset": "t", "output_model": "o", "distributed": {"world_size": 0}})", "distributed.world_size: must be in [1, 1024]"},
      {R"({"base_model": "b", "train_dataset": "t", "output_model": "o", "distributed": {"ranks": 2}})", "distributed.ranks: unknown setting"},
      {R"({"base_model": "b", "train_dataset": "t", "output_model": "o", "distributed": {"restart_policy": "always"}})", "distributed.restart_policy: 'always' is not one of never, on_failure"},
      {R"({"base_model": "b", "train_dataset": "t", "output_model": "o", "distributed": {"launcher": "slurm"}})", "distributed.launcher: 'slurm'"},
      {R"({"base_model": "b", "train_dataset": "t", "output_model": "o", "distributed": {"launcher": "external", "restart_policy": "on_failure"}})", "launcher restarts workers"},
      {R"({"base_model": "b", "train_dataset": "t", "output_model": "o", "distributed": {"timeout_seconds": 0}})", "distributed.timeout_seconds"},
  };
  for (const auto& [json_text, field] : bad) {
    auto parsed = TrainingJobSpec::FromJson(json_text);
    ASSERT_FALSE(parsed.ok()) << json_text;
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(parsed.status().message()), ::testing::HasSubstr(field)) << json_text;
  }
}

}  // namespace
}  // namespace bertd::training
