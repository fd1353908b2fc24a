#include "data/pretraining_data.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "text/unicode.h"

namespace bertd::data {
namespace {

// The code point at `pos` and its length; an invalid byte counts as one character of its own.
struct CodePoint {
  char32_t c;
  size_t length;
};

CodePoint At(absl::string_view text, size_t pos) {
  char32_t c = 0;
  const int length = text::unicode::DecodeUtf8(text, pos, &c);
  if (length <= 0) return {0xFFFD, 1};
  return {c, static_cast<size_t>(length)};
}

bool IsSpace(char32_t c) {
  if (c == '\v' || c == '\f') return true;
  return text::unicode::ClassifyForCleaning(c) == text::unicode::CleanClass::kWhitespace;
}

bool IsEnglishTerminator(char32_t c) { return c == '.' || c == '!' || c == '?'; }

bool IsChineseTerminator(char32_t c) {
  return c == U'。' || c == U'！' || c == U'？' || c == U'；';
}

bool IsCloser(char32_t c) {
  switch (c) {
    case '"':
    case '\'':
    case ')':
    case ']':
    case '}':
    case U'”':
    case U'’':
    case U'»':
    case U'›':
    case U'」':
    case U'』':
    case U'）':
    case U'》':
    case U'〉':
    case U'】':
    case U'〕':
    case U'〗':
    case U'］':
    case U'＂':
    case U'＇':
      return true;
    default:
      return false;
  }
}

absl::string_view TrimSpaces(absl::string_view text) {
  size_t begin = text.size();
  size_t end = 0;
  for (size_t pos = 0; pos < text.size();) {
    const CodePoint cp = At(text, pos);
    if (!IsSpace(cp.c)) {
      begin = std::min(begin, pos);
      end = pos + cp.length;
    }
    pos += cp.length;
  }
  return begin >= end ? absl::string_view() : text.substr(begin, end - begin);
}

bool IsBlank(absl::string_view line) { return TrimSpaces(line).empty(); }

// Uniform draws straight from the engine's output (std distributions differ between libraries).
double Uniform01(std::mt19937_64& rng) {
  return static_cast<double>(rng() >> 11) * (1.0 / 9007199254740992.0);
}

// Uniform in [lo, hi]; the modulo bias is below 2^-40 for the sizes used here.
int64_t UniformInt(std::mt19937_64& rng, int64_t lo, int64_t hi) {
  return lo + static_cast<int64_t>(rng() % static_cast<uint64_t>(hi - lo + 1));
}

template <typename T>
void Shuffle(std::vector<T>& items, std::mt19937_64& rng) {
  for (size_t i = items.size(); i > 1; --i) {
    std::swap(items[i - 1], items[static_cast<size_t>(UniformInt(rng, 0, static_cast<int64_t>(i) - 1))]);
  }
}

// The non-empty sentences of the input, by index, and their word starts when usable.
class Corpus {
 public:
  Corpus(const std::vector<std::vector<std::vector<int32_t>>>& tokens,
         const std::vector<std::vector<std::vector<bool>>>& word_starts)
      : tokens_(tokens), word_starts_(word_starts) {
    for (size_t d = 0; d < tokens.size(); ++d) {
      std::vector<int32_t> sentences;
      for (size_t s = 0; s < tokens[d].size(); ++s) {
        if (!tokens[d][s].empty()) sentences.push_back(static_cast<int32_t>(s));
      }
      if (!sentences.empty()) {
        documents_.push_back(static_cast<int32_t>(d));
        sentences_.push_back(std::move(sentences));
      }
    }
  }

  size_t num_documents() const { return documents_.size(); }
  size_t num_sentences(size_t doc) const { return sentences_[doc].size(); }
  const std::vector<int32_t>& tokens(size_t doc, size_t sentence) const {
    return tokens_[static_cast<size_t>(documents_[doc])][static_cast<size_t>(sentences_[doc][sentence])];
  }
  size_t length(size_t doc, size_t sentence) const { return tokens(doc, sentence).size(); }

