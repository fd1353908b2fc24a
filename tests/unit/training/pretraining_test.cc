// Pretraining from scratch: size presets, BERT's initialization, the pretraining job spec, a
// pretraining run (loss starts at the uniform-guess value and falls, metrics, the saved model),
// exact resume, and fine-tuning on top of the pretrained model.
#include "training/pretrainer.h"

#include <torch/torch.h>

#include <cmath>
#include <filesystem>
#include <random>
#include <tuple>
#include <nlohmann/json.hpp>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "model/checkpoint.h"
#include "model/io/safetensors.h"
#include "model/presets.h"
#include "test_util.h"

namespace bertd::training {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

// --- Presets ------------------------------------------------------------------------------------

TEST(PresetsTest, PresetsFollowLayersByHiddenWithHeadsOf64AndFourTimesIntermediate) {
  const std::vector<std::tuple<std::string, int, int>> expected = {
      {"tiny", 2, 128}, {"mini", 4, 256}, {"small", 4, 512}, {"medium", 8, 512}, {"base", 12, 768}};
  for (const auto& [name, layers, hidden] : expected) {
    auto config = model::ScratchConfig(name, {}, 1000);
    ASSERT_TRUE(config.ok()) << name << ": " << config.status();
    EXPECT_EQ(config->num_hidden_layers, layers) << name;
    EXPECT_EQ(config->hidden_size, hidden) << name;
    EXPECT_EQ(config->num_attention_heads, hidden / 64) << name;
    EXPECT_EQ(config->intermediate_size, 4 * hidden) << name;
    EXPECT_EQ(config->vocab_size, 1000) << name;
    EXPECT_EQ(config->max_position_embeddings, 512) << name;
    EXPECT_THAT(config->architectures, ::testing::ElementsAre("BertForPreTraining"));
  }
  // BERT-base's published config.
  auto base = model::ScratchConfig("base", {}, 30522);
  ASSERT_TRUE(base.ok());
  EXPECT_EQ(base->num_attention_heads, 12);
  EXPECT_EQ(base->intermediate_size, 3072);
}

TEST(PresetsTest, ExplicitSizesOverrideThePreset) {
  model::ModelSize size;
  size.num_hidden_layers = 3;
  size.num_attention_heads = 4;
  auto config = model::ScratchConfig("mini", size, 50);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->num_hidden_layers, 3);
  EXPECT_EQ(config->hidden_size, 256);
  EXPECT_EQ(config->num_attention_heads, 4);

  model::ModelSize bare;
  bare.num_hidden_layers = 1;
  bare.hidden_size = 64;
  bare.intermediate_size = 100;
  bare.max_position_embeddings = 128;
  config = model::ScratchConfig("", bare, 50);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->num_attention_heads, 1);
  EXPECT_EQ(config->intermediate_size, 100);
  EXPECT_EQ(config->max_position_embeddings, 128);
}

TEST(PresetsTest, BadSizesAreRefusedNamingTheField) {
  EXPECT_THAT(model::ScratchConfig("huge", {}, 50).status().message(), HasSubstr("tiny, mini"));
  EXPECT_THAT(model::ScratchConfig("", {}, 50).status().message(), HasSubstr("num_hidden_layers"));
  model::ModelSize odd;
  odd.hidden_size = 100;
  odd.num_attention_heads = 3;
  EXPECT_THAT(model::ScratchConfig("tiny", odd, 50).status().message(),
              HasSubstr("model_size.hidden_size: 100 is not a multiple of num_attention_heads 3"));
  model::ModelSize negative;
  negative.num_hidden_layers = -1;
  EXPECT_THAT(model::ScratchConfig("tiny", negative, 50).status().message(),
              HasSubstr("model_size.num_hidden_layers"));
  EXPECT_EQ(model::ParseScratchBaseModel("scratch:mini"), "mini");
  EXPECT_EQ(model::ParseScratchBaseModel("scratch"), "");
  EXPECT_FALSE(model::ParseScratchBaseModel("scratchy").has_value());
  EXPECT_FALSE(model::ParseScratchBaseModel("bert-base@1").has_value());
}

// --- Initialization -----------------------------------------------------------------------------

