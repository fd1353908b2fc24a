// Datasets and training jobs through the real bertd over gRPC: uploads of the real dataset files
// with their verified counts, rejected uploads that leave nothing behind, job validation, queueing
// and cancel, and a tiny fine-tuning job whose model then answers Classify.
#include <google/protobuf/util/time_util.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "bertd/v1/datasets.grpc.pb.h"
#include "bertd/v1/inference.grpc.pb.h"
#include "bertd/v1/jobs.grpc.pb.h"
#include "bertd/v1/models.grpc.pb.h"
#include "bertd_process.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "test_util.h"

namespace bertd::testing {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::UnorderedElementsAreArray;

constexpr int64_t kMaxDatasetBytes = 1500000;  // above MRPC train (919457), the largest upload

// sha256sum's answer: computed independently of the server's OpenSSL call.
std::string Sha256Sum(const std::string& path) {
  FILE* pipe = popen(("sha256sum '" + path + "'").c_str(), "r");
  if (pipe == nullptr) return "";
  char buffer[65] = {};
  size_t n = fread(buffer, 1, 64, pipe);
  pclose(pipe);
  return std::string(buffer, n);
}

v1::ColumnRef Named(const std::string& name) {
  v1::ColumnRef column;
  column.set_name(name);
  return column;
}

v1::ColumnRef At(int index) {
  v1::ColumnRef column;
  column.set_index(index);
  return column;
}

// One fixture model (the tiny classifier) in the repository; every test has its own server.
class TrainingJobsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    BERTD_REQUIRE_SHARED("fixtures/tiny-bert/classifier/config.json");
    data_dir_ = MakeTempDir("bertd-train-it");
    InstallFixtureModel("classifier", data_dir_ + "/models", "classifier");
  }

  void TearDown() override {
    if (server_ != nullptr) {
      EXPECT_EQ(server_->Terminate(), 0) << server_->log();
      server_.reset();
    }
    if (!data_dir_.empty()) fs::remove_all(data_dir_);
  }

  void StartServer(std::vector<std::string> flags = {}) {
    flags.push_back(absl::StrCat("--max_dataset_bytes=", kMaxDatasetBytes));
    server_ = std::make_unique<BertdProcess>(data_dir_, flags);
    ASSERT_TRUE(server_->WaitUntilServing()) << server_->log();
    datasets_ = v1::DatasetService::NewStub(server_->channel());
    jobs_ = v1::JobService::NewStub(server_->channel());
    inference_ = v1::InferenceService::NewStub(server_->channel());
  }

  grpc::Status Upload(const v1::DatasetMetadata& metadata, const std::string& bytes,
                      v1::Dataset* dataset, size_t chunk_size = 64 * 1024) {
    grpc::ClientContext context;
    auto writer = datasets_->UploadDataset(&context, dataset);
    v1::UploadDatasetRequest request;
    *request.mutable_metadata() = metadata;
    bool open = writer->Write(request);
    for (size_t offset = 0; open && offset < bytes.size(); offset += chunk_size) {
      request.set_chunk(bytes.substr(offset, chunk_size));
      open = writer->Write(request);
    }
    writer->WritesDone();
    return writer->Finish();
  }

  v1::Dataset UploadOk(const v1::DatasetMetadata& metadata, const std::string& bytes) {
    v1::Dataset dataset;
    grpc::Status status = Upload(metadata, bytes, &dataset);
    EXPECT_TRUE(status.ok()) << metadata.name() << ": " << status.error_message();
    return dataset;
  }

  std::vector<std::string> DatasetNames() {
    grpc::ClientContext context;
    v1::ListDatasetsResponse response;
    EXPECT_TRUE(datasets_->ListDatasets(&context, {}, &response).ok());
    std::vector<std::string> names;
    for (const v1::Dataset& dataset : response.datasets()) names.push_back(dataset.name());
    return names;
  }

  // Everything under <data_dir>/datasets/: one directory per stored dataset, nothing else.
  std::set<std::string> DatasetEntries() {
    std::set<std::string> entries;
    for (const auto& entry : fs::directory_iterator(fs::path(data_dir_) / "datasets")) {
      entries.insert(entry.path().filename().string());
    }
    return entries;
  }

  static std::map<std::string, int64_t> Labels(const v1::Dataset& dataset) {
    std::map<std::string, int64_t> labels;
    for (const v1::LabelCount& count : dataset.labels()) labels[count.label()] = count.count();
    return labels;
  }

  // A 24-row SST-2 slice as its own TSV (header + rows 1..24 of dev.tsv).
  v1::Dataset UploadSst2Slice(const std::string& name, int rows = 24) {
    std::vector<std::string> lines =
        absl::StrSplit(ReadWholeFile(SharedPath("data/glue/SST-2/dev.tsv")), '\n');
    std::string slice;
    for (int i = 0; i <= rows; ++i) absl::StrAppend(&slice, lines[i], "\n");
    v1::DatasetMetadata metadata;
    metadata.set_name(name);
    metadata.set_format("tsv");
    metadata.set_has_header(true);
    *metadata.mutable_text() = Named("sentence");
    *metadata.mutable_label() = Named("label");
    metadata.add_allowed_labels("0");
    metadata.add_allowed_labels("1");
    return UploadOk(metadata, slice);
  }

  static v1::JobSpec TinySpec(const std::string& train, const std::string& output) {
    v1::JobSpec spec;
    spec.set_task(v1::TRAINING_TASK_SEQUENCE_CLASSIFICATION);
    spec.set_base_model("classifier");
    spec.set_train_dataset(train);
    spec.set_output_model(output);
    v1::Hyperparameters* h = spec.mutable_hyperparameters();
    h->set_max_steps(10);
    h->set_per_device_train_batch_size(8);
    h->set_learning_rate(1e-3);
    h->set_save_steps(5);
    return spec;
  }

  grpc::Status Submit(const v1::JobSpec& spec, v1::Job* job) {
    grpc::ClientContext context;
    v1::SubmitJobRequest request;
    *request.mutable_spec() = spec;
    return jobs_->SubmitJob(&context, request, job);
  }

  std::vector<v1::JobEvent> Watch(const std::string& job_id, int64_t after_seq = 0,
                                  int timeout_seconds = 300) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(timeout_seconds));
    v1::WatchJobRequest request;
    request.set_job_id(job_id);
    request.set_after_seq(after_seq);
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

