#include "model/checkpoint.h"

#include <torch/torch.h>

#include <filesystem>
#include <fstream>

#include "absl/strings/match.h"
#include "absl/strings/str_replace.h"
#include "golden_fixture.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "model/io/safetensors.h"
#include "test_util.h"

namespace bertd::model {
namespace {

namespace fs = std::filesystem;
using testing::SharedPath;

BertConfig TinyConfig() {
  BertConfig config;
  config.vocab_size = 50;
  config.hidden_size = 16;
  config.num_hidden_layers = 2;
  config.num_attention_heads = 2;
  config.intermediate_size = 32;
  config.max_position_embeddings = 24;
  config.id2label = {{0, "no"}, {1, "yes"}};
  config.num_labels = 2;
  return config;
}

Bert TinyModel(Architecture architecture) {
  BertConfig config = TinyConfig();
  config.architectures = {std::string(ArchitectureName(architecture))};
  torch::manual_seed(7);
  return Bert(config, HeadSet::ForArchitecture(architecture));
}

BertInputs TinyInputs() {
  at::Tensor ids = torch::tensor({{2, 5, 9, 11, 3, 0}, {2, 7, 8, 3, 4, 3}}, torch::kLong);
  at::Tensor types = torch::tensor({{0, 0, 0, 0, 0, 0}, {0, 0, 0, 0, 1, 1}}, torch::kLong);
  at::Tensor mask = torch::tensor({{1, 1, 1, 1, 1, 0}, {1, 1, 1, 1, 1, 1}}, torch::kLong);
  return {ids, types, mask};
}

class CheckpointTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = testing::MakeTempDir("checkpoint-test"); }
  void TearDown() override { fs::remove_all(dir_); }
  std::string dir_;
};

TEST_F(CheckpointTest, SaveThenLoadIsBitExact) {
  for (Architecture architecture :
       {Architecture::kBertForPreTraining, Architecture::kBertForSequenceClassification,
        Architecture::kBertForQuestionAnswering, Architecture::kBertForMaskedLM}) {
    SCOPED_TRACE(std::string(ArchitectureName(architecture)));
    Bert original = TinyModel(architecture);
    std::string model_dir = dir_ + "/" + std::string(ArchitectureName(architecture));
    ASSERT_TRUE(SaveBertWeightsAndConfig(model_dir, *original).ok());

    absl::StatusOr<LoadedBert> loaded = LoadBertFromDirectory(model_dir);
    ASSERT_TRUE(loaded.ok()) << loaded.status();
    EXPECT_TRUE(loaded->report.missing.empty());
    EXPECT_TRUE(loaded->report.unexpected.empty());
    EXPECT_EQ(loaded->config.PrimaryArchitecture(), architecture);
    EXPECT_EQ(loaded->config.id2label, original->config().id2label);
    auto expected = original->named_parameters();
    auto actual = loaded->model->named_parameters();
    ASSERT_EQ(expected.size(), actual.size());
    for (const auto& item : expected) {
      ASSERT_TRUE(actual.contains(item.key())) << item.key();
      EXPECT_TRUE(torch::equal(item.value(), actual[item.key()])) << item.key();
    }
  }
}

TEST_F(CheckpointTest, SavedFilesFollowHuggingFaceLayout) {
  Bert model = TinyModel(Architecture::kBertForPreTraining);
  ASSERT_TRUE(SaveBertWeightsAndConfig(dir_, *model).ok());
  SafetensorsMetadata metadata;
  absl::StatusOr<TensorMap> tensors = ReadSafetensors(dir_ + "/model.safetensors", &metadata);
  ASSERT_TRUE(tensors.ok()) << tensors.status();
  EXPECT_EQ(metadata["format"], "pt");
  // Tied decoder weights are not written, exactly as Hugging Face saves BERT.
  EXPECT_EQ(tensors->count("cls.predictions.decoder.weight"), 0u);
  EXPECT_EQ(tensors->count("bert.encoder.layer.1.attention.self.query.weight"), 1u);
  EXPECT_EQ(tensors->count("bert.embeddings.LayerNorm.weight"), 1u);
  EXPECT_EQ(tensors->count("cls.predictions.transform.LayerNorm.bias"), 1u);
  EXPECT_EQ(tensors->count("cls.seq_relationship.weight"), 1u);
  EXPECT_EQ(tensors->at("bert.encoder.layer.0.intermediate.dense.weight").sizes(),
            (std::vector<int64_t>{32, 16}));
  absl::StatusOr<BertConfig> config = BertConfig::FromFile(dir_ + "/config.json");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->architectures, std::vector<std::string>{"BertForPreTraining"});
}

