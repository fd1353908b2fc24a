#include "jobs/job_store.h"

#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "jobs/job_store_internal.h"

namespace bertd::jobs {

using store_internal::kJobColumns;
using store_internal::NowMs;
using store_internal::NormalizeJson;

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

absl::StatusOr<int64_t> JobStore::CountJobs(JobState state) {
  absl::MutexLock lock(&mu_);
  BERTD_ASSIGN_OR_RETURN(Statement select, Prepare("SELECT COUNT(*) FROM jobs WHERE state = ?"));
  select.Bind(1, std::string(JobStateName(state)));
  BERTD_ASSIGN_OR_RETURN(bool row, select.Step());
  return row ? select.Int(0) : 0;
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

}  // namespace bertd::jobs