struct RealFile {
  const char* name;
  const char* path;
  std::function<void(v1::DatasetMetadata*)> map;
  int64_t rows;
  std::map<std::string, int64_t> labels;
};

TEST_F(TrainingJobsTest, UploadsRealDatasetsWithVerifiedCounts) {
  for (const char* file : {"data/glue/CoLA/in_domain_train.tsv", "data/glue/SST-2/dev.tsv",
                           "data/glue/MRPC/train.tsv", "data/glue/RTE/dev.tsv",
                           "data/imdb/train_sample.csv", "data/squad/squad-v2-dev-sample.json",
                           "data/squad/tiny.json"}) {
    BERTD_REQUIRE_SHARED(file);
  }
  StartServer({"--cpu_workers=0"});
  // Counts from tests/unit/data (computed there with awk, Python's csv and json modules); RTE
  // dev: awk -F'\t' 'NR>1{c[$NF]++}'.
  const std::vector<RealFile> files = {
      {"cola-train", "data/glue/CoLA/in_domain_train.tsv",
       [](v1::DatasetMetadata* m) {
         m->set_format("tsv");
         *m->mutable_text() = At(3);
         *m->mutable_label() = At(1);
         m->add_allowed_labels("0");
         m->add_allowed_labels("1");
       },
       8551, {{"0", 2528}, {"1", 6023}}},
      {"sst2-dev", "data/glue/SST-2/dev.tsv",
       [](v1::DatasetMetadata* m) {
         m->set_format("tsv");
         m->set_has_header(true);
         *m->mutable_text() = Named("sentence");
         *m->mutable_label() = Named("label");
       },
       872, {{"0", 428}, {"1", 444}}},
      {"mrpc-train", "data/glue/MRPC/train.tsv",  // starts with a byte order mark
       [](v1::DatasetMetadata* m) {
         m->set_format("tsv");
         m->set_has_header(true);
         *m->mutable_text() = Named("#1 String");
         *m->mutable_text_pair() = Named("#2 String");
         *m->mutable_label() = Named("Quality");
       },
       3668, {{"0", 1194}, {"1", 2474}}},
      {"rte-dev", "data/glue/RTE/dev.tsv",
       [](v1::DatasetMetadata* m) {
         m->set_format("tsv");
         m->set_has_header(true);
         *m->mutable_text() = Named("sentence1");
         *m->mutable_text_pair() = Named("sentence2");
         *m->mutable_label() = Named("label");
         m->add_allowed_labels("entailment");
         m->add_allowed_labels("not_entailment");
       },
       277, {{"entailment", 146}, {"not_entailment", 131}}},
      {"imdb-train", "data/imdb/train_sample.csv",
       [](v1::DatasetMetadata* m) {
         m->set_format("csv");
         m->set_has_header(true);
         *m->mutable_text() = Named("text");
         *m->mutable_label() = Named("label");
       },
       100, {{"0", 50}, {"1", 50}}},
      {"squad-v2-sample", "data/squad/squad-v2-dev-sample.json",
       [](v1::DatasetMetadata* m) { m->set_format("squad_json"); }, 626,
       {{"answerable", 293}, {"impossible", 333}}},
      {"squad-tiny", "data/squad/tiny.json",
       [](v1::DatasetMetadata* m) { m->set_format("squad_json"); }, 2, {{"answerable", 2}}},
  };
  std::vector<std::string> names;
  for (const RealFile& file : files) {
    SCOPED_TRACE(file.name);
    v1::DatasetMetadata metadata;
    metadata.set_name(file.name);
    file.map(&metadata);
    const std::string path = SharedPath(file.path);
    // Small chunks for one file: the server must reassemble across many messages.
    v1::Dataset dataset;
    grpc::Status status = Upload(metadata, ReadWholeFile(path), &dataset,
                                 std::string(file.name) == "sst2-dev" ? 1000 : 64 * 1024);
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(dataset.name(), file.name);
    EXPECT_THAT(dataset.id(), ::testing::StartsWith("ds-"));
    EXPECT_EQ(dataset.rows(), file.rows);
    EXPECT_EQ(Labels(dataset), file.labels);
    EXPECT_EQ(dataset.size_bytes(), static_cast<int64_t>(fs::file_size(path)));
    EXPECT_EQ(dataset.sha256(), Sha256Sum(path));
    EXPECT_GT(dataset.created_at().seconds(), 0);
    EXPECT_EQ(dataset.metadata().format(), metadata.format());
    names.push_back(file.name);

    grpc::ClientContext context;
    v1::GetDatasetRequest get;
    get.set_dataset(file.name);
    v1::Dataset got;
    ASSERT_TRUE(datasets_->GetDataset(&context, get, &got).ok());
    EXPECT_EQ(got.id(), dataset.id());
    EXPECT_EQ(got.sha256(), dataset.sha256());
    EXPECT_EQ(got.metadata().text().name(), metadata.text().name());
  }
  EXPECT_THAT(DatasetNames(), UnorderedElementsAreArray(names));
  EXPECT_EQ(DatasetEntries().size(), names.size());
}

