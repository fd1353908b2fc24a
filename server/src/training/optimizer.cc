#include "training/optimizer.h"

#include <torch/torch.h>

namespace bertd::training {

bool DecaysWeight(const std::string& parameter_name) {
  return parameter_name.find("bias") == std::string::npos &&
         parameter_name.find("LayerNorm.weight") == std::string::npos;
}

std::unique_ptr<torch::optim::AdamW> MakeAdamW(torch::nn::Module& model,
                                               const AdamWSettings& settings) {
  std::vector<at::Tensor> decayed;
  std::vector<at::Tensor> not_decayed;
  for (const auto& item : model.named_parameters()) {
    if (!item.value().requires_grad()) continue;
    (DecaysWeight(item.key()) ? decayed : not_decayed).push_back(item.value());
  }
  auto options = [&](double weight_decay) {
    return torch::optim::AdamWOptions(settings.learning_rate)
        .betas({settings.beta1, settings.beta2})
        .eps(settings.epsilon)
        .weight_decay(weight_decay);
  };
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(decayed, std::make_unique<torch::optim::AdamWOptions>(options(settings.weight_decay)));
  groups.emplace_back(not_decayed, std::make_unique<torch::optim::AdamWOptions>(options(0.0)));
  return std::make_unique<torch::optim::AdamW>(std::move(groups), options(settings.weight_decay));
}

void SetLearningRate(torch::optim::Optimizer& optimizer, double learning_rate) {
  for (auto& group : optimizer.param_groups()) {
    static_cast<torch::optim::AdamWOptions&>(group.options()).lr(learning_rate);
  }
}

double ClipGradientNorm(torch::nn::Module& model, double max_norm) {
  std::vector<at::Tensor> parameters;
  for (const auto& parameter : model.parameters()) {
    if (parameter.grad().defined()) parameters.push_back(parameter);
  }
  if (parameters.empty()) return 0.0;
  if (max_norm <= 0) {
    std::vector<at::Tensor> norms;
    for (const auto& p : parameters) norms.push_back(p.grad().norm());
    return torch::stack(norms).norm().item<double>();
  }
  return torch::nn::utils::clip_grad_norm_(parameters, max_norm);
}

}  // namespace bertd::training
