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

#include <nlohmann/json.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/status_macros.h"

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

constexpr const char* kJobColumns =
    "id, name, task, priority, spec_json, state, error, result_model, worker, created_at_ms, "
    "started_at_ms, finished_at_ms, attempts, cancel_requested, owner";
constexpr const char* kDatasetColumns =
    "id, name, format, path, rows, size_bytes, sha256, labels_json, spec_json, created_at_ms, owner";

int64_t NowMs() { return absl::ToUnixMillis(absl::Now()); }

absl::StatusOr<std::string> NormalizeJson(absl::string_view what, const std::string& text,
                                          const char* empty_value) {
  if (text.empty()) return std::string(empty_value);
  if (!nlohmann::json::accept(text)) {
    return absl::InvalidArgumentError(absl::StrCat(what, " is not valid JSON"));
  }
  return text;
}

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

// --- Jobs -----------------------------------------------------------------------------------

absl::StatusOr<JobRecord> JobStore::GetLocked(const std::string& id) {
  static const std::string sql = absl::StrCat("SELECT ", kJobColumns, " FROM jobs WHERE id = ?");
  BERTD_ASSIGN_OR_RETURN(Statement select, Prepare(sql.c_str()));
  select.Bind(1, id);
  BERTD_ASSIGN_OR_RETURN(bool row, select.Step());
  if (!row) return absl::NotFoundError(absl::StrCat("job ", id, " not found"));
  return select.ReadJob();
}

absl::StatusOr<JobEvent> JobStore::InsertEvent(const std::string& job_id, const std::string& type,
                                               const std::string& payload_json) {
  JobEvent event;
  event.job_id = job_id;
  event.type = type;
  event.payload_json = payload_json;
  event.time_ms = NowMs();
  {
    BERTD_ASSIGN_OR_RETURN(
        Statement select,
        Prepare("SELECT COALESCE(MAX(seq), 0) + 1 FROM job_events WHERE job_id = ?"));
    select.Bind(1, job_id);
    BERTD_ASSIGN_OR_RETURN(bool row, select.Step());
    event.seq = row ? select.Int(0) : 1;
  }
  BERTD_ASSIGN_OR_RETURN(
      Statement insert,
      Prepare("INSERT INTO job_events (job_id, seq, time_ms, type, payload_json) "
              "VALUES (?, ?, ?, ?, ?)"));
  insert.Bind(1, event.job_id)
      .Bind(2, event.seq)
      .Bind(3, event.time_ms)
      .Bind(4, event.type)
      .Bind(5, event.payload_json);
  BERTD_RETURN_IF_ERROR(insert.Run());
  return event;
}

absl::StatusOr<JobEvent> JobStore::InsertStateEvent(const JobRecord& job,
                                                    absl::string_view reason) {
  nlohmann::json payload = {{"state", JobStateName(job.state)}, {"attempts", job.attempts}};
  if (!job.worker.empty()) payload["worker"] = job.worker;
  if (!job.error.empty()) payload["error"] = job.error;
  if (!job.result_model.empty()) payload["result_model"] = job.result_model;
  if (!reason.empty()) payload["reason"] = std::string(reason);
  return InsertEvent(job.id, "state", payload.dump());
}