TEST_F(CheckpointTest, AcceptsUnprefixedAndTensorFlowStyleNames) {
  Bert original = TinyModel(Architecture::kBertModel);
  TensorMap renamed;
  for (const auto& [name, tensor] : StateDict(*original)) {
    std::string key = name.substr(std::string("bert.").size());
    key = absl::StrReplaceAll(key, {{"LayerNorm.weight", "LayerNorm.gamma"},
                                    {"LayerNorm.bias", "LayerNorm.beta"}});
    renamed[key] = tensor;
  }
  renamed["embeddings.position_ids"] = torch::arange(24).unsqueeze(0);  // buffer in old files
  Bert target = Bert(TinyConfig(), HeadSet::ForArchitecture(Architecture::kBertModel));
  LoadReport report;
  ASSERT_TRUE(LoadStateDict(*target, renamed, false, &report).ok());
  EXPECT_TRUE(report.missing.empty());
  EXPECT_TRUE(report.unexpected.empty());
  for (const auto& item : original->named_parameters()) {
    EXPECT_TRUE(torch::equal(item.value(), target->named_parameters()[item.key()])) << item.key();
  }
}

TEST_F(CheckpointTest, HalfPrecisionCheckpointsConvertToModelDtype) {
  Bert original = TinyModel(Architecture::kBertForSequenceClassification);
  for (at::ScalarType dtype : {torch::kBFloat16, torch::kHalf}) {
    TensorMap reduced;
    for (const auto& [name, tensor] : StateDict(*original)) reduced[name] = tensor.to(dtype);
    std::string path = dir_ + "/half.safetensors";
    ASSERT_TRUE(WriteSafetensors(path, reduced).ok());
    absl::StatusOr<TensorMap> read = ReadSafetensors(path);
    ASSERT_TRUE(read.ok()) << read.status();
    Bert target(original->config(), original->heads());
    LoadReport report;
    ASSERT_TRUE(LoadStateDict(*target, *read, false, &report).ok());
    for (const auto& [name, tensor] : reduced) {
      at::Tensor param = target->named_parameters()[name];
      EXPECT_EQ(param.scalar_type(), torch::kFloat);
      EXPECT_TRUE(torch::equal(param, tensor.to(torch::kFloat))) << name;
    }
  }
}

TEST_F(CheckpointTest, MissingHeadIsInitializedAndReported) {
  Bert pretrained = TinyModel(Architecture::kBertForPreTraining);
  ASSERT_TRUE(SaveBertWeightsAndConfig(dir_, *pretrained).ok());
  ModelLoadOptions options;
  options.architecture = Architecture::kBertForSequenceClassification;
  options.id2label = {{0, "neg"}, {1, "neutral"}, {2, "pos"}};
  absl::StatusOr<LoadedBert> loaded = LoadBertFromDirectory(dir_, options);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_THAT(loaded->report.missing,
              ::testing::UnorderedElementsAre("classifier.weight", "classifier.bias"));
  EXPECT_THAT(loaded->report.unexpected, ::testing::Contains("cls.seq_relationship.weight"));
  EXPECT_THAT(loaded->report.unexpected, ::testing::Contains("cls.predictions.bias"));
  ASSERT_EQ(loaded->report.Warnings().size(), 2u);
  EXPECT_TRUE(absl::StrContains(loaded->report.Warnings()[0], "newly initialized"));
  EXPECT_EQ(loaded->config.num_labels, 3);
  EXPECT_EQ(loaded->config.LabelName(2), "pos");

  at::Tensor weight = loaded->model->classifier->weight;
  EXPECT_EQ(weight.sizes(), (std::vector<int64_t>{3, 16}));
  EXPECT_TRUE(torch::all(loaded->model->classifier->bias == 0).item<bool>());
  // normal(0, 0.02) over 48 values: the sample std is well inside [0.01, 0.03].
  float std = weight.std().item<float>();
  EXPECT_GT(std, 0.01f);
  EXPECT_LT(std, 0.03f);
  // The encoder came from the checkpoint.
  EXPECT_TRUE(torch::equal(loaded->model->bert->embeddings->word_embeddings->weight,
                           pretrained->bert->embeddings->word_embeddings->weight));
}

