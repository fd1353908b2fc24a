#include "data/dataset.h"

#include <filesystem>
#include <fstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "test_util.h"

namespace bertd::data {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;

DatasetSpec Tsv(bool header, ColumnRef text, std::optional<ColumnRef> label = std::nullopt) {
  DatasetSpec spec;
  spec.format = DatasetFormat::kTsv;
  spec.has_header = header;
  spec.text = std::move(text);
  spec.label = std::move(label);
  return spec;
}

DatasetSpec Csv(ColumnRef text, std::optional<ColumnRef> label) {
  DatasetSpec spec = Tsv(/*header=*/true, std::move(text), std::move(label));
  spec.format = DatasetFormat::kCsv;
  return spec;
}

ColumnRef Named(std::string name) { return ColumnRef{std::move(name), -1}; }
ColumnRef At(int index) { return ColumnRef{"", index}; }

// The error message of a parse that must fail with INVALID_ARGUMENT.
std::string ErrorOf(absl::string_view bytes, const DatasetSpec& spec) {
  absl::StatusOr<ParsedDataset> parsed = ParseDatasetBytes(bytes, spec);
  EXPECT_FALSE(parsed.ok()) << "parsed " << parsed->rows << " rows of:\n" << bytes;
  if (parsed.ok()) return "";
  EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument) << parsed.status();
  return std::string(parsed.status().message());
}

TEST(DatasetFormatTest, ParsesTheFourNames) {
  EXPECT_EQ(*ParseDatasetFormat("tsv"), DatasetFormat::kTsv);
  EXPECT_EQ(*ParseDatasetFormat("csv"), DatasetFormat::kCsv);
  EXPECT_EQ(*ParseDatasetFormat("jsonl"), DatasetFormat::kJsonl);
  EXPECT_EQ(*ParseDatasetFormat("squad_json"), DatasetFormat::kSquadJson);
  absl::StatusOr<DatasetFormat> bad = ParseDatasetFormat("parquet");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(), HasSubstr("\"parquet\""));
  EXPECT_THAT(bad.status().message(), HasSubstr("tsv, csv, jsonl, squad_json or text"));
  EXPECT_EQ(DatasetFormatName(DatasetFormat::kSquadJson), "squad_json");
  EXPECT_EQ(*ParseDatasetFormat("text"), DatasetFormat::kText);
  EXPECT_EQ(DatasetFormatName(DatasetFormat::kText), "text");
}

TEST(TsvTest, HeaderNamesIdsAndLabelCounts) {
  DatasetSpec spec = Tsv(true, Named("sentence"), Named("label"));
  absl::StatusOr<ParsedDataset> parsed =
      ParseDatasetBytes("sentence\tlabel\ngood film\t1\nbad film\t0\nfine\t1\n", spec);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  ASSERT_EQ(parsed->rows, 3);
  ASSERT_EQ(parsed->examples.size(), 3u);
  EXPECT_EQ(parsed->examples[0].id, "2");  // the file line the row is on
  EXPECT_EQ(parsed->examples[0].text, "good film");
  EXPECT_EQ(parsed->examples[0].label, "1");
  EXPECT_EQ(parsed->examples[2].id, "4");
  EXPECT_THAT(parsed->label_counts, ElementsAre(Pair("0", 1), Pair("1", 2)));
}

TEST(TsvTest, QuotesAreLiteralAndCrlfBomAndTrailingEmptyLinesAreFine) {
  DatasetSpec spec = Tsv(true, Named("#1 String"), Named("Quality"));
  spec.text_pair = Named("#2 String");
  const std::string bytes =
      "\xEF\xBB\xBFQuality\t#1 String\t#2 String\r\n"
      "1\tHe said \"hi\tThe \"witness\" spoke\r\n"
      "0\t\"quoted whole\"\tx\r\n"
      "\r\n\n";
  absl::StatusOr<ParsedDataset> parsed = ParseDatasetBytes(bytes, spec);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  ASSERT_EQ(parsed->rows, 2);
  EXPECT_EQ(parsed->examples[0].text, "He said \"hi");
  EXPECT_EQ(parsed->examples[0].text_pair, "The \"witness\" spoke");
  EXPECT_EQ(parsed->examples[1].text, "\"quoted whole\"");
  EXPECT_EQ(parsed->examples[1].label, "0");
}

