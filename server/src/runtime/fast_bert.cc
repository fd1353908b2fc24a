#include "runtime/fast_bert.h"

#include <omp.h>
#include <sched.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <oneapi/dnnl/dnnl.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "runtime/omp_fork_join.h"

namespace bertd::runtime {
namespace {

using dnnl::memory;
using dt = memory::data_type;
using tag = memory::format_tag;

// Row counts are rounded up to this so that a handful of primitives serve every batch, and
// because bf16 kernels are pathologically slow on a single row.
constexpr int64_t kRowAlign = 16;
// The row count whose preferred weight layout is chosen at packing; every other row count reads
// the same packed weights.
constexpr int64_t kPackRows = 128;

int64_t PaddedRows(int64_t rows) {
  return std::max<int64_t>(kRowAlign, (rows + kRowAlign - 1) / kRowAlign * kRowAlign);
}

memory::desc Plain(int64_t rows, int64_t cols, dt type) {
  return memory::desc({rows, cols}, type, tag::ab);
}

absl::StatusOr<dnnl::algorithm> ActivationAlgorithm(const std::string& name) {
  if (name == "gelu") return dnnl::algorithm::eltwise_gelu_erf;
  if (name == "gelu_new" || name == "gelu_pytorch_tanh" || name == "gelu_fast") {
    return dnnl::algorithm::eltwise_gelu_tanh;
  }
  if (name == "relu") return dnnl::algorithm::eltwise_relu;
  if (name == "silu" || name == "swish") return dnnl::algorithm::eltwise_swish;
  return absl::InvalidArgumentError(
      absl::StrCat("activation: '", name, "' is not one of gelu, gelu_new, relu, silu"));
}

// 64-byte aligned scratch that only grows.
class Buffer {
 public:
  ~Buffer() { std::free(data_); }
  void* Reserve(size_t bytes) {
    if (bytes > size_) {
      std::free(data_);
      size_ = (bytes + 63) / 64 * 64;
      data_ = std::aligned_alloc(64, size_);
      std::memset(data_, 0, size_);
    }
    return data_;
  }
  template <typename T>
  T* As() const {
    return static_cast<T*>(data_);
  }

 private:
  void* data_ = nullptr;
  size_t size_ = 0;
};

// float -> bfloat16, round to nearest even (as oneDNN's reorder; inputs are finite).
inline uint16_t ToBf16Bits(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof(bits));
  bits += 0x7FFFu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>(bits >> 16);
}

// LayerNorm of rows [0, rows) of x ([rows, h]) in place, two-pass mean and variance as PyTorch;
// with `bf16` also writes the rounded copy the next matmul reads. One pass over data that is in
// cache, where oneDNN 2.6's layer_normalization (simple_layer_normalization) took ~10x longer.
void LayerNormRows(float* x, uint16_t* bf16, int64_t rows, int64_t h, const float* gamma,
                   const float* beta, float eps) {
  OmpForkJoin fork_join;
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    OmpForkJoin::Worker worker(fork_join);
    float* row = x + r * h;
    float sum = 0;
#pragma omp simd reduction(+ : sum)
    for (int64_t j = 0; j < h; ++j) sum += row[j];
    const float mean = sum / static_cast<float>(h);
    float squares = 0;
#pragma omp simd reduction(+ : squares)
    for (int64_t j = 0; j < h; ++j) {
      const float d = row[j] - mean;
      squares += d * d;
    }
    const float rstd = 1.0f / std::sqrt(squares / static_cast<float>(h) + eps);
#pragma omp simd
    for (int64_t j = 0; j < h; ++j) row[j] = (row[j] - mean) * rstd * gamma[j] + beta[j];
    if (bf16 != nullptr) {
      uint16_t* out = bf16 + r * h;
#pragma omp simd
      for (int64_t j = 0; j < h; ++j) out[j] = ToBf16Bits(row[j]);
    }
  }
}

struct Dense {
  memory weights;  // packed
  memory bias;     // [1, out] f32
};

struct Norm {
  std::vector<float> gamma, beta;
};

