#include "text/encoding.h"

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace bertd::text {
namespace {

using Truncation = EncodeOptions::Truncation;

const FramingTokens kFraming{{101, "[CLS]", 0, 0}, {102, "[SEP]", 0, 0}, {0, "[PAD]", 0, 0}};

// A sequence of `n` tokens named prefix0, prefix1, ... with ids base, base + 1, ... and offsets
// [2i, 2i + 1).
std::vector<Token> Sequence(const std::string& prefix, int n, int32_t base) {
  std::vector<Token> tokens;
  for (int i = 0; i < n; ++i)
    tokens.push_back({base + i, prefix + std::to_string(i), 2 * i, 2 * i + 1});
  return tokens;
}

std::vector<int32_t> Ids(std::initializer_list<int32_t> ids) { return ids; }

// Ids of the content tokens of sequence `which` (0 or 1) in an encoding.
std::vector<int32_t> ContentIds(const Encoding& encoding, int which) {
  std::vector<int32_t> ids;
  for (size_t i = 0; i < encoding.size(); ++i) {
    if (encoding.sequence_ids[i] == which) ids.push_back(encoding.ids[i]);
  }
  return ids;
}

std::vector<Encoding> MustAssemble(const std::vector<Token>& first,
                                   const std::vector<Token>* second, const EncodeOptions& options) {
  absl::StatusOr<std::vector<Encoding>> encodings = AssembleEncodings(
      first, second ? std::optional<absl::Span<const Token>>(*second) : std::nullopt, options,
      kFraming);
  EXPECT_TRUE(encodings.ok()) << encodings.status();
  return encodings.ok() ? *encodings : std::vector<Encoding>();
}

absl::Status AssembleError(const std::vector<Token>& first, const std::vector<Token>* second,
                           const EncodeOptions& options) {
  return AssembleEncodings(first,
                           second ? std::optional<absl::Span<const Token>>(*second) : std::nullopt,
                           options, kFraming)
      .status();
}

TEST(EncodingTest, SingleSequenceFraming) {
  std::vector<Token> a = Sequence("a", 2, 10);
  std::vector<Encoding> e = MustAssemble(a, nullptr, {});
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0].ids, Ids({101, 10, 11, 102}));
  EXPECT_EQ(e[0].tokens, (std::vector<std::string>{"[CLS]", "a0", "a1", "[SEP]"}));
  EXPECT_EQ(e[0].type_ids, Ids({0, 0, 0, 0}));
  EXPECT_EQ(e[0].attention_mask, Ids({1, 1, 1, 1}));
  EXPECT_EQ(e[0].special_tokens_mask, Ids({1, 0, 0, 1}));
  EXPECT_EQ(e[0].sequence_ids, (std::vector<int8_t>{-1, 0, 0, -1}));
  EXPECT_EQ(e[0].offsets,
            (std::vector<std::pair<int32_t, int32_t>>{{0, 0}, {0, 1}, {2, 3}, {0, 0}}));
}

TEST(EncodingTest, PadsToMaxLength) {
  EncodeOptions options;
  options.max_length = 6;
  options.pad_to_max_length = true;
  std::vector<Token> a = Sequence("a", 1, 10);
  std::vector<Token> b = Sequence("b", 1, 20);
  std::vector<Encoding> e = MustAssemble(a, &b, options);
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0].ids, Ids({101, 10, 102, 20, 102, 0}));
  EXPECT_EQ(e[0].type_ids, Ids({0, 0, 0, 1, 1, 0}));
  EXPECT_EQ(e[0].attention_mask, Ids({1, 1, 1, 1, 1, 0}));
  EXPECT_EQ(e[0].special_tokens_mask, Ids({1, 0, 1, 0, 1, 1}));
  EXPECT_EQ(e[0].sequence_ids, (std::vector<int8_t>{-1, 0, -1, 1, -1, -1}));
  EXPECT_EQ(e[0].tokens.back(), "[PAD]");
}

TEST(EncodingTest, LongestFirstSingleSequence) {
  EncodeOptions options;
  options.max_length = 6;
  std::vector<Token> a = Sequence("a", 10, 10);
  std::vector<Encoding> e = MustAssemble(a, nullptr, options);
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0].ids, Ids({101, 10, 11, 12, 13, 102}));
}

TEST(EncodingTest, LongestFirstPairKeepsTheShorterSequenceWhenItCan) {
  EncodeOptions options;
  options.max_length = 12;  // room for 9 content tokens
  std::vector<Token> long_seq = Sequence("l", 10, 10);
  std::vector<Token> short_seq = Sequence("s", 3, 30);
  std::vector<Encoding> e = MustAssemble(long_seq, &short_seq, options);
  EXPECT_EQ(ContentIds(e[0], 0), Ids({10, 11, 12, 13, 14, 15}));
  EXPECT_EQ(ContentIds(e[0], 1), Ids({30, 31, 32}));
  e = MustAssemble(short_seq, &long_seq, options);
  EXPECT_EQ(ContentIds(e[0], 0), Ids({30, 31, 32}));
  EXPECT_EQ(ContentIds(e[0], 1), Ids({10, 11, 12, 13, 14, 15}));
  EXPECT_EQ(e[0].size(), 12u);
}

