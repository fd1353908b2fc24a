// Runs bertctl against a real bertd serving the tiny fixture models and checks what a user sees:
// output, JSON that parses, exit codes and error messages.
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "absl/strings/str_split.h"
#include "bertctl_process.h"
#include "bertd_process.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "test_util.h"

namespace bertd::testing {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

class BertctlTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!SharedFileExists("fixtures/tiny-bert/golden.json")) return;
    data_dir_ = new std::string(MakeTempDir("bertctl-e2e"));
    const fs::path models = fs::path(*data_dir_) / "models";
    for (const char* name : {"classifier", "pretraining", "qa"}) {
      InstallFixtureModel(name, models.string(), name);
    }
    server_ = new BertdProcess(*data_dir_);
    ASSERT_TRUE(server_->WaitUntilServing()) << server_->log();
  }

  static void TearDownTestSuite() {
    if (server_ != nullptr) {
      server_->Terminate();
      delete server_;
      server_ = nullptr;
      fs::remove_all(*data_dir_);
    }
  }

  void SetUp() override { BERTD_REQUIRE_SHARED("fixtures/tiny-bert/golden.json"); }

  // bertctl --server <the test server> args...
  static BertctlResult Run(std::vector<std::string> args, const std::string& input = "") {
    args.insert(args.begin(), "--server=127.0.0.1:" + std::to_string(server_->grpc_port()));
    return RunBertctl(args, input);
  }

  static nlohmann::json Json(const BertctlResult& result) {
    nlohmann::json json = nlohmann::json::parse(result.out, nullptr, false);
    EXPECT_FALSE(json.is_discarded()) << "not JSON: " << result.out;
    return json;
  }

  static std::string* data_dir_;
  static BertdProcess* server_;
};

std::string* BertctlTest::data_dir_ = nullptr;
BertdProcess* BertctlTest::server_ = nullptr;

TEST_F(BertctlTest, ClassifyPrintsATableAndJson) {
  BertctlResult table = Run({"classify", "a gripping, funny film", "--model", "classifier"});
  ASSERT_EQ(table.exit_code, 0) << table.err;
  EXPECT_THAT(table.out, HasSubstr("LABEL"));
  EXPECT_THAT(table.out, HasSubstr("positive"));
  BertctlResult json = Run({"classify", "a gripping, funny film", "--pair", "yes", "--model", "classifier",
                     "--output", "json"});
  ASSERT_EQ(json.exit_code, 0) << json.err;
  nlohmann::json parsed = Json(json);
  EXPECT_EQ(parsed["modelVersion"], "classifier@1");
  ASSERT_EQ(parsed["results"].size(), 1u);
  EXPECT_EQ(parsed["results"][0]["scores"].size(), 3u);
}

TEST_F(BertctlTest, NspQaFillMaskAndTokenize) {
  BertctlResult nsp = Run({"nsp", "He went out.", "It was raining.", "-m", "pretraining", "-o", "json"});
  ASSERT_EQ(nsp.exit_code, 0) << nsp.err;
  EXPECT_TRUE(Json(nsp)["results"][0].contains("isNext"));
  EXPECT_THAT(Run({"nsp", "He went out.", "It was raining.", "-m", "pretraining"}).out,
              HasSubstr("PROBABILITY"));

  const std::string context = "Alice met Bob in Paris last spring.";
  BertctlResult qa = Run({"qa", "--question", "Where did they meet?", "--context", context, "--top-k", "2",
                   "--model", "qa", "-o", "json"});
  ASSERT_EQ(qa.exit_code, 0) << qa.err;
  nlohmann::json spans = Json(qa)["spans"];
  ASSERT_EQ(spans.size(), 2u);
  const int start = spans[0]["start"], end = spans[0]["end"];
  EXPECT_EQ(spans[0]["text"], context.substr(start, end - start));  // ASCII: code points = bytes
  const std::string context_file = MakeTempDir("bertctl-qa") + "/context.txt";
  std::ofstream(context_file) << context;
  BertctlResult qa_table = Run({"qa", "-q", "Where?", "--context-file", context_file, "-m", "qa"});
  ASSERT_EQ(qa_table.exit_code, 0) << qa_table.err;
  EXPECT_THAT(qa_table.out, HasSubstr("ANSWER"));

  BertctlResult mask = Run({"fill-mask", "the capital of france is [MASK].", "-m", "pretraining",
                     "--top-k", "3", "-o", "json"});
  ASSERT_EQ(mask.exit_code, 0) << mask.err;
  EXPECT_EQ(Json(mask)["masks"][0]["predictions"].size(), 3u);

  BertctlResult tokens = Run({"tokenize", "hello world", "-m", "classifier", "-o", "json"});
  ASSERT_EQ(tokens.exit_code, 0) << tokens.err;
  EXPECT_EQ(Json(tokens)["results"][0]["tokens"],
            nlohmann::json::parse(R"(["[CLS]", "hello", "world", "[SEP]"])"));
  EXPECT_THAT(Run({"tokenize", "hello world", "-m", "classifier"}).out, HasSubstr("[CLS]"));
}

