#include "runtime/from_torch.h"

#include <torch/torch.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"

namespace bertd::runtime {
namespace {

// The fp32 CPU data of a named parameter, or an error naming it.
absl::StatusOr<const float*> Data(torch::OrderedDict<std::string, at::Tensor>& params,
                                  const std::string& name, int64_t numel) {
  at::Tensor* tensor = params.find(name);
  if (tensor == nullptr) return absl::InvalidArgumentError(absl::StrCat(name, ": missing"));
  if (!tensor->device().is_cpu() || tensor->scalar_type() != at::kFloat ||
      !tensor->is_contiguous()) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, ": expected a contiguous float32 CPU tensor"));
  }
  if (tensor->numel() != numel) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, ": ", tensor->numel(), " values, expected ", numel));
  }
  return tensor->data_ptr<float>();
}

}  // namespace

absl::Status CheckFastPathSupport(model::BertImpl& model) {
  const model::BertConfig& config = model.config();
  if (config.position_embedding_type != "absolute") {
    return absl::UnimplementedError(absl::StrCat("position_embedding_type '",
                                                 config.position_embedding_type,
                                                 "' (the fast path has absolute positions only)"));
  }
  for (const auto& param : model.parameters()) {
    if (!param.device().is_cpu() || param.scalar_type() != at::kFloat) {
      return absl::UnimplementedError("parameters are not float32 on the CPU");
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<FastBert>> PackEncoder(model::BertImpl& model,
                                                      const FastBertOptions& options,
                                                      bool release_encoder_weights) {
  if (absl::Status supported = CheckFastPathSupport(model); !supported.ok()) return supported;
  const model::BertConfig& c = model.config();
  EncoderConfig config;
  config.hidden_size = c.hidden_size;
  config.num_layers = c.num_hidden_layers;
  config.num_heads = c.num_attention_heads;
  config.intermediate_size = c.intermediate_size;
  config.vocab_size = c.vocab_size;
  config.max_positions = c.max_position_embeddings;
  config.type_vocab_size = c.type_vocab_size;
  config.layer_norm_eps = static_cast<float>(c.layer_norm_eps);
  config.activation = c.hidden_act;

  torch::NoGradGuard no_grad;
  auto params = model.bert->named_parameters();
  const int64_t h = c.hidden_size, inter = c.intermediate_size;
  EncoderWeights weights;
#define BERTD_ASSIGN_DATA(lhs, name, numel)           \
  {                                                   \
    auto data = Data(params, name, numel);            \
    if (!data.ok()) return data.status();             \
    lhs = *data;                                      \
  }
  BERTD_ASSIGN_DATA(weights.word_embeddings, "embeddings.word_embeddings.weight",
                    int64_t{c.vocab_size} * h);
  BERTD_ASSIGN_DATA(weights.position_embeddings, "embeddings.position_embeddings.weight",
                    int64_t{c.max_position_embeddings} * h);
  BERTD_ASSIGN_DATA(weights.token_type_embeddings, "embeddings.token_type_embeddings.weight",
                    int64_t{c.type_vocab_size} * h);
  BERTD_ASSIGN_DATA(weights.embedding_norm.gamma, "embeddings.LayerNorm.weight", h);
  BERTD_ASSIGN_DATA(weights.embedding_norm.beta, "embeddings.LayerNorm.bias", h);
  auto dense = [&](DenseView& view, const std::string& prefix, int64_t in,
                   int64_t out) -> absl::Status {
    auto w = Data(params, prefix + ".weight", in * out);
    if (!w.ok()) return w.status();
    auto b = Data(params, prefix + ".bias", out);
    if (!b.ok()) return b.status();
    view = {*w, *b};
    return absl::OkStatus();
  };
  auto norm = [&](NormView& view, const std::string& prefix) -> absl::Status {
    auto g = Data(params, prefix + ".weight", h);
    if (!g.ok()) return g.status();
    auto b = Data(params, prefix + ".bias", h);
    if (!b.ok()) return b.status();
    view = {*g, *b};
    return absl::OkStatus();
  };
  for (int i = 0; i < c.num_hidden_layers; ++i) {
    const std::string p = absl::StrCat("encoder.layer.", i, ".");
    LayerView layer;
    for (absl::Status s :
         {dense(layer.query, p + "attention.self.query", h, h),
          dense(layer.key, p + "attention.self.key", h, h),
          dense(layer.value, p + "attention.self.value", h, h),
          dense(layer.attention_output, p + "attention.output.dense", h, h),
          norm(layer.attention_norm, p + "attention.output.LayerNorm"),
          dense(layer.intermediate, p + "intermediate.dense", h, inter),
          dense(layer.output, p + "output.dense", inter, h),
          norm(layer.output_norm, p + "output.LayerNorm")}) {
      if (!s.ok()) return s;
    }
    weights.layers.push_back(layer);
  }
#undef BERTD_ASSIGN_DATA
  // The tables stay in the model's tensors; holding the tensors keeps them alive.
  auto tables = std::make_shared<std::vector<at::Tensor>>(std::vector<at::Tensor>{
      model.bert->embeddings->word_embeddings->weight,
      model.bert->embeddings->position_embeddings->weight,
      model.bert->embeddings->token_type_embeddings->weight});
  weights.embeddings_owner = tables;

  auto fast = FastBert::Create(config, weights, options);
  if (!fast.ok()) return fast.status();
  if (release_encoder_weights) {
    for (auto& item : model.bert->layers->named_parameters()) {
      item.value().set_data(at::empty({0}, item.value().options()));
    }
  }
  return fast;
}

}  // namespace bertd::runtime
