#ifndef BERTD_API_JOB_SERVICE_H_
#define BERTD_API_JOB_SERVICE_H_

#include <atomic>
#include <optional>
#include <string>

#include "api/job_codec.h"
#include "api/stream_limiter.h"
#include "auth/authorizer.h"
#include "bertd/v1/jobs.grpc.pb.h"
#include "jobs/device_pool.h"
#include "jobs/job_store.h"
#include "jobs/scheduler.h"
#include "metrics/server_metrics.h"
#include "registry/model_registry.h"
#include "training/job_spec.h"

namespace bertd::api {

struct JobServiceOptions {
  int max_queued_jobs = 1000;
  // The training pool: a job that could never fit it is refused at submit (none: every job is
  // accepted and waits).
  std::vector<jobs::Slot> pool;
  // --training_memory_limit: a job whose estimated need exceeds it is refused (0: no check).
  int64_t memory_limit_bytes = 0;
  // This machine's physical memory, which a job's local workers share (0: unknown, no check).
  int64_t machine_memory_bytes = 0;
  // Open WatchJob streams, in total and per caller (token name; client address without tokens).
  int max_watch_streams = 256;
  int max_watch_streams_per_caller = 32;
  // ListJobs: jobs per page when the request names none, and the most it may ask for.
  int default_page_size = 100;
  int max_page_size = 1000;
};

// bertd.v1.JobService. Synchronous handlers: job RPCs are rare and short, except WatchJob, whose
// stream waits on an EventCursor; a sync thread per watcher is fine at the handful of watchers a
// training server has.
class JobServiceImpl final : public bertd::v1::JobService::Service {
 public:
  JobServiceImpl(jobs::JobStore* store, jobs::JobScheduler* scheduler,
                 registry::ModelRegistry* registry, JobServiceOptions options);

  // Ends every WatchJob stream (UNAVAILABLE) so that server shutdown need not wait out its grace
  // period for watchers of long jobs. Call before grpc::Server::Shutdown.
  void Shutdown() { shutting_down_ = true; }

  grpc::Status SubmitJob(grpc::ServerContext* context, const v1::SubmitJobRequest* request,
                         v1::Job* response) override;
  grpc::Status GetJob(grpc::ServerContext* context, const v1::GetJobRequest* request,
                      v1::Job* response) override;
  grpc::Status ListJobs(grpc::ServerContext* context, const v1::ListJobsRequest* request,
                        v1::ListJobsResponse* response) override;
  grpc::Status CancelJob(grpc::ServerContext* context, const v1::CancelJobRequest* request,
                         v1::Job* response) override;
  grpc::Status WatchJob(grpc::ServerContext* context, const v1::WatchJobRequest* request,
                        grpc::ServerWriter<v1::JobEvent>* writer) override;

 private:
  absl::StatusOr<jobs::JobRecord> Submit(const v1::JobSpec& spec, const auth::Caller& caller);
  // Checks that a dataset named by the spec exists, is the caller's and can feed the task;
  // returns its id.
  absl::StatusOr<std::string> CheckDataset(const std::string& id_or_name, const char* field,
                                           training::TrainingTask task, const auth::Caller& caller);
  // PERMISSION_DENIED unless the caller may add versions to `model` (auth/ownership.h).
  absl::Status CheckOutputModel(const std::string& model, const auth::Caller& caller);
  // Records the caller as the owner of a new `model`, then checks as CheckOutputModel does.
  absl::Status ClaimOutputModel(const std::string& model, const auth::Caller& caller);
  // Whether `model` has a loaded version or a directory in the repository.
  bool InRepository(const std::string& model) const;
  // INVALID_ARGUMENT with the estimate when a job that may run on a CPU slot cannot fit
  // --training_memory_limit.
  absl::Status CheckMemory(const training::TrainingJobSpec& spec, const jobs::SlotDemand& demand,
                           const std::string& base_dir);
  // Whose watches count together: the token's name, or the client's address without tokens.
  static std::string WatcherKey(const grpc::ServerContext& context, const auth::Caller& caller);
  // The job, if the caller may see it (PERMISSION_DENIED otherwise).
  absl::StatusOr<jobs::JobRecord> OwnJob(const std::string& job_id, const auth::Caller& caller);
  // One page of ListJobs: page_size (or the old limit) bounded by the options, page_token decoded.
  absl::Status ListPage(const v1::ListJobsRequest& request, std::optional<jobs::JobState> state,
                        const auth::Caller& caller, v1::ListJobsResponse* response);
  // The record plus what its events say (latest progress and evaluation).
  absl::Status ToJobProto(const jobs::JobRecord& record, v1::Job* job);

  jobs::JobStore* const store_;
  jobs::JobScheduler* const scheduler_;
  registry::ModelRegistry* const registry_;
  const JobServiceOptions options_;
  std::atomic<bool> shutting_down_{false};
  StreamLimiter watches_;
};

}  // namespace bertd::api

#endif  // BERTD_API_JOB_SERVICE_H_
