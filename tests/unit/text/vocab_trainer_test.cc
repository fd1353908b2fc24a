#include "text/vocab_trainer.h"

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "test_util.h"
#include "text/tokenizer.h"

namespace bertd::text {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

const std::vector<std::string> kSpecials = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};

std::vector<std::string> Train(const std::vector<std::string>& texts, VocabTrainerOptions options) {
  WordPieceTrainer trainer(std::move(options));
  for (const std::string& text : texts) EXPECT_TRUE(trainer.AddText(text).ok()) << text;
  absl::StatusOr<Vocab> vocab = trainer.Train();
  EXPECT_TRUE(vocab.ok()) << vocab.status();
  return vocab.ok() ? vocab->tokens() : std::vector<std::string>();
}

VocabTrainerOptions Options(int32_t vocab_size, int32_t min_frequency = 2) {
  VocabTrainerOptions options;
  options.vocab_size = vocab_size;
  options.min_frequency = min_frequency;
  return options;
}

// The sentences of a GLUE TSV: column `column`, after `header_lines` lines.
std::vector<std::string> TsvColumn(const std::string& relative_path, int column,
                                   int header_lines) {
  std::vector<std::string> out;
  const std::string contents = testing::ReadWholeFile(testing::SharedPath(relative_path));
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(contents, '\n')) {
    if (line_number++ < header_lines || line.empty()) continue;
    std::vector<absl::string_view> fields = absl::StrSplit(line, '\t');
    if (static_cast<int>(fields.size()) > column) out.emplace_back(fields[static_cast<size_t>(column)]);
  }
  return out;
}

// Share of [UNK] among the word pieces of `texts` under the project's own tokenizer.
double UnknownRate(const Vocab& vocab, const std::vector<std::string>& texts, bool lowercase) {
  TokenizerOptions options;
  options.do_lower_case = lowercase;
  absl::StatusOr<BertTokenizer> tokenizer = BertTokenizer::Create(vocab, options);
  EXPECT_TRUE(tokenizer.ok()) << tokenizer.status();
  if (!tokenizer.ok()) return 1.0;
  int64_t pieces = 0, unknown = 0;
  for (const std::string& text : texts) {
    absl::StatusOr<std::vector<Token>> tokens = tokenizer->Tokenize(text);
    EXPECT_TRUE(tokens.ok()) << tokens.status();
    if (!tokens.ok()) continue;
    pieces += static_cast<int64_t>(tokens->size());
    for (const Token& token : *tokens) unknown += token.id == tokenizer->unk_id() ? 1 : 0;
  }
  EXPECT_GT(pieces, 0);
  return pieces == 0 ? 1.0 : static_cast<double>(unknown) / static_cast<double>(pieces);
}

// Words ab x5, abc x3, bc x1. Worked by hand: the alphabet is a b c (chars) and ##b ##c (inside
// words); pair counts (a,##b)=8, (##b,##c)=3, (b,##c)=1. The first merge is "ab" (8), after which
// (ab,##c)=3 gives "abc"; "bc" occurs once, under min_frequency 2.
const std::vector<std::string> kHandCorpus = {"ab ab ab ab ab", "abc abc abc", "bc"};

TEST(WordPieceTrainerTest, MergesTheMostFrequentPairsAsWorkedByHand) {
  EXPECT_THAT(Train(kHandCorpus, Options(100)),
              ElementsAre("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b", "c", "##b",
                          "##c", "ab", "abc"));
  // min_frequency 1 also takes the single "bc".
  std::vector<std::string> all = Train(kHandCorpus, Options(100, 1));
  ASSERT_EQ(all.size(), 13u);
  EXPECT_EQ(all.back(), "bc");
  // vocab_size stops the merges: one merge fits.
  std::vector<std::string> small = Train(kHandCorpus, Options(11));
  ASSERT_EQ(small.size(), 11u);
  EXPECT_EQ(small.back(), "ab");
}

TEST(WordPieceTrainerTest, TiesGoToTheFirstPairByText) {
  // "cd" and "ab" are both seen twice; "ab" sorts first, whatever order the text came in.
  for (const auto& corpus : {std::vector<std::string>{"cd ab cd ab"},
                             std::vector<std::string>{"ab cd", "ab cd"},
                             std::vector<std::string>{"cd", "cd", "ab", "ab"}}) {
    // Every character alone (a b c d) and inside words (##b ##d): 11 tokens, room for one merge.
    std::vector<std::string> vocab = Train(corpus, Options(12));
    ASSERT_EQ(vocab.size(), 12u);
    EXPECT_THAT(std::vector<std::string>(vocab.begin() + 5, vocab.end()),
                ElementsAre("a", "b", "c", "d", "##b", "##d", "ab"));
  }
}

