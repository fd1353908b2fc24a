// The real dataset files in shared/data load as distributed, with only a column mapping.
//
// Expected counts were computed independently of this code while writing the tests:
//   TSV:  awk -F'\t' '(NR > header) {c[$N]++} END {for (k in c) print k, c[k]}' FILE
//         (every line of these files has the same number of tab-separated fields, checked with
//          awk -F'\t' '{print NF}' | sort | uniq -c);
//   CSV:  Python's csv.reader over the file (newline='');
//   JSON: Python's json.load, walking data[].paragraphs[].qas[] and checking each answer with
//         context[answer_start:answer_start + len(text)] == text (Python indexes code points).
#include <string>

#include "data/dataset.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "test_util.h"

namespace bertd::data {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;

ColumnRef Named(std::string name) { return ColumnRef{std::move(name), -1}; }
ColumnRef At(int index) { return ColumnRef{"", index}; }

absl::StatusOr<ParsedDataset> Load(const std::string& relative, const DatasetSpec& spec) {
  return ParseDatasetFile(bertd::testing::SharedPath(relative), spec);
}

TEST(RealDataTest, CoLA) {
  constexpr char kFile[] = "data/glue/CoLA/in_domain_train.tsv";
  BERTD_REQUIRE_SHARED(kFile);
  DatasetSpec spec;
  spec.format = DatasetFormat::kTsv;
  spec.text = At(3);
  spec.label = At(1);
  spec.allowed_labels = {"0", "1"};
  absl::StatusOr<ParsedDataset> parsed = Load(kFile, spec);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->rows, 8551);
  EXPECT_THAT(parsed->label_counts, ElementsAre(Pair("0", 2528), Pair("1", 6023)));
  EXPECT_EQ(parsed->examples[0].id, "1");
  EXPECT_EQ(parsed->examples[0].text,
            "Our friends won't buy this analysis, let alone the next one we propose.");
  // Line 3057 quotes speech; the quotes are part of the sentence.
  EXPECT_EQ(parsed->examples[3056].id, "3057");
  EXPECT_EQ(parsed->examples[3056].text, "Susan whispered \"Shut up\".");
}

TEST(RealDataTest, Sst2) {
  constexpr char kTrain[] = "data/glue/SST-2/train.tsv";
  constexpr char kDev[] = "data/glue/SST-2/dev.tsv";
  BERTD_REQUIRE_SHARED(kTrain);
  BERTD_REQUIRE_SHARED(kDev);
  DatasetSpec spec;
  spec.format = DatasetFormat::kTsv;
  spec.has_header = true;
  spec.text = Named("sentence");
  spec.label = Named("label");
  spec.allowed_labels = {"0", "1"};
  absl::StatusOr<ParsedDataset> train = Load(kTrain, spec);
  ASSERT_TRUE(train.ok()) << train.status();
  EXPECT_EQ(train->rows, 67349);
  EXPECT_THAT(train->label_counts, ElementsAre(Pair("0", 29780), Pair("1", 37569)));
  EXPECT_EQ(train->examples[0].id, "2");
  EXPECT_EQ(train->examples[0].text, "when are bears bears and ");  // trailing space kept

  absl::StatusOr<ParsedDataset> dev = Load(kDev, spec);
  ASSERT_TRUE(dev.ok()) << dev.status();
  EXPECT_EQ(dev->rows, 872);
  EXPECT_THAT(dev->label_counts, ElementsAre(Pair("0", 428), Pair("1", 444)));
}

TEST(RealDataTest, MrpcWithByteOrderMarkAndLiteralQuotes) {
  constexpr char kFile[] = "data/glue/MRPC/train.tsv";
  BERTD_REQUIRE_SHARED(kFile);
  DatasetSpec spec;
  spec.format = DatasetFormat::kTsv;
  spec.has_header = true;
  spec.text = Named("#1 String");
  spec.text_pair = Named("#2 String");
  spec.label = Named("Quality");  // the first header name, behind the byte order mark
  absl::StatusOr<ParsedDataset> parsed = Load(kFile, spec);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->rows, 3668);
  EXPECT_THAT(parsed->label_counts, ElementsAre(Pair("0", 1194), Pair("1", 2474)));
  const Example& first = parsed->examples[0];
  EXPECT_EQ(first.label, "1");
  EXPECT_EQ(first.text,
            "Amrozi accused his brother, whom he called \"the witness\", of deliberately "
            "distorting his evidence.");
  EXPECT_THAT(first.text_pair, ::testing::StartsWith("Referring to him as only \"the witness\""));

  // The same columns by index.
  spec.text = At(3);
  spec.text_pair = At(4);
  spec.label = At(0);
  absl::StatusOr<ParsedDataset> by_index = Load(kFile, spec);
  ASSERT_TRUE(by_index.ok()) << by_index.status();
  EXPECT_EQ(by_index->examples[0].text, first.text);
}