TEST_F(TrainingJobsTest, UploadsJsonl) {
  StartServer({"--cpu_workers=0"});
  v1::DatasetMetadata metadata;
  metadata.set_name("pairs.jsonl");
  metadata.set_format("jsonl");
  *metadata.mutable_text() = Named("premise");
  *metadata.mutable_text_pair() = Named("hypothesis");
  *metadata.mutable_label() = Named("label");
  const std::string bytes =
      "{\"premise\": \"A man plays a guitar.\", \"hypothesis\": \"Music is made.\", \"label\": \"yes\"}\n"
      "{\"premise\": \"A cat sleeps.\", \"hypothesis\": \"The cat runs.\", \"label\": \"no\"}\n"
      "{\"premise\": \"Rain falls.\", \"hypothesis\": \"It is wet.\", \"label\": \"yes\"}\n";
  v1::Dataset dataset = UploadOk(metadata, bytes);
  EXPECT_EQ(dataset.rows(), 3);
  EXPECT_EQ(Labels(dataset), (std::map<std::string, int64_t>{{"no", 1}, {"yes", 2}}));
  EXPECT_TRUE(fs::exists(fs::path(data_dir_) / "datasets" / dataset.id() / "data.jsonl"));

  grpc::ClientContext context;
  v1::DeleteDatasetRequest request;
  request.set_dataset("pairs.jsonl");
  v1::DeleteDatasetResponse response;
  ASSERT_TRUE(datasets_->DeleteDataset(&context, request, &response).ok());
  EXPECT_EQ(response.dataset().id(), dataset.id());
  EXPECT_TRUE(DatasetNames().empty());
  EXPECT_TRUE(DatasetEntries().empty());
}

TEST_F(TrainingJobsTest, BadUploadsAreRejectedAndLeaveNothing) {
  StartServer({"--cpu_workers=0"});
  v1::DatasetMetadata good;
  good.set_name("good");
  good.set_format("tsv");
  *good.mutable_text() = At(0);
  *good.mutable_label() = At(1);
  good.add_allowed_labels("0");
  good.add_allowed_labels("1");
  const v1::Dataset kept = UploadOk(good, "fine\t1\nalso fine\t0\n");
  const std::set<std::string> entries = DatasetEntries();
  ASSERT_EQ(entries, std::set<std::string>{kept.id()});

  struct Case {
    const char* what;
    v1::DatasetMetadata metadata;
    std::string bytes;
    grpc::StatusCode code;
    std::vector<std::string> message_parts;
  };
  v1::DatasetMetadata bad = good;
  bad.set_name("bad");
  v1::DatasetMetadata no_text = bad;
  no_text.clear_text();
  v1::DatasetMetadata bad_format = bad;
  bad_format.set_format("xlsx");
  v1::DatasetMetadata bad_name = bad;
  bad_name.set_name("../escape");
  v1::DatasetMetadata squad = bad;
  squad.set_format("squad_json");
  const std::vector<Case> cases = {
      {"missing column", bad, "ok\t1\nok too\t0\nshort line\n", grpc::StatusCode::INVALID_ARGUMENT,
       {"line 3"}},
      {"label not allowed", bad, "ok\t1\nok\t7\n", grpc::StatusCode::INVALID_ARGUMENT,
       {"line 2", "7"}},
      {"empty line inside", bad, "ok\t1\n\nok\t0\n", grpc::StatusCode::INVALID_ARGUMENT,
       {"line 2", "empty line"}},
      {"invalid UTF-8", bad, "ok\t1\nbad \xff\xfe\t0\n", grpc::StatusCode::INVALID_ARGUMENT,
       {"line 2", "UTF-8"}},
      {"broken SQuAD JSON", squad, "{\"data\": [", grpc::StatusCode::INVALID_ARGUMENT, {}},
      {"empty file", bad, "", grpc::StatusCode::INVALID_ARGUMENT, {}},
      {"no text column", no_text, "ok\t1\n", grpc::StatusCode::INVALID_ARGUMENT,
       {"metadata.text"}},
      {"unknown format", bad_format, "ok\t1\n", grpc::StatusCode::INVALID_ARGUMENT,
       {"metadata.format"}},
      {"bad name", bad_name, "ok\t1\n", grpc::StatusCode::INVALID_ARGUMENT, {"metadata.name"}},
      {"taken name", good, "ok\t1\n", grpc::StatusCode::ALREADY_EXISTS, {"good"}},
      {"over --max_dataset_bytes", bad, std::string(kMaxDatasetBytes + 10, 'x'),
       grpc::StatusCode::INVALID_ARGUMENT, {"max_dataset_bytes", absl::StrCat(kMaxDatasetBytes)}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    v1::Dataset dataset;
    grpc::Status status = Upload(c.metadata, c.bytes, &dataset);
    EXPECT_EQ(status.error_code(), c.code) << status.error_message();
    for (const std::string& part : c.message_parts) {
      EXPECT_THAT(status.error_message(), HasSubstr(part));
    }
    EXPECT_EQ(DatasetNames(), std::vector<std::string>{"good"});
    EXPECT_EQ(DatasetEntries(), entries) << "an upload left files behind";
  }

  // A chunk before the metadata.
  grpc::ClientContext context;
  v1::Dataset dataset;
  auto writer = datasets_->UploadDataset(&context, &dataset);
  v1::UploadDatasetRequest chunk;
  chunk.set_chunk("ok\t1\n");
  writer->Write(chunk);
  writer->WritesDone();
  grpc::Status status = writer->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("metadata"));
}