struct Layer {
  Dense qkv, attention_output, intermediate, output;
  Norm norm1, norm2;
};

struct RowKernels {
  int64_t rows = 0;
  dnnl::matmul qkv, attention_output, intermediate, output;
};

}  // namespace

absl::StatusOr<Precision> ParsePrecision(absl::string_view name) {
  std::string lower = absl::AsciiStrToLower(name);
  if (lower == "fp32" || lower == "float32") return Precision::kFloat32;
  if (lower == "bf16" || lower == "bfloat16") return Precision::kBFloat16;
  return absl::InvalidArgumentError(
      absl::StrCat("precision: '", name, "' is not one of fp32, bf16"));
}

absl::string_view PrecisionName(Precision precision) {
  return precision == Precision::kBFloat16 ? "bfloat16" : "float32";
}

bool CpuHasNativeBf16() {
  const dnnl::cpu_isa isa = dnnl::get_effective_cpu_isa();
  return isa == dnnl::cpu_isa::avx512_core_bf16 || isa == dnnl::cpu_isa::avx512_core_amx;
}

int UsableCpus() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return std::max(1, CPU_COUNT(&set));
  return 1;
}

double MeasureGemmGflops(Precision precision, int64_t rows, int64_t k, int64_t n, double seconds,
                         int threads) {
  omp_set_num_threads(threads > 0 ? threads : UsableCpus());
  dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  dnnl::stream stream(engine);
  const dt type = precision == Precision::kBFloat16 ? dt::bf16 : dt::f32;
  dnnl::matmul::primitive_desc pd(
      dnnl::matmul::desc(Plain(rows, k, type), memory::desc({k, n}, type, tag::any),
                         Plain(rows, n, dt::f32)),
      engine);
  memory src(pd.src_desc(), engine), weights(pd.weights_desc(), engine), dst(pd.dst_desc(), engine);
  std::memset(src.get_data_handle(), 0, pd.src_desc().get_size());
  std::memset(weights.get_data_handle(), 0, pd.weights_desc().get_size());
  dnnl::matmul mm(pd);
  auto run = [&] {
    mm.execute(stream, {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, weights}, {DNNL_ARG_DST, dst}});
  };
  run();
  stream.wait();
  int64_t iterations = 0;
  const auto start = std::chrono::steady_clock::now();
  double elapsed = 0;
  while (elapsed < seconds || iterations < 3) {
    run();
    stream.wait();
    ++iterations;
    elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  return 2.0 * rows * k * n * iterations / elapsed / 1e9;
}

struct FastBert::Impl {
  EncoderConfig config;
  FastBertOptions options;
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  dnnl::stream stream{engine};
  dt act_type = dt::f32;  // matmul inputs
  dnnl::algorithm activation = dnnl::algorithm::eltwise_gelu_erf;
  int64_t hidden = 0, heads = 0, head_size = 0, inter = 0;

  const float* word = nullptr;
  const float* position = nullptr;
  const float* token_type = nullptr;
  std::shared_ptr<void> embeddings_owner;
  Norm embedding_norm;
  std::vector<Layer> layers;
  memory::desc qkv_md, attention_output_md, intermediate_md, output_md;  // packed layouts
  int64_t packed_bytes = 0;

  std::mutex mu;
  std::map<int64_t, RowKernels> row_kernels;
  std::map<int64_t, dnnl::softmax_forward> softmax_kernels;  // one head, by sequence length
  std::vector<dnnl::stream> streams;  // one per OpenMP thread (streams are not thread-safe)
  Buffer x, xb, qkv, ctx, ctxb, inter_buf, scores;

  dnnl::post_ops PostOps(const char* kind) const {
    dnnl::post_ops ops;
    if (std::strcmp(kind, "sum") == 0) ops.append_sum(1.f);
    if (std::strcmp(kind, "act") == 0) {
      ops.append_eltwise(1.f, activation, activation == dnnl::algorithm::eltwise_swish ? 1.f : 0.f,
                         0.f);
    }
    return ops;
  }