TEST(RealDataTest, RteStringLabels) {
  constexpr char kFile[] = "data/glue/RTE/train.tsv";
  BERTD_REQUIRE_SHARED(kFile);
  DatasetSpec spec;
  spec.format = DatasetFormat::kTsv;
  spec.has_header = true;
  spec.text = Named("sentence1");
  spec.text_pair = Named("sentence2");
  spec.label = Named("label");
  spec.allowed_labels = {"entailment", "not_entailment"};
  absl::StatusOr<ParsedDataset> parsed = Load(kFile, spec);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->rows, 2490);
  EXPECT_THAT(parsed->label_counts,
              ElementsAre(Pair("entailment", 1249), Pair("not_entailment", 1241)));
  EXPECT_EQ(parsed->examples[0].text, "No Weapons of Mass Destruction Found in Iraq Yet.");
  EXPECT_EQ(parsed->examples[0].text_pair, "Weapons of Mass Destruction Found in Iraq.");
  EXPECT_EQ(parsed->examples[0].label, "not_entailment");
}

TEST(RealDataTest, ImdbCsv) {
  constexpr char kTrain[] = "data/imdb/train_sample.csv";
  constexpr char kVal[] = "data/imdb/val_sample.csv";
  BERTD_REQUIRE_SHARED(kTrain);
  BERTD_REQUIRE_SHARED(kVal);
  DatasetSpec spec;
  spec.format = DatasetFormat::kCsv;
  spec.has_header = true;
  spec.text = Named("text");
  spec.label = Named("label");
  spec.allowed_labels = {"0", "1"};
  absl::StatusOr<ParsedDataset> train = Load(kTrain, spec);
  ASSERT_TRUE(train.ok()) << train.status();
  EXPECT_EQ(train->rows, 100);
  EXPECT_THAT(train->label_counts, ElementsAre(Pair("0", 50), Pair("1", 50)));
  // 53 reviews hold doubled quotes and 97 hold commas (Python's csv module agrees on each text).
  EXPECT_THAT(
      train->examples[0].text,
      ::testing::StartsWith("This rather poorly named western series won an Emmy for best"));
  EXPECT_EQ(train->examples[0].text.size(), 2458u);  // all ASCII: bytes == characters
  EXPECT_THAT(train->examples.back().text,
              ::testing::EndsWith("currents in the social conscience. yuck."));
  EXPECT_EQ(train->examples.back().id, "101");

  absl::StatusOr<ParsedDataset> val = Load(kVal, spec);
  ASSERT_TRUE(val.ok()) << val.status();
  EXPECT_EQ(val->rows, 50);
  EXPECT_THAT(val->label_counts, ElementsAre(Pair("0", 32), Pair("1", 18)));
}

DatasetSpec Squad() {
  DatasetSpec spec;
  spec.format = DatasetFormat::kSquadJson;
  return spec;
}

size_t CountAnswers(const ParsedDataset& parsed) {
  size_t answers = 0;
  for (const Example& example : parsed.examples) answers += example.answers.size();
  return answers;
}

TEST(RealDataTest, SquadV2Sample) {
  constexpr char kFile[] = "data/squad/squad-v2-dev-sample.json";
  BERTD_REQUIRE_SHARED(kFile);
  absl::StatusOr<ParsedDataset> parsed = Load(kFile, Squad());
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->rows, 626);
  EXPECT_THAT(parsed->label_counts, ElementsAre(Pair("answerable", 293), Pair("impossible", 333)));
  EXPECT_EQ(CountAnswers(*parsed), 881u);
  const Example& first = parsed->examples[0];
  EXPECT_EQ(first.id, "56ddde6b9a695914005b9628");
  EXPECT_EQ(first.text, "In what country is Normandy located?");
  EXPECT_EQ(first.label, "");
  ASSERT_EQ(first.answers.size(), 4u);
  EXPECT_EQ(first.answers[0].text, "France");
  EXPECT_EQ(first.answers[0].start, 159);
  EXPECT_FALSE(first.is_impossible);
  int impossible_with_answers = 0;
  for (const Example& example : parsed->examples) {
    if (example.is_impossible && !example.answers.empty()) ++impossible_with_answers;
  }
  EXPECT_EQ(impossible_with_answers, 0);  // plausible_answers are not answers
}

