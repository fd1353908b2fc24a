#ifndef BERTD_TRAINING_LOSS_SCALER_H_
#define BERTD_TRAINING_LOSS_SCALER_H_

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

// Dynamic loss scaling for fp16 mixed precision, as torch.cuda.amp.GradScaler does (LibTorch
// 1.13's C++ API has none). fp16 gradients of small losses underflow to zero; multiplying the loss
// by a large scale before backward keeps them representable, and the gradients are divided by it
// again before clipping and the optimizer step. A step whose gradients hold inf or nan (the scale
// was too large) is skipped and the scale halved; after `growth_interval` clean steps in a row it
// doubles. Disabled (fp32, bf16), it is the identity and never skips.
namespace bertd::training {

struct LossScalerOptions {
  bool enabled = false;
  double initial_scale = 65536.0;  // 2^16, GradScaler's default
  double growth_factor = 2.0;
  double backoff_factor = 0.5;
  int64_t growth_interval = 2000;
  // The scale never goes below this (a model whose gradients are inf at any scale still fails,
  // through the loss check of the training loop, instead of scaling to zero).
  double min_scale = 1.0;
};

// What a checkpoint keeps, so that a resumed run scales exactly as the uninterrupted one.
struct LossScalerState {
  double scale = 1.0;
  int64_t clean_steps = 0;  // steps without inf/nan since the last change of scale
  int64_t skipped_steps = 0;
};

class LossScaler {
 public:
  explicit LossScaler(LossScalerOptions options);

  bool enabled() const { return options_.enabled; }
  double scale() const { return state_.scale; }
  const LossScalerState& state() const { return state_; }
  void Restore(const LossScalerState& state) { state_ = state; }

  // loss x scale (the loss itself when disabled).
  at::Tensor Scale(const at::Tensor& loss) const;

  // Divides every defined gradient of `parameters` by the scale, in place, and says whether any
  // of them holds inf or nan (then the step must be skipped). Disabled: touches nothing, false.
  bool UnscaleAndCheck(const std::vector<at::Tensor>& parameters) const;

  // After a step: `found_inf` backs the scale off and counts a skipped step; otherwise a clean step,
  // and every growth_interval clean steps the scale grows.
  void Update(bool found_inf);

 private:
  const LossScalerOptions options_;
  LossScalerState state_;
};

}  // namespace bertd::training

#endif  // BERTD_TRAINING_LOSS_SCALER_H_