TEST(TsvTest, ColumnsByIndexWithoutHeader) {
  // CoLA's layout: source, label, original label (empty), sentence.
  DatasetSpec spec = Tsv(false, At(3), At(1));
  absl::StatusOr<ParsedDataset> parsed =
      ParseDatasetBytes("gj04\t1\t\tOur friends won't buy this.\ngj04\t0\t*\tThey drank.\n", spec);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  ASSERT_EQ(parsed->rows, 2);
  EXPECT_EQ(parsed->examples[0].id, "1");
  EXPECT_EQ(parsed->examples[0].text, "Our friends won't buy this.");
  EXPECT_EQ(parsed->examples[1].label, "0");
}

TEST(TsvTest, UnlabelledWhenNoLabelColumn) {
  absl::StatusOr<ParsedDataset> parsed = ParseDatasetBytes("a\nb\n", Tsv(false, At(0)));
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->rows, 2);
  EXPECT_EQ(parsed->examples[1].label, "");
  EXPECT_TRUE(parsed->label_counts.empty());
}

TEST(TsvTest, RejectsRaggedRows) {
  DatasetSpec spec = Tsv(true, Named("b"), Named("d"));
  EXPECT_EQ(ErrorOf("a\tb\tc\td\n1\t2\t3\t4\n1\t2\t3\n", spec),
            "line 3: expected 4 columns (as in the header), got 3");
  EXPECT_EQ(ErrorOf("x\t1\ny\t0\textra\n", Tsv(false, At(0), At(1))),
            "line 2: expected 2 columns (as on line 1), got 3");
}

TEST(TsvTest, RejectsMissingLabel) {
  EXPECT_EQ(
      ErrorOf("sentence\tlabel\ngood\t1\nbad\t \n", Tsv(true, Named("sentence"), Named("label"))),
      "line 3, column \"label\" (index 1): missing label");
}

TEST(TsvTest, RejectsLabelsOutsideTheAllowedSet) {
  DatasetSpec spec = Tsv(true, Named("sentence"), Named("label"));
  spec.allowed_labels = {"0", "1"};
  EXPECT_EQ(ErrorOf("sentence\tlabel\ngood\t1\nbad\t2\n", spec),
            "line 3, column \"label\" (index 1): label \"2\" is not one of the allowed labels "
            "(\"0\", \"1\")");
}

TEST(TsvTest, RejectsEmptyText) {
  DatasetSpec spec = Tsv(false, At(1), At(0));
  spec.text_pair = At(2);
  EXPECT_EQ(ErrorOf("1\tfine\tok\n0\t  \tok\n", spec), "line 2, column index 1: empty text");
  EXPECT_EQ(ErrorOf("1\tfine\tok\n0\tfine\t\n", spec), "line 2, column index 2: empty text");
}

TEST(TsvTest, RejectsInvalidUtf8WithLineAndByteColumn) {
  EXPECT_EQ(ErrorOf("ok\t1\nbad \xC3\x28 text\t0\n", Tsv(false, At(0), At(1))),
            "line 2, byte column 5: invalid UTF-8 (byte 0xc3)");
  // Columns count from the start of the file, byte order mark included.
  EXPECT_EQ(ErrorOf("\xEF\xBB\xBFh\xFF\tlabel\n", Tsv(true, At(0), At(1))),
            "line 1, byte column 5: invalid UTF-8 (byte 0xff)");
}

TEST(TsvTest, RejectsUnknownColumnNamesListingTheHeader) {
  std::string error = ErrorOf("sentence\tlabel\nx\t1\n", Tsv(true, Named("text"), Named("label")));
  EXPECT_EQ(error,
            "unknown text column \"text\"; the header's columns are \"sentence\", \"label\"");
  EXPECT_THAT(ErrorOf("sentence\tlabel\nx\t1\n", Tsv(false, Named("sentence"))),
              HasSubstr("no header"));
  EXPECT_THAT(ErrorOf("x\tx\n1\t2\n", Tsv(true, Named("x"))), HasSubstr("ambiguous"));
}

