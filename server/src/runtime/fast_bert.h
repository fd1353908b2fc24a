#ifndef BERTD_RUNTIME_FAST_BERT_H_
#define BERTD_RUNTIME_FAST_BERT_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

// The CPU inference path of the BERT encoder: oneDNN matmul primitives whose weights are
// reordered once, at load, into the blocked layout (and data type) the kernels read; attention per
// sequence, so a batch carries no padding (every row of every product is a real token). No
// LibTorch here: from_torch.h builds one from a loaded model.
namespace bertd::runtime {

enum class Precision { kFloat32, kBFloat16 };

// "fp32"/"float32" or "bf16"/"bfloat16".
absl::StatusOr<Precision> ParsePrecision(absl::string_view name);
// "float32" or "bfloat16" (the names ModelDescription.precision reports).
absl::string_view PrecisionName(Precision precision);
// Whether this CPU runs bf16 matmuls natively (avx512_bf16 / AMX); without it bf16 is emulated.
bool CpuHasNativeBf16();
// CPUs this process may run on (sched affinity), at least 1.
int UsableCpus();

// GFLOP/s of one oneDNN matmul [rows x k] * [k x n] with prepacked weights, run repeatedly for
// about `seconds` on `threads` threads: the GEMM ceiling the encoder is measured against.
double MeasureGemmGflops(Precision precision, int64_t rows, int64_t k, int64_t n, double seconds,
                         int threads);

struct EncoderConfig {
  int hidden_size = 768;
  int num_layers = 12;
  int num_heads = 12;
  int intermediate_size = 3072;
  int vocab_size = 30522;
  int max_positions = 512;
  int type_vocab_size = 2;
  float layer_norm_eps = 1e-12f;
  std::string activation = "gelu";  // gelu, gelu_new/gelu_pytorch_tanh/gelu_fast, relu, silu/swish
};

// A dense layer in PyTorch's layout: weight [out, in] row-major, bias [out].
struct DenseView {
  const float* weight = nullptr;
  const float* bias = nullptr;
};
struct NormView {
  const float* gamma = nullptr;
  const float* beta = nullptr;
};
struct LayerView {
  DenseView query, key, value, attention_output;
  NormView attention_norm;
  DenseView intermediate, output;
  NormView output_norm;
};

// Where the encoder's fp32 weights are during packing. Dense and norm weights are copied (packed)
// and may be freed afterwards; the embedding tables are used in place for the lifetime of the
// FastBert, kept alive by `embeddings_owner`.
struct EncoderWeights {
  const float* word_embeddings = nullptr;      // [vocab, hidden]
  const float* position_embeddings = nullptr;  // [max_positions, hidden]
  const float* token_type_embeddings = nullptr;  // [type_vocab, hidden]
  NormView embedding_norm;
  std::vector<LayerView> layers;
  std::shared_ptr<void> embeddings_owner;
};

struct FastBertOptions {
  Precision precision = Precision::kFloat32;
  int threads = 0;  // OpenMP threads for the forward; 0 = UsableCpus()
};

// One sequence of a batch: ids and segment ids, `length` each (type_ids may be null = zeros).
struct SequenceView {
  const int32_t* ids = nullptr;
  const int32_t* type_ids = nullptr;
  int length = 0;
};

class FastBert {
 public:
  // Packs the weights. INVALID_ARGUMENT names the field that does not fit (sizes, activation).
  static absl::StatusOr<std::unique_ptr<FastBert>> Create(const EncoderConfig& config,
                                                          const EncoderWeights& weights,
                                                          const FastBertOptions& options);
  ~FastBert();

  // Runs the encoder over `sequences` without padding and writes the last hidden states, one row
  // per token, sequences one after the other, into `hidden` ([sum of lengths, hidden_size]).
  // Ids must be within the vocabulary / type vocabulary and lengths within max_positions
  // (INVALID_ARGUMENT otherwise). Thread-safe (calls are serialized).
  absl::Status Forward(const std::vector<SequenceView>& sequences, float* hidden);

  const EncoderConfig& config() const;
  Precision precision() const;
  // Bytes held by packed weights (not counting the embedding tables, which are shared).
  int64_t packed_weight_bytes() const;

 private:
  struct Impl;
  explicit FastBert(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace bertd::runtime

#endif  // BERTD_RUNTIME_FAST_BERT_H_
