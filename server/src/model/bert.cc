#include "model/bert.h"

#include <torch/torch.h>

#include <cmath>
#include <limits>

namespace bertd::model {
namespace {

namespace F = torch::nn::functional;

// An empty module that only groups children, so that parameter paths gain Hugging Face's
// intermediate names (`encoder.layer`, `intermediate.dense`, `cls.predictions.transform`).
std::shared_ptr<torch::nn::Module> Group(torch::nn::Module& parent, const std::string& name) {
  return parent.register_module(name, std::make_shared<torch::nn::Module>());
}

torch::nn::LayerNorm MakeLayerNorm(const BertConfig& config) {
  return torch::nn::LayerNorm(
      torch::nn::LayerNormOptions({config.hidden_size}).eps(config.layer_norm_eps));
}

// The most negative finite value of a floating dtype (Python's torch.finfo(dtype).min).
double LowestValue(at::ScalarType dtype) {
  switch (dtype) {
    case at::kHalf:
      return std::numeric_limits<c10::Half>::lowest();
    case at::kBFloat16:
      return std::numeric_limits<c10::BFloat16>::lowest();
    case at::kDouble:
      return std::numeric_limits<double>::lowest();
    default:
      return std::numeric_limits<float>::lowest();
  }
}

}  // namespace

HeadSet HeadSet::ForArchitecture(Architecture architecture) {
  HeadSet heads;
  switch (architecture) {
    case Architecture::kBertModel:
      break;
    case Architecture::kBertForPreTraining:
      heads.masked_lm = heads.next_sentence = true;
      break;
    case Architecture::kBertForMaskedLM:
      heads.pooler = false;  // as Hugging Face: add_pooling_layer=False
      heads.masked_lm = true;
      break;
    case Architecture::kBertForNextSentencePrediction:
      heads.next_sentence = true;
      break;
    case Architecture::kBertForSequenceClassification:
      heads.classifier = true;
      break;
    case Architecture::kBertForQuestionAnswering:
      heads.pooler = false;
      heads.span = true;
      break;
  }
  return heads;
}

at::Tensor ApplyActivation(const at::Tensor& x, const std::string& name) {
  if (name == "gelu") return torch::gelu(x);
  if (name == "gelu_new" || name == "gelu_pytorch_tanh" || name == "gelu_fast") {
    return torch::gelu(x, "tanh");
  }
  if (name == "relu") return torch::relu(x);
  return torch::silu(x);  // silu / swish
}

bool IsTiedOrDerivedParameter(const std::string& name) {
  return name == "cls.predictions.decoder.weight" || name == "cls.predictions.decoder.bias" ||
         name == "bert.embeddings.position_ids" || name == "embeddings.position_ids";
}

BertEmbeddingsImpl::BertEmbeddingsImpl(const BertConfig& config) {
  word_embeddings = register_module(
      "word_embeddings", torch::nn::Embedding(config.vocab_size, config.hidden_size));
  position_embeddings = register_module(
      "position_embeddings",
      torch::nn::Embedding(config.max_position_embeddings, config.hidden_size));
  token_type_embeddings = register_module(
      "token_type_embeddings", torch::nn::Embedding(config.type_vocab_size, config.hidden_size));
  layer_norm = register_module("LayerNorm", MakeLayerNorm(config));
  dropout = register_module("dropout", torch::nn::Dropout(config.hidden_dropout_prob));
}

at::Tensor BertEmbeddingsImpl::forward(const at::Tensor& input_ids,
                                       const at::Tensor& token_type_ids) {
  const int64_t seq_len = input_ids.size(1);
  at::Tensor positions =
      torch::arange(seq_len, torch::TensorOptions().dtype(torch::kLong).device(input_ids.device()));
  at::Tensor embedded = word_embeddings(input_ids) + position_embeddings(positions).unsqueeze(0) +
                        token_type_embeddings(token_type_ids);
  return dropout(layer_norm(embedded));
}

BertSelfAttentionImpl::BertSelfAttentionImpl(const BertConfig& config)
    : num_heads_(config.num_attention_heads), head_size_(config.head_size()) {
  query = register_module("query", torch::nn::Linear(config.hidden_size, config.hidden_size));
  key = register_module("key", torch::nn::Linear(config.hidden_size, config.hidden_size));
  value = register_module("value", torch::nn::Linear(config.hidden_size, config.hidden_size));
  dropout = register_module("dropout", torch::nn::Dropout(config.attention_probs_dropout_prob));
}

at::Tensor BertSelfAttentionImpl::forward(const at::Tensor& hidden, const at::Tensor& mask_bias) {
  const int64_t batch = hidden.size(0);
  const int64_t seq_len = hidden.size(1);
  auto split_heads = [&](const at::Tensor& x) {
    return x.view({batch, seq_len, num_heads_, head_size_}).transpose(1, 2);
  };
  at::Tensor q = split_heads(query(hidden));
  at::Tensor k = split_heads(key(hidden));
  at::Tensor v = split_heads(value(hidden));
  // Scaling q before the product is cheaper than scaling the [T,T] scores.
  q = q * (1.0 / std::sqrt(static_cast<double>(head_size_)));
  at::Tensor scores = torch::matmul(q, k.transpose(-1, -2)) + mask_bias;
  at::Tensor probs = dropout(torch::softmax(scores, -1));
  at::Tensor context = torch::matmul(probs, v);
  return context.transpose(1, 2).reshape({batch, seq_len, num_heads_ * head_size_});
}

BertResidualOutputImpl::BertResidualOutputImpl(int64_t in_features, const BertConfig& config) {
  dense = register_module("dense", torch::nn::Linear(in_features, config.hidden_size));
  layer_norm = register_module("LayerNorm", MakeLayerNorm(config));
  dropout = register_module("dropout", torch::nn::Dropout(config.hidden_dropout_prob));
}

at::Tensor BertResidualOutputImpl::forward(const at::Tensor& x, const at::Tensor& residual) {
  return layer_norm(dropout(dense(x)) + residual);
}

BertAttentionImpl::BertAttentionImpl(const BertConfig& config) {
  self_attention = register_module("self", BertSelfAttention(config));
  output = register_module("output", BertResidualOutput(config.hidden_size, config));
}

at::Tensor BertAttentionImpl::forward(const at::Tensor& hidden, const at::Tensor& mask_bias) {
  return output(self_attention(hidden, mask_bias), hidden);
}

BertLayerImpl::BertLayerImpl(const BertConfig& config) : activation_(config.hidden_act) {
  attention = register_module("attention", BertAttention(config));
  intermediate_dense = Group(*this, "intermediate")
                           ->register_module("dense", torch::nn::Linear(config.hidden_size,
                                                                        config.intermediate_size));
  output = register_module("output", BertResidualOutput(config.intermediate_size, config));
}

at::Tensor BertLayerImpl::forward(const at::Tensor& hidden, const at::Tensor& mask_bias) {
  at::Tensor attended = attention(hidden, mask_bias);
  at::Tensor intermediate = ApplyActivation(intermediate_dense(attended), activation_);
  return output(intermediate, attended);
}

BertEncoderModelImpl::BertEncoderModelImpl(const BertConfig& config, bool with_pooler) {
  embeddings = register_module("embeddings", BertEmbeddings(config));
  layers = Group(*this, "encoder")->register_module("layer", torch::nn::ModuleList());
  for (int i = 0; i < config.num_hidden_layers; ++i) layers->push_back(BertLayer(config));
  if (with_pooler) {
    pooler_dense = Group(*this, "pooler")
                       ->register_module("dense", torch::nn::Linear(config.hidden_size,
                                                                    config.hidden_size));
  }
}

std::pair<at::Tensor, at::Tensor> BertEncoderModelImpl::forward(const BertInputs& inputs) {
  const at::Tensor& input_ids = inputs.input_ids;
  at::Tensor token_type_ids =
      inputs.token_type_ids.defined() ? inputs.token_type_ids : torch::zeros_like(input_ids);
  at::Tensor hidden = embeddings(input_ids, token_type_ids);

  // Padding becomes a large negative bias on the attention scores, as in Hugging Face (the
  // dtype's lowest value, so that masked keys get exactly zero probability).
  at::Tensor mask = inputs.attention_mask.defined() ? inputs.attention_mask
                                                    : torch::ones_like(input_ids);
  at::Tensor mask_bias = (1.0 - mask.to(hidden.scalar_type())).unsqueeze(1).unsqueeze(2) *
                         LowestValue(hidden.scalar_type());
  for (const auto& layer : *layers) {
    hidden = layer->as<BertLayer>()->forward(hidden, mask_bias);
  }
  at::Tensor pooled;
  if (pooler_dense) pooled = torch::tanh(pooler_dense(hidden.select(1, 0)));
  return {hidden, pooled};
}

BertMlmHeadImpl::BertMlmHeadImpl(const BertConfig& config) : activation_(config.hidden_act) {
  auto transform = Group(*this, "transform");
  transform_dense = transform->register_module(
      "dense", torch::nn::Linear(config.hidden_size, config.hidden_size));
  transform_layer_norm = transform->register_module("LayerNorm", MakeLayerNorm(config));
  bias = register_parameter("bias", torch::zeros({config.vocab_size}));
}

at::Tensor BertMlmHeadImpl::forward(const at::Tensor& hidden, const at::Tensor& word_embeddings) {
  at::Tensor transformed =
      transform_layer_norm(ApplyActivation(transform_dense(hidden), activation_));
  // The decoder shares its weight with the word embeddings (tied, as in BERT).
  return F::linear(transformed, word_embeddings, bias);
}

BertImpl::BertImpl(BertConfig config, HeadSet heads)
    : config_(std::move(config)), heads_(heads) {
  // Heads that read the pooled output need the pooler.
  if (heads_.next_sentence || heads_.classifier) heads_.pooler = true;
  bert = register_module("bert", BertEncoderModel(config_, heads_.pooler));
  if (heads_.masked_lm || heads_.next_sentence) {
    auto cls = Group(*this, "cls");
    if (heads_.masked_lm) mlm = cls->register_module("predictions", BertMlmHead(config_));
    if (heads_.next_sentence) {
      nsp = cls->register_module("seq_relationship", torch::nn::Linear(config_.hidden_size, 2));
    }
  }
  if (heads_.classifier) {
    classifier = register_module("classifier",
                                 torch::nn::Linear(config_.hidden_size, config_.num_labels));
    classifier_dropout =
        register_module("classifier_dropout", torch::nn::Dropout(config_.hidden_dropout_prob));
  }
  if (heads_.span) span = register_module("qa_outputs", torch::nn::Linear(config_.hidden_size, 2));
  InitializeWeights();
}

BertOutputs BertImpl::forward(const BertInputs& inputs, bool with_mlm_logits) {
  BertOutputs out;
  std::tie(out.last_hidden_state, out.pooler_output) = bert(inputs);
  if (mlm && with_mlm_logits) out.mlm_logits = MlmLogits(out.last_hidden_state);
  if (nsp) out.nsp_logits = NspLogits(out.pooler_output);
  if (classifier) out.classifier_logits = ClassifierLogits(out.pooler_output);
  if (span) std::tie(out.start_logits, out.end_logits) = SpanLogits(out.last_hidden_state);
  return out;
}

at::Tensor BertImpl::MlmLogits(const at::Tensor& hidden) {
  TORCH_CHECK(mlm, "model has no masked-LM head");
  return mlm(hidden, bert->embeddings->word_embeddings->weight);
}

at::Tensor BertImpl::NspLogits(const at::Tensor& pooled) {
  TORCH_CHECK(nsp, "model has no next-sentence head");
  return nsp(pooled);
}

at::Tensor BertImpl::ClassifierLogits(const at::Tensor& pooled) {
  TORCH_CHECK(classifier, "model has no classification head");
  return classifier(classifier_dropout(pooled));
}

std::pair<at::Tensor, at::Tensor> BertImpl::SpanLogits(const at::Tensor& hidden) {
  TORCH_CHECK(span, "model has no span-extraction head");
  std::vector<at::Tensor> start_end = span(hidden).split(1, -1);
  return {start_end[0].squeeze(-1), start_end[1].squeeze(-1)};
}

void BertImpl::InitializeWeights() {
  std::vector<std::string> names;
  for (const auto& item : named_parameters()) names.push_back(item.key());
  InitializeParameters(names);
}

void BertImpl::InitializeParameters(const std::vector<std::string>& names) {
  torch::NoGradGuard no_grad;
  auto params = named_parameters();
  for (const std::string& name : names) {
    at::Tensor* param = params.find(name);
    if (param == nullptr) continue;
    const bool is_layer_norm = name.find("LayerNorm") != std::string::npos;
    const bool is_bias = name.size() >= 4 && name.compare(name.size() - 4, 4, "bias") == 0;
    if (is_layer_norm) {
      is_bias ? param->zero_() : param->fill_(1.0);
    } else if (is_bias) {
      param->zero_();
    } else {
      param->normal_(0.0, config_.initializer_range);
      if (name == "bert.embeddings.word_embeddings.weight") param->select(0, config_.pad_token_id).zero_();
    }
  }
}

}  // namespace bertd::model
