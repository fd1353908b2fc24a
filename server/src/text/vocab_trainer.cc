#include "text/vocab_trainer.h"

#include <algorithm>
#include <queue>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "text/unicode.h"
#include "text/wordpiece.h"

namespace bertd::text {
namespace {

BasicTokenizer MakeBasicTokenizer(const VocabTrainerOptions& options) {
  BasicTokenizerOptions basic;
  basic.lowercase = options.lowercase;
  basic.strip_accents = options.lowercase;
  basic.split_chinese_chars = true;
  std::vector<UnsplittableToken> unsplittable;
  for (size_t i = 0; i < options.special_tokens.size(); ++i) {
    unsplittable.push_back({options.special_tokens[i], static_cast<int32_t>(i)});
  }
  return BasicTokenizer(basic, std::move(unsplittable));
}

absl::Status CheckOptions(const VocabTrainerOptions& options) {
  if (options.special_tokens.empty()) {
    return absl::InvalidArgumentError("special_tokens is empty; at least [UNK] is needed");
  }
  absl::flat_hash_set<std::string> seen;
  for (const std::string& token : options.special_tokens) {
    if (token.empty() || token.find_first_of("\r\n") != std::string::npos) {
      return absl::InvalidArgumentError(
          "special_tokens: every special token must be non-empty and without line breaks");
    }
    if (unicode::FindInvalidUtf8(token) >= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("special_tokens: \"", token, "\" is not valid UTF-8"));
    }
    if (!seen.insert(token).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("special_tokens: \"", token, "\" is listed twice"));
    }
  }
  const auto min_size = static_cast<int64_t>(options.special_tokens.size()) + 1;
  if (options.vocab_size < min_size) {
    return absl::InvalidArgumentError(absl::StrCat(
        "vocab_size must be at least the number of special tokens + 1 (", min_size, "), got ",
        options.vocab_size));
  }
  if (options.limit_alphabet < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("limit_alphabet must be at least 1, got ", options.limit_alphabet));
  }
  if (options.min_frequency < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("min_frequency must not be negative, got ", options.min_frequency));
  }
  if (options.continuing_subword_prefix.empty()) {
    return absl::InvalidArgumentError("continuing_subword_prefix must not be empty");
  }
  return absl::OkStatus();
}

using PairKey = uint64_t;

PairKey MakePair(int32_t left, int32_t right) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) |
         static_cast<uint32_t>(right);
}
int32_t PairLeft(PairKey key) { return static_cast<int32_t>(key >> 32); }
int32_t PairRight(PairKey key) { return static_cast<int32_t>(key & 0xFFFFFFFFu); }

struct Word {
  std::vector<int32_t> symbols;
  int64_t count;
};

struct Candidate {
  int64_t count;
  int32_t left;
  int32_t right;
};

}  // namespace

WordPieceTrainer::WordPieceTrainer(VocabTrainerOptions options)
    : options_(std::move(options)), basic_(MakeBasicTokenizer(options_)) {}

absl::Status WordPieceTrainer::AddText(absl::string_view text) {
  PreTokenized pre;
  if (absl::Status status = basic_.Split(text, &pre); !status.ok()) return status;
  for (const PreTokenizedWord& word : pre.words) {
    if (word.special_id >= 0) continue;
    const absl::string_view word_text = pre.WordText(word);
    auto it = word_counts_.find(word_text);
    if (it == word_counts_.end()) {
      word_counts_.emplace(std::string(word_text), 1);
    } else {
      ++it->second;
    }
    ++words_counted_;
  }
  return absl::OkStatus();
}

