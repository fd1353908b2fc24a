#ifndef BERTD_TESTS_UNIT_MODEL_GOLDEN_FIXTURE_H_
#define BERTD_TESTS_UNIT_MODEL_GOLDEN_FIXTURE_H_

#include <torch/torch.h>

#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "gtest/gtest.h"
#include "model/bert.h"
#include "test_util.h"

namespace bertd::testing {

// shared/fixtures/tiny-bert/golden.json: a padded batch and every head's expected output,
// computed by an independent reference built on PyTorch's nn.TransformerEncoderLayer.
struct Golden {
  nlohmann::json json;
  model::BertInputs inputs;

  static Golden Load() {
    Golden golden;
    std::ifstream in(SharedPath("fixtures/tiny-bert/golden.json"));
    golden.json = nlohmann::json::parse(in);
    auto to_tensor = [&](const char* key) {
      std::vector<std::vector<int64_t>> rows = golden.json[key];
      at::Tensor tensor = torch::zeros({static_cast<int64_t>(rows.size()),
                                        static_cast<int64_t>(rows[0].size())}, torch::kLong);
      for (size_t i = 0; i < rows.size(); ++i) {
        for (size_t j = 0; j < rows[i].size(); ++j) tensor[i][j] = rows[i][j];
      }
      return tensor;
    };
    golden.inputs = {to_tensor("input_ids"), to_tensor("token_type_ids"),
                     to_tensor("attention_mask")};
    return golden;
  }

  at::Tensor Expected(const std::string& output) const {
    const nlohmann::json& entry = json["outputs"][output];
    std::vector<int64_t> shape = entry["shape"];
    std::vector<float> values = entry["values"];
    return torch::from_blob(values.data(), shape, torch::kFloat).clone();
  }
};

// Compares `actual` with golden `expected` at atol = rtol = 1e-4, ignoring padded positions
// (dimension 1 indexes tokens when `token_mask` is given).
inline ::testing::AssertionResult MatchesGolden(const at::Tensor& actual, const at::Tensor& expected,
                                                const at::Tensor& token_mask = {}) {
  if (actual.sizes() != expected.sizes()) {
    return ::testing::AssertionFailure()
           << "shape " << actual.sizes() << " vs golden " << expected.sizes();
  }
  at::Tensor a = actual.to(torch::kFloat).cpu();
  at::Tensor tolerance = 1e-4 + 1e-4 * expected.abs();
  at::Tensor bad = (a - expected).abs() > tolerance;
  if (token_mask.defined()) {
    at::Tensor valid = token_mask.to(torch::kBool);
    while (valid.dim() < bad.dim()) valid = valid.unsqueeze(-1);
    bad = bad & valid;
  }
  int64_t bad_count = bad.sum().item<int64_t>();
  if (bad_count == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << bad_count << " of " << bad.numel() << " values differ beyond 1e-4; max |diff| "
         << ((a - expected).abs() * bad).max().item<float>();
}

}  // namespace bertd::testing

#endif  // BERTD_TESTS_UNIT_MODEL_GOLDEN_FIXTURE_H_
