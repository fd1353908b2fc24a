// TrainingPlan: what the server hands a worker process must survive the trip through plan.json,
// and a plan that cannot run says why before anything trains.
#include "jobs/training_plan.h"

#include <fstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "test_util.h"

namespace bertd::jobs {
namespace {

using ::testing::HasSubstr;

TrainingPlan SamplePlan() {
  TrainingPlan plan;
  plan.job_id = "job-0123456789ab";
  plan.spec_json = R"({"task":"sequence_classification","base_model":"tiny","train_dataset":"d",)"
                   R"("output_model":"out","distributed":{"world_size":2}})";
  plan.base_model_dir = "/data/models/tiny/1";
  plan.train = {"/data/datasets/ds-1/data.tsv",
                R"({"format":"tsv","has_header":true,"text":{"name":"sentence"},"label":{"index":1}})"};
  plan.work_dir = "/data/jobs/job-0123456789ab/work";
  plan.output_dir = "/data/models/out/3";
  plan.intra_op_threads = 4;
  return plan;
}

TEST(TrainingPlanTest, RoundTripsThroughJson) {
  const TrainingPlan plan = SamplePlan();
  auto parsed = TrainingPlan::FromJson(plan.ToJson());
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->job_id, plan.job_id);
  EXPECT_EQ(parsed->base_model_dir, plan.base_model_dir);
  EXPECT_EQ(parsed->train.path, plan.train.path);
  EXPECT_TRUE(parsed->eval.path.empty());
  EXPECT_EQ(parsed->work_dir, plan.work_dir);
  EXPECT_EQ(parsed->output_dir, plan.output_dir);
  EXPECT_EQ(parsed->intra_op_threads, 4);
  EXPECT_EQ(parsed->ToJson(), plan.ToJson());
  auto spec = DatasetSpecFromJson(parsed->train.spec_json);
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->text->name, "sentence");
  EXPECT_EQ(spec->label->index, 1);
}

TEST(TrainingPlanTest, RefusesPlansWithoutTheirParts) {
  EXPECT_THAT(TrainingPlan::FromJson("[]").status().message(), HasSubstr("expected a JSON object"));
  EXPECT_THAT(TrainingPlan::FromJson(R"({"spec": {}, "work_dir": "w", "output_dir": "o"})").status().message(),
              HasSubstr("train, work_dir and output_dir are required"));
  EXPECT_THAT(TrainingPlan::FromJson(R"({"spec": {}, "train": {"path": 3}})").status().message(),
              HasSubstr("train: expected {path, spec}"));
}

TEST(TrainingPlanTest, ExecuteNamesAMissingDatasetFileBeforeTraining) {
  TrainingPlan plan = SamplePlan();
  plan.train.path = bertd::testing::MakeTempDir("plan") + "/gone.tsv";
  absl::Status status = ExecutePlan(plan, {});
  EXPECT_FALSE(status.ok());
  EXPECT_THAT(std::string(status.message()), HasSubstr("gone.tsv"));
}

TEST(SplitForEvalTest, SameSeedSameSplitAndTheRequestedShare) {
  std::vector<data::Example> examples(100);
  for (int i = 0; i < 100; ++i) examples[i].text = std::to_string(i);
  std::vector<data::Example> train_a, eval_a, train_b, eval_b, train_c, eval_c;
  SplitForEval(examples, 0.2, 7, &train_a, &eval_a);
  SplitForEval(examples, 0.2, 7, &train_b, &eval_b);
  SplitForEval(examples, 0.2, 8, &train_c, &eval_c);
  ASSERT_EQ(eval_a.size(), 20u);
  ASSERT_EQ(train_a.size(), 80u);
  std::vector<std::string> a, b, c;
  for (const auto& e : eval_a) a.push_back(e.text);
  for (const auto& e : eval_b) b.push_back(e.text);
  for (const auto& e : eval_c) c.push_back(e.text);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  // Both parts keep file order.
  EXPECT_TRUE(std::is_sorted(train_a.begin(), train_a.end(), [](const auto& x, const auto& y) {
    return std::stoi(x.text) < std::stoi(y.text);
  }));
}

}  // namespace
}  // namespace bertd::jobs