TEST(WordPieceTrainerTest, SpecialsComeFirstInTheGivenOrderAndAreNotCountedFromText) {
  VocabTrainerOptions options = Options(50, 1);
  options.special_tokens = {"[CLS]", "[SEP]", "[UNK]", "[PAD]", "[MASK]", "[EXTRA]"};
  WordPieceTrainer trainer(options);
  ASSERT_TRUE(trainer.AddText("[CLS] hello [SEP] [EXTRA]").ok());
  EXPECT_EQ(trainer.words_counted(), 1);  // only "hello"
  absl::StatusOr<Vocab> vocab = trainer.Train();
  ASSERT_TRUE(vocab.ok()) << vocab.status();
  EXPECT_THAT(std::vector<std::string>(vocab->tokens().begin(), vocab->tokens().begin() + 6),
              ElementsAre("[CLS]", "[SEP]", "[UNK]", "[PAD]", "[MASK]", "[EXTRA]"));
  EXPECT_FALSE(vocab->Find("[").has_value());
  EXPECT_FALSE(vocab->Find("cls").has_value());
  EXPECT_TRUE(vocab->Find("hello").has_value());
}

TEST(WordPieceTrainerTest, LowercasesAndStripsAccentsOnlyWhenAsked) {
  std::vector<std::string> lower = Train({"Café Café CAFÉ"}, Options(100, 1));
  EXPECT_NE(std::find(lower.begin(), lower.end(), "cafe"), lower.end());
  EXPECT_EQ(std::find(lower.begin(), lower.end(), "C"), lower.end());
  VocabTrainerOptions cased = Options(100, 1);
  cased.lowercase = false;
  std::vector<std::string> kept = Train({"Café Café CAFÉ"}, cased);
  EXPECT_NE(std::find(kept.begin(), kept.end(), "Café"), kept.end());
  EXPECT_NE(std::find(kept.begin(), kept.end(), "CAFÉ"), kept.end());
}

TEST(WordPieceTrainerTest, ChineseCharactersAreSingleWordsWithoutContinuationForms) {
  std::vector<std::string> vocab = Train({"我们的背影。我们的父亲，background"}, Options(100, 1));
  for (const char* expected : {"我", "们", "的", "背", "影", "父", "亲", "。", "，"}) {
    EXPECT_NE(std::find(vocab.begin(), vocab.end(), expected), vocab.end()) << expected;
  }
  for (const std::string& token : vocab) {
    EXPECT_FALSE(absl::StartsWith(token, "##我")) << token;
    EXPECT_NE(token, "我们") << "CJK characters must not merge";
  }
}

TEST(WordPieceTrainerTest, LimitAlphabetKeepsTheMostFrequentCharacters) {
  VocabTrainerOptions options = Options(100, 1);
  options.limit_alphabet = 3;  // a (6), b (3), c (3) stay; z (1) goes
  std::vector<std::string> vocab = Train({"aaa abc abc ab cz"}, options);
  EXPECT_EQ(std::find(vocab.begin(), vocab.end(), "z"), vocab.end());
  EXPECT_EQ(std::find(vocab.begin(), vocab.end(), "##z"), vocab.end());
  EXPECT_EQ(std::find(vocab.begin(), vocab.end(), "cz"), vocab.end());
  EXPECT_NE(std::find(vocab.begin(), vocab.end(), "abc"), vocab.end());
}

TEST(WordPieceTrainerTest, AnAlphabetLargerThanVocabSizeKeepsItsMostUsedForms) {
  // 26 letters appear only word-initially, "x" far more often than the rest.
  std::string text = "xa xa xa xa";
  for (char c = 'a'; c <= 'z'; ++c) text += std::string(" ") + c;
  std::vector<std::string> vocab = Train({text}, Options(8, 1));
  ASSERT_EQ(vocab.size(), 8u);
  // Uses: x 5, a 1 (+##a 4), others 1 each: kept are ##a (4 uses), x (5) and "a" (ties by text).
  EXPECT_THAT(std::vector<std::string>(vocab.begin() + 5, vocab.end()),
              ElementsAre("a", "x", "##a"));
}