TEST(ScratchInitTest, WeightsAreNormalWithStd002BiasesZeroLayerNormOnes) {
  auto config = model::ScratchConfig("tiny", {}, 2000);
  ASSERT_TRUE(config.ok());
  torch::manual_seed(1);
  model::Bert bert(*config, model::HeadSet::ForArchitecture(model::Architecture::kBertForPreTraining));
  int checked = 0;
  for (const auto& item : bert->named_parameters()) {
    const std::string& name = item.key();
    const at::Tensor& value = item.value();
    const bool layer_norm = name.find("LayerNorm") != std::string::npos;
    const bool bias = name.size() > 4 && name.substr(name.size() - 4) == "bias";
    if (layer_norm && !bias) {
      EXPECT_TRUE(torch::equal(value, torch::ones_like(value))) << name;
    } else if (bias) {
      EXPECT_TRUE(torch::equal(value, torch::zeros_like(value))) << name;
    } else {
      at::Tensor v = value;
      if (name == "bert.embeddings.word_embeddings.weight") {
        EXPECT_TRUE(torch::equal(v[0], torch::zeros_like(v[0]))) << "the [PAD] row is zero";
        v = v.slice(0, 1);
      }
      // Over thousands of draws the sample mean and std of N(0, 0.02) land within a few percent.
      EXPECT_NEAR(v.mean().item<double>(), 0.0, 0.002) << name;
      EXPECT_NEAR(v.std().item<double>(), 0.02, 0.002) << name;
      ++checked;
    }
  }
  EXPECT_GT(checked, 10);
}

// --- Job spec -----------------------------------------------------------------------------------

TEST(PretrainingSpecTest, ParsesPretrainingAndNewModelSettings) {
  auto spec = TrainingJobSpec::FromJson(R"({
    "task": "pretraining", "base_model": "scratch:mini", "train_dataset": "corpus",
    "output_model": "mine",
    "vocabulary": {"vocab_size": 8000, "min_frequency": 3, "limit_alphabet": 500, "lowercase": false},
    "model_size": {"num_hidden_layers": 2},
    "pretraining": {"masked_lm_prob": 0.2, "max_predictions_per_seq": 30, "whole_word_masking": true,
                    "short_seq_prob": 0.05, "dupe_factor": 2}})");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->task, TrainingTask::kPretraining);
  EXPECT_TRUE(spec->scratch());
  EXPECT_EQ(spec->vocabulary.vocab_size, 8000);
  EXPECT_EQ(spec->vocabulary.min_frequency, 3);
  EXPECT_EQ(spec->vocabulary.limit_alphabet, 500);
  EXPECT_FALSE(spec->vocabulary.lowercase);
  EXPECT_EQ(spec->model_size.num_hidden_layers, 2);
  EXPECT_DOUBLE_EQ(spec->pretraining.masked_lm_prob, 0.2);
  EXPECT_EQ(spec->pretraining.max_predictions_per_seq, 30);
  EXPECT_TRUE(spec->pretraining.whole_word_masking);
  EXPECT_EQ(spec->pretraining.dupe_factor, 2);

  auto again = TrainingJobSpec::FromJson(spec->ToJson());
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->ToJson(), spec->ToJson());
}

TEST(PretrainingSpecTest, RefusesSettingsThatCannotApply) {
  auto error = [](const std::string& json) {
    auto spec = TrainingJobSpec::FromJson(json);
    return spec.ok() ? std::string("ok") : std::string(spec.status().message());
  };
  const std::string head = R"("task": "pretraining", "train_dataset": "c", "output_model": "m")";
  EXPECT_THAT(error("{" + head + R"(, "base_model": "scratch:giant"})"), HasSubstr("scratch:giant"));
  EXPECT_THAT(error("{" + head + R"(, "base_model": "bert@1", "model_size": {"hidden_size": 64}})"),
              HasSubstr("model_size: only for base_model scratch"));
  EXPECT_THAT(error("{" + head + R"(, "base_model": "bert@1", "vocabulary": {"source": "model:x"}})"),
              HasSubstr("brings its own vocabulary"));
  EXPECT_THAT(error("{" + head + R"(, "base_model": "scratch:tiny", "vocabulary": {"source": "x"}})"),
              HasSubstr("vocabulary.source: 'x' is not model:NAME"));
  EXPECT_THAT(error("{" + head + R"(, "base_model": "scratch:tiny", "vocabulary": {"size": 5}})"),
              HasSubstr("vocabulary.size: unknown setting"));
  EXPECT_THAT(error("{" + head + R"(, "base_model": "scratch:tiny", "pretraining": {"masked_lm_prob": 1.5}})"),
              HasSubstr("pretraining.masked_lm_prob: must be in (0, 1)"));
  EXPECT_THAT(error("{" + head + R"(, "base_model": "scratch:tiny", "vocabulary": {"vocab_size": 3}})"),
              HasSubstr("vocabulary.vocab_size"));
  EXPECT_EQ(error("{" + head + R"(, "base_model": "scratch:tiny", "vocabulary": {"source": "dataset:v"}})"), "ok");
  EXPECT_EQ(error("{" + head + R"(, "base_model": "bert@1"})"), "ok");  // continued pretraining
}

