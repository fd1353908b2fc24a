#include "data/squad.h"

#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/json.h"
#include "common/status_macros.h"
#include "data/records.h"
#include "nlohmann/json.hpp"

namespace bertd::data {
namespace {

using Json = nlohmann::json;

absl::Status Invalid(const std::string& path, absl::string_view reason) {
  return absl::InvalidArgumentError(absl::StrCat(path, ": ", reason));
}

// The member `key` of `object` with the wanted type, or an error naming path.key.
absl::StatusOr<const Json*> Member(const Json& object, const char* key, Json::value_t type,
                                   const std::string& path) {
  auto it = object.find(key);
  if (it == object.end()) return Invalid(path, absl::StrCat("missing \"", key, "\""));
  const bool ok =
      type == Json::value_t::number_integer ? it->is_number_integer() : it->type() == type;
  if (!ok) {
    // Json(type).type_name() would call an integer and a float both "number".
    const std::string wanted =
        type == Json::value_t::number_integer ? "integer" : Json(type).type_name();
    const std::string got = it->is_number() ? it->dump() : std::string(JsonTypeName(*it));
    return Invalid(absl::StrCat(path, ".", key), absl::StrCat("expected ", wanted, ", got ", got));
  }
  return &*it;
}

absl::StatusOr<std::string> QuestionId(const Json& qa, const std::string& path) {
  auto it = qa.find("id");
  if (it == qa.end()) return Invalid(path, "missing \"id\"");
  // tiny.json-style integer ids keep their exact digits (they exceed a double's precision).
  if (it->is_number_integer()) return it->dump();
  if (it->is_string() && !absl::StripAsciiWhitespace(it->get_ref<const std::string&>()).empty()) {
    return it->get<std::string>();
  }
  // Never echo the value: it is the client's, of any size and depth.
  return Invalid(absl::StrCat(path, ".id"),
                 absl::StrCat("expected a non-empty string or an integer, got ",
                              it->is_string() ? "an empty string" : JsonTypeName(*it)));
}

// Checks that `answer` is found in the context at its code point offset.
absl::StatusOr<Answer> ParseAnswer(const Json& json, absl::string_view context,
                                   const std::vector<size_t>& code_points,
                                   const std::string& path) {
  if (!json.is_object()) {
    return Invalid(path, absl::StrCat("expected an object, got ", JsonTypeName(json)));
  }
  BERTD_ASSIGN_OR_RETURN(const Json* text, Member(json, "text", Json::value_t::string, path));
  BERTD_ASSIGN_OR_RETURN(const Json* start,
                         Member(json, "answer_start", Json::value_t::number_integer, path));
  Answer answer;
  answer.text = text->get<std::string>();
  if (answer.text.empty()) return Invalid(path, "empty answer text");
  const int64_t context_length = static_cast<int64_t>(code_points.size()) - 1;
  const int64_t begin = start->get<int64_t>();
  const auto length = static_cast<int64_t>(CodePointByteOffsets(answer.text).size()) - 1;
  if (begin < 0 || begin + length > context_length) {
    return Invalid(path,
                   absl::StrCat("answer ", QuoteForMessage(answer.text), " at answer_start ", begin,
                                " (", length, " code points) does not fit in the context of ",
                                context_length, " code points"));
  }
  const size_t from = code_points[static_cast<size_t>(begin)];
  const size_t to = code_points[static_cast<size_t>(begin + length)];
  absl::string_view found = context.substr(from, to - from);
  if (found != answer.text) {
    return Invalid(path, absl::StrCat("answer text ", QuoteForMessage(answer.text),
                                      " does not match the context at answer_start ", begin,
                                      " (code points), which reads ", QuoteForMessage(found)));
  }
  answer.start = static_cast<int32_t>(begin);
  return answer;
}

}  // namespace

absl::StatusOr<ParsedDataset> ParseSquadJson(absl::string_view json) {
  BERTD_ASSIGN_OR_RETURN(const Json root, ParseJson(json));
  if (!root.is_object()) {
    return Invalid("$", absl::StrCat("expected an object with \"data\", got ", JsonTypeName(root)));
  }
  BERTD_ASSIGN_OR_RETURN(const Json* data, Member(root, "data", Json::value_t::array, "$"));

  ParsedDataset parsed;
  absl::flat_hash_map<std::string, std::string> id_paths;
  for (size_t a = 0; a < data->size(); ++a) {
    const std::string article_path = absl::StrCat("data[", a, "]");
    const Json& article = (*data)[a];
    if (!article.is_object()) {
      return Invalid(article_path, absl::StrCat("expected an object, got ", JsonTypeName(article)));
    }
    BERTD_ASSIGN_OR_RETURN(const Json* paragraphs,
                           Member(article, "paragraphs", Json::value_t::array, article_path));
    for (size_t p = 0; p < paragraphs->size(); ++p) {
      const std::string paragraph_path = absl::StrCat(article_path, ".paragraphs[", p, "]");
      const Json& paragraph = (*paragraphs)[p];
      if (!paragraph.is_object()) {
        return Invalid(paragraph_path,
                       absl::StrCat("expected an object, got ", JsonTypeName(paragraph)));
      }
      BERTD_ASSIGN_OR_RETURN(const Json* context_json,
                             Member(paragraph, "context", Json::value_t::string, paragraph_path));
      BERTD_ASSIGN_OR_RETURN(const Json* qas,
                             Member(paragraph, "qas", Json::value_t::array, paragraph_path));
      const std::string& context = context_json->get_ref<const std::string&>();
      if (absl::StripAsciiWhitespace(context).empty()) {
        return Invalid(absl::StrCat(paragraph_path, ".context"), "empty context");
      }
      const std::vector<size_t> code_points = CodePointByteOffsets(context);
      for (size_t q = 0; q < qas->size(); ++q) {
        const std::string qa_path = absl::StrCat(paragraph_path, ".qas[", q, "]");
        const Json& qa = (*qas)[q];
        if (!qa.is_object()) {
          return Invalid(qa_path, absl::StrCat("expected an object, got ", JsonTypeName(qa)));
        }
        Example example;
        BERTD_ASSIGN_OR_RETURN(example.id, QuestionId(qa, qa_path));
        auto [seen, inserted] = id_paths.emplace(example.id, qa_path);
        if (!inserted) {
          return Invalid(qa_path,
                         absl::StrCat("duplicate question id ", QuoteForMessage(example.id),
                                      " (also at ", seen->second, ")"));
        }
        BERTD_ASSIGN_OR_RETURN(const Json* question,
                               Member(qa, "question", Json::value_t::string, qa_path));
        example.text = question->get<std::string>();
        if (absl::StripAsciiWhitespace(example.text).empty()) {
          return Invalid(absl::StrCat(qa_path, ".question"), "empty question");
        }
        example.text_pair = context;

        bool marked_impossible = false;
        if (auto it = qa.find("is_impossible"); it != qa.end()) {
          if (!it->is_boolean()) {
            return Invalid(absl::StrCat(qa_path, ".is_impossible"),
                           absl::StrCat("expected boolean, got ", JsonTypeName(*it)));
          }
          marked_impossible = it->get<bool>();
        }
        // v2.0 test-style files may leave "answers" out of impossible questions.
        const Json empty = Json::array();
        const Json* answers = &empty;
        if (qa.contains("answers") || !marked_impossible) {
          BERTD_ASSIGN_OR_RETURN(answers, Member(qa, "answers", Json::value_t::array, qa_path));
        }
        if (marked_impossible && !answers->empty()) {
          return Invalid(qa_path, absl::StrCat("is_impossible is true but the question has ",
                                               answers->size(), " answer(s)"));
        }
        for (size_t i = 0; i < answers->size(); ++i) {
          const std::string answer_path = absl::StrCat(qa_path, ".answers[", i, "]");
          BERTD_ASSIGN_OR_RETURN(Answer answer,
                                 ParseAnswer((*answers)[i], context, code_points, answer_path));
          example.answers.push_back(std::move(answer));
        }
        example.is_impossible = example.answers.empty();
        ++parsed.label_counts[example.is_impossible ? "impossible" : "answerable"];
        parsed.examples.push_back(std::move(example));
      }
    }
  }
  parsed.rows = static_cast<int64_t>(parsed.examples.size());
  return parsed;
}

}  // namespace bertd::data
