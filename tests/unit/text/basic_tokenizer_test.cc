#include "text/basic_tokenizer.h"

#include <string>
#include <tuple>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "gtest/gtest.h"

namespace bertd::text {
namespace {

// (word, source start, source end, special id) for each word.
using Word = std::tuple<std::string, int32_t, int32_t, int32_t>;

std::vector<Word> Split(const BasicTokenizer& tokenizer, absl::string_view text) {
  PreTokenized pre;
  absl::Status status = tokenizer.Split(text, &pre);
  EXPECT_TRUE(status.ok()) << status;
  std::vector<Word> words;
  for (const PreTokenizedWord& word : pre.words) {
    words.emplace_back(std::string(pre.WordText(word)), pre.chars[word.char_begin].source_start,
                       pre.chars[word.char_end - 1].source_end, word.special_id);
  }
  return words;
}

BasicTokenizer Uncased() { return BasicTokenizer({true, true, true}, {{"[SEP]", 7}}); }

TEST(BasicTokenizerTest, SplitsOnWhitespaceAndPunctuation) {
  EXPECT_EQ(Split(Uncased(), "  Hi,  there!\tok\n"), (std::vector<Word>{{"hi", 2, 4, -1},
                                                                        {",", 4, 5, -1},
                                                                        {"there", 7, 12, -1},
                                                                        {"!", 12, 13, -1},
                                                                        {"ok", 14, 16, -1}}));
}

TEST(BasicTokenizerTest, AsciiSymbolsAndUnicodePunctuationAreSplit) {
  // $ + ^ ` | ~ are not Unicode punctuation, but BERT treats all non-alphanumeric ASCII so.
  EXPECT_EQ(Split(Uncased(), "a$b+c^d`e|f~g"), (std::vector<Word>{{"a", 0, 1, -1},
                                                                  {"$", 1, 2, -1},
                                                                  {"b", 2, 3, -1},
                                                                  {"+", 3, 4, -1},
                                                                  {"c", 4, 5, -1},
                                                                  {"^", 5, 6, -1},
                                                                  {"d", 6, 7, -1},
                                                                  {"`", 7, 8, -1},
                                                                  {"e", 8, 9, -1},
                                                                  {"|", 9, 10, -1},
                                                                  {"f", 10, 11, -1},
                                                                  {"~", 11, 12, -1},
                                                                  {"g", 12, 13, -1}}));
  EXPECT_EQ(Split(Uncased(), "\u00BFqu\u00E9\u2014s\u00ED"),  // ¿qué—sí
            (std::vector<Word>{
                {"\u00BF", 0, 1, -1}, {"que", 1, 4, -1}, {"\u2014", 4, 5, -1}, {"si", 5, 7, -1}}));
  // Symbols (category S*) outside ASCII stay inside words.
  EXPECT_EQ(Split(Uncased(), "5\u20AC"), (std::vector<Word>{{"5\u20AC", 0, 2, -1}}));
}

TEST(BasicTokenizerTest, CleaningDropsControlsAndKeepsOffsetsInOriginalCodePoints) {
  // NUL, U+FFFD, a C1 control and a zero-width space (Cf) vanish; U+3000, NBSP and U+2028 split.
  EXPECT_EQ(
      Split(Uncased(), std::string("a") + '\0' + "b\uFFFDc\u0085d\u200Be\u3000f\u00A0g\u2028h"),
      (std::vector<Word>{
          {"abcde", 0, 9, -1}, {"f", 10, 11, -1}, {"g", 12, 13, -1}, {"h", 14, 15, -1}}));
}

TEST(BasicTokenizerTest, CleaningDropsEveryOtherCategoryLikeHuggingFace) {
  // Private use (Co) and unassigned (Cn) characters go too, not only controls and formats.
  EXPECT_EQ(Split(Uncased(), "a\uE000b\u0378c"), (std::vector<Word>{{"abc", 0, 5, -1}}));
}

TEST(BasicTokenizerTest, LowercasesAndStripsAccentsWithOffsetsOfTheOriginal) {
  // "É" precomposed and "E" + U+0301 combining both become "e"; the combining mark keeps the
  // word's end offset on the original text.
  EXPECT_EQ(Split(Uncased(), "\u00C9COLE E\u0301t\u00E9"),
            (std::vector<Word>{{"ecole", 0, 5, -1}, {"ete", 6, 10, -1}}));
}

TEST(BasicTokenizerTest, StripAccentsFollowsItsOwnSetting) {
  BasicTokenizer lower_only({/*lowercase=*/true, /*strip_accents=*/false, true}, {});
  EXPECT_EQ(Split(lower_only, "\u00C9COLE"), (std::vector<Word>{{"\u00E9cole", 0, 5, -1}}));
  BasicTokenizer strip_only({/*lowercase=*/false, /*strip_accents=*/true, true}, {});
  EXPECT_EQ(Split(strip_only, "\u00C9COLE"), (std::vector<Word>{{"ECOLE", 0, 5, -1}}));
  BasicTokenizer cased({false, false, true}, {});
  EXPECT_EQ(Split(cased, "\u00C9cole"), (std::vector<Word>{{"\u00C9cole", 0, 5, -1}}));
}

TEST(BasicTokenizerTest, DottedCapitalILowercasesToTwoCodePoints) {
  BasicTokenizer lower_only({true, false, true}, {});
  EXPECT_EQ(Split(lower_only, "\u0130"), (std::vector<Word>{{"i\u0307", 0, 1, -1}}));
  EXPECT_EQ(Split(Uncased(), "\u0130"), (std::vector<Word>{{"i", 0, 1, -1}}));
}

TEST(BasicTokenizerTest, ChineseCharactersBecomeSingleWordsButHangulAndKanaDoNot) {
  EXPECT_EQ(Split(Uncased(), "ab\u4E2D\u6587cd"),
            (std::vector<Word>{
                {"ab", 0, 2, -1}, {"\u4E2D", 2, 3, -1}, {"\u6587", 3, 4, -1}, {"cd", 4, 6, -1}}));
  BasicTokenizer cased({false, false, true}, {});
  EXPECT_EQ(Split(cased, "\uD55C\uAD6D \u3072\u3089"),  // 한국 ひら
            (std::vector<Word>{{"\uD55C\uAD6D", 0, 2, -1}, {"\u3072\u3089", 3, 5, -1}}));
  BasicTokenizer no_cjk_split({true, true, false}, {});
  EXPECT_EQ(Split(no_cjk_split, "ab\u4E2D\u6587"),
            (std::vector<Word>{{"ab\u4E2D\u6587", 0, 4, -1}}));
}

TEST(BasicTokenizerTest, AccentStrippingDecomposesHangulIntoJamo) {
  // NFD turns each syllable into conjoining jamo, as in Hugging Face's uncased tokenizers.
  EXPECT_EQ(Split(Uncased(), "\uD55C"), (std::vector<Word>{{"\u1112\u1161\u11AB", 0, 1, -1}}));
}

TEST(BasicTokenizerTest, UnsplittableTokensAreMatchedVerbatimAnywhere) {
  EXPECT_EQ(Split(Uncased(), "X[SEP]y [sep]"), (std::vector<Word>{{"x", 0, 1, -1},
                                                                  {"[SEP]", 1, 6, 7},
                                                                  {"y", 6, 7, -1},
                                                                  {"[", 8, 9, -1},
                                                                  {"sep", 9, 12, -1},
                                                                  {"]", 12, 13, -1}}));
}

TEST(BasicTokenizerTest, LongestUnsplittableTokenWins) {
  BasicTokenizer tokenizer({true, true, true}, {{"<a>", 1}, {"<a>b", 2}});
  EXPECT_EQ(Split(tokenizer, "<a>b<a>"), (std::vector<Word>{{"<a>b", 0, 4, 2}, {"<a>", 4, 7, 1}}));
}

TEST(BasicTokenizerTest, InvalidUtf8NamesTheByteOffset) {
  const std::vector<std::pair<std::string, int>> cases = {
      {"ab\xFF"
       "cd",
       2},                      // never valid
      {"\xC3\xA9\xC0\xAF", 2},  // overlong "/"
      {"x\xED\xA0\x80", 1},     // UTF-16 surrogate
      {"abc\xE4\xB8", 3},       // truncated at the end
  };
  for (const auto& [text, offset] : cases) {
    PreTokenized pre;
    absl::Status status = Uncased().Split(text, &pre);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_TRUE(absl::StrContains(status.message(), "byte offset " + std::to_string(offset)))
        << status;
  }
}

TEST(BasicTokenizerTest, EmptyAndWhitespaceOnlyTextsHaveNoWords) {
  EXPECT_TRUE(Split(Uncased(), "").empty());
  EXPECT_TRUE(Split(Uncased(), " \t\n\u3000").empty());
}

}  // namespace
}  // namespace bertd::text
