// Tokenizer throughput on real text: BertTokenizer::Encode ([CLS] ... [SEP], offsets, tokens) over
// every line of a text file, one thread. Bytes/s is the figure to compare with Hugging Face's
// tokenizers (bench/reference_tokenizer.py).
//   BERTD_BENCH_VOCAB_DIR=dir-with-vocab.txt BERTD_BENCH_TEXTS=one-text-per-line.txt bench_tokenizer
//   bench_tokenizer --dump_ids=FILE   writes the ids of every text, one line each, and exits.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "text/tokenizer.h"

namespace {

std::string Env(const char* name) {
  const char* value = std::getenv(name);
  if (!value) {
    std::fprintf(stderr, "%s is not set\n", name);
    std::exit(2);
  }
  return value;
}

const bertd::text::BertTokenizer& Tokenizer() {
  static const bertd::text::BertTokenizer* tokenizer = [] {
    auto t = bertd::text::BertTokenizer::FromDirectory(Env("BERTD_BENCH_VOCAB_DIR"));
    if (!t.ok()) {
      std::fprintf(stderr, "%s\n", std::string(t.status().message()).c_str());
      std::exit(2);
    }
    return new bertd::text::BertTokenizer(*std::move(t));
  }();
  return *tokenizer;
}

const std::vector<std::string>& Texts() {
  static const std::vector<std::string>* texts = [] {
    auto* lines = new std::vector<std::string>();
    std::ifstream in(Env("BERTD_BENCH_TEXTS"));
    std::string line;
    while (std::getline(in, line)) {
      if (!line.empty()) lines->push_back(line);
    }
    return lines;
  }();
  return *texts;
}

void BM_Encode(benchmark::State& state) {
  const auto& tokenizer = Tokenizer();
  const auto& texts = Texts();
  int64_t bytes = 0;
  for (const std::string& text : texts) bytes += text.size();
  for (auto _ : state) {
    for (const std::string& text : texts) {
      auto encoding = tokenizer.Encode(text);
      benchmark::DoNotOptimize(encoding);
    }
  }
  state.SetBytesProcessed(state.iterations() * bytes);
  state.counters["texts_per_s"] =
      benchmark::Counter(static_cast<double>(state.iterations() * texts.size()),
                         benchmark::Counter::kIsRate);
}
BENCHMARK(BM_Encode)->UseRealTime()->Unit(benchmark::kMillisecond);

void BM_TokenizeOnly(benchmark::State& state) {
  const auto& tokenizer = Tokenizer();
  const auto& texts = Texts();
  int64_t bytes = 0;
  for (const std::string& text : texts) bytes += text.size();
  for (auto _ : state) {
    for (const std::string& text : texts) benchmark::DoNotOptimize(tokenizer.Tokenize(text));
  }
  state.SetBytesProcessed(state.iterations() * bytes);
}
BENCHMARK(BM_TokenizeOnly)->UseRealTime()->Unit(benchmark::kMillisecond);

int DumpIds(const std::string& path) {
  std::ofstream out(path);
  for (const std::string& text : Texts()) {
    auto encodings = Tokenizer().Encode(text);
    if (!encodings.ok()) {
      std::cerr << "encode failed: " << encodings.status() << "\n";
      return 1;
    }
    const auto& ids = (*encodings)[0].ids;
    for (size_t i = 0; i < ids.size(); ++i) out << (i ? " " : "") << ids[i];
    out << "\n";
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--dump_ids=", 11) == 0) return DumpIds(argv[i] + 11);
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
