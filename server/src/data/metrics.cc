#include "data/metrics.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "text/unicode.h"

namespace bertd::data {
namespace {

absl::Status CheckSameLength(absl::Span<const int32_t> predictions,
                             absl::Span<const int32_t> golds) {
  if (predictions.size() == golds.size()) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(predictions.size(), " predictions but ", golds.size(), " gold labels"));
}

// Python's str.split() separators, so that whitespace collapses as in the official script.
bool IsPythonWhitespace(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 ||
         c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
         c == 0x205F || c == 0x3000;
}

bool IsAsciiPunctuation(char32_t c) {
  return c < 0x80 &&
         std::string_view("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~").find(static_cast<char>(c)) !=
             std::string_view::npos;
}

// Python's regex \w, approximated beyond ASCII as "not whitespace and not punctuation": the
// script only needs it to tell whether a/an/the stand alone.
bool IsWordChar(char32_t c) {
  if (c < 0x80) return std::isalnum(static_cast<int>(c)) || c == '_';
  return !IsPythonWhitespace(c) && !text::unicode::IsBertPunctuation(c);
}

std::vector<std::string> AnswerTokens(absl::string_view text) {
  return absl::StrSplit(NormalizeAnswer(text), ' ', absl::SkipEmpty());
}

// The v2.0 script's gold list: answers that normalize to nothing are dropped, and none left
// means the question is unanswerable, whose only gold answer is "".
std::vector<std::string> EffectiveGolds(absl::Span<const std::string> golds) {
  std::vector<std::string> kept;
  for (const std::string& gold : golds) {
    if (!NormalizeAnswer(gold).empty()) kept.push_back(gold);
  }
  if (kept.empty()) kept.emplace_back();
  return kept;
}

double F1Against(const std::vector<std::string>& prediction, const std::vector<std::string>& gold) {
  if (prediction.empty() || gold.empty()) return prediction == gold ? 1.0 : 0.0;
  absl::flat_hash_map<absl::string_view, int> gold_counts;
  for (const std::string& token : gold) ++gold_counts[token];
  int common = 0;
  for (const std::string& token : prediction) {
    auto it = gold_counts.find(token);
    if (it != gold_counts.end() && it->second > 0) {
      --it->second;
      ++common;
    }
  }
  if (common == 0) return 0.0;
  const double precision = static_cast<double>(common) / static_cast<double>(prediction.size());
  const double recall = static_cast<double>(common) / static_cast<double>(gold.size());
  return 2 * precision * recall / (precision + recall);
}

}  // namespace

absl::StatusOr<double> PearsonCorrelation(absl::Span<const double> predictions,
                                          absl::Span<const double> golds) {
  if (predictions.size() != golds.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat(predictions.size(), " predictions but ", golds.size(), " gold scores"));
  }
  const size_t n = golds.size();
  if (n < 2) return 0.0;
  double mean_x = 0, mean_y = 0;
  for (size_t i = 0; i < n; ++i) {
    mean_x += predictions[i];
    mean_y += golds[i];
  }
  mean_x /= static_cast<double>(n);
  mean_y /= static_cast<double>(n);
  double sxy = 0, sxx = 0, syy = 0;
  for (size_t i = 0; i < n; ++i) {
    const double dx = predictions[i] - mean_x, dy = golds[i] - mean_y;
    sxy += dx * dy;
    sxx += dx * dx;
    syy += dy * dy;
  }
  if (sxx <= 0 || syy <= 0) return 0.0;
  return sxy / std::sqrt(sxx * syy);
}

namespace {

// 1-based ranks; a run of equal values gets the average of the ranks it spans.
std::vector<double> AverageRanks(absl::Span<const double> values) {
  std::vector<size_t> order(values.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return values[a] < values[b]; });
  std::vector<double> ranks(values.size());
  for (size_t begin = 0; begin < order.size();) {
    size_t end = begin + 1;
    while (end < order.size() && values[order[end]] == values[order[begin]]) ++end;
    const double rank = (static_cast<double>(begin + 1) + static_cast<double>(end)) / 2.0;
    for (size_t k = begin; k < end; ++k) ranks[order[k]] = rank;
    begin = end;
  }
  return ranks;
}

}  // namespace

absl::StatusOr<double> SpearmanCorrelation(absl::Span<const double> predictions,
                                           absl::Span<const double> golds) {
  if (predictions.size() != golds.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat(predictions.size(), " predictions but ", golds.size(), " gold scores"));
  }
  const std::vector<double> x = AverageRanks(predictions), y = AverageRanks(golds);
  return PearsonCorrelation(x, y);
}

absl::StatusOr<MultiLabelScores> MultiLabelMetrics(const std::vector<std::vector<int>>& predictions,
                                                   const std::vector<std::vector<int>>& golds) {
  if (predictions.size() != golds.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat(predictions.size(), " predictions but ", golds.size(), " gold rows"));
  }
  MultiLabelScores scores;
  if (golds.empty()) return scores;
  const size_t labels = golds.front().size();
  std::vector<int64_t> tp(labels, 0), fp(labels, 0), fn(labels, 0);
  int64_t exact = 0;
  for (size_t i = 0; i < golds.size(); ++i) {
    if (predictions[i].size() != labels || golds[i].size() != labels) {
      return absl::InvalidArgumentError(absl::StrCat("row ", i, " does not have ", labels, " labels"));
    }
    bool all = true;
    for (size_t l = 0; l < labels; ++l) {
      const bool p = predictions[i][l] != 0, g = golds[i][l] != 0;
      tp[l] += p && g;
      fp[l] += p && !g;
      fn[l] += !p && g;
      all = all && p == g;
    }
    exact += all;
  }
  auto f1 = [](int64_t t, int64_t f_p, int64_t f_n) {
    const int64_t denominator = 2 * t + f_p + f_n;
    return denominator == 0 ? 0.0 : 2.0 * static_cast<double>(t) / static_cast<double>(denominator);
  };
  int64_t sum_tp = 0, sum_fp = 0, sum_fn = 0;
  double macro = 0;
  for (size_t l = 0; l < labels; ++l) {
    sum_tp += tp[l];
    sum_fp += fp[l];
    sum_fn += fn[l];
    macro += f1(tp[l], fp[l], fn[l]);
  }
  scores.f1_micro = f1(sum_tp, sum_fp, sum_fn);
  scores.f1_macro = labels == 0 ? 0 : macro / static_cast<double>(labels);
  scores.subset_accuracy = static_cast<double>(exact) / static_cast<double>(golds.size());
  return scores;
}