absl::StatusOr<JobRecord> JobStore::Create(JobRecord job,
                                           const std::vector<std::string>& dataset_ids) {
  BERTD_ASSIGN_OR_RETURN(job.spec_json, NormalizeJson("job spec", job.spec_json, "{}"));
  job.state = JobState::kQueued;
  job.error.clear();
  job.result_model.clear();
  job.worker.clear();
  job.started_at_ms = 0;
  job.finished_at_ms = 0;
  job.attempts = 0;
  job.cancel_requested = false;

  absl::MutexLock lock(&mu_);
  std::vector<JobEvent> events;
  BERTD_RETURN_IF_ERROR(Transaction(
      [&]() -> absl::Status {
        // Names are accepted too; the link always records the id.
        std::set<std::string> datasets;
        for (const std::string& id_or_name : dataset_ids) {
          BERTD_ASSIGN_OR_RETURN(DatasetRecord dataset, GetDatasetLocked(id_or_name));
          datasets.insert(dataset.id);
        }
        for (;;) {  // 48 random bits: a collision is astronomically rare, but cheap to rule out
          job.id = NewId("job-");
          BERTD_ASSIGN_OR_RETURN(Statement exists, Prepare("SELECT 1 FROM jobs WHERE id = ?"));
          exists.Bind(1, job.id);
          BERTD_ASSIGN_OR_RETURN(bool taken, exists.Step());
          if (!taken) break;
        }
        job.created_at_ms = NowMs();
        {
          BERTD_ASSIGN_OR_RETURN(
              Statement insert,
              Prepare("INSERT INTO jobs (id, name, task, priority, spec_json, state, "
                      "created_at_ms, owner) VALUES (?, ?, ?, ?, ?, 'QUEUED', ?, ?)"));
          insert.Bind(1, job.id)
              .Bind(2, job.name)
              .Bind(3, job.task)
              .Bind(4, job.priority)
              .Bind(5, job.spec_json)
              .Bind(6, job.created_at_ms)
              .Bind(7, job.owner);
          BERTD_RETURN_IF_ERROR(insert.Run());
        }
        for (const std::string& dataset_id : datasets) {
          BERTD_ASSIGN_OR_RETURN(
              Statement link,
              Prepare("INSERT INTO job_datasets (job_id, dataset_id) VALUES (?, ?)"));
          BERTD_RETURN_IF_ERROR(link.Bind(1, job.id).Bind(2, dataset_id).Run());
        }
        BERTD_ASSIGN_OR_RETURN(JobEvent event, InsertStateEvent(job, ""));
        events.push_back(std::move(event));
        return absl::OkStatus();
      },
      &events));
  return job;
}

absl::StatusOr<JobRecord> JobStore::Get(const std::string& id) {
  absl::MutexLock lock(&mu_);
  return GetLocked(id);
}

absl::StatusOr<std::vector<JobRecord>> JobStore::List(std::optional<JobState> state, int limit,
                                                     const std::optional<std::string>& owner,
                                                     const std::string& after_id) {
  // ?1/?3/?6: whether the state/owner/position filter is off. Pages follow seqno, which never
  // changes, so a page token stays valid while jobs are added.
  static const std::string sql = absl::StrCat(
      "SELECT ", kJobColumns,
      " FROM jobs WHERE (?1 OR state = ?2) AND (?3 OR owner = ?4) AND "
      "(?6 OR seqno < (SELECT seqno FROM jobs WHERE id = ?7)) ORDER BY seqno DESC LIMIT ?5");
  absl::MutexLock lock(&mu_);
  if (!after_id.empty()) BERTD_RETURN_IF_ERROR(GetLocked(after_id).status());
  BERTD_ASSIGN_OR_RETURN(Statement select, Prepare(sql.c_str()));
  select.Bind(1, state.has_value() ? 0 : 1)
      .Bind(2, std::string(state.has_value() ? JobStateName(*state) : ""))
      .Bind(3, owner.has_value() ? 0 : 1)
      .Bind(4, owner.value_or(""))
      .Bind(5, limit > 0 ? limit : -1)  // SQLite: a negative LIMIT means none
      .Bind(6, after_id.empty() ? 1 : 0)
      .Bind(7, after_id);
  return select.ReadJobs();
}

absl::StatusOr<std::vector<std::string>> JobStore::JobDatasets(const std::string& job_id) {
  absl::MutexLock lock(&mu_);
  BERTD_RETURN_IF_ERROR(GetLocked(job_id).status());
  BERTD_ASSIGN_OR_RETURN(
      Statement select,
      Prepare("SELECT dataset_id FROM job_datasets WHERE job_id = ? ORDER BY dataset_id"));
  select.Bind(1, job_id);
  std::vector<std::string> ids;
  for (;;) {
    BERTD_ASSIGN_OR_RETURN(bool row, select.Step());
    if (!row) break;
    ids.push_back(select.Text(0));
  }
  return ids;
}

absl::StatusOr<std::optional<JobRecord>> JobStore::ClaimNext(const std::string& worker) {
  return ClaimWhere("", worker);
}

absl::StatusOr<std::optional<JobRecord>> JobStore::Claim(const std::string& id,
                                                         const std::string& worker) {
  return ClaimWhere(id, worker);
}

