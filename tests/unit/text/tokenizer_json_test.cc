// tokenizer.json as the tokenizers library writes it for BERT, and what bertd refuses.
#include "text/tokenizer_json.h"

#include <string>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "text/tokenizer.h"

namespace bertd::text {
namespace {

using Json = nlohmann::json;

// A Hub-style file: TemplateProcessing, special tokens listed in added_tokens, a fixed
// truncation and padding that transformers ignores.
Json HubStyle() {
  Json vocab = Json::object();
  const char* tokens[] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world",
                          "##s",   "play",  "!",     "cafe",  "Cafe"};
  for (int i = 0; i < 12; ++i) vocab[tokens[i]] = i;
  Json root = Json::parse(R"({
    "version": "1.0",
    "truncation": {"max_length": 8, "strategy": "LongestFirst", "stride": 0},
    "padding": {"strategy": {"Fixed": 8}, "pad_id": 0, "pad_type_id": 0, "pad_token": "[PAD]"},
    "added_tokens": [
      {"id": 0, "content": "[PAD]", "special": true},
      {"id": 1, "content": "[UNK]", "special": true},
      {"id": 2, "content": "[CLS]", "special": true},
      {"id": 3, "content": "[SEP]", "special": true},
      {"id": 4, "content": "[MASK]", "special": true}
    ],
    "normalizer": {"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true,
                   "strip_accents": null, "lowercase": true},
    "pre_tokenizer": {"type": "BertPreTokenizer"},
    "post_processor": {"type": "TemplateProcessing",
      "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                 {"SpecialToken": {"id": "[SEP]", "type_id": 0}}],
      "pair": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
               {"SpecialToken": {"id": "[SEP]", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}},
               {"SpecialToken": {"id": "[SEP]", "type_id": 1}}]},
    "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": true},
    "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
              "max_input_chars_per_word": 100}
  })");
  root["model"]["vocab"] = vocab;
  return root;
}

absl::StatusOr<TokenizerJson> Parse(const Json& root) {
  return ParseTokenizerJson(root.dump(), "m/tokenizer.json");
}

TEST(TokenizerJsonTest, ReadsAHubStyleFileAndEncodesWithIt) {
  absl::StatusOr<TokenizerJson> parsed = Parse(HubStyle());
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->vocab.size(), 12);
  EXPECT_TRUE(parsed->options.do_lower_case);
  EXPECT_FALSE(parsed->options.strip_accents.has_value());
  EXPECT_EQ(parsed->options.special_tokens.cls, "[CLS]");
  EXPECT_TRUE(parsed->options.never_split.empty());

  absl::StatusOr<BertTokenizer> tokenizer =
      BertTokenizer::Create(std::move(parsed->vocab), std::move(parsed->options));
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  // Lowercased, accents stripped with it, "plays" split, type ids of a pair. The file's
  // truncation (8) is not applied.
  absl::StatusOr<std::vector<Encoding>> encodings =
      tokenizer->Encode("Hello WORLD plays!", std::optional<absl::string_view>("Café world"));
  ASSERT_TRUE(encodings.ok()) << encodings.status();
  EXPECT_EQ(encodings->front().ids, (std::vector<int32_t>{2, 5, 6, 8, 7, 9, 3, 10, 6, 3}));
  EXPECT_EQ(encodings->front().type_ids, (std::vector<int32_t>{0, 0, 0, 0, 0, 0, 0, 1, 1, 1}));
}

TEST(TokenizerJsonTest, BertProcessingAndACasedNormalizer) {
  Json root = HubStyle();
  root["post_processor"] = Json::parse(R"({"type": "BertProcessing", "sep": ["[SEP]", 3],
                                           "cls": ["[CLS]", 2]})");
  root["normalizer"]["lowercase"] = false;
  root["normalizer"]["strip_accents"] = false;
  absl::StatusOr<TokenizerJson> parsed = Parse(root);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_FALSE(parsed->options.do_lower_case);
  absl::StatusOr<BertTokenizer> tokenizer =
      BertTokenizer::Create(std::move(parsed->vocab), std::move(parsed->options));
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  absl::StatusOr<std::vector<Encoding>> encodings = tokenizer->Encode("Cafe hello");
  ASSERT_TRUE(encodings.ok()) << encodings.status();
  EXPECT_EQ(encodings->front().ids, (std::vector<int32_t>{2, 11, 5, 3}));
}

