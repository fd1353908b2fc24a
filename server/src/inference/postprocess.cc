#include "inference/postprocess.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <numeric>

#include "text/unicode.h"

namespace bertd::inference {
namespace {

// Indices of the k largest values among `candidates`.
std::vector<int> TopIndices(const std::vector<float>& values, const std::vector<int>& candidates,
                            size_t k) {
  std::vector<int> top = candidates;
  k = std::min(k, top.size());
  std::partial_sort(top.begin(), top.begin() + k, top.end(),
                    [&](int a, int b) { return values[a] > values[b]; });
  top.resize(k);
  return top;
}

std::vector<float> MaskedSoftmax(const std::vector<float>& logits, const std::vector<int>& keep) {
  std::vector<float> probs(logits.size(), 0.0f);
  float max_logit = -INFINITY;
  for (int i : keep) max_logit = std::max(max_logit, logits[i]);
  double sum = 0;
  for (int i : keep) sum += std::exp(static_cast<double>(logits[i] - max_logit));
  for (int i : keep) probs[i] = static_cast<float>(std::exp(logits[i] - max_logit) / sum);
  return probs;
}

}  // namespace

std::vector<float> Sigmoid(const std::vector<float>& logits) {
  std::vector<float> out;
  out.reserve(logits.size());
  for (float x : logits) {
    const double e = std::exp(-std::abs(static_cast<double>(x)));
    out.push_back(static_cast<float>(x >= 0 ? 1.0 / (1.0 + e) : e / (1.0 + e)));
  }
  return out;
}

std::vector<float> Softmax(const std::vector<float>& logits) {
  std::vector<int> all(logits.size());
  std::iota(all.begin(), all.end(), 0);
  return MaskedSoftmax(logits, all);
}

std::vector<SpanResult> BestSpansInWindow(const std::vector<float>& start_logits,
                                          const std::vector<float>& end_logits,
                                          const std::vector<bool>& in_context,
                                          const std::vector<std::pair<int32_t, int32_t>>& offsets,
                                          int top_k, int max_answer_length) {
  std::vector<int> context_tokens;
  for (size_t i = 0; i < in_context.size(); ++i) {
    if (in_context[i]) context_tokens.push_back(static_cast<int>(i));
  }
  if (context_tokens.empty() || top_k <= 0 || max_answer_length <= 0) return {};
  const std::vector<float> p_start = MaskedSoftmax(start_logits, context_tokens);
  const std::vector<float> p_end = MaskedSoftmax(end_logits, context_tokens);

  // The best spans are found among the best starts and ends (as Hugging Face's QA pipeline and
  // the reference SQuAD scripts do); 20 of each is plenty for any top_k a client asks for.
  const size_t breadth = std::max<size_t>(20, static_cast<size_t>(top_k));
  std::vector<SpanResult> spans;
  for (int s : TopIndices(p_start, context_tokens, breadth)) {
    for (int e : TopIndices(p_end, context_tokens, breadth)) {
      if (e < s || e - s + 1 > max_answer_length) continue;
      SpanResult span;
      span.start = offsets[s].first;
      span.end = offsets[e].second;
      span.score = p_start[s] * p_end[e];
      span.logit_score = start_logits[s] + end_logits[e];
      spans.push_back(span);
    }
  }
  std::sort(spans.begin(), spans.end(),
            [](const SpanResult& a, const SpanResult& b) { return a.score > b.score; });
  if (spans.size() > static_cast<size_t>(top_k)) spans.resize(top_k);
  return spans;
}

float NullScore(const std::vector<float>& start_logits, const std::vector<float>& end_logits) {
  return start_logits.front() + end_logits.front();
}

bool PredictsNoAnswer(const std::vector<float>& null_scores, const std::vector<SpanResult>& spans,
                      float threshold, float* diff) {
  if (null_scores.empty()) return false;
  // As the SQuAD 2.0 reference post-processing: the least confident window's null score against
  // the best span of any window.
  const float null_score = *std::min_element(null_scores.begin(), null_scores.end());
  if (spans.empty()) {
    *diff = std::numeric_limits<float>::infinity();
    return true;
  }
  float best = spans.front().logit_score;
  for (const SpanResult& span : spans) best = std::max(best, span.logit_score);
  *diff = null_score - best;
  return *diff > threshold;
}

std::vector<SpanResult> MergeSpans(std::vector<SpanResult> spans, absl::string_view context,
                                   int top_k) {
  std::map<std::pair<int32_t, int32_t>, SpanResult> best;
  for (SpanResult& span : spans) {
    auto [it, inserted] = best.try_emplace({span.start, span.end}, span);
    if (!inserted && span.score > it->second.score) it->second = span;
  }
  std::vector<SpanResult> merged;
  for (auto& [range, span] : best) merged.push_back(std::move(span));
  std::sort(merged.begin(), merged.end(), [](const SpanResult& a, const SpanResult& b) {
    return a.score != b.score ? a.score > b.score : a.start < b.start;
  });
  if (merged.size() > static_cast<size_t>(std::max(top_k, 0))) merged.resize(std::max(top_k, 0));
  for (SpanResult& span : merged) span.text = text::unicode::CodePointSubstr(context, span.start, span.end);
  return merged;
}

std::string ReplaceCodePoints(absl::string_view text, int32_t start, int32_t end,
                              absl::string_view replacement) {
  const size_t begin = text::unicode::ByteOffsetOfCodePoint(text, start);
  const size_t finish = std::max(begin, text::unicode::ByteOffsetOfCodePoint(text, end));
  std::string out(text.substr(0, begin));
  out.append(replacement.data(), replacement.size());
  out.append(text.substr(finish).data(), text.size() - finish);
  return out;
}

}  // namespace bertd::inference
