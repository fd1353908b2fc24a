#include "data/dataset.h"

#include <algorithm>
#include <filesystem>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/file_util.h"
#include "common/json.h"
#include "common/status_macros.h"
#include "data/pretraining_data.h"
#include "data/records.h"
#include "data/squad.h"
#include "nlohmann/json.hpp"

namespace bertd::data {
namespace {

using Json = nlohmann::json;

constexpr absl::string_view kUtf8Bom = "\xEF\xBB\xBF";

bool IsBlank(absl::string_view s) { return absl::StripAsciiWhitespace(s).empty(); }

std::string QuotedList(const std::vector<std::string>& values) {
  std::vector<std::string> quoted;
  quoted.reserve(values.size());
  for (const std::string& v : values) quoted.push_back(QuoteForMessage(v, 40));
  return absl::StrJoin(quoted, ", ");
}

absl::Status CheckLabel(const std::string& label, const DatasetSpec& spec,
                        absl::string_view where) {
  if (label.empty()) return absl::InvalidArgumentError(absl::StrCat(where, ": missing label"));
  if (!spec.allowed_labels.empty() &&
      std::find(spec.allowed_labels.begin(), spec.allowed_labels.end(), label) ==
          spec.allowed_labels.end()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": label ", QuoteForMessage(label),
                                                   " is not one of the allowed labels (",
                                                   QuotedList(spec.allowed_labels), ")"));
  }
  return absl::OkStatus();
}

// A ColumnRef resolved against the header (or the first row).
struct Column {
  size_t index;
  std::string description;  // `column "label" (index 1)` or `column index 1`
};

absl::StatusOr<Column> ResolveColumn(const ColumnRef& ref, absl::string_view role,
                                     const Record* header, const Record& first_row) {
  if (!ref.name.empty()) {
    if (header == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("the ", role, " column is named ", QuoteForMessage(ref.name),
                       " but the file has no header; refer to columns by 0-based index instead"));
    }
    std::vector<size_t> matches;
    for (size_t i = 0; i < header->fields.size(); ++i) {
      if (header->fields[i] == ref.name) matches.push_back(i);
    }
    if (matches.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown ", role, " column ", QuoteForMessage(ref.name),
                       "; the header's columns are ", QuotedList(header->fields)));
    }
    if (matches.size() > 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("the ", role, " column ", QuoteForMessage(ref.name),
                       " is ambiguous: the header has it at ", "indexes ",
                       absl::StrJoin(matches, " and "), "; refer to it by index instead"));
    }
    return Column{matches[0],
                  absl::StrCat("column ", QuoteForMessage(ref.name), " (index ", matches[0], ")")};
  }
  if (ref.index < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("the ", role, " column needs a name or a 0-based index"));
  }
  const Record& shape = header != nullptr ? *header : first_row;
  const auto index = static_cast<size_t>(ref.index);
  if (index >= shape.fields.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the ", role, " column index ", ref.index,
        " is out of range: ", header != nullptr ? "the header" : absl::StrCat("line ", shape.line),
        " has ", shape.fields.size(), " columns (indexes 0 to ", shape.fields.size() - 1, ")"));
  }
  std::string description = absl::StrCat("column index ", index);
  if (header != nullptr) {
    description =
        absl::StrCat("column ", QuoteForMessage(header->fields[index]), " (index ", index, ")");
  }
  return Column{index, std::move(description)};
}

