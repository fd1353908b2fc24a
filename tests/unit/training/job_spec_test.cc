#include "training/job_spec.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

namespace bertd::training {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kRequired[] =
    R"("task": "sequence_classification", "base_model": "m", "train_dataset": "d", "output_model": "o")";

// A wrong value is named by its type, never echoed: a client's JSON is never serialized back.
TEST(JobSpecTest, WrongTypesAreNamedNotEchoed) {
  const std::string nested = std::string(60, '[') + "\"secret-value\"" + std::string(60, ']');
  absl::StatusOr<TrainingJobSpec> spec = TrainingJobSpec::FromJson(
      std::string("{") + kRequired + R"(, "hyperparameters": {"per_device_train_batch_size": )" +
      nested + "}}");
  ASSERT_FALSE(spec.ok());
  EXPECT_EQ(spec.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(spec.status().message()),
              HasSubstr("hyperparameters.per_device_train_batch_size: expected an integer, got array"));
  EXPECT_THAT(std::string(spec.status().message()), Not(HasSubstr("secret-value")));

  spec = TrainingJobSpec::FromJson(std::string("{") + kRequired +
                                   R"(, "hyperparameters": {"learning_rate": "fast"}})");
  ASSERT_FALSE(spec.ok());
  EXPECT_THAT(std::string(spec.status().message()),
              HasSubstr("hyperparameters.learning_rate: expected a number, got string"));
  EXPECT_THAT(std::string(spec.status().message()), Not(HasSubstr("fast")));
}

TEST(JobSpecTest, Fp16IsForCudaSlotsOnlyAndExcludesBf16) {
  auto parse = [](const std::string& extra) {
    return TrainingJobSpec::FromJson(std::string("{") + kRequired + ", " + extra + "}");
  };
  absl::StatusOr<TrainingJobSpec> cpu = parse(R"("hyperparameters": {"fp16": true})");
  ASSERT_FALSE(cpu.ok());
  EXPECT_THAT(std::string(cpu.status().message()),
              HasSubstr("hyperparameters.fp16: fp16 mixed precision runs on CUDA slots only"));
  absl::StatusOr<TrainingJobSpec> both =
      parse(R"("hyperparameters": {"fp16": true, "bf16": true}, "resources": {"device": "cuda"})");
  ASSERT_FALSE(both.ok());
  EXPECT_THAT(std::string(both.status().message()), HasSubstr("fp16 and bf16 are exclusive"));
  absl::StatusOr<TrainingJobSpec> cuda =
      parse(R"("hyperparameters": {"fp16": true}, "resources": {"device": "cuda"})");
  ASSERT_TRUE(cuda.ok()) << cuda.status();
  EXPECT_TRUE(cuda->args.fp16);
  // It survives the spec's own JSON (what the store and the worker read).
  absl::StatusOr<TrainingJobSpec> again = TrainingJobSpec::FromJson(cuda->ToJson());
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_TRUE(again->args.fp16);
}

}  // namespace
}  // namespace bertd::training
