// Pretraining through the real bertd over gRPC (issue 5, acceptance 2): a text corpus of Chinese
// (beiying.txt) and English (SST-2 sentences) is uploaded, a vocabulary is learned from it, a tiny
// model is pretrained from scratch (MLM loss falls), and the result serves FillMask and
// PredictNextSentence and is the base of a fine-tuning job.
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "bertd/v1/datasets.grpc.pb.h"
#include "bertd/v1/inference.grpc.pb.h"
#include "bertd/v1/jobs.grpc.pb.h"
#include "bertd_process.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "test_util.h"

namespace bertd::testing {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

// beiying.txt (one paragraph per line) followed by the first `english` sentences of SST-2 train,
// one per line: every line is a document.
std::string MixedCorpus(int english) {
  std::string corpus = ReadWholeFile(SharedPath("data/text/beiying.txt"));
  if (!corpus.empty() && corpus.back() != '\n') corpus += '\n';
  std::istringstream sst(ReadWholeFile(SharedPath("data/glue/SST-2/train.tsv")));
  std::string line;
  std::getline(sst, line);  // header: sentence \t label
  for (int i = 0; i < english && std::getline(sst, line);) {
    std::vector<std::string> fields = absl::StrSplit(line, '\t');
    if (fields.size() != 2 || fields[0].size() < 40) continue;  // whole sentences, not phrases
    corpus += fields[0] + "\n";
    ++i;
  }
  return corpus;
}

class PretrainingJobsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    BERTD_REQUIRE_SHARED("data/text/beiying.txt");
    BERTD_REQUIRE_SHARED("data/glue/SST-2/train.tsv");
    data_dir_ = MakeTempDir("bertd-pretrain-it");
    server_ = std::make_unique<BertdProcess>(data_dir_);
    ASSERT_TRUE(server_->WaitUntilServing()) << server_->log();
    datasets_ = v1::DatasetService::NewStub(server_->channel());
    jobs_ = v1::JobService::NewStub(server_->channel());
    inference_ = v1::InferenceService::NewStub(server_->channel());
  }

  void TearDown() override {
    if (server_ != nullptr) {
      EXPECT_EQ(server_->Terminate(), 0) << server_->log();
      server_.reset();
    }
    if (!data_dir_.empty()) fs::remove_all(data_dir_);
  }

  v1::Dataset Upload(const std::string& name, const std::string& format, const std::string& bytes,
                     grpc::Status* status_out = nullptr) {
    grpc::ClientContext context;
    v1::Dataset dataset;
    auto writer = datasets_->UploadDataset(&context, &dataset);
    v1::UploadDatasetRequest request;
    request.mutable_metadata()->set_name(name);
    request.mutable_metadata()->set_format(format);
    if (format == "tsv") {
      request.mutable_metadata()->set_has_header(true);
      request.mutable_metadata()->mutable_text()->set_name("sentence");
      request.mutable_metadata()->mutable_label()->set_name("label");
    }
    writer->Write(request);
    request.set_chunk(bytes);
    writer->Write(request);
    writer->WritesDone();
    grpc::Status status = writer->Finish();
    if (status_out != nullptr) {
      *status_out = status;
    } else {
      EXPECT_TRUE(status.ok()) << name << ": " << status.error_message();
    }
    return dataset;
  }

  grpc::Status Submit(const v1::JobSpec& spec, v1::Job* job) {
    grpc::ClientContext context;
    v1::SubmitJobRequest request;
    *request.mutable_spec() = spec;
    return jobs_->SubmitJob(&context, request, job);
  }

  std::vector<v1::JobEvent> Watch(const std::string& job_id, int timeout_seconds = 600) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(timeout_seconds));
    v1::WatchJobRequest request;
    request.set_job_id(job_id);
    auto reader = jobs_->WatchJob(&context, request);
    std::vector<v1::JobEvent> events;
    v1::JobEvent event;
    while (reader->Read(&event)) events.push_back(event);
    grpc::Status status = reader->Finish();
    EXPECT_TRUE(status.ok()) << status.error_message();
    return events;
  }

  std::string data_dir_;
  std::unique_ptr<BertdProcess> server_;
  std::unique_ptr<v1::DatasetService::Stub> datasets_;
  std::unique_ptr<v1::JobService::Stub> jobs_;
  std::unique_ptr<v1::InferenceService::Stub> inference_;
};