TEST(TokenizerJsonTest, AddedTokensExtendTheVocabularyAndAreNeverSplit) {
  Json root = HubStyle();
  root["added_tokens"].push_back({{"id", 12}, {"content", "<ent>"}, {"special", false}});
  absl::StatusOr<TokenizerJson> parsed = Parse(root);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->vocab.size(), 13);
  absl::StatusOr<BertTokenizer> tokenizer =
      BertTokenizer::Create(std::move(parsed->vocab), std::move(parsed->options));
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  absl::StatusOr<std::vector<Encoding>> encodings = tokenizer->Encode("hello <ent> world");
  ASSERT_TRUE(encodings.ok()) << encodings.status();
  EXPECT_EQ(encodings->front().ids, (std::vector<int32_t>{2, 5, 12, 6, 3}));
}

TEST(TokenizerJsonTest, MaxInputCharsPerWordIsHonoured) {
  Json root = HubStyle();
  root["model"]["max_input_chars_per_word"] = 4;
  absl::StatusOr<TokenizerJson> parsed = Parse(root);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  absl::StatusOr<BertTokenizer> tokenizer =
      BertTokenizer::Create(std::move(parsed->vocab), std::move(parsed->options));
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  absl::StatusOr<std::vector<Encoding>> encodings = tokenizer->Encode("play plays");
  ASSERT_TRUE(encodings.ok()) << encodings.status();
  EXPECT_EQ(encodings->front().ids, (std::vector<int32_t>{2, 8, 1, 3}));
}

struct Refusal {
  const char* name;
  const char* json_pointer;  // the field to change
  const char* value;         // its new JSON value
  const char* expected;      // in the message
};

class TokenizerJsonRefusalTest : public ::testing::TestWithParam<Refusal> {};

TEST_P(TokenizerJsonRefusalTest, NamesTheField) {
  Json root = HubStyle();
  root[Json::json_pointer(GetParam().json_pointer)] = Json::parse(GetParam().value);
  absl::StatusOr<TokenizerJson> parsed = Parse(root);
  ASSERT_FALSE(parsed.ok());
  EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(parsed.status().message().find(GetParam().expected), std::string::npos)
      << parsed.status().message();
  EXPECT_NE(parsed.status().message().find("m/tokenizer.json"), std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(
    Fields, TokenizerJsonRefusalTest,
    ::testing::Values(
        Refusal{"Bpe", "/model/type", R"("BPE")", "model.type is \"BPE\""},
        Refusal{"Prefix", "/model/continuing_subword_prefix", R"("@@")",
                "model.continuing_subword_prefix"},
        Refusal{"GapInIds", "/model/vocab/world", "40", "model.vocab has id 40"},
        Refusal{"SharedId", "/model/vocab/world", "5", "gives id 5 to two tokens"},
        Refusal{"NoVocab", "/model/vocab", "[]", "model.vocab must be an object"},
        Refusal{"Normalizer", "/normalizer/type", R"("NFKC")", "normalizer.type"},
        Refusal{"NoNormalizer", "/normalizer", "null", "normalizer is missing"},
        Refusal{"UncleanText", "/normalizer/clean_text", "false", "normalizer.clean_text"},
        Refusal{"PreTokenizer", "/pre_tokenizer/type", R"("Metaspace")", "pre_tokenizer.type"},
        Refusal{"Roberta", "/post_processor/type", R"("RobertaProcessing")", "post_processor.type"},
        Refusal{"Template", "/post_processor/single", R"([{"Sequence": {"id": "A"}}])",
                "post_processor.single"},
        Refusal{"AddedTokenClash", "/added_tokens/1/content", R"("[OOPS]")", "added_tokens[1]"},
        Refusal{"AddedTokenGap", "/added_tokens/1/id", "99", "added_tokens[1].id is 99"}),
    [](const ::testing::TestParamInfo<Refusal>& info) { return std::string(info.param.name); });

TEST(TokenizerJsonTest, DeepNestingIsRefusedBeforeItIsBuilt) {
  std::string deep(100000, '[');
  absl::StatusOr<TokenizerJson> parsed = ParseTokenizerJson(deep, "m/tokenizer.json");
  ASSERT_FALSE(parsed.ok());
  EXPECT_NE(parsed.status().message().find("--max_json_depth"), std::string::npos)
      << parsed.status().message();
}

}  // namespace
}  // namespace bertd::text
