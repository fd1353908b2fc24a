// Encoder forward throughput: LibTorch's BertImpl (the training/reference path) against the
// fast CPU path (runtime::FastBert) in fp32 and bf16, tiny and bert-base shapes, random weights.
// Counters: seq/s, tokens/s and GFLOP/s (matmul + attention FLOPs of the real tokens).
//   bench_model --benchmark_filter='impl:1/shape:1/batch:32/seq:128'
// impl: 0 = LibTorch fp32, 1 = fast fp32, 2 = fast bf16; shape: 0 = tiny (128 hidden, 2 layers),
// 1 = bert-base. Threads: BERTD_BENCH_THREADS (default: every usable CPU) for both paths.
#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <map>
#include <memory>
#include <vector>

#include "model/bert.h"
#include "model/checkpoint.h"
#include "text/tokenizer.h"
#include "runtime/fast_bert.h"
#include "runtime/from_torch.h"

namespace {

using bertd::model::Bert;
using bertd::model::BertConfig;
using bertd::runtime::FastBert;
using bertd::runtime::Precision;

int Threads() {
  const char* env = std::getenv("BERTD_BENCH_THREADS");
  return env ? std::atoi(env) : bertd::runtime::UsableCpus();
}

BertConfig Shape(int shape) {
  BertConfig config;  // bert-base defaults
  if (shape == 0) {
    config.hidden_size = 128;
    config.num_hidden_layers = 2;
    config.num_attention_heads = 2;
    config.intermediate_size = 512;
  }
  return config;
}

// FLOPs of one sequence of `seq` tokens (dense layers + the two attention products).
double Flops(const BertConfig& c, int64_t seq) {
  const double h = c.hidden_size, i = c.intermediate_size;
  const double dense = 2.0 * seq * (h * 3 * h + h * h + 2 * h * i);
  const double attention = 4.0 * seq * seq * h;
  return c.num_hidden_layers * (dense + attention);
}

struct Loaded {
  Bert model{nullptr};
  std::unique_ptr<FastBert> fast;
};

// One model per (impl, shape) for the whole run: packing bert-base takes seconds.
Loaded& Get(int impl, int shape) {
  static std::map<std::pair<int, int>, Loaded> cache;
  Loaded& loaded = cache[{impl, shape}];
  if (!loaded.model) {
    torch::manual_seed(0);
    loaded.model = Bert(Shape(shape), bertd::model::HeadSet{});
    loaded.model->eval();
    if (impl > 0) {
      bertd::runtime::FastBertOptions options;
      options.precision = impl == 2 ? Precision::kBFloat16 : Precision::kFloat32;
      options.threads = Threads();
      auto fast = bertd::runtime::PackEncoder(*loaded.model, options, true);
      if (!fast.ok()) {
        std::fprintf(stderr, "packing failed: %s\n", std::string(fast.status().message()).c_str());
        std::abort();
      }
      loaded.fast = *std::move(fast);
    }
  }
  return loaded;
}

void BM_Forward(benchmark::State& state) {
  const int impl = static_cast<int>(state.range(0));
  const int shape = static_cast<int>(state.range(1));
  const int64_t batch = state.range(2), seq = state.range(3);
  Loaded& loaded = Get(impl, shape);
  const BertConfig& config = loaded.model->config();
  torch::manual_seed(1);
  at::Tensor ids = torch::randint(1000, 30000, {batch, seq}, torch::kLong);
  c10::InferenceMode guard;
  if (impl == 0) {
    bertd::model::BertInputs inputs{ids, torch::zeros_like(ids), torch::ones_like(ids)};
    for (auto _ : state) benchmark::DoNotOptimize(loaded.model->bert(inputs).first);
  } else {
    at::Tensor ids32 = ids.to(torch::kInt);
    at::Tensor types = torch::zeros_like(ids32);
    std::vector<bertd::runtime::SequenceView> views;
    for (int64_t b = 0; b < batch; ++b) {
      views.push_back({ids32[b].data_ptr<int32_t>(), types[b].data_ptr<int32_t>(),
                       static_cast<int>(seq)});
    }
    std::vector<float> out(batch * seq * config.hidden_size);
    for (auto _ : state) {
      absl::Status status = loaded.fast->Forward(views, out.data());
      if (!status.ok()) state.SkipWithError(std::string(status.message()).c_str());
      benchmark::ClobberMemory();
    }
  }
  const double iterations = static_cast<double>(state.iterations());
  state.counters["seq_per_s"] = benchmark::Counter(iterations * batch, benchmark::Counter::kIsRate);
  state.counters["tokens_per_s"] =
      benchmark::Counter(iterations * batch * seq, benchmark::Counter::kIsRate);
  state.counters["GFLOPs"] = benchmark::Counter(iterations * batch * Flops(config, seq) / 1e9,
                                                benchmark::Counter::kIsRate);
}

void Sweep(benchmark::internal::Benchmark* b) {
  b->ArgNames({"impl", "shape", "batch", "seq"});
  for (int impl : {0, 1, 2}) {
    for (int shape : {0, 1}) {
      for (int batch : {1, 8, 32}) {
        for (int seq : {16, 64, 128}) b->Args({impl, shape, batch, seq});
      }
    }
  }
}

BENCHMARK(BM_Forward)->Apply(Sweep)->UseRealTime()->Unit(benchmark::kMillisecond);

// The GEMM ceiling: oneDNN matmul [128 x 768] x [768 x 3072] on prepacked weights (bf16:0/1).
void BM_GemmCeiling(benchmark::State& state) {
  const Precision precision = state.range(0) ? Precision::kBFloat16 : Precision::kFloat32;
  double gflops = 0;
  for (auto _ : state) {
    gflops = bertd::runtime::MeasureGemmGflops(precision, 128, 768, 3072, 1.0, Threads());
  }
  state.counters["GFLOPs"] = gflops;
}
BENCHMARK(BM_GemmCeiling)->ArgName("bf16")->Arg(0)->Arg(1)->Iterations(3)->Unit(benchmark::kMillisecond);

// Token counts of real texts, one per line (a file of ids per line from bench_tokenizer
// --dump_ids, named by BERTD_BENCH_IDS): batches of `batch` consecutive texts, as they arrive.
const std::vector<int>& TextLengths() {
  static const std::vector<int>* lengths = [] {
    auto* out = new std::vector<int>();
    const char* path = std::getenv("BERTD_BENCH_IDS");
    std::ifstream in(path ? path : "");
    std::string line;
    while (std::getline(in, line)) {
      std::istringstream words(line);
      std::string word;
      int n = 0;
      while (words >> word) ++n;
      if (n > 0) out->push_back(std::min(n, 512));
    }
    return out;
  }();
  return *lengths;
}

// The encoder over real text lengths: LibTorch pads each batch to its longest text; the fast path
// concatenates the texts. useful_fraction = real tokens / token rows computed.
void BM_TextMix(benchmark::State& state) {
  const int impl = static_cast<int>(state.range(0));
  const int shape = static_cast<int>(state.range(1));
  const int batch = static_cast<int>(state.range(2));
  const std::vector<int>& lengths = TextLengths();
  if (lengths.empty()) {
    state.SkipWithError("BERTD_BENCH_IDS names no file of ids");
    return;
  }
  Loaded& loaded = Get(impl, shape);
  const BertConfig& config = loaded.model->config();
  c10::InferenceMode guard;
  std::vector<std::vector<int32_t>> ids;
  for (int length : lengths) ids.emplace_back(length, 2000);
  size_t next = 0;
  double sequences = 0, real = 0, computed = 0, flops = 0;
  std::vector<float> out(static_cast<size_t>(batch) * 512 * config.hidden_size);
  for (auto _ : state) {
    std::vector<bertd::runtime::SequenceView> views;
    int64_t longest = 0, total = 0;
    for (int b = 0; b < batch; ++b, next = (next + 1) % ids.size()) {
      views.push_back({ids[next].data(), nullptr, static_cast<int>(ids[next].size())});
      longest = std::max<int64_t>(longest, ids[next].size());
      total += ids[next].size();
      flops += Flops(config, ids[next].size());
    }
    sequences += batch;
    real += total;
    if (impl == 0) {
      at::Tensor input = torch::zeros({batch, longest}, torch::kLong);
      at::Tensor mask = torch::zeros({batch, longest}, torch::kLong);
      for (int b = 0; b < batch; ++b) {
        input[b].slice(0, 0, views[b].length).fill_(2000);
        mask[b].slice(0, 0, views[b].length).fill_(1);
      }
      bertd::model::BertInputs inputs{input, torch::zeros_like(input), mask};
      benchmark::DoNotOptimize(loaded.model->bert(inputs).first);
      computed += batch * longest;
    } else {
      absl::Status status = loaded.fast->Forward(views, out.data());
      if (!status.ok()) state.SkipWithError(std::string(status.message()).c_str());
      computed += (total + 15) / 16 * 16;  // FastBert rounds the rows up to 16
    }
  }
  state.counters["seq_per_s"] = benchmark::Counter(sequences, benchmark::Counter::kIsRate);
  state.counters["tokens_per_s"] = benchmark::Counter(real, benchmark::Counter::kIsRate);
  state.counters["GFLOPs"] = benchmark::Counter(flops / 1e9, benchmark::Counter::kIsRate);
  state.counters["useful_fraction"] = real / std::max(1.0, computed);
}
BENCHMARK(BM_TextMix)
    ->ArgNames({"impl", "shape", "batch"})
    ->ArgsProduct({{0, 1, 2}, {0, 1}, {32}})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// One fine-tuning step of a sequence classifier as LibTorch runs it (bertd's training path):
// forward with dropout, cross-entropy, backward, AdamW. Compare with reference_torch.py --mode train.
void BM_TrainStep(benchmark::State& state) {
  const int shape = static_cast<int>(state.range(0));
  const int64_t batch = state.range(1), seq = state.range(2);
  BertConfig config = Shape(shape);
  config.num_labels = 2;
  torch::manual_seed(0);
  bertd::model::HeadSet heads;
  heads.classifier = true;
  Bert model(config, heads);
  model->train();
  torch::optim::AdamW optimizer(model->parameters(), torch::optim::AdamWOptions(2e-5));
  at::Tensor ids = torch::randint(1000, 30000, {batch, seq}, torch::kLong);
  bertd::model::BertInputs inputs{ids, torch::zeros_like(ids), torch::ones_like(ids)};
  at::Tensor labels = torch::zeros({batch}, torch::kLong);
  for (auto _ : state) {
    optimizer.zero_grad();
    at::Tensor loss = torch::cross_entropy_loss(model->forward(inputs).classifier_logits, labels);
    loss.backward();
    optimizer.step();
  }
  state.counters["tokens_per_s"] = benchmark::Counter(
      static_cast<double>(state.iterations() * batch * seq), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_TrainStep)
    ->ArgNames({"shape", "batch", "seq"})
    ->ArgsProduct({{0, 1}, {8}, {128}})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// Writes a bert-base-shaped BertForSequenceClassification with random weights and the vocabulary
// of `vocab_dir` as a Hugging Face model directory, for the served benchmark.
int SaveModel(const std::string& dir, const std::string& vocab_dir) {
  auto tokenizer = bertd::text::BertTokenizer::FromDirectory(vocab_dir);
  if (!tokenizer.ok()) {
    std::fprintf(stderr, "%s\n", std::string(tokenizer.status().message()).c_str());
    return 1;
  }
  BertConfig config = Shape(1);
  config.architectures = {"BertForSequenceClassification"};
  config.num_labels = 2;
  torch::manual_seed(0);
  Bert model(config, bertd::model::HeadSet::ForArchitecture(config.PrimaryArchitecture()));
  absl::Status status = bertd::model::SaveModelDirectory(dir, *model, *tokenizer);
  if (!status.ok()) {
    std::fprintf(stderr, "%s\n", std::string(status.message()).c_str());
    return 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], "--save_model") == 0 && i + 2 < argc) {
      return SaveModel(argv[i + 1], argv[i + 2]);  // --save_model DIR VOCAB_DIR
    }
  }
  at::set_num_threads(Threads());
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
