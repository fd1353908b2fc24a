#include "client/input.h"

#include <cstdint>
#include <filesystem>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/json.h"

namespace bertd::client {
namespace {

std::string StringField(const nlohmann::json& object, std::initializer_list<const char*> keys) {
  for (const char* key : keys) {
    auto it = object.find(key);
    if (it != object.end() && it->is_string()) return it->get<std::string>();
  }
  return "";
}

std::vector<std::string> SplitHeader(absl::string_view line, char delimiter) {
  std::vector<std::string> columns;
  for (absl::string_view part : absl::StrSplit(line, delimiter)) {
    part = absl::StripAsciiWhitespace(part);
    // A csv header may quote its names.
    if (part.size() >= 2 && part.front() == '"' && part.back() == '"') {
      part = part.substr(1, part.size() - 2);
    }
    columns.push_back(std::string(part));
  }
  return columns;
}

// The first of `names` found in `header`, as written there.
std::string FindColumn(const std::vector<std::string>& header,
                       std::initializer_list<const char*> names) {
  for (const char* name : names) {
    for (const std::string& column : header) {
      if (absl::AsciiStrToLower(column) == name) return column;
    }
  }
  return "";
}

}  // namespace

absl::StatusOr<InputRecord> ParseInputLine(absl::string_view line, bool split_tab) {
  line = absl::StripSuffix(line, "\r");
  InputRecord record;
  if (!line.empty() && line.front() == '{') {
    absl::StatusOr<nlohmann::json> parsed = ParseJson(line);
    if (!parsed.ok()) return parsed.status();
    const nlohmann::json& object = *parsed;
    if (!object.is_object()) return absl::InvalidArgumentError("not a valid JSON object");
    record.text = StringField(object, {"text", "first"});
    record.text_pair = StringField(object, {"text_pair", "second"});
    record.question = StringField(object, {"question"});
    record.context = StringField(object, {"context"});
    return record;
  }
  if (split_tab) {
    std::pair<absl::string_view, absl::string_view> parts = absl::StrSplit(line, absl::MaxSplits('\t', 1));
    record.text = std::string(parts.first);
    record.text_pair = std::string(parts.second);
  } else {
    record.text = std::string(line);
  }
  return record;
}

std::string FormatFromExtension(absl::string_view path) {
  std::string extension = absl::AsciiStrToLower(std::filesystem::path(std::string(path)).extension().string());
  if (extension == ".tsv") return "tsv";
  if (extension == ".csv") return "csv";
  if (extension == ".jsonl" || extension == ".ndjson") return "jsonl";
  if (extension == ".json") return "squad_json";
  if (extension == ".txt") return "text";
  return "";
}

std::string DatasetNameFromPath(absl::string_view path) {
  std::string name = std::filesystem::path(std::string(path)).stem().string();
  for (char& c : name) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-') {
      c = '-';
    }
  }
  while (!name.empty() && name.front() == '.') name.erase(0, 1);
  if (name.empty()) name = "dataset";
  return name.substr(0, 100);
}

v1::ColumnRef ParseColumnRef(absl::string_view column) {
  v1::ColumnRef ref;
  int32_t index;
  if (!column.empty() && absl::ascii_isdigit(static_cast<unsigned char>(column.front())) &&
      absl::SimpleAtoi(column, &index)) {
    ref.set_index(index);
  } else {
    ref.set_name(std::string(column));
  }
  return ref;
}

absl::Status CompleteDatasetMetadata(absl::string_view first_line, bool header_given,
                                     v1::DatasetMetadata* metadata) {
  const std::string& format = metadata->format();
  if (format == "squad_json" || format == "text") return absl::OkStatus();  // no columns
  if (format == "jsonl") {
    if (!metadata->has_text()) metadata->mutable_text()->set_name("text");
    absl::StatusOr<nlohmann::json> object = ParseJson(first_line);
    if (object.ok() && object->is_object()) {
      if (!metadata->has_text_pair() && object->contains("text_pair")) {
        metadata->mutable_text_pair()->set_name("text_pair");
      }
      if (!metadata->has_label() && object->contains("label")) {
        metadata->mutable_label()->set_name("label");
      }
    }
    return absl::OkStatus();
  }
  // tsv / csv.
  const std::vector<std::string> header =
      SplitHeader(absl::StripSuffix(first_line, "\r"), format == "csv" ? ',' : '\t');
  const std::string text = FindColumn(header, {"text", "sentence", "sentence1", "question", "question1"});
  const bool named = (metadata->has_text() && metadata->text().has_name()) ||
                     (metadata->has_label() && metadata->label().has_name()) ||
                     (metadata->has_text_pair() && metadata->text_pair().has_name());
  if (!header_given) metadata->set_has_header(named || !text.empty());
  if (metadata->has_text()) return absl::OkStatus();
  if (!metadata->has_header() || text.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cannot tell which column holds the text (first line: \"", first_line.substr(0, 80),
        "\"); pass --text COL (a header name or a 0-based index) and --label COL"));
  }
  metadata->mutable_text()->set_name(text);
  if (!metadata->has_text_pair()) {
    std::string pair = FindColumn(header, {"text_pair", "sentence2", "question2"});
    if (!pair.empty()) metadata->mutable_text_pair()->set_name(pair);
  }
  if (!metadata->has_label()) {
    std::string label = FindColumn(header, {"label"});
    if (!label.empty()) metadata->mutable_label()->set_name(label);
  }
  return absl::OkStatus();
}

std::string ContentTag(absl::string_view bytes) {
  uint64_t hash = 1469598103934665603ULL;
  for (unsigned char c : bytes) {
    hash ^= c;
    hash *= 1099511628211ULL;
  }
  return absl::StrFormat("%016x", hash);
}

}  // namespace bertd::client