TEST_F(TrainingJobsTest, InvalidSpecsAreRefusedNamingTheField) {
  BERTD_REQUIRE_SHARED("data/glue/SST-2/dev.tsv");
  BERTD_REQUIRE_SHARED("data/squad/tiny.json");
  StartServer({"--cpu_workers=0"});
  UploadSst2Slice("sst2-slice");
  v1::DatasetMetadata squad;
  squad.set_name("squad-tiny");
  squad.set_format("squad_json");
  UploadOk(squad, ReadWholeFile(SharedPath("data/squad/tiny.json")));

  struct Case {
    const char* field;
    std::function<void(v1::JobSpec*)> change;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"task", [](v1::JobSpec* s) { s->set_task(v1::TRAINING_TASK_UNSPECIFIED); }, "task"},
      {"base_model (empty)", [](v1::JobSpec* s) { s->clear_base_model(); }, "base_model"},
      {"base_model (unknown)", [](v1::JobSpec* s) { s->set_base_model("nope"); },
       "base_model: model 'nope' is not loaded"},
      {"train_dataset (empty)", [](v1::JobSpec* s) { s->clear_train_dataset(); }, "train_dataset"},
      {"train_dataset (unknown)", [](v1::JobSpec* s) { s->set_train_dataset("missing"); },
       "train_dataset: dataset 'missing' does not exist"},
      {"train_dataset (no text_pair for a pair task)",
       [](v1::JobSpec* s) { s->set_task(v1::TRAINING_TASK_SENTENCE_PAIR_CLASSIFICATION); },
       "train_dataset"},
      {"train_dataset (tsv for span_extraction)",
       [](v1::JobSpec* s) { s->set_task(v1::TRAINING_TASK_SPAN_EXTRACTION); }, "train_dataset"},
      {"train_dataset (squad for classification)",
       [](v1::JobSpec* s) { s->set_train_dataset("squad-tiny"); }, "train_dataset"},
      {"eval_dataset", [](v1::JobSpec* s) { s->set_eval_dataset("missing"); }, "eval_dataset"},
      {"eval_split", [](v1::JobSpec* s) { s->set_eval_split(1.5); }, "eval_split"},
      {"output_model (empty)", [](v1::JobSpec* s) { s->clear_output_model(); }, "output_model"},
      {"output_model (path)", [](v1::JobSpec* s) { s->set_output_model("../x"); }, "output_model"},
      {"learning_rate", [](v1::JobSpec* s) { s->mutable_hyperparameters()->set_learning_rate(-1); },
       "hyperparameters.learning_rate"},
      {"per_device_train_batch_size",
       [](v1::JobSpec* s) { s->mutable_hyperparameters()->set_per_device_train_batch_size(0); },
       "hyperparameters.per_device_train_batch_size"},
      {"max_seq_length", [](v1::JobSpec* s) { s->mutable_hyperparameters()->set_max_seq_length(4); },
       "hyperparameters.max_seq_length"},
      {"eval_strategy",
       [](v1::JobSpec* s) { s->mutable_hyperparameters()->set_eval_strategy("sometimes"); },
       "hyperparameters.eval_strategy"},
      {"lr_scheduler_type",
       [](v1::JobSpec* s) { s->mutable_hyperparameters()->set_lr_scheduler_type("zigzag"); },
       "zigzag"},
      {"save_steps", [](v1::JobSpec* s) { s->mutable_hyperparameters()->set_save_steps(0); },
       "hyperparameters.save_steps"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.field);
    v1::JobSpec spec = TinySpec("sst2-slice", "tiny-sst2");
    c.change(&spec);
    v1::Job job;
    grpc::Status status = Submit(spec, &job);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
    EXPECT_THAT(status.error_message(), HasSubstr(c.message));
  }
  grpc::ClientContext context;
  v1::ListJobsResponse listed;
  ASSERT_TRUE(jobs_->ListJobs(&context, {}, &listed).ok());
  EXPECT_EQ(listed.jobs_size(), 0);
}