TEST(EncodingTest, LongestFirstPairSplitsTheRoomWhenBothAreLong) {
  EncodeOptions options;
  options.max_length = 12;  // room 9: 4 + 5, the odd token to the longer (here: the second)
  std::vector<Token> a = Sequence("a", 10, 10);
  std::vector<Token> b = Sequence("b", 10, 30);
  std::vector<Encoding> e = MustAssemble(a, &b, options);
  EXPECT_EQ(ContentIds(e[0], 0).size(), 4u);
  EXPECT_EQ(ContentIds(e[0], 1).size(), 5u);
  std::vector<Token> longer_a = Sequence("a", 11, 10);
  e = MustAssemble(longer_a, &b, options);
  EXPECT_EQ(ContentIds(e[0], 0).size(), 5u);
  EXPECT_EQ(ContentIds(e[0], 1).size(), 4u);
}

TEST(EncodingTest, OnlyFirstAndOnlySecond) {
  EncodeOptions options;
  options.max_length = 12;
  std::vector<Token> a = Sequence("a", 10, 10);
  std::vector<Token> b = Sequence("b", 3, 30);
  options.truncation = Truncation::kOnlyFirst;
  std::vector<Encoding> e = MustAssemble(a, &b, options);
  EXPECT_EQ(ContentIds(e[0], 0), Ids({10, 11, 12, 13, 14, 15}));
  EXPECT_EQ(ContentIds(e[0], 1), Ids({30, 31, 32}));

  options.truncation = Truncation::kOnlySecond;
  e = MustAssemble(b, &a, options);
  EXPECT_EQ(ContentIds(e[0], 0), Ids({30, 31, 32}));
  EXPECT_EQ(ContentIds(e[0], 1), Ids({10, 11, 12, 13, 14, 15}));
}

TEST(EncodingTest, TruncationThatCannotFitIsAnError) {
  EncodeOptions options;
  options.max_length = 12;
  std::vector<Token> a = Sequence("a", 10, 10);
  std::vector<Token> b = Sequence("b", 3, 30);

  options.truncation = Truncation::kOnlySecond;  // the first sequence alone is too long
  absl::Status status = AssembleError(a, &b, options);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(status.message(), "only_second")) << status;

  options.truncation = Truncation::kOnlyFirst;
  status = AssembleError(b, &a, options);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(status.message(), "only_first")) << status;

  options.truncation = Truncation::kOnlySecond;  // no pair to truncate
  status = AssembleError(Sequence("a", 20, 10), nullptr, options);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);

  options.truncation = Truncation::kLongestFirst;
  options.max_length = 2;  // not even room for [CLS] [SEP] [SEP]
  EXPECT_EQ(AssembleError(a, &b, options).code(), absl::StatusCode::kInvalidArgument);
}

TEST(EncodingTest, NoTruncationOrNoLimitKeepsEverything) {
  EncodeOptions options;
  options.max_length = 4;
  options.truncation = Truncation::kNone;
  options.pad_to_max_length = true;
  std::vector<Token> a = Sequence("a", 10, 10);
  EXPECT_EQ(MustAssemble(a, nullptr, options)[0].size(), 12u);
  options.truncation = Truncation::kLongestFirst;
  options.max_length = 0;
  EXPECT_EQ(MustAssemble(a, nullptr, options)[0].size(), 12u);
}

TEST(EncodingTest, OverflowWindowsWithStrideOverOneSequence) {
  EncodeOptions options;
  options.max_length = 6;  // 4 tokens per window
  options.stride = 2;
  options.return_overflowing = true;
  options.pad_to_max_length = true;
  std::vector<Token> a = Sequence("a", 9, 10);
  std::vector<Encoding> e = MustAssemble(a, nullptr, options);
  ASSERT_EQ(e.size(), 4u);
  EXPECT_EQ(e[0].ids, Ids({101, 10, 11, 12, 13, 102}));
  EXPECT_EQ(e[1].ids, Ids({101, 12, 13, 14, 15, 102}));
  EXPECT_EQ(e[2].ids, Ids({101, 14, 15, 16, 17, 102}));
  EXPECT_EQ(e[3].ids, Ids({101, 16, 17, 18, 102, 0}));  // the last window is padded
  EXPECT_EQ(e[3].attention_mask, Ids({1, 1, 1, 1, 1, 0}));
  for (size_t w = 1; w < e.size(); ++w) {
    EXPECT_EQ(e[w].offsets[1], e[w - 1].offsets[3]);
    EXPECT_EQ(e[w].offsets[2], e[w - 1].offsets[4]);
  }
  options.return_overflowing = false;
  EXPECT_EQ(MustAssemble(a, nullptr, options).size(), 1u);
}

