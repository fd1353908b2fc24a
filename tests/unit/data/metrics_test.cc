#include "data/metrics.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace bertd::data {
namespace {

using Labels = std::vector<int32_t>;
using Golds = std::vector<std::string>;

TEST(ClassificationMetricsTest, Accuracy) {
  EXPECT_DOUBLE_EQ(*Accuracy(Labels{1, 0, 1, 1}, Labels{1, 1, 1, 0}), 0.5);
  EXPECT_DOUBLE_EQ(*Accuracy(Labels{}, Labels{}), 0.0);
  absl::StatusOr<double> mismatched = Accuracy(Labels{1, 0}, Labels{1});
  ASSERT_FALSE(mismatched.ok());
  EXPECT_EQ(mismatched.status().message(), "2 predictions but 1 gold labels");
}

TEST(ClassificationMetricsTest, BinaryF1) {
  // TP = 2 (0, 4), FP = 1 (1), FN = 1 (3): F1 = 2*2 / (2*2 + 1 + 1) = 2/3.
  const Labels pred = {1, 1, 0, 0, 1};
  const Labels gold = {1, 0, 0, 1, 1};
  EXPECT_DOUBLE_EQ(*BinaryF1(pred, gold), 2.0 / 3.0);
  // With 0 as the positive class: TP = 1 (2), FP = 1 (3), FN = 1 (1): 2/4.
  EXPECT_DOUBLE_EQ(*BinaryF1(pred, gold, /*positive=*/0), 0.5);
  EXPECT_DOUBLE_EQ(*BinaryF1(Labels{0, 0}, Labels{0, 0}), 0.0);  // no positives at all
  EXPECT_FALSE(BinaryF1(Labels{1}, Labels{}).ok());
}

TEST(ClassificationMetricsTest, MatthewsCorrelationBinary) {
  // Same confusion matrix as above, TP=2 FP=1 FN=1 TN=1:
  // (TP*TN - FP*FN) / sqrt((TP+FP)(TP+FN)(TN+FP)(TN+FN)) = (2 - 1) / sqrt(3*3*2*2) = 1/6.
  EXPECT_NEAR(*MatthewsCorrelation(Labels{1, 1, 0, 0, 1}, Labels{1, 0, 0, 1, 1}), 1.0 / 6.0, 1e-12);
  EXPECT_DOUBLE_EQ(*MatthewsCorrelation(Labels{1, 0, 1, 0}, Labels{1, 0, 1, 0}), 1.0);
  EXPECT_DOUBLE_EQ(*MatthewsCorrelation(Labels{0, 1, 0, 1}, Labels{1, 0, 1, 0}), -1.0);
}

TEST(ClassificationMetricsTest, MatthewsCorrelationMultiClass) {
  // 3 classes, 6 samples, 3 correct; each class predicted twice and true twice:
  // (c*s - sum p_k t_k) / sqrt((s^2 - sum p_k^2)(s^2 - sum t_k^2)) = (18 - 12) / (36 - 12) = 0.25.
  EXPECT_DOUBLE_EQ(*MatthewsCorrelation(Labels{0, 1, 1, 2, 2, 0}, Labels{0, 0, 1, 1, 2, 2}), 0.25);
}

TEST(ClassificationMetricsTest, MatthewsCorrelationIsZeroWhenUndefined) {
  EXPECT_DOUBLE_EQ(*MatthewsCorrelation(Labels{1, 1, 1, 1}, Labels{1, 0, 1, 0}), 0.0);
  EXPECT_DOUBLE_EQ(*MatthewsCorrelation(Labels{1, 0}, Labels{1, 1}), 0.0);
  EXPECT_DOUBLE_EQ(*MatthewsCorrelation(Labels{}, Labels{}), 0.0);
}

TEST(NormalizeAnswerTest, AsTheOfficialSquadScript) {
  EXPECT_EQ(NormalizeAnswer("The  Cat!"), "cat");
  EXPECT_EQ(NormalizeAnswer("an apple a day, the end."), "apple day end");
  EXPECT_EQ(NormalizeAnswer("Theater and Anthem"), "theater and anthem");  // not articles
  EXPECT_EQ(NormalizeAnswer("the-cat"), "thecat");  // punctuation goes before articles
  EXPECT_EQ(NormalizeAnswer("  A\t\nB  "), "b");
  EXPECT_EQ(NormalizeAnswer("$1,000.50"), "100050");
  // Non-ASCII letters lowercase too, and a no-break space separates words.
  EXPECT_EQ(NormalizeAnswer("ÉTÉ The\u00A0Café"), "été café");
  // Curly quotes are not ASCII punctuation, so they stay, but they do end words.
  EXPECT_EQ(NormalizeAnswer("\u201Cthe\u201D dog"), "\u201C \u201D dog");
  EXPECT_EQ(NormalizeAnswer("the"), "");
}

TEST(SquadMetricsTest, ExactMatchTakesTheBestGold) {
  EXPECT_DOUBLE_EQ(ExactMatch("the Cat", Golds{"dog", "A cat."}), 1.0);
  EXPECT_DOUBLE_EQ(ExactMatch("cat", Golds{"cats"}), 0.0);
}

TEST(SquadMetricsTest, TokenF1TakesTheBestGold) {
  // Prediction {cat, sat} against {cat, sat, on, mat}: precision 1, recall 1/2, F1 2/3.
  EXPECT_DOUBLE_EQ(TokenF1("the cat sat", Golds{"dog", "a cat sat on the mat"}), 2.0 / 3.0);
  EXPECT_DOUBLE_EQ(TokenF1("cat cat", Golds{"cat"}), 2.0 / 3.0);  // repeats count once per gold
  EXPECT_DOUBLE_EQ(TokenF1("dog", Golds{"cat"}), 0.0);
  EXPECT_DOUBLE_EQ(TokenF1("Denver Broncos", Golds{"Denver Broncos", "Broncos"}), 1.0);
}

TEST(SquadMetricsTest, ImpossibleQuestionsNeedAnEmptyPrediction) {
  EXPECT_DOUBLE_EQ(ExactMatch("", Golds{}), 1.0);
  EXPECT_DOUBLE_EQ(TokenF1("", Golds{}), 1.0);
  EXPECT_DOUBLE_EQ(ExactMatch("France", Golds{}), 0.0);
  EXPECT_DOUBLE_EQ(TokenF1("France", Golds{}), 0.0);
  // A gold that normalizes to nothing counts as no answer, as in the v2.0 script.
  EXPECT_DOUBLE_EQ(ExactMatch("", Golds{"The"}), 1.0);
  EXPECT_DOUBLE_EQ(TokenF1("the", Golds{""}), 1.0);
  // And an empty prediction scores 0 against a real answer.
  EXPECT_DOUBLE_EQ(TokenF1("", Golds{"France"}), 0.0);
}

}  // namespace
// References: numpy.corrcoef on the values, and on ranks worked out by hand with ties averaged
// (what scipy.stats.spearmanr does).
TEST(RegressionMetricsTest, PearsonAndSpearmanMatchNumpy) {
  const std::vector<double> x = {1, 2, 3, 4, 5}, y = {5, 6, 7, 8, 7};
  EXPECT_NEAR(*PearsonCorrelation(x, y), 0.8320502943378437, 1e-12);
  // ranks of y: 1, 2, 3.5, 5, 3.5
  EXPECT_NEAR(*SpearmanCorrelation(x, y), 0.8207826816681234, 1e-12);
  const std::vector<double> a = {0.1, 0.4, 0.4, 0.2, 0.9, 0.9, 0.9}, b = {1, 3, 2, 2, 5, 4, 4};
  EXPECT_NEAR(*PearsonCorrelation(a, b), 0.9414376822502502, 1e-12);
  // ranks: a 1, 3.5, 3.5, 2, 6, 6, 6; b 1, 4, 2.5, 2.5, 7, 5.5, 5.5
  EXPECT_NEAR(*SpearmanCorrelation(a, b), 0.9432422182837986, 1e-12);
}

