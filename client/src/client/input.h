#ifndef BERTD_CLIENT_INPUT_H_
#define BERTD_CLIENT_INPUT_H_

#include <string>
#include "absl/strings/string_view.h"

#include "absl/status/statusor.h"
#include "bertd/v1/datasets.pb.h"

namespace bertd::client {

// One input read from stdin in batch mode: a plain line, or a JSON object such as
// {"text": "...", "text_pair": "..."}. "first"/"second" are accepted for text/text_pair;
// "question"/"context" are QA's fields.
struct InputRecord {
  std::string text;
  std::string text_pair;
  std::string question;
  std::string context;
};

// A line starting with '{' is JSON; any other line is the text itself, or with `split_tab` a pair
// separated by the first tab (as GLUE's TSVs are).
absl::StatusOr<InputRecord> ParseInputLine(absl::string_view line, bool split_tab);

// "tsv", "csv", "jsonl" or "squad_json" by extension (.tsv .csv .jsonl/.ndjson .json); "" if unknown.
std::string FormatFromExtension(absl::string_view path);

// A dataset name derived from a file name: its stem with characters outside [A-Za-z0-9._-]
// replaced by '-'.
std::string DatasetNameFromPath(absl::string_view path);

// "3" -> index 3, anything else -> the column name.
v1::ColumnRef ParseColumnRef(absl::string_view column);

// Fills what the user left out of `metadata` from the file's first line: for tsv/csv files whose
// header has the usual column names (text/sentence/sentence1/question, text_pair/sentence2/
// question2, label), has_header and the columns; jsonl defaults to the keys "text", "text_pair"
// (when present) and "label". `header_given` says whether --header/--no-header was passed.
// Fails with a message that says which flag to pass when the text column cannot be guessed.
absl::Status CompleteDatasetMetadata(absl::string_view first_line, bool header_given,
                                     v1::DatasetMetadata* metadata);

// 64-bit FNV-1a, hex: a stable content tag for naming uploaded files.
std::string ContentTag(absl::string_view bytes);

}  // namespace bertd::client

#endif  // BERTD_CLIENT_INPUT_H_
