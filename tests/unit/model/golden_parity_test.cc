// Parity with the independent reference outputs in shared/fixtures/tiny-bert/golden.json.
#include <torch/torch.h>

#include <filesystem>

#include "absl/strings/match.h"

#include "golden_fixture.h"
#include "gtest/gtest.h"
#include "model/checkpoint.h"

namespace bertd::model {
namespace {

using testing::Golden;
using testing::MatchesGolden;
using testing::SharedPath;

constexpr char kGolden[] = "fixtures/tiny-bert/golden.json";

LoadedBert LoadFixture(const std::string& dir) {
  absl::StatusOr<LoadedBert> loaded = LoadBertFromDirectory(dir);
  EXPECT_TRUE(loaded.ok()) << loaded.status();
  if (!loaded.ok()) return {};
  EXPECT_TRUE(loaded->report.missing.empty()) << loaded->report.Warnings()[0];
  EXPECT_TRUE(loaded->report.unexpected.empty());
  return *std::move(loaded);
}

TEST(GoldenParityTest, PreTrainingHeadsMatchReference) {
  BERTD_REQUIRE_SHARED(kGolden);
  Golden golden = Golden::Load();
  LoadedBert loaded = LoadFixture(SharedPath("fixtures/tiny-bert/pretraining"));
  ASSERT_TRUE(loaded.model);
  torch::InferenceMode guard;
  BertOutputs out = loaded.model->forward(golden.inputs);
  const at::Tensor& mask = golden.inputs.attention_mask;
  EXPECT_TRUE(MatchesGolden(out.last_hidden_state, golden.Expected("last_hidden_state"), mask));
  EXPECT_TRUE(MatchesGolden(out.pooler_output, golden.Expected("pooler_output")));
  EXPECT_TRUE(MatchesGolden(out.nsp_logits, golden.Expected("nsp_logits")));
  at::Tensor mlm_at_1 = loaded.model->MlmLogits(out.last_hidden_state.select(1, 1));
  EXPECT_TRUE(MatchesGolden(mlm_at_1, golden.Expected("mlm_logits_at_position_1")));
  // The full [B,T,V] path agrees with the per-position one.
  BertOutputs full = loaded.model->forward(golden.inputs, /*with_mlm_logits=*/true);
  EXPECT_TRUE(torch::allclose(full.mlm_logits.select(1, 1), mlm_at_1, 1e-5, 1e-5));
}

TEST(GoldenParityTest, ClassifierFromSafetensorsMatchesReference) {
  BERTD_REQUIRE_SHARED(kGolden);
  Golden golden = Golden::Load();
  LoadedBert loaded = LoadFixture(SharedPath("fixtures/tiny-bert/classifier"));
  ASSERT_TRUE(loaded.model);
  EXPECT_TRUE(absl::EndsWith(loaded.report.weights_path, "model.safetensors"));
  EXPECT_EQ(loaded.config.LabelName(2), "positive");
  torch::InferenceMode guard;
  BertOutputs out = loaded.model->forward(golden.inputs);
  EXPECT_TRUE(MatchesGolden(out.last_hidden_state, golden.Expected("last_hidden_state"),
                            golden.inputs.attention_mask));
  EXPECT_TRUE(MatchesGolden(out.pooler_output, golden.Expected("pooler_output")));
  EXPECT_TRUE(MatchesGolden(out.classifier_logits, golden.Expected("classifier_logits")));
}

TEST(GoldenParityTest, ClassifierFromPytorchModelBinMatchesReference) {
  BERTD_REQUIRE_SHARED(kGolden);
  Golden golden = Golden::Load();
  // A directory with only pytorch_model.bin, so the torch.save path is the one exercised.
  namespace fs = std::filesystem;
  fs::path dir = testing::MakeTempDir("bin-only");
  fs::copy_file(SharedPath("fixtures/tiny-bert/classifier/config.json"), dir / "config.json");
  fs::copy_file(SharedPath("fixtures/tiny-bert/classifier/pytorch_model.bin"),
                dir / "pytorch_model.bin");
  LoadedBert loaded = LoadFixture(dir.string());
  ASSERT_TRUE(loaded.model);
  EXPECT_TRUE(absl::EndsWith(loaded.report.weights_path, "pytorch_model.bin"));
  torch::InferenceMode guard;
  BertOutputs out = loaded.model->forward(golden.inputs);
  EXPECT_TRUE(MatchesGolden(out.last_hidden_state, golden.Expected("last_hidden_state"),
                            golden.inputs.attention_mask));
  EXPECT_TRUE(MatchesGolden(out.pooler_output, golden.Expected("pooler_output")));
  EXPECT_TRUE(MatchesGolden(out.classifier_logits, golden.Expected("classifier_logits")));
  fs::remove_all(dir);
}

TEST(GoldenParityTest, QuestionAnsweringMatchesReference) {
  BERTD_REQUIRE_SHARED(kGolden);
  Golden golden = Golden::Load();
  LoadedBert loaded = LoadFixture(SharedPath("fixtures/tiny-bert/qa"));
  ASSERT_TRUE(loaded.model);
  EXPECT_FALSE(loaded.model->heads().pooler);
  torch::InferenceMode guard;
  BertOutputs out = loaded.model->forward(golden.inputs);
  const at::Tensor& mask = golden.inputs.attention_mask;
  EXPECT_FALSE(out.pooler_output.defined());
  EXPECT_TRUE(MatchesGolden(out.last_hidden_state, golden.Expected("last_hidden_state"), mask));
  EXPECT_TRUE(MatchesGolden(out.start_logits, golden.Expected("qa_start_logits"), mask));
  EXPECT_TRUE(MatchesGolden(out.end_logits, golden.Expected("qa_end_logits"), mask));
}

TEST(GoldenParityTest, PaddingDoesNotChangeRealTokens) {
  BERTD_REQUIRE_SHARED(kGolden);
  Golden golden = Golden::Load();
  LoadedBert loaded = LoadFixture(SharedPath("fixtures/tiny-bert/classifier"));
  ASSERT_TRUE(loaded.model);
  torch::InferenceMode guard;
  // Row 0 alone, cut to its 12 real tokens, gives the same outputs as inside the padded batch.
  BertInputs single{golden.inputs.input_ids.slice(0, 0, 1).slice(1, 0, 12),
                    golden.inputs.token_type_ids.slice(0, 0, 1).slice(1, 0, 12),
                    golden.inputs.attention_mask.slice(0, 0, 1).slice(1, 0, 12)};
  BertOutputs alone = loaded.model->forward(single);
  BertOutputs batched = loaded.model->forward(golden.inputs);
  EXPECT_TRUE(torch::allclose(alone.classifier_logits, batched.classifier_logits.slice(0, 0, 1),
                              1e-5, 1e-5));
}

}  // namespace
}  // namespace bertd::model