TEST_F(BertctlTest, StdinBatchModeWritesOneJsonLinePerInput) {
  std::string input;
  for (int i = 0; i < 70; ++i) input += "sentence number " + std::to_string(i) + "\n";
  input += R"({"text": "a pair", "text_pair": "of texts"})" "\n";
  BertctlResult result = Run({"classify", "--model", "classifier"}, input);
  ASSERT_EQ(result.exit_code, 0) << result.err;
  std::vector<std::string> lines = absl::StrSplit(result.out, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 71u);  // three RPCs of at most 32
  for (const auto& line : lines) EXPECT_TRUE(nlohmann::json::parse(line).contains("label")) << line;

  BertctlResult nsp = Run({"nsp", "-", "-m", "pretraining"}, "first one\tsecond one\nA\tB\n");
  ASSERT_EQ(nsp.exit_code, 0) << nsp.err;
  EXPECT_EQ(std::vector<std::string>(absl::StrSplit(nsp.out, '\n', absl::SkipEmpty())).size(), 2u);

  BertctlResult bad = Run({"classify", "-m", "classifier"}, "fine\n{not json\n");
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_THAT(bad.err, HasSubstr("stdin line 2"));
}

TEST_F(BertctlTest, ExitCodesAndMessages) {
  BertctlResult unknown = Run({"classify", "text", "--model", "no-such-model"});
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_THAT(unknown.err, HasSubstr("no-such-model"));

  EXPECT_EQ(Run({"classify", "text"}).exit_code, 2);  // --model missing
  EXPECT_EQ(Run({"frobnicate"}).exit_code, 2);
  EXPECT_EQ(Run({"classify", "x", "-m", "classifier", "--output", "yaml"}).exit_code, 2);
  EXPECT_EQ(Run({"--help"}).exit_code, 0);

  BertctlResult down = RunBertctl({"--server=127.0.0.1:" + std::to_string(PickFreePort()), "--timeout=5",
                            "classify", "x", "-m", "classifier"});
  EXPECT_EQ(down.exit_code, 1);
  EXPECT_THAT(down.err, HasSubstr("cannot reach bertd at 127.0.0.1:"));
  EXPECT_THAT(down.err, HasSubstr("set --server or BERTD_ADDR"));

  BertctlResult bad_set = Run({"submit-job", "--task", "sequence_classification", "--train", "x.tsv",
                        "--base-model", "classifier", "--output", "o", "--set", "learning_rate=abc"});
  EXPECT_EQ(bad_set.exit_code, 2);
  EXPECT_THAT(bad_set.err, HasSubstr("--set learning_rate=abc: expected a number"));
  BertctlResult bad_int = Run({"submit-job", "--task", "sequence_classification", "--train", "x.tsv",
                        "--base-model", "classifier", "--output", "o", "--set", "max_steps=1.5"});
  EXPECT_THAT(bad_int.err, HasSubstr("--set max_steps=1.5: expected an integer"));

  BertctlResult missing = Run({"submit-job", "--task", "sequence_classification", "--train",
                        "/nonexistent/x.tsv", "--base-model", "classifier", "--output", "o"});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_THAT(missing.err, HasSubstr("file not found: /nonexistent/x.tsv"));
  BertctlResult upload = Run({"datasets", "upload", "/nonexistent/y.tsv"});
  EXPECT_EQ(upload.exit_code, 1);
  EXPECT_THAT(upload.err, HasSubstr("file not found: /nonexistent/y.tsv"));
}

TEST_F(BertctlTest, ModelsHealthAndVersion) {
  BertctlResult list = Run({"models", "list", "-o", "json"});
  ASSERT_EQ(list.exit_code, 0) << list.err;
  EXPECT_EQ(Json(list)["models"].size(), 3u);
  EXPECT_THAT(Run({"models", "list"}).out, HasSubstr("classifier"));
  BertctlResult get = Run({"models", "get", "qa"});
  ASSERT_EQ(get.exit_code, 0) << get.err;
  EXPECT_THAT(get.out, HasSubstr("BertForQuestionAnswering"));
  BertctlResult health = Run({"health"});
  EXPECT_EQ(health.exit_code, 0) << health.err;
  EXPECT_THAT(health.out, HasSubstr("SERVING"));
  BertctlResult version = Run({"version"});
  EXPECT_EQ(version.exit_code, 0) << version.err;
  EXPECT_THAT(version.out, HasSubstr("bertctl 0.1.0\n"));
  EXPECT_THAT(version.out, HasSubstr("bertd 0.1.0 at 127.0.0.1:"));  // the server's own version
  EXPECT_THAT(version.out, HasSubstr("cpu, float32, 1 threads"));
  nlohmann::json json = Json(Run({"version", "-o", "json"}));
  EXPECT_EQ(json["client"], "0.1.0");
  EXPECT_EQ(json["server"]["version"], "0.1.0");
  EXPECT_EQ(json["server"]["device"], "cpu");
  // Without a server the client still says its own version, and fails.
  BertctlResult down = RunBertctl({"--server=127.0.0.1:1", "--timeout=2", "version"});
  EXPECT_EQ(down.exit_code, 1);
  EXPECT_THAT(down.out, HasSubstr("bertctl 0.1.0"));
}

}  // namespace
}  // namespace bertd::testing
