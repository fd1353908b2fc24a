#ifndef BERTD_INFERENCE_POSTPROCESS_H_
#define BERTD_INFERENCE_POSTPROCESS_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"
#include "inference/requests.h"

// Turning model outputs into answers: pure functions, tested without a model.
namespace bertd::inference {

// Numerically stable softmax.
std::vector<float> Softmax(const std::vector<float>& logits);
// 1 / (1 + e^-x) per logit, computed without overflow for large |x|.
std::vector<float> Sigmoid(const std::vector<float>& logits);

// Candidate answer spans of one window. `in_context[i]` says whether token i belongs to the
// context (never the question or special tokens); `offsets[i]` are its code point offsets into the
// context. Start and end probabilities are a softmax over the context tokens of this window; a
// span's score is P(start) * P(end). Returns at most `top_k` spans with end >= start and at most
// `max_answer_length` tokens, best first.
std::vector<SpanResult> BestSpansInWindow(const std::vector<float>& start_logits,
                                          const std::vector<float>& end_logits,
                                          const std::vector<bool>& in_context,
                                          const std::vector<std::pair<int32_t, int32_t>>& offsets,
                                          int top_k, int max_answer_length);

// The null answer's score of one window: start and end logits at [CLS] (position 0).
float NullScore(const std::vector<float>& start_logits, const std::vector<float>& end_logits);

// SQuAD 2.0's decision: "no answer" when the lowest null score of the windows exceeds the best
// span's logit score (any window) by more than `threshold`; `diff` gets that margin. With no span
// at all the answer is "no answer".
bool PredictsNoAnswer(const std::vector<float>& null_scores, const std::vector<SpanResult>& spans,
                      float threshold, float* diff);

// Merges spans from overlapping windows: one entry per (start, end), keeping the best score,
// best first, at most `top_k`; fills in each span's text from `context`.
std::vector<SpanResult> MergeSpans(std::vector<SpanResult> spans, absl::string_view context,
                                   int top_k);

// `text` with code points [start, end) replaced by `replacement`.
std::string ReplaceCodePoints(absl::string_view text, int32_t start, int32_t end,
                              absl::string_view replacement);

}  // namespace bertd::inference

#endif  // BERTD_INFERENCE_POSTPROCESS_H_
