// Inputs that used to crash or exhaust bertd (issue #18), sent to the real binary: each must get
// its documented error while the server goes on serving.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "bertd/v1/datasets.grpc.pb.h"
#include "bertd/v1/inference.grpc.pb.h"
#include "bertd/v1/jobs.grpc.pb.h"
#include "bertd/v1/models.grpc.pb.h"
#include "bertd_process.h"
#include "job_client.h"
#include "test_util.h"

namespace bertd::testing {
namespace {

using ::testing::HasSubstr;

class HostileInputTest : public ::testing::Test {
 protected:
  void SetUp() override { data_dir_ = MakeTempDir("bertd-hostile"); }
  std::string data_dir_;
};

grpc::Status UploadSquad(const std::shared_ptr<grpc::Channel>& channel, const std::string& name,
                         const std::string& bytes) {
  auto stub = v1::DatasetService::NewStub(channel);
  grpc::ClientContext context;
  v1::Dataset dataset;
  auto writer = stub->UploadDataset(&context, &dataset);
  v1::UploadDatasetRequest request;
  request.mutable_metadata()->set_name(name);
  request.mutable_metadata()->set_format("squad_json");
  writer->Write(request);
  // In 64 KiB chunks, as bertctl sends a file.
  for (size_t at = 0; at < bytes.size(); at += 64 * 1024) {
    v1::UploadDatasetRequest chunk;
    chunk.set_chunk(bytes.substr(at, 64 * 1024));
    if (!writer->Write(chunk)) break;
  }
  writer->WritesDone();
  return writer->Finish();
}

std::string SquadWithId(const std::string& id_json) {
  return R"({"data": [{"paragraphs": [{"context": "Paris is in France.", "qas": [)"
         R"({"question": "Where is Paris?", "answers": [{"text": "France", "answer_start": 12}], )"
         R"("id": )" + id_json + "}]}]}]}";
}

// The crash of the issue: a 400 KB question id of nested arrays killed the server (the error
// message serialized the id back, recursively). Now the parser refuses the depth, and a valid
// upload right after works on the same server.
TEST_F(HostileInputTest, ANestedArrayUploadIsRefusedAndTheServerKeepsServing) {
  BertdProcess server(data_dir_, {"--cpu_workers=0"});
  ASSERT_TRUE(server.WaitUntilServing()) << server.log();
  const int depth = 200 * 1024;
  grpc::Status status = UploadSquad(server.channel(), "deep",
                                    SquadWithId(std::string(depth, '[') + std::string(depth, ']')));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
  EXPECT_THAT(status.error_message(),
              HasSubstr("JSON nested deeper than 64 levels (--max_json_depth)"));
  // Shallow but of the wrong type: named by its type, never echoed.
  status = UploadSquad(server.channel(), "wrong-id", SquadWithId("[[\"secret-looking-value\"]]"));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("expected a non-empty string or an integer, got array"));
  EXPECT_THAT(status.error_message(), ::testing::Not(HasSubstr("secret-looking-value")));

  ASSERT_TRUE(server.WaitUntilServing(/*service=*/"", /*timeout_seconds=*/5)) << server.log();
  status = UploadSquad(server.channel(), "fine", SquadWithId("\"q1\""));
  EXPECT_TRUE(status.ok()) << status.error_message();
}

TEST_F(HostileInputTest, TheJsonDepthLimitHasAFlag) {
  BertdProcess server(data_dir_, {"--cpu_workers=0", "--max_json_depth=9"});
  ASSERT_TRUE(server.WaitUntilServing()) << server.log();
  // SQuAD nests 9 levels (root, data, article, paragraphs, paragraph, qas, qa, answers, answer).
  grpc::Status status = UploadSquad(server.channel(), "nine", SquadWithId("\"q1\""));
  EXPECT_TRUE(status.ok()) << status.error_message();
  // The id's third level is the document's tenth.
  status = UploadSquad(server.channel(), "ten", SquadWithId("[[[1]]]"));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("deeper than 9 levels (--max_json_depth)"));
}

