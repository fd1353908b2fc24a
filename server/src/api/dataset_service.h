#ifndef BERTD_API_DATASET_SERVICE_H_
#define BERTD_API_DATASET_SERVICE_H_

#include <cstdint>
#include <string>

#include "api/stream_limiter.h"
#include "auth/authorizer.h"
#include "bertd/v1/datasets.grpc.pb.h"
#include "jobs/job_store.h"
#include "metrics/server_metrics.h"

namespace bertd::api {

struct DatasetServiceOptions {
  std::string data_dir;  // files go to <data_dir>/datasets/<id>/data.<format>
  int64_t max_dataset_bytes = int64_t{1} << 30;
  // Uploads in progress at once (each holds a server thread and a temporary file).
  int max_concurrent_uploads = 4;
  // A quota on everything under data_dir (datasets, checkpoints, models): an upload that would
  // pass it is refused (RESOURCE_EXHAUSTED). 0: none.
  int64_t max_data_dir_bytes = 0;
};

// bertd.v1.DatasetService. Synchronous handlers: an upload streams to disk and then parses the
// whole file, seconds of work that must not sit on the callback threads serving inference.
class DatasetServiceImpl final : public bertd::v1::DatasetService::Service {
 public:
  DatasetServiceImpl(jobs::JobStore* store, DatasetServiceOptions options);

  // Removes what a crash mid-upload can leave: temporary files, and dataset directories whose
  // record was never committed. Call once at startup, before serving.
  void RemoveLeftovers();

  grpc::Status UploadDataset(grpc::ServerContext* context,
                             grpc::ServerReader<v1::UploadDatasetRequest>* reader,
                             v1::Dataset* response) override;
  grpc::Status ListDatasets(grpc::ServerContext* context, const v1::ListDatasetsRequest* request,
                            v1::ListDatasetsResponse* response) override;
  grpc::Status GetDataset(grpc::ServerContext* context, const v1::GetDatasetRequest* request,
                          v1::Dataset* response) override;
  grpc::Status DeleteDataset(grpc::ServerContext* context, const v1::DeleteDatasetRequest* request,
                             v1::DeleteDatasetResponse* response) override;
  // CPU-bound (seconds for a large corpus); runs on the sync server's thread pool.
  grpc::Status TrainVocabulary(grpc::ServerContext* context,
                               const v1::TrainVocabularyRequest* request,
                               v1::TrainVocabularyResponse* response) override;

 private:
  // Stores the streamed dataset as `owner`'s.
  absl::StatusOr<jobs::DatasetRecord> Upload(grpc::ServerContext* context,
                                             grpc::ServerReader<v1::UploadDatasetRequest>* reader,
                                             const std::string& owner);
  // The dataset, if the caller may use it (PERMISSION_DENIED otherwise).
  absl::StatusOr<jobs::DatasetRecord> OwnDataset(const std::string& id_or_name,
                                                 const auth::Caller& caller);
  absl::Status TrainVocab(const v1::TrainVocabularyRequest& request, const auth::Caller& caller,
                          v1::TrainVocabularyResponse* response);
  std::string datasets_dir() const;

  jobs::JobStore* const store_;
  const DatasetServiceOptions options_;
  StreamLimiter uploads_;
};

// Fills a Dataset from its stored record.
void ToDatasetProto(const jobs::DatasetRecord& record, v1::Dataset* dataset);

}  // namespace bertd::api

#endif  // BERTD_API_DATASET_SERVICE_H_