TEST(WordPieceTrainerTest, RejectsUnusableOptionsAndEmptyInput) {
  WordPieceTrainer empty(Options(100));
  absl::StatusOr<Vocab> none = empty.Train();
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(none.status().message(), HasSubstr("no words"));

  WordPieceTrainer tiny(Options(5));
  ASSERT_TRUE(tiny.AddText("hello").ok());
  absl::StatusOr<Vocab> too_small = tiny.Train();
  ASSERT_FALSE(too_small.ok());
  EXPECT_THAT(too_small.status().message(), HasSubstr("vocab_size"));

  VocabTrainerOptions no_alphabet = Options(100);
  no_alphabet.limit_alphabet = 0;
  WordPieceTrainer zero(no_alphabet);
  ASSERT_TRUE(zero.AddText("hello").ok());
  EXPECT_THAT(zero.Train().status().message(), HasSubstr("limit_alphabet"));

  VocabTrainerOptions twice = Options(100);
  twice.special_tokens = {"[UNK]", "[UNK]"};
  WordPieceTrainer duplicate(twice);
  ASSERT_TRUE(duplicate.AddText("hello").ok());
  EXPECT_THAT(duplicate.Train().status().message(), HasSubstr("twice"));

  WordPieceTrainer bad_utf8(Options(100));
  absl::Status status = bad_utf8.AddText("ok \xC3\x28 no");
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
}

TEST(WordPieceTrainerTest, EnglishVocabIsDeterministicSizedAndCoversItsCorpus) {
  BERTD_REQUIRE_SHARED("data/glue/SST-2/train.tsv");
  const std::vector<std::string> sentences = TsvColumn("data/glue/SST-2/train.tsv", 0, 1);
  ASSERT_GT(sentences.size(), 60000u);
  const VocabTrainerOptions options = Options(4000);

  WordPieceTrainer forward(options);
  WordPieceTrainer backward(options);
  for (const std::string& s : sentences) ASSERT_TRUE(forward.AddText(s).ok());
  for (auto it = sentences.rbegin(); it != sentences.rend(); ++it) {
    ASSERT_TRUE(backward.AddText(*it).ok());
  }
  absl::StatusOr<Vocab> vocab = forward.Train();
  ASSERT_TRUE(vocab.ok()) << vocab.status();
  absl::StatusOr<Vocab> again = forward.Train();
  absl::StatusOr<Vocab> reversed = backward.Train();
  ASSERT_TRUE(again.ok() && reversed.ok());
  EXPECT_EQ(vocab->tokens(), again->tokens());
  EXPECT_EQ(vocab->tokens(), reversed->tokens()) << "the order of the text must not matter";

  ASSERT_EQ(vocab->size(), 4000) << "SST-2 has far more than 4000 mergeable pairs";
  EXPECT_EQ(std::vector<std::string>(vocab->tokens().begin(), vocab->tokens().begin() + 5),
            kSpecials);
  int continuation = 0;
  for (int32_t id = 5; id < vocab->size(); ++id) {
    const std::string& token = vocab->TokenAt(id);
    EXPECT_FALSE(token.empty());
    if (absl::StartsWith(token, "##")) {
      EXPECT_GT(token.size(), 2u) << token;
    }
    continuation += absl::StartsWith(token, "##") ? 1 : 0;
  }
  EXPECT_GT(continuation, 100);
  // Different pairs can spell the same token ("ab"+"##c", "a"+"##bc"): it is listed once.
  std::vector<std::string> sorted = vocab->tokens();
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(std::adjacent_find(sorted.begin(), sorted.end()), sorted.end());
  for (const char* word : {"the", "film", "movie", "good", "bad"}) {
    EXPECT_TRUE(vocab->Find(word).has_value()) << word;
  }
  EXPECT_LT(UnknownRate(*vocab, sentences, /*lowercase=*/true), 0.005);
}

TEST(WordPieceTrainerTest, ChineseVocabCoversItsCorpus) {
  BERTD_REQUIRE_SHARED("data/text/beiying.txt");
  const std::string contents = testing::ReadWholeFile(testing::SharedPath("data/text/beiying.txt"));
  std::vector<std::string> lines = absl::StrSplit(contents, '\n', absl::SkipWhitespace());
  ASSERT_GE(lines.size(), 5u);
  WordPieceTrainer trainer(Options(2000));
  for (const std::string& line : lines) ASSERT_TRUE(trainer.AddText(line).ok());
  absl::StatusOr<Vocab> vocab = trainer.Train();
  ASSERT_TRUE(vocab.ok()) << vocab.status();
  EXPECT_LE(vocab->size(), 2000);
  for (const char* c : {"父", "亲", "背", "影", "。", "，"}) {
    EXPECT_TRUE(vocab->Find(c).has_value()) << c;
  }
  EXPECT_LT(UnknownRate(*vocab, lines, /*lowercase=*/true), 0.005);
}

}  // namespace
}  // namespace bertd::text
