#ifndef BERTD_TRAINING_OPTIMIZER_H_
#define BERTD_TRAINING_OPTIMIZER_H_

#include <torch/nn/module.h>
#include <torch/optim/adamw.h>

#include <memory>
#include <string>

namespace bertd::training {

struct AdamWSettings {
  double learning_rate = 5e-5;
  double weight_decay = 0.0;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double epsilon = 1e-8;
};

// Hugging Face's rule: biases and LayerNorm weights are never decayed.
bool DecaysWeight(const std::string& parameter_name);

// torch.optim.AdamW over two parameter groups (decayed, not decayed), in named_parameters()
// order, exactly as the Hugging Face Trainer builds it.
std::unique_ptr<torch::optim::AdamW> MakeAdamW(torch::nn::Module& model, const AdamWSettings& settings);

// Sets every group's learning rate (schedules change it before each update).
void SetLearningRate(torch::optim::Optimizer& optimizer, double learning_rate);

// Scales gradients so their global 2-norm is at most `max_norm` (torch.nn.utils.clip_grad_norm_);
// returns the norm before clipping. max_norm <= 0 only measures.
double ClipGradientNorm(torch::nn::Module& model, double max_norm);

}  // namespace bertd::training

#endif  // BERTD_TRAINING_OPTIMIZER_H_