// --- Pretraining runs ---------------------------------------------------------------------------

// A corpus with structure a tiny model can pick up within a few hundred steps: documents of
// templated sentences over small word sets, plus Chinese sentences.
std::vector<std::string> Corpus(int documents) {
  const std::vector<std::string> subjects = {"the cat", "a dog", "the bird", "my friend", "the teacher"};
  const std::vector<std::string> verbs = {"sees", "likes", "finds", "follows", "helps"};
  const std::vector<std::string> objects = {"the ball", "a tree", "the house", "the river", "a book"};
  const std::vector<std::string> chinese = {"我们今天去公园。", "天气很好！", "他喜欢读书。", "你吃饭了吗？"};
  std::mt19937_64 rng(7);
  std::vector<std::string> docs;
  for (int d = 0; d < documents; ++d) {
    std::string doc;
    const int sentences = 3 + static_cast<int>(rng() % 4);
    for (int s = 0; s < sentences; ++s) {
      if (d % 4 == 3) {
        doc += chinese[rng() % chinese.size()];
      } else {
        doc += subjects[rng() % subjects.size()] + " " + verbs[rng() % verbs.size()] + " " +
               objects[rng() % objects.size()] + ". ";
      }
    }
    docs.push_back(doc);
  }
  return docs;
}

class PretrainerTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = testing::MakeTempDir("pretrainer-test"); }
  void TearDown() override { fs::remove_all(dir_); }

  static TrainingJobSpec Spec() {
    TrainingJobSpec spec;
    spec.task = TrainingTask::kPretraining;
    spec.base_model = "scratch";
    spec.model_size.num_hidden_layers = 1;
    spec.model_size.hidden_size = 32;
    spec.model_size.num_attention_heads = 2;
    spec.model_size.max_position_embeddings = 64;
    spec.train_dataset = "corpus";
    spec.output_model = "out";
    spec.vocabulary.vocab_size = 200;
    spec.vocabulary.min_frequency = 1;
    spec.args.learning_rate = 2e-3;
    spec.args.max_seq_length = 32;
    spec.args.per_device_train_batch_size = 16;
    spec.args.max_steps = 120;
    spec.args.save_steps = 1000;
    spec.args.seed = 5;
    return spec;
  }

  static PretrainingData Data() {
    std::vector<std::string> docs = Corpus(120);
    PretrainingData data;
    data.eval_documents.assign(docs.end() - 12, docs.end());
    data.train_documents.assign(docs.begin(), docs.end() - 12);
    return data;
  }

  std::string dir_;
};

