#ifndef BERTD_DATA_METRICS_H_
#define BERTD_DATA_METRICS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

// Evaluation metrics as GLUE and SQuAD report them (values in [0, 1], not percentages).
namespace bertd::data {

// Classification metrics over parallel prediction/gold label ids. INVALID_ARGUMENT when the
// lengths differ; an empty input scores 0.
absl::StatusOr<double> Accuracy(absl::Span<const int32_t> predictions,
                                absl::Span<const int32_t> golds);
// F1 of the `positive` class (MRPC's F1); 0 when there are no positive predictions or golds.
absl::StatusOr<double> BinaryF1(absl::Span<const int32_t> predictions,
                                absl::Span<const int32_t> golds, int32_t positive = 1);
// Matthews correlation coefficient (CoLA's metric), multi-class as scikit-learn computes it from
// the confusion matrix; 0 when undefined (e.g. every prediction the same class).
absl::StatusOr<double> MatthewsCorrelation(absl::Span<const int32_t> predictions,
                                           absl::Span<const int32_t> golds);

// Regression metrics (STS-B's): Pearson's r, and Spearman's rho as the Pearson correlation of the
// ranks, tied values sharing their average rank (scipy.stats.spearmanr). INVALID_ARGUMENT when the
// lengths differ; 0 when undefined (fewer than two values, or a constant side).
absl::StatusOr<double> PearsonCorrelation(absl::Span<const double> predictions,
                                          absl::Span<const double> golds);
absl::StatusOr<double> SpearmanCorrelation(absl::Span<const double> predictions,
                                           absl::Span<const double> golds);

// Multi-label metrics over parallel rows of 0/1 decisions (one column per label), as
// scikit-learn's f1_score(average="micro"/"macro") and accuracy_score (every label right).
// A label with no positive prediction and no positive gold has F1 0 in the macro mean, as
// scikit-learn's zero_division=0. INVALID_ARGUMENT when the shapes differ.
struct MultiLabelScores {
  double f1_micro = 0;
  double f1_macro = 0;
  double subset_accuracy = 0;
};
absl::StatusOr<MultiLabelScores> MultiLabelMetrics(const std::vector<std::vector<int>>& predictions,
                                                   const std::vector<std::vector<int>>& golds);

// The official SQuAD v1.1/v2.0 evaluation script's normalize_answer: lowercase, drop ASCII
// punctuation, drop the words a/an/the, collapse whitespace.
std::string NormalizeAnswer(absl::string_view text);

// Best score of `prediction` against any gold answer, after NormalizeAnswer. As in the v2.0
// script, golds that normalize to nothing are ignored, and with none left (an impossible
// question) the only gold is "", which only an empty prediction matches.
double ExactMatch(absl::string_view prediction, absl::Span<const std::string> golds);
// Bag-of-words F1 between normalized, whitespace-split prediction and gold.
double TokenF1(absl::string_view prediction, absl::Span<const std::string> golds);

}  // namespace bertd::data

#endif  // BERTD_DATA_METRICS_H_