absl::StatusOr<std::optional<JobRecord>> JobStore::ClaimWhere(const std::string& wanted_id,
                                                              const std::string& worker) {
  absl::MutexLock lock(&mu_);
  std::optional<JobRecord> claimed;
  std::vector<JobEvent> events;
  BERTD_RETURN_IF_ERROR(Transaction(
      [&]() -> absl::Status {
        std::string id;
        {
          // ?1 = '': the first in queue order; else that job, if it is still queued.
          BERTD_ASSIGN_OR_RETURN(Statement select,
                                 Prepare("SELECT id FROM jobs WHERE state = 'QUEUED' "
                                         "AND (?1 = '' OR id = ?1) "
                                         "ORDER BY priority DESC, seqno ASC LIMIT 1"));
          select.Bind(1, wanted_id);
          BERTD_ASSIGN_OR_RETURN(bool row, select.Step());
          if (!row) return absl::OkStatus();
          id = select.Text(0);
        }
        {
          BERTD_ASSIGN_OR_RETURN(Statement update,
                                 Prepare("UPDATE jobs SET state = 'RUNNING', worker = ?, "
                                         "started_at_ms = ? WHERE id = ? AND state = 'QUEUED'"));
          BERTD_RETURN_IF_ERROR(update.Bind(1, worker).Bind(2, NowMs()).Bind(3, id).Run());
        }
        BERTD_ASSIGN_OR_RETURN(JobRecord job, GetLocked(id));
        BERTD_ASSIGN_OR_RETURN(JobEvent event, InsertStateEvent(job, ""));
        events.push_back(std::move(event));
        claimed = std::move(job);
        return absl::OkStatus();
      },
      &events));
  return claimed;
}

absl::StatusOr<std::vector<JobRecord>> JobStore::Queue() {
  static const std::string sql = absl::StrCat("SELECT ", kJobColumns,
                                              " FROM jobs WHERE state = 'QUEUED' "
                                              "ORDER BY priority DESC, seqno ASC");
  absl::MutexLock lock(&mu_);
  BERTD_ASSIGN_OR_RETURN(Statement select, Prepare(sql.c_str()));
  return select.ReadJobs();
}

absl::Status JobStore::Finish(const std::string& id, JobState state, const std::string& error,
                              const std::string& result_model) {
  if (!IsFinal(state)) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot finish job ", id, " as ", JobStateName(state)));
  }
  absl::MutexLock lock(&mu_);
  std::vector<JobEvent> events;
  return Transaction(
      [&]() -> absl::Status {
        BERTD_ASSIGN_OR_RETURN(JobRecord job, GetLocked(id));
        if (IsFinal(job.state)) {
          return absl::FailedPreconditionError(
              absl::StrCat("job ", id, " already finished as ", JobStateName(job.state)));
        }
        job.state = state;
        job.error = error;
        job.result_model = result_model;
        job.finished_at_ms = NowMs();
        {
          BERTD_ASSIGN_OR_RETURN(Statement update,
                                 Prepare("UPDATE jobs SET state = ?, error = ?, result_model = ?, "
                                         "finished_at_ms = ? WHERE id = ?"));
          update.Bind(1, std::string(JobStateName(state)))
              .Bind(2, error)
              .Bind(3, result_model)
              .Bind(4, job.finished_at_ms)
              .Bind(5, id);
          BERTD_RETURN_IF_ERROR(update.Run());
        }
        BERTD_ASSIGN_OR_RETURN(JobEvent event, InsertStateEvent(job, ""));
        events.push_back(std::move(event));
        return absl::OkStatus();
      },
      &events);
}

absl::StatusOr<JobRecord> JobStore::RequestCancel(const std::string& id) {
  absl::MutexLock lock(&mu_);
  JobRecord result;
  std::vector<JobEvent> events;
  BERTD_RETURN_IF_ERROR(Transaction(
      [&]() -> absl::Status {
        BERTD_ASSIGN_OR_RETURN(JobRecord job, GetLocked(id));
        if (IsFinal(job.state)) {
          return absl::FailedPreconditionError(
              absl::StrCat("job ", id, " already finished as ", JobStateName(job.state)));
        }
        if (job.cancel_requested) {  // asked twice: nothing new to record
          result = std::move(job);
          return absl::OkStatus();
        }
        job.cancel_requested = true;
        if (job.state == JobState::kQueued) {
          job.state = JobState::kCancelled;
          job.finished_at_ms = NowMs();
          BERTD_ASSIGN_OR_RETURN(
              Statement update,
              Prepare("UPDATE jobs SET state = 'CANCELLED', cancel_requested = 1, "
                      "finished_at_ms = ? WHERE id = ?"));
          BERTD_RETURN_IF_ERROR(update.Bind(1, job.finished_at_ms).Bind(2, id).Run());
        } else {
          BERTD_ASSIGN_OR_RETURN(
              Statement update, Prepare("UPDATE jobs SET cancel_requested = 1 WHERE id = ?"));
          BERTD_RETURN_IF_ERROR(update.Bind(1, id).Run());
        }
        absl::StatusOr<JobEvent> event =
            job.state == JobState::kCancelled
                ? InsertStateEvent(job, "cancelled while queued")
                : InsertEvent(id, "log", R"({"message":"cancel requested"})");
        BERTD_RETURN_IF_ERROR(event.status());
        events.push_back(*std::move(event));
        result = std::move(job);
        return absl::OkStatus();
      },
      &events));
  return result;
}