// A model directory placed by hand whose config.json hides deep nesting under an unknown key (kept
// for writing config.json back, so it used to be serialized recursively at load).
TEST_F(HostileInputTest, ADeeplyNestedConfigJsonFailsItsModelOnly) {
  const std::string dir = data_dir_ + "/models/deep/1";
  std::filesystem::create_directories(dir);
  const int depth = 200 * 1024;
  std::ofstream(dir + "/config.json")
      << R"({"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "notes": )"
      << std::string(depth, '[') << std::string(depth, ']') << "}";
  std::ofstream(dir + "/vocab.txt") << "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\na\n";
  BertdProcess server(data_dir_, {"--cpu_workers=0"});
  ASSERT_TRUE(server.WaitUntilServing()) << server.log();
  auto models = v1::ModelService::NewStub(server.channel());
  grpc::ClientContext context;
  v1::GetModelRequest request;
  request.set_model("deep");
  v1::ModelInfo info;
  grpc::Status status = models->GetModel(&context, request, &info);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(info.state(), v1::MODEL_STATE_FAILED);
  EXPECT_THAT(info.load_error(), HasSubstr("nested deeper than 64 levels"));
  EXPECT_TRUE(server.WaitUntilServing("", 5)) << server.log();
}

// A long question left a tiny step between context windows, and a 64 KiB context then became
// thousands of windows, all built before the queue refused them ("1024 requests already queued").
// Now a question must leave a quarter of the window, windows are counted before any is built, and
// Tokenize caps the tokens it returns.
TEST_F(HostileInputTest, ManyWindowQuestionsAndHugeTokenizeCallsAreRefusedNamingTheLimit) {
  BERTD_REQUIRE_SHARED("fixtures/tiny-bert/qa/config.json");
  InstallFixtureModel("qa", data_dir_ + "/models", "qa");
  BertdProcess server(data_dir_, {"--training_devices=none"});
  ASSERT_TRUE(server.WaitUntilServing()) << server.log();
  auto inference = v1::InferenceService::NewStub(server.channel());
  auto extract = [&](const std::string& question, const std::string& context) {
    grpc::ClientContext client;
    v1::ExtractSpanRequest request;
    request.set_model("qa");
    request.set_question(question);
    request.set_context(context);
    v1::ExtractSpanResponse response;
    return inference->ExtractSpan(&client, request, &response);
  };
  std::string long_question;
  for (int i = 0; i < 50; ++i) long_question += "why ";
  grpc::Status status = extract(long_question, "a short context.");
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("fewer than the 16 needed"));

  std::string context;
  while (context.size() + 5 <= 64 * 1024) context += "word ";
  status = extract("what is the word here?", context);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("allowed (--max_span_windows)"));

  {
    grpc::ClientContext client;
    v1::TokenizeRequest request;
    request.set_model("qa");
    std::string text;
    while (text.size() + 2 <= 60000) text += "a ";
    for (int i = 0; i < 30; ++i) request.add_inputs()->set_text(text);
    v1::TokenizeResponse response;
    status = inference->Tokenize(&client, request, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(status.error_message(), HasSubstr("one call may return (--max_tokenize_tokens)"));
    EXPECT_EQ(response.results_size(), 0);
  }
  // Within the limits the same model answers.
  status = extract("what is the word here?", context.substr(0, 2000));
  EXPECT_TRUE(status.ok()) << status.error_message();
  EXPECT_TRUE(server.WaitUntilServing("", 5));
}

