#include "data/features.h"

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "test_util.h"
#include "text/vocab.h"

namespace bertd::data {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// Ids: [PAD]=0 [UNK]=1 [CLS]=2 [SEP]=3 [MASK]=4, then the words from 5.
text::BertTokenizer SmallTokenizer() {
  absl::StatusOr<text::BertTokenizer> tokenizer = text::BertTokenizer::Create(
      text::Vocab::FromTokens({"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]",  // 0-4
                               "hello", "world", "how",   "are",   "you",     // 5-9
                               "a",     "b",     "c",     "d",     "e",
                               "f",     "g",     "h",     "i",     "j",  // 10-19
                               "q",     "?",     "##s"}),                // 20-22
      {});
  EXPECT_TRUE(tokenizer.ok()) << tokenizer.status();
  return *std::move(tokenizer);
}

Example Pair(std::string text, std::string pair, std::string label, std::string id = "1") {
  Example example;
  example.id = std::move(id);
  example.text = std::move(text);
  example.text_pair = std::move(pair);
  example.label = std::move(label);
  return example;
}

// The code points [begin, end) of UTF-8 `text`.
std::string CodePointSlice(const std::string& text, int32_t begin, int32_t end) {
  std::string out;
  int32_t index = 0;
  for (size_t pos = 0; pos < text.size();) {
    size_t length = 1;
    const auto lead = static_cast<unsigned char>(text[pos]);
    if (lead >= 0xF0)
      length = 4;
    else if (lead >= 0xE0)
      length = 3;
    else if (lead >= 0xC0)
      length = 2;
    if (index >= begin && index < end) out.append(text, pos, length);
    pos += length;
    ++index;
  }
  return out;
}

// The context text a feature's start/end positions point at.
std::string SpanText(const Feature& feature, const Example& example) {
  return CodePointSlice(example.text_pair, feature.offsets[feature.start_position].first,
                        feature.offsets[feature.end_position].second);
}

TEST(FeaturizeClassificationTest, PairIdsTypeIdsAndLabels) {
  text::BertTokenizer tokenizer = SmallTokenizer();
  std::vector<Example> examples = {Pair("Hello world", "how are you", "yes"),
                                   Pair("hello", "", "no", "7"), Pair("you", "", "")};
  absl::StatusOr<std::vector<Feature>> features =
      FeaturizeClassification(examples, tokenizer, {{"no", 0}, {"yes", 1}}, 128);
  ASSERT_TRUE(features.ok()) << features.status();
  ASSERT_EQ(features->size(), 3u);
  const Feature& pair = (*features)[0];
  EXPECT_THAT(pair.ids, ElementsAre(2, 5, 6, 3, 7, 8, 9, 3));
  EXPECT_THAT(pair.type_ids, ElementsAre(0, 0, 0, 0, 1, 1, 1, 1));
  EXPECT_THAT(pair.sequence_ids, ElementsAre(-1, 0, 0, -1, 1, 1, 1, -1));
  EXPECT_EQ(pair.offsets[2], std::make_pair(6, 11));
  EXPECT_EQ(pair.label, 1);
  EXPECT_EQ(pair.example_index, 0);
  EXPECT_THAT((*features)[1].ids, ElementsAre(2, 5, 3));
  EXPECT_EQ((*features)[1].label, 0);
  EXPECT_EQ((*features)[1].example_index, 1);
  EXPECT_EQ((*features)[2].label, -1);  // unlabelled
}

TEST(FeaturizeClassificationTest, TruncatesLongestFirst) {
  text::BertTokenizer tokenizer = SmallTokenizer();
  absl::StatusOr<std::vector<Feature>> features = FeaturizeClassification(
      {Pair("a b c d e f", "g h", "x")}, tokenizer, {{"x", 0}}, /*max_seq_length=*/8);
  ASSERT_TRUE(features.ok()) << features.status();
  // 5 tokens of room: the pair keeps its 2, the longer text is cut to 3.
  EXPECT_THAT((*features)[0].ids, ElementsAre(2, 10, 11, 12, 3, 16, 17, 3));
}

TEST(FeaturizeClassificationTest, RejectsUnknownLabelsNamingTheExample) {
  text::BertTokenizer tokenizer = SmallTokenizer();
  absl::StatusOr<std::vector<Feature>> features = FeaturizeClassification(
      {Pair("a", "", "0", "2"), Pair("b", "", "2", "3")}, tokenizer, {{"0", 0}, {"1", 1}}, 16);
  ASSERT_FALSE(features.ok());
  EXPECT_EQ(features.status().message(),
            "example 1 (id \"3\"): label \"2\" has no id; the known labels are \"0\", \"1\"");
}

Example Question(std::string context, std::vector<Answer> answers) {
  Example example;
  example.id = "q";
  example.text = "q ?";
  example.text_pair = std::move(context);
  example.answers = std::move(answers);
  example.is_impossible = example.answers.empty();
  return example;
}

TEST(FeaturizeSpansTest, WindowsOverlapByTheStrideAndLabelTheAnswerWhereItFits) {
  text::BertTokenizer tokenizer = SmallTokenizer();
  // Context words at code points a=0 b=2 ... j=18; "f g" starts at 10.
  Example example = Question("a b c d e f g h i j", {{"f g", 10}});
  // [CLS] q ? [SEP] + 4 context tokens + [SEP] = 9; windows start every 4 - 2 = 2 tokens.
  absl::StatusOr<std::vector<Feature>> features = FeaturizeSpans({example}, tokenizer, 9, 2);
  ASSERT_TRUE(features.ok()) << features.status();
  ASSERT_EQ(features->size(), 4u);  // a-d, c-f, e-h, g-j
  EXPECT_THAT((*features)[0].ids, ElementsAre(2, 20, 21, 3, 10, 11, 12, 13, 3));
  EXPECT_THAT((*features)[1].ids, ElementsAre(2, 20, 21, 3, 12, 13, 14, 15, 3));
  EXPECT_THAT((*features)[1].sequence_ids, ElementsAre(-1, 0, 0, -1, 1, 1, 1, 1, -1));
  for (const Feature& feature : *features) EXPECT_EQ(feature.example_index, 0);
  // Only e-h holds all of "f g" (c-f holds "f" alone).
  EXPECT_EQ((*features)[0].start_position, 0);
  EXPECT_EQ((*features)[1].start_position, 0);
  EXPECT_EQ((*features)[1].end_position, 0);
  EXPECT_EQ((*features)[2].start_position, 5);
  EXPECT_EQ((*features)[2].end_position, 6);
  EXPECT_EQ(SpanText((*features)[2], example), "f g");
  EXPECT_EQ((*features)[3].start_position, 0);
}

TEST(FeaturizeSpansTest, AnswerOnTheLastContextTokenStaysInsideTheContext) {
  text::BertTokenizer tokenizer = SmallTokenizer();
  Example example = Question("a b c d", {{"d", 6}});
  absl::StatusOr<std::vector<Feature>> features = FeaturizeSpans({example}, tokenizer, 64, 16);
  ASSERT_TRUE(features.ok()) << features.status();
  ASSERT_EQ(features->size(), 1u);
  EXPECT_EQ((*features)[0].start_position, 7);
  EXPECT_EQ((*features)[0].end_position, 7);
}

TEST(FeaturizeSpansTest, AnswerInsideAWordCoversTheWholeToken) {
  text::BertTokenizer tokenizer = SmallTokenizer();
  // "hellos" is hello ##s; an answer of just "hello" maps to the first piece.
  Example example = Question("you hellos", {{"hello", 4}});
  absl::StatusOr<std::vector<Feature>> features = FeaturizeSpans({example}, tokenizer, 64, 16);
  ASSERT_TRUE(features.ok()) << features.status();
  EXPECT_EQ((*features)[0].start_position, 5);
  EXPECT_EQ((*features)[0].end_position, 5);
  EXPECT_EQ(SpanText((*features)[0], example), "hello");
}

TEST(FeaturizeSpansTest, ImpossibleQuestionsPointAtCls) {
  text::BertTokenizer tokenizer = SmallTokenizer();
  absl::StatusOr<std::vector<Feature>> features =
      FeaturizeSpans({Question("a b c d e f g h i j", {})}, tokenizer, 9, 2);
  ASSERT_TRUE(features.ok()) << features.status();
  ASSERT_EQ(features->size(), 4u);
  for (const Feature& feature : *features) {
    EXPECT_EQ(feature.start_position, 0);
    EXPECT_EQ(feature.end_position, 0);
  }
}

TEST(FeaturizeSpansTest, RejectsAQuestionThatLeavesNoRoomNamingTheExample) {
  text::BertTokenizer tokenizer = SmallTokenizer();
  Example example = Question("a b c", {{"a", 0}});
  example.id = "long";
  example.text = "a b c d e f g h";
  absl::StatusOr<std::vector<Feature>> features = FeaturizeSpans({example}, tokenizer, 10, 2);
  ASSERT_FALSE(features.ok());
  EXPECT_THAT(features.status().message(), HasSubstr("example 0 (id \"long\"): only_second"));
}

// Real SQuAD questions through the bert-base-uncased vocabulary of the tiny-bert fixture.
constexpr char kSquad[] = "data/squad/squad-v2-dev-sample.json";
constexpr char kQaVocabDir[] = "fixtures/tiny-bert/qa";

class SquadFeaturesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    BERTD_REQUIRE_SHARED(kSquad);
    BERTD_REQUIRE_SHARED(std::string(kQaVocabDir) + "/vocab.txt");
    DatasetSpec spec;
    spec.format = DatasetFormat::kSquadJson;
    absl::StatusOr<ParsedDataset> parsed =
        ParseDatasetFile(bertd::testing::SharedPath(kSquad), spec);
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    examples_ = std::move(parsed->examples);
    absl::StatusOr<text::BertTokenizer> tokenizer =
        text::BertTokenizer::FromDirectory(bertd::testing::SharedPath(kQaVocabDir));
    ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
    tokenizer_ = std::make_unique<text::BertTokenizer>(*std::move(tokenizer));
  }

  const Example& Find(const std::string& id) {
    for (const Example& example : examples_) {
      if (example.id == id) return example;
    }
    ADD_FAILURE() << "no question " << id;
    return examples_.front();
  }

  std::vector<Example> examples_;
  std::unique_ptr<text::BertTokenizer> tokenizer_;
};