absl::StatusOr<bool> JobStore::IsCancelRequested(const std::string& id) {
  absl::MutexLock lock(&mu_);
  BERTD_ASSIGN_OR_RETURN(Statement select,
                         Prepare("SELECT cancel_requested FROM jobs WHERE id = ?"));
  select.Bind(1, id);
  BERTD_ASSIGN_OR_RETURN(bool row, select.Step());
  if (!row) return absl::NotFoundError(absl::StrCat("job ", id, " not found"));
  return select.Int(0) != 0;
}

absl::StatusOr<std::vector<std::string>> JobStore::RequeueRunning() {
  absl::MutexLock lock(&mu_);
  std::vector<std::string> requeued;
  std::vector<JobEvent> events;
  BERTD_RETURN_IF_ERROR(Transaction(
      [&]() -> absl::Status {
        std::vector<std::string> running;
        {
          BERTD_ASSIGN_OR_RETURN(Statement select,
                                 Prepare("SELECT id FROM jobs WHERE state = 'RUNNING' "
                                         "ORDER BY started_at_ms, seqno"));
          for (;;) {
            BERTD_ASSIGN_OR_RETURN(bool row, select.Step());
            if (!row) break;
            running.push_back(select.Text(0));
          }
        }
        int64_t now = NowMs();
        for (const std::string& id : running) {
          BERTD_ASSIGN_OR_RETURN(JobRecord job, GetLocked(id));
          absl::string_view reason;
          if (job.cancel_requested) {
            job.state = JobState::kCancelled;
            job.finished_at_ms = now;
            reason = "cancel requested before the server restarted";
            BERTD_ASSIGN_OR_RETURN(
                Statement update,
                Prepare("UPDATE jobs SET state = 'CANCELLED', finished_at_ms = ? WHERE id = ?"));
            BERTD_RETURN_IF_ERROR(update.Bind(1, now).Bind(2, id).Run());
          } else {
            job.state = JobState::kQueued;
            job.attempts += 1;
            job.worker.clear();
            reason = "requeued after a server restart";
            BERTD_ASSIGN_OR_RETURN(
                Statement update,
                Prepare("UPDATE jobs SET state = 'QUEUED', attempts = attempts + 1, "
                        "worker = '' WHERE id = ?"));
            BERTD_RETURN_IF_ERROR(update.Bind(1, id).Run());
            requeued.push_back(id);
          }
          BERTD_ASSIGN_OR_RETURN(JobEvent event, InsertStateEvent(job, reason));
          events.push_back(std::move(event));
        }
        return absl::OkStatus();
      },
      &events));
  return requeued;
}

// --- Events ---------------------------------------------------------------------------------

absl::StatusOr<JobEvent> JobStore::AppendEvent(const std::string& job_id, const std::string& type,
                                               const std::string& payload_json) {
  if (type.empty()) return absl::InvalidArgumentError("event type is empty");
  if (type == "state") {
    return absl::InvalidArgumentError("state events are written by job state transitions only");
  }
  BERTD_ASSIGN_OR_RETURN(std::string payload, NormalizeJson("event payload", payload_json, "{}"));
  absl::MutexLock lock(&mu_);
  JobEvent appended;
  std::vector<JobEvent> events;
  BERTD_RETURN_IF_ERROR(Transaction(
      [&]() -> absl::Status {
        BERTD_ASSIGN_OR_RETURN(JobRecord job, GetLocked(job_id));
        if (IsFinal(job.state)) {
          return absl::FailedPreconditionError(absl::StrCat(
              "job ", job_id, " already finished as ", JobStateName(job.state)));
        }
        BERTD_ASSIGN_OR_RETURN(appended, InsertEvent(job_id, type, payload));
        events.push_back(appended);
        return absl::OkStatus();
      },
      &events));
  return appended;
}

