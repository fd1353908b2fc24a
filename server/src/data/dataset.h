#ifndef BERTD_DATA_DATASET_H_
#define BERTD_DATA_DATASET_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace bertd::data {

enum class DatasetFormat {
  kTsv,        // tab-separated, no quoting at all (GLUE's files: a '"' in a field is literal)
  kCsv,        // RFC 4180: quoted fields may hold commas, doubled quotes and line breaks
  kJsonl,      // one JSON object per line
  kSquadJson,  // SQuAD v1.1/v2.0 layout: data[].paragraphs[].qas[]
  kText,       // plain UTF-8 corpus for pretraining: one Example per document (see SplitCorpus in
               // data/pretraining_data.h), Example::text holding the document's text (its lines
               // joined by '\n'), Example::id the 1-based line it starts on; no labels
};

// "tsv", "csv", "jsonl", "squad_json" or "text"; INVALID_ARGUMENT otherwise.
absl::StatusOr<DatasetFormat> ParseDatasetFormat(absl::string_view name);
absl::string_view DatasetFormatName(DatasetFormat format);

// A column chosen by header name (needs has_header; for jsonl, the object key) or, when the name
// is empty, by 0-based index.
struct ColumnRef {
  std::string name;
  int index = -1;
};

struct DatasetSpec {
  DatasetFormat format = DatasetFormat::kTsv;
  bool has_header = false;  // tsv/csv only
  // Not used by squad_json, whose layout is fixed, nor by text (whole documents, no columns).
  // `text` is required otherwise; `label` may be left out for unlabelled data.
  std::optional<ColumnRef> text, text_pair, label;
  // When not empty, every label must be one of these.
  std::vector<std::string> allowed_labels;
  int64_t max_bytes = 0;  // 0 = no limit
};

struct Answer {
  std::string text;
  int32_t start = 0;  // code points into the context, as SQuAD's answer_start
};

struct Example {
  std::string id;         // squad: the question id; else the 1-based line number the row starts on
  std::string text;       // squad: the question
  std::string text_pair;  // squad: the context
  std::string label;      // empty when unlabelled, and for squad
  // Multi-label data (a JSONL label that is a list): every label that applies, possibly none;
  // `label` is then empty and `multi_label` true.
  std::vector<std::string> labels;
  bool multi_label = false;
  std::vector<Answer> answers;
  bool is_impossible = false;
};

struct ParsedDataset {
  std::vector<Example> examples;
  // Examples per label; squad counts "answerable" and "impossible" questions.
  std::map<std::string, int64_t> label_counts;
  int64_t rows = 0;  // == examples.size()
};

// Parses and validates a whole dataset. Errors are INVALID_ARGUMENT and say where (line, or JSON
// path such as data[0].paragraphs[2].qas[5].answers[0]), which column, and why. A UTF-8 byte
// order mark, CRLF line ends and empty lines at the end are accepted; empty lines elsewhere are
// not.
absl::StatusOr<ParsedDataset> ParseDatasetBytes(absl::string_view bytes, const DatasetSpec& spec);

// As ParseDatasetBytes, with the path in front of error messages. NOT_FOUND for a missing file;
// a file over spec.max_bytes is rejected before it is read.
absl::StatusOr<ParsedDataset> ParseDatasetFile(const std::string& path, const DatasetSpec& spec);

}  // namespace bertd::data

#endif  // BERTD_DATA_DATASET_H_