TEST(RegressionMetricsTest, UndefinedIsZeroAndLengthsMustMatch) {
  EXPECT_EQ(*PearsonCorrelation(std::vector<double>{1, 1, 1}, std::vector<double>{1, 2, 3}), 0.0);
  EXPECT_EQ(*SpearmanCorrelation(std::vector<double>{2}, std::vector<double>{3}), 0.0);
  EXPECT_NEAR(*SpearmanCorrelation(std::vector<double>{1, 2, 3}, std::vector<double>{30, 20, 10}), -1.0, 1e-12);
  EXPECT_FALSE(PearsonCorrelation(std::vector<double>{1, 2}, std::vector<double>{1}).ok());
}

// Worked by hand (scikit-learn's definitions): label 0: tp 2 fp 0 fn 0 (F1 1); label 1: tp 1
// fp 1 fn 1 (F1 0.5); label 2: no positives at all (F1 0, zero_division=0). Micro: tp 3, fp 1,
// fn 1: F1 6/8. Macro: (1 + 0.5 + 0) / 3. Rows right in every label: 1 of 3.
TEST(MultiLabelMetricsTest, MicroMacroAndSubsetAccuracy) {
  const std::vector<std::vector<int>> golds = {{1, 1, 0}, {1, 0, 0}, {0, 1, 0}};
  const std::vector<std::vector<int>> predictions = {{1, 1, 0}, {1, 1, 0}, {0, 0, 0}};
  absl::StatusOr<MultiLabelScores> scores = MultiLabelMetrics(predictions, golds);
  ASSERT_TRUE(scores.ok()) << scores.status();
  EXPECT_DOUBLE_EQ(scores->f1_micro, 0.75);
  EXPECT_DOUBLE_EQ(scores->f1_macro, 0.5);
  EXPECT_DOUBLE_EQ(scores->subset_accuracy, 1.0 / 3);
  EXPECT_FALSE(MultiLabelMetrics({{1, 0}}, {{1, 0, 0}}).ok());
  EXPECT_FALSE(MultiLabelMetrics({{1}}, {}).ok());
}

}  // namespace bertd::data