absl::StatusOr<Vocab> WordPieceTrainer::Train() const {
  if (absl::Status status = CheckOptions(options_); !status.ok()) return status;
  if (word_counts_.empty()) {
    return absl::InvalidArgumentError(
        "no words to learn a vocabulary from: the text was empty or held only special tokens");
  }
  const std::string& prefix = options_.continuing_subword_prefix;

  // Words in text order, so nothing below depends on hash-map iteration order.
  std::vector<std::pair<absl::string_view, int64_t>> words_by_text(word_counts_.begin(),
                                                                   word_counts_.end());
  std::sort(words_by_text.begin(), words_by_text.end());

  // Characters of every word; words longer than WordPiece's limit always become [UNK] when
  // tokenizing, so they teach nothing and are left out.
  std::vector<std::u32string> word_chars;
  word_chars.reserve(words_by_text.size());
  absl::flat_hash_map<char32_t, int64_t> char_counts;
  for (const auto& [text, count] : words_by_text) {
    std::u32string chars;
    size_t pos = 0;
    while (pos < text.size()) {
      char32_t c = 0;
      const int length = unicode::DecodeUtf8(text, pos, &c);
      if (length <= 0) break;  // cannot happen: the basic tokenizer emits valid UTF-8
      chars.push_back(c);
      pos += static_cast<size_t>(length);
    }
    if (chars.size() > static_cast<size_t>(WordPiece::kDefaultMaxInputCharsPerWord)) {
      chars.clear();
    }
    for (char32_t c : chars) char_counts[c] += count;
    word_chars.push_back(std::move(chars));
  }

  // The alphabet: the limit_alphabet most frequent characters (ties: lower code point first).
  std::vector<std::pair<char32_t, int64_t>> alphabet(char_counts.begin(), char_counts.end());
  std::sort(alphabet.begin(), alphabet.end(), [](const auto& x, const auto& y) {
    return x.second != y.second ? x.second > y.second : x.first < y.first;
  });
  if (alphabet.size() > static_cast<size_t>(options_.limit_alphabet)) {
    alphabet.resize(static_cast<size_t>(options_.limit_alphabet));
  }
  absl::flat_hash_set<char32_t> kept_chars;
  for (const auto& entry : alphabet) kept_chars.insert(entry.first);

  // Initial forms: every kept character alone, and "##c" for characters seen inside a word. How
  // often each form occurs decides which survive when they do not all fit in vocab_size.
  absl::flat_hash_map<char32_t, int64_t> initial_uses, continuation_uses;
  for (const auto& entry : alphabet) initial_uses[entry.first] = 0;
  for (size_t w = 0; w < word_chars.size(); ++w) {
    const std::u32string& chars = word_chars[w];
    if (chars.empty() || !std::all_of(chars.begin(), chars.end(),
                                      [&](char32_t c) { return kept_chars.contains(c); })) {
      continue;
    }
    initial_uses[chars[0]] += words_by_text[w].second;
    for (size_t i = 1; i < chars.size(); ++i) continuation_uses[chars[i]] += words_by_text[w].second;
  }
  struct Form {
    std::string text;
    char32_t c;
    bool continuation;
    int64_t uses;
  };
  std::vector<Form> forms;
  auto add_forms = [&](const absl::flat_hash_map<char32_t, int64_t>& uses, bool continuation) {
    for (const auto& [c, n] : uses) {
      std::string text = continuation ? prefix : std::string();
      unicode::AppendUtf8(c, &text);
      forms.push_back({std::move(text), c, continuation, n});
    }
  };
  add_forms(initial_uses, false);
  add_forms(continuation_uses, true);
  const size_t room = static_cast<size_t>(options_.vocab_size) - options_.special_tokens.size();
  if (forms.size() > room) {
    std::sort(forms.begin(), forms.end(), [](const Form& x, const Form& y) {
      return x.uses != y.uses ? x.uses > y.uses : x.text < y.text;
    });
    forms.resize(room);
  }
  // Vocabulary order: specials, characters by code point, then "##" forms by code point.
  std::sort(forms.begin(), forms.end(), [](const Form& x, const Form& y) {
    return x.continuation != y.continuation ? !x.continuation : x.c < y.c;
  });

  std::vector<std::string> tokens;
  absl::flat_hash_map<std::string, int32_t> token_ids;
  auto add_token = [&](std::string text) -> int32_t {
    auto it = token_ids.find(text);
    if (it != token_ids.end()) return it->second;
    const auto id = static_cast<int32_t>(tokens.size());
    token_ids.emplace(text, id);
    tokens.push_back(std::move(text));
    return id;
  };
  for (const std::string& special : options_.special_tokens) add_token(special);
  absl::flat_hash_map<char32_t, int32_t> initial_id, continuation_id;
  for (Form& form : forms) {
    const int32_t id = add_token(std::move(form.text));
    (form.continuation ? continuation_id : initial_id)[form.c] = id;
  }

  // Words as symbol ids; words with a character (or form) outside the alphabet would be [UNK]
  // as a whole and are left out of the merges.
  std::vector<Word> words;
  for (size_t w = 0; w < word_chars.size(); ++w) {
    const std::u32string& chars = word_chars[w];
    if (chars.size() < 2) continue;  // no pairs to count
    Word word{{}, words_by_text[w].second};
    word.symbols.reserve(chars.size());
    bool complete = true;
    for (size_t i = 0; i < chars.size() && complete; ++i) {
      const auto& ids = i == 0 ? initial_id : continuation_id;
      auto it = ids.find(chars[i]);
      if (it == ids.end()) {
        complete = false;
      } else {
        word.symbols.push_back(it->second);
      }
    }
    if (complete) words.push_back(std::move(word));
  }

  // Pair counts, where each pair occurs, and a max-heap of candidates. A heap entry is pushed
  // whenever a pair's count changes; entries whose count is no longer current are skipped.
  absl::flat_hash_map<PairKey, int64_t> pair_counts;
  absl::flat_hash_map<PairKey, std::vector<int32_t>> pair_words;
  for (size_t w = 0; w < words.size(); ++w) {
    const std::vector<int32_t>& s = words[w].symbols;
    for (size_t i = 0; i + 1 < s.size(); ++i) {
      const PairKey key = MakePair(s[i], s[i + 1]);
      pair_counts[key] += words[w].count;
      std::vector<int32_t>& where = pair_words[key];
      if (where.empty() || where.back() != static_cast<int32_t>(w)) {
        where.push_back(static_cast<int32_t>(w));
      }
    }
  }
  // Highest count first; ties go to the pair whose (left, right) texts sort first.
  auto lower_priority = [&tokens](const Candidate& x, const Candidate& y) {
    if (x.count != y.count) return x.count < y.count;
    const int left = tokens[static_cast<size_t>(x.left)].compare(tokens[static_cast<size_t>(y.left)]);
    if (left != 0) return left > 0;
    return tokens[static_cast<size_t>(x.right)] > tokens[static_cast<size_t>(y.right)];
  };
  std::priority_queue<Candidate, std::vector<Candidate>, decltype(lower_priority)> heap(
      lower_priority);
  {
    std::vector<std::pair<PairKey, int64_t>> initial(pair_counts.begin(), pair_counts.end());
    std::sort(initial.begin(), initial.end());
    for (const auto& [key, count] : initial) heap.push({count, PairLeft(key), PairRight(key)});
  }

  const int64_t min_frequency = std::max<int64_t>(options_.min_frequency, 1);
  absl::flat_hash_map<PairKey, int64_t> delta;
  std::vector<int32_t> merged;
  while (static_cast<int64_t>(tokens.size()) < options_.vocab_size && !heap.empty()) {
    const Candidate top = heap.top();
    heap.pop();
    const PairKey key = MakePair(top.left, top.right);
    auto current = pair_counts.find(key);
    if (current == pair_counts.end() || current->second != top.count) continue;  // stale
    if (top.count < min_frequency) break;

    absl::string_view right_text = tokens[static_cast<size_t>(top.right)];
    if (absl::StartsWith(right_text, prefix)) right_text.remove_prefix(prefix.size());
    const int32_t new_id = add_token(absl::StrCat(tokens[static_cast<size_t>(top.left)], right_text));

    std::vector<int32_t> where = std::move(pair_words[key]);
    pair_words.erase(key);
    std::sort(where.begin(), where.end());
    where.erase(std::unique(where.begin(), where.end()), where.end());
    delta.clear();
    for (int32_t w : where) {
      Word& word = words[static_cast<size_t>(w)];
      const std::vector<int32_t>& s = word.symbols;
      merged.clear();
      bool changed = false;
      for (size_t i = 0; i < s.size(); ++i) {
        if (i + 1 < s.size() && s[i] == top.left && s[i + 1] == top.right) {
          merged.push_back(new_id);
          ++i;
          changed = true;
        } else {
          merged.push_back(s[i]);
        }
      }
      if (!changed) continue;  // merged away by an earlier merge; its list entry was stale
      for (size_t i = 0; i + 1 < s.size(); ++i) delta[MakePair(s[i], s[i + 1])] -= word.count;
      for (size_t i = 0; i + 1 < merged.size(); ++i) {
        const PairKey pair = MakePair(merged[i], merged[i + 1]);
        delta[pair] += word.count;
        if (merged[i] == new_id || merged[i + 1] == new_id) {
          std::vector<int32_t>& list = pair_words[pair];
          if (list.empty() || list.back() != w) list.push_back(w);
        }
      }
      word.symbols.swap(merged);
    }
    for (const auto& [pair, change] : delta) {
      if (change == 0) continue;
      int64_t& count = pair_counts[pair];
      count += change;
      if (count <= 0) {
        pair_counts.erase(pair);
      } else {
        heap.push({count, PairLeft(pair), PairRight(pair)});
      }
    }
    pair_counts.erase(key);
  }
  return Vocab::FromTokens(std::move(tokens));
}

}  // namespace bertd::text
