#include "text/tokenizer.h"

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "common/file_util.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "test_util.h"

namespace bertd::text {
namespace {

using Offsets = std::vector<std::pair<int32_t, int32_t>>;

std::vector<std::string> Texts(const std::vector<Token>& tokens) {
  std::vector<std::string> texts;
  for (const Token& token : tokens) texts.push_back(token.text);
  return texts;
}

std::vector<int32_t> Ids(const std::vector<Token>& tokens) {
  std::vector<int32_t> ids;
  for (const Token& token : tokens) ids.push_back(token.id);
  return ids;
}

Offsets Spans(const std::vector<Token>& tokens) {
  Offsets spans;
  for (const Token& token : tokens) spans.emplace_back(token.start, token.end);
  return spans;
}

BertTokenizer LoadShared(const std::string& vocab, TokenizerOptions options) {
  absl::StatusOr<Vocab> loaded = Vocab::Load(testing::SharedPath(vocab));
  EXPECT_TRUE(loaded.ok()) << loaded.status();
  absl::StatusOr<BertTokenizer> tokenizer =
      BertTokenizer::Create(*std::move(loaded), std::move(options));
  EXPECT_TRUE(tokenizer.ok()) << tokenizer.status();
  return *std::move(tokenizer);
}

constexpr char kUncased[] = "data/vocab/bert-base-uncased-vocab.txt";
constexpr char kCased[] = "data/vocab/bert-base-cased-vocab.txt";
constexpr char kChinese[] = "data/vocab/bert-base-chinese-vocab.txt";

std::vector<Token> MustTokenize(const BertTokenizer& tokenizer, absl::string_view text) {
  absl::StatusOr<std::vector<Token>> tokens = tokenizer.Tokenize(text);
  EXPECT_TRUE(tokens.ok()) << tokens.status();
  return tokens.ok() ? *tokens : std::vector<Token>();
}

TEST(TokenizerTest, UncasedLowercasesAndStripsAccents) {
  BERTD_REQUIRE_SHARED(kUncased);
  BertTokenizer tokenizer = LoadShared(kUncased, {});
  std::vector<Token> tokens = MustTokenize(tokenizer, "H\u00E9llo, WORLD!");
  EXPECT_EQ(Texts(tokens), (std::vector<std::string>{"hello", ",", "world", "!"}));
  EXPECT_EQ(Ids(tokens), (std::vector<int32_t>{7592, 1010, 2088, 999}));
  EXPECT_EQ(Spans(tokens), (Offsets{{0, 5}, {5, 6}, {7, 12}, {12, 13}}));
}

TEST(TokenizerTest, CasedKeepsCaseAndAccents) {
  BERTD_REQUIRE_SHARED(kCased);
  TokenizerOptions options;
  options.do_lower_case = false;
  BertTokenizer tokenizer = LoadShared(kCased, options);
  EXPECT_FALSE(tokenizer.strip_accents());
  std::vector<Token> tokens = MustTokenize(tokenizer, "Hello World! Caf\u00E9 na\u00EFve hello");
  EXPECT_EQ(Texts(tokens), (std::vector<std::string>{"Hello", "World", "!", "Caf\u00E9", "na",
                                                     "##\u00EF", "##ve", "hello"}));
  EXPECT_EQ(Ids(tokens), (std::vector<int32_t>{8667, 1291, 106, 21036, 9468, 28203, 2707, 19082}));
  EXPECT_EQ(Spans(tokens),
            (Offsets{{0, 5}, {6, 11}, {11, 12}, {13, 17}, {18, 20}, {20, 21}, {21, 23}, {24, 29}}));
}

TEST(TokenizerTest, ChineseCharactersAreSingleTokens) {
  BERTD_REQUIRE_SHARED(kChinese);
  BertTokenizer tokenizer = LoadShared(kChinese, {});
  std::vector<Token> tokens = MustTokenize(tokenizer, "\u6211\u7231\u5317\u4EACHELLO");  // 我爱北京
  EXPECT_EQ(Texts(tokens),
            (std::vector<std::string>{"\u6211", "\u7231", "\u5317", "\u4EAC", "hello"}));
  EXPECT_EQ(Ids(tokens), (std::vector<int32_t>{2769, 4263, 1266, 776, 8701}));
  EXPECT_EQ(Spans(tokens), (Offsets{{0, 1}, {1, 2}, {2, 3}, {3, 4}, {4, 9}}));
}

TEST(TokenizerTest, SpecialTokensInTextAreNeitherSplitNorLowercased) {
  BERTD_REQUIRE_SHARED(kUncased);
  BertTokenizer tokenizer = LoadShared(kUncased, {});
  std::vector<Token> tokens = MustTokenize(tokenizer, "hello [MASK] world [mask][SEP]");
  EXPECT_EQ(Texts(tokens),
            (std::vector<std::string>{"hello", "[MASK]", "world", "[", "mask", "]", "[SEP]"}));
  EXPECT_EQ(Ids(tokens), (std::vector<int32_t>{7592, 103, 2088, 1031, 7308, 1033, 102}));
  EXPECT_EQ(Spans(tokens),
            (Offsets{{0, 5}, {6, 12}, {13, 18}, {19, 20}, {20, 24}, {24, 25}, {25, 30}}));
}

TEST(TokenizerTest, NeverSplitTokensAreKeptWhole) {
  BERTD_REQUIRE_SHARED(kUncased);
  TokenizerOptions options;
  options.never_split = {"[unused0]", "<ent>"};
  BertTokenizer tokenizer = LoadShared(kUncased, options);
  std::vector<Token> tokens = MustTokenize(tokenizer, "x[unused0]y <ent>");
  EXPECT_EQ(Texts(tokens), (std::vector<std::string>{"x", "[unused0]", "y", "<ent>"}));
  // "<ent>" is not in the vocabulary: kept whole, but its id is the unknown token's.
  EXPECT_EQ(Ids(tokens), (std::vector<int32_t>{1060, 1, 1061, 100}));
  EXPECT_EQ(Spans(tokens), (Offsets{{0, 1}, {1, 10}, {10, 11}, {12, 17}}));
}

TEST(TokenizerTest, OverlongOrUnmatchableWordsBecomeOneUnknownToken) {
  BERTD_REQUIRE_SHARED(kUncased);
  BertTokenizer tokenizer = LoadShared(kUncased, {});
  const std::string longest(100, 'a');
  std::vector<Token> tokens = MustTokenize(tokenizer, "x " + longest + "a y");
  EXPECT_EQ(Texts(tokens), (std::vector<std::string>{"x", "[UNK]", "y"}));
  EXPECT_EQ(Spans(tokens), (Offsets{{0, 1}, {2, 103}, {104, 105}}));

  tokens = MustTokenize(tokenizer, longest);
  ASSERT_FALSE(tokens.empty());
  EXPECT_NE(tokens[0].text, "[UNK]");

  // U+2603 (snowman) is not in the vocabulary, so the whole word is unknown, not just its tail.
  tokens = MustTokenize(tokenizer, "hello\u2603 ok");
  EXPECT_EQ(Texts(tokens), (std::vector<std::string>{"[UNK]", "ok"}));
  EXPECT_EQ(Ids(tokens), (std::vector<int32_t>{100, 7929}));
  EXPECT_EQ(Spans(tokens), (Offsets{{0, 6}, {7, 9}}));
}

TEST(TokenizerTest, InvalidUtf8IsAnErrorNamingTheByteOffset) {
  BERTD_REQUIRE_SHARED(kUncased);
  BertTokenizer tokenizer = LoadShared(kUncased, {});
  absl::StatusOr<std::vector<Token>> tokens = tokenizer.Tokenize("ok \xC3(");
  EXPECT_EQ(tokens.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(tokens.status().message(), "byte offset 3")) << tokens.status();
  absl::StatusOr<std::vector<Encoding>> encodings =
      tokenizer.Encode("fine", absl::string_view("\x80"));
  EXPECT_EQ(encodings.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(TokenizerTest, EncodesPairsWithTypeIdsMasksAndSequenceIds) {
  BERTD_REQUIRE_SHARED(kUncased);
  BertTokenizer tokenizer = LoadShared(kUncased, {});
  EncodeOptions options;
  options.max_length = 10;
  options.pad_to_max_length = true;
  absl::StatusOr<std::vector<Encoding>> encodings =
      tokenizer.Encode("Hello world", absl::string_view("hello"), options);
  ASSERT_TRUE(encodings.ok()) << encodings.status();
  ASSERT_EQ(encodings->size(), 1u);
  const Encoding& e = encodings->front();
  EXPECT_EQ(e.tokens, (std::vector<std::string>{"[CLS]", "hello", "world", "[SEP]", "hello",
                                                "[SEP]", "[PAD]", "[PAD]", "[PAD]", "[PAD]"}));
  EXPECT_EQ(e.ids, (std::vector<int32_t>{101, 7592, 2088, 102, 7592, 102, 0, 0, 0, 0}));
  EXPECT_EQ(e.type_ids, (std::vector<int32_t>{0, 0, 0, 0, 1, 1, 0, 0, 0, 0}));
  EXPECT_EQ(e.attention_mask, (std::vector<int32_t>{1, 1, 1, 1, 1, 1, 0, 0, 0, 0}));
  EXPECT_EQ(e.special_tokens_mask, (std::vector<int32_t>{1, 0, 0, 1, 0, 1, 1, 1, 1, 1}));
  EXPECT_EQ(e.sequence_ids, (std::vector<int8_t>{-1, 0, 0, -1, 1, -1, -1, -1, -1, -1}));
  EXPECT_EQ(
      e.offsets,
      (Offsets{{0, 0}, {0, 5}, {6, 11}, {0, 0}, {0, 5}, {0, 0}, {0, 0}, {0, 0}, {0, 0}, {0, 0}}));
}

TEST(TokenizerTest, QuestionAnsweringWindowsSlideOverTheContext) {
  BERTD_REQUIRE_SHARED(kUncased);
  BertTokenizer tokenizer = LoadShared(kUncased, {});
  const std::string question = "who?";
  const std::string context = "one two three four five six seven eight nine ten";
  EncodeOptions options;
  options.max_length = 9;  // [CLS] who ? [SEP] + 4 context tokens + [SEP]
  options.truncation = EncodeOptions::Truncation::kOnlySecond;
  options.stride = 2;
  options.return_overflowing = true;
  options.pad_to_max_length = true;
  absl::StatusOr<std::vector<Encoding>> windows =
      tokenizer.Encode(question, absl::string_view(context), options);
  ASSERT_TRUE(windows.ok()) << windows.status();
  // 10 context words, 4 per window, advancing by 4 - 2: starts at 0, 2, 4, 6.
  ASSERT_EQ(windows->size(), 4u);
  const std::vector<std::vector<std::string>> expected_context = {
      {"one", "two", "three", "four"},
      {"three", "four", "five", "six"},
      {"five", "six", "seven", "eight"},
      {"seven", "eight", "nine", "ten"}};
  for (size_t w = 0; w < windows->size(); ++w) {
    const Encoding& e = (*windows)[w];
    ASSERT_EQ(e.size(), 9u);
    EXPECT_EQ(std::vector<std::string>(e.tokens.begin(), e.tokens.begin() + 4),
              (std::vector<std::string>{"[CLS]", "who", "?", "[SEP]"}));
    EXPECT_EQ(std::vector<std::string>(e.tokens.begin() + 4, e.tokens.begin() + 8),
              expected_context[w]);
    EXPECT_EQ(e.tokens[8], "[SEP]");
    for (size_t i = 4; i < 8; ++i) {
      const auto [start, end] = e.offsets[i];
      EXPECT_EQ(context.substr(start, end - start), e.tokens[i]);
    }
    if (w > 0) {
      // The two tokens shared with the previous window point at the same context characters.
      const Encoding& previous = (*windows)[w - 1];
      EXPECT_EQ(e.offsets[4], previous.offsets[6]);
      EXPECT_EQ(e.offsets[5], previous.offsets[7]);
    }
  }
}

TEST(TokenizerTest, EncodeBatchEncodesEachItem) {
  BERTD_REQUIRE_SHARED(kUncased);
  BertTokenizer tokenizer = LoadShared(kUncased, {});
  const std::vector<absl::string_view> texts = {"hello", "hello world"};
  absl::StatusOr<std::vector<std::vector<Encoding>>> batch = tokenizer.EncodeBatch(texts);
  ASSERT_TRUE(batch.ok()) << batch.status();
  ASSERT_EQ(batch->size(), 2u);
  EXPECT_EQ((*batch)[0][0].ids, (std::vector<int32_t>{101, 7592, 102}));
  EXPECT_EQ((*batch)[1][0].ids, (std::vector<int32_t>{101, 7592, 2088, 102}));

  const std::vector<std::pair<absl::string_view, absl::string_view>> pairs = {{"hello", "world"},
                                                                              {"bad", "\xFF"}};
  absl::StatusOr<std::vector<std::vector<Encoding>>> failed = tokenizer.EncodeBatch(pairs);
  EXPECT_EQ(failed.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(failed.status().message(), "batch item 1")) << failed.status();
}

Vocab SmallVocab() {
  return Vocab::FromTokens(
      {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "Hello", "##s", "world", ",", "<e>"});
}

TEST(TokenizerTest, CreateRequiresTheSpecialTokens) {
  absl::StatusOr<BertTokenizer> tokenizer =
      BertTokenizer::Create(Vocab::FromTokens({"[PAD]", "[UNK]", "[SEP]", "hello"}), {});
  EXPECT_EQ(tokenizer.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(tokenizer.status().message(), "[CLS]")) << tokenizer.status();
  // [MASK] is optional: only pre-training needs it.
  tokenizer = BertTokenizer::Create(Vocab::FromTokens({"[PAD]", "[UNK]", "[CLS]", "[SEP]"}), {});
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  EXPECT_EQ(tokenizer->mask_id(), std::nullopt);
}

TEST(TokenizerTest, SaveThenLoadRoundTrips) {
  TokenizerOptions options;
  options.do_lower_case = false;
  options.strip_accents = true;
  options.model_max_length = 128;
  options.never_split = {"<e>"};
  absl::StatusOr<BertTokenizer> original = BertTokenizer::Create(SmallVocab(), options);
  ASSERT_TRUE(original.ok()) << original.status();
  const std::string dir = testing::MakeTempDir("tokenizer-test") + "/saved";
  ASSERT_TRUE(original->SaveToDirectory(dir).ok());

  absl::StatusOr<std::string> config_text = ReadFileToString(dir + "/tokenizer_config.json");
  ASSERT_TRUE(config_text.ok()) << config_text.status();
  const nlohmann::json config = nlohmann::json::parse(*config_text);
  EXPECT_EQ(config.at("tokenizer_class"), "BertTokenizer");
  EXPECT_EQ(config.at("do_lower_case"), false);
  EXPECT_EQ(config.at("strip_accents"), true);
  EXPECT_EQ(config.at("tokenize_chinese_chars"), true);
  EXPECT_EQ(config.at("model_max_length"), 128);
  EXPECT_EQ(config.at("cls_token"), "[CLS]");
  EXPECT_EQ(config.at("mask_token"), "[MASK]");

  absl::StatusOr<BertTokenizer> loaded = BertTokenizer::FromDirectory(dir);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->vocab().tokens(), original->vocab().tokens());
  EXPECT_FALSE(loaded->options().do_lower_case);
  EXPECT_EQ(loaded->options().strip_accents, std::optional<bool>(true));
  EXPECT_EQ(loaded->options().model_max_length, std::optional<int32_t>(128));
  EXPECT_EQ(loaded->options().never_split, std::vector<std::string>{"<e>"});
  const std::string text = "H\u00E9llo, worlds<e>";
  std::vector<Token> expected = MustTokenize(*original, text);
  std::vector<Token> actual = MustTokenize(*loaded, text);
  EXPECT_EQ(Texts(actual), (std::vector<std::string>{"Hello", ",", "world", "##s", "<e>"}));
  EXPECT_EQ(Texts(actual), Texts(expected));
  EXPECT_EQ(Spans(actual), Spans(expected));
}

TEST(TokenizerTest, SavedStripAccentsIsNullWhenUnset) {
  absl::StatusOr<BertTokenizer> tokenizer = BertTokenizer::Create(SmallVocab(), {});
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  const std::string dir = testing::MakeTempDir("tokenizer-test");
  ASSERT_TRUE(tokenizer->SaveToDirectory(dir).ok());
  absl::StatusOr<std::string> config_text = ReadFileToString(dir + "/tokenizer_config.json");
  ASSERT_TRUE(config_text.ok());
  const nlohmann::json config = nlohmann::json::parse(*config_text);
  EXPECT_TRUE(config.at("strip_accents").is_null());
  EXPECT_FALSE(config.contains("model_max_length"));
}

TEST(TokenizerTest, WithoutConfigCasingComesFromTheVocabulary) {
  const std::string dir = testing::MakeTempDir("tokenizer-test");
  ASSERT_TRUE(SmallVocab().Save(dir + "/vocab.txt").ok());  // has "Hello": cased
  absl::StatusOr<BertTokenizer> cased = BertTokenizer::FromDirectory(dir);
  ASSERT_TRUE(cased.ok()) << cased.status();
  EXPECT_FALSE(cased->options().do_lower_case);
  EXPECT_FALSE(cased->strip_accents());

  ASSERT_TRUE(Vocab::FromTokens({"[PAD]", "[UNK]", "[CLS]", "[SEP]", "hello"})
                  .Save(dir + "/vocab.txt")
                  .ok());
  absl::StatusOr<BertTokenizer> uncased = BertTokenizer::FromDirectory(dir);
  ASSERT_TRUE(uncased.ok()) << uncased.status();
  EXPECT_TRUE(uncased->options().do_lower_case);
  EXPECT_TRUE(uncased->strip_accents());
}

TEST(TokenizerTest, ReadsHuggingFaceConfigForms) {
  const std::string dir = testing::MakeTempDir("tokenizer-test");
  ASSERT_TRUE(Vocab::FromTokens({"<pad>", "[UNK]", "[CLS]", "[SEP]", "hello", "Hello"})
                  .Save(dir + "/vocab.txt")
                  .ok());
  // AddedToken objects for special tokens, and the "no limit" model_max_length HF writes.
  ASSERT_TRUE(WriteFileAtomically(dir + "/tokenizer_config.json", R"({
      "do_lower_case": true, "strip_accents": null, "tokenize_chinese_chars": false,
      "model_max_length": 1000000000000000019884624838656,
      "pad_token": {"content": "<pad>", "lstrip": false, "normalized": false},
      "tokenizer_class": "BertTokenizer"})")
                  .ok());
  absl::StatusOr<BertTokenizer> tokenizer = BertTokenizer::FromDirectory(dir);
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  EXPECT_TRUE(tokenizer->options().do_lower_case);  // the config wins over the cased vocabulary
  EXPECT_EQ(tokenizer->options().strip_accents, std::nullopt);
  EXPECT_TRUE(tokenizer->strip_accents());
  EXPECT_FALSE(tokenizer->options().tokenize_chinese_chars);
  EXPECT_EQ(tokenizer->options().model_max_length, std::nullopt);
  EXPECT_EQ(tokenizer->pad_id(), 0);
  EXPECT_EQ(Texts(MustTokenize(*tokenizer, "HELLO")), std::vector<std::string>{"hello"});
}

TEST(TokenizerTest, RejectsBrokenDirectories) {
  const std::string dir = testing::MakeTempDir("tokenizer-test");
  EXPECT_EQ(BertTokenizer::FromDirectory(dir).status().code(), absl::StatusCode::kNotFound);

  ASSERT_TRUE(SmallVocab().Save(dir + "/vocab.txt").ok());
  ASSERT_TRUE(WriteFileAtomically(dir + "/tokenizer_config.json", "{not json").ok());
  absl::StatusOr<BertTokenizer> tokenizer = BertTokenizer::FromDirectory(dir);
  EXPECT_EQ(tokenizer.status().code(), absl::StatusCode::kInvalidArgument);

  ASSERT_TRUE(
      WriteFileAtomically(dir + "/tokenizer_config.json", R"({"do_lower_case": "yes"})").ok());
  tokenizer = BertTokenizer::FromDirectory(dir);
  EXPECT_EQ(tokenizer.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(tokenizer.status().message(), "do_lower_case"))
      << tokenizer.status();
}

}  // namespace
}  // namespace bertd::text
