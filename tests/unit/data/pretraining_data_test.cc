#include "data/pretraining_data.h"

#include <algorithm>
#include <cmath>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "test_util.h"
#include "text/vocab_trainer.h"

namespace bertd::data {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

// ---------------------------------------------------------------------------------------------
// Sentences and documents

TEST(SplitSentencesTest, EnglishTerminatorsFollowedBySpaceOrEnd) {
  EXPECT_THAT(SplitSentences("Hello world. How are you? I'm fine!  Great"),
              ElementsAre("Hello world.", "How are you?", "I'm fine!", "Great"));
  // Runs of terminators stay together; no split without whitespace after them.
  EXPECT_THAT(SplitSentences("Wait... What?! Pi is 3.14 today. See e.g.x too."),
              ElementsAre("Wait...", "What?!", "Pi is 3.14 today.", "See e.g.x too."));
  // There is no abbreviation list.
  EXPECT_THAT(SplitSentences("Mr. Smith left."), ElementsAre("Mr.", "Smith left."));
}

TEST(SplitSentencesTest, ClosingQuotesAndBracketsStayOnTheSentence) {
  EXPECT_THAT(SplitSentences("He said \"Stop.\" Then he left. (It was late.) 'Fine!' Done"),
              ElementsAre("He said \"Stop.\"", "Then he left.", "(It was late.)", "'Fine!'",
                          "Done"));
  EXPECT_THAT(SplitSentences("“Really?” she asked."), ElementsAre("“Really?”", "she asked."));
}

TEST(SplitSentencesTest, ChineseTerminatorsNeedNoSpace) {
  EXPECT_THAT(SplitSentences("我来了。你好吗？很好！走吧；好的"),
              ElementsAre("我来了。", "你好吗？", "很好！", "走吧；", "好的"));
  EXPECT_THAT(SplitSentences("父亲说，“不必难过，好在天无绝人之路！”回家变卖典质。"),
              ElementsAre("父亲说，“不必难过，好在天无绝人之路！”", "回家变卖典质。"));
  EXPECT_THAT(SplitSentences("他说：「真的吗？！」我点头。"),
              ElementsAre("他说：「真的吗？！」", "我点头。"));
  // Commas and ellipses do not end sentences.
  EXPECT_THAT(SplitSentences("等一等……好，走。"), ElementsAre("等一等……好，走。"));
}

TEST(SplitSentencesTest, LineBreaksEndSentencesAndWhitespaceIsTrimmed) {
  EXPECT_THAT(SplitSentences("first line\nsecond line\r\nthird"),
              ElementsAre("first line", "second line", "third"));
  EXPECT_THAT(SplitSentences("\u3000\u3000背影\n  \t Hello.   \n\n"), ElementsAre("背影", "Hello."));
  EXPECT_THAT(SplitSentences(""), IsEmpty());
  EXPECT_THAT(SplitSentences(" \n\t\u3000 "), IsEmpty());
}

TEST(SplitSentencesTest, InvalidUtf8IsKeptAsIs) {
  // Datasets are checked for UTF-8 before; here a stray byte is just another character.
  EXPECT_THAT(SplitSentences("a\xFF. b\xC3"), ElementsAre("a\xFF.", "b\xC3"));
  EXPECT_THAT(SplitCorpus("\xFF\n\n\xFE."), ElementsAre(ElementsAre("\xFF"), ElementsAre("\xFE.")));
}

TEST(SplitSentencesTest, RealChineseEssayKeepsEveryCharacter) {
  BERTD_REQUIRE_SHARED("data/text/beiying.txt");
  const std::string text = testing::ReadWholeFile(testing::SharedPath("data/text/beiying.txt"));
  std::vector<std::string> lines = absl::StrSplit(text, '\n', absl::SkipWhitespace());
  ASSERT_GE(lines.size(), 2u);
  ASSERT_EQ(lines[0], "背影");
  EXPECT_THAT(SplitSentences(lines[1]),
              ElementsAre("我与父亲不相见已二年余了，我最不能忘记的是他的背影。",
                          "那年冬天，祖母死了，父亲的差使也交卸了，正是祸不单行的日子，"
                          "我从北京到徐州，打算跟着父亲奔丧回家。",
                          "到徐州见着父亲，看见满院狼藉的东西，又想起祖母，不禁簌簌地流下眼泪。",
                          "父亲说，“事已如此，不必难过，好在天无绝人之路！”"));
  // The whole essay: nothing is lost but line breaks, and in every paragraph that ends at a
  // terminator each sentence ends at one (or at a closing quote after one).
  const std::vector<std::string> sentences = SplitSentences(text);
  EXPECT_GT(sentences.size(), 40u);
  std::string compact;
  for (char c : text) {
    if (c != '\n' && c != '\r') compact.push_back(c);
  }
  EXPECT_EQ(absl::StrJoin(sentences, ""), compact);
  auto ends_well = [](const std::string& s) {
    for (const char* end : {"。", "！", "？", "；", "”", "’"}) {
      if (absl::EndsWith(s, end)) return true;
    }
    return false;
  };
  int paragraphs = 0;
  for (const std::string& line : lines) {
    if (!ends_well(line)) continue;  // the title, the source note, the rule
    ++paragraphs;
    for (const std::string& sentence : SplitSentences(line)) {
      EXPECT_TRUE(ends_well(sentence)) << sentence;
    }
  }
  EXPECT_GE(paragraphs, 6);
}

TEST(SplitDocumentsTest, OneDocumentPerLineWithoutBlankLines) {
  const std::string corpus = "\xEF\xBB\xBF" "First doc. Two sentences.\r\nSecond doc\n\n\n";
  std::vector<CorpusDocument> documents = SplitDocuments(corpus);
  ASSERT_EQ(documents.size(), 2u);
  EXPECT_EQ(documents[0].line, 1);
  EXPECT_EQ(documents[0].text, "First doc. Two sentences.");
  EXPECT_EQ(documents[1].line, 2);
  EXPECT_THAT(SplitCorpus(corpus), ElementsAre(ElementsAre("First doc.", "Two sentences."),
                                               ElementsAre("Second doc")));
}

TEST(SplitDocumentsTest, BlankLinesSeparateDocuments) {
  const std::string corpus = "\n a.\nb. c.\n\n \t\nsecond\n\nthird.\n\n";
  std::vector<CorpusDocument> documents = SplitDocuments(corpus);
  ASSERT_EQ(documents.size(), 3u);
  EXPECT_EQ(documents[0].line, 2);
  EXPECT_EQ(documents[0].text, " a.\nb. c.");
  EXPECT_EQ(documents[1].line, 6);
  EXPECT_EQ(documents[2].line, 8);
  EXPECT_THAT(SplitCorpus(corpus),
              ElementsAre(ElementsAre("a.", "b.", "c."), ElementsAre("second"),
                          ElementsAre("third.")));
  EXPECT_THAT(SplitCorpus(""), IsEmpty());
  EXPECT_THAT(SplitCorpus("\n \n\u3000\n"), IsEmpty());
}

// ---------------------------------------------------------------------------------------------
// Sentence pairs. Token ids encode where they came from: document * 10000 + sentence * 100 + k.

int32_t Id(int doc, int sentence, int k) { return doc * 10000 + sentence * 100 + k; }
int DocOf(int32_t id) { return id / 10000; }
int SentenceOf(int32_t id) { return (id / 100) % 100; }
int PositionOf(int32_t id) { return id % 100; }

using Documents = std::vector<std::vector<std::vector<int32_t>>>;

// `documents` documents of 1..max_sentences sentences of 3..20 tokens (own generator).
Documents MakeDocuments(int documents, int max_sentences, uint64_t seed) {
  std::mt19937_64 gen(seed);
  Documents out;
  for (int d = 0; d < documents; ++d) {
    std::vector<std::vector<int32_t>> doc;
    const int sentences = 1 + static_cast<int>(gen() % static_cast<uint64_t>(max_sentences));
    for (int s = 0; s < sentences; ++s) {
      std::vector<int32_t> sentence;
      const int length = 3 + static_cast<int>(gen() % 18);
      for (int k = 0; k < length; ++k) sentence.push_back(Id(d, s, k));
      doc.push_back(std::move(sentence));
    }
    out.push_back(std::move(doc));
  }
  return out;
}

// Binomial count within 4 standard deviations of n * p.
void ExpectBinomial(int64_t count, int64_t n, double p, const std::string& what) {
  const double mean = static_cast<double>(n) * p;
  const double sigma = std::sqrt(static_cast<double>(n) * p * (1 - p));
  EXPECT_NEAR(static_cast<double>(count), mean, 4 * sigma)
      << what << ": " << count << " of " << n << ", expected " << p;
}

// Whether token `next` directly follows token `prev` in its document.
bool Follows(const Documents& docs, int32_t prev, int32_t next) {
  if (DocOf(prev) != DocOf(next)) return false;
  if (SentenceOf(prev) == SentenceOf(next)) return PositionOf(next) == PositionOf(prev) + 1;
  const auto& sentence = docs[static_cast<size_t>(DocOf(prev))][static_cast<size_t>(SentenceOf(prev))];
  return SentenceOf(next) == SentenceOf(prev) + 1 && PositionOf(next) == 0 &&
         PositionOf(prev) + 1 == static_cast<int>(sentence.size());
}

TEST(BuildSentencePairsTest, HalfAreRandomAndRandomOnesComeFromAnotherDocument) {
  const Documents docs = MakeDocuments(300, 12, 7);
  PairOptions options;
  options.max_seq_length = 512;  // no truncation: adjacency can be checked token by token
  options.short_seq_prob = 0;
  options.dupe_factor = 5;
  std::mt19937_64 rng(42);
  const std::vector<SentencePair> pairs = BuildSentencePairs(docs, {}, options, rng);
  ASSERT_GT(pairs.size(), 1500u);
  int64_t random = 0;
  for (const SentencePair& pair : pairs) {
    ASSERT_FALSE(pair.tokens_a.empty());
    ASSERT_FALSE(pair.tokens_b.empty());
    ASSERT_EQ(pair.word_start_a.size(), pair.tokens_a.size());
    ASSERT_EQ(pair.word_start_b.size(), pair.tokens_b.size());
    const int a_doc = DocOf(pair.tokens_a[0]);
    for (int32_t id : pair.tokens_a) ASSERT_EQ(DocOf(id), a_doc);
    for (size_t k = 1; k < pair.tokens_a.size(); ++k) {
      ASSERT_TRUE(Follows(docs, pair.tokens_a[k - 1], pair.tokens_a[k])) << "A is contiguous";
    }
    for (size_t k = 1; k < pair.tokens_b.size(); ++k) {
      ASSERT_TRUE(Follows(docs, pair.tokens_b[k - 1], pair.tokens_b[k])) << "B is contiguous";
    }
    if (pair.is_random_next) {
      ++random;
      for (int32_t id : pair.tokens_b) ASSERT_NE(DocOf(id), a_doc) << "random B from A's document";
    } else {
      ASSERT_TRUE(Follows(docs, pair.tokens_a.back(), pair.tokens_b.front()))
          << "a true B continues A";
    }
  }
  ExpectBinomial(random, static_cast<int64_t>(pairs.size()), 0.5, "random-next pairs");
}

TEST(BuildSentencePairsTest, OneSentenceDocumentsStillGiveBothLabels) {
  // A line-per-document corpus: every document is one sentence of several words.
  const Documents docs = MakeDocuments(2000, 1, 11);
  std::mt19937_64 rng(5);
  const std::vector<SentencePair> pairs = BuildSentencePairs(docs, {}, PairOptions{}, rng);
  ASSERT_EQ(pairs.size(), docs.size()) << "every sentence has a word start to cut at";
  int64_t random = 0;
  for (const SentencePair& pair : pairs) {
    if (pair.is_random_next) {
      ++random;
      ASSERT_NE(DocOf(pair.tokens_b[0]), DocOf(pair.tokens_a[0]));
    } else {
      ASSERT_TRUE(Follows(docs, pair.tokens_a.back(), pair.tokens_b.front()));
    }
  }
  ExpectBinomial(random, static_cast<int64_t>(pairs.size()), 0.5, "random-next pairs");
}

TEST(BuildSentencePairsTest, EveryPairFitsAndWordStartsFollowTheirTokens) {
  const Documents docs = MakeDocuments(200, 12, 3);
  // Word starts: every third token of a sentence continues a word.
  std::vector<std::vector<std::vector<bool>>> starts;
  for (const auto& doc : docs) {
    starts.emplace_back();
    for (const auto& sentence : doc) {
      std::vector<bool> s;
      for (int32_t id : sentence) s.push_back(PositionOf(id) % 3 != 2);
      starts.back().push_back(s);
    }
  }
  for (int32_t max_seq_length : {5, 16, 32, 128}) {
    PairOptions options;
    options.max_seq_length = max_seq_length;
    options.short_seq_prob = 0.3;
    std::mt19937_64 rng(static_cast<uint64_t>(max_seq_length));
    const std::vector<SentencePair> pairs = BuildSentencePairs(docs, starts, options, rng);
    ASSERT_FALSE(pairs.empty());
    int64_t random = 0;
    for (const SentencePair& pair : pairs) {
      ASSERT_GE(pair.tokens_a.size(), 1u);
      ASSERT_GE(pair.tokens_b.size(), 1u);
      ASSERT_LE(pair.tokens_a.size() + pair.tokens_b.size() + 3,
                static_cast<size_t>(max_seq_length));
      for (size_t k = 0; k < pair.tokens_a.size(); ++k) {
        ASSERT_EQ(pair.word_start_a[k], PositionOf(pair.tokens_a[k]) % 3 != 2);
      }
      for (size_t k = 0; k < pair.tokens_b.size(); ++k) {
        ASSERT_EQ(pair.word_start_b[k], PositionOf(pair.tokens_b[k]) % 3 != 2);
      }
      random += pair.is_random_next ? 1 : 0;
      if (pair.is_random_next) {
        ASSERT_NE(DocOf(pair.tokens_b[0]), DocOf(pair.tokens_a[0]));
      }
    }
    ExpectBinomial(random, static_cast<int64_t>(pairs.size()), 0.5,
                   absl::StrCat("random-next pairs at max_seq_length ", max_seq_length));
  }
  PairOptions too_short;
  too_short.max_seq_length = 4;
  std::mt19937_64 rng(1);
  EXPECT_THAT(BuildSentencePairs(docs, starts, too_short, rng), IsEmpty());
}

TEST(BuildSentencePairsTest, WithOneDocumentNegativesAreNeverAdjacent) {
  Documents docs = MakeDocuments(1, 1, 1);
  docs[0].clear();
  for (int s = 0; s < 60; ++s) {
    std::vector<int32_t> sentence;
    for (int k = 0; k < 6; ++k) sentence.push_back(Id(0, s, k));
    docs[0].push_back(sentence);
  }
  PairOptions options;
  options.max_seq_length = 40;
  options.dupe_factor = 40;
  std::mt19937_64 rng(9);
  const std::vector<SentencePair> pairs = BuildSentencePairs(docs, {}, options, rng);
  ASSERT_GT(pairs.size(), 400u);
  int64_t random = 0;
  for (const SentencePair& pair : pairs) {
    if (!pair.is_random_next) continue;
    ++random;
    std::set<int> a, b;
    for (int32_t id : pair.tokens_a) a.insert(SentenceOf(id));
    for (int32_t id : pair.tokens_b) b.insert(SentenceOf(id));
    for (int sb : b) {
      for (int sa : a) ASSERT_GE(std::abs(sb - sa), 2) << "B sentence " << sb << ", A " << sa;
    }
  }
  ExpectBinomial(random, static_cast<int64_t>(pairs.size()), 0.5, "random-next pairs");
}

TEST(BuildSentencePairsTest, SameSeedSamePairsAndDupeFactorMultiplies) {
  const Documents docs = MakeDocuments(100, 8, 5);
  PairOptions options;
  options.max_seq_length = 64;
  auto build = [&](uint64_t seed, int32_t dupe) {
    options.dupe_factor = dupe;
    std::mt19937_64 rng(seed);
    return BuildSentencePairs(docs, {}, options, rng);
  };
  auto same = [](const std::vector<SentencePair>& x, const std::vector<SentencePair>& y) {
    if (x.size() != y.size()) return false;
    for (size_t i = 0; i < x.size(); ++i) {
      if (x[i].tokens_a != y[i].tokens_a || x[i].tokens_b != y[i].tokens_b ||
          x[i].is_random_next != y[i].is_random_next) {
        return false;
      }
    }
    return true;
  };
  const std::vector<SentencePair> first = build(1, 1);
  EXPECT_TRUE(same(first, build(1, 1)));
  EXPECT_FALSE(same(first, build(2, 1)));
  const std::vector<SentencePair> doubled = build(1, 2);
  EXPECT_NEAR(static_cast<double>(doubled.size()), 2.0 * static_cast<double>(first.size()),
              0.2 * static_cast<double>(first.size()));
  // A spot check that does not depend on this implementation: the multiset of A's first tokens
  // draws from every document.
  std::set<int> documents_seen;
  for (const SentencePair& pair : doubled) documents_seen.insert(DocOf(pair.tokens_a[0]));
  EXPECT_EQ(documents_seen.size(), docs.size());
}

// ---------------------------------------------------------------------------------------------
// Masking

constexpr int32_t kPad = 0, kUnk = 1, kCls = 2, kSep = 3, kMask = 4, kUnused = 5;
constexpr int32_t kFirstWord = 6;

text::Vocab MakeVocab(int words) {
  std::vector<std::string> tokens = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[unused0]"};
  for (int i = 0; i < words; ++i) tokens.push_back(absl::StrCat("w", i));
  return text::Vocab::FromTokens(tokens);
}

SentencePair MakePair(int a, int b, int first_id = kFirstWord) {
  SentencePair pair;
  for (int i = 0; i < a; ++i) pair.tokens_a.push_back(first_id + i);
  for (int i = 0; i < b; ++i) pair.tokens_b.push_back(first_id + a + i);
  pair.word_start_a.assign(static_cast<size_t>(a), true);
  pair.word_start_b.assign(static_cast<size_t>(b), true);
  return pair;
}

TEST(MaskPairTest, LayoutIsClsASepBSepThenPadding) {
  const text::Vocab vocab = MakeVocab(100);
  SentencePair pair = MakePair(3, 2);
  pair.is_random_next = true;
  MaskingOptions options;
  options.masked_lm_prob = 0;  // still one prediction: at least one is always chosen
  std::mt19937_64 rng(1);
  const MaskedExample example = MaskPair(pair, vocab, 10, options, rng);
  ASSERT_EQ(example.input_ids.size(), 10u);
  EXPECT_THAT(example.token_type_ids, ElementsAre(0, 0, 0, 0, 0, 1, 1, 1, 0, 0));
  EXPECT_THAT(example.attention_mask, ElementsAre(1, 1, 1, 1, 1, 1, 1, 1, 0, 0));
  EXPECT_EQ(example.nsp_label, 1);
  std::vector<int32_t> original = {kCls, 6, 7, 8, kSep, 9, 10, kSep, kPad, kPad};
  int chosen = 0;
  for (size_t i = 0; i < original.size(); ++i) {
    if (example.mlm_labels[i] == -100) {
      EXPECT_EQ(example.input_ids[i], original[i]) << i;
    } else {
      ++chosen;
      EXPECT_EQ(example.mlm_labels[i], original[i]) << i;
    }
  }
  EXPECT_EQ(chosen, 1);
}

TEST(MaskPairTest, RatesFollowFifteenPercentAnd80_10_10) {
  const text::Vocab vocab = MakeVocab(2000);
  MaskingOptions options;
  options.max_predictions_per_seq = 0;  // no cap
  std::mt19937_64 rng(2024);
  constexpr int kSamples = 4000;
  constexpr int kA = 37, kB = 63;  // 100 candidates: 15 predictions per sample
  constexpr int kLength = kA + kB + 3 + 7;
  std::vector<int64_t> chosen_at(kLength, 0);
  int64_t chosen = 0, masked = 0, kept = 0, replaced = 0;
  for (int s = 0; s < kSamples; ++s) {
    SentencePair pair = MakePair(kA, kB, kFirstWord + (s % 50));
    const MaskedExample example = MaskPair(pair, vocab, kLength, options, rng);
    for (int i = 0; i < kLength; ++i) {
      const int32_t label = example.mlm_labels[static_cast<size_t>(i)];
      const int32_t input = example.input_ids[static_cast<size_t>(i)];
      const bool special = i == 0 || i == kA + 1 || i >= kA + kB + 2;
      if (special) {
        ASSERT_EQ(label, -100) << "special or padding position " << i << " chosen";
        continue;
      }
      if (label == -100) continue;
      ++chosen;
      ++chosen_at[static_cast<size_t>(i)];
      if (input == kMask) {
        ++masked;
      } else if (input == label) {
        ++kept;
      } else {
        ++replaced;
        ASSERT_GE(input, kFirstWord) << "a random replacement must not be special or [unused]";
      }
    }
  }
  EXPECT_EQ(chosen, 15 * kSamples);
  // Every candidate position is equally likely: 15% each.
  for (int i = 1; i < kLength; ++i) {
    const bool special = i == kA + 1 || i >= kA + kB + 2;
    if (!special) ExpectBinomial(chosen_at[static_cast<size_t>(i)], kSamples, 0.15, absl::StrCat("position ", i));
  }
  // Random replacements equal the original with probability 1/2000.
  ExpectBinomial(masked, chosen, 0.8, "[MASK]");
  ExpectBinomial(kept, chosen, 0.1 + 0.1 / 2000, "kept");
  ExpectBinomial(replaced, chosen, 0.1 - 0.1 / 2000, "random token");
}

TEST(MaskPairTest, SpecialTokensInTheTextAreNeverChosenAndTheCapHolds) {
  const text::Vocab vocab = MakeVocab(500);
  SentencePair pair = MakePair(150, 50);
  // The text itself holds [MASK], [UNK], [SEP]: never targets.
  pair.tokens_a[0] = kMask;
  pair.tokens_a[1] = kUnk;
  pair.tokens_b[0] = kSep;
  MaskingOptions options;  // cap 20 < round(0.15 * 197) = 30
  std::mt19937_64 rng(3);
  for (int s = 0; s < 500; ++s) {
    const MaskedExample example = MaskPair(pair, vocab, 256, options, rng);
    int chosen = 0;
    for (size_t i = 0; i < example.mlm_labels.size(); ++i) {
      if (example.mlm_labels[i] == -100) continue;
      ++chosen;
      EXPECT_NE(i, 1u);
      EXPECT_NE(i, 2u);
      EXPECT_NE(i, 152u);
      EXPECT_GE(example.mlm_labels[i], kFirstWord);
    }
    ASSERT_EQ(chosen, 20);
  }
}

TEST(MaskPairTest, WholeWordMaskingTakesEveryPieceOfAWord) {
  const text::Vocab vocab = MakeVocab(500);
  // Words of 1 to 4 pieces.
  SentencePair pair = MakePair(60, 60);
  for (size_t i = 0; i < 60; ++i) {
    pair.word_start_a[i] = i % 4 == 0 || i % 7 == 0;
    pair.word_start_b[i] = i % 3 == 0;
  }
  MaskingOptions options;
  options.whole_word_masking = true;
  options.max_predictions_per_seq = 0;
  std::mt19937_64 rng(77);
  int64_t chosen_total = 0;
  constexpr int kSamples = 2000;
  for (int s = 0; s < kSamples; ++s) {
    const MaskedExample example = MaskPair(pair, vocab, 128, options, rng);
    // Positions 1..60 are A, 62..121 are B.
    auto check = [&](size_t offset, const std::vector<bool>& starts) {
      size_t i = 0;
      while (i < starts.size()) {
        size_t end = i + 1;
        while (end < starts.size() && !starts[end]) ++end;
        const bool first = example.mlm_labels[offset + i] != -100;
        for (size_t k = i; k < end; ++k) {
          ASSERT_EQ(example.mlm_labels[offset + k] != -100, first)
              << "word at " << offset + i << " partly masked";
        }
        i = end;
      }
    };
    check(1, pair.word_start_a);
    check(62, pair.word_start_b);
    int chosen = 0;
    for (int32_t label : example.mlm_labels) chosen += label != -100 ? 1 : 0;
    ASSERT_LE(chosen, 18);  // round(0.15 * 120)
    chosen_total += chosen;
  }
  // Words are skipped only when they would overshoot, so the count stays close to 18.
  EXPECT_GT(static_cast<double>(chosen_total) / kSamples, 16.0);
}

// ---------------------------------------------------------------------------------------------
// The whole data path on real text: corpus -> vocabulary -> tokens -> pairs -> masked inputs.

TEST(PretrainingPipelineTest, ChineseAndEnglishCorpusBecomesModelInputs) {
  BERTD_REQUIRE_SHARED("data/text/beiying.txt");
  BERTD_REQUIRE_SHARED("data/glue/RTE/train.tsv");
  // One document per line: no blank line may come between the essay and the news.
  std::string corpus = std::string(absl::StripTrailingAsciiWhitespace(
      testing::ReadWholeFile(testing::SharedPath("data/text/beiying.txt"))));
  const std::string rte = testing::ReadWholeFile(testing::SharedPath("data/glue/RTE/train.tsv"));
  int rows = 0;
  for (absl::string_view line : absl::StrSplit(rte, '\n')) {
    std::vector<absl::string_view> fields = absl::StrSplit(line, '\t');
    if (rows++ == 0 || fields.size() < 3) continue;  // header
    absl::StrAppend(&corpus, "\n", fields[1]);      // the premise: a few sentences of news
    if (rows > 800) break;
  }
  const std::vector<std::vector<std::string>> documents = SplitCorpus(corpus);
  ASSERT_GT(documents.size(), 700u);

  text::VocabTrainerOptions vocab_options;
  vocab_options.vocab_size = 4000;
  text::WordPieceTrainer trainer(vocab_options);
  for (const auto& document : documents) {
    for (const std::string& sentence : document) ASSERT_TRUE(trainer.AddText(sentence).ok());
  }
  absl::StatusOr<text::Vocab> vocab = trainer.Train();
  ASSERT_TRUE(vocab.ok()) << vocab.status();
  absl::StatusOr<text::BertTokenizer> tokenizer =
      text::BertTokenizer::Create(*vocab, text::TokenizerOptions{});
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  absl::StatusOr<TokenizedCorpus> tokenized = TokenizeCorpus(documents, *tokenizer);
  ASSERT_TRUE(tokenized.ok()) << tokenized.status();
  ASSERT_EQ(tokenized->tokens.size(), documents.size());
  int64_t pieces = 0, unknown = 0;
  for (size_t d = 0; d < documents.size(); ++d) {
    ASSERT_EQ(tokenized->tokens[d].size(), documents[d].size());
    for (size_t s = 0; s < documents[d].size(); ++s) {
      const auto& ids = tokenized->tokens[d][s];
      ASSERT_EQ(tokenized->word_starts[d][s].size(), ids.size());
      for (size_t k = 0; k < ids.size(); ++k) {
        EXPECT_EQ(tokenized->word_starts[d][s][k], !absl::StartsWith(vocab->TokenAt(ids[k]), "##"));
        unknown += ids[k] == tokenizer->unk_id() ? 1 : 0;
      }
      pieces += static_cast<int64_t>(ids.size());
    }
  }
  EXPECT_LT(static_cast<double>(unknown), 0.005 * static_cast<double>(pieces));

  PairOptions pair_options;
  pair_options.max_seq_length = 64;
  pair_options.dupe_factor = 2;
  std::mt19937_64 rng(17);
  const std::vector<SentencePair> pairs =
      BuildSentencePairs(tokenized->tokens, tokenized->word_starts, pair_options, rng);
  ASSERT_GT(pairs.size(), 1000u);
  MaskingOptions masking;
  masking.whole_word_masking = true;
  int64_t random = 0, targets = 0, candidates = 0;
  for (const SentencePair& pair : pairs) {
    const MaskedExample example = MaskPair(pair, *vocab, 64, masking, rng);
    ASSERT_EQ(example.input_ids.size(), 64u);
    ASSERT_EQ(example.input_ids[0], tokenizer->cls_id());
    ASSERT_EQ(example.input_ids[pair.tokens_a.size() + 1], tokenizer->sep_id());
    ASSERT_EQ(example.input_ids[pair.tokens_a.size() + pair.tokens_b.size() + 2],
              tokenizer->sep_id());
    random += example.nsp_label;
    candidates += static_cast<int64_t>(pair.tokens_a.size() + pair.tokens_b.size());
    for (int32_t label : example.mlm_labels) targets += label != -100 ? 1 : 0;
  }
  ExpectBinomial(random, static_cast<int64_t>(pairs.size()), 0.5, "random-next pairs");
  // Whole words are skipped when they would overshoot, and [UNK]s are never targets: a little
  // under 15% of the tokens are predicted.
  const double rate = static_cast<double>(targets) / static_cast<double>(candidates);
  EXPECT_GT(rate, 0.13);
  EXPECT_LE(rate, 0.155);
}

}  // namespace
}  // namespace bertd::data
