#ifndef BERTD_DATA_FEATURES_H_
#define BERTD_DATA_FEATURES_H_

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "data/dataset.h"
#include "text/tokenizer.h"

namespace bertd::data {

// Model inputs for one example, or for one window of a long QA context. Not padded: ids and
// type_ids are as long as the encoding, at most max_seq_length; batching pads them.
struct Feature {
  std::vector<int32_t> ids, type_ids;
  int32_t label = -1;  // classification: the label's id; -1 when unlabelled (and for spans)
  float target = 0;    // regression: the example's score
  std::vector<float> multi_hot;  // multi-label: 1 for every label that applies, by label id
  // Spans: token positions of the first answer in this window, both 0 ([CLS]) when the answer
  // is not wholly inside it or the question is impossible.
  int32_t start_position = 0, end_position = 0;
  int32_t example_index = 0;  // which input example this came from
  // Code point offsets into the example's text (sequence_ids 0) or text_pair (1); [0, 0) for
  // special tokens. Spans use them to map predicted positions back to context text.
  std::vector<std::pair<int32_t, int32_t>> offsets;
  std::vector<int8_t> sequence_ids;  // -1 special, 0 text, 1 text_pair
};

// One feature per example: [CLS] text [SEP] (text_pair [SEP]), truncated longest_first to
// max_seq_length. Labels map through label_to_id; an unlabelled example gets -1. INVALID_ARGUMENT
// naming the example for a label missing from label_to_id. With `labels_required` false the
// labels are not looked up (every feature's label stays -1).
absl::StatusOr<std::vector<Feature>> FeaturizeClassification(
    const std::vector<Example>& examples, const text::BertTokenizer& tokenizer,
    const std::map<std::string, int>& label_to_id, int max_seq_length,
    bool labels_required = true);

// As FeaturizeClassification, for regression (STS-B): each label is parsed as a number into
// `target`. INVALID_ARGUMENT naming the example for a missing or non-numeric score.
// As FeaturizeClassification, for multi-label data: `multi_hot` has one entry per label id, 1 for
// the example's labels (a single `label` counts as a list of one). INVALID_ARGUMENT naming the
// example for a label missing from label_to_id.
absl::StatusOr<std::vector<Feature>> FeaturizeMultiLabel(
    const std::vector<Example>& examples, const text::BertTokenizer& tokenizer,
    const std::map<std::string, int>& label_to_id, int max_seq_length);

absl::StatusOr<std::vector<Feature>> FeaturizeRegression(const std::vector<Example>& examples,
                                                         const text::BertTokenizer& tokenizer,
                                                         int max_seq_length);

// Extractive QA features as Hugging Face's run_qa prepare_train_features makes them: question +
// context, only the context truncated, long contexts split into windows that overlap by
// doc_stride tokens. Each window's start/end positions cover the first answer when it lies wholly
// inside the window, else both are 0. (Unlike run_qa, an answer ending at the window's last
// context token does not push the start position past the context.) INVALID_ARGUMENT naming the
// example when the question leaves no room for the context.
absl::StatusOr<std::vector<Feature>> FeaturizeSpans(const std::vector<Example>& examples,
                                                    const text::BertTokenizer& tokenizer,
                                                    int max_seq_length, int doc_stride);

}  // namespace bertd::data

#endif  // BERTD_DATA_FEATURES_H_
