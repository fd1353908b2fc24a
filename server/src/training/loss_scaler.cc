#include "training/loss_scaler.h"

#include <torch/torch.h>

#include <algorithm>

namespace bertd::training {

LossScaler::LossScaler(LossScalerOptions options) : options_(options) {
  state_.scale = options_.enabled ? options_.initial_scale : 1.0;
}

at::Tensor LossScaler::Scale(const at::Tensor& loss) const {
  if (!options_.enabled) return loss;
  return loss * state_.scale;
}

bool LossScaler::UnscaleAndCheck(const std::vector<at::Tensor>& parameters) const {
  if (!options_.enabled) return false;
  torch::NoGradGuard no_grad;
  const double inverse = 1.0 / state_.scale;
  // One flag kept on the gradients' device and read once at the end: a single host
  // synchronization per step, not one per parameter.
  at::Tensor non_finite;
  for (const at::Tensor& parameter : parameters) {
    at::Tensor grad = parameter.grad();
    if (!grad.defined()) continue;
    grad.mul_(inverse);
    at::Tensor bad = grad.isfinite().logical_not().any();
    non_finite = non_finite.defined() ? non_finite.logical_or(bad.to(non_finite.device())) : bad;
  }
  return non_finite.defined() && non_finite.item<bool>();
}

void LossScaler::Update(bool found_inf) {
  if (!options_.enabled) return;
  if (found_inf) {
    state_.scale = std::max(options_.min_scale, state_.scale * options_.backoff_factor);
    state_.clean_steps = 0;
    ++state_.skipped_steps;
    return;
  }
  if (++state_.clean_steps >= options_.growth_interval) {
    state_.scale *= options_.growth_factor;
    state_.clean_steps = 0;
  }
}

}  // namespace bertd::training