TEST_F(CheckpointTest, MismatchedHeadFailsUnlessAllowed) {
  Bert three_labels = TinyModel(Architecture::kBertForSequenceClassification);
  ASSERT_TRUE(SaveBertWeightsAndConfig(dir_, *three_labels).ok());
  ModelLoadOptions options;
  options.id2label = {{0, "a"}, {1, "b"}, {2, "c"}, {3, "d"}};
  absl::StatusOr<LoadedBert> strict = LoadBertFromDirectory(dir_, options);
  ASSERT_FALSE(strict.ok());
  EXPECT_TRUE(absl::StrContains(strict.status().message(), "classifier.weight: checkpoint [2, 16] vs model [4, 16]"))
      << strict.status();

  options.ignore_mismatched_sizes = true;
  absl::StatusOr<LoadedBert> lenient = LoadBertFromDirectory(dir_, options);
  ASSERT_TRUE(lenient.ok()) << lenient.status();
  EXPECT_EQ(lenient->report.mismatched.size(), 2u);
  EXPECT_EQ(lenient->model->classifier->weight.size(0), 4);
}

TEST_F(CheckpointTest, ConfigThatDoesNotFitTheWeightsIsAnError) {
  Bert model = TinyModel(Architecture::kBertModel);
  ASSERT_TRUE(SaveBertWeightsAndConfig(dir_, *model).ok());
  BertConfig wrong = model->config();
  wrong.intermediate_size = 48;
  std::ofstream(dir_ + "/config.json") << wrong.ToJson();
  absl::StatusOr<LoadedBert> loaded = LoadBertFromDirectory(dir_);
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(loaded.status().message(), "intermediate.dense.weight"))
      << loaded.status();
}

TEST_F(CheckpointTest, CheckpointWithoutEncoderIsAnError) {
  Bert model = TinyModel(Architecture::kBertModel);
  ASSERT_TRUE(SaveBertWeightsAndConfig(dir_, *model).ok());
  ASSERT_TRUE(WriteSafetensors(dir_ + "/model.safetensors",
                               {{"classifier.weight", torch::zeros({2, 16})}})
                  .ok());
  absl::StatusOr<LoadedBert> loaded = LoadBertFromDirectory(dir_);
  ASSERT_FALSE(loaded.ok());
  EXPECT_TRUE(absl::StrContains(loaded.status().message(), "lacks")) << loaded.status();
}

TEST_F(CheckpointTest, IntegerTensorWhereWeightBelongsIsAnError) {
  Bert model = TinyModel(Architecture::kBertModel);
  TensorMap state = StateDict(*model);
  state["bert.pooler.dense.bias"] = torch::zeros({16}, torch::kLong);
  LoadReport report;
  absl::Status status = LoadStateDict(*model, state, false, &report);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(status.message(), "bert.pooler.dense.bias")) << status;
}

