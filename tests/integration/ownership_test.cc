// Roles that hold (issue #18): jobs, datasets and the models jobs write belong to the token that
// made them. A trainer cannot add versions to a model placed by hand or made by another token (the
// role leak: any trainer could overwrite what every unversioned request is served), and sees,
// watches, cancels, uses and deletes only its own jobs and datasets; admins may do all of it.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "bertd/v1/datasets.grpc.pb.h"
#include "bertd/v1/jobs.grpc.pb.h"
#include "bertd_process.h"
#include "test_util.h"

namespace bertd::testing {
namespace {

using ::testing::HasSubstr;

constexpr char kAlice[] = "alice-token-0123456789";
constexpr char kBob[] = "bob-token-0123456789";
constexpr char kRoot[] = "root-token-0123456789";
constexpr char kViewer[] = "viewer-token-0123456789";

// Token lines from sha256sum's output: independent of bertd's own hashing.
std::string WriteTokens(const std::string& dir) {
  const std::string path = dir + "/tokens.txt";
  std::ofstream(path) << "# ownership test\n";
  const std::vector<std::vector<std::string>> tokens = {
      {kAlice, "trainer", "alice"}, {kBob, "trainer", "bob"}, {kRoot, "admin", "root"},
      {kViewer, "reader", "viewer"}};
  for (const auto& t : tokens) {
    const std::string command = "printf %s '" + t[0] + "' | sha256sum | cut -d' ' -f1 | tr -d '\\n' >> " +
                                path + " && echo ' " + t[1] + " " + t[2] + "' >> " + path;
    EXPECT_EQ(std::system(command.c_str()), 0);
  }
  return path;
}

class OwnershipTest : public ::testing::Test {
 protected:
  void SetUp() override {
    BERTD_REQUIRE_SHARED("fixtures/tiny-bert/classifier/config.json");
    data_dir_ = MakeTempDir("bertd-ownership");
    // The "production" model of the issue: placed in the repository by hand.
    InstallFixtureModel("classifier", data_dir_ + "/models", "prod");
    server_ = std::make_unique<BertdProcess>(
        data_dir_,
        std::vector<std::string>{"--auth_tokens_file=" + WriteTokens(data_dir_), "--cpu_workers=0",
                                 "--max_list_page_size=3"});
    ASSERT_TRUE(server_->WaitUntilServing()) << server_->log();
    datasets_ = v1::DatasetService::NewStub(server_->channel());
    jobs_ = v1::JobService::NewStub(server_->channel());
  }

  static void As(grpc::ClientContext* context, const char* token) {
    context->AddMetadata("authorization", std::string("Bearer ") + token);
    context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  }

  grpc::Status Upload(const char* token, const std::string& name) {
    grpc::ClientContext context;
    As(&context, token);
    v1::Dataset dataset;
    auto writer = datasets_->UploadDataset(&context, &dataset);
    v1::UploadDatasetRequest request;
    request.mutable_metadata()->set_name(name);
    request.mutable_metadata()->set_format("tsv");
    request.mutable_metadata()->set_has_header(true);
    request.mutable_metadata()->mutable_text()->set_name("sentence");
    request.mutable_metadata()->mutable_label()->set_name("label");
    writer->Write(request);
    v1::UploadDatasetRequest chunk;
    chunk.set_chunk("sentence\tlabel\na fine film\t1\na dull film\t0\n");
    writer->Write(chunk);
    writer->WritesDone();
    return writer->Finish();
  }

  grpc::Status Submit(const char* token, const std::string& dataset, const std::string& output,
                      v1::Job* job) {
    grpc::ClientContext context;
    As(&context, token);
    v1::SubmitJobRequest request;
    v1::JobSpec* spec = request.mutable_spec();
    spec->set_task(v1::TRAINING_TASK_SEQUENCE_CLASSIFICATION);
    spec->set_base_model("prod");
    spec->set_train_dataset(dataset);
    spec->set_output_model(output);
    return jobs_->SubmitJob(&context, request, job);
  }

