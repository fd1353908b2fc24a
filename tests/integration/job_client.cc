#include "job_client.h"

#include <fstream>
#include <sstream>

#include "gtest/gtest.h"
#include "test_util.h"

namespace bertd::testing {

std::string Sst2DevRows(int rows) {
  std::ifstream in(SharedPath("data/glue/SST-2/dev.tsv"));
  std::stringstream sample;
  std::string line;
  for (int i = 0; i <= rows && std::getline(in, line); ++i) sample << line << "\n";
  return sample.str();
}

std::unique_ptr<grpc::ClientWriter<v1::UploadDatasetRequest>> StartSst2Upload(
    v1::DatasetService::Stub* stub, const std::string& name, grpc::ClientContext* context,
    v1::Dataset* dataset) {
  auto writer = stub->UploadDataset(context, dataset);
  v1::UploadDatasetRequest request;
  auto* metadata = request.mutable_metadata();
  metadata->set_name(name);
  metadata->set_format("tsv");
  metadata->set_has_header(true);
  metadata->mutable_text()->set_name("sentence");
  metadata->mutable_label()->set_name("label");
  writer->Write(request);
  return writer;
}

grpc::Status UploadSst2Tsv(const std::shared_ptr<grpc::Channel>& channel, const std::string& name,
                           const std::string& bytes) {
  auto stub = v1::DatasetService::NewStub(channel);
  grpc::ClientContext context;
  v1::Dataset dataset;
  auto writer = StartSst2Upload(stub.get(), name, &context, &dataset);
  v1::UploadDatasetRequest chunk;
  chunk.set_chunk(bytes);
  writer->Write(chunk);
  writer->WritesDone();
  return writer->Finish();
}

v1::Job SubmitJob(const std::shared_ptr<grpc::Channel>& channel, const v1::JobSpec& spec) {
  auto stub = v1::JobService::NewStub(channel);
  v1::SubmitJobRequest request;
  *request.mutable_spec() = spec;
  v1::Job job;
  grpc::ClientContext context;
  grpc::Status status = stub->SubmitJob(&context, request, &job);
  EXPECT_TRUE(status.ok()) << status.error_message();
  return job;
}

v1::JobState WatchJob(const std::shared_ptr<grpc::Channel>& channel, const std::string& job_id,
                      const std::function<bool(const v1::JobEvent&)>& on_event,
                      std::chrono::seconds timeout) {
  auto stub = v1::JobService::NewStub(channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + timeout);
  v1::WatchJobRequest request;
  request.set_job_id(job_id);
  auto reader = stub->WatchJob(&context, request);
  v1::JobEvent event;
  v1::JobState last = v1::JOB_STATE_UNSPECIFIED;
  while (reader->Read(&event)) {
    if (on_event && !on_event(event)) {
      context.TryCancel();
      return v1::JOB_STATE_UNSPECIFIED;
    }
    if (event.has_state()) last = event.state().state();
  }
  return last;
}

v1::Job GetJob(const std::shared_ptr<grpc::Channel>& channel, const std::string& job_id) {
  auto stub = v1::JobService::NewStub(channel);
  v1::GetJobRequest request;
  request.set_job_id(job_id);
  v1::Job job;
  grpc::ClientContext context;
  grpc::Status status = stub->GetJob(&context, request, &job);
  EXPECT_TRUE(status.ok()) << status.error_message();
  return job;
}

}  // namespace bertd::testing