TEST_F(CheckpointTest, DirectoryErrorsNameTheProblem) {
  absl::StatusOr<LoadedBert> no_config = LoadBertFromDirectory(dir_);
  EXPECT_EQ(no_config.status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(absl::StrContains(no_config.status().message(), "config.json"));

  std::ofstream(dir_ + "/config.json") << TinyConfig().ToJson();
  absl::StatusOr<LoadedBert> no_weights = LoadBertFromDirectory(dir_);
  EXPECT_EQ(no_weights.status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(absl::StrContains(no_weights.status().message(), "model.safetensors"));

  std::ofstream(dir_ + "/model.safetensors") << "\x10\x00\x00\x00\x00\x00\x00\x00{not json}      ";
  absl::StatusOr<LoadedBert> corrupt = LoadBertFromDirectory(dir_);
  EXPECT_EQ(corrupt.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(corrupt.status().message(), "model.safetensors")) << corrupt.status();
}

TEST_F(CheckpointTest, SaveModelDirectoryWritesACompleteImmutableVersion) {
  Bert model = TinyModel(Architecture::kBertForSequenceClassification);
  std::vector<std::string> tokens = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world"};
  for (int i = static_cast<int>(tokens.size()); i < 50; ++i) tokens.push_back("tok" + std::to_string(i));
  text::TokenizerOptions tokenizer_options;
  tokenizer_options.do_lower_case = true;
  absl::StatusOr<text::BertTokenizer> tokenizer =
      text::BertTokenizer::Create(text::Vocab::FromTokens(tokens), tokenizer_options);
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();

  std::string version_dir = dir_ + "/my-model/1";
  ASSERT_TRUE(SaveModelDirectory(version_dir, *model, *tokenizer).ok());
  for (const char* file : {"config.json", "model.safetensors", "vocab.txt", "tokenizer_config.json"}) {
    EXPECT_TRUE(fs::exists(fs::path(version_dir) / file)) << file;
  }
  // Only the finished version is visible; no staging directory is left behind.
  int entries = 0;
  for ([[maybe_unused]] const auto& entry : fs::directory_iterator(dir_ + "/my-model")) ++entries;
  EXPECT_EQ(entries, 1);

  absl::StatusOr<text::BertTokenizer> reloaded = text::BertTokenizer::FromDirectory(version_dir);
  ASSERT_TRUE(reloaded.ok()) << reloaded.status();
  EXPECT_EQ(reloaded->Tokenize("Hello WORLD")->size(), 2u);
  EXPECT_EQ((*reloaded->Tokenize("Hello WORLD"))[1].id, 6);
  EXPECT_TRUE(LoadBertFromDirectory(version_dir).ok());

  absl::Status again = SaveModelDirectory(version_dir, *model, *tokenizer);
  EXPECT_EQ(again.code(), absl::StatusCode::kAlreadyExists);
}

TEST(DeviceTest, ParsesCpuAndRejectsNonsense) {
  EXPECT_TRUE(ParseDevice("cpu").ok());
  EXPECT_EQ(ParseDevice("tpu:9").status().code(), absl::StatusCode::kInvalidArgument);
  if (!torch::cuda::is_available()) {
    EXPECT_EQ(ParseDevice("cuda:0").status().code(), absl::StatusCode::kFailedPrecondition);
  }
}

TEST(BertModuleTest, ParameterNamesMatchHuggingFace) {
  Bert model = TinyModel(Architecture::kBertForPreTraining);
  auto params = model->named_parameters();
  for (const char* name :
       {"bert.embeddings.word_embeddings.weight", "bert.embeddings.position_embeddings.weight",
        "bert.embeddings.token_type_embeddings.weight", "bert.embeddings.LayerNorm.weight",
        "bert.encoder.layer.0.attention.self.query.weight",
        "bert.encoder.layer.0.attention.self.key.bias",
        "bert.encoder.layer.0.attention.self.value.weight",
        "bert.encoder.layer.0.attention.output.dense.weight",
        "bert.encoder.layer.0.attention.output.LayerNorm.bias",
        "bert.encoder.layer.1.intermediate.dense.weight", "bert.encoder.layer.1.output.dense.bias",
        "bert.encoder.layer.1.output.LayerNorm.weight", "bert.pooler.dense.weight",
        "cls.predictions.bias", "cls.predictions.transform.dense.weight",
        "cls.predictions.transform.LayerNorm.weight", "cls.seq_relationship.weight"}) {
    EXPECT_TRUE(params.contains(name)) << name;
  }
  // 5 embedding tensors + 16 per layer * 2 + pooler 2 + MLM 5 + NSP 2.
  EXPECT_EQ(params.size(), 5u + 32u + 2u + 5u + 2u);
}

TEST(BertModuleTest, DropoutOnlyInTrainingMode) {
  Bert model = TinyModel(Architecture::kBertForSequenceClassification);
  BertInputs inputs = TinyInputs();
  model->eval();
  at::Tensor first = model->forward(inputs).classifier_logits;
  at::Tensor second = model->forward(inputs).classifier_logits;
  EXPECT_TRUE(torch::equal(first, second));
  model->train();
  at::Tensor noisy = model->forward(inputs).last_hidden_state;
  at::Tensor noisy_again = model->forward(inputs).last_hidden_state;
  EXPECT_FALSE(torch::equal(noisy, noisy_again));
}

TEST(BertModuleTest, ActivationsFollowConfig) {
  at::Tensor x = torch::tensor({-1.0, 0.5, 2.0});
  // Exact GELU uses erf; gelu_new is the tanh approximation; they differ slightly.
  at::Tensor exact = ApplyActivation(x, "gelu");
  at::Tensor tanh_approx = ApplyActivation(x, "gelu_new");
  EXPECT_NEAR(exact[0].item<float>(), -0.158655f, 1e-5);
  EXPECT_NEAR(tanh_approx[0].item<float>(), -0.158808f, 1e-5);
  EXPECT_TRUE(torch::equal(ApplyActivation(x, "relu"), torch::relu(x)));
}

TEST(BertModuleTest, InitializationFollowsBert) {
  Bert model = TinyModel(Architecture::kBertForPreTraining);
  auto params = model->named_parameters();
  EXPECT_TRUE(torch::all(params["bert.embeddings.LayerNorm.weight"] == 1).item<bool>());
  EXPECT_TRUE(torch::all(params["bert.encoder.layer.0.output.dense.bias"] == 0).item<bool>());
  EXPECT_TRUE(torch::all(params["cls.predictions.bias"] == 0).item<bool>());
  EXPECT_TRUE(torch::all(params["bert.embeddings.word_embeddings.weight"][0] == 0).item<bool>());
  float std = params["bert.encoder.layer.0.intermediate.dense.weight"].std().item<float>();
  EXPECT_NEAR(std, 0.02f, 0.004f);  // 512 samples
}

}  // namespace
}  // namespace bertd::model