// A flood of WatchJob streams, each holding a server thread: past the caps they are refused with
// RESOURCE_EXHAUSTED naming the flag, and a closed stream gives its place back.
TEST_F(HostileInputTest, AFloodOfWatchStreamsIsRefusedPastTheCaps) {
  BERTD_REQUIRE_SHARED("data/glue/SST-2/dev.tsv");
  BERTD_REQUIRE_SHARED("fixtures/tiny-bert/classifier/config.json");
  InstallFixtureModel("classifier", data_dir_ + "/models", "classifier");
  BertdProcess server(data_dir_, {"--training_devices=none", "--max_watch_streams=3",
                                  "--max_watch_streams_per_caller=2"});
  ASSERT_TRUE(server.WaitUntilServing()) << server.log();
  ASSERT_TRUE(UploadSst2Tsv(server.channel(), "sst2", Sst2DevRows(8)).ok());
  v1::JobSpec spec;
  spec.set_task(v1::TRAINING_TASK_SEQUENCE_CLASSIFICATION);
  spec.set_base_model("classifier");
  spec.set_train_dataset("sst2");
  spec.set_output_model("watched");
  const std::string id = SubmitJob(server.channel(), spec).id();  // stays QUEUED: no slots
  ASSERT_FALSE(id.empty());

  struct Watch {
    std::unique_ptr<grpc::ClientContext> context = std::make_unique<grpc::ClientContext>();
    std::unique_ptr<grpc::ClientReader<v1::JobEvent>> reader;
  };
  auto stub = v1::JobService::NewStub(server.channel());
  // Opens a watch and reads its first event: true when the stream is open, false when it was
  // refused (`status` then says why).
  auto open = [&](Watch* watch, grpc::Status* status) {
    v1::WatchJobRequest request;
    request.set_job_id(id);
    watch->reader = stub->WatchJob(watch->context.get(), request);
    v1::JobEvent event;
    if (watch->reader->Read(&event)) return true;
    *status = watch->reader->Finish();
    return false;
  };
  std::vector<Watch> watches(2);
  grpc::Status status;
  for (Watch& watch : watches) ASSERT_TRUE(open(&watch, &status)) << status.error_message();
  // Every stream here comes from 127.0.0.1: one caller without tokens.
  Watch third;
  ASSERT_FALSE(open(&third, &status));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(status.error_message(), HasSubstr("(--max_watch_streams_per_caller=2)"));

  // Closing one gives its place back.
  watches[0].context->TryCancel();
  watches[0].reader->Finish();
  bool reopened = false;
  for (int i = 0; i < 40 && !reopened; ++i) {
    Watch again;
    reopened = open(&again, &status);
    if (reopened) {
      again.context->TryCancel();
      again.reader->Finish();
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(250));
    }
  }
  EXPECT_TRUE(reopened) << status.error_message();
  for (Watch& watch : watches) watch.context->TryCancel();
  EXPECT_TRUE(server.WaitUntilServing("", 5));
}