TEST_F(PretrainingJobsTest, LearnsVocabularyPretrainsTinyModelServesFillMaskAndFineTunes) {
  const v1::Dataset corpus = Upload("corpus", "text", MixedCorpus(400));
  EXPECT_EQ(corpus.format(), "text");
  EXPECT_EQ(corpus.rows(), 410);  // 10 paragraphs of beiying.txt + 400 sentences

  // Vocabulary on its own: deterministic, specials first, covers its corpus.
  v1::TrainVocabularyRequest vocab_request;
  vocab_request.set_dataset("corpus");
  vocab_request.set_vocab_size(3000);
  v1::TrainVocabularyResponse vocab[2];
  for (auto& response : vocab) {
    grpc::ClientContext context;
    grpc::Status status = datasets_->TrainVocabulary(&context, vocab_request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }
  EXPECT_EQ(vocab[0].vocab_txt(), vocab[1].vocab_txt());
  std::vector<std::string> tokens = absl::StrSplit(vocab[0].vocab_txt(), '\n', absl::SkipEmpty());
  ASSERT_EQ(static_cast<int>(tokens.size()), vocab[0].vocab_size());
  EXPECT_LE(vocab[0].vocab_size(), 3000);
  EXPECT_THAT(std::vector<std::string>(tokens.begin(), tokens.begin() + 5),
              ::testing::ElementsAre("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"));
  EXPECT_THAT(tokens, ::testing::Contains("父"));  // CJK characters are tokens of their own
  EXPECT_LT(vocab[0].unk_rate(), 0.01);
  EXPECT_GT(vocab[0].words_counted(), 5000);

  // Refusals name the field.
  v1::Job refused;
  v1::JobSpec bad;
  bad.set_task(v1::TRAINING_TASK_PRETRAINING);
  bad.set_base_model("scratch:giant");
  bad.set_train_dataset("corpus");
  bad.set_output_model("x");
  grpc::Status status = Submit(bad, &refused);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("scratch:giant"));
  bad.set_base_model("scratch:tiny");
  bad.set_task(v1::TRAINING_TASK_SEQUENCE_CLASSIFICATION);
  status = Submit(bad, &refused);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("train_dataset: a text dataset can only train pretraining"));

  // Pretrain scratch:tiny (2 x 128).
  v1::JobSpec spec;
  spec.set_task(v1::TRAINING_TASK_PRETRAINING);
  spec.set_base_model("scratch:tiny");
  spec.set_train_dataset("corpus");
  spec.set_output_model("tiny-zh-en");
  spec.set_eval_split(0.1);
  spec.mutable_vocabulary()->set_vocab_size(3000);
  v1::Hyperparameters* h = spec.mutable_hyperparameters();
  h->set_learning_rate(1e-3);
  h->set_max_steps(150);
  h->set_warmup_steps(10);
  h->set_per_device_train_batch_size(16);
  h->set_max_seq_length(64);
  v1::Job job;
  status = Submit(spec, &job);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(job.spec().task(), v1::TRAINING_TASK_PRETRAINING);
  EXPECT_EQ(job.spec().vocabulary().vocab_size(), 3000);

  const std::vector<v1::JobEvent> events = Watch(job.id());
  ASSERT_FALSE(events.empty());
  ASSERT_EQ(events.back().state().state(), v1::JOB_STATE_SUCCEEDED)
      << events.back().state().error() << "\n" << server_->log();
  EXPECT_EQ(events.back().state().result_model(), "tiny-zh-en@1");
  std::vector<v1::Progress> progress;
  std::map<std::string, double> final_metrics;
  for (const v1::JobEvent& event : events) {
    if (event.has_progress()) progress.push_back(event.progress());
    if (event.has_evaluation()) {
      final_metrics.clear();
      final_metrics.insert(event.evaluation().metrics().begin(), event.evaluation().metrics().end());
    }
  }
  ASSERT_GE(progress.size(), 2u);
  ASSERT_TRUE(progress.front().has_mlm_loss() && progress.back().has_mlm_loss());
  // Starts near ln(V) (uniform guesses over the learned vocabulary) and falls clearly below it
  // within 150 steps (by about 0.9 nats in the runs measured).
  EXPECT_GT(progress.front().mlm_loss(), 6.0);
  EXPECT_LT(progress.back().mlm_loss(), progress.front().mlm_loss() - 0.5)
      << "first " << progress.front().mlm_loss() << " last " << progress.back().mlm_loss();
  EXPECT_EQ(progress.back().step(), 150);
  for (const char* metric : {"mlm_accuracy", "perplexity", "nsp_accuracy", "mlm_loss", "nsp_loss"}) {
    EXPECT_TRUE(final_metrics.count(metric)) << metric;
  }

  // FillMask and PredictNextSentence from the same model.
  {
    grpc::ClientContext context;
    v1::FillMaskRequest request;
    request.set_model("tiny-zh-en");
    request.set_text("我与父亲不相见已二年余了，我最不能忘记的是他的[MASK]影。");
    v1::FillMaskResponse response;
    status = inference_->FillMask(&context, request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    ASSERT_EQ(response.masks_size(), 1);
    ASSERT_EQ(response.masks(0).predictions_size(), 5);
    EXPECT_EQ(response.model_version(), "tiny-zh-en@1");
    for (int i = 1; i < 5; ++i) {
      EXPECT_GE(response.masks(0).predictions(i - 1).score(), response.masks(0).predictions(i).score());
    }
  }
  {
    grpc::ClientContext context;
    v1::NextSentenceRequest request;
    request.set_model("tiny-zh-en");
    auto* pair = request.add_pairs();
    pair->set_first("我与父亲不相见已二年余了。");
    pair->set_second("我最不能忘记的是他的背影。");
    v1::NextSentenceResponse response;
    status = inference_->PredictNextSentence(&context, request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(response.results_size(), 1);
  }

  // The pretrained model as a fine-tuning base; the same fine-tuning from scratch with its
  // vocabulary; and from scratch with a vocabulary learned from the fine-tuning data.
  std::string sst = "sentence\tlabel\n";
  std::istringstream lines(ReadWholeFile(SharedPath("data/glue/SST-2/train.tsv")));
  std::string line;
  std::getline(lines, line);
  for (int i = 0; i < 64 && std::getline(lines, line); ++i) sst += line + "\n";
  Upload("sst-small", "tsv", sst);
  struct FineTune {
    std::string base, vocab, output;
  };
  for (const FineTune& run : {FineTune{"tiny-zh-en", "", "tiny-sst"},
                              FineTune{"scratch:tiny", "model:tiny-zh-en", "scratch-sst"},
                              FineTune{"scratch:tiny", "", "scratch-own-vocab-sst"}}) {
    const std::string& base = run.output;  // names the run in failure messages
    v1::JobSpec fine;
    fine.set_task(v1::TRAINING_TASK_SEQUENCE_CLASSIFICATION);
    fine.set_base_model(run.base);
    fine.set_train_dataset("sst-small");
    fine.set_output_model(run.output);
    if (!run.vocab.empty()) fine.mutable_vocabulary()->set_source(run.vocab);
    if (run.base == "scratch:tiny" && run.vocab.empty()) {
      fine.mutable_vocabulary()->set_vocab_size(500);
      fine.mutable_vocabulary()->set_min_frequency(1);
    }
    fine.mutable_hyperparameters()->set_max_steps(4);
    status = Submit(fine, &job);
    ASSERT_TRUE(status.ok()) << base << ": " << status.error_message();
    const std::vector<v1::JobEvent> fine_events = Watch(job.id());
    ASSERT_FALSE(fine_events.empty());
    ASSERT_EQ(fine_events.back().state().state(), v1::JOB_STATE_SUCCEEDED)
        << base << ": " << fine_events.back().state().error();
    grpc::ClientContext context;
    v1::ClassifyRequest classify;
    classify.set_model(fine.output_model());
    classify.add_inputs()->set_text("a gorgeous , witty , seductive movie .");
    v1::ClassifyResponse response;
    status = inference_->Classify(&context, classify, &response);
    ASSERT_TRUE(status.ok()) << base << ": " << status.error_message();
  }
}

}  // namespace
}  // namespace bertd::testing
