#include "text/vocab.h"

#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/status_macros.h"
#include "text/unicode.h"

namespace bertd::text {

Vocab::Vocab(std::vector<std::string> tokens) : tokens_(std::move(tokens)) {
  token_to_id_.reserve(tokens_.size());
  for (size_t id = 0; id < tokens_.size(); ++id) {
    token_to_id_.insert_or_assign(tokens_[id], static_cast<int32_t>(id));
  }
}

absl::StatusOr<Vocab> Vocab::Load(const std::string& vocab_txt_path) {
  BERTD_ASSIGN_OR_RETURN(std::string contents, ReadFileToString(vocab_txt_path));
  absl::string_view rest(contents);
  if (absl::StartsWith(rest, "\xEF\xBB\xBF")) rest.remove_prefix(3);
  if (rest.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("vocabulary file is empty: ", vocab_txt_path));
  }
  std::vector<std::string> tokens;
  // A final line break ends the last token rather than starting an empty one.
  while (!rest.empty()) {
    size_t newline = rest.find('\n');
    absl::string_view line = rest.substr(0, newline);
    rest = newline == absl::string_view::npos ? absl::string_view() : rest.substr(newline + 1);
    if (absl::EndsWith(line, "\r")) line.remove_suffix(1);
    if (int64_t bad = unicode::FindInvalidUtf8(line); bad >= 0) {
      return absl::InvalidArgumentError(absl::StrCat("invalid UTF-8 in ", vocab_txt_path, " line ",
                                                     tokens.size() + 1, " at byte ", bad));
    }
    tokens.emplace_back(line);
  }
  return Vocab(std::move(tokens));
}

Vocab Vocab::FromTokens(std::vector<std::string> tokens) { return Vocab(std::move(tokens)); }

absl::Status Vocab::Save(const std::string& vocab_txt_path) const {
  std::string contents;
  size_t total = 0;
  for (const std::string& token : tokens_) total += token.size() + 1;
  contents.reserve(total);
  for (size_t id = 0; id < tokens_.size(); ++id) {
    if (tokens_[id].find_first_of("\r\n") != std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("vocabulary token ", id, " contains a line break; cannot save"));
    }
    absl::StrAppend(&contents, tokens_[id], "\n");
  }
  return WriteFileAtomically(vocab_txt_path, contents);
}

std::optional<int32_t> Vocab::Find(absl::string_view token) const {
  auto it = token_to_id_.find(token);
  if (it == token_to_id_.end()) return std::nullopt;
  return it->second;
}

bool Vocab::HasUppercase() const {
  for (const std::string& token : tokens_) {
    if (token.size() > 2 && token.front() == '[' && token.back() == ']') continue;
    for (size_t pos = 0; pos < token.size();) {
      char32_t code_point;
      int length = unicode::DecodeUtf8(token, pos, &code_point);
      if (length == 0) break;
      if (unicode::ChangesWhenLowercased(code_point)) return true;
      pos += static_cast<size_t>(length);
    }
  }
  return false;
}

}  // namespace bertd::text
