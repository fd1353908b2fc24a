#include "training/checkpointing.h"

#include <torch/torch.h>

#include <algorithm>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "model/checkpoint.h"
#include "test_util.h"

namespace bertd::training {
namespace {

namespace fs = std::filesystem;

// A run in miniature: a small classifier, its AdamW, and steps taken with fixed gradients.
struct TrainingRun {
  // `model` is declared before `optimizer`, so Parameters() builds it before AdamW takes its parameters.
  explicit TrainingRun(int seed) : model(nullptr), optimizer(Parameters(seed, &model), Options()) {}

  static std::vector<at::Tensor> Parameters(int seed, model::Bert* out) {
    model::BertConfig config;
    config.vocab_size = 30;
    config.hidden_size = 16;
    config.num_hidden_layers = 1;
    config.num_attention_heads = 2;
    config.intermediate_size = 32;
    config.max_position_embeddings = 16;
    config.num_labels = 2;
    torch::manual_seed(seed);
    *out = model::Bert(config, model::HeadSet::ForArchitecture(
                                   model::Architecture::kBertForSequenceClassification));
    return (*out)->parameters();
  }
  static torch::optim::AdamWOptions Options() { return torch::optim::AdamWOptions(1e-2).weight_decay(0.01); }

  // One optimizer step with gradients that depend on the step, so Adam's moments matter.
  void Step(int step) {
    torch::NoGradGuard no_grad;
    for (at::Tensor& p : model->parameters()) p.mutable_grad() = torch::full_like(p, 0.1 * (step % 3) - 0.05);
    optimizer.step();
  }

  model::Bert model;
  torch::optim::AdamW optimizer;
};

void ExpectSameWeights(model::BertImpl& a, model::BertImpl& b) {
  const model::TensorMap x = model::StateDict(a), y = model::StateDict(b);
  ASSERT_EQ(x.size(), y.size());
  for (const auto& [name, tensor] : x) {
    ASSERT_TRUE(y.count(name)) << name;
    EXPECT_TRUE(torch::equal(tensor, y.at(name))) << name;
  }
}

class CheckpointingTest : public testing::TempDirTest {};

TEST_F(CheckpointingTest, RestoreBringsBackWeightsOptimizerMomentsPositionAndRandomState) {
  TrainingRun saved(1);
  for (int step = 1; step <= 3; ++step) saved.Step(step);
  TrainerState state;
  state.global_step = 3;
  state.epoch = 1;
  state.batch_in_epoch = 2;
  state.loss_sum = 1.25;
  state.loss_count = 5;
  state.best_metric = 0.75;
  state.evaluations_without_improvement = 1;
  ASSERT_TRUE(SaveCheckpoint(dir_, *saved.model, saved.optimizer, state, 0).ok());
  const at::Tensor draw_after_save = torch::rand({4});

  TrainingRun restored(2);  // other initial weights, no optimizer state
  TrainerState restored_state;
  auto found = RestoreCheckpoint(dir_, *restored.model, restored.optimizer, &restored_state);
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_TRUE(*found);
  ExpectSameWeights(*saved.model, *restored.model);
  EXPECT_EQ(restored_state.global_step, 3);
  EXPECT_EQ(restored_state.epoch, 1);
  EXPECT_EQ(restored_state.batch_in_epoch, 2);
  EXPECT_EQ(restored_state.loss_sum, 1.25);
  EXPECT_EQ(restored_state.loss_count, 5);
  EXPECT_EQ(restored_state.best_metric, 0.75);
  EXPECT_EQ(restored_state.evaluations_without_improvement, 1);
  EXPECT_TRUE(torch::equal(torch::rand({4}), draw_after_save)) << "the random state was not restored";
  // Same moments and step counts: the next step lands on the same weights.
  saved.Step(4);
  restored.Step(4);
  ExpectSameWeights(*saved.model, *restored.model);
}

TEST_F(CheckpointingTest, NoCheckpointIsNotAnError) {
  TrainingRun run(1);
  TrainerState state;
  auto found = RestoreCheckpoint(dir_, *run.model, run.optimizer, &state);
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_FALSE(*found);
}

TEST_F(CheckpointingTest, SaveTotalLimitKeepsTheNewestAndLatestNamesTheLast) {
  TrainingRun run(1);
  TrainerState state;
  for (int step = 1; step <= 4; ++step) {
    run.Step(step);
    state.global_step = step;
    ASSERT_TRUE(SaveCheckpoint(dir_, *run.model, run.optimizer, state, 2).ok());
  }
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir_)) names.push_back(entry.path().filename().string());
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"checkpoint-3", "checkpoint-4", "latest"}));
  EXPECT_EQ(testing::ReadWholeFile(Path("latest")), "checkpoint-4");
}

// Two jobs on two CPU workers checkpoint at the same time (TrainingJobsTest runs them through the
// server; the TSan build runs this one to see the saves themselves race or not).
TEST_F(CheckpointingTest, TwoRunsCheckpointingAtOnceEachRestoreTheirOwn) {
  constexpr int kSteps = 6;
  std::vector<std::unique_ptr<TrainingRun>> runs;
  for (int seed : {1, 2}) runs.push_back(std::make_unique<TrainingRun>(seed));
  std::vector<absl::Status> results(runs.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < runs.size(); ++i) {
    threads.emplace_back([&, i] {
      const std::string work_dir = Path("run-" + std::to_string(i));
      TrainerState state;
      for (int step = 1; step <= kSteps && results[i].ok(); ++step) {
        runs[i]->Step(step);
        state.global_step = step;
        results[i] = SaveCheckpoint(work_dir, *runs[i]->model, runs[i]->optimizer, state, 2);
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (size_t i = 0; i < runs.size(); ++i) {
    ASSERT_TRUE(results[i].ok()) << "run " << i << ": " << results[i];
    TrainingRun restored(7);
    TrainerState state;
    auto found = RestoreCheckpoint(Path("run-" + std::to_string(i)), *restored.model, restored.optimizer, &state);
    ASSERT_TRUE(found.ok()) << found.status();
    ASSERT_TRUE(*found);
    EXPECT_EQ(state.global_step, kSteps);
    ExpectSameWeights(*runs[i]->model, *restored.model);
    runs[i]->Step(kSteps + 1);
    restored.Step(kSteps + 1);
    ExpectSameWeights(*runs[i]->model, *restored.model);
  }
}

}  // namespace
}  // namespace bertd::training