  void Append(size_t doc, size_t sentence, std::vector<int32_t>* tokens,
              std::vector<bool>* starts) const {
    const std::vector<int32_t>& t = this->tokens(doc, sentence);
    tokens->insert(tokens->end(), t.begin(), t.end());
    const auto d = static_cast<size_t>(documents_[doc]);
    const auto s = static_cast<size_t>(sentences_[doc][sentence]);
    if (d < word_starts_.size() && s < word_starts_[d].size() &&
        word_starts_[d][s].size() == t.size()) {
      starts->insert(starts->end(), word_starts_[d][s].begin(), word_starts_[d][s].end());
    } else {
      starts->insert(starts->end(), t.size(), true);
    }
  }

 private:
  const std::vector<std::vector<std::vector<int32_t>>>& tokens_;
  const std::vector<std::vector<std::vector<bool>>>& word_starts_;
  std::vector<int32_t> documents_;               // input index of each non-empty document
  std::vector<std::vector<int32_t>> sentences_;  // input indexes of its non-empty sentences
};

void TruncatePair(size_t max_tokens, SentencePair* pair, std::mt19937_64& rng) {
  while (pair->tokens_a.size() + pair->tokens_b.size() > max_tokens) {
    const bool cut_a = pair->tokens_a.size() > pair->tokens_b.size();
    std::vector<int32_t>& tokens = cut_a ? pair->tokens_a : pair->tokens_b;
    std::vector<bool>& starts = cut_a ? pair->word_start_a : pair->word_start_b;
    if (Uniform01(rng) < 0.5) {
      tokens.erase(tokens.begin());
      starts.erase(starts.begin());
    } else {
      tokens.pop_back();
      starts.pop_back();
    }
  }
}

// Where a random B may start in a single-document corpus: sentence starts at least two sentences
// away from A's first and last sentences. A B before A ends two sentences before it.
struct SameDocumentSpan {
  size_t before;  // starts 0 .. before - 1, ending before a_first - 1
  size_t after;   // starts a_last + 2 .. n - 1
};

SameDocumentSpan NonAdjacentStarts(size_t a_first, size_t a_last, size_t n) {
  return {a_first >= 2 ? a_first - 1 : 0, a_last + 2 < n ? n - (a_last + 2) : 0};
}

void AppendRandomB(const Corpus& corpus, size_t doc, size_t a_first, size_t a_last,
                   int64_t target_b, SentencePair* pair, std::mt19937_64& rng) {
  if (corpus.num_documents() >= 2) {
    auto other = static_cast<size_t>(
        UniformInt(rng, 0, static_cast<int64_t>(corpus.num_documents()) - 2));
    if (other >= doc) ++other;
    const size_t m = corpus.num_sentences(other);
    for (auto j = static_cast<size_t>(UniformInt(rng, 0, static_cast<int64_t>(m) - 1));
         j < m && static_cast<int64_t>(pair->tokens_b.size()) < target_b; ++j) {
      corpus.Append(other, j, &pair->tokens_b, &pair->word_start_b);
    }
    return;
  }
  const size_t n = corpus.num_sentences(doc);
  const SameDocumentSpan span = NonAdjacentStarts(a_first, a_last, n);
  const auto pick =
      static_cast<size_t>(UniformInt(rng, 0, static_cast<int64_t>(span.before + span.after) - 1));
  size_t j = pick < span.before ? pick : a_last + 2 + (pick - span.before);
  const size_t end = pick < span.before ? a_first - 1 : n;
  for (; j < end && static_cast<int64_t>(pair->tokens_b.size()) < target_b; ++j) {
    corpus.Append(doc, j, &pair->tokens_b, &pair->word_start_b);
  }
}

void PairsFromDocument(const Corpus& corpus, size_t doc, const PairOptions& options,
                       std::mt19937_64& rng, std::vector<SentencePair>* out) {
  const auto max_tokens = static_cast<int64_t>(options.max_seq_length) - 3;
  int64_t target = max_tokens;
  if (Uniform01(rng) < options.short_seq_prob) target = UniformInt(rng, 2, max_tokens);
  const size_t n = corpus.num_sentences(doc);
  const bool single_document = corpus.num_documents() < 2;

  std::vector<size_t> chunk;
  int64_t chunk_length = 0;
  for (size_t i = 0; i < n; ++i) {
    chunk.push_back(i);
    chunk_length += static_cast<int64_t>(corpus.length(doc, i));
    if (i + 1 < n && chunk_length < target) continue;

    const size_t a_end =
        chunk.size() >= 2
            ? static_cast<size_t>(UniformInt(rng, 1, static_cast<int64_t>(chunk.size()) - 1))
            : 1;
    SentencePair pair;
    for (size_t k = 0; k < a_end; ++k) {
      corpus.Append(doc, chunk[k], &pair.tokens_a, &pair.word_start_a);
    }
    // A lone sentence with nothing after it in its document is split at a word start into A and
    // its true continuation, so that true and random pairs are equally possible for it.
    std::vector<int32_t> rest;
    std::vector<bool> rest_starts;
    const bool split_lone = chunk.size() == 1 && i + 1 == n;
    bool feasible = true;
    if (split_lone) {
      std::vector<size_t> word_starts;
      for (size_t k = 1; k < pair.tokens_a.size(); ++k) {
        if (pair.word_start_a[k]) word_starts.push_back(k);
      }
      if (word_starts.empty()) {
        feasible = false;
      } else {
        const size_t cut = word_starts[static_cast<size_t>(
            UniformInt(rng, 0, static_cast<int64_t>(word_starts.size()) - 1))];
        rest.assign(pair.tokens_a.begin() + static_cast<std::ptrdiff_t>(cut), pair.tokens_a.end());
        rest_starts.assign(pair.word_start_a.begin() + static_cast<std::ptrdiff_t>(cut),
                           pair.word_start_a.end());
        pair.tokens_a.resize(cut);
        pair.word_start_a.resize(cut);
      }
    }
    if (single_document) {
      const SameDocumentSpan span = NonAdjacentStarts(chunk.front(), chunk[a_end - 1], n);
      if (span.before + span.after == 0) feasible = false;
    }
    if (!feasible) {  // decided before the coin, so dropping it does not bias the label
      chunk.clear();
      chunk_length = 0;
      continue;
    }

    pair.is_random_next = Uniform01(rng) < 0.5;
    const int64_t target_b =
        std::max<int64_t>(1, target - static_cast<int64_t>(pair.tokens_a.size()));
    if (pair.is_random_next) {
      AppendRandomB(corpus, doc, chunk.front(), chunk[a_end - 1], target_b, &pair, rng);
      i -= chunk.size() - a_end;  // the unused sentences start the next chunk
    } else if (split_lone) {
      pair.tokens_b = std::move(rest);
      pair.word_start_b = std::move(rest_starts);
    } else if (chunk.size() >= 2) {
      for (size_t k = a_end; k < chunk.size(); ++k) {
        corpus.Append(doc, chunk[k], &pair.tokens_b, &pair.word_start_b);
      }
    } else {
      // One sentence that reached the target alone: B is what follows it.
      do {
        ++i;
        corpus.Append(doc, i, &pair.tokens_b, &pair.word_start_b);
      } while (i + 1 < n && static_cast<int64_t>(pair.tokens_b.size()) < target_b);
    }
    TruncatePair(static_cast<size_t>(max_tokens), &pair, rng);
    out->push_back(std::move(pair));
    chunk.clear();
    chunk_length = 0;
  }
}

}  // namespace

std::vector<std::string> SplitSentences(absl::string_view document) {
  std::vector<std::string> sentences;
  size_t start = 0;
  auto close = [&](size_t end, size_t next_start) {
    absl::string_view sentence = TrimSpaces(document.substr(start, end - start));
    if (!sentence.empty()) sentences.emplace_back(sentence);
    start = next_start;
  };
  size_t pos = 0;
  while (pos < document.size()) {
    const CodePoint cp = At(document, pos);
    if (cp.c == '\n' || cp.c == '\r') {
      close(pos, pos + cp.length);
      pos += cp.length;
      continue;
    }
    const bool english = IsEnglishTerminator(cp.c);
    if (!english && !IsChineseTerminator(cp.c)) {
      pos += cp.length;
      continue;
    }
    // The run of terminators, then the closing quotes and brackets after it.
    bool chinese = !english;
    size_t end = pos + cp.length;
    while (end < document.size()) {
      const CodePoint next = At(document, end);
      if (IsEnglishTerminator(next.c)) {
        end += next.length;
      } else if (IsChineseTerminator(next.c)) {
        chinese = true;
        end += next.length;
      } else {
        break;
      }
    }
    while (end < document.size()) {
      const CodePoint next = At(document, end);
      if (!IsCloser(next.c)) break;
      end += next.length;
    }
    if (chinese || end == document.size() || IsSpace(At(document, end).c)) close(end, end);
    pos = end;
  }
  close(document.size(), document.size());
  return sentences;
}

std::vector<CorpusDocument> SplitDocuments(absl::string_view corpus) {
  if (absl::StartsWith(corpus, "\xEF\xBB\xBF")) corpus.remove_prefix(3);
  std::vector<absl::string_view> lines;
  for (size_t pos = 0; pos <= corpus.size();) {
    size_t newline = corpus.find('\n', pos);
    if (newline == absl::string_view::npos) newline = corpus.size();
    absl::string_view line = corpus.substr(pos, newline - pos);
    if (absl::EndsWith(line, "\r")) line.remove_suffix(1);
    lines.push_back(line);
    pos = newline + 1;
  }
  std::vector<bool> blank(lines.size());
  for (size_t i = 0; i < lines.size(); ++i) blank[i] = IsBlank(lines[i]);

  // Blank-line mode needs a blank line with text on both sides; blank lines only at the start
  // or the end (a final line break, say) do not make a file of lines into one document.
  const auto first_text = std::find(blank.begin(), blank.end(), false);
  const auto last_text = std::find(blank.rbegin(), blank.rend(), false);
  bool blocks = false;
  if (first_text != blank.end()) {
    const auto last = static_cast<size_t>(blank.rend() - last_text) - 1;
    for (auto i = static_cast<size_t>(first_text - blank.begin()); i < last; ++i) {
      if (blank[i]) {
        blocks = true;
        break;
      }
    }
  }

  std::vector<CorpusDocument> documents;
  bool open = false;
  for (size_t i = 0; i < lines.size(); ++i) {
    if (blank[i]) {
      open = false;
      continue;
    }
    if (open && blocks) {
      documents.back().text.push_back('\n');
      documents.back().text.append(lines[i].data(), lines[i].size());
    } else {
      documents.push_back({static_cast<int64_t>(i) + 1, std::string(lines[i])});
      open = true;
    }
  }
  return documents;
}

std::vector<std::vector<std::string>> SplitCorpus(absl::string_view corpus) {
  std::vector<std::vector<std::string>> documents;
  for (const CorpusDocument& document : SplitDocuments(corpus)) {
    std::vector<std::string> sentences = SplitSentences(document.text);
    if (!sentences.empty()) documents.push_back(std::move(sentences));
  }
  return documents;
}

absl::StatusOr<TokenizedCorpus> TokenizeCorpus(
    const std::vector<std::vector<std::string>>& documents, const text::BertTokenizer& tokenizer) {
  TokenizedCorpus corpus;
  corpus.tokens.resize(documents.size());
  corpus.word_starts.resize(documents.size());
  for (size_t d = 0; d < documents.size(); ++d) {
    for (size_t s = 0; s < documents[d].size(); ++s) {
      absl::StatusOr<std::vector<text::Token>> tokens = tokenizer.Tokenize(documents[d][s]);
      if (!tokens.ok()) {
        return absl::InvalidArgumentError(absl::StrCat("document ", d, ", sentence ", s, ": ",
                                                       tokens.status().message()));
      }
      std::vector<int32_t>& ids = corpus.tokens[d].emplace_back();
      std::vector<bool>& starts = corpus.word_starts[d].emplace_back();
      ids.reserve(tokens->size());
      starts.reserve(tokens->size());
      for (const text::Token& token : *tokens) {
        ids.push_back(token.id);
        starts.push_back(!absl::StartsWith(token.text, text::WordPiece::kContinuationPrefix));
      }
    }
  }
  return corpus;
}

std::vector<SentencePair> BuildSentencePairs(
    const std::vector<std::vector<std::vector<int32_t>>>& tokenized_documents,
    const std::vector<std::vector<std::vector<bool>>>& word_starts, const PairOptions& options,
    std::mt19937_64& rng) {
  std::vector<SentencePair> pairs;
  if (options.max_seq_length < 5) return pairs;
  const Corpus corpus(tokenized_documents, word_starts);
  for (int32_t dupe = 0; dupe < std::max(options.dupe_factor, 1); ++dupe) {
    for (size_t doc = 0; doc < corpus.num_documents(); ++doc) {
      PairsFromDocument(corpus, doc, options, rng, &pairs);
    }
  }
  Shuffle(pairs, rng);
  return pairs;
}

MaskedExample MaskPair(const SentencePair& pair, const text::Vocab& vocab, int32_t max_seq_length,
                       const MaskingOptions& options, std::mt19937_64& rng) {
  const int32_t unk = vocab.unk_id().value_or(0);
  const int32_t cls = vocab.cls_id().value_or(unk);
  const int32_t sep = vocab.sep_id().value_or(unk);
  const int32_t pad = vocab.pad_id().value_or(unk);
  const int32_t mask = vocab.mask_id().value_or(unk);
  auto is_special = [&](int32_t id) {
    return id == cls || id == sep || id == pad || id == mask || id == unk;
  };

  // Cut an over-long pair at its ends, the longer side first.
  size_t a_size = pair.tokens_a.size();
  size_t b_size = pair.tokens_b.size();
  const size_t room = max_seq_length > 3 ? static_cast<size_t>(max_seq_length) - 3 : 0;
  while (a_size + b_size > room) (a_size > b_size ? a_size : b_size)--;

  MaskedExample example;
  const auto length = static_cast<size_t>(std::max(max_seq_length, 0));
  example.input_ids.assign(length, pad);
  example.token_type_ids.assign(length, 0);
  example.attention_mask.assign(length, 0);
  example.mlm_labels.assign(length, -100);
  example.nsp_label = pair.is_random_next ? 1 : 0;
  if (length < 3) return example;

  std::vector<bool> word_start(length, true);
  size_t pos = 0;
  auto put = [&](int32_t id, int32_t type, bool start) {
    example.input_ids[pos] = id;
    example.token_type_ids[pos] = type;
    example.attention_mask[pos] = 1;
    word_start[pos] = start;
    ++pos;
  };
  auto start_of = [](const std::vector<bool>& starts, size_t i) {
    return i < starts.size() ? static_cast<bool>(starts[i]) : true;
  };
  put(cls, 0, true);
  for (size_t i = 0; i < a_size; ++i) put(pair.tokens_a[i], 0, start_of(pair.word_start_a, i));
  put(sep, 0, true);
  const size_t b_begin = pos;
  for (size_t i = 0; i < b_size; ++i) put(pair.tokens_b[i], 1, start_of(pair.word_start_b, i));
  if (pos < length) put(sep, 1, true);
  const size_t used = pos;

  // Candidate groups: single tokens, or whole words (a start and the continuations after it).
  std::vector<std::vector<size_t>> groups;
  size_t candidates = 0;
  for (size_t i = 1; i < used; ++i) {
    if (is_special(example.input_ids[i])) continue;
    const bool continues = options.whole_word_masking && !word_start[i] && !groups.empty() &&
                           groups.back().back() + 1 == i && i != b_begin;
    if (continues) {
      groups.back().push_back(i);
    } else {
      groups.push_back({i});
    }
    ++candidates;
  }
  if (candidates == 0) return example;
  auto to_predict = std::max<int64_t>(
      1, std::llround(static_cast<double>(candidates) * options.masked_lm_prob));
  if (options.max_predictions_per_seq > 0) {
    to_predict = std::min<int64_t>(to_predict, options.max_predictions_per_seq);
  }

  Shuffle(groups, rng);
  std::vector<size_t> chosen;
  for (const std::vector<size_t>& group : groups) {
    if (static_cast<int64_t>(chosen.size()) >= to_predict) break;
    if (static_cast<int64_t>(chosen.size() + group.size()) > to_predict) continue;
    chosen.insert(chosen.end(), group.begin(), group.end());
  }
  std::sort(chosen.begin(), chosen.end());

  const auto& tokens = vocab.tokens();
  auto random_token = [&](int32_t original) {
    for (int attempt = 0; attempt < 64; ++attempt) {
      const auto id = static_cast<int32_t>(UniformInt(rng, 0, vocab.size() - 1));
      const std::string& text = tokens[static_cast<size_t>(id)];
      const bool bracketed = text.size() > 2 && text.front() == '[' && text.back() == ']';
      if (!is_special(id) && !bracketed) return id;
    }
    return original;
  };
  for (size_t i : chosen) {
    const int32_t original = example.input_ids[i];
    example.mlm_labels[i] = original;
    const double r = Uniform01(rng);
    if (r < 0.8) {
      example.input_ids[i] = mask;
    } else if (r >= 0.9) {
      example.input_ids[i] = random_token(original);
    }
  }
  return example;
}

}  // namespace bertd::data