  // Every page of ListJobs (at most 3 jobs each: --max_list_page_size=3).
  std::vector<std::string> ListJobs(const char* token, int page_size = 0, int* pages = nullptr) {
    v1::ListJobsRequest request;
    request.set_page_size(page_size);
    std::vector<std::string> ids;
    int count = 0;
    do {
      grpc::ClientContext context;
      As(&context, token);
      v1::ListJobsResponse response;
      grpc::Status status = jobs_->ListJobs(&context, request, &response);
      EXPECT_TRUE(status.ok()) << status.error_message();
      if (!status.ok()) break;
      EXPECT_LE(response.jobs_size(), 3);
      for (const v1::Job& job : response.jobs()) ids.push_back(job.id());
      request.set_page_token(response.next_page_token());
      ++count;
    } while (!request.page_token().empty() && count < 100);
    if (pages != nullptr) *pages = count;
    return ids;
  }

  std::vector<std::string> ListDatasets(const char* token) {
    grpc::ClientContext context;
    As(&context, token);
    v1::ListDatasetsRequest request;
    v1::ListDatasetsResponse response;
    EXPECT_TRUE(datasets_->ListDatasets(&context, request, &response).ok());
    std::vector<std::string> names;
    for (const v1::Dataset& dataset : response.datasets()) names.push_back(dataset.name());
    return names;
  }

