// Parity with Hugging Face's BertTokenizerFast on the tiny-bert fixture (bert-base-uncased vocab).
#include <string>
#include <utility>
#include <vector>

#include "common/file_util.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "test_util.h"
#include "text/tokenizer.h"

namespace bertd::text {
namespace {

using Offsets = std::vector<std::pair<int32_t, int32_t>>;

// The same tokenizer as vocab.txt (classifier/) and as the tokenizers library's tokenizer.json
// (classifier-tokenizer-json/, no vocab.txt there).
class GoldenTest : public ::testing::TestWithParam<const char*> {};

TEST_P(GoldenTest, MatchesHuggingFaceTokensIdsAndOffsets) {
  BERTD_REQUIRE_SHARED("fixtures/tiny-bert/golden.json");
  BERTD_REQUIRE_SHARED(GetParam());
  absl::StatusOr<std::string> contents =
      ReadFileToString(testing::SharedPath("fixtures/tiny-bert/golden.json"));
  ASSERT_TRUE(contents.ok()) << contents.status();
  const nlohmann::json golden = nlohmann::json::parse(*contents);

  // No tokenizer_config.json there: lowercasing comes from the uncased vocabulary (vocab.txt) or
  // from the normalizer (tokenizer.json).
  absl::StatusOr<BertTokenizer> tokenizer =
      BertTokenizer::FromDirectory(testing::SharedPath(GetParam()));
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  EXPECT_TRUE(tokenizer->options().do_lower_case);
  EXPECT_TRUE(tokenizer->strip_accents());

  const nlohmann::json& texts = golden.at("texts");
  ASSERT_EQ(texts.size(), 5u);
  EncodeOptions options;
  options.max_length = static_cast<int>(golden.at("input_ids")[0].size());
  options.pad_to_max_length = true;
  for (size_t i = 0; i < texts.size(); ++i) {
    const nlohmann::json& item = texts[i];
    const std::string text = item.at("text").get<std::string>();
    std::optional<std::string> pair;
    if (item.contains("text_pair")) pair = item.at("text_pair").get<std::string>();
    SCOPED_TRACE(text);

    absl::StatusOr<std::vector<Encoding>> encodings = tokenizer->Encode(
        text, pair ? std::optional<absl::string_view>(*pair) : std::nullopt, options);
    ASSERT_TRUE(encodings.ok()) << encodings.status();
    ASSERT_EQ(encodings->size(), 1u);
    const Encoding& encoding = encodings->front();

    const auto expected_tokens = item.at("tokens").get<std::vector<std::string>>();
    const auto expected_offsets = item.at("offsets").get<Offsets>();
    const size_t real = expected_tokens.size();
    ASSERT_LE(real, encoding.size());
    EXPECT_EQ(std::vector<std::string>(encoding.tokens.begin(), encoding.tokens.begin() + real),
              expected_tokens);
    EXPECT_EQ(Offsets(encoding.offsets.begin(), encoding.offsets.begin() + real), expected_offsets);
    EXPECT_EQ(encoding.ids, golden.at("input_ids")[i].get<std::vector<int32_t>>());
    EXPECT_EQ(encoding.type_ids, golden.at("token_type_ids")[i].get<std::vector<int32_t>>());
    EXPECT_EQ(encoding.attention_mask, golden.at("attention_mask")[i].get<std::vector<int32_t>>());
    for (size_t j = real; j < encoding.size(); ++j) {
      EXPECT_EQ(encoding.tokens[j], "[PAD]");
      EXPECT_EQ(encoding.offsets[j], (std::pair<int32_t, int32_t>(0, 0)));
    }
  }
}

INSTANTIATE_TEST_SUITE_P(VocabTxtAndTokenizerJson, GoldenTest,
                         ::testing::Values("fixtures/tiny-bert/classifier",
                                           "fixtures/tiny-bert/classifier-tokenizer-json"));

}  // namespace
}  // namespace bertd::text