TEST_F(SquadFeaturesTest, PositionsMapBackToTheAnswerText) {
  // 56ddde6b9a695914005b9628: "France" near the start; 56dddf4066d3e219004dad5f: "William the
  // Conqueror" at code point 1022 of a 1427-code-point context, beyond the first 128-token window.
  std::vector<Example> chosen = {Find("56ddde6b9a695914005b9628"),
                                 Find("56dddf4066d3e219004dad5f")};
  absl::StatusOr<std::vector<Feature>> features = FeaturizeSpans(chosen, *tokenizer_, 128, 32);
  ASSERT_TRUE(features.ok()) << features.status();
  std::map<int, std::vector<const Feature*>> by_example;
  for (const Feature& feature : *features) by_example[feature.example_index].push_back(&feature);
  ASSERT_EQ(by_example[0].size(), 2u);  // a 742-code-point context needs two windows
  EXPECT_EQ(SpanText(*by_example[0][0], chosen[0]), "France");

  const std::vector<const Feature*>& windows = by_example[1];
  ASSERT_GT(windows.size(), 2u);
  EXPECT_EQ(windows[0]->start_position, 0);
  EXPECT_EQ(windows[0]->end_position, 0);
  int found = 0;
  for (const Feature* window : windows) {
    EXPECT_LE(window->ids.size(), 128u);
    if (window->start_position == 0) continue;
    ++found;
    EXPECT_EQ(window->sequence_ids[window->start_position], 1);
    EXPECT_EQ(SpanText(*window, chosen[1]), "William the Conqueror");
  }
  EXPECT_GE(found, 1);
}