// No workers: jobs stay queued, so cancel, the queue limit and dataset protection are exact.
TEST_F(TrainingJobsTest, QueuedJobsCancelLimitAndProtectTheirDatasets) {
  BERTD_REQUIRE_SHARED("data/glue/SST-2/dev.tsv");
  StartServer({"--cpu_workers=0", "--max_queued_jobs=2"});
  UploadSst2Slice("sst2-slice");

  v1::Job first, second, third;
  v1::JobSpec spec = TinySpec("sst2-slice", "tiny-sst2");
  ASSERT_TRUE(Submit(spec, &first).ok());
  EXPECT_EQ(first.state(), v1::JOB_STATE_QUEUED);
  EXPECT_THAT(first.id(), ::testing::StartsWith("job-"));
  EXPECT_EQ(first.name(), "tiny-sst2");  // defaults to the output model
  // Unset hyperparameters come back with their defaults.
  EXPECT_EQ(first.spec().hyperparameters().max_steps(), 10);
  EXPECT_DOUBLE_EQ(first.spec().hyperparameters().adam_beta2(), 0.999);
  EXPECT_EQ(first.spec().hyperparameters().lr_scheduler_type(), "linear");
  ASSERT_TRUE(Submit(spec, &second).ok());
  grpc::Status full = Submit(spec, &third);
  EXPECT_EQ(full.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << full.error_message();
  EXPECT_THAT(full.error_message(), HasSubstr("max_queued_jobs"));

  {
    grpc::ClientContext context;
    v1::DeleteDatasetRequest request;
    request.set_dataset("sst2-slice");
    v1::DeleteDatasetResponse response;
    grpc::Status status = datasets_->DeleteDataset(&context, request, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << status.error_message();
  }

  for (const v1::Job* job : {&first, &second}) {
    grpc::ClientContext context;
    v1::CancelJobRequest request;
    request.set_job_id(job->id());
    v1::Job cancelled;
    ASSERT_TRUE(jobs_->CancelJob(&context, request, &cancelled).ok());
    EXPECT_EQ(cancelled.state(), v1::JOB_STATE_CANCELLED);
    EXPECT_TRUE(cancelled.has_finished_at());
  }
  {
    grpc::ClientContext context;
    v1::CancelJobRequest request;
    request.set_job_id(first.id());
    v1::Job again;
    EXPECT_EQ(jobs_->CancelJob(&context, request, &again).error_code(),
              grpc::StatusCode::FAILED_PRECONDITION);
  }
  {
    grpc::ClientContext context;
    v1::GetJobRequest request;
    request.set_job_id("job-000000000000");
    v1::Job job;
    EXPECT_EQ(jobs_->GetJob(&context, request, &job).error_code(), grpc::StatusCode::NOT_FOUND);
  }
  {
    grpc::ClientContext context;
    v1::ListJobsRequest request;
    request.set_state(v1::JOB_STATE_CANCELLED);
    v1::ListJobsResponse response;
    ASSERT_TRUE(jobs_->ListJobs(&context, request, &response).ok());
    EXPECT_EQ(response.jobs_size(), 2);
  }
  // The cancelled job's history: QUEUED then CANCELLED, and the watch ends by itself.
  std::vector<v1::JobEvent> events = Watch(first.id(), 0, 30);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].state().state(), v1::JOB_STATE_QUEUED);
  EXPECT_EQ(events[1].state().state(), v1::JOB_STATE_CANCELLED);
  EXPECT_EQ(events[1].seq(), 2);
  EXPECT_EQ(Watch(first.id(), 1, 30).size(), 1u);

  // Nothing unfinished uses the dataset any more.
  grpc::ClientContext context;
  v1::DeleteDatasetRequest request;
  request.set_dataset("sst2-slice");
  v1::DeleteDatasetResponse response;
  EXPECT_TRUE(datasets_->DeleteDataset(&context, request, &response).ok());
}

