#include "inference/model_runner.h"

#include <torch/torch.h>

#include <algorithm>
#include <stdexcept>
#include <string>

#include "runtime/from_torch.h"

namespace bertd::inference {
namespace {

std::vector<float> ToVector(const at::Tensor& tensor) {
  at::Tensor flat = tensor.to(torch::kFloat).cpu().contiguous();
  const float* data = flat.data_ptr<float>();
  return std::vector<float>(data, data + flat.numel());
}

}  // namespace

void ModelRunner::Pool(const at::Tensor& hidden, const std::vector<int64_t>& offsets,
                       const std::vector<SequenceWork*>& works, const std::vector<int64_t>& rows) {
  at::Tensor states = hidden.to(torch::kFloat).cpu();
  for (int64_t b : rows) {
    SequenceWork& work = *works[b];
    const int64_t length = static_cast<int64_t>(work.ids.size());
    at::Tensor tokens = states.slice(0, offsets[b], offsets[b] + length);  // [tokens, H]
    at::Tensor vector;
    switch (work.pooling) {
      case Pooling::kCls:
        vector = tokens[0];
        break;
      case Pooling::kMean:
        vector = tokens.mean(0);
        break;
      case Pooling::kMax:
        vector = std::get<0>(tokens.max(0));
        break;
    }
    if (work.normalize) {
      // As torch.nn.functional.normalize, which sentence-transformers' Normalize calls.
      vector = vector / vector.norm().clamp_min(1e-12);
    }
    work.embedding = ToVector(vector);
    if (work.token_states) work.states = ToVector(tokens);
  }
}

ModelRunner::ModelRunner(model::Bert model, c10::Device device, const RunnerOptions& options)
    : model_(std::move(model)), device_(device), pad_token_id_(model_->config().pad_token_id) {
  model_->eval();
  if (!options.fast_path) {
    fallback_reason_ = "fast path disabled";
  } else if (!device_.is_cpu()) {
    fallback_reason_ = "the fast path runs on the CPU only";
  } else {
    runtime::FastBertOptions fast_options;
    fast_options.precision = options.precision;
    fast_options.threads = options.threads;
    // The packed copy replaces the encoder's LibTorch weights: one copy in memory.
    auto fast = runtime::PackEncoder(*model_, fast_options, /*release_encoder_weights=*/true);
    if (fast.ok()) {
      fast_ = *std::move(fast);
    } else {
      fallback_reason_ = std::string(fast.status().message());
    }
  }
}

ModelRunner::~ModelRunner() = default;

runtime::Precision ModelRunner::precision() const {
  return fast_ ? fast_->precision() : runtime::Precision::kFloat32;
}

at::Tensor ModelRunner::Encode(const std::vector<SequenceWork*>& works,
                               std::vector<int64_t>* offsets) {
  const int64_t batch = static_cast<int64_t>(works.size());
  const int64_t hidden_size = model_->config().hidden_size;
  offsets->resize(batch);
  if (fast_) {
    // Padding-free: sequences are concatenated, the ids are read where they are.
    std::vector<runtime::SequenceView> views;
    views.reserve(batch);
    int64_t total = 0;
    for (int64_t b = 0; b < batch; ++b) {
      const SequenceWork& work = *works[b];
      (*offsets)[b] = total;
      views.push_back({work.ids.data(), work.type_ids.empty() ? nullptr : work.type_ids.data(),
                       static_cast<int>(work.ids.size())});
      total += static_cast<int64_t>(work.ids.size());
    }
    at::Tensor rows = torch::empty({total, hidden_size}, torch::kFloat);
    absl::Status status = fast_->Forward(views, rows.data_ptr<float>());
    if (!status.ok()) throw std::runtime_error(std::string(status.message()));
    return rows;
  }

  int64_t longest = 0;
  for (const SequenceWork* work : works) longest = std::max<int64_t>(longest, work->ids.size());
  at::Tensor ids = torch::full({batch, longest}, pad_token_id_, torch::kLong);
  at::Tensor types = torch::zeros({batch, longest}, torch::kLong);
  at::Tensor mask = torch::zeros({batch, longest}, torch::kLong);
  auto ids_a = ids.accessor<int64_t, 2>();
  auto types_a = types.accessor<int64_t, 2>();
  auto mask_a = mask.accessor<int64_t, 2>();
  for (int64_t b = 0; b < batch; ++b) {
    const SequenceWork& work = *works[b];
    for (size_t t = 0; t < work.ids.size(); ++t) {
      ids_a[b][t] = work.ids[t];
      types_a[b][t] = work.type_ids[t];
      mask_a[b][t] = 1;
    }
    (*offsets)[b] = b * longest;
  }
  model::BertInputs inputs{ids.to(device_), types.to(device_), mask.to(device_)};
  at::Tensor hidden = model_->bert(inputs).first;
  return hidden.reshape({batch * longest, hidden_size});
}

void ModelRunner::Run(const std::vector<SequenceWork*>& works) {
  c10::InferenceMode inference_mode;
  const int64_t batch = static_cast<int64_t>(works.size());
  std::vector<int64_t> offsets;
  at::Tensor hidden = Encode(works, &offsets);  // [rows, H]
  auto index = [&](const std::vector<int64_t>& rows) {
    return torch::tensor(rows, torch::kLong).to(device_);
  };
  at::Tensor pooled;  // [batch, H], from each sequence's first ([CLS]) token
  if (model_->bert->pooler_dense) {
    pooled = torch::tanh(model_->bert->pooler_dense(hidden.index_select(0, index(offsets))));
  }

  // Each head runs once over the rows that asked for it.
  std::vector<int64_t> classifier_rows, nsp_rows, span_rows, mlm_rows, mlm_token_rows, embed_rows;
  int max_top_k = 1;
  for (int64_t b = 0; b < batch; ++b) {
    SequenceWork& work = *works[b];
    switch (work.head) {
      case Head::kClassifier:
        classifier_rows.push_back(b);
        break;
      case Head::kNextSentence:
        nsp_rows.push_back(b);
        break;
      case Head::kSpan:
        span_rows.push_back(b);
        break;
      case Head::kMaskedLm:
        for (int32_t position : work.mask_positions) {
          mlm_rows.push_back(b);
          mlm_token_rows.push_back(offsets[b] + position);
        }
        max_top_k = std::max(max_top_k, work.top_k);
        break;
      case Head::kEmbedding:
        embed_rows.push_back(b);
        break;
    }
  }

  if (!classifier_rows.empty()) {
    at::Tensor logits = model_->ClassifierLogits(pooled.index_select(0, index(classifier_rows)));
    for (size_t i = 0; i < classifier_rows.size(); ++i) {
      works[classifier_rows[i]]->logits = ToVector(logits[i]);
    }
  }
  if (!nsp_rows.empty()) {
    at::Tensor logits = model_->NspLogits(pooled.index_select(0, index(nsp_rows)));
    for (size_t i = 0; i < nsp_rows.size(); ++i) works[nsp_rows[i]]->logits = ToVector(logits[i]);
  }
  if (!span_rows.empty()) {
    std::vector<int64_t> token_rows;
    for (int64_t b : span_rows) {
      for (size_t t = 0; t < works[b]->ids.size(); ++t) token_rows.push_back(offsets[b] + t);
    }
    auto [start, end] = model_->SpanLogits(hidden.index_select(0, index(token_rows)));
    start = start.to(torch::kFloat).cpu().contiguous();
    end = end.to(torch::kFloat).cpu().contiguous();
    int64_t at = 0;
    for (int64_t b : span_rows) {
      SequenceWork& work = *works[b];
      const int64_t length = static_cast<int64_t>(work.ids.size());
      work.start_logits = ToVector(start.slice(0, at, at + length));
      work.end_logits = ToVector(end.slice(0, at, at + length));
      at += length;
    }
  }
  if (!embed_rows.empty()) Pool(hidden, offsets, works, embed_rows);
  if (!mlm_rows.empty()) {
    // Only the masked positions go through the vocabulary-sized decoder.
    at::Tensor selected = hidden.index_select(0, index(mlm_token_rows));
    at::Tensor probs = torch::softmax(model_->MlmLogits(selected).to(torch::kFloat), -1);
    const int64_t k = std::min<int64_t>(max_top_k, probs.size(-1));
    auto [top_probs, top_ids] = probs.topk(k, -1);
    top_probs = top_probs.cpu();
    top_ids = top_ids.cpu();
    for (size_t i = 0; i < mlm_rows.size(); ++i) {
      SequenceWork& work = *works[mlm_rows[i]];
      std::vector<std::pair<int32_t, float>> top;
      for (int64_t j = 0; j < std::min<int64_t>(work.top_k, k); ++j) {
        top.emplace_back(static_cast<int32_t>(top_ids[i][j].item<int64_t>()),
                         top_probs[i][j].item<float>());
      }
      work.mask_top.push_back(std::move(top));
    }
  }
}

}  // namespace bertd::inference
