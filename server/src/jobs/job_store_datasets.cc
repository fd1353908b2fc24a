#include "jobs/job_store.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "jobs/job_store_internal.h"

namespace bertd::jobs {

using store_internal::kDatasetColumns;
using store_internal::NowMs;
using store_internal::NormalizeJson;

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

}  // namespace bertd::jobs
