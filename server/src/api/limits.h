#ifndef BERTD_API_LIMITS_H_
#define BERTD_API_LIMITS_H_

#include <cstdint>

namespace bertd::api {

// Per-request input limits; each has a flag in bertd.
struct RequestLimits {
  int max_inputs_per_request = 256;
  int64_t max_text_bytes = 64 * 1024;
  int max_top_k = 100;
  int max_answer_length = 512;
  int max_span_windows = 128;        // context windows of one ExtractSpan
  int64_t max_tokenize_tokens = 131072;  // tokens one Tokenize call returns
};

}  // namespace bertd::api

#endif  // BERTD_API_LIMITS_H_
