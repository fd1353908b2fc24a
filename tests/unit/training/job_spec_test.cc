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

}  // namespace
}  // namespace bertd::training
