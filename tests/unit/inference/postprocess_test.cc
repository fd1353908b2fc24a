#include "inference/postprocess.h"

#include <cmath>

#include "gtest/gtest.h"
#include "text/unicode.h"

namespace bertd::inference {
namespace {

TEST(SoftmaxTest, SumsToOneAndIsStableForLargeLogits) {
  std::vector<float> probs = Softmax({1000.0f, 1000.0f, 998.0f});
  EXPECT_NEAR(probs[0] + probs[1] + probs[2], 1.0f, 1e-6);
  EXPECT_NEAR(probs[0], probs[1], 1e-7);
  EXPECT_NEAR(probs[2] / probs[0], std::exp(-2.0f), 1e-5);
}

TEST(SpanTest, PicksBestValidSpanInsideContextOnly) {
  // Tokens: [CLS] q [SEP] c0 c1 c2 [SEP]; the question token has the highest logits of all.
  std::vector<float> start = {9, 50, 9, 1, 5, 0, 9};
  std::vector<float> end = {9, 50, 9, 0, 1, 6, 9};
  std::vector<bool> in_context = {false, false, false, true, true, true, false};
  std::vector<std::pair<int32_t, int32_t>> offsets = {{0, 0}, {0, 3}, {0, 0}, {0, 4},
                                                      {5, 9}, {10, 14}, {0, 0}};
  std::vector<SpanResult> spans = BestSpansInWindow(start, end, in_context, offsets, 3, 30);
  ASSERT_EQ(spans.size(), 3u);
  // Best: start c1 (5), end c2 (6).
  EXPECT_EQ(spans[0].start, 5);
  EXPECT_EQ(spans[0].end, 14);
  for (const SpanResult& span : spans) {
    EXPECT_LE(span.start, span.end);
    EXPECT_GE(span.start, 0);
  }
  EXPECT_GE(spans[0].score, spans[1].score);
  EXPECT_GE(spans[1].score, spans[2].score);
  // P(start) and P(end) are softmaxes over the 3 context tokens.
  float p_start = std::exp(5.0f) / (std::exp(1.0f) + std::exp(5.0f) + std::exp(0.0f));
  float p_end = std::exp(6.0f) / (std::exp(0.0f) + std::exp(1.0f) + std::exp(6.0f));
  EXPECT_NEAR(spans[0].score, p_start * p_end, 1e-6);
}

TEST(SpanTest, RespectsMaxAnswerLength) {
  std::vector<float> start = {0, 10, 0, 0, 0};
  std::vector<float> end = {0, 0, 0, 0, 10};
  std::vector<bool> in_context = {false, true, true, true, true};
  std::vector<std::pair<int32_t, int32_t>> offsets = {{0, 0}, {0, 1}, {2, 3}, {4, 5}, {6, 7}};
  for (const SpanResult& span : BestSpansInWindow(start, end, in_context, offsets, 50, 2)) {
    EXPECT_LE(span.end - span.start, 3) << span.start << "-" << span.end;  // at most 2 tokens
  }
}

TEST(SpanTest, MergeKeepsBestPerRangeAndFillsText) {
  std::string context = "Zürich is in Switzerland";
  std::vector<SpanResult> spans = {{"", 0, 6, 0.2f}, {"", 13, 24, 0.5f}, {"", 0, 6, 0.4f}};
  std::vector<SpanResult> merged = MergeSpans(spans, context, 5);
  ASSERT_EQ(merged.size(), 2u);
  EXPECT_EQ(merged[0].text, "Switzerland");
  EXPECT_EQ(merged[1].text, "Zürich");
  EXPECT_FLOAT_EQ(merged[1].score, 0.4f);
  EXPECT_EQ(MergeSpans(spans, context, 1).size(), 1u);
}

TEST(CodePointTest, SubstrAndReplaceCountCodePoints) {
  std::string text = "我爱[MASK]京🙂!";
  EXPECT_EQ(text::unicode::CodePointSubstr(text, 0, 2), "我爱");
  EXPECT_EQ(text::unicode::CodePointSubstr(text, 9, 10), "🙂");
  EXPECT_EQ(ReplaceCodePoints(text, 2, 8, "北"), "我爱北京🙂!");
  EXPECT_EQ(text::unicode::CodePointSubstr(text, 5, 100), "SK]京🙂!");
}

TEST(PostprocessTest, NoAnswerComparesTheLowestNullScoreWithTheBestSpanOfAnyWindow) {
  std::vector<SpanResult> spans(2);
  spans[0].logit_score = 3.0f;  // best first by probability, not necessarily by logits
  spans[1].logit_score = 4.0f;
  float diff = 0;
  // Windows' null scores 6 and 5: the lowest (5) against the best span (4): margin 1.
  EXPECT_TRUE(PredictsNoAnswer({6.0f, 5.0f}, spans, 0.0f, &diff));
  EXPECT_FLOAT_EQ(diff, 1.0f);
  EXPECT_TRUE(PredictsNoAnswer({6.0f, 5.0f}, spans, 0.99f, &diff));
  EXPECT_FALSE(PredictsNoAnswer({6.0f, 5.0f}, spans, 1.0f, &diff));
  EXPECT_FALSE(PredictsNoAnswer({6.0f, 3.5f}, spans, 0.0f, &diff));
  EXPECT_FLOAT_EQ(diff, -0.5f);
  EXPECT_TRUE(PredictsNoAnswer({1.0f}, {}, 100.0f, &diff)) << "no span at all";
  EXPECT_EQ(NullScore({2.0f, 9.0f}, {0.5f, 9.0f}), 2.5f);
}

}  // namespace
}  // namespace bertd::inference