  dnnl::matmul::primitive_desc MatmulDesc(int64_t rows, int64_t in, int64_t out,
                                          const memory::desc& weights, dt dst_type,
                                          const char* post) const {
    dnnl::primitive_attr attr;
    attr.set_post_ops(PostOps(post));
    return dnnl::matmul::primitive_desc(
        dnnl::matmul::desc(Plain(rows, in, act_type), weights, Plain(1, out, dt::f32),
                           Plain(rows, out, dst_type)),
        attr, engine);
  }

  Norm MakeNorm(const NormView& view) const {
    return {std::vector<float>(view.gamma, view.gamma + hidden),
            std::vector<float>(view.beta, view.beta + hidden)};
  }

  // weight: [out, in] row-major fp32 (PyTorch's Linear) -> the kernel's blocked layout.
  Dense Pack(const float* weight, const float* bias, int64_t in, int64_t out, dt dst_type,
             const char* post, memory::desc* packed_md) {
    auto pd = MatmulDesc(kPackRows, in, out, memory::desc({in, out}, act_type, tag::any),
                         dst_type, post);
    *packed_md = pd.weights_desc();
    // {in, out} with tag ba is exactly [out, in] row-major.
    memory source(memory::desc({in, out}, dt::f32, tag::ba), engine, const_cast<float*>(weight));
    Dense dense;
    dense.weights = memory(*packed_md, engine);
    dnnl::reorder(source, dense.weights).execute(stream, source, dense.weights);
    stream.wait();
    dense.bias = memory(Plain(1, out, dt::f32), engine);
    std::memcpy(dense.bias.get_data_handle(), bias, out * sizeof(float));
    packed_bytes += static_cast<int64_t>(packed_md->get_size());
    return dense;
  }

  RowKernels& KernelsFor(int64_t rows) {
    auto it = row_kernels.find(rows);
    if (it != row_kernels.end()) return it->second;
    RowKernels k;
    k.rows = rows;
    k.qkv = dnnl::matmul(MatmulDesc(rows, hidden, 3 * hidden, qkv_md, dt::f32, ""));
    k.attention_output =
        dnnl::matmul(MatmulDesc(rows, hidden, hidden, attention_output_md, dt::f32, "sum"));
    k.intermediate =
        dnnl::matmul(MatmulDesc(rows, hidden, inter, intermediate_md, act_type, "act"));
    k.output = dnnl::matmul(MatmulDesc(rows, inter, hidden, output_md, dt::f32, "sum"));
    return row_kernels.emplace(rows, std::move(k)).first->second;
  }

  dnnl::softmax_forward& SoftmaxFor(int64_t length) {
    auto it = softmax_kernels.find(length);
    if (it != softmax_kernels.end()) return it->second;
    dnnl::softmax_forward softmax(dnnl::softmax_forward::primitive_desc(
        dnnl::softmax_forward::desc(dnnl::prop_kind::forward_inference,
                                    Plain(length, length, dt::f32), 1),
        engine));
    return softmax_kernels.emplace(length, std::move(softmax)).first->second;
  }

  void Matmul(const dnnl::matmul& mm, const RowKernels& k, void* src, int64_t in,
              const Dense& dense, void* dst, int64_t out, dt dst_type) {
    memory src_m(Plain(k.rows, in, act_type), engine, src);
    memory dst_m(Plain(k.rows, out, dst_type), engine, dst);
    mm.execute(stream, {{DNNL_ARG_SRC, src_m},
                        {DNNL_ARG_WEIGHTS, dense.weights},
                        {DNNL_ARG_BIAS, dense.bias},
                        {DNNL_ARG_DST, dst_m}});
  }

  // LayerNorm of the `rows` real rows of x in place; in bf16 also refreshes xb, the matmul input.
  void Normalize(int64_t rows, const Norm& norm) {
    LayerNormRows(x.As<float>(), act_type == dt::bf16 ? xb.As<uint16_t>() : nullptr, rows, hidden,
                  norm.gamma.data(), norm.beta.data(), config.layer_norm_eps);
  }