TEST(TsvTest, RejectsColumnIndexesOutOfRange) {
  EXPECT_EQ(ErrorOf("a\t1\n", Tsv(false, At(0), At(2))),
            "the label column index 2 is out of range: line 1 has 2 columns (indexes 0 to 1)");
  EXPECT_EQ(ErrorOf("s\tl\na\t1\n", Tsv(true, At(5))),
            "the text column index 5 is out of range: the header has 2 columns (indexes 0 to 1)");
  EXPECT_THAT(ErrorOf("a\t1\n", Tsv(false, At(-1))), HasSubstr("needs a name or a 0-based index"));
}

TEST(TsvTest, RejectsEmptyLinesInTheMiddleAndEmptyData) {
  EXPECT_EQ(ErrorOf("a\t1\n\nb\t0\n", Tsv(false, At(0), At(1))),
            "line 2: empty line (only lines at the end may be empty)");
  EXPECT_EQ(ErrorOf("sentence\tlabel\n\n", Tsv(true, At(0), At(1))),
            "the dataset has a header but no rows");
  EXPECT_EQ(ErrorOf("", Tsv(false, At(0))), "the dataset is empty");
}

TEST(TsvTest, RejectsASpecWithoutText) {
  DatasetSpec spec;
  EXPECT_THAT(ErrorOf("a\n", spec), HasSubstr("does not say which column holds the text"));
}

TEST(TsvTest, RejectsDataOverMaxBytes) {
  DatasetSpec spec = Tsv(false, At(0));
  spec.max_bytes = 10;
  EXPECT_EQ(ErrorOf("0123456789\n", spec), "the dataset is 11 bytes, over the limit of 10 bytes");
  spec.max_bytes = 11;
  EXPECT_TRUE(ParseDatasetBytes("0123456789\n", spec).ok());
}

TEST(CsvTest, QuotedFieldsWithCommasQuotesAndLineBreaks) {
  const std::string bytes =
      "label,text\r\n"
      "1,\"Great, really \"\"great\"\" film\"\r\n"
      "0,\"line one\nline two\r\nline three\"\n"
      "1,plain \"inner\" quote\n"
      "0,\"\"\"\"\n"
      "\n";
  absl::StatusOr<ParsedDataset> parsed =
      ParseDatasetBytes(bytes, Csv(Named("text"), Named("label")));
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  ASSERT_EQ(parsed->rows, 4);
  EXPECT_EQ(parsed->examples[0].text, "Great, really \"great\" film");
  EXPECT_EQ(parsed->examples[1].text, "line one\nline two\r\nline three");
  EXPECT_EQ(parsed->examples[1].id, "3");
  EXPECT_EQ(parsed->examples[2].id, "6");  // the record above spans lines 3 to 5
  EXPECT_EQ(parsed->examples[2].text, "plain \"inner\" quote");
  EXPECT_EQ(parsed->examples[3].text, "\"");
  EXPECT_THAT(parsed->label_counts, ElementsAre(Pair("0", 2), Pair("1", 2)));
}

TEST(CsvTest, EmptyFieldsAndTrailingComma) {
  DatasetSpec spec = Csv(Named("text"), Named("label"));
  spec.has_header = true;
  absl::StatusOr<ParsedDataset> parsed = ParseDatasetBytes("text,label,\nhi,1,\n", spec);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->examples[0].text, "hi");
  EXPECT_EQ(ErrorOf("text,label,note\nhi,1\n", spec),
            "line 2: expected 3 columns (as in the header), got 2");
}

TEST(CsvTest, RejectsUnterminatedQuoteNamingWhereItOpened) {
  EXPECT_EQ(ErrorOf("label,text\n1,fine\n0,\"never\nclosed, at all\n1,x\n",
                    Csv(Named("text"), Named("label"))),
            "line 3: unterminated quoted field (the quote opening at byte column 3 is never "
            "closed)");
}

TEST(CsvTest, RejectsTextAfterAClosingQuote) {
  EXPECT_THAT(ErrorOf("label,text\n1,\"a\"b\n", Csv(Named("text"), Named("label"))),
              HasSubstr("line 2, byte column 6: unexpected \"b\" after the closing quote"));
}

TEST(CsvTest, RejectsEmptyTextInAQuotedField) {
  EXPECT_EQ(ErrorOf("label,text\n1,\"\"\n", Csv(Named("text"), Named("label"))),
            "line 2, column \"text\" (index 1): empty text");
}

DatasetSpec Jsonl() {
  DatasetSpec spec;
  spec.format = DatasetFormat::kJsonl;
  spec.text = Named("sentence1");
  spec.text_pair = Named("sentence2");
  spec.label = Named("label");
  return spec;
}

