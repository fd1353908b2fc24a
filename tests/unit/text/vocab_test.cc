#include "text/vocab.h"

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "common/file_util.h"
#include "gtest/gtest.h"
#include "test_util.h"

namespace bertd::text {
namespace {

std::string WriteTemp(const std::string& contents) {
  static int counter = 0;
  const std::string path =
      testing::MakeTempDir("vocab-test") + "/vocab" + std::to_string(counter++) + ".txt";
  EXPECT_TRUE(WriteFileAtomically(path, contents).ok());
  return path;
}

TEST(VocabTest, LoadsOneTokenPerLineWithCrlf) {
  absl::StatusOr<Vocab> vocab = Vocab::Load(WriteTemp("[PAD]\r\n[UNK]\r\nhello\r\n##lo"));
  ASSERT_TRUE(vocab.ok()) << vocab.status();
  EXPECT_EQ(vocab->size(), 4);
  EXPECT_EQ(vocab->Find("hello"), 2);
  EXPECT_EQ(vocab->Find("##lo"), 3);
  EXPECT_EQ(vocab->TokenAt(1), "[UNK]");
  EXPECT_EQ(vocab->pad_id(), 0);
  EXPECT_EQ(vocab->unk_id(), 1);
  EXPECT_EQ(vocab->cls_id(), std::nullopt);
  EXPECT_EQ(vocab->Find("hello\r"), std::nullopt);
}

TEST(VocabTest, EmptyLineInsideTheFileIsAToken) {
  absl::StatusOr<Vocab> vocab = Vocab::Load(WriteTemp("a\n\nb\n"));
  ASSERT_TRUE(vocab.ok()) << vocab.status();
  EXPECT_EQ(vocab->size(), 3);
  EXPECT_EQ(vocab->Find(""), 1);
  EXPECT_EQ(vocab->Find("b"), 2);
}

TEST(VocabTest, DuplicatesKeepEveryIdAndLookUpTheLastLikeHuggingFace) {
  absl::StatusOr<Vocab> vocab = Vocab::Load(WriteTemp("x\ny\nx\n"));
  ASSERT_TRUE(vocab.ok()) << vocab.status();
  EXPECT_EQ(vocab->size(), 3);
  EXPECT_EQ(vocab->Find("x"), 2);
  EXPECT_EQ(vocab->TokenAt(0), "x");
  EXPECT_EQ(vocab->TokenAt(2), "x");
}

TEST(VocabTest, MissingFileIsNotFound) {
  absl::StatusOr<Vocab> vocab = Vocab::Load("/nonexistent/bertd/vocab.txt");
  EXPECT_EQ(vocab.status().code(), absl::StatusCode::kNotFound);
}

TEST(VocabTest, EmptyFileIsRejected) {
  absl::StatusOr<Vocab> vocab = Vocab::Load(WriteTemp(""));
  EXPECT_EQ(vocab.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(vocab.status().message(), "empty")) << vocab.status();
}

TEST(VocabTest, InvalidUtf8NamesTheLine) {
  absl::StatusOr<Vocab> vocab = Vocab::Load(WriteTemp("ok\nbad\xff\n"));
  EXPECT_EQ(vocab.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(vocab.status().message(), "line 2")) << vocab.status();
}

TEST(VocabTest, SaveLoadRoundTrip) {
  Vocab vocab = Vocab::FromTokens({"[PAD]", "[UNK]", "héllo", "##x", "", "x", "x"});
  const std::string path = testing::MakeTempDir("vocab-test") + "/vocab.txt";
  ASSERT_TRUE(vocab.Save(path).ok());
  absl::StatusOr<Vocab> loaded = Vocab::Load(path);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->tokens(), vocab.tokens());
  EXPECT_EQ(loaded->Find("x"), 6);
}

TEST(VocabTest, SaveRejectsLineBreaksInTokens) {
  Vocab vocab = Vocab::FromTokens({"a\nb"});
  EXPECT_EQ(vocab.Save(testing::MakeTempDir("vocab-test") + "/vocab.txt").code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(VocabTest, HasUppercaseIgnoresBracketedSpecialsAndCaselessSymbols) {
  EXPECT_FALSE(Vocab::FromTokens({"[PAD]", "[CLS]", "[unused0]", "hello", "##é"}).HasUppercase());
  // U+211D (double-struck R) is category Lu but has no lowercase; bert-base-uncased contains it.
  EXPECT_FALSE(Vocab::FromTokens({"\u211D", "##\u211D"}).HasUppercase());
  EXPECT_TRUE(Vocab::FromTokens({"[CLS]", "Hello"}).HasUppercase());
  EXPECT_TRUE(Vocab::FromTokens({"##\u00C9"}).HasUppercase());  // É
  EXPECT_TRUE(Vocab::FromTokens({"[", "A"}).HasUppercase());
}

TEST(VocabTest, DetectsCasingOfTheBertVocabularies) {
  BERTD_REQUIRE_SHARED("data/vocab/bert-base-cased-vocab.txt");
  absl::StatusOr<Vocab> cased =
      Vocab::Load(testing::SharedPath("data/vocab/bert-base-cased-vocab.txt"));
  absl::StatusOr<Vocab> uncased =
      Vocab::Load(testing::SharedPath("data/vocab/bert-base-uncased-vocab.txt"));
  ASSERT_TRUE(cased.ok()) << cased.status();
  ASSERT_TRUE(uncased.ok()) << uncased.status();
  EXPECT_EQ(cased->size(), 28996);
  EXPECT_EQ(uncased->size(), 30522);
  EXPECT_TRUE(cased->HasUppercase());
  EXPECT_FALSE(uncased->HasUppercase());
  EXPECT_EQ(uncased->cls_id(), 101);
  EXPECT_EQ(uncased->sep_id(), 102);
  EXPECT_EQ(uncased->mask_id(), 103);
  EXPECT_EQ(uncased->TokenAt(7592), "hello");
}

}  // namespace
}  // namespace bertd::text
