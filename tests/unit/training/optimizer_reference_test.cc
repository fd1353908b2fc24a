// bertd's AdamW + schedule + clipping + weight-decay groups against PyTorch's own, computed by
// adamw_reference.py with Debian's python3-torch.
#include <torch/torch.h>

#include <cstdlib>
#include <filesystem>

#include "gtest/gtest.h"
#include "model/bert.h"
#include "model/checkpoint.h"
#include "model/io/torch_pickle.h"
#include "test_util.h"
#include "training/lr_schedule.h"
#include "training/optimizer.h"

namespace bertd::training {
namespace {

namespace fs = std::filesystem;

model::Bert MakeClassifier() {
  if (testing::SharedFileExists("fixtures/tiny-bert/classifier/model.safetensors")) {
    auto loaded = model::LoadBertFromDirectory(testing::SharedPath("fixtures/tiny-bert/classifier"));
    if (loaded.ok()) return loaded->model;
  }
  // Without shared/, a small random classifier exercises the same code.
  model::BertConfig config;
  config.vocab_size = 120;
  config.hidden_size = 32;
  config.num_hidden_layers = 2;
  config.num_attention_heads = 4;
  config.intermediate_size = 64;
  config.max_position_embeddings = 64;
  config.num_labels = 3;
  torch::manual_seed(1);
  return model::Bert(config, model::HeadSet::ForArchitecture(
                                 model::Architecture::kBertForSequenceClassification));
}

bool PythonTorchAvailable() {
  return std::system(BERTD_PYTHON " -c 'import torch' > /dev/null 2>&1") == 0;
}

struct ScheduleCase {
  LrSchedule::Type type;
  int code;  // the script's schedule code
  const char* name;
};

class OptimizerReferenceTest : public ::testing::TestWithParam<ScheduleCase> {};

TEST_P(OptimizerReferenceTest, MatchesPyTorchAdamWWithinTolerance) {
  ASSERT_TRUE(PythonTorchAvailable())
      << "python3-torch is required (scripts/install-deps.sh installs it)";
  const ScheduleCase& schedule_case = GetParam();
  model::Bert model = MakeClassifier();
  model->eval();  // no dropout: the gradients are deterministic

  const AdamWSettings settings{/*learning_rate=*/1e-3, /*weight_decay=*/0.01, 0.9, 0.999, 1e-8};
  const double max_grad_norm = 1.0;
  const int64_t warmup = 1, total = 4, steps = 3;
  LrSchedule schedule(schedule_case.type, warmup, total);

  model::TensorMap exchange;
  for (const auto& item : model->named_parameters()) {
    exchange["param/" + item.key()] = item.value().detach().clone();
  }
  exchange["settings"] = torch::tensor({settings.learning_rate, settings.weight_decay, settings.beta1,
                                        settings.beta2, settings.epsilon, max_grad_norm,
                                        static_cast<double>(warmup), static_cast<double>(total),
                                        static_cast<double>(steps),
                                        static_cast<double>(schedule_case.code)},
                                       torch::kDouble);

  auto optimizer = MakeAdamW(*model, settings);
  std::vector<double> used_lr;
  const int64_t vocab = model->config().vocab_size;
  for (int64_t step = 0; step < steps; ++step) {
    // Real gradients: cross-entropy of a fixed random batch (different each step).
    torch::manual_seed(100 + step);
    at::Tensor ids = torch::randint(1, vocab, {4, 12}, torch::kLong);
    at::Tensor labels = torch::randint(0, model->config().num_labels, {4}, torch::kLong);
    optimizer->zero_grad();
    at::Tensor logits = model->forward({ids, {}, {}}).classifier_logits;
    torch::nn::functional::cross_entropy(logits, labels).backward();
    for (const auto& item : model->named_parameters()) {
      exchange["grad/" + std::to_string(step) + "/" + item.key()] = item.value().grad().clone();
    }
    ClipGradientNorm(*model, max_grad_norm);
    double lr = settings.learning_rate * schedule.Factor(step);
    SetLearningRate(*optimizer, lr);
    used_lr.push_back(lr);
    optimizer->step();
  }

  std::string dir = testing::MakeTempDir("adamw-ref");
  ASSERT_TRUE(model::WriteTorchCheckpoint(dir + "/in.pt", exchange).ok());
  std::string command = BERTD_PYTHON " " BERTD_TEST_SOURCE_DIR "/adamw_reference.py " + dir + "/in.pt " +
                        dir + "/out.pt";
  ASSERT_EQ(std::system(command.c_str()), 0) << command;
  absl::StatusOr<model::TensorMap> reference = model::ReadTorchCheckpoint(dir + "/out.pt");
  ASSERT_TRUE(reference.ok()) << reference.status();

  for (int64_t step = 0; step < steps; ++step) {
    EXPECT_NEAR(reference->at("lr/" + std::to_string(step)).item<double>(), used_lr[step], 1e-12)
        << schedule_case.name << " step " << step;
  }
  int compared = 0;
  for (const auto& item : model->named_parameters()) {
    const at::Tensor& expected = reference->at("param/" + item.key());
    const at::Tensor& actual = item.value();
    double max_diff = (actual - expected).abs().max().item<double>();
    EXPECT_LE(max_diff, 1e-5) << item.key();
    // The update really moved the parameter (so the comparison is not trivially equal).
    if (!torch::equal(exchange["param/" + item.key()], actual)) ++compared;
  }
  EXPECT_GT(compared, 30);
  fs::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(
    Schedules, OptimizerReferenceTest,
    ::testing::Values(ScheduleCase{LrSchedule::Type::kLinear, 0, "linear"},
                      ScheduleCase{LrSchedule::Type::kCosine, 1, "cosine"},
                      ScheduleCase{LrSchedule::Type::kConstant, 2, "constant"},
                      ScheduleCase{LrSchedule::Type::kConstantWithWarmup, 3, "constant_with_warmup"}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(WeightDecayGroupsTest, BiasesAndLayerNormWeightsAreNotDecayed) {
  EXPECT_TRUE(DecaysWeight("bert.encoder.layer.0.attention.self.query.weight"));
  EXPECT_TRUE(DecaysWeight("classifier.weight"));
  EXPECT_FALSE(DecaysWeight("classifier.bias"));
  EXPECT_FALSE(DecaysWeight("bert.embeddings.LayerNorm.weight"));
  EXPECT_FALSE(DecaysWeight("bert.encoder.layer.1.output.LayerNorm.bias"));
}

TEST(LrScheduleTest, ShapesFollowHuggingFace) {
  LrSchedule linear(LrSchedule::Type::kLinear, 10, 110);
  EXPECT_DOUBLE_EQ(linear.Factor(0), 0.0);
  EXPECT_DOUBLE_EQ(linear.Factor(5), 0.5);
  EXPECT_DOUBLE_EQ(linear.Factor(10), 1.0);
  EXPECT_DOUBLE_EQ(linear.Factor(60), 0.5);
  EXPECT_DOUBLE_EQ(linear.Factor(110), 0.0);
  EXPECT_DOUBLE_EQ(linear.Factor(200), 0.0);
  LrSchedule cosine(LrSchedule::Type::kCosine, 0, 100);
  EXPECT_NEAR(cosine.Factor(50), 0.5, 1e-12);
  EXPECT_NEAR(cosine.Factor(100), 0.0, 1e-12);
  EXPECT_EQ(LrSchedule::ParseType("polynomial").status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace bertd::training
