#ifndef BERTD_MODEL_BERT_H_
#define BERTD_MODEL_BERT_H_

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/pimpl.h>

#include <utility>

#include "model/config.h"

// BERT as LibTorch modules whose parameter names are exactly Hugging Face's
// (`bert.encoder.layer.0.attention.self.query.weight`, `cls.predictions.bias`, ...), so a
// state dict moves between bertd and Python unchanged.
namespace bertd::model {

// Token ids, segment ids and the 1/0 padding mask, each [batch, seq_len] int64.
// token_type_ids and attention_mask may be undefined: zeros / all ones are then assumed.
struct BertInputs {
  at::Tensor input_ids;
  at::Tensor token_type_ids;
  at::Tensor attention_mask;
};

// Which parts exist on top of the encoder.
struct HeadSet {
  bool pooler = true;
  bool masked_lm = false;
  bool next_sentence = false;
  bool classifier = false;
  bool span = false;

  static HeadSet ForArchitecture(Architecture architecture);
};

class BertEmbeddingsImpl : public torch::nn::Module {
 public:
  explicit BertEmbeddingsImpl(const BertConfig& config);
  at::Tensor forward(const at::Tensor& input_ids, const at::Tensor& token_type_ids);

  torch::nn::Embedding word_embeddings{nullptr};
  torch::nn::Embedding position_embeddings{nullptr};
  torch::nn::Embedding token_type_embeddings{nullptr};
  torch::nn::LayerNorm layer_norm{nullptr};
  torch::nn::Dropout dropout{nullptr};
};
TORCH_MODULE(BertEmbeddings);

class BertSelfAttentionImpl : public torch::nn::Module {
 public:
  explicit BertSelfAttentionImpl(const BertConfig& config);
  // mask_bias: [batch, 1, 1, seq_len], 0 for real tokens and a large negative value for padding.
  at::Tensor forward(const at::Tensor& hidden, const at::Tensor& mask_bias);

  torch::nn::Linear query{nullptr}, key{nullptr}, value{nullptr};
  torch::nn::Dropout dropout{nullptr};

 private:
  int64_t num_heads_;
  int64_t head_size_;
};
TORCH_MODULE(BertSelfAttention);

// dense -> dropout -> LayerNorm(x + residual): the post-LN residual block BERT uses twice a layer.
class BertResidualOutputImpl : public torch::nn::Module {
 public:
  BertResidualOutputImpl(int64_t in_features, const BertConfig& config);
  at::Tensor forward(const at::Tensor& x, const at::Tensor& residual);

  torch::nn::Linear dense{nullptr};
  torch::nn::LayerNorm layer_norm{nullptr};
  torch::nn::Dropout dropout{nullptr};
};
TORCH_MODULE(BertResidualOutput);

class BertAttentionImpl : public torch::nn::Module {
 public:
  explicit BertAttentionImpl(const BertConfig& config);
  at::Tensor forward(const at::Tensor& hidden, const at::Tensor& mask_bias);

  BertSelfAttention self_attention{nullptr};
  BertResidualOutput output{nullptr};
};
TORCH_MODULE(BertAttention);

class BertLayerImpl : public torch::nn::Module {
 public:
  explicit BertLayerImpl(const BertConfig& config);
  at::Tensor forward(const at::Tensor& hidden, const at::Tensor& mask_bias);

  BertAttention attention{nullptr};
  torch::nn::Linear intermediate_dense{nullptr};
  BertResidualOutput output{nullptr};

 private:
  std::string activation_;
};
TORCH_MODULE(BertLayer);

// `bert.*`: embeddings, encoder layers and the optional pooler.
class BertEncoderModelImpl : public torch::nn::Module {
 public:
  BertEncoderModelImpl(const BertConfig& config, bool with_pooler);
  // Returns (last_hidden_state [B,T,H], pooler_output [B,H] or undefined without a pooler).
  std::pair<at::Tensor, at::Tensor> forward(const BertInputs& inputs);

  BertEmbeddings embeddings{nullptr};
  torch::nn::ModuleList layers{nullptr};
  torch::nn::Linear pooler_dense{nullptr};
};
TORCH_MODULE(BertEncoderModel);

// `cls.predictions`: transform + decoder tied to the word embeddings.
class BertMlmHeadImpl : public torch::nn::Module {
 public:
  explicit BertMlmHeadImpl(const BertConfig& config);
  at::Tensor forward(const at::Tensor& hidden, const at::Tensor& word_embeddings);

  torch::nn::Linear transform_dense{nullptr};
  torch::nn::LayerNorm transform_layer_norm{nullptr};
  at::Tensor bias;

 private:
  std::string activation_;
};
TORCH_MODULE(BertMlmHead);

struct BertOutputs {
  at::Tensor last_hidden_state;  // [B, T, H]
  at::Tensor pooler_output;      // [B, H]       (with a pooler)
  at::Tensor mlm_logits;         // [B, T, V]    (masked_lm head; only when requested)
  at::Tensor nsp_logits;         // [B, 2]       (next_sentence head; index 0 = "is next")
  at::Tensor classifier_logits;  // [B, labels]  (classifier head)
  at::Tensor start_logits;       // [B, T]       (span head)
  at::Tensor end_logits;         // [B, T]
};

// BERT with the heads of one Hugging Face architecture.
class BertImpl : public torch::nn::Module {
 public:
  BertImpl(BertConfig config, HeadSet heads);

  // Runs the encoder and every head present. MLM logits over the whole vocabulary are large
  // ([B,T,V]); they are computed only when `with_mlm_logits` is set — use MlmLogits() on
  // selected positions instead where possible.
  BertOutputs forward(const BertInputs& inputs, bool with_mlm_logits = false);

  // Heads applied to encoder outputs.
  at::Tensor MlmLogits(const at::Tensor& hidden);
  at::Tensor NspLogits(const at::Tensor& pooled);
  at::Tensor ClassifierLogits(const at::Tensor& pooled);
  std::pair<at::Tensor, at::Tensor> SpanLogits(const at::Tensor& hidden);

  // Re-draws every parameter as BERT initializes them: normal(0, initializer_range) weights,
  // zero biases, LayerNorm ones; the padding row of the word embeddings is zero.
  void InitializeWeights();
  // Initializes only the named parameters (heads a checkpoint did not have).
  void InitializeParameters(const std::vector<std::string>& names);

  const BertConfig& config() const { return config_; }
  const HeadSet& heads() const { return heads_; }

  BertEncoderModel bert{nullptr};
  BertMlmHead mlm{nullptr};
  torch::nn::Linear nsp{nullptr};
  torch::nn::Linear classifier{nullptr};
  torch::nn::Dropout classifier_dropout{nullptr};
  torch::nn::Linear span{nullptr};

 private:
  BertConfig config_;
  HeadSet heads_;
};
TORCH_MODULE(Bert);

// Names of parameters tied to another one; absent from checkpoints and never saved.
bool IsTiedOrDerivedParameter(const std::string& name);

// Applies hidden_act by name (gelu, gelu_new, relu, ...); the name was validated by BertConfig.
at::Tensor ApplyActivation(const at::Tensor& x, const std::string& name);

}  // namespace bertd::model

#endif  // BERTD_MODEL_BERT_H_