TEST(JsonlTest, KeysPerTheColumnMapping) {
  const std::string bytes =
      "{\"sentence1\": \"a\", \"sentence2\": \"b\", \"label\": \"entailment\"}\r\n"
      "{\"label\": 1, \"sentence1\": \"c \\\"q\\\"\", \"sentence2\": \"d\", \"other\": [1]}\n"
      "  \n";
  absl::StatusOr<ParsedDataset> parsed = ParseDatasetBytes(bytes, Jsonl());
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  ASSERT_EQ(parsed->rows, 2);
  EXPECT_EQ(parsed->examples[1].id, "2");
  EXPECT_EQ(parsed->examples[1].text, "c \"q\"");
  EXPECT_EQ(parsed->examples[1].text_pair, "d");
  EXPECT_EQ(parsed->examples[1].label, "1");  // integer labels read as their digits
  EXPECT_THAT(parsed->label_counts, ElementsAre(Pair("1", 1), Pair("entailment", 1)));
}

TEST(JsonlTest, ListLabelsAreMultiLabelAndScoresAreNumbers) {
  const std::string bytes =
      "{\"sentence1\": \"a\", \"sentence2\": \"b\", \"label\": [\"sports\", \"politics\", \"sports\"]}\n"
      "{\"sentence1\": \"c\", \"sentence2\": \"d\", \"label\": []}\n"
      "{\"sentence1\": \"e\", \"sentence2\": \"f\", \"label\": [3]}\n"
      "{\"sentence1\": \"g\", \"sentence2\": \"h\", \"label\": 3.8}\n";
  absl::StatusOr<ParsedDataset> parsed = ParseDatasetBytes(bytes, Jsonl());
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_TRUE(parsed->examples[0].multi_label);
  EXPECT_THAT(parsed->examples[0].labels, ElementsAre("sports", "politics"));  // once each
  EXPECT_TRUE(parsed->examples[1].multi_label);
  EXPECT_TRUE(parsed->examples[1].labels.empty());
  EXPECT_THAT(parsed->examples[2].labels, ElementsAre("3"));
  EXPECT_FALSE(parsed->examples[3].multi_label);
  EXPECT_EQ(parsed->examples[3].label, "3.8");  // an STS-B score
  EXPECT_THAT(parsed->label_counts,
              ElementsAre(Pair("3", 1), Pair("3.8", 1), Pair("politics", 1), Pair("sports", 1)));
  EXPECT_EQ(ErrorOf("{\"sentence1\": \"a\", \"sentence2\": \"b\", \"label\": [\"x\", {}]}\n", Jsonl()),
            "line 1, key \"label\"[1]: expected a string or integer label, got object");
  DatasetSpec allowed = Jsonl();
  allowed.allowed_labels = {"x"};
  EXPECT_EQ(ErrorOf("{\"sentence1\": \"a\", \"sentence2\": \"b\", \"label\": [\"x\", \"y\"]}\n", allowed),
            "line 1, key \"label\"[1]: label \"y\" is not one of the allowed labels (\"x\")");
}

