#include "data/features.h"

#include <cmath>
#include <optional>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "data/records.h"
#include "text/unicode.h"

namespace bertd::data {
namespace {

std::string NameExample(size_t index, const Example& example) {
  return absl::StrCat("example ", index, " (id ", QuoteForMessage(example.id), ")");
}

absl::Status ExampleError(size_t index, const Example& example, const absl::Status& status) {
  return absl::Status(status.code(),
                      absl::StrCat(NameExample(index, example), ": ", status.message()));
}

Feature FromEncoding(text::Encoding encoding, size_t example_index) {
  Feature feature;
  feature.ids = std::move(encoding.ids);
  feature.type_ids = std::move(encoding.type_ids);
  feature.offsets = std::move(encoding.offsets);
  feature.sequence_ids = std::move(encoding.sequence_ids);
  feature.example_index = static_cast<int32_t>(example_index);
  return feature;
}

// run_qa's labelling of one window; see FeaturizeSpans.
void LabelAnswer(const Answer& answer, Feature* feature) {
  const int32_t start_char = answer.start;
  const auto end_char =
      static_cast<int32_t>(answer.start + text::unicode::CountCodePoints(answer.text));
  const auto size = static_cast<int32_t>(feature->sequence_ids.size());
  int32_t context_begin = 0;
  while (context_begin < size && feature->sequence_ids[context_begin] != 1) ++context_begin;
  int32_t context_end = size - 1;
  while (context_end >= 0 && feature->sequence_ids[context_end] != 1) --context_end;
  feature->start_position = feature->end_position = 0;
  if (context_begin > context_end) return;
  const auto& offsets = feature->offsets;
  if (offsets[context_begin].first > start_char || offsets[context_end].second < end_char) return;
  int32_t start = context_begin;
  while (start <= context_end && offsets[start].first <= start_char) ++start;
  int32_t end = context_end;
  while (end >= context_begin && offsets[end].second >= end_char) --end;
  feature->start_position = start - 1;
  feature->end_position = end + 1;
}

}  // namespace

absl::StatusOr<std::vector<Feature>> FeaturizeClassification(
    const std::vector<Example>& examples, const text::BertTokenizer& tokenizer,
    const std::map<std::string, int>& label_to_id, int max_seq_length, bool labels_required) {
  text::EncodeOptions options;
  options.max_length = max_seq_length;
  options.truncation = text::EncodeOptions::Truncation::kLongestFirst;
  std::vector<Feature> features;
  features.reserve(examples.size());
  for (size_t i = 0; i < examples.size(); ++i) {
    const Example& example = examples[i];
    int32_t label = -1;
    if (!example.label.empty() && labels_required) {
      auto it = label_to_id.find(example.label);
      if (it == label_to_id.end()) {
        std::vector<std::string> known;
        for (const auto& [name, id] : label_to_id) known.push_back(QuoteForMessage(name, 40));
        return absl::InvalidArgumentError(
            absl::StrCat(NameExample(i, example), ": label ", QuoteForMessage(example.label),
                         " has no id; the known labels are ",
                         known.empty() ? "none" : absl::StrJoin(known, ", ")));
      }
      label = it->second;
    }
    std::optional<absl::string_view> pair;
    if (!example.text_pair.empty()) pair = example.text_pair;
    absl::StatusOr<std::vector<text::Encoding>> encodings =
        tokenizer.Encode(example.text, pair, options);
    if (!encodings.ok()) return ExampleError(i, example, encodings.status());
    Feature feature = FromEncoding(std::move(encodings->front()), i);
    feature.label = label;
    features.push_back(std::move(feature));
  }
  return features;
}

absl::StatusOr<std::vector<Feature>> FeaturizeMultiLabel(
    const std::vector<Example>& examples, const text::BertTokenizer& tokenizer,
    const std::map<std::string, int>& label_to_id, int max_seq_length) {
  std::vector<Feature> features;
  BERTD_ASSIGN_OR_RETURN(features, FeaturizeClassification(examples, tokenizer, {}, max_seq_length,
                                                           /*labels_required=*/false));
  for (size_t i = 0; i < examples.size(); ++i) {
    std::vector<std::string> labels = examples[i].labels;
    if (!examples[i].multi_label && !examples[i].label.empty()) labels.push_back(examples[i].label);
    features[i].multi_hot.assign(label_to_id.size(), 0.0f);
    for (const std::string& label : labels) {
      auto it = label_to_id.find(label);
      if (it == label_to_id.end()) {
        return absl::InvalidArgumentError(absl::StrCat(NameExample(i, examples[i]), ": label ",
                                                       QuoteForMessage(label), " has no id"));
      }
      features[i].multi_hot[static_cast<size_t>(it->second)] = 1.0f;
    }
  }
  return features;
}

absl::StatusOr<std::vector<Feature>> FeaturizeRegression(const std::vector<Example>& examples,
                                                         const text::BertTokenizer& tokenizer,
                                                         int max_seq_length) {
  std::vector<Feature> features;
  BERTD_ASSIGN_OR_RETURN(features, FeaturizeClassification(examples, tokenizer, {}, max_seq_length,
                                                           /*labels_required=*/false));
  for (size_t i = 0; i < examples.size(); ++i) {
    double score = 0;
    if (!absl::SimpleAtod(examples[i].label, &score) || !std::isfinite(score)) {
      return absl::InvalidArgumentError(absl::StrCat(
          NameExample(i, examples[i]), ": label ", QuoteForMessage(examples[i].label),
          " is not a number; a regression task needs a score for every example"));
    }
    features[i].target = static_cast<float>(score);
  }
  return features;
}

absl::StatusOr<std::vector<Feature>> FeaturizeSpans(const std::vector<Example>& examples,
                                                    const text::BertTokenizer& tokenizer,
                                                    int max_seq_length, int doc_stride) {
  text::EncodeOptions options;
  options.max_length = max_seq_length;
  options.truncation = text::EncodeOptions::Truncation::kOnlySecond;
  options.stride = doc_stride;
  options.return_overflowing = true;
  std::vector<Feature> features;
  for (size_t i = 0; i < examples.size(); ++i) {
    const Example& example = examples[i];
    absl::StatusOr<std::vector<text::Encoding>> encodings =
        tokenizer.Encode(example.text, example.text_pair, options);
    if (!encodings.ok()) return ExampleError(i, example, encodings.status());
    for (text::Encoding& encoding : *encodings) {
      Feature feature = FromEncoding(std::move(encoding), i);
      if (!example.is_impossible && !example.answers.empty()) {
        LabelAnswer(example.answers.front(), &feature);
      }
      features.push_back(std::move(feature));
    }
  }
  return features;
}

}  // namespace bertd::data