TEST_F(PretrainerTest, LossStartsAtUniformGuessFallsAndTheModelIsComplete) {
  std::vector<nlohmann::json> progress;
  TrainerHooks hooks;
  hooks.emit = [&](const std::string& type, const std::string& payload) {
    if (type == "progress") progress.push_back(nlohmann::json::parse(payload));
  };
  const TrainingJobSpec spec = Spec();
  const std::string out = dir_ + "/model";
  auto result = RunPretraining(spec, {}, Data(), dir_ + "/work", out, hooks);
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_GE(progress.size(), 2u);

  // With N(0, 0.02) weights every prediction starts near uniform: MLM loss ~ ln(V), NSP ~ ln(2).
  auto vocab = text::Vocab::Load(out + "/vocab.txt");
  ASSERT_TRUE(vocab.ok());
  const double first_mlm = progress.front()["mlm_loss"].get<double>();
  EXPECT_NEAR(first_mlm, std::log(vocab->size()), 0.5);
  EXPECT_NEAR(progress.front()["nsp_loss"].get<double>(), std::log(2.0), 0.2);
  EXPECT_NEAR(progress.front()["loss"].get<double>(),
              progress.front()["mlm_loss"].get<double>() + progress.front()["nsp_loss"].get<double>(), 1e-9);
  EXPECT_LT(progress.back()["mlm_loss"].get<double>(), first_mlm - 1.0);

  // Metrics on the held-out documents.
  const auto& m = result->eval_metrics;
  for (const char* name : {"mlm_loss", "mlm_accuracy", "perplexity", "nsp_loss", "nsp_accuracy", "eval_loss"}) {
    EXPECT_TRUE(m.count(name)) << name;
  }
  EXPECT_NEAR(m.at("perplexity"), std::exp(m.at("mlm_loss")), 1e-6 * m.at("perplexity"));
  EXPECT_NEAR(m.at("eval_loss"), m.at("mlm_loss") + m.at("nsp_loss"), 1e-9);
  // Held out: far better than a uniform guess over the vocabulary (the held-out set is small, so
  // accuracy is only checked for range).
  EXPECT_LT(m.at("mlm_loss"), std::log(vocab->size()) - 1.0) << nlohmann::json(m).dump();
  EXPECT_LT(m.at("perplexity"), vocab->size() / 4.0);
  EXPECT_GT(m.at("mlm_accuracy"), 0.0);
  EXPECT_LE(m.at("mlm_accuracy"), 1.0);

  // A complete Hugging Face directory.
  for (const char* file : {"config.json", "model.safetensors", "vocab.txt", "tokenizer_config.json",
                           "training_summary.json"}) {
    EXPECT_TRUE(fs::exists(fs::path(out) / file)) << file;
  }
  auto config = model::BertConfig::FromFile(out + "/config.json");
  ASSERT_TRUE(config.ok());
  EXPECT_THAT(config->architectures, ::testing::ElementsAre("BertForPreTraining"));
  EXPECT_EQ(config->vocab_size, vocab->size());
  EXPECT_EQ(config->num_hidden_layers, 1);
  EXPECT_EQ(config->hidden_size, 32);
  EXPECT_LE(vocab->size(), 200);
  EXPECT_EQ(vocab->TokenAt(0), "[PAD]");
  EXPECT_EQ(vocab->TokenAt(4), "[MASK]");
  auto tensors = model::ReadSafetensors(out + "/model.safetensors");
  ASSERT_TRUE(tensors.ok());
  EXPECT_TRUE(tensors->count("cls.predictions.bias"));
  EXPECT_TRUE(tensors->count("cls.seq_relationship.weight"));
  EXPECT_TRUE(tensors->count("bert.pooler.dense.weight"));
}

TEST_F(PretrainerTest, StoppedRunResumesToTheSameWeights) {
  TrainingJobSpec spec = Spec();
  spec.args.max_steps = 12;
  spec.args.save_steps = 4;
  const PretrainingData data = Data();
  ASSERT_TRUE(RunPretraining(spec, {}, data, dir_ + "/work-a", dir_ + "/a", {}).ok());

  TrainerHooks stop_at_6;
  int steps = 0;
  stop_at_6.emit = [&](const std::string& type, const std::string&) { steps += type == "progress"; };
  int polls = 0;
  stop_at_6.should_stop = [&] { return ++polls == 6; };
  auto stopped = RunPretraining(spec, {}, data, dir_ + "/work-b", dir_ + "/b", stop_at_6);
  ASSERT_EQ(stopped.status().code(), absl::StatusCode::kCancelled) << stopped.status();
  ASSERT_TRUE(RunPretraining(spec, {}, data, dir_ + "/work-b", dir_ + "/b", {}).ok());

  auto a = model::ReadSafetensors(dir_ + "/a/model.safetensors");
  auto b = model::ReadSafetensors(dir_ + "/b/model.safetensors");
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_EQ(a->size(), b->size());
  for (const auto& [name, tensor] : *a) {
    EXPECT_TRUE(torch::allclose(tensor, b->at(name), 1e-5, 1e-6)) << name;
  }
}