  std::string data_dir_;
  std::unique_ptr<BertdProcess> server_;
  std::unique_ptr<v1::DatasetService::Stub> datasets_;
  std::unique_ptr<v1::JobService::Stub> jobs_;
};

TEST_F(OwnershipTest, ATrainerCannotAddVersionsToAModelPlacedByHand) {
  ASSERT_TRUE(Upload(kAlice, "alice-data").ok());
  v1::Job job;
  grpc::Status status = Submit(kAlice, "alice-data", "prod", &job);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED) << status.error_message();
  EXPECT_THAT(status.error_message(),
              HasSubstr("output_model: model 'prod' was not created by a job of token 'alice'"));
  EXPECT_TRUE(ListJobs(kRoot).empty()) << "a refused job must not be queued";
  // An admin may, with its own dataset.
  ASSERT_TRUE(Upload(kRoot, "root-data").ok());
  status = Submit(kRoot, "root-data", "prod", &job);
  EXPECT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(job.owner(), "root");
}

TEST_F(OwnershipTest, AModelBelongsToTheTokenOfTheFirstJobThatWroteIt) {
  ASSERT_TRUE(Upload(kAlice, "alice-data").ok());
  ASSERT_TRUE(Upload(kBob, "bob-data").ok());
  v1::Job job;
  ASSERT_TRUE(Submit(kAlice, "alice-data", "alice-model", &job).ok());
  EXPECT_EQ(job.owner(), "alice");
  grpc::Status status = Submit(kBob, "bob-data", "alice-model", &job);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED) << status.error_message();
  EXPECT_THAT(status.error_message(),
              HasSubstr("output_model: model 'alice-model' belongs to another token"));
  // Alice's next version is hers to add; a restart keeps the claim.
  EXPECT_TRUE(Submit(kAlice, "alice-data", "alice-model", &job).ok());
  ASSERT_EQ(server_->Terminate(), 0) << server_->log();
  server_ = std::make_unique<BertdProcess>(
      data_dir_, std::vector<std::string>{"--auth_tokens_file=" + data_dir_ + "/tokens.txt",
                                          "--cpu_workers=0"});
  ASSERT_TRUE(server_->WaitUntilServing()) << server_->log();
  jobs_ = v1::JobService::NewStub(server_->channel());
  EXPECT_EQ(Submit(kBob, "bob-data", "alice-model", &job).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
}

TEST_F(OwnershipTest, JobsAndDatasetsAreSeenUsedAndCancelledOnlyByTheirOwner) {
  ASSERT_TRUE(Upload(kAlice, "alice-data").ok());
  ASSERT_TRUE(Upload(kBob, "bob-data").ok());
  v1::Job alice_job, bob_job;
  ASSERT_TRUE(Submit(kAlice, "alice-data", "a-out", &alice_job).ok());
  ASSERT_TRUE(Submit(kBob, "bob-data", "b-out", &bob_job).ok());

  // Listings.
  EXPECT_EQ(ListJobs(kAlice), std::vector<std::string>{alice_job.id()});
  EXPECT_EQ(ListJobs(kBob), std::vector<std::string>{bob_job.id()});
  EXPECT_EQ(ListJobs(kRoot).size(), 2u);
  EXPECT_TRUE(ListJobs(kViewer).empty());
  EXPECT_EQ(ListDatasets(kAlice), std::vector<std::string>{"alice-data"});
  EXPECT_EQ(ListDatasets(kRoot).size(), 2u);
  EXPECT_TRUE(ListDatasets(kViewer).empty());

  auto expect_denied = [](const grpc::Status& status, const std::string& what) {
    EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED)
        << what << ": " << status.error_message();
    EXPECT_THAT(status.error_message(), HasSubstr("token 'bob' (trainer) may only use its own"))
        << what;
  };
  {
    grpc::ClientContext context;
    As(&context, kBob);
    v1::GetJobRequest request;
    request.set_job_id(alice_job.id());
    v1::Job response;
    expect_denied(jobs_->GetJob(&context, request, &response), "GetJob");
  }
  {
    grpc::ClientContext context;
    As(&context, kBob);
    v1::WatchJobRequest request;
    request.set_job_id(alice_job.id());
    auto reader = jobs_->WatchJob(&context, request);
    v1::JobEvent event;
    EXPECT_FALSE(reader->Read(&event)) << "no event of another token's job";
    expect_denied(reader->Finish(), "WatchJob");
  }
  {
    grpc::ClientContext context;
    As(&context, kBob);
    v1::CancelJobRequest request;
    request.set_job_id(alice_job.id());
    v1::Job response;
    expect_denied(jobs_->CancelJob(&context, request, &response), "CancelJob");
  }
  {
    grpc::ClientContext context;
    As(&context, kBob);
    v1::GetDatasetRequest request;
    request.set_dataset("alice-data");
    v1::Dataset response;
    expect_denied(datasets_->GetDataset(&context, request, &response), "GetDataset");
  }
  {
    grpc::ClientContext context;
    As(&context, kBob);
    v1::DeleteDatasetRequest request;
    request.set_dataset("alice-data");
    v1::DeleteDatasetResponse response;
    expect_denied(datasets_->DeleteDataset(&context, request, &response), "DeleteDataset");
  }
  {
    grpc::ClientContext context;
    As(&context, kBob);
    v1::TrainVocabularyRequest request;
    request.set_dataset("alice-data");
    v1::TrainVocabularyResponse response;
    expect_denied(datasets_->TrainVocabulary(&context, request, &response), "TrainVocabulary");
  }
  v1::Job job;
  grpc::Status status = Submit(kBob, "alice-data", "b-out", &job);
  expect_denied(status, "SubmitJob");
  EXPECT_THAT(status.error_message(), HasSubstr("train_dataset: dataset 'alice-data'"));

  // Nothing of Alice's changed, and her own calls and an admin's still work.
  {
    grpc::ClientContext context;
    As(&context, kAlice);
    v1::GetJobRequest request;
    request.set_job_id(alice_job.id());
    v1::Job response;
    ASSERT_TRUE(jobs_->GetJob(&context, request, &response).ok());
    EXPECT_FALSE(response.cancel_requested());
    EXPECT_EQ(response.state(), v1::JOB_STATE_QUEUED);
    EXPECT_EQ(response.owner(), "alice");
  }
  {
    grpc::ClientContext context;
    As(&context, kRoot);
    v1::CancelJobRequest request;
    request.set_job_id(alice_job.id());
    v1::Job response;
    ASSERT_TRUE(jobs_->CancelJob(&context, request, &response).ok());
    EXPECT_EQ(response.state(), v1::JOB_STATE_CANCELLED);
  }
  {
    grpc::ClientContext context;
    As(&context, kAlice);
    v1::GetDatasetRequest request;
    request.set_dataset("alice-data");
    v1::Dataset response;
    ASSERT_TRUE(datasets_->GetDataset(&context, request, &response).ok());
    EXPECT_EQ(response.owner(), "alice");
  }
  EXPECT_EQ(ListDatasets(kRoot).size(), 2u);
}

