#include "exposition_format.h"

#include <regex>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "prometheus/text_serializer.h"

namespace bertd::metrics::testing {

absl::Status CheckExpositionFormat(const std::string& text) {
  // Function-local pointers, never destroyed: regexes are not trivially destructible.
  static const auto* help = new std::regex("# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) .*");
  static const auto* type =
      new std::regex("# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)");
  // name{label="value",...} value [timestamp]; label values may escape only \\, \" and \n.
  static const auto* sample = [] {
    constexpr char kName[] = "[a-zA-Z_:][a-zA-Z0-9_:]*";
    constexpr char kLabel[] = R"([a-zA-Z_][a-zA-Z0-9_]*="([^"\\\n]|\\[\\"n])*")";
    constexpr char kValue[] = R"([-+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+)?|NaN|[-+]Inf)";
    return new std::regex(absl::StrCat("(", kName, ")(\\{", kLabel, "(,", kLabel, ")*,?\\})? (",
                                       kValue, ")( -?[0-9]+)?"));
  }();
  if (text.empty()) return absl::InvalidArgumentError("empty exposition");
  if (!absl::EndsWith(text, "\n")) return absl::InvalidArgumentError("no final newline");

  std::set<std::string> typed;
  std::vector<absl::string_view> lines = absl::StrSplit(text, '\n');
  lines.pop_back();  // After the final newline.
  for (absl::string_view line_view : lines) {
    std::string line(line_view);
    std::smatch match;
    if (std::regex_match(line, match, *help)) continue;
    if (std::regex_match(line, match, *type)) {
      typed.insert(match[1].str());
      continue;
    }
    if (!std::regex_match(line, match, *sample)) {
      return absl::InvalidArgumentError(absl::StrCat("not a valid exposition line: '", line, "'"));
    }
    const std::string name = match[1].str();
    std::string base = name;
    for (absl::string_view suffix : {"_bucket", "_sum", "_count"}) {
      absl::string_view stripped(name);
      if (absl::ConsumeSuffix(&stripped, suffix) && typed.count(std::string(stripped)) > 0) {
        base = std::string(stripped);
      }
    }
    if (typed.count(base) == 0) {
      return absl::InvalidArgumentError(absl::StrCat("sample before its # TYPE: '", line, "'"));
    }
  }
  return absl::OkStatus();
}

std::string Serialize(const prometheus::Collectable& collectable) {
  return prometheus::TextSerializer().Serialize(collectable.Collect());
}

}  // namespace bertd::metrics::testing