TEST_F(PretrainerTest, PretrainedModelIsABaseForFineTuningWithHeadsSwapped) {
  TrainingJobSpec spec = Spec();
  spec.args.max_steps = 5;
  const std::string pretrained = dir_ + "/pretrained";
  ASSERT_TRUE(RunPretraining(spec, {}, Data(), dir_ + "/work", pretrained, {}).ok());

  // Loading for classification keeps the encoder and pooler, drops cls.*, creates the classifier.
  model::ModelLoadOptions options;
  options.architecture = model::Architecture::kBertForSequenceClassification;
  options.id2label = {{0, "neg"}, {1, "pos"}};
  auto loaded = model::LoadBertFromDirectory(pretrained, options);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_THAT(loaded->report.missing, ::testing::UnorderedElementsAre("classifier.weight", "classifier.bias"));
  EXPECT_THAT(loaded->report.unexpected, ::testing::Contains(HasSubstr("cls.predictions")));
  EXPECT_THAT(loaded->report.unexpected, ::testing::Contains("cls.seq_relationship.weight"));
  auto saved = model::ReadSafetensors(pretrained + "/model.safetensors");
  ASSERT_TRUE(saved.ok());
  auto params = loaded->model->named_parameters();
  EXPECT_TRUE(torch::equal(params["bert.encoder.layer.0.output.dense.weight"],
                           saved->at("bert.encoder.layer.0.output.dense.weight")));
  EXPECT_TRUE(torch::equal(params["bert.pooler.dense.weight"], saved->at("bert.pooler.dense.weight")));
  EXPECT_NEAR(params["classifier.weight"].std().item<double>(), 0.02, 0.01);

  // And a fine-tuning run on it works.
  TrainingJobSpec fine;
  fine.task = TrainingTask::kSequenceClassification;
  fine.base_model = "pretrained";
  fine.train_dataset = "t";
  fine.output_model = "cls";
  fine.args.max_steps = 3;
  TrainingData data;
  for (const auto& [text, label] : std::vector<std::pair<std::string, std::string>>{
           {"the cat likes the ball", "pos"}, {"a dog finds a tree", "neg"},
           {"my friend helps the teacher", "pos"}, {"the bird follows the river", "neg"}}) {
    data::Example example;
    example.text = text;
    example.label = label;
    data.train.push_back(example);
  }
  data.eval = data.train;
  auto result = RunFineTuning(fine, pretrained, data, dir_ + "/fine-work", dir_ + "/fine", {});
  ASSERT_TRUE(result.ok()) << result.status();
  auto config = model::BertConfig::FromFile(dir_ + "/fine/config.json");
  ASSERT_TRUE(config.ok());
  EXPECT_THAT(config->architectures, ::testing::ElementsAre("BertForSequenceClassification"));
}

TEST_F(PretrainerTest, ScratchModelForFineTuningIsSeededAndComplete) {
  TrainingJobSpec spec = Spec();
  spec.task = TrainingTask::kSequenceClassification;
  auto tokenizer = LearnVocabulary(Data().train_documents, spec.vocabulary);
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  ASSERT_TRUE(WriteScratchModel(dir_ + "/s1", spec, *tokenizer).ok());
  ASSERT_TRUE(WriteScratchModel(dir_ + "/s2", spec, *tokenizer).ok());
  auto a = model::ReadSafetensors(dir_ + "/s1/model.safetensors");
  auto b = model::ReadSafetensors(dir_ + "/s2/model.safetensors");
  ASSERT_TRUE(a.ok() && b.ok());
  for (const auto& [name, tensor] : *a) EXPECT_TRUE(torch::equal(tensor, b->at(name))) << name;
  EXPECT_TRUE(fs::exists(dir_ + "/s1/vocab.txt"));
}

TEST_F(PretrainerTest, ContinuedPretrainingStartsFromTheBaseModel) {
  TrainingJobSpec spec = Spec();
  spec.args.max_steps = 3;
  const std::string first = dir_ + "/first";
  ASSERT_TRUE(RunPretraining(spec, {}, Data(), dir_ + "/w1", first, {}).ok());
  TrainingJobSpec more = spec;
  more.base_model = "first";
  more.model_size = {};
  PretrainingStart start;
  start.base_model_dir = first;
  auto result = RunPretraining(more, start, Data(), dir_ + "/w2", dir_ + "/second", {});
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(testing::ReadWholeFile(first + "/vocab.txt"), testing::ReadWholeFile(dir_ + "/second/vocab.txt"));
}

}  // namespace
}  // namespace bertd::training