TEST(JsonlTest, RejectsBadLines) {
  const std::string ok = "{\"sentence1\": \"a\", \"sentence2\": \"b\", \"label\": \"x\"}\n";
  EXPECT_EQ(ErrorOf(ok + "{\"sentence1\": \"a\", \"sentence2\": \"b\"}\n", Jsonl()),
            "line 2, key \"label\": missing label");
  EXPECT_EQ(
      ErrorOf(ok + "{\"sentence1\": \"a\", \"sentence2\": \"b\", \"label\": null}\n", Jsonl()),
      "line 2, key \"label\": missing label");
  EXPECT_EQ(ErrorOf(ok + "{\"sentence2\": \"b\", \"label\": \"x\"}\n", Jsonl()),
            "line 2, key \"sentence1\": missing text");
  EXPECT_EQ(
      ErrorOf(ok + "{\"sentence1\": \"\", \"sentence2\": \"b\", \"label\": \"x\"}\n", Jsonl()),
      "line 2, key \"sentence1\": empty text");
  EXPECT_EQ(ErrorOf(ok + "{\"sentence1\": 3, \"sentence2\": \"b\", \"label\": \"x\"}\n", Jsonl()),
            "line 2, key \"sentence1\": expected a string, got number");
  EXPECT_THAT(ErrorOf(ok + "{\"sentence1\": \"a\",\n", Jsonl()),
              HasSubstr("line 2, byte column 19: invalid JSON: syntax error"));
  EXPECT_EQ(ErrorOf(ok + "[1, 2]\n", Jsonl()), "line 2: expected a JSON object, got array");
  // Valid JSON syntax beyond double's range (a fuzzer finding: it used to escape as an exception).
  EXPECT_EQ(ErrorOf(ok + "{\"sentence1\": \"a\", \"sentence2\": \"b\", \"label\": 1e309}\n", Jsonl()),
            "line 2: invalid JSON: number overflow parsing '1e309'");
  EXPECT_EQ(ErrorOf(ok + "\n" + ok, Jsonl()),
            "line 2: empty line (only lines at the end may be empty)");
  DatasetSpec allowed = Jsonl();
  allowed.allowed_labels = {"y"};
  EXPECT_EQ(ErrorOf(ok, allowed),
            "line 1, key \"label\": label \"x\" is not one of the allowed labels (\"y\")");
  DatasetSpec by_index = Jsonl();
  by_index.label = At(2);
  EXPECT_THAT(ErrorOf(ok, by_index), HasSubstr("must be named by its key"));
}

DatasetSpec Squad() {
  DatasetSpec spec;
  spec.format = DatasetFormat::kSquadJson;
  return spec;
}

// One paragraph with the given context and qas (JSON text).
std::string SquadWith(const std::string& context, const std::string& qas) {
  return "{\"version\": \"v2.0\", \"data\": [{\"title\": \"t\", \"paragraphs\": [{\"context\": \"" +
         context + "\", \"qas\": [" + qas + "]}]}]}";
}

TEST(SquadTest, ParsesQuestionsAnswersAndImpossibleOnes) {
  // answer_start counts code points: "café" is 4 of them but 5 bytes.
  const std::string json = SquadWith(
      "Un café au lait, s'il vous plaît.",
      R"({"id": "q1", "question": "What drink?", "answers": [{"text": "café au lait", "answer_start": 3},
                                                            {"text": "lait", "answer_start": 11}]},
         {"id": "q2", "question": "Who?", "answers": [], "plausible_answers": [], "is_impossible": true},
         {"id": 123456789012345678, "question": "Please?", "answers": [{"text": "plaît", "answer_start": 27}], "is_impossible": false})");
  absl::StatusOr<ParsedDataset> parsed = ParseDatasetBytes(json, Squad());
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  ASSERT_EQ(parsed->rows, 3);
  const Example& first = parsed->examples[0];
  EXPECT_EQ(first.id, "q1");
  EXPECT_EQ(first.text, "What drink?");
  EXPECT_EQ(first.text_pair, "Un café au lait, s'il vous plaît.");
  EXPECT_EQ(first.label, "");
  ASSERT_EQ(first.answers.size(), 2u);
  EXPECT_EQ(first.answers[1].text, "lait");
  EXPECT_EQ(first.answers[1].start, 11);
  EXPECT_FALSE(first.is_impossible);
  EXPECT_TRUE(parsed->examples[1].is_impossible);
  EXPECT_TRUE(parsed->examples[1].answers.empty());
  EXPECT_EQ(parsed->examples[2].id, "123456789012345678");
  EXPECT_THAT(parsed->label_counts, ElementsAre(Pair("answerable", 2), Pair("impossible", 1)));
}

TEST(SquadTest, RejectsAnswersThatDoNotMatchTheContextShowingBoth) {
  const std::string json = SquadWith(
      "My name is Carla",
      R"({"id": "a", "question": "Who?", "answers": [{"text": "Carla", "answer_start": 10}]})");
  EXPECT_EQ(ErrorOf(json, Squad()),
            "data[0].paragraphs[0].qas[0].answers[0]: answer text \"Carla\" does not match the "
            "context at answer_start 10 (code points), which reads \" Carl\"");
}

TEST(SquadTest, RejectsAnswersOutsideTheContext) {
  EXPECT_EQ(
      ErrorOf(
          SquadWith(
              "short",
              R"({"id": "a", "question": "q", "answers": [{"text": "FAKE_ANSWER_1", "answer_start": -1}]})"),
          Squad()),
      "data[0].paragraphs[0].qas[0].answers[0]: answer \"FAKE_ANSWER_1\" at answer_start -1 "
      "(13 code points) does not fit in the context of 5 code points");
}

