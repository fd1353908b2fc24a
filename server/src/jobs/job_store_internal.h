#ifndef BERTD_JOBS_JOB_STORE_INTERNAL_H_
#define BERTD_JOBS_JOB_STORE_INTERNAL_H_

// What the parts of JobStore share (job_store.cc: the connection and its schema;
// job_store_jobs.cc: jobs and their events; job_store_datasets.cc: datasets and model owners).
// Only those files include it.

#include <sqlite3.h>

#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/status_macros.h"
#include "jobs/job_store.h"

namespace bertd::jobs {
namespace store_internal {

inline constexpr const char* kJobColumns =
    "id, name, task, priority, spec_json, state, error, result_model, worker, created_at_ms, "
    "started_at_ms, finished_at_ms, attempts, cancel_requested, owner";
inline constexpr const char* kDatasetColumns =
    "id, name, format, path, rows, size_bytes, sha256, labels_json, spec_json, created_at_ms, owner";

inline int64_t NowMs() { return absl::ToUnixMillis(absl::Now()); }

inline absl::StatusOr<std::string> NormalizeJson(absl::string_view what, const std::string& text,
                                                 const char* empty_value) {
  if (text.empty()) return std::string(empty_value);
  if (!nlohmann::json::accept(text)) {
    return absl::InvalidArgumentError(absl::StrCat(what, " is not valid JSON"));
  }
  return text;
}

}  // namespace store_internal

// A cached prepared statement in use; resets it (and clears bindings) when it goes away so the
// next user starts fresh and no read stays open across COMMIT.
class JobStore::Statement {
 public:
  Statement(sqlite3* db, sqlite3_stmt* stmt, bool* in_use)
      : db_(db), stmt_(stmt), in_use_(in_use) {}
  Statement(Statement&& other) noexcept
      : db_(other.db_),
        stmt_(std::exchange(other.stmt_, nullptr)),
        in_use_(std::exchange(other.in_use_, nullptr)),
        bind_rc_(other.bind_rc_) {}
  Statement& operator=(Statement&&) = delete;
  ~Statement() {
    if (stmt_ == nullptr) return;
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
    if (in_use_ != nullptr) {
      *in_use_ = false;
    } else {
      sqlite3_finalize(stmt_);  // a one-off copy made because the cached one was busy
    }
  }

  Statement& Bind(int index, const std::string& value) {
    Check(sqlite3_bind_text(stmt_, index, value.data(), static_cast<int>(value.size()),
                            SQLITE_TRANSIENT));
    return *this;
  }
  Statement& Bind(int index, int64_t value) {
    Check(sqlite3_bind_int64(stmt_, index, value));
    return *this;
  }
  Statement& Bind(int index, int value) { return Bind(index, static_cast<int64_t>(value)); }

  // True while there is a row to read.
  absl::StatusOr<bool> Step() {
    if (bind_rc_ != SQLITE_OK) return Error(bind_rc_);
    int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    return Error(rc);
  }
  // For statements that return no rows.
  absl::Status Run() { return Step().status(); }

  int64_t Int(int column) { return sqlite3_column_int64(stmt_, column); }
  std::string Text(int column) {
    const unsigned char* text = sqlite3_column_text(stmt_, column);
    int size = sqlite3_column_bytes(stmt_, column);
    return text == nullptr ? std::string() : std::string(reinterpret_cast<const char*>(text), size);
  }

  JobRecord ReadJob() {
    JobRecord job;
    job.id = Text(0);
    job.name = Text(1);
    job.task = Text(2);
    job.priority = static_cast<int>(Int(3));
    job.spec_json = Text(4);
    // The CHECK constraint only admits valid names.
    job.state = ParseJobState(Text(5)).value_or(JobState::kFailed);
    job.error = Text(6);
    job.result_model = Text(7);
    job.worker = Text(8);
    job.created_at_ms = Int(9);
    job.started_at_ms = Int(10);
    job.finished_at_ms = Int(11);
    job.attempts = static_cast<int>(Int(12));
    job.cancel_requested = Int(13) != 0;
    job.owner = Text(14);
    return job;
  }

  // Every remaining row, as jobs.
  absl::StatusOr<std::vector<JobRecord>> ReadJobs() {
    std::vector<JobRecord> jobs;
    for (;;) {
      BERTD_ASSIGN_OR_RETURN(bool row, Step());
      if (!row) break;
      jobs.push_back(ReadJob());
    }
    return jobs;
  }
  DatasetRecord ReadDataset() {
    DatasetRecord dataset;
    dataset.id = Text(0);
    dataset.name = Text(1);
    dataset.format = Text(2);
    dataset.path = Text(3);
    dataset.rows = Int(4);
    dataset.size_bytes = Int(5);
    dataset.sha256 = Text(6);
    dataset.labels_json = Text(7);
    dataset.spec_json = Text(8);
    dataset.created_at_ms = Int(9);
    dataset.owner = Text(10);
    return dataset;
  }

  JobEvent ReadEvent() {
    JobEvent event;
    event.job_id = Text(0);
    event.seq = Int(1);
    event.time_ms = Int(2);
    event.type = Text(3);
    event.payload_json = Text(4);
    return event;
  }

 private:
  void Check(int rc) {
    if (rc != SQLITE_OK && bind_rc_ == SQLITE_OK) bind_rc_ = rc;
  }
  absl::Status Error(int rc) {
    std::string message = absl::StrCat(sqlite3_errmsg(db_), " in: ", sqlite3_sql(stmt_));
    switch (rc & 0xff) {
      case SQLITE_CONSTRAINT:
        if (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY) {
          return absl::AlreadyExistsError(message);
        }
        return absl::FailedPreconditionError(message);
      case SQLITE_BUSY:
      case SQLITE_LOCKED:
        return absl::UnavailableError(message);
      case SQLITE_FULL:
        return absl::ResourceExhaustedError(message);
      default:
        return absl::InternalError(message);
    }
  }

  sqlite3* db_;
  sqlite3_stmt* stmt_;
  bool* in_use_;
  int bind_rc_ = SQLITE_OK;
};

template <typename Body>
absl::Status JobStore::Transaction(Body body, std::vector<JobEvent>* events) {
  // IMMEDIATE takes the write lock up front, so a read-then-write (ClaimNext) cannot be
  // interleaved with another process's writer.
  BERTD_RETURN_IF_ERROR(Exec("BEGIN IMMEDIATE"));
  absl::Status status = body();
  if (status.ok()) status = Exec("COMMIT");
  if (!status.ok()) {
    if (sqlite3_get_autocommit(db_) == 0) Exec("ROLLBACK").IgnoreError();
    events->clear();
    return status;
  }
  // Still under mu_: subscribers see events in commit order, never a rolled-back one.
  for (const JobEvent& event : *events) bus_.Publish(event);
  return absl::OkStatus();
}

}  // namespace bertd::jobs

#endif  // BERTD_JOBS_JOB_STORE_INTERNAL_H_