absl::StatusOr<double> Accuracy(absl::Span<const int32_t> predictions,
                                absl::Span<const int32_t> golds) {
  if (absl::Status s = CheckSameLength(predictions, golds); !s.ok()) return s;
  if (golds.empty()) return 0.0;
  int64_t correct = 0;
  for (size_t i = 0; i < golds.size(); ++i) correct += predictions[i] == golds[i] ? 1 : 0;
  return static_cast<double>(correct) / static_cast<double>(golds.size());
}

absl::StatusOr<double> BinaryF1(absl::Span<const int32_t> predictions,
                                absl::Span<const int32_t> golds, int32_t positive) {
  if (absl::Status s = CheckSameLength(predictions, golds); !s.ok()) return s;
  int64_t tp = 0, fp = 0, fn = 0;
  for (size_t i = 0; i < golds.size(); ++i) {
    const bool predicted = predictions[i] == positive;
    const bool actual = golds[i] == positive;
    tp += predicted && actual;
    fp += predicted && !actual;
    fn += !predicted && actual;
  }
  if (tp == 0) return 0.0;
  return 2.0 * static_cast<double>(tp) / static_cast<double>(2 * tp + fp + fn);
}

absl::StatusOr<double> MatthewsCorrelation(absl::Span<const int32_t> predictions,
                                           absl::Span<const int32_t> golds) {
  if (absl::Status s = CheckSameLength(predictions, golds); !s.ok()) return s;
  // scikit-learn's multi-class form: (c*s - sum_k p_k t_k) / sqrt((s^2 - sum p_k^2)(s^2 - sum
  // t_k^2)) with c correct predictions, s samples, p_k / t_k the times class k is predicted / true.
  std::map<int32_t, std::pair<int64_t, int64_t>> counts;  // class -> (predicted, true)
  int64_t correct = 0;
  for (size_t i = 0; i < golds.size(); ++i) {
    ++counts[predictions[i]].first;
    ++counts[golds[i]].second;
    correct += predictions[i] == golds[i] ? 1 : 0;
  }
  const auto s = static_cast<double>(golds.size());
  double pt = 0, pp = 0, tt = 0;
  for (const auto& [label, count] : counts) {
    const auto p = static_cast<double>(count.first);
    const auto t = static_cast<double>(count.second);
    pt += p * t;
    pp += p * p;
    tt += t * t;
  }
  const double denominator = std::sqrt((s * s - pp) * (s * s - tt));
  if (denominator == 0.0) return 0.0;
  return (static_cast<double>(correct) * s - pt) / denominator;
}

std::string NormalizeAnswer(absl::string_view text) {
  // Lowercase and drop punctuation, one code point at a time.
  std::u32string chars;
  chars.reserve(text.size());
  for (size_t pos = 0; pos < text.size();) {
    char32_t c;
    int length = text::unicode::DecodeUtf8(text, pos, &c);
    if (length == 0) {  // keep a stray byte as U+FFFD rather than failing an evaluation
      c = 0xFFFD;
      length = 1;
    }
    pos += static_cast<size_t>(length);
    if (IsAsciiPunctuation(c)) continue;
    text::unicode::AppendLowercase(c, &chars);
  }
  // Split into words, dropping the articles: a word run equal to a/an/the is what the script's
  // \b(a|an|the)\b matches, once punctuation is gone.
  std::vector<std::string> words;
  std::string word;
  auto flush = [&] {
    if (!word.empty()) words.push_back(std::move(word));
    word.clear();
  };
  size_t i = 0;
  while (i < chars.size()) {
    if (IsPythonWhitespace(chars[i])) {
      flush();
      ++i;
      continue;
    }
    if (IsWordChar(chars[i]) && (i == 0 || !IsWordChar(chars[i - 1]))) {
      size_t end = i;
      while (end < chars.size() && IsWordChar(chars[end])) ++end;
      const std::u32string_view run(chars.data() + i, end - i);
      if (run == U"a" || run == U"an" || run == U"the") {
        flush();  // the script replaces the article with a space
        i = end;
        continue;
      }
    }
    text::unicode::AppendUtf8(chars[i], &word);
    ++i;
  }
  flush();
  return absl::StrJoin(words, " ");
}

double ExactMatch(absl::string_view prediction, absl::Span<const std::string> golds) {
  const std::string normalized = NormalizeAnswer(prediction);
  for (const std::string& gold : EffectiveGolds(golds)) {
    if (NormalizeAnswer(gold) == normalized) return 1.0;
  }
  return 0.0;
}

double TokenF1(absl::string_view prediction, absl::Span<const std::string> golds) {
  const std::vector<std::string> predicted = AnswerTokens(prediction);
  double best = 0.0;
  for (const std::string& gold : EffectiveGolds(golds)) {
    best = std::max(best, F1Against(predicted, AnswerTokens(gold)));
  }
  return best;
}

}  // namespace bertd::data
