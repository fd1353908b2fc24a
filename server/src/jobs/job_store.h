#ifndef BERTD_JOBS_JOB_STORE_H_
#define BERTD_JOBS_JOB_STORE_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "jobs/event_bus.h"

struct sqlite3;
struct sqlite3_stmt;

namespace bertd::jobs {

enum class JobState { kQueued, kRunning, kSucceeded, kFailed, kCancelled };

// "QUEUED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED" (the names stored in the database).
const char* JobStateName(JobState state);
// Accepts the names above in any case; INVALID_ARGUMENT otherwise.
absl::StatusOr<JobState> ParseJobState(absl::string_view name);
// SUCCEEDED, FAILED and CANCELLED never change again.
bool IsFinal(JobState state);

struct JobRecord {
  std::string id;  // "job-<12 hex>", assigned by Create
  std::string name;
  std::string task;
  int priority = 0;  // higher runs first
  std::string spec_json = "{}";
  JobState state = JobState::kQueued;
  std::string error;
  std::string result_model;
  std::string worker;  // set while RUNNING (and kept afterwards)
  int64_t created_at_ms = 0;
  int64_t started_at_ms = 0;   // last claim; 0 while never started
  int64_t finished_at_ms = 0;  // 0 until final
  int attempts = 0;            // runs interrupted by a restart (RequeueRunning)
  bool cancel_requested = false;
  std::string owner;  // the submitting token's name; "" without tokens
};

struct DatasetRecord {
  std::string id;  // "ds-<12 hex>" unless the caller supplies one
  std::string name;  // unique
  std::string format;
  std::string path;
  int64_t rows = 0;
  int64_t size_bytes = 0;
  std::string sha256;
  std::string labels_json = "[]";
  std::string spec_json = "{}";
  int64_t created_at_ms = 0;
  std::string owner;  // the uploading token's name; "" without tokens
};

// Durable jobs, their events and dataset metadata in one SQLite database. Thread-safe.
//
// Concurrency: one connection guarded by one mutex. Every operation is short (no statement
// scans more than one job's rows except List), job traffic is a few writes per second, and a
// single connection makes each multi-statement operation trivially serializable in-process;
// BEGIN IMMEDIATE keeps them atomic against any other process reading the file.
//
// Durability: WAL with synchronous=FULL, so a transaction whose call returned survives power
// loss, not just a process crash (NORMAL would only lose work on power loss, but a job reported
// SUCCEEDED that reverts to RUNNING would rerun hours of training). The cost is one fsync per
// commit, which progress events at a few per second per job easily afford.
//
// Every state transition appends a "state" event in the same transaction, so the event log
// alone tells a watcher the job's history, and the final state event is always the last one.
//
// Open takes an exclusive lock on "<path>.lock" for the store's lifetime: a second server on
// the same data directory would otherwise requeue the first one's running jobs.
class JobStore {
 public:
  static absl::StatusOr<std::unique_ptr<JobStore>> Open(const std::string& path);
  ~JobStore();
  JobStore(const JobStore&) = delete;
  JobStore& operator=(const JobStore&) = delete;

  const std::string& path() const { return path_; }
  int schema_version() const { return schema_version_; }

  // --- Jobs -----------------------------------------------------------------------------------

  // Stores `job` as QUEUED with a fresh id and created time (id, state, timestamps, worker,
  // error, result and attempts of the argument are ignored). Every id in `dataset_ids` must
  // exist (NOT_FOUND otherwise); DeleteDataset refuses them while the job is unfinished.
  absl::StatusOr<JobRecord> Create(JobRecord job, const std::vector<std::string>& dataset_ids = {});
  absl::StatusOr<JobRecord> Get(const std::string& id);
  // Newest first; `limit` <= 0: all; with `owner`, only that owner's jobs; with `after_id`, only
  // jobs created before that one (the next page; NOT_FOUND for an unknown id).
  absl::StatusOr<std::vector<JobRecord>> List(std::optional<JobState> state = std::nullopt,
                                              int limit = 0,
                                              const std::optional<std::string>& owner = std::nullopt,
                                              const std::string& after_id = "");
  // How many jobs are in `state` (SQL COUNT: no job is read).
  absl::StatusOr<int64_t> CountJobs(JobState state);
  // Dataset ids the job was created with.
  absl::StatusOr<std::vector<std::string>> JobDatasets(const std::string& job_id);

  // Atomically takes the highest-priority, then oldest QUEUED job and marks it RUNNING on
  // `worker`. nullopt when the queue is empty.
  absl::StatusOr<std::optional<JobRecord>> ClaimNext(const std::string& worker);
  // Marks job `id` RUNNING on `worker` if it is still QUEUED; nullopt otherwise (cancelled or
  // claimed meanwhile).
  absl::StatusOr<std::optional<JobRecord>> Claim(const std::string& id, const std::string& worker);
  // The QUEUED jobs in the order ClaimNext takes them: highest priority, then oldest.
  absl::StatusOr<std::vector<JobRecord>> Queue();

  // QUEUED or RUNNING -> `state` (must be final). FAILED_PRECONDITION when already final.
  absl::Status Finish(const std::string& id, JobState state, const std::string& error,
                      const std::string& result_model);

