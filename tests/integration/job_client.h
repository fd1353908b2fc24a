#ifndef BERTD_TESTS_INTEGRATION_JOB_CLIENT_H_
#define BERTD_TESTS_INTEGRATION_JOB_CLIENT_H_

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "bertd/v1/datasets.grpc.pb.h"
#include "bertd/v1/jobs.grpc.pb.h"

// Dataset and job calls that several integration tests make.
namespace bertd::testing {

// The header and the first `rows` rows of SST-2 dev (shared/data/glue/SST-2/dev.tsv).
std::string Sst2DevRows(int rows);

// Opens an upload of a TSV dataset named `name` with columns sentence/label and sends its
// metadata; the caller writes the chunks and finishes the stream.
std::unique_ptr<grpc::ClientWriter<v1::UploadDatasetRequest>> StartSst2Upload(
    v1::DatasetService::Stub* stub, const std::string& name, grpc::ClientContext* context,
    v1::Dataset* dataset);

// Streams `bytes` as a TSV dataset named `name` with columns sentence/label.
grpc::Status UploadSst2Tsv(const std::shared_ptr<grpc::Channel>& channel, const std::string& name,
                           const std::string& bytes);

// SubmitJob; an error fails the calling test and returns a job without id.
v1::Job SubmitJob(const std::shared_ptr<grpc::Channel>& channel, const v1::JobSpec& spec);

// Watches a job from its first event. `on_event` returns false to stop watching early (the
// function then returns JOB_STATE_UNSPECIFIED); otherwise returns the final state.
v1::JobState WatchJob(const std::shared_ptr<grpc::Channel>& channel, const std::string& job_id,
                      const std::function<bool(const v1::JobEvent&)>& on_event,
                      std::chrono::seconds timeout = std::chrono::minutes(5));

// GetJob; an error fails the calling test.
v1::Job GetJob(const std::shared_ptr<grpc::Channel>& channel, const std::string& job_id);

}  // namespace bertd::testing

#endif  // BERTD_TESTS_INTEGRATION_JOB_CLIENT_H_