  // Scaled dot-product attention of every sequence (rows [offset, offset + length) of qkv) into
  // ctx. One parallel region over (sequence, head) pairs: each pair is small, and a barrier per
  // sequence costs more than the work once other processes compete for the cores.
  void AttendAll(const std::vector<std::pair<int64_t, int64_t>>& spans, int64_t longest) {
    for (const auto& span : spans) SoftmaxFor(span.second);  // the map is not touched below
    const float scale = 1.f / std::sqrt(static_cast<float>(head_size));
    const int64_t pairs = static_cast<int64_t>(spans.size()) * heads;
    const float* qkv_data = qkv.As<float>();
    float* ctx_data = ctx.As<float>();
    uint16_t* ctx_bf16 = act_type == dt::bf16 ? ctxb.As<uint16_t>() : nullptr;
    OmpForkJoin fork_join;
#pragma omp parallel
    {
      OmpForkJoin::Worker worker(fork_join);
      const int thread = omp_get_thread_num();
      float* s = scores.As<float>() + thread * longest * longest;
      dnnl::stream& thread_stream = streams[thread];
#pragma omp for schedule(dynamic, 1)
      for (int64_t pair = 0; pair < pairs; ++pair) {
        const auto& [offset, n] = spans[pair / heads];
        const int64_t h = pair % heads;
        const float* base = qkv_data + offset * 3 * hidden;
        dnnl_sgemm('N', 'T', n, n, head_size, scale, base + h * head_size, 3 * hidden,
                   base + hidden + h * head_size, 3 * hidden, 0.f, s, n);
        memory s_m(Plain(n, n, dt::f32), engine, s);
        softmax_kernels.find(n)->second.execute(thread_stream,
                                                {{DNNL_ARG_SRC, s_m}, {DNNL_ARG_DST, s_m}});
        thread_stream.wait();
        float* out = ctx_data + offset * hidden + h * head_size;
        dnnl_sgemm('N', 'N', n, head_size, n, 1.f, s, n, base + 2 * hidden + h * head_size,
                   3 * hidden, 0.f, out, hidden);
        if (ctx_bf16 != nullptr) {
          // The attention-output matmul reads bf16: convert this block while it is in cache.
          for (int64_t t = 0; t < n; ++t) {
            uint16_t* to = ctx_bf16 + (offset + t) * hidden + h * head_size;
            const float* from = out + t * hidden;
#pragma omp simd
            for (int64_t j = 0; j < head_size; ++j) to[j] = ToBf16Bits(from[j]);
          }
        }
      }
    }
  }
};