TEST_F(TrainingJobsTest, TinyFineTuningJobSucceedsAndServes) {
  BERTD_REQUIRE_SHARED("data/glue/SST-2/dev.tsv");
  StartServer({"--cpu_workers=1"});
  const v1::Dataset train = UploadSst2Slice("sst2-slice", 24);
  ASSERT_EQ(train.rows(), 24);

  v1::Job job;
  v1::JobSpec spec = TinySpec(train.id(), "tiny-sst2");
  spec.set_eval_split(0.25);
  grpc::Status status = Submit(spec, &job);
  ASSERT_TRUE(status.ok()) << status.error_message();

  std::vector<v1::JobEvent> events = Watch(job.id());
  ASSERT_FALSE(events.empty()) << server_->log();
  const v1::JobEvent& last = events.back();
  ASSERT_TRUE(last.has_state());
  ASSERT_EQ(last.state().state(), v1::JOB_STATE_SUCCEEDED)
      << last.state().error() << "\n" << server_->log();
  EXPECT_EQ(last.state().result_model(), "tiny-sst2@1");
  int progress = 0;
  for (size_t i = 0; i < events.size(); ++i) {
    EXPECT_EQ(events[i].seq(), static_cast<int64_t>(i + 1));
    if (events[i].has_progress()) {
      ++progress;
      EXPECT_GT(events[i].progress().step(), 0);
      EXPECT_EQ(events[i].progress().total_steps(), 10);
    }
  }
  EXPECT_GT(progress, 0);

  grpc::ClientContext context;
  v1::GetJobRequest get;
  get.set_job_id(job.id());
  v1::Job done;
  ASSERT_TRUE(jobs_->GetJob(&context, get, &done).ok());
  EXPECT_EQ(done.state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(done.result_model(), "tiny-sst2@1");
  EXPECT_EQ(done.progress().step(), 10);
  EXPECT_TRUE(done.has_started_at());
  EXPECT_TRUE(done.has_finished_at());
  EXPECT_TRUE(fs::exists(fs::path(data_dir_) / "models" / "tiny-sst2" / "1" / "config.json"));

  // Served at once, with the dataset's labels.
  grpc::ClientContext classify_context;
  v1::ClassifyRequest classify;
  classify.set_model("tiny-sst2");
  classify.add_inputs()->set_text("a gorgeous, witty, seductive movie.");
  v1::ClassifyResponse response;
  status = inference_->Classify(&classify_context, classify, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.model_version(), "tiny-sst2@1");
  ASSERT_EQ(response.results_size(), 1);
  std::set<std::string> labels;
  for (const v1::LabelScore& score : response.results(0).scores()) labels.insert(score.label());
  EXPECT_EQ(labels, (std::set<std::string>{"0", "1"}));

  // A second job into the same model becomes version 2.
  v1::Job again;
  ASSERT_TRUE(Submit(TinySpec("sst2-slice", "tiny-sst2"), &again).ok());
  events = Watch(again.id());
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back().state().state(), v1::JOB_STATE_SUCCEEDED) << events.back().state().error();
  EXPECT_EQ(events.back().state().result_model(), "tiny-sst2@2");
}

// Polls GetJob until `done(job)` or the timeout; returns the last Job seen.
v1::Job WaitForJob(v1::JobService::Stub* jobs, const std::string& id,
                   const std::function<bool(const v1::Job&)>& done, int timeout_seconds = 120) {
  v1::Job job;
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_seconds);
  while (std::chrono::steady_clock::now() < until) {
    grpc::ClientContext context;
    v1::GetJobRequest request;
    request.set_job_id(id);
    if (jobs->GetJob(&context, request, &job).ok() && done(job)) return job;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return job;
}

bool IsRunning(const v1::Job& job) { return job.state() == v1::JOB_STATE_RUNNING; }
bool IsFinal(const v1::Job& job) {
  return job.state() == v1::JOB_STATE_SUCCEEDED || job.state() == v1::JOB_STATE_FAILED ||
         job.state() == v1::JOB_STATE_CANCELLED;
}

v1::Job Cancel(v1::JobService::Stub* jobs, const std::string& id) {
  grpc::ClientContext context;
  v1::CancelJobRequest request;
  request.set_job_id(id);
  v1::Job job;
  grpc::Status status = jobs->CancelJob(&context, request, &job);
  EXPECT_TRUE(status.ok()) << status.error_message();
  return job;
}

TEST_F(TrainingJobsTest, EveryTaskFineTunesThroughGrpcAndReportsMetrics) {
  BERTD_REQUIRE_SHARED("data/squad/tiny.json");
  // The QA fixture joins the repository as a second base model.
  InstallFixtureModel("qa", data_dir_ + "/models", "qa");
  StartServer({"--cpu_workers=1"});

  std::string pairs = "first\tsecond\tlabel\n";
  for (int i = 0; i < 8; ++i) {
    absl::StrAppend(&pairs, i % 2 ? "the cat sat on the mat" : "stocks fell sharply today", "\t",
                    i % 2 ? "it was a sunny day" : "markets closed lower", "\t", i % 2, "\n");
  }
  v1::DatasetMetadata pair_metadata;
  pair_metadata.set_name("pairs");
  pair_metadata.set_format("tsv");
  pair_metadata.set_has_header(true);
  *pair_metadata.mutable_text() = Named("first");
  *pair_metadata.mutable_text_pair() = Named("second");
  *pair_metadata.mutable_label() = Named("label");
  UploadOk(pair_metadata, pairs);
  v1::DatasetMetadata squad_metadata;
  squad_metadata.set_name("squad-tiny");
  squad_metadata.set_format("squad_json");
  UploadOk(squad_metadata, ReadWholeFile(SharedPath("data/squad/tiny.json")));

  struct Case {
    v1::TrainingTask task;
    const char* base;
    const char* train;
    const char* metric;
  };
  for (const Case& c : {Case{v1::TRAINING_TASK_SENTENCE_PAIR_CLASSIFICATION, "classifier", "pairs", "accuracy"},
                        Case{v1::TRAINING_TASK_NEXT_SENTENCE, "classifier", "pairs", "accuracy"},
                        Case{v1::TRAINING_TASK_SPAN_EXTRACTION, "qa", "squad-tiny", "exact_match"}}) {
    v1::JobSpec spec = TinySpec(c.train, absl::StrCat("task-", static_cast<int>(c.task)));
    spec.set_task(c.task);
    spec.set_base_model(c.base);
    spec.set_eval_dataset(c.train);
    spec.mutable_hyperparameters()->set_max_steps(4);
    v1::Job job;
    grpc::Status status = Submit(spec, &job);
    ASSERT_TRUE(status.ok()) << c.metric << ": " << status.error_message();
    v1::Job done = WaitForJob(jobs_.get(), job.id(), IsFinal);
    ASSERT_EQ(done.state(), v1::JOB_STATE_SUCCEEDED) << done.error() << "\n" << server_->log();
    EXPECT_TRUE(done.eval_metrics().count(c.metric)) << "task " << static_cast<int>(c.task);
    EXPECT_TRUE(done.eval_metrics().count("eval_loss"));
  }
}