// Files under --data_dir are created owner-only (umask 077 in the server), whatever umask it was
// started with: the database, datasets and job directories hold other people's data.
TEST_F(OwnershipTest, ListJobsPagesThroughTheCallersJobsOnly) {
  ASSERT_TRUE(Upload(kAlice, "alice-data").ok());
  ASSERT_TRUE(Upload(kBob, "bob-data").ok());
  std::vector<std::string> alice_jobs;
  for (int i = 0; i < 7; ++i) {
    v1::Job job;
    ASSERT_TRUE(Submit(kAlice, "alice-data", "alice-model", &job).ok());
    alice_jobs.insert(alice_jobs.begin(), job.id());  // newest first
    if (i % 3 == 0) {
      ASSERT_TRUE(Submit(kBob, "bob-data", "bob-model", &job).ok());
    }
  }
  // Pages of 2, then the server's maximum of 3 for a larger page_size: the same jobs, in order.
  int pages = 0;
  EXPECT_EQ(ListJobs(kAlice, 2, &pages), alice_jobs);
  EXPECT_EQ(pages, 4);
  EXPECT_EQ(ListJobs(kAlice, 5000, &pages), alice_jobs);
  EXPECT_EQ(pages, 3);
  EXPECT_EQ(ListJobs(kBob).size(), 3u);
  EXPECT_EQ(ListJobs(kRoot).size(), 10u);

  // The old `limit`: at most that many, one page.
  {
    grpc::ClientContext context;
    As(&context, kAlice);
    v1::ListJobsRequest request;
    request.set_limit(2);
    v1::ListJobsResponse response;
    ASSERT_TRUE(jobs_->ListJobs(&context, request, &response).ok());
    EXPECT_EQ(response.jobs_size(), 2);
    EXPECT_EQ(response.next_page_token(), "");
  }
  // Tokens that ListJobs never issued, and a negative page size.
  for (const std::string& token : {std::string("garbage!"), std::string(5000, 'A'),
                                   std::string("am9icy52MTpqb2ItbWlzc2luZw")}) {
    grpc::ClientContext context;
    As(&context, kAlice);
    v1::ListJobsRequest request;
    request.set_page_token(token);
    v1::ListJobsResponse response;
    grpc::Status status = jobs_->ListJobs(&context, request, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << token.substr(0, 20);
    EXPECT_THAT(status.error_message(), HasSubstr("page_token"));
  }
  grpc::ClientContext context;
  As(&context, kAlice);
  v1::ListJobsRequest request;
  request.set_page_size(-1);
  v1::ListJobsResponse response;
  grpc::Status status = jobs_->ListJobs(&context, request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("page_size"));
}

TEST_F(OwnershipTest, FilesUnderTheDataDirectoryAreOwnerOnly) {
  ASSERT_TRUE(Upload(kAlice, "alice-data").ok());
  v1::Job job;
  ASSERT_TRUE(Submit(kAlice, "alice-data", "a-out", &job).ok());
  int checked = 0;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(data_dir_)) {
    const std::string path = entry.path().string();
    // Made by the test, not the server.
    if (path.find("/models/prod") != std::string::npos || path.find("tokens.txt") != std::string::npos ||
        path == data_dir_ + "/models" || path == data_dir_ + "/bertd.log") {
      continue;
    }
    struct stat st {};
    ASSERT_EQ(::lstat(path.c_str(), &st), 0) << path;
    EXPECT_EQ(st.st_mode & 077, 0u) << path << " is readable or writable by others";
    ++checked;
  }
  EXPECT_GE(checked, 4);  // bertd.db, its lock and WAL, datasets/<id>/data.tsv and directories
}

}  // namespace
}  // namespace bertd::testing