FastBert::FastBert(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
FastBert::~FastBert() = default;

const EncoderConfig& FastBert::config() const { return impl_->config; }
Precision FastBert::precision() const { return impl_->options.precision; }
int64_t FastBert::packed_weight_bytes() const { return impl_->packed_bytes; }

absl::StatusOr<std::unique_ptr<FastBert>> FastBert::Create(const EncoderConfig& config,
                                                            const EncoderWeights& weights,
                                                            const FastBertOptions& options) {
  if (config.hidden_size <= 0 || config.num_heads <= 0 ||
      config.hidden_size % config.num_heads != 0) {
    return absl::InvalidArgumentError(absl::StrCat("hidden_size ", config.hidden_size,
                                                   " must be a positive multiple of num_heads ",
                                                   config.num_heads));
  }
  if (static_cast<int>(weights.layers.size()) != config.num_layers) {
    return absl::InvalidArgumentError(absl::StrCat("weights have ", weights.layers.size(),
                                                   " layers, config num_layers is ",
                                                   config.num_layers));
  }
  if (!weights.word_embeddings || !weights.position_embeddings ||
      !weights.token_type_embeddings || !weights.embedding_norm.gamma ||
      !weights.embedding_norm.beta) {
    return absl::InvalidArgumentError("embeddings: a table or the LayerNorm is missing");
  }
  auto impl = std::make_unique<Impl>();
  impl->config = config;
  impl->options = options;
  if (impl->options.threads <= 0) impl->options.threads = UsableCpus();
  auto activation = ActivationAlgorithm(config.activation);
  if (!activation.ok()) return activation.status();
  impl->activation = *activation;
  impl->act_type = options.precision == Precision::kBFloat16 ? dt::bf16 : dt::f32;
  impl->hidden = config.hidden_size;
  impl->heads = config.num_heads;
  impl->head_size = config.hidden_size / config.num_heads;
  impl->inter = config.intermediate_size;
  impl->word = weights.word_embeddings;
  impl->position = weights.position_embeddings;
  impl->token_type = weights.token_type_embeddings;
  impl->embeddings_owner = weights.embeddings_owner;
  const int64_t h = impl->hidden;
  impl->embedding_norm = impl->MakeNorm(weights.embedding_norm);

  omp_set_num_threads(impl->options.threads);
  for (int t = 0; t < impl->options.threads; ++t) impl->streams.emplace_back(impl->engine);
  try {
    std::vector<float> qkv_weight(3 * h * h), qkv_bias(3 * h);
    for (int i = 0; i < config.num_layers; ++i) {
      const LayerView& view = weights.layers[i];
      const DenseView* parts[] = {&view.query, &view.key, &view.value, &view.attention_output,
                                  &view.intermediate, &view.output};
      for (const DenseView* part : parts) {
        if (!part->weight || !part->bias) {
          return absl::InvalidArgumentError(
              absl::StrCat("layer ", i, ": a dense weight or bias is missing"));
        }
      }
      if (!view.attention_norm.gamma || !view.attention_norm.beta || !view.output_norm.gamma ||
          !view.output_norm.beta) {
        return absl::InvalidArgumentError(absl::StrCat("layer ", i, ": a LayerNorm is missing"));
      }
      // Q, K and V become one [3h, h] product.
      for (int p = 0; p < 3; ++p) {
        std::memcpy(qkv_weight.data() + p * h * h, parts[p]->weight, h * h * sizeof(float));
        std::memcpy(qkv_bias.data() + p * h, parts[p]->bias, h * sizeof(float));
      }
      Layer layer;
      layer.qkv = impl->Pack(qkv_weight.data(), qkv_bias.data(), h, 3 * h, dt::f32, "",
                             &impl->qkv_md);
      layer.attention_output = impl->Pack(view.attention_output.weight,
                                          view.attention_output.bias, h, h, dt::f32, "sum",
                                          &impl->attention_output_md);
      layer.intermediate = impl->Pack(view.intermediate.weight, view.intermediate.bias, h,
                                      impl->inter, impl->act_type, "act", &impl->intermediate_md);
      layer.output = impl->Pack(view.output.weight, view.output.bias, impl->inter, h, dt::f32,
                                "sum", &impl->output_md);
      layer.norm1 = impl->MakeNorm(view.attention_norm);
      layer.norm2 = impl->MakeNorm(view.output_norm);
      impl->layers.push_back(std::move(layer));
    }
  } catch (const dnnl::error& e) {
    return absl::InternalError(absl::StrCat("oneDNN rejected the encoder's shapes: ", e.what()));
  }
  return std::unique_ptr<FastBert>(new FastBert(std::move(impl)));
}

absl::Status FastBert::Forward(const std::vector<SequenceView>& sequences, float* hidden_out) {
  Impl& m = *impl_;
  const EncoderConfig& config = m.config;
  int64_t total = 0;
  int64_t longest = 0;
  for (size_t s = 0; s < sequences.size(); ++s) {
    const SequenceView& seq = sequences[s];
    if (seq.length < 1 || seq.length > config.max_positions) {
      return absl::InvalidArgumentError(absl::StrCat("sequence ", s, ": length ", seq.length,
                                                     " is outside [1, ", config.max_positions,
                                                     "]"));
    }
    for (int t = 0; t < seq.length; ++t) {
      if (seq.ids[t] < 0 || seq.ids[t] >= config.vocab_size) {
        return absl::InvalidArgumentError(absl::StrCat("sequence ", s, " token ", t, ": id ",
                                                       seq.ids[t], " is outside the vocabulary"));
      }
      if (seq.type_ids && (seq.type_ids[t] < 0 || seq.type_ids[t] >= config.type_vocab_size)) {
        return absl::InvalidArgumentError(absl::StrCat("sequence ", s, " token ", t,
                                                       ": type id ", seq.type_ids[t],
                                                       " is outside type_vocab_size"));
      }
    }
    total += seq.length;
    longest = std::max<int64_t>(longest, seq.length);
  }
  if (total == 0) return absl::OkStatus();

  std::lock_guard<std::mutex> lock(m.mu);
  // OpenMP's thread count is per calling thread: set it on whichever thread runs the batch.
  if (omp_get_max_threads() != m.options.threads) omp_set_num_threads(m.options.threads);
  const int64_t h = m.hidden;
  const int64_t rows = PaddedRows(total);
  const size_t act_bytes = m.act_type == dt::bf16 ? 2 : 4;
  m.x.Reserve(rows * h * sizeof(float));
  m.qkv.Reserve(rows * 3 * h * sizeof(float));
  m.ctx.Reserve(rows * h * sizeof(float));
  m.inter_buf.Reserve(rows * m.inter * act_bytes);
  m.scores.Reserve(m.options.threads * longest * longest * sizeof(float));
  if (m.act_type == dt::bf16) {
    m.xb.Reserve(rows * h * 2);
    m.ctxb.Reserve(rows * h * 2);
  }

  try {
    RowKernels& k = m.KernelsFor(rows);
    // Embeddings: word + position + segment, one row per real token; padding rows are zero.
    float* x = m.x.As<float>();
    std::vector<std::pair<int64_t, int64_t>> spans;  // (offset, length)
    int64_t offset = 0;
    for (const SequenceView& seq : sequences) {
      spans.emplace_back(offset, seq.length);
      offset += seq.length;
    }
    {
      OmpForkJoin fork_join;
#pragma omp parallel for schedule(static)
      for (size_t s = 0; s < sequences.size(); ++s) {
        OmpForkJoin::Worker worker(fork_join);
        const SequenceView& seq = sequences[s];
        for (int t = 0; t < seq.length; ++t) {
          float* row = x + (spans[s].first + t) * h;
          const float* w = m.word + static_cast<int64_t>(seq.ids[t]) * h;
          const float* p = m.position + static_cast<int64_t>(t) * h;
          const float* y = m.token_type + (seq.type_ids ? seq.type_ids[t] : 0) * h;
          for (int64_t j = 0; j < h; ++j) row[j] = w[j] + p[j] + y[j];
        }
      }
    }
    std::memset(x + total * h, 0, (rows - total) * h * sizeof(float));
    std::memset(m.ctx.As<float>() + total * h, 0, (rows - total) * h * sizeof(float));
    m.Normalize(total, m.embedding_norm);

    const bool bf16 = m.act_type == dt::bf16;
    void* x_in = bf16 ? m.xb.As<void>() : m.x.As<void>();
    void* ctx_in = bf16 ? m.ctxb.As<void>() : m.ctx.As<void>();
    for (const Layer& layer : m.layers) {
      m.Matmul(k.qkv, k, x_in, h, layer.qkv, m.qkv.As<void>(), 3 * h, dt::f32);
      m.AttendAll(spans, longest);
      m.Matmul(k.attention_output, k, ctx_in, h, layer.attention_output, x, h, dt::f32);
      m.Normalize(total, layer.norm1);
      m.Matmul(k.intermediate, k, x_in, h, layer.intermediate, m.inter_buf.As<void>(), m.inter,
               m.act_type);
      m.Matmul(k.output, k, m.inter_buf.As<void>(), m.inter, layer.output, x, h, dt::f32);
      m.Normalize(total, layer.norm2);
    }
    m.stream.wait();
  } catch (const dnnl::error& e) {
    return absl::InternalError(absl::StrCat("oneDNN forward failed: ", e.what()));
  }
  std::memcpy(hidden_out, m.x.As<float>(), total * h * sizeof(float));
  return absl::OkStatus();
}

}  // namespace bertd::runtime
