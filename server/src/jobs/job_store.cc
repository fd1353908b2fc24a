#include "jobs/job_store.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <set>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "jobs/job_store_internal.h"

namespace bertd::jobs {
namespace {

// Schema migrations, applied in order inside one transaction each. Never edit a shipped entry:
// append a new one.
constexpr const char* kMigrations[] = {
    // 1: jobs, their events, datasets and which job uses which dataset.
    R"sql(
    CREATE TABLE jobs (
      seqno INTEGER PRIMARY KEY,  -- insertion order: "oldest" without trusting the clock
      id TEXT NOT NULL UNIQUE,
      name TEXT NOT NULL DEFAULT '',
      task TEXT NOT NULL DEFAULT '',
      priority INTEGER NOT NULL DEFAULT 0,
      spec_json TEXT NOT NULL DEFAULT '{}',
      state TEXT NOT NULL
        CHECK (state IN ('QUEUED', 'RUNNING', 'SUCCEEDED', 'FAILED', 'CANCELLED')),
      error TEXT NOT NULL DEFAULT '',
      result_model TEXT NOT NULL DEFAULT '',
      worker TEXT NOT NULL DEFAULT '',
      created_at_ms INTEGER NOT NULL,
      started_at_ms INTEGER NOT NULL DEFAULT 0,
      finished_at_ms INTEGER NOT NULL DEFAULT 0,
      attempts INTEGER NOT NULL DEFAULT 0,
      cancel_requested INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX jobs_queue ON jobs (state, priority DESC, seqno);
    CREATE TABLE job_events (
      job_id TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
      seq INTEGER NOT NULL,
      time_ms INTEGER NOT NULL,
      type TEXT NOT NULL,
      payload_json TEXT NOT NULL,
      PRIMARY KEY (job_id, seq)
    ) WITHOUT ROWID;
    CREATE TABLE datasets (
      id TEXT PRIMARY KEY,
      name TEXT NOT NULL UNIQUE,
      format TEXT NOT NULL DEFAULT '',
      path TEXT NOT NULL DEFAULT '',
      rows INTEGER NOT NULL DEFAULT 0,
      size_bytes INTEGER NOT NULL DEFAULT 0,
      sha256 TEXT NOT NULL DEFAULT '',
      labels_json TEXT NOT NULL DEFAULT '[]',
      spec_json TEXT NOT NULL DEFAULT '{}',
      created_at_ms INTEGER NOT NULL
    );
    CREATE TABLE job_datasets (
      job_id TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
      dataset_id TEXT NOT NULL REFERENCES datasets (id) ON DELETE CASCADE,
      PRIMARY KEY (job_id, dataset_id)
    ) WITHOUT ROWID;
    CREATE INDEX job_datasets_by_dataset ON job_datasets (dataset_id);
    )sql",
    // 2: owners (the token name; '' for rows made before, or without tokens), and who may add
    // versions to a model that a job created.
    R"sql(
    ALTER TABLE jobs ADD COLUMN owner TEXT NOT NULL DEFAULT '';
    ALTER TABLE datasets ADD COLUMN owner TEXT NOT NULL DEFAULT '';
    CREATE TABLE model_owners (
      model TEXT PRIMARY KEY,
      owner TEXT NOT NULL,
      created_at_ms INTEGER NOT NULL
    ) WITHOUT ROWID;
    )sql",
    // 3: a job's latest event of a type without reading the others (GetJob, ListJobs).
    R"sql(
    CREATE INDEX job_events_by_type ON job_events (job_id, type, seq);
    )sql",
};
constexpr int kSchemaVersion = static_cast<int>(std::size(kMigrations));

}  // namespace

const char* JobStateName(JobState state) {
  switch (state) {
    case JobState::kQueued:
      return "QUEUED";
    case JobState::kRunning:
      return "RUNNING";
    case JobState::kSucceeded:
      return "SUCCEEDED";
    case JobState::kFailed:
      return "FAILED";
    case JobState::kCancelled:
      return "CANCELLED";
  }
  return "UNKNOWN";
}

absl::StatusOr<JobState> ParseJobState(absl::string_view name) {
  for (JobState state : {JobState::kQueued, JobState::kRunning, JobState::kSucceeded,
                         JobState::kFailed, JobState::kCancelled}) {
    if (absl::EqualsIgnoreCase(name, JobStateName(state))) return state;
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown job state '", name, "'"));
}

bool IsFinal(JobState state) {
  return state == JobState::kSucceeded || state == JobState::kFailed ||
         state == JobState::kCancelled;
}

absl::StatusOr<std::unique_ptr<JobStore>> JobStore::Open(const std::string& path) {
  std::error_code ec;
  std::filesystem::path parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent, ec);

  std::string lock_path = path + ".lock";
  int lock_fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (lock_fd < 0) {
    return absl::InternalError(absl::StrCat("cannot open ", lock_path, ": ", std::strerror(errno)));
  }
  if (::flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
    int err = errno;
    ::close(lock_fd);
    if (err == EWOULDBLOCK) {
      return absl::FailedPreconditionError(
          absl::StrCat("job database ", path, " is already open (another bertd process?)"));
    }
    return absl::InternalError(absl::StrCat("cannot lock ", lock_path, ": ", std::strerror(err)));
  }

  sqlite3* db = nullptr;
  // NOMUTEX: the store's own mutex serializes every use of the connection.
  int rc = sqlite3_open_v2(path.c_str(), &db,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                           nullptr);
  if (rc != SQLITE_OK) {
    std::string message = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    sqlite3_close_v2(db);
    ::close(lock_fd);
    return absl::InternalError(absl::StrCat("cannot open job database ", path, ": ", message));
  }
  sqlite3_extended_result_codes(db, 1);

  std::unique_ptr<JobStore> store(new JobStore(path, db, lock_fd));
  absl::MutexLock lock(&store->mu_);
  // busy_timeout only matters for other processes (e.g. the sqlite3 shell) touching the file.
  for (const char* pragma : {"PRAGMA journal_mode=WAL", "PRAGMA synchronous=FULL",
                             "PRAGMA foreign_keys=ON", "PRAGMA busy_timeout=5000"}) {
    BERTD_RETURN_IF_ERROR(store->Exec(pragma));
  }
  BERTD_RETURN_IF_ERROR(store->Migrate());
  return store;
}