// STS-B as GLUE ships it (no header; sentences in columns 7 and 8, the score in 9, 0-based):
// fractional scores make a regression job unless it says otherwise; the served model returns a
// raw score and says it is a regression model.
TEST_F(TrainingJobsTest, StsBScoresTrainARegressionModelThatServesRawScores) {
  BERTD_REQUIRE_SHARED("data/glue/STS-B/train.tsv");
  StartServer({"--cpu_workers=1"});
  std::ifstream in(SharedPath("data/glue/STS-B/train.tsv"));
  std::string line, rows;
  for (int i = 0; i < 48 && std::getline(in, line); ++i) rows += line + "\n";
  v1::DatasetMetadata metadata;
  metadata.set_name("stsb-slice");
  metadata.set_format("tsv");
  metadata.set_has_header(false);
  *metadata.mutable_text() = At(7);
  *metadata.mutable_text_pair() = At(8);
  *metadata.mutable_label() = At(9);
  UploadOk(metadata, rows);
  v1::JobSpec spec = TinySpec("stsb-slice", "stsb-tiny");
  spec.set_task(v1::TRAINING_TASK_SENTENCE_PAIR_CLASSIFICATION);
  spec.set_eval_dataset("stsb-slice");
  spec.mutable_hyperparameters()->set_max_steps(4);
  v1::Job job;
  grpc::Status status = Submit(spec, &job);
  ASSERT_TRUE(status.ok()) << status.error_message();
  v1::Job done = WaitForJob(jobs_.get(), job.id(), IsFinal);
  ASSERT_EQ(done.state(), v1::JOB_STATE_SUCCEEDED) << done.error() << "\n" << server_->log();
  EXPECT_TRUE(done.eval_metrics().count("pearson"));
  EXPECT_TRUE(done.eval_metrics().count("spearmanr"));
  EXPECT_FALSE(done.eval_metrics().count("accuracy"));

  auto models = v1::ModelService::NewStub(server_->channel());
  v1::GetModelRequest get;
  get.set_model(done.result_model());
  v1::ModelInfo info;
  grpc::ClientContext get_context;
  ASSERT_TRUE(models->GetModel(&get_context, get, &info).ok());
  EXPECT_EQ(info.problem_type(), "regression");
  EXPECT_EQ(info.labels_size(), 1);
  v1::ClassifyRequest classify;
  classify.set_model(done.result_model());
  auto* input = classify.add_inputs();
  input->set_text("A plane is taking off.");
  input->set_text_pair("An air plane is taking off.");
  v1::ClassifyResponse response;
  grpc::ClientContext context;
  auto inference = v1::InferenceService::NewStub(server_->channel());
  ASSERT_TRUE(inference->Classify(&context, classify, &response).ok());
  ASSERT_EQ(response.results(0).scores_size(), 1);
  EXPECT_EQ(response.results(0).score(), response.results(0).scores(0).score());
}

// JSONL labels given as lists train a multi-label model; it serves a sigmoid per label and the
// labels over the threshold.
TEST_F(TrainingJobsTest, ListLabelsTrainAMultiLabelModelThatServesLabelSets) {
  StartServer({"--cpu_workers=1"});
  std::string rows;
  const char* lines[] = {
      R"({"text": "great acting and a good plot", "label": ["acting", "plot"]})",
      R"({"text": "the acting was wooden", "label": ["acting"]})",
      R"({"text": "a plot full of holes", "label": ["plot"]})",
      R"({"text": "nice weather today", "label": []})"};
  for (int i = 0; i < 6; ++i) {
    for (const char* line : lines) rows += std::string(line) + "\n";
  }
  v1::DatasetMetadata metadata;
  metadata.set_name("tags");
  metadata.set_format("jsonl");
  *metadata.mutable_text() = Named("text");
  *metadata.mutable_label() = Named("label");
  UploadOk(metadata, rows);
  v1::JobSpec spec = TinySpec("tags", "tagger");
  spec.set_eval_dataset("tags");
  spec.mutable_hyperparameters()->set_max_steps(4);
  v1::Job job;
  grpc::Status status = Submit(spec, &job);
  ASSERT_TRUE(status.ok()) << status.error_message();
  v1::Job done = WaitForJob(jobs_.get(), job.id(), IsFinal);
  ASSERT_EQ(done.state(), v1::JOB_STATE_SUCCEEDED) << done.error() << "\n" << server_->log();
  EXPECT_TRUE(done.eval_metrics().count("f1_micro"));
  EXPECT_TRUE(done.eval_metrics().count("f1_macro"));

  auto models = v1::ModelService::NewStub(server_->channel());
  v1::GetModelRequest get;
  get.set_model(done.result_model());
  v1::ModelInfo info;
  grpc::ClientContext get_context;
  ASSERT_TRUE(models->GetModel(&get_context, get, &info).ok());
  EXPECT_EQ(info.problem_type(), "multi_label_classification");
  EXPECT_THAT(std::vector<std::string>(info.labels().begin(), info.labels().end()),
              ::testing::ElementsAre("acting", "plot"));
  // Threshold 0 selects every label, 1 (practically) none.
  for (float threshold : {0.0f, 1.0f}) {
    v1::ClassifyRequest classify;
    classify.set_model(done.result_model());
    classify.set_threshold(threshold);
    classify.add_inputs()->set_text("good acting");
    v1::ClassifyResponse response;
    grpc::ClientContext context;
    auto inference = v1::InferenceService::NewStub(server_->channel());
    ASSERT_TRUE(inference->Classify(&context, classify, &response).ok());
    // (A softmax model never lists labels.)
    EXPECT_EQ(response.results(0).labels_size(), threshold == 0.0f ? 2 : 0);
  }
}