TEST(SquadTest, RejectsStructuralProblemsWithTheirJsonPath) {
  const std::string answer = R"("answers": [{"text": "x", "answer_start": 0}])";
  EXPECT_EQ(
      ErrorOf(
          SquadWith(
              "x",
              R"({"id": "a", "question": "q", "answers": [{"text": "x", "answer_start": 0}], "is_impossible": true})"),
          Squad()),
      "data[0].paragraphs[0].qas[0]: is_impossible is true but the question has 1 answer(s)");
  EXPECT_EQ(ErrorOf(SquadWith("x", R"({"id": "a", "question": "q", )" + answer + "}, " +
                                       R"({"id": "a", "question": "q2", )" + answer + "}"),
                    Squad()),
            "data[0].paragraphs[0].qas[1]: duplicate question id \"a\" (also at "
            "data[0].paragraphs[0].qas[0])");
  EXPECT_EQ(ErrorOf(SquadWith("x", R"({"id": "a", "question": "q"})"), Squad()),
            "data[0].paragraphs[0].qas[0]: missing \"answers\"");
  EXPECT_EQ(ErrorOf(SquadWith("x", R"({"id": "a", "question": " ", )" + answer + "}"), Squad()),
            "data[0].paragraphs[0].qas[0].question: empty question");
  EXPECT_EQ(ErrorOf(SquadWith("x", R"({"question": "q", )" + answer + "}"), Squad()),
            "data[0].paragraphs[0].qas[0]: missing \"id\"");
  EXPECT_EQ(
      ErrorOf(
          SquadWith(
              "x",
              R"({"id": "a", "question": "q", "answers": [{"text": "x", "answer_start": "0"}]})"),
          Squad()),
      "data[0].paragraphs[0].qas[0].answers[0].answer_start: expected integer, got string");
  EXPECT_EQ(
      ErrorOf(
          SquadWith(
              "x",
              R"({"id": "a", "question": "q", "answers": [{"text": "x", "answer_start": 0.5}]})"),
          Squad()),
      "data[0].paragraphs[0].qas[0].answers[0].answer_start: expected integer, got 0.5");
  EXPECT_EQ(ErrorOf(SquadWith("", R"({"id": "a", "question": "q", )" + answer + "}"), Squad()),
            "data[0].paragraphs[0].context: empty context");
  EXPECT_EQ(ErrorOf(R"({"data": [{"paragraphs": {}}]})", Squad()),
            "data[0].paragraphs: expected array, got object");
  EXPECT_EQ(ErrorOf(R"({"version": "1.1"})", Squad()), "$: missing \"data\"");
}

TEST(SquadTest, RejectsInvalidJsonWithItsPosition) {
  EXPECT_THAT(ErrorOf("{\"data\": [\n  {\"paragraphs\": [}\n]}", Squad()),
              HasSubstr("line 2, byte column 19: invalid JSON: syntax error while parsing value - "
                        "unexpected '}'"));
  // Found by the dataset_squad_json fuzzer: valid syntax, a number beyond double's range.
  EXPECT_EQ(ErrorOf(R"({"version": 1e309, "data": []})", Squad()),
            "invalid JSON: number overflow parsing '1e309'");
}

// The security issue's crash: a question id of 400 KB of nested arrays overflowed the stack when the
// error message serialized it back. Depth is now refused at parse time, and messages only name the
// type of a wrong value.
TEST(SquadTest, RefusesDeepNestingAndNeverEchoesAWrongId) {
  const int n = 400 * 1024;
  const std::string deep = R"({"data": [{"paragraphs": [{"context": "c", "qas": [{"id": )" +
                           std::string(n, '[') + std::string(n, ']') + "}]}]}]}";
  EXPECT_EQ(ErrorOf(deep, Squad()),
            "line 1, byte column 116: JSON nested deeper than 64 levels (--max_json_depth)");
  const std::string shallow =
      R"({"data": [{"paragraphs": [{"context": "c", "qas": [{"question": "q", "id": [[1, 2]]}]}]}]})";
  EXPECT_EQ(ErrorOf(shallow, Squad()),
            "data[0].paragraphs[0].qas[0].id: expected a non-empty string or an integer, got array");
}

