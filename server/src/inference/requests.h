#ifndef BERTD_INFERENCE_REQUESTS_H_
#define BERTD_INFERENCE_REQUESTS_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "inference/embedding_config.h"

// Domain types of inference requests and results (no protobuf, no LibTorch).
namespace bertd::inference {

struct TextPair {
  std::string text;
  std::string text_pair;  // empty: a single text
};

// What the batcher needs to know about the caller.
struct RequestContext {
  absl::Time deadline = absl::InfiniteFuture();
  std::function<bool()> is_cancelled;  // cheap, thread-safe
};

struct LabelScore {
  std::string label;
  float score = 0;
};

struct ClassificationResult {
  std::vector<LabelScore> scores;  // highest first; a regression model has one raw value
  std::vector<std::string> labels;  // multi-label models: every label at or above the threshold
};

struct NextSentenceResult {
  bool is_next = false;
  float is_next_probability = 0;
};

struct SpanQuery {
  std::string question;
  std::string context;
  int top_k = 1;
  int max_answer_length = 30;  // tokens
  int doc_stride = 128;        // tokens shared by consecutive windows
  int max_windows = 0;         // more windows than this are refused (0: no limit)
  // SQuAD 2.0: answer "no answer" when the null score beats the best span by more than this
  // (logits); unset: always answer with spans.
  std::optional<float> null_score_threshold;
};

struct SpanResult {
  std::string text;
  int32_t start = 0;  // code points into the context
  int32_t end = 0;
  float score = 0;
  float logit_score = 0;  // start logit + end logit: comparable across windows
};

struct SpanAnswer {
  std::vector<SpanResult> spans;  // best first
  // With SpanQuery::null_score_threshold: whether the model says the context has no answer, and
  // by how much the null score (start and end at [CLS]) beat the best span (logits).
  bool no_answer = false;
  float null_score_diff = 0;
};

struct MaskCandidate {
  std::string token;
  int32_t token_id = 0;
  float score = 0;
  std::string sequence;
};

struct MaskResult {
  int32_t mask_start = 0;  // code point offset of the [MASK] in the text
  std::vector<MaskCandidate> candidates;
};

// Embed's options; unset ones come from the model's own embedding config.
struct EmbedOptions {
  std::optional<Pooling> pooling;
  std::optional<bool> normalize;
  bool token_states = false;  // also return every token's final hidden state
};

struct EmbeddingResult {
  std::vector<float> vector;
  std::vector<float> token_states;  // [num_tokens, dimensions], when asked for
  int32_t num_tokens = 0;           // tokens the model saw, [CLS] and [SEP] included
  bool truncated = false;           // the input was cut to the model's window
};

template <typename T>
using Callback = std::function<void(absl::StatusOr<T>)>;

}  // namespace bertd::inference

#endif  // BERTD_INFERENCE_REQUESTS_H_