absl::StatusOr<std::vector<JobEvent>> JobStore::Events(const std::string& job_id,
                                                       int64_t after_seq, int limit) {
  absl::MutexLock lock(&mu_);
  {
    BERTD_ASSIGN_OR_RETURN(Statement exists, Prepare("SELECT 1 FROM jobs WHERE id = ?"));
    exists.Bind(1, job_id);
    BERTD_ASSIGN_OR_RETURN(bool row, exists.Step());
    if (!row) return absl::NotFoundError(absl::StrCat("job ", job_id, " not found"));
  }
  BERTD_ASSIGN_OR_RETURN(Statement select,
                         Prepare("SELECT job_id, seq, time_ms, type, payload_json FROM job_events "
                                 "WHERE job_id = ? AND seq > ? ORDER BY seq LIMIT ?"));
  select.Bind(1, job_id).Bind(2, after_seq).Bind(3, limit > 0 ? limit : -1);
  std::vector<JobEvent> events;
  for (;;) {
    BERTD_ASSIGN_OR_RETURN(bool row, select.Step());
    if (!row) break;
    events.push_back(select.ReadEvent());
  }
  return events;
}

absl::StatusOr<std::optional<JobEvent>> JobStore::LatestEvent(const std::string& job_id,
                                                              const std::string& type) {
  absl::MutexLock lock(&mu_);
  BERTD_ASSIGN_OR_RETURN(Statement select,
                         Prepare("SELECT job_id, seq, time_ms, type, payload_json FROM job_events "
                                 "WHERE job_id = ? AND type = ? ORDER BY seq DESC LIMIT 1"));
  select.Bind(1, job_id).Bind(2, type);
  BERTD_ASSIGN_OR_RETURN(bool row, select.Step());
  if (!row) return std::optional<JobEvent>();
  return std::optional<JobEvent>(select.ReadEvent());
}

EventBus::Subscription JobStore::Subscribe(const std::string& job_id,
                                           EventBus::Callback callback) {
  return bus_.Subscribe(job_id, std::move(callback));
}

// --- Datasets -------------------------------------------------------------------------------

absl::StatusOr<DatasetRecord> JobStore::GetDatasetLocked(const std::string& id_or_name) {
  static const std::string sql = absl::StrCat(
      "SELECT ", kDatasetColumns,
      " FROM datasets WHERE id = ?1 OR name = ?1 ORDER BY id = ?1 DESC LIMIT 1");
  BERTD_ASSIGN_OR_RETURN(Statement select, Prepare(sql.c_str()));
  select.Bind(1, id_or_name);
  BERTD_ASSIGN_OR_RETURN(bool row, select.Step());
  if (!row) return absl::NotFoundError(absl::StrCat("dataset ", id_or_name, " not found"));
  return select.ReadDataset();
}

absl::StatusOr<DatasetRecord> JobStore::CreateDataset(DatasetRecord dataset) {
  if (dataset.name.empty()) return absl::InvalidArgumentError("dataset name is empty");
  BERTD_ASSIGN_OR_RETURN(dataset.labels_json,
                         NormalizeJson("dataset labels", dataset.labels_json, "[]"));
  BERTD_ASSIGN_OR_RETURN(dataset.spec_json,
                         NormalizeJson("dataset spec", dataset.spec_json, "{}"));
  absl::MutexLock lock(&mu_);
  std::vector<JobEvent> no_events;
  BERTD_RETURN_IF_ERROR(Transaction(
      [&]() -> absl::Status {
        if (dataset.id.empty()) dataset.id = NewId("ds-");
        {
          BERTD_ASSIGN_OR_RETURN(
              Statement taken, Prepare("SELECT id, name FROM datasets WHERE id = ? OR name = ?"));
          taken.Bind(1, dataset.id).Bind(2, dataset.name);
          BERTD_ASSIGN_OR_RETURN(bool row, taken.Step());
          if (row) {
            return absl::AlreadyExistsError(
                taken.Text(1) == dataset.name
                    ? absl::StrCat("dataset name '", dataset.name, "' is taken")
                    : absl::StrCat("dataset id ", dataset.id, " is taken"));
          }
        }
        dataset.created_at_ms = NowMs();
        BERTD_ASSIGN_OR_RETURN(
            Statement insert,
            Prepare("INSERT INTO datasets (id, name, format, path, rows, size_bytes, sha256, "
                    "labels_json, spec_json, created_at_ms, owner) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"));
        insert.Bind(1, dataset.id)
            .Bind(2, dataset.name)
            .Bind(3, dataset.format)
            .Bind(4, dataset.path)
            .Bind(5, dataset.rows)
            .Bind(6, dataset.size_bytes)
            .Bind(7, dataset.sha256)
            .Bind(8, dataset.labels_json)
            .Bind(9, dataset.spec_json)
            .Bind(10, dataset.created_at_ms)
            .Bind(11, dataset.owner);
        return insert.Run();
      },
      &no_events));
  return dataset;
}