TEST(JsonlTest, RefusesDeepNestingOnItsLine) {
  const std::string ok = "{\"sentence1\": \"a\", \"sentence2\": \"b\", \"label\": \"x\"}\n";
  EXPECT_EQ(ErrorOf(ok + "{\"label\": " + std::string(100000, '[') + "}\n", Jsonl()),
            "line 2, byte column 74: JSON nested deeper than 64 levels (--max_json_depth)");
}

TEST(ParseDatasetFileTest, PrefixesErrorsWithThePathAndChecksSizeFirst) {
  const std::string dir = bertd::testing::MakeTempDir("dataset");
  const std::string path = dir + "/train.tsv";
  {
    std::ofstream out(path, std::ios::binary);
    out << "sentence\tlabel\nok\t1\nragged\n";
  }
  DatasetSpec spec = Tsv(true, Named("sentence"), Named("label"));
  absl::StatusOr<ParsedDataset> parsed = ParseDatasetFile(path, spec);
  ASSERT_FALSE(parsed.ok());
  EXPECT_EQ(parsed.status().message(),
            path + ": line 3: expected 2 columns (as in the header), got 1");

  spec.max_bytes = 5;
  parsed = ParseDatasetFile(path, spec);
  ASSERT_FALSE(parsed.ok());
  EXPECT_EQ(parsed.status().message(),
            path + ": the dataset is 27 bytes, over the limit of 5 bytes");

  parsed = ParseDatasetFile(dir + "/missing.tsv", spec);
  EXPECT_EQ(parsed.status().code(), absl::StatusCode::kNotFound);
  std::filesystem::remove_all(dir);
}

DatasetSpec Text() {
  DatasetSpec spec;
  spec.format = DatasetFormat::kText;
  return spec;
}

TEST(TextDatasetTest, OneExamplePerLineWithoutBlankLines) {
  absl::StatusOr<ParsedDataset> parsed =
      ParseDatasetBytes("\xEF\xBB\xBF" "First doc. Two sentences.\r\nSecond doc\n\n", Text());
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  ASSERT_EQ(parsed->rows, 2);
  EXPECT_EQ(parsed->examples[0].id, "1");
  EXPECT_EQ(parsed->examples[0].text, "First doc. Two sentences.");
  EXPECT_EQ(parsed->examples[1].id, "2");
  EXPECT_EQ(parsed->examples[1].text, "Second doc");
  EXPECT_TRUE(parsed->examples[1].label.empty());
  EXPECT_TRUE(parsed->label_counts.empty());
}

TEST(TextDatasetTest, BlankLinesSeparateDocumentsWhoseLinesAreJoined) {
  absl::StatusOr<ParsedDataset> parsed =
      ParseDatasetBytes("\nline one\r\nline two\n\n\n第二篇。\n第二行\n", Text());
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  ASSERT_EQ(parsed->rows, 2);
  EXPECT_EQ(parsed->examples[0].id, "2");
  EXPECT_EQ(parsed->examples[0].text, "line one\nline two");
  EXPECT_EQ(parsed->examples[1].id, "6");
  EXPECT_EQ(parsed->examples[1].text, "第二篇。\n第二行");
}

TEST(TextDatasetTest, EmptyCorporaAndBadUtf8AreRejected) {
  EXPECT_THAT(ErrorOf("", Text()), HasSubstr("no documents"));
  EXPECT_THAT(ErrorOf("\n  \n\t\n", Text()), HasSubstr("no documents"));
  EXPECT_THAT(ErrorOf("fine\nbad \xFF here\n", Text()), HasSubstr("line 2, byte column 5"));
}

TEST(TextDatasetTest, ReadsTheChineseEssay) {
  BERTD_REQUIRE_SHARED("data/text/beiying.txt");
  absl::StatusOr<ParsedDataset> parsed =
      ParseDatasetFile(bertd::testing::SharedPath("data/text/beiying.txt"), Text());
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  // Ten lines, no blank line between them: ten documents, the first being the title.
  ASSERT_EQ(parsed->rows, 10);
  EXPECT_EQ(parsed->examples[0].text, "背影");
  EXPECT_EQ(parsed->examples[9].id, "10");
}

}  // namespace
}  // namespace bertd::data