TEST_F(SquadFeaturesTest, EveryLabelledWindowCoversItsAnswerAndImpossibleOnesAreZero) {
  absl::StatusOr<std::vector<Feature>> features = FeaturizeSpans(examples_, *tokenizer_, 128, 32);
  ASSERT_TRUE(features.ok()) << features.status();
  std::vector<int> labelled(examples_.size(), 0);
  for (const Feature& feature : *features) {
    const Example& example = examples_[feature.example_index];
    if (example.is_impossible) {
      EXPECT_EQ(feature.start_position, 0) << example.id;
      EXPECT_EQ(feature.end_position, 0) << example.id;
      continue;
    }
    if (feature.start_position == 0) continue;
    ++labelled[feature.example_index];
    EXPECT_LE(feature.start_position, feature.end_position) << example.id;
    // Tokens are whole words or word pieces, so the span may be wider than an answer that ends
    // inside a word, never narrower.
    EXPECT_THAT(SpanText(feature, example), HasSubstr(example.answers[0].text)) << example.id;
  }
  int answerable = 0, unlabelled = 0;
  for (size_t i = 0; i < examples_.size(); ++i) {
    if (examples_[i].is_impossible) continue;
    ++answerable;
    if (labelled[i] == 0) ++unlabelled;
  }
  EXPECT_EQ(answerable, 293);
  EXPECT_EQ(unlabelled, 0);  // with a 32-token overlap every answer fits some window
}

TEST(Cmrc2018FeaturesTest, ChineseAnswersMapBackThroughOffsets) {
  constexpr char kTrain[] = "data/squad/cmrc2018-sample/train.json";
  constexpr char kVocab[] = "data/vocab/bert-base-chinese-vocab.txt";
  BERTD_REQUIRE_SHARED(kTrain);
  BERTD_REQUIRE_SHARED(kVocab);
  DatasetSpec spec;
  spec.format = DatasetFormat::kSquadJson;
  absl::StatusOr<ParsedDataset> parsed = ParseDatasetFile(bertd::testing::SharedPath(kTrain), spec);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  absl::StatusOr<text::Vocab> vocab = text::Vocab::Load(bertd::testing::SharedPath(kVocab));
  ASSERT_TRUE(vocab.ok()) << vocab.status();
  absl::StatusOr<text::BertTokenizer> tokenizer =
      text::BertTokenizer::Create(*std::move(vocab), {});
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  absl::StatusOr<std::vector<Feature>> features =
      FeaturizeSpans(parsed->examples, *tokenizer, 256, 64);
  ASSERT_TRUE(features.ok()) << features.status();
  std::vector<int> labelled(parsed->examples.size(), 0);
  int exact = 0;
  for (const Feature& feature : *features) {
    if (feature.start_position == 0) continue;
    const Example& example = parsed->examples[feature.example_index];
    ++labelled[feature.example_index];
    const std::string span = SpanText(feature, example);
    EXPECT_THAT(span, HasSubstr(example.answers[0].text)) << example.id;
    exact += span == example.answers[0].text ? 1 : 0;
  }
  for (size_t i = 0; i < labelled.size(); ++i) {
    EXPECT_GT(labelled[i], 0) << parsed->examples[i].id << " has no window holding its answer";
  }
  EXPECT_GT(exact, 0);
}

}  // namespace
}  // namespace bertd::data