TEST(RealDataTest, SquadTinyWithIntegerIds) {
  constexpr char kFile[] = "data/squad/tiny.json";
  BERTD_REQUIRE_SHARED(kFile);
  absl::StatusOr<ParsedDataset> parsed = Load(kFile, Squad());
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->rows, 2);
  EXPECT_THAT(parsed->label_counts, ElementsAre(Pair("answerable", 2)));
  EXPECT_EQ(parsed->examples[0].id, "7211011040021040393");
  EXPECT_EQ(parsed->examples[1].id, "-5782547119306399562");
  ASSERT_EQ(parsed->examples[0].answers.size(), 3u);
  EXPECT_EQ(parsed->examples[0].answers[2].text, "Carla and I live together with Abdul");
  EXPECT_EQ(parsed->examples[0].text_pair,
            "My name is Carla and I live together with Abdul in Berlin");
}

TEST(RealDataTest, Cmrc2018OffsetsAreCodePoints) {
  constexpr char kTrain[] = "data/squad/cmrc2018-sample/train.json";
  constexpr char kDev[] = "data/squad/cmrc2018-sample/dev.json";
  BERTD_REQUIRE_SHARED(kTrain);
  BERTD_REQUIRE_SHARED(kDev);
  // Every train/dev answer_start counts code points (a byte offset would land elsewhere: the
  // first answer, "1963年" at 30, starts at byte 89).
  absl::StatusOr<ParsedDataset> train = Load(kTrain, Squad());
  ASSERT_TRUE(train.ok()) << train.status();
  EXPECT_EQ(train->rows, 25);
  EXPECT_EQ(CountAnswers(*train), 25u);
  EXPECT_THAT(train->label_counts, ElementsAre(Pair("answerable", 25)));
  EXPECT_EQ(train->examples[0].id, "TRAIN_186_QUERY_0");
  EXPECT_EQ(train->examples[0].answers[0].text, "1963年");
  EXPECT_EQ(train->examples[0].answers[0].start, 30);

  absl::StatusOr<ParsedDataset> dev = Load(kDev, Squad());
  ASSERT_TRUE(dev.ok()) << dev.status();
  EXPECT_EQ(dev->rows, 3);
  EXPECT_EQ(CountAnswers(*dev), 9u);
}

TEST(RealDataTest, Cmrc2018TestHasPlaceholderAnswersAndIsRejected) {
  // CMRC 2018's test split ships without answers: each question carries FAKE_ANSWER_1..3 at
  // answer_start -1. Those are not offsets of any kind, so the file is not training data.
  constexpr char kFile[] = "data/squad/cmrc2018-sample/test.json";
  BERTD_REQUIRE_SHARED(kFile);
  absl::StatusOr<ParsedDataset> parsed = Load(kFile, Squad());
  ASSERT_FALSE(parsed.ok());
  EXPECT_THAT(parsed.status().message(),
              HasSubstr("data[0].paragraphs[0].qas[0].answers[0]: answer \"FAKE_ANSWER_1\" at "
                        "answer_start -1"));
}

TEST(RealDataTest, TsvSpecOnAnUnquotedFileRejectsARaggedMappingClearly) {
  constexpr char kFile[] = "data/glue/MRPC/test.tsv";
  BERTD_REQUIRE_SHARED(kFile);
  // MRPC's test split has no Quality column: asking for it names the columns it does have.
  DatasetSpec spec;
  spec.format = DatasetFormat::kTsv;
  spec.has_header = true;
  spec.text = Named("#1 String");
  spec.label = Named("Quality");
  absl::StatusOr<ParsedDataset> parsed = Load(kFile, spec);
  ASSERT_FALSE(parsed.ok());
  EXPECT_THAT(parsed.status().message(),
              HasSubstr("unknown label column \"Quality\"; the header's columns are \"index\", "
                        "\"#1 ID\", \"#2 ID\", \"#1 String\", \"#2 String\""));
}

}  // namespace
}  // namespace bertd::data