TEST_F(HostileInputTest, UploadsPastTheConcurrencyCapOrTheDiskQuotaAreRefused) {
  BERTD_REQUIRE_SHARED("data/glue/SST-2/dev.tsv");
  BertdProcess server(data_dir_, {"--training_devices=none", "--max_concurrent_uploads=2",
                                  "--max_data_dir_bytes=4MiB"});
  ASSERT_TRUE(server.WaitUntilServing()) << server.log();
  auto stub = v1::DatasetService::NewStub(server.channel());

  // Two uploads held open (metadata and a first chunk sent, not finished).
  struct Upload {
    grpc::ClientContext context;
    v1::Dataset dataset;
    std::unique_ptr<grpc::ClientWriter<v1::UploadDatasetRequest>> writer;
  };
  std::vector<std::unique_ptr<Upload>> open;
  for (int i = 0; i < 2; ++i) {
    auto upload = std::make_unique<Upload>();
    upload->writer = StartSst2Upload(stub.get(), "held-" + std::to_string(i), &upload->context,
                                     &upload->dataset);
    v1::UploadDatasetRequest chunk;
    chunk.set_chunk(Sst2DevRows(4));
    ASSERT_TRUE(upload->writer->Write(chunk));
    open.push_back(std::move(upload));
  }
  std::this_thread::sleep_for(std::chrono::seconds(1));  // both handlers are running
  grpc::Status third = UploadSst2Tsv(server.channel(), "third", Sst2DevRows(4));
  EXPECT_EQ(third.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << third.error_message();
  EXPECT_THAT(third.error_message(), HasSubstr("2 uploads are open"));
  EXPECT_THAT(third.error_message(), HasSubstr("(--max_concurrent_uploads=2)"));

  // Finishing one frees its place; nothing held was lost.
  open[0]->writer->WritesDone();
  grpc::Status first = open[0]->writer->Finish();
  EXPECT_TRUE(first.ok()) << first.error_message();
  EXPECT_TRUE(UploadSst2Tsv(server.channel(), "third", Sst2DevRows(4)).ok());
  open[1]->writer->WritesDone();
  EXPECT_TRUE(open[1]->writer->Finish().ok());

  // 5 MiB in 1 MiB chunks cannot fit a 4 MiB quota: refused while it streams, and nothing stays.
  {
    grpc::ClientContext context;
    v1::Dataset dataset;
    auto writer = StartSst2Upload(stub.get(), "too-big", &context, &dataset);
    v1::UploadDatasetRequest chunk;
    std::string rows;
    while (rows.size() < (1u << 20)) rows += "a sentence long enough to fill the chunk\t1\n";
    chunk.set_chunk(rows);
    for (int i = 0; i < 5; ++i) {
      if (!writer->Write(chunk)) break;
    }
    writer->WritesDone();
    grpc::Status status = writer->Finish();
    EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << status.error_message();
    EXPECT_THAT(status.error_message(), HasSubstr("(--max_data_dir_bytes)"));
  }
  EXPECT_TRUE(UploadSst2Tsv(server.channel(), "small", Sst2DevRows(4)).ok());
  EXPECT_TRUE(server.WaitUntilServing("", 5));
}

// A torch.save checkpoint whose tensor is a stride-0 view (torch.zeros(1).expand(65536, 65536)):
// one stored float standing for 4 Gi of them. Materialized it would take 16 GiB; the loader refuses
// it, the model fails to load with the reason, and the server keeps serving.
TEST_F(HostileInputTest, AStrideZeroCheckpointFailsItsModelOnly) {
  BERTD_REQUIRE_SHARED("fixtures/tiny-bert/classifier/config.json");
  InstallFixtureModel("classifier", data_dir_ + "/models", "hostile");
  InstallFixtureModel("classifier", data_dir_ + "/models", "fine");
  const std::string dir = data_dir_ + "/models/hostile/1";
  std::filesystem::remove(dir + "/model.safetensors");
  const std::string command =
      "/usr/bin/python3 -c 'import sys, torch; torch.save({\"bert.embeddings.word_embeddings.weight\": "
      "torch.zeros(1).expand(65536, 65536)}, sys.argv[1])' " + dir + "/pytorch_model.bin";
  ASSERT_EQ(std::system(command.c_str()), 0) << command << " (needs python3-torch)";
  ASSERT_LT(std::filesystem::file_size(dir + "/pytorch_model.bin"), 100000u);

  BertdProcess server(data_dir_, {"--training_devices=none"});
  ASSERT_TRUE(server.WaitUntilServing()) << server.log();
  auto models = v1::ModelService::NewStub(server.channel());
  grpc::ClientContext context;
  v1::GetModelRequest request;
  request.set_model("hostile");
  v1::ModelInfo info;
  ASSERT_TRUE(models->GetModel(&context, request, &info).ok());
  EXPECT_EQ(info.state(), v1::MODEL_STATE_FAILED);
  EXPECT_THAT(info.load_error(),
              HasSubstr("a tensor of 4294967296 elements does not fit its storage of 1"));
  // The other model serves.
  auto inference = v1::InferenceService::NewStub(server.channel());
  grpc::ClientContext classify_context;
  v1::ClassifyRequest classify;
  classify.set_model("fine");
  classify.add_inputs()->set_text("a fine film");
  v1::ClassifyResponse response;
  grpc::Status status = inference->Classify(&classify_context, classify, &response);
  EXPECT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.results_size(), 1);
}

}  // namespace
}  // namespace bertd::testing
