// The fp16 loss scaler (issue #17, acceptance 5), on the CPU: its logic does not depend on the
// device, only the tensors it reads do.
#include "training/loss_scaler.h"

#include <torch/torch.h>

#include <gtest/gtest.h>

#include <limits>
#include <vector>

namespace bertd::training {
namespace {

// A parameter whose gradient is `grad`.
at::Tensor WithGrad(std::vector<float> grad) {
  at::Tensor parameter = torch::zeros({static_cast<int64_t>(grad.size())}, torch::requires_grad());
  parameter.mutable_grad() = torch::tensor(grad);
  return parameter;
}

LossScalerOptions Enabled(int64_t growth_interval = 3) {
  LossScalerOptions options;
  options.enabled = true;
  options.initial_scale = 1024;
  options.growth_interval = growth_interval;
  return options;
}

TEST(LossScalerTest, ScalesTheLossAndUnscalesGradientsToWhatUnscaledBackwardGives) {
  LossScaler scaler(Enabled());
  // d(sum(w * x))/dw = x: with the loss scaled, backward gives 1024 x; unscaled, x again.
  at::Tensor x = torch::tensor({0.5f, -2.0f, 1e-6f});
  at::Tensor w = torch::ones({3}, torch::requires_grad());
  at::Tensor loss = (w * x).sum();
  at::Tensor scaled = scaler.Scale(loss);
  EXPECT_FLOAT_EQ(scaled.item<float>(), loss.item<float>() * 1024);
  scaled.backward();
  EXPECT_TRUE(torch::allclose(w.grad(), x * 1024));
  EXPECT_FALSE(scaler.UnscaleAndCheck({w}));
  EXPECT_TRUE(torch::allclose(w.grad(), x, /*rtol=*/0, /*atol=*/1e-12));
}

TEST(LossScalerTest, GradientsWithInfOrNanSkipTheStepAndHalveTheScale) {
  for (float bad : {std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
                    std::numeric_limits<float>::quiet_NaN()}) {
    LossScaler scaler(Enabled());
    const std::vector<at::Tensor> parameters = {WithGrad({1, 2}), WithGrad({3, bad}),
                                                torch::zeros({2}, torch::requires_grad())};  // no grad
    EXPECT_TRUE(scaler.UnscaleAndCheck(parameters)) << bad;
    scaler.Update(true);
    EXPECT_EQ(scaler.scale(), 512);
    EXPECT_EQ(scaler.state().skipped_steps, 1);
    EXPECT_EQ(scaler.state().clean_steps, 0);
  }
}

TEST(LossScalerTest, GrowsAfterGrowthIntervalCleanStepsAndAnOverflowRestartsTheCount) {
  LossScaler scaler(Enabled(/*growth_interval=*/3));
  scaler.Update(false);
  scaler.Update(false);
  EXPECT_EQ(scaler.scale(), 1024);
  scaler.Update(false);
  EXPECT_EQ(scaler.scale(), 2048);  // third clean step in a row
  EXPECT_EQ(scaler.state().clean_steps, 0);
  scaler.Update(false);
  scaler.Update(false);
  scaler.Update(true);  // overflow: halve and start counting again
  EXPECT_EQ(scaler.scale(), 1024);
  scaler.Update(false);
  scaler.Update(false);
  EXPECT_EQ(scaler.scale(), 1024);
  scaler.Update(false);
  EXPECT_EQ(scaler.scale(), 2048);
}

TEST(LossScalerTest, NeverBacksOffBelowItsFloor) {
  LossScalerOptions options = Enabled();
  options.initial_scale = 4;
  LossScaler scaler(options);
  for (int i = 0; i < 10; ++i) scaler.Update(true);
  EXPECT_EQ(scaler.scale(), 1);
  EXPECT_EQ(scaler.state().skipped_steps, 10);
}

TEST(LossScalerTest, RestoredStateContinuesExactly) {
  LossScaler first(Enabled(3));
  first.Update(false);
  first.Update(true);
  first.Update(false);
  LossScaler second(Enabled(3));
  second.Restore(first.state());
  for (LossScaler* s : {&first, &second}) {
    s->Update(false);
    s->Update(false);
  }
  EXPECT_EQ(first.scale(), second.scale());
  EXPECT_EQ(first.scale(), 1024);  // 512 after the overflow, doubled after 3 clean steps
}

// fp32 (and bf16) training: the scaler is the identity, never skips and never touches gradients.
TEST(LossScalerTest, DisabledLeavesFp32TrainingUntouched) {
  LossScaler scaler(LossScalerOptions{});
  EXPECT_FALSE(scaler.enabled());
  EXPECT_EQ(scaler.scale(), 1);
  at::Tensor loss = torch::tensor(3.25f);
  at::Tensor same = scaler.Scale(loss);
  EXPECT_TRUE(same.is_same(loss));
  const at::Tensor inf = WithGrad({1, std::numeric_limits<float>::infinity()});
  const at::Tensor before = inf.grad().clone();
  EXPECT_FALSE(scaler.UnscaleAndCheck({inf}));  // fp32 never skips: the loss check reports it
  EXPECT_TRUE(torch::equal(inf.grad(), before));
  scaler.Update(true);
  EXPECT_EQ(scaler.scale(), 1);
  EXPECT_EQ(scaler.state().skipped_steps, 0);
}

}  // namespace
}  // namespace bertd::training
