// Pretraining with bertctl against a real bertd, as a user without a pretrained checkpoint would:
// `vocab train` on a local corpus, `submit-job --task pretraining --base-model scratch:...
// --follow`, `fill-mask` with the new model; and the usage errors of the new flags.
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>

#include <nlohmann/json.hpp>

#include "bertctl_process.h"
#include "bertd_process.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "test_util.h"

namespace bertd::testing {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

class BertctlPretrainingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    BERTD_REQUIRE_SHARED("data/text/beiying.txt");
    data_dir_ = MakeTempDir("bertctl-pretraining-e2e");
    corpus_ = data_dir_ + "/corpus.txt";
    fs::copy_file(SharedPath("data/text/beiying.txt"), corpus_);
    server_ = std::make_unique<BertdProcess>(data_dir_);
    ASSERT_TRUE(server_->WaitUntilServing()) << server_->log();
  }

  void TearDown() override {
    if (server_ != nullptr) {
      server_->Terminate();
      server_.reset();
    }
    if (!data_dir_.empty()) fs::remove_all(data_dir_);
  }

  BertctlResult Run(std::vector<std::string> args) const {
    args.insert(args.begin(), "--server=127.0.0.1:" + std::to_string(server_->grpc_port()));
    return BertctlProcess(args).Wait();
  }

  std::string data_dir_;
  std::string corpus_;
  std::unique_ptr<BertdProcess> server_;
};

TEST_F(BertctlPretrainingTest, VocabTrainPretrainAndFillMask) {
  const std::string vocab = data_dir_ + "/vocab.txt";
  BertctlResult trained = Run({"vocab", "train", corpus_, "--vocab-size", "2000", "--out", vocab});
  ASSERT_EQ(trained.exit_code, 0) << trained.out << trained.err;
  EXPECT_THAT(trained.out, HasSubstr("wrote " + vocab));
  const std::string text = ReadWholeFile(vocab);
  EXPECT_EQ(text.substr(0, 31), "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n");
  // The uploaded corpus is reused: a second run gives the same file.
  BertctlResult again = Run({"-o", "json", "vocab", "train", corpus_, "--vocab-size", "2000",
                             "--out", data_dir_ + "/vocab2.txt"});
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(ReadWholeFile(data_dir_ + "/vocab2.txt"), text);
  nlohmann::json summary = nlohmann::json::parse(again.out, nullptr, false);
  ASSERT_TRUE(summary.is_object()) << again.out;
  EXPECT_LT(summary["unk_rate"].get<double>(), 0.01);

  BertctlResult job = Run({"-o", "json", "submit-job", "--task", "pretraining", "--train", corpus_,
                           "--base-model", "scratch:tiny", "--vocab", vocab, "--output", "beiying",
                           "--set", "max_steps=20", "--set", "learning_rate=1e-3",
                           "--set", "max_seq_length=64", "--set", "model_size.num_hidden_layers=1",
                           "--follow"});
  ASSERT_EQ(job.exit_code, 0) << job.out << job.err;
  nlohmann::json done = nlohmann::json::parse(job.out, nullptr, false);
  ASSERT_TRUE(done.is_object()) << job.out;
  EXPECT_EQ(done["resultModel"], "beiying@1");
  EXPECT_EQ(done["spec"]["task"], "TRAINING_TASK_PRETRAINING");

  BertctlResult fill = Run({"-o", "json", "fill-mask", "--model", "beiying", "他的[MASK]影"});
  ASSERT_EQ(fill.exit_code, 0) << fill.out << fill.err;
  EXPECT_THAT(fill.out, HasSubstr("beiying@1"));
}

TEST_F(BertctlPretrainingTest, NewFlagsFailWithUsageErrors) {
  BertctlResult bad_set = Run({"submit-job", "--task", "pretraining", "--train", corpus_,
                               "--base-model", "scratch:tiny", "--output", "x",
                               "--set", "vocabulary.size=5"});
  EXPECT_EQ(bad_set.exit_code, 2);
  EXPECT_THAT(bad_set.err, HasSubstr("vocabulary.size=5: unknown vocabulary setting"));
  BertctlResult bad_group = Run({"submit-job", "--task", "pretraining", "--train", corpus_,
                                 "--base-model", "scratch:tiny", "--output", "x",
                                 "--set", "model.hidden_size=5"});
  EXPECT_EQ(bad_group.exit_code, 2);
  EXPECT_THAT(bad_group.err, HasSubstr("unknown setting group 'model'"));
  BertctlResult bad_vocab = Run({"submit-job", "--task", "pretraining", "--train", corpus_,
                                 "--base-model", "scratch:tiny", "--output", "x", "--vocab", "nope"});
  EXPECT_EQ(bad_vocab.exit_code, 2);
  EXPECT_THAT(bad_vocab.err, HasSubstr("--vocab nope: expected model:NAME"));
  BertctlResult preset = Run({"submit-job", "--task", "pretraining", "--train", corpus_,
                              "--base-model", "scratch:huge", "--output", "x"});
  EXPECT_EQ(preset.exit_code, 1);
  EXPECT_THAT(preset.err, HasSubstr("scratch:huge"));
  BertctlResult missing = Run({"vocab", "train", data_dir_ + "/missing.txt"});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_THAT(missing.err, HasSubstr("file not found"));
}

}  // namespace
}  // namespace bertd::testing