absl::StatusOr<DatasetRecord> JobStore::GetDataset(const std::string& id_or_name) {
  absl::MutexLock lock(&mu_);
  return GetDatasetLocked(id_or_name);
}

absl::StatusOr<std::vector<DatasetRecord>> JobStore::ListDatasets(
    const std::optional<std::string>& owner) {
  static const std::string sql =
      absl::StrCat("SELECT ", kDatasetColumns,
                   " FROM datasets WHERE (?1 OR owner = ?2) ORDER BY created_at_ms DESC, rowid DESC");
  absl::MutexLock lock(&mu_);
  BERTD_ASSIGN_OR_RETURN(Statement select, Prepare(sql.c_str()));
  select.Bind(1, owner.has_value() ? 0 : 1).Bind(2, owner.value_or(""));
  std::vector<DatasetRecord> datasets;
  for (;;) {
    BERTD_ASSIGN_OR_RETURN(bool row, select.Step());
    if (!row) break;
    datasets.push_back(select.ReadDataset());
  }
  return datasets;
}

absl::StatusOr<DatasetRecord> JobStore::DeleteDataset(const std::string& id_or_name) {
  absl::MutexLock lock(&mu_);
  DatasetRecord deleted;
  std::vector<JobEvent> no_events;
  BERTD_RETURN_IF_ERROR(Transaction(
      [&]() -> absl::Status {
        BERTD_ASSIGN_OR_RETURN(deleted, GetDatasetLocked(id_or_name));
        {
          BERTD_ASSIGN_OR_RETURN(
              Statement user,
              Prepare("SELECT j.id, j.state FROM job_datasets AS d JOIN jobs AS j "
                      "ON j.id = d.job_id WHERE d.dataset_id = ? "
                      "AND j.state IN ('QUEUED', 'RUNNING') ORDER BY j.seqno LIMIT 1"));
          user.Bind(1, deleted.id);
          BERTD_ASSIGN_OR_RETURN(bool row, user.Step());
          if (row) {
            return absl::FailedPreconditionError(
                absl::StrCat("dataset ", deleted.name, " (", deleted.id, ") is used by job ",
                             user.Text(0), " which is ", user.Text(1)));
          }
        }
        // ON DELETE CASCADE drops the links of finished jobs.
        BERTD_ASSIGN_OR_RETURN(Statement remove, Prepare("DELETE FROM datasets WHERE id = ?"));
        return remove.Bind(1, deleted.id).Run();
      },
      &no_events));
  return deleted;
}

// --- Model owners ---------------------------------------------------------------------------

absl::StatusOr<std::string> JobStore::ClaimModel(const std::string& model, const std::string& owner) {
  absl::MutexLock lock(&mu_);
  std::string on_record;
  std::vector<JobEvent> no_events;
  BERTD_RETURN_IF_ERROR(Transaction(
      [&]() -> absl::Status {
        BERTD_ASSIGN_OR_RETURN(
            Statement insert,
            Prepare("INSERT OR IGNORE INTO model_owners (model, owner, created_at_ms) "
                    "VALUES (?, ?, ?)"));
        BERTD_RETURN_IF_ERROR(insert.Bind(1, model).Bind(2, owner).Bind(3, NowMs()).Run());
        BERTD_ASSIGN_OR_RETURN(Statement select,
                               Prepare("SELECT owner FROM model_owners WHERE model = ?"));
        select.Bind(1, model);
        BERTD_ASSIGN_OR_RETURN(bool row, select.Step());
        if (!row) return absl::InternalError("model_owners: the claimed row is missing");
        on_record = select.Text(0);
        return absl::OkStatus();
      },
      &no_events));
  return on_record;
}

absl::StatusOr<std::optional<std::string>> JobStore::ModelOwner(const std::string& model) {
  absl::MutexLock lock(&mu_);
  BERTD_ASSIGN_OR_RETURN(Statement select, Prepare("SELECT owner FROM model_owners WHERE model = ?"));
  select.Bind(1, model);
  BERTD_ASSIGN_OR_RETURN(bool row, select.Step());
  if (!row) return std::nullopt;
  return select.Text(0);
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
