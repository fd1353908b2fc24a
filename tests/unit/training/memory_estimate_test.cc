#include "training/memory_estimate.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

namespace bertd::training {
namespace {

model::BertConfig SmallConfig() {
  model::BertConfig config;
  config.vocab_size = 1000;
  config.hidden_size = 64;
  config.num_hidden_layers = 3;
  config.num_attention_heads = 4;
  config.intermediate_size = 96;
  config.max_position_embeddings = 128;
  config.num_labels = 5;
  return config;
}

int64_t RealParameters(const model::BertConfig& config, model::Architecture architecture) {
  model::Bert bert(config, model::HeadSet::ForArchitecture(architecture));
  int64_t count = 0;
  // Tied weights appear once among parameters(): the count of distinct tensors.
  for (const at::Tensor& p : bert->parameters()) count += p.numel();
  return count;
}

// The count from the layer shapes against the LibTorch model bertd trains, for every task.
TEST(MemoryEstimateTest, CountsTheParametersOfTheModelEachTaskTrains) {
  for (TrainingTask task : {TrainingTask::kSequenceClassification, TrainingTask::kNextSentence,
                            TrainingTask::kSpanExtraction, TrainingTask::kPretraining}) {
    const model::Architecture architecture = ArchitectureFor(task);
    SCOPED_TRACE(std::string(model::ArchitectureName(architecture)));
    model::BertConfig config = SmallConfig();
    EXPECT_EQ(CountParameters(config, model::HeadSet::ForArchitecture(architecture)),
              RealParameters(config, architecture));
  }
  // BERT-base's published size.
  model::BertConfig base;
  base.num_labels = 2;
  const int64_t count =
      CountParameters(base, model::HeadSet::ForArchitecture(model::Architecture::kBertForSequenceClassification));
  EXPECT_EQ(count, 109483778);
}

TEST(MemoryEstimateTest, GrowsWithTheBatchAndTheSequence) {
  TrainingArguments args;
  args.per_device_train_batch_size = 8;
  args.max_seq_length = 64;
  const model::BertConfig config = SmallConfig();
  const MemoryEstimate small = EstimateTrainingMemory(config, TrainingTask::kSequenceClassification,
                                                      args, PretrainingOptions{});
  EXPECT_EQ(small.state_bytes, small.parameters * 16);
  EXPECT_EQ(small.runtime_bytes, kWorkerRuntimeBytes);
  args.per_device_train_batch_size = 16;
  const MemoryEstimate twice = EstimateTrainingMemory(config, TrainingTask::kSequenceClassification,
                                                      args, PretrainingOptions{});
  EXPECT_EQ(twice.activation_bytes, 2 * small.activation_bytes);
  // Attention is quadratic in the sequence: doubling it more than doubles activations.
  args.per_device_train_batch_size = 8;
  args.max_seq_length = 128;
  const MemoryEstimate longer = EstimateTrainingMemory(config, TrainingTask::kSequenceClassification,
                                                       args, PretrainingOptions{});
  EXPECT_GT(longer.activation_bytes, 2 * small.activation_bytes);
  // Sequences never exceed the model's positions.
  args.max_seq_length = 4096;
  EXPECT_EQ(EstimateTrainingMemory(config, TrainingTask::kSequenceClassification, args,
                                   PretrainingOptions{}).activation_bytes,
            longer.activation_bytes);
}

TEST(MemoryEstimateTest, DescribesItsParts) {
  TrainingArguments args;
  args.per_device_train_batch_size = 32;
  args.max_seq_length = 512;
  model::BertConfig base;
  const MemoryEstimate estimate =
      EstimateTrainingMemory(base, TrainingTask::kSequenceClassification, args, PretrainingOptions{});
  EXPECT_THAT(estimate.Describe(32, 512),
              ::testing::MatchesRegex("[0-9.]+ GiB \\([0-9.]+ GiB weights, gradients and AdamW "
                                      "state for 109.5M parameters, [0-9.]+ GiB activations for a "
                                      "batch of 32 x 512 tokens, 640 MiB runtime\\)"));
}

TEST(MemoryEstimateTest, FitsTheWorkerLimitTheMachineAndItsLocalRanks) {
  MemoryEstimate estimate;
  estimate.parameters = 1000;
  estimate.state_bytes = int64_t{1} << 30;
  estimate.activation_bytes = int64_t{1} << 30;
  estimate.runtime_bytes = 0;  // 2 GiB in all
  constexpr int64_t kGiB = int64_t{1} << 30;
  EXPECT_TRUE(CheckMemoryFits(estimate, 8, 128, {}).ok());
  EXPECT_TRUE(CheckMemoryFits(estimate, 8, 128, {2 * kGiB, 16 * kGiB, 8}).ok());

  absl::Status limit = CheckMemoryFits(estimate, 8, 128, {kGiB, 16 * kGiB, 1});
  EXPECT_EQ(limit.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(limit.message()),
              ::testing::StartsWith("hyperparameters.per_device_train_batch_size: the job needs an "
                                    "estimated 2 GiB"));
  EXPECT_THAT(std::string(limit.message()), ::testing::HasSubstr("over the 1 GiB a CPU training "
                                                                 "worker may use (--training_memory_limit)"));

  // Without a worker limit, the machine bounds it.
  absl::Status machine = CheckMemoryFits(estimate, 8, 128, {0, kGiB + kGiB / 2, 1});
  EXPECT_THAT(std::string(machine.message()),
              ::testing::HasSubstr("more than this machine's 1.5 GiB of memory"));
  EXPECT_THAT(std::string(machine.message()),
              ::testing::StartsWith("hyperparameters.per_device_train_batch_size:"));

  // One worker fits, eight local ranks of it do not.
  absl::Status ranks = CheckMemoryFits(estimate, 8, 128, {0, 8 * kGiB, 8});
  EXPECT_EQ(ranks.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(ranks.message()),
              ::testing::StartsWith("distributed.world_size: 8 local workers x 2 GiB"));
  EXPECT_TRUE(CheckMemoryFits(estimate, 8, 128, {0, 8 * kGiB, 4}).ok());
}

}  // namespace
}  // namespace bertd::training