TEST(EncodingTest, OnlySecondWindowsRepeatTheWholeFirstSequence) {
  EncodeOptions options;
  options.max_length = 10;  // minus 3 specials and the 2 question tokens: 5 context tokens
  options.truncation = Truncation::kOnlySecond;
  options.stride = 1;
  options.return_overflowing = true;
  std::vector<Token> question = Sequence("q", 2, 10);
  std::vector<Token> context = Sequence("c", 12, 30);
  std::vector<Encoding> e = MustAssemble(question, &context, options);
  ASSERT_EQ(e.size(), 3u);
  EXPECT_EQ(ContentIds(e[0], 1), Ids({30, 31, 32, 33, 34}));
  EXPECT_EQ(ContentIds(e[1], 1), Ids({34, 35, 36, 37, 38}));
  EXPECT_EQ(ContentIds(e[2], 1), Ids({38, 39, 40, 41}));
  for (const Encoding& window : e) {
    EXPECT_EQ(ContentIds(window, 0), Ids({10, 11}));
    EXPECT_EQ(window.type_ids[4], 1);
  }
}

// The window count is known before any window is built: more than max_encodings is refused,
// counting the combinations of pair windows as they would be built (4, 3 and 9 above).
TEST(EncodingTest, MaxEncodingsRefusesTooManyWindowsBeforeBuildingThem) {
  EncodeOptions options;
  options.max_length = 6;
  options.stride = 2;
  options.return_overflowing = true;
  std::vector<Token> a = Sequence("a", 9, 10);
  options.max_encodings = 4;
  EXPECT_EQ(MustAssemble(a, nullptr, options).size(), 4u);
  options.max_encodings = 3;
  absl::StatusOr<std::vector<Encoding>> refused =
      AssembleEncodings(a, std::nullopt, options, kFraming);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(refused.status().message(), "makes 4 windows of at most 6 tokens, more than the 3 allowed");

  options = EncodeOptions();
  options.max_length = 7;
  options.return_overflowing = true;
  std::vector<Token> b = Sequence("b", 5, 20);
  std::vector<Token> c = Sequence("c", 5, 30);
  options.max_encodings = 9;
  EXPECT_EQ(MustAssemble(b, &c, options).size(), 9u);
  options.max_encodings = 8;
  EXPECT_THAT(AssembleEncodings(b, absl::Span<const Token>(c), options, kFraming).status().message(),
              ::testing::HasSubstr("makes 9 windows"));
  // Without return_overflowing only one encoding is built, whatever the limit.
  options.return_overflowing = false;
  options.max_encodings = 1;
  EXPECT_EQ(MustAssemble(b, &c, options).size(), 1u);
}

TEST(EncodingTest, LongestFirstOverflowCombinesWindowsInHuggingFaceOrder) {
  EncodeOptions options;
  options.max_length = 7;  // room 4: 2 tokens of each sequence per window
  options.return_overflowing = true;
  std::vector<Token> a = Sequence("a", 5, 10);  // windows a0=[10,11] a1=[12,13] a2=[14]
  std::vector<Token> b = Sequence("b", 5, 20);  // windows b0=[20,21] b1=[22,23] b2=[24]
  std::vector<Encoding> e = MustAssemble(a, &b, options);
  const std::vector<std::pair<std::vector<int32_t>, std::vector<int32_t>>> expected = {
      {{10, 11}, {20, 21}},                                          // main: (a0, b0)
      {{12, 13}, {20, 21}}, {{12, 13}, {22, 23}}, {{12, 13}, {24}},  // a1 with every b
      {{14}, {20, 21}},     {{14}, {22, 23}},     {{14}, {24}},      // a2 with every b
      {{10, 11}, {22, 23}}, {{10, 11}, {24}}};                       // a0 with later b
  ASSERT_EQ(e.size(), expected.size());
  for (size_t i = 0; i < e.size(); ++i) {
    EXPECT_EQ(ContentIds(e[i], 0), expected[i].first) << "window " << i;
    EXPECT_EQ(ContentIds(e[i], 1), expected[i].second) << "window " << i;
  }
}

TEST(EncodingTest, StrideMustBeSmallerThanTheWindow) {
  EncodeOptions options;
  options.max_length = 6;
  options.stride = 4;
  options.return_overflowing = true;
  absl::Status status = AssembleError(Sequence("a", 9, 10), nullptr, options);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(status.message(), "stride")) << status;
  // Nothing is windowed when everything fits, so the stride does not matter then.
  EXPECT_EQ(MustAssemble(Sequence("a", 3, 10), nullptr, options).size(), 1u);
  options.stride = -1;
  EXPECT_EQ(AssembleError(Sequence("a", 3, 10), nullptr, options).code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace bertd::text