JobStore::JobStore(std::string path, sqlite3* db, int lock_fd)
    : path_(std::move(path)), lock_fd_(lock_fd), db_(db), rng_(std::random_device{}()) {}

JobStore::~JobStore() {
  absl::MutexLock lock(&mu_);
  for (auto& [sql, stmt] : statements_) sqlite3_finalize(stmt);
  statements_.clear();
  in_use_.clear();
  sqlite3_close_v2(db_);
  db_ = nullptr;
  ::close(lock_fd_);  // releases the flock
}

absl::Status JobStore::Exec(const char* sql) {
  char* error = nullptr;
  int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &error);
  if (rc == SQLITE_OK) return absl::OkStatus();
  std::string message = error != nullptr ? error : sqlite3_errstr(rc);
  sqlite3_free(error);
  return absl::InternalError(absl::StrCat("sqlite: ", message, " (", path_, ")"));
}

absl::StatusOr<JobStore::Statement> JobStore::Prepare(const char* sql) {
  auto it = statements_.find(sql);
  if (it != statements_.end() && !in_use_[sql]) {
    in_use_[sql] = true;
    return Statement(db_, it->second, &in_use_[sql]);
  }
  bool cache = it == statements_.end();
  sqlite3_stmt* stmt = nullptr;
  int rc = sqlite3_prepare_v3(db_, sql, -1, cache ? SQLITE_PREPARE_PERSISTENT : 0, &stmt, nullptr);
  if (rc != SQLITE_OK) {
    return absl::InternalError(absl::StrCat("sqlite: ", sqlite3_errmsg(db_), " in: ", sql));
  }
  if (!cache) return Statement(db_, stmt, nullptr);  // nested use of a busy cached statement
  statements_.emplace(sql, stmt);
  bool* in_use = &in_use_[sql];  // std::map nodes are stable
  *in_use = true;
  return Statement(db_, stmt, in_use);
}

absl::Status JobStore::Migrate() {
  BERTD_RETURN_IF_ERROR(
      Exec("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)"));
  int version = 0;
  {
    BERTD_ASSIGN_OR_RETURN(Statement select,
                           Prepare("SELECT COALESCE(MAX(version), 0) FROM schema_version"));
    BERTD_ASSIGN_OR_RETURN(bool row, select.Step());
    if (row) version = static_cast<int>(select.Int(0));
  }
  if (version > kSchemaVersion) {
    return absl::FailedPreconditionError(
        absl::StrCat("job database ", path_, " has schema version ", version,
                     " but this bertd knows only up to ", kSchemaVersion, "; upgrade bertd"));
  }
  std::vector<JobEvent> no_events;
  for (; version < kSchemaVersion; ++version) {
    int next = version + 1;
    BERTD_RETURN_IF_ERROR(Transaction(
        [&]() -> absl::Status {
          BERTD_RETURN_IF_ERROR(Exec(kMigrations[version]));
          BERTD_RETURN_IF_ERROR(Exec("DELETE FROM schema_version"));
          BERTD_ASSIGN_OR_RETURN(Statement insert,
                                 Prepare("INSERT INTO schema_version (version) VALUES (?)"));
          return insert.Bind(1, next).Run();
        },
        &no_events));
  }
  schema_version_ = version;
  return absl::OkStatus();
}

std::string JobStore::NewId(absl::string_view prefix) {
  return absl::StrFormat("%s%012x", prefix, rng_() & 0xffffffffffffULL);
}

absl::Status JobStore::CheckIntegrity() {
  absl::MutexLock lock(&mu_);
  {
    BERTD_ASSIGN_OR_RETURN(Statement check, Prepare("PRAGMA integrity_check"));
    BERTD_ASSIGN_OR_RETURN(bool row, check.Step());
    if (!row || check.Text(0) != "ok") {
      return absl::InternalError(
          absl::StrCat("integrity_check of ", path_, ": ", row ? check.Text(0) : "no result"));
    }
  }
  BERTD_ASSIGN_OR_RETURN(Statement check, Prepare("PRAGMA foreign_key_check"));
  BERTD_ASSIGN_OR_RETURN(bool row, check.Step());
  if (row) {
    return absl::InternalError(absl::StrCat("foreign_key_check of ", path_, ": table ",
                                            check.Text(0), " row ", check.Int(1),
                                            " references missing ", check.Text(2)));
  }
  return absl::OkStatus();
}

}  // namespace bertd::jobs