TEST_F(TrainingJobsTest, RunningJobCancelsAndTheServerStaysHealthy) {
  BERTD_REQUIRE_SHARED("data/glue/SST-2/dev.tsv");
  StartServer({"--cpu_workers=1"});
  UploadSst2Slice("sst2-slice", 24);
  v1::JobSpec spec = TinySpec("sst2-slice", "endless");
  spec.mutable_hyperparameters()->set_max_steps(1000000);
  v1::Job job;
  ASSERT_TRUE(Submit(spec, &job).ok());
  ASSERT_TRUE(IsRunning(WaitForJob(jobs_.get(), job.id(), [](const v1::Job& j) {
    return j.progress().step() > 0;
  })));
  Cancel(jobs_.get(), job.id());
  v1::Job done = WaitForJob(jobs_.get(), job.id(), IsFinal);
  EXPECT_EQ(done.state(), v1::JOB_STATE_CANCELLED) << done.error();
  EXPECT_FALSE(fs::exists(fs::path(data_dir_) / "models" / "endless"));

  grpc::ClientContext context;
  v1::ClassifyRequest classify;
  classify.set_model("classifier");
  classify.add_inputs()->set_text("still serving");
  v1::ClassifyResponse response;
  EXPECT_TRUE(inference_->Classify(&context, classify, &response).ok());
}

TEST_F(TrainingJobsTest, HigherPriorityRunsFirst) {
  BERTD_REQUIRE_SHARED("data/glue/SST-2/dev.tsv");
  StartServer({"--cpu_workers=1"});
  UploadSst2Slice("sst2-slice", 24);
  v1::JobSpec blocker = TinySpec("sst2-slice", "blocker");
  blocker.mutable_hyperparameters()->set_max_steps(1000000);
  v1::Job running;
  ASSERT_TRUE(Submit(blocker, &running).ok());
  ASSERT_TRUE(IsRunning(WaitForJob(jobs_.get(), running.id(), IsRunning)));

  v1::JobSpec low = TinySpec("sst2-slice", "low");
  low.mutable_hyperparameters()->set_max_steps(2);
  v1::JobSpec high = TinySpec("sst2-slice", "high");
  high.mutable_hyperparameters()->set_max_steps(2);
  high.set_priority(5);
  v1::Job low_job, high_job;
  ASSERT_TRUE(Submit(low, &low_job).ok());  // submitted first, lower priority
  ASSERT_TRUE(Submit(high, &high_job).ok());
  Cancel(jobs_.get(), running.id());

  v1::Job high_done = WaitForJob(jobs_.get(), high_job.id(), IsFinal);
  v1::Job low_done = WaitForJob(jobs_.get(), low_job.id(), IsFinal);
  ASSERT_EQ(high_done.state(), v1::JOB_STATE_SUCCEEDED) << high_done.error();
  ASSERT_EQ(low_done.state(), v1::JOB_STATE_SUCCEEDED) << low_done.error();
  EXPECT_LE(google::protobuf::util::TimeUtil::TimestampToMilliseconds(high_done.finished_at()),
            google::protobuf::util::TimeUtil::TimestampToMilliseconds(low_done.started_at()))
      << "one worker: the priority 5 job must finish before the priority 0 job starts";
}

TEST_F(TrainingJobsTest, TwoCpuWorkersRunTwoJobsAtOnce) {
  BERTD_REQUIRE_SHARED("data/glue/SST-2/dev.tsv");
  StartServer({"--cpu_workers=2"});
  UploadSst2Slice("sst2-slice", 24);
  std::vector<std::string> ids;
  for (const char* output : {"first", "second"}) {
    v1::JobSpec spec = TinySpec("sst2-slice", output);
    spec.mutable_hyperparameters()->set_max_steps(1000000);
    v1::Job job;
    ASSERT_TRUE(Submit(spec, &job).ok());
    ids.push_back(job.id());
  }
  v1::Job a = WaitForJob(jobs_.get(), ids[0], IsRunning);
  v1::Job b = WaitForJob(jobs_.get(), ids[1], IsRunning);
  EXPECT_TRUE(IsRunning(a) && IsRunning(b)) << "both jobs should run at the same time";
  EXPECT_NE(a.worker(), b.worker());
  for (const std::string& id : ids) Cancel(jobs_.get(), id);
  for (const std::string& id : ids) {
    EXPECT_EQ(WaitForJob(jobs_.get(), id, IsFinal).state(), v1::JOB_STATE_CANCELLED);
  }
}

}  // namespace
}  // namespace bertd::testing
