// The fast CPU path (runtime::FastBert) against LibTorch's BertImpl forward, against the
// independent golden outputs, and bf16 against fp32.
#include <torch/torch.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "golden_fixture.h"
#include "gtest/gtest.h"
#include "inference/model_runner.h"
#include "model/checkpoint.h"
#include "runtime/fast_bert.h"
#include "runtime/from_torch.h"
#include "test_util.h"
#include "text/tokenizer.h"

namespace bertd::runtime {
namespace {

using testing::SharedPath;

model::BertConfig TinyConfig(const std::string& activation) {
  model::BertConfig config;
  config.vocab_size = 97;
  config.hidden_size = 48;
  config.num_hidden_layers = 2;
  config.num_attention_heads = 4;
  config.intermediate_size = 80;
  config.max_position_embeddings = 40;
  config.hidden_act = activation;
  return config;
}

// Rows [offset, offset + length) of `packed` hold sequence b; the padded LibTorch output holds it
// at [b, 0:length).
struct Batch {
  std::vector<std::vector<int32_t>> ids, types;
  std::vector<SequenceView> Views() const {
    std::vector<SequenceView> views;
    for (size_t b = 0; b < ids.size(); ++b) {
      views.push_back({ids[b].data(), types[b].data(), static_cast<int>(ids[b].size())});
    }
    return views;
  }
  model::BertInputs Padded() const {
    int64_t longest = 0;
    for (const auto& row : ids) longest = std::max<int64_t>(longest, row.size());
    const int64_t batch = static_cast<int64_t>(ids.size());
    model::BertInputs inputs{torch::zeros({batch, longest}, torch::kLong),
                             torch::zeros({batch, longest}, torch::kLong),
                             torch::zeros({batch, longest}, torch::kLong)};
    for (int64_t b = 0; b < batch; ++b) {
      for (size_t t = 0; t < ids[b].size(); ++t) {
        inputs.input_ids[b][t] = ids[b][t];
        inputs.token_type_ids[b][t] = types[b][t];
        inputs.attention_mask[b][t] = 1;
      }
    }
    return inputs;
  }
};

Batch RandomBatch(const std::vector<int>& lengths, int vocab) {
  Batch batch;
  torch::manual_seed(7);
  for (int length : lengths) {
    at::Tensor ids = torch::randint(1, vocab, {length}, torch::kLong);
    at::Tensor types = torch::randint(0, 2, {length}, torch::kLong);
    std::vector<int32_t> id_row, type_row;
    for (int t = 0; t < length; ++t) {
      id_row.push_back(static_cast<int32_t>(ids[t].item<int64_t>()));
      type_row.push_back(static_cast<int32_t>(types[t].item<int64_t>()));
    }
    batch.ids.push_back(id_row);
    batch.types.push_back(type_row);
  }
  return batch;
}

// Runs `fast` on `batch` and returns the rows as [tokens, hidden].
at::Tensor RunFast(FastBert& fast, const Batch& batch) {
  int64_t total = 0;
  for (const auto& row : batch.ids) total += row.size();
  at::Tensor out = torch::empty({total, fast.config().hidden_size}, torch::kFloat);
  absl::Status status = fast.Forward(batch.Views(), out.data_ptr<float>());
  EXPECT_TRUE(status.ok()) << status;
  return out;
}

// The padded [B, T, H] output's real tokens, concatenated like the fast path's rows.
at::Tensor RealRows(const at::Tensor& padded, const Batch& batch) {
  std::vector<at::Tensor> parts;
  for (size_t b = 0; b < batch.ids.size(); ++b) {
    parts.push_back(padded[b].slice(0, 0, batch.ids[b].size()));
  }
  return torch::cat(parts, 0);
}

class FastBertParity : public ::testing::TestWithParam<std::string> {};

TEST_P(FastBertParity, Fp32MatchesLibTorchForwardOnRealTokens) {
  torch::manual_seed(3);
  model::Bert model(TinyConfig(GetParam()), model::HeadSet{});
  // Larger weights than BERT's 0.02 so that attention is far from uniform and errors show.
  {
    torch::NoGradGuard no_grad;
    for (auto& p : model->parameters()) {
      if (p.dim() == 2) p.normal_(0.0, 0.2);
    }
  }
  model->eval();
  Batch batch = RandomBatch({17, 1, 33, 5, 40}, 97);
  torch::InferenceMode guard;
  at::Tensor expected = RealRows(model->bert(batch.Padded()).first, batch);
  auto fast = PackEncoder(*model, {Precision::kFloat32, 2}, /*release_encoder_weights=*/false);
  ASSERT_TRUE(fast.ok()) << fast.status();
  at::Tensor actual = RunFast(**fast, batch);
  EXPECT_TRUE(torch::allclose(actual, expected, 1e-4, 1e-4))
      << "max |diff| " << (actual - expected).abs().max().item<float>();

  // Same weights in bf16: close, not equal (8 mantissa bits on the matmul inputs).
  auto fast_bf16 = PackEncoder(*model, {Precision::kBFloat16, 2}, false);
  ASSERT_TRUE(fast_bf16.ok()) << fast_bf16.status();
  at::Tensor bf16 = RunFast(**fast_bf16, batch);
  const float mean_error = (bf16 - expected).abs().mean().item<float>();
  EXPECT_LT(mean_error, 0.05) << "bf16 drifted from fp32";
  EXPECT_GT(mean_error, 0.0);
}

INSTANTIATE_TEST_SUITE_P(Activations, FastBertParity,
                         ::testing::Values("gelu", "gelu_new", "relu", "silu"));

TEST(FastBertTest, ReleasingEncoderWeightsFreesLibTorchCopies) {
  model::Bert model(TinyConfig("gelu"), model::HeadSet{});
  auto fast = PackEncoder(*model, {}, /*release_encoder_weights=*/true);
  ASSERT_TRUE(fast.ok()) << fast.status();
  for (const auto& p : model->bert->layers->parameters()) EXPECT_EQ(p.numel(), 0);
  // Embeddings are shared, not released.
  EXPECT_EQ(model->bert->embeddings->word_embeddings->weight.numel(), 97 * 48);
  EXPECT_GT((*fast)->packed_weight_bytes(), 0);
}

TEST(FastBertTest, RejectsIdsOutsideTheVocabulary) {
  model::Bert model(TinyConfig("gelu"), model::HeadSet{});
  auto fast = PackEncoder(*model, {}, false);
  ASSERT_TRUE(fast.ok());
  std::vector<int32_t> ids = {1, 97};
  std::vector<float> out(2 * 48);
  absl::Status status = (*fast)->Forward({{ids.data(), nullptr, 2}}, out.data());
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("token 1"), std::string::npos) << status;
}

TEST(FastBertTest, ParsesPrecisionNames) {
  EXPECT_EQ(*ParsePrecision("bf16"), Precision::kBFloat16);
  EXPECT_EQ(*ParsePrecision("float32"), Precision::kFloat32);
  EXPECT_FALSE(ParsePrecision("fp8").ok());
}

TEST(FastBertGoldenTest, MatchesIndependentReference) {
  BERTD_REQUIRE_SHARED("fixtures/tiny-bert/golden.json");
  testing::Golden golden = testing::Golden::Load();
  auto loaded = model::LoadBertFromDirectory(SharedPath("fixtures/tiny-bert/pretraining"));
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  auto fast = PackEncoder(*loaded->model, {}, true);
  ASSERT_TRUE(fast.ok()) << fast.status();
  Batch batch;
  const at::Tensor& ids = golden.inputs.input_ids;
  for (int64_t b = 0; b < ids.size(0); ++b) {
    std::vector<int32_t> id_row, type_row;
    for (int64_t t = 0; t < ids.size(1); ++t) {
      if (golden.inputs.attention_mask[b][t].item<int64_t>() == 0) break;
      id_row.push_back(static_cast<int32_t>(ids[b][t].item<int64_t>()));
      type_row.push_back(static_cast<int32_t>(golden.inputs.token_type_ids[b][t].item<int64_t>()));
    }
    batch.ids.push_back(id_row);
    batch.types.push_back(type_row);
  }
  at::Tensor actual = RunFast(**fast, batch);
  at::Tensor expected = RealRows(golden.Expected("last_hidden_state"), batch);
  EXPECT_TRUE(torch::allclose(actual, expected, 1e-4, 1e-4))
      << "max |diff| " << (actual - expected).abs().max().item<float>();
}

// Classifies SST-2 dev with the tiny classifier fixture through the serving runner.
std::vector<std::vector<float>> ClassifySst2(const inference::RunnerOptions& options,
                                             bool* fast_used) {
  const std::string dir = SharedPath("fixtures/tiny-bert/classifier");
  auto loaded = model::LoadBertFromDirectory(dir);
  EXPECT_TRUE(loaded.ok()) << loaded.status();
  auto tokenizer = text::BertTokenizer::FromDirectory(dir);
  EXPECT_TRUE(tokenizer.ok()) << tokenizer.status();
  const int max_length = loaded->config.max_position_embeddings;
  inference::ModelRunner runner(std::move(loaded->model), c10::Device(c10::kCPU), options);
  *fast_used = runner.uses_fast_path();
  std::ifstream in(SharedPath("data/glue/SST-2/dev.tsv"));
  std::string line;
  std::getline(in, line);  // header
  std::vector<std::shared_ptr<inference::SequenceWork>> works;
  while (std::getline(in, line)) {
    std::vector<std::string> fields = absl::StrSplit(line, '\t');
    auto encodings = tokenizer->Encode(fields[0]);
    EXPECT_TRUE(encodings.ok()) << encodings.status();
    auto work = std::make_shared<inference::SequenceWork>();
    work->ids = (*encodings)[0].ids;
    work->type_ids = (*encodings)[0].type_ids;
    if (static_cast<int>(work->ids.size()) > max_length) {  // keep [SEP] last
      work->ids.erase(work->ids.begin() + max_length - 1, work->ids.end() - 1);
      work->type_ids.resize(max_length);
    }
    works.push_back(work);
  }
  for (size_t start = 0; start < works.size(); start += 32) {
    std::vector<inference::SequenceWork*> batch;
    for (size_t i = start; i < std::min(works.size(), start + 32); ++i) batch.push_back(works[i].get());
    runner.Run(batch);
  }
  std::vector<std::vector<float>> logits;
  for (const auto& work : works) logits.push_back(work->logits);
  return logits;
}

int ArgMax(const std::vector<float>& v) {
  return static_cast<int>(std::max_element(v.begin(), v.end()) - v.begin());
}

TEST(FastBertServingTest, Sst2DevFp32MatchesLibTorchAndBf16AgreesOnTop1) {
  BERTD_REQUIRE_SHARED("data/glue/SST-2/dev.tsv");
  BERTD_REQUIRE_SHARED("fixtures/tiny-bert/classifier/config.json");
  bool fast_used = false;
  inference::RunnerOptions reference_options;
  reference_options.fast_path = false;
  auto reference = ClassifySst2(reference_options, &fast_used);
  EXPECT_FALSE(fast_used);
  auto fp32 = ClassifySst2({}, &fast_used);
  EXPECT_TRUE(fast_used);
  inference::RunnerOptions bf16_options;
  bf16_options.precision = Precision::kBFloat16;
  auto bf16 = ClassifySst2(bf16_options, &fast_used);
  EXPECT_TRUE(fast_used);
  ASSERT_EQ(reference.size(), 872u);
  ASSERT_EQ(fp32.size(), reference.size());
  int agree = 0;
  for (size_t i = 0; i < reference.size(); ++i) {
    ASSERT_EQ(fp32[i].size(), 3u);
    for (size_t j = 0; j < 3; ++j) {
      EXPECT_NEAR(fp32[i][j], reference[i][j], 1e-4 + 1e-4 * std::abs(reference[i][j]))
          << "text " << i << " label " << j;
    }
    agree += ArgMax(bf16[i]) == ArgMax(fp32[i]);
  }
  const double agreement = static_cast<double>(agree) / fp32.size();
  RecordProperty("bf16_top1_agreement", std::to_string(agreement));
  std::printf("bf16 top-1 agreement with fp32 on SST-2 dev: %d of %zu\n", agree, fp32.size());
  EXPECT_GE(agreement, 0.99) << agree << " of " << fp32.size();
}

}  // namespace
}  // namespace bertd::runtime