  // QUEUED -> CANCELLED at once; RUNNING -> cancel_requested (the runner sees it and stops);
  // final -> FAILED_PRECONDITION. Returns the updated record.
  absl::StatusOr<JobRecord> RequestCancel(const std::string& id);
  absl::StatusOr<bool> IsCancelRequested(const std::string& id);

  // At startup: every RUNNING job was interrupted by the previous process. Those with a cancel
  // request become CANCELLED; the others go back to QUEUED with attempts+1 so that they resume
  // from their checkpoint. Returns the requeued ids, oldest claim first.
  absl::StatusOr<std::vector<std::string>> RequeueRunning();

  // --- Events ---------------------------------------------------------------------------------

  // Appends an event with the job's next seq and publishes it after the commit. `type` "state"
  // is reserved for transitions (INVALID_ARGUMENT); an unfinished job only
  // (FAILED_PRECONDITION), so the final state event stays last. `payload_json` must be JSON
  // ("" means {}).
  absl::StatusOr<JobEvent> AppendEvent(const std::string& job_id, const std::string& type,
                                       const std::string& payload_json);
  // Events with seq > after_seq, in seq order; `limit` <= 0: all. NOT_FOUND for unknown jobs.
  absl::StatusOr<std::vector<JobEvent>> Events(const std::string& job_id, int64_t after_seq = 0,
                                               int limit = 0);

  // The job's latest event of `type` (an index lookup, whatever the number of events); nullopt
  // when it has none.
  absl::StatusOr<std::optional<JobEvent>> LatestEvent(const std::string& job_id,
                                                      const std::string& type);

  // Live events committed after this call returns ("" = all jobs). See EventBus for the rules
  // callbacks follow; the subscription must not outlive the store. Use EventCursor for history
  // followed by live events.
  EventBus::Subscription Subscribe(const std::string& job_id, EventBus::Callback callback);

  // --- Datasets -------------------------------------------------------------------------------

  // Assigns id (if empty) and created time. ALREADY_EXISTS for a taken name or id.
  absl::StatusOr<DatasetRecord> CreateDataset(DatasetRecord dataset);
  // By id, or else by name.
  absl::StatusOr<DatasetRecord> GetDataset(const std::string& id_or_name);
  // Newest first; with `owner`, only that owner's datasets.
  absl::StatusOr<std::vector<DatasetRecord>> ListDatasets(
      const std::optional<std::string>& owner = std::nullopt);
  // Removes the metadata (the caller removes the files) and returns what was removed.
  // FAILED_PRECONDITION naming the job while a QUEUED or RUNNING job uses the dataset.
  absl::StatusOr<DatasetRecord> DeleteDataset(const std::string& id_or_name);

  // --- Model owners ---------------------------------------------------------------------------
  // Who may add versions to a model that a job writes (auth/ownership.h has the rule).

  // Records `owner` for `model` unless the model already has one; returns the owner on record
  // (the caller compares it with its own). Atomic: of two claims at once, exactly one wins.
  absl::StatusOr<std::string> ClaimModel(const std::string& model, const std::string& owner);
  // The owner on record, or nullopt for a model no job has claimed.
  absl::StatusOr<std::optional<std::string>> ModelOwner(const std::string& model);

  // PRAGMA integrity_check and foreign_key_check; INTERNAL with the first problem.
  absl::Status CheckIntegrity();

 private:
  class Statement;
  JobStore(std::string path, sqlite3* db, int lock_fd);

  absl::Status Migrate() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status Exec(const char* sql) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<Statement> Prepare(const char* sql) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status SqliteError(int rc, absl::string_view what) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Runs `body` in BEGIN IMMEDIATE ... COMMIT, rolling back when it fails; then publishes
  // `events` (filled by `body`) in commit order.
  template <typename Body>
  absl::Status Transaction(Body body, std::vector<JobEvent>* events)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  absl::StatusOr<JobRecord> GetLocked(const std::string& id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // ClaimNext ("" = the first in queue order) and Claim.
  absl::StatusOr<std::optional<JobRecord>> ClaimWhere(const std::string& id,
                                                      const std::string& worker);
  absl::StatusOr<DatasetRecord> GetDatasetLocked(const std::string& id_or_name)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<JobEvent> InsertEvent(const std::string& job_id, const std::string& type,
                                       const std::string& payload_json)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Appends the "state" event describing `job`'s current state.
  absl::StatusOr<JobEvent> InsertStateEvent(const JobRecord& job, absl::string_view reason)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::string NewId(absl::string_view prefix) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string path_;
  const int lock_fd_;
  int schema_version_ = 0;
  EventBus bus_;

  absl::Mutex mu_;
  sqlite3* db_ ABSL_GUARDED_BY(mu_);
  // Prepared once, reused for the connection's lifetime; in_use_ detects a nested use of the
  // same SQL, which then gets a one-off statement.
  std::map<std::string, sqlite3_stmt*> statements_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, bool> in_use_ ABSL_GUARDED_BY(mu_);
  std::mt19937_64 rng_ ABSL_GUARDED_BY(mu_);
};

}  // namespace bertd::jobs

#endif  // BERTD_JOBS_JOB_STORE_H_