// Drops the empty records that empty trailing lines produce, and rejects empty lines elsewhere.
absl::Status TrimEmptyRecords(std::vector<Record>* records) {
  auto is_empty = [](const Record& r) { return r.fields.size() == 1 && r.fields[0].empty(); };
  while (!records->empty() && is_empty(records->back())) records->pop_back();
  for (const Record& record : *records) {
    if (is_empty(record)) {
      return absl::InvalidArgumentError(
          absl::StrCat("line ", record.line, ": empty line (only lines at the end may be empty)"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<ParsedDataset> ParseDelimited(absl::string_view bytes, const DatasetSpec& spec) {
  std::vector<Record> records;
  if (spec.format == DatasetFormat::kTsv) {
    records = SplitTsv(bytes);
  } else {
    BERTD_ASSIGN_OR_RETURN(records, SplitCsv(bytes));
  }
  BERTD_RETURN_IF_ERROR(TrimEmptyRecords(&records));
  const size_t header_rows = spec.has_header ? 1 : 0;
  if (records.size() <= header_rows) {
    return absl::InvalidArgumentError(spec.has_header ? "the dataset has a header but no rows"
                                                      : "the dataset is empty");
  }
  const Record* header = spec.has_header ? &records[0] : nullptr;
  const Record& first_row = records[header_rows];
  if (!spec.text.has_value()) {
    return absl::InvalidArgumentError("the dataset spec does not say which column holds the text");
  }
  BERTD_ASSIGN_OR_RETURN(Column text, ResolveColumn(*spec.text, "text", header, first_row));
  std::optional<Column> text_pair, label;
  if (spec.text_pair.has_value()) {
    BERTD_ASSIGN_OR_RETURN(text_pair,
                           ResolveColumn(*spec.text_pair, "text_pair", header, first_row));
  }
  if (spec.label.has_value()) {
    BERTD_ASSIGN_OR_RETURN(label, ResolveColumn(*spec.label, "label", header, first_row));
  }

  const size_t expected = (header != nullptr ? *header : first_row).fields.size();
  const std::string expected_source =
      header != nullptr ? "as in the header" : absl::StrCat("as on line ", first_row.line);
  ParsedDataset parsed;
  parsed.examples.reserve(records.size() - header_rows);
  for (size_t r = header_rows; r < records.size(); ++r) {
    Record& record = records[r];
    if (record.fields.size() != expected) {
      return absl::InvalidArgumentError(absl::StrCat("line ", record.line, ": expected ", expected,
                                                     " columns (", expected_source, "), got ",
                                                     record.fields.size()));
    }
    Example example;
    example.id = absl::StrCat(record.line);
    example.text = std::move(record.fields[text.index]);
    if (IsBlank(example.text)) {
      return absl::InvalidArgumentError(
          absl::StrCat("line ", record.line, ", ", text.description, ": empty text"));
    }
    if (text_pair.has_value()) {
      example.text_pair = std::move(record.fields[text_pair->index]);
      if (IsBlank(example.text_pair)) {
        return absl::InvalidArgumentError(
            absl::StrCat("line ", record.line, ", ", text_pair->description, ": empty text"));
      }
    }
    if (label.has_value()) {
      // Surrounding spaces around a label are never meaningful and easy to leave in.
      example.label = std::string(absl::StripAsciiWhitespace(record.fields[label->index]));
      BERTD_RETURN_IF_ERROR(CheckLabel(
          example.label, spec, absl::StrCat("line ", record.line, ", ", label->description)));
      ++parsed.label_counts[example.label];
    }
    parsed.examples.push_back(std::move(example));
  }
  parsed.rows = static_cast<int64_t>(parsed.examples.size());
  return parsed;
}

absl::StatusOr<std::string> JsonlKey(const std::optional<ColumnRef>& ref, absl::string_view role) {
  if (ref->name.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the ", role, " column of a jsonl dataset must be named by its key, not by index"));
  }
  return ref->name;
}

// The value of `key` as text: strings as they are, and (for labels) integers and booleans as
// JSON writes them. Empty when the key is missing or null.
absl::StatusOr<std::string> JsonlField(const Json& object, const std::string& key,
                                       bool scalars_allowed, absl::string_view where) {
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) return std::string();
  if (it->is_string()) return it->get<std::string>();
  if (scalars_allowed && (it->is_number() || it->is_boolean())) return it->dump();
  return absl::InvalidArgumentError(absl::StrCat(
      where, ": expected ", scalars_allowed ? "a string, number or boolean" : "a string", ", got ",
      it->type_name()));
}

absl::StatusOr<ParsedDataset> ParseJsonl(absl::string_view bytes, const DatasetSpec& spec) {
  if (!spec.text.has_value()) {
    return absl::InvalidArgumentError("the dataset spec does not say which key holds the text");
  }
  BERTD_ASSIGN_OR_RETURN(std::string text_key, JsonlKey(spec.text, "text"));
  std::string pair_key, label_key;
  if (spec.text_pair.has_value()) {
    BERTD_ASSIGN_OR_RETURN(pair_key, JsonlKey(spec.text_pair, "text_pair"));
  }
  if (spec.label.has_value()) {
    BERTD_ASSIGN_OR_RETURN(label_key, JsonlKey(spec.label, "label"));
  }

  std::vector<Record> lines = SplitLines(bytes);
  for (Record& line : lines) {
    if (IsBlank(line.fields[0])) line.fields[0].clear();
  }
  BERTD_RETURN_IF_ERROR(TrimEmptyRecords(&lines));
  if (lines.empty()) return absl::InvalidArgumentError("the dataset is empty");

  ParsedDataset parsed;
  parsed.examples.reserve(lines.size());
  for (const Record& line : lines) {
    const std::string prefix = absl::StrCat("line ", line.line);
    BERTD_ASSIGN_OR_RETURN(const Json object, ParseJson(line.fields[0], MaxJsonDepth(), line.line));
    if (!object.is_object()) {
      return absl::InvalidArgumentError(
          absl::StrCat(prefix, ": expected a JSON object, got ", object.type_name()));
    }
    Example example;
    example.id = absl::StrCat(line.line);
    auto key_where = [&](const std::string& key) {
      return absl::StrCat(prefix, ", key ", QuoteForMessage(key));
    };
    BERTD_ASSIGN_OR_RETURN(example.text, JsonlField(object, text_key, false, key_where(text_key)));
    if (IsBlank(example.text)) {
      return absl::InvalidArgumentError(absl::StrCat(
          key_where(text_key), object.contains(text_key) ? ": empty text" : ": missing text"));
    }
    if (!pair_key.empty()) {
      BERTD_ASSIGN_OR_RETURN(example.text_pair,
                             JsonlField(object, pair_key, false, key_where(pair_key)));
      if (IsBlank(example.text_pair)) {
        return absl::InvalidArgumentError(absl::StrCat(
            key_where(pair_key), object.contains(pair_key) ? ": empty text" : ": missing text"));
      }
    }
    if (auto list = object.find(label_key); !label_key.empty() && list != object.end() && list->is_array()) {
      // Multi-label: every label that applies ([] for none).
      example.multi_label = true;
      for (size_t k = 0; k < list->size(); ++k) {
        const Json& item = (*list)[k];
        const std::string where = absl::StrCat(key_where(label_key), "[", k, "]");
        if (!item.is_string() && !item.is_number_integer()) {
          return absl::InvalidArgumentError(
              absl::StrCat(where, ": expected a string or integer label, got ", item.type_name()));
        }
        std::string label(absl::StripAsciiWhitespace(item.is_string() ? item.get<std::string>() : item.dump()));
        BERTD_RETURN_IF_ERROR(CheckLabel(label, spec, where));
        if (std::find(example.labels.begin(), example.labels.end(), label) == example.labels.end()) {
          ++parsed.label_counts[label];
          example.labels.push_back(std::move(label));
        }
      }
    } else if (!label_key.empty()) {
      BERTD_ASSIGN_OR_RETURN(std::string label,
                             JsonlField(object, label_key, true, key_where(label_key)));
      example.label = std::string(absl::StripAsciiWhitespace(label));
      BERTD_RETURN_IF_ERROR(CheckLabel(example.label, spec, key_where(label_key)));
      ++parsed.label_counts[example.label];
    }
    parsed.examples.push_back(std::move(example));
  }
  parsed.rows = static_cast<int64_t>(parsed.examples.size());
  return parsed;
}

// One example per document, with the line it starts on as its id.
absl::StatusOr<ParsedDataset> ParseText(absl::string_view bytes) {
  ParsedDataset parsed;
  for (CorpusDocument& document : SplitDocuments(bytes)) {
    Example example;
    example.id = absl::StrCat(document.line);
    example.text = std::move(document.text);
    parsed.examples.push_back(std::move(example));
  }
  if (parsed.examples.empty()) {
    return absl::InvalidArgumentError(
        "the text dataset has no documents: it is empty or holds only blank lines");
  }
  parsed.rows = static_cast<int64_t>(parsed.examples.size());
  return parsed;
}

absl::Status CheckSize(int64_t size, const DatasetSpec& spec) {
  if (spec.max_bytes > 0 && size > spec.max_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the dataset is ", size, " bytes, over the limit of ", spec.max_bytes, " bytes"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<DatasetFormat> ParseDatasetFormat(absl::string_view name) {
  if (name == "tsv") return DatasetFormat::kTsv;
  if (name == "csv") return DatasetFormat::kCsv;
  if (name == "jsonl") return DatasetFormat::kJsonl;
  if (name == "squad_json") return DatasetFormat::kSquadJson;
  if (name == "text") return DatasetFormat::kText;
  return absl::InvalidArgumentError(absl::StrCat("unknown dataset format ", QuoteForMessage(name),
                                                 "; expected tsv, csv, jsonl, squad_json or text"));
}

absl::string_view DatasetFormatName(DatasetFormat format) {
  switch (format) {
    case DatasetFormat::kTsv:
      return "tsv";
    case DatasetFormat::kCsv:
      return "csv";
    case DatasetFormat::kJsonl:
      return "jsonl";
    case DatasetFormat::kSquadJson:
      return "squad_json";
    case DatasetFormat::kText:
      return "text";
  }
  return "unknown";
}

absl::StatusOr<ParsedDataset> ParseDatasetBytes(absl::string_view bytes, const DatasetSpec& spec) {
  BERTD_RETURN_IF_ERROR(CheckSize(static_cast<int64_t>(bytes.size()), spec));
  // Checked before the byte order mark goes so that byte columns count from the file's start.
  BERTD_RETURN_IF_ERROR(CheckUtf8(bytes));
  if (absl::StartsWith(bytes, kUtf8Bom)) bytes.remove_prefix(kUtf8Bom.size());
  switch (spec.format) {
    case DatasetFormat::kTsv:
    case DatasetFormat::kCsv:
      return ParseDelimited(bytes, spec);
    case DatasetFormat::kJsonl:
      return ParseJsonl(bytes, spec);
    case DatasetFormat::kSquadJson:
      return ParseSquadJson(bytes);
    case DatasetFormat::kText:
      return ParseText(bytes);
  }
  return absl::InvalidArgumentError("unknown dataset format");
}

absl::StatusOr<ParsedDataset> ParseDatasetFile(const std::string& path, const DatasetSpec& spec) {
  auto with_path = [&](const absl::Status& status) {
    return absl::Status(status.code(), absl::StrCat(path, ": ", status.message()));
  };
  if (spec.max_bytes > 0) {
    std::error_code ec;
    const auto size = std::filesystem::file_size(path, ec);
    // A file that cannot be sized is left to MappedFile::Open to report.
    if (!ec) {
      absl::Status too_big = CheckSize(static_cast<int64_t>(size), spec);
      if (!too_big.ok()) return with_path(too_big);
    }
  }
  // Mapped, not read: the parsed examples are the only heap copy of a large file.
  BERTD_ASSIGN_OR_RETURN(MappedFile file, MappedFile::Open(path));
  absl::StatusOr<ParsedDataset> parsed = ParseDatasetBytes(file.bytes(), spec);
  if (!parsed.ok()) return with_path(parsed.status());
  return parsed;
}

}  // namespace bertd::data
