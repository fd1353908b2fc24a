#include "jobs/training_runner.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <random>
#include <system_error>

#include <nlohmann/json.hpp>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"

namespace bertd::jobs {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

}  // namespace

std::string DatasetFilePath(const std::string& data_dir, const DatasetRecord& record) {
  const fs::path path(record.path);
  if (path.is_absolute()) return record.path;
  return (fs::path(data_dir) / path).string();
}

absl::Status CheckDatasetFitsTask(const data::DatasetSpec& spec, training::TrainingTask task,
                                  absl::string_view field) {
  const bool squad = spec.format == data::DatasetFormat::kSquadJson;
  const bool is_text = spec.format == data::DatasetFormat::kText;
  const char* task_name = training::TrainingTaskName(task);
  if (task == training::TrainingTask::kPretraining) {
    if (is_text) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrCat(
        field, ": pretraining needs a text dataset (format text), got ", data::DatasetFormatName(spec.format)));
  }
  if (is_text) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, ": a text dataset can only train pretraining, not ", task_name));
  }
  if (task == training::TrainingTask::kSpanExtraction) {
    if (squad) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrCat(
        field, ": span_extraction needs a squad_json dataset, got ", data::DatasetFormatName(spec.format)));
  }
  if (squad) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": a squad_json dataset can only train span_extraction, not ", task_name));
  }
  if (!spec.text || !spec.label) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": ", task_name, " needs a dataset with text and label columns"));
  }
  const bool pairs = task == training::TrainingTask::kSentencePairClassification ||
                     task == training::TrainingTask::kNextSentence;
  if (pairs && !spec.text_pair) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": ", task_name, " needs a dataset with a text_pair column"));
  }
  return absl::OkStatus();
}

int64_t NextModelVersion(const std::string& model_dir) {
  int64_t highest = 0;
  std::error_code ec;
  for (fs::directory_iterator it(model_dir, ec), end; !ec && it != end; it.increment(ec)) {
    int64_t version = 0;
    if (absl::SimpleAtoi(it->path().filename().string(), &version)) {
      highest = std::max(highest, version);
    }
  }
  return highest + 1;
}

TrainingRunner::TrainingRunner(TrainingRunnerOptions options) : options_(std::move(options)) {}

JobRunner TrainingRunner::AsJobRunner() {
  return [this](const JobRecord& job, const std::string& worker, JobContext& context) {
    return Run(job, worker, context);
  };
}

absl::StatusOr<DatasetFile> TrainingRunner::StoredDataset(const std::string& id_or_name) {
  BERTD_ASSIGN_OR_RETURN(DatasetRecord record, options_.store->GetDataset(id_or_name));
  return DatasetFile{DatasetFilePath(options_.data_dir, record), record.spec_json};
}

std::string TrainingRunner::ReserveVersion(const std::string& model) {
  absl::MutexLock lock(&mu_);
  int64_t version =
      NextModelVersion((fs::path(options_.registry->repository_root()) / model).string());
  while (reserved_.count({model, absl::StrCat(version)}) > 0) ++version;
  reserved_.insert({model, absl::StrCat(version)});
  return absl::StrCat(version);
}

void TrainingRunner::ReleaseVersion(const std::string& model, const std::string& version) {
  absl::MutexLock lock(&mu_);
  reserved_.erase({model, version});
}

SlotDemand DemandOf(const training::TrainingJobSpec& spec) {
  SlotDemand demand;
  if (spec.resources.device == "cpu") demand.type = DeviceType::kCpu;
  if (spec.resources.device == "cuda") demand.type = DeviceType::kCuda;
  demand.count = spec.distributed.launcher == "external" ? 0 : spec.distributed.world_size;
  return demand;
}

SlotDemand DemandOfJob(const JobRecord& job) {
  absl::StatusOr<training::TrainingJobSpec> spec = training::TrainingJobSpec::FromJson(job.spec_json);
  return spec.ok() ? DemandOf(*spec) : SlotDemand{};
}

absl::StatusOr<std::optional<text::BertTokenizer>> TrainingRunner::ResolveVocabulary(
    const training::TrainingJobSpec& spec) {
  const std::string& source = spec.vocabulary.source;
  if (source.empty()) return std::optional<text::BertTokenizer>();
  if (source.rfind("model:", 0) == 0) {
    const std::string name = source.substr(6);
    absl::StatusOr<registry::ModelStatus> model = options_.registry->Get(name);
    if (!model.ok() || model->state != registry::ModelState::kReady) {
      return absl::FailedPreconditionError(
          absl::StrCat("vocabulary.source: model '", name, "' is not loaded"));
    }
    BERTD_ASSIGN_OR_RETURN(text::BertTokenizer tokenizer, text::BertTokenizer::FromDirectory(model->path));
    return std::optional<text::BertTokenizer>(std::move(tokenizer));
  }
  const std::string name = source.substr(8);  // "dataset:"
  absl::StatusOr<DatasetRecord> record = options_.store->GetDataset(name);
  if (!record.ok()) {
    return absl::FailedPreconditionError(absl::StrCat("vocabulary.source: dataset '", name,
                                                      "': ", record.status().message()));
  }
  absl::StatusOr<text::Vocab> vocab = text::Vocab::Load(DatasetFilePath(options_.data_dir, *record));
  if (!vocab.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("vocabulary.source: dataset '", name,
                                                   "' is not a vocab.txt: ", vocab.status().message()));
  }
  text::TokenizerOptions tokenizer_options;
  tokenizer_options.do_lower_case = spec.vocabulary.lowercase;
  absl::StatusOr<text::BertTokenizer> tokenizer =
      text::BertTokenizer::Create(*std::move(vocab), tokenizer_options);
  if (!tokenizer.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("vocabulary.source: dataset '", name, "': ",
                                                   tokenizer.status().message()));
  }
  return std::optional<text::BertTokenizer>(*std::move(tokenizer));
}

absl::StatusOr<std::string> TrainingRunner::PrepareScratchBase(const training::TrainingJobSpec& spec,
                                                               const DatasetFile& train,
                                                               const std::string& work_dir,
                                                               JobContext& context) {
  const fs::path base_dir = fs::path(work_dir) / "scratch-base";
  std::error_code ec;
  if (fs::exists(base_dir / "config.json", ec)) return base_dir.string();
  BERTD_ASSIGN_OR_RETURN(std::optional<text::BertTokenizer> tokenizer, ResolveVocabulary(spec));
  if (!tokenizer) {
    // No vocabulary named: learn one from the training texts.
    BERTD_ASSIGN_OR_RETURN(data::DatasetSpec train_spec, DatasetSpecFromJson(train.spec_json));
    BERTD_ASSIGN_OR_RETURN(data::ParsedDataset parsed, data::ParseDatasetFile(train.path, train_spec));
    std::vector<std::string> texts;
    for (const data::Example& example : parsed.examples) {
      texts.push_back(example.text);
      if (!example.text_pair.empty()) texts.push_back(example.text_pair);
    }
    BERTD_ASSIGN_OR_RETURN(tokenizer, training::LearnVocabulary(texts, spec.vocabulary));
  }
  // Written aside and renamed: a crash never leaves a half-written base for the resumed run.
  const fs::path temp_dir = fs::path(work_dir) / ".scratch-base.tmp";
  fs::remove_all(temp_dir, ec);
  BERTD_RETURN_IF_ERROR(training::WriteScratchModel(temp_dir.string(), spec, *tokenizer));
  fs::rename(temp_dir, base_dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create ", base_dir.string(), ": ", ec.message()));
  context.Emit("log", json({{"message", absl::StrCat("scratch base model (", spec.base_model, ", ",
                                                      tokenizer->vocab().size(), " tokens) in ",
                                                      base_dir.string())}})
                          .dump())
      .IgnoreError();
  return base_dir.string();
}

absl::Status TrainingRunner::PrepareNamedVocabulary(const training::TrainingJobSpec& spec,
                                                    const std::string& work_dir) {
  const fs::path vocab_dir = fs::path(work_dir) / "vocab";
  std::error_code ec;
  if (fs::exists(vocab_dir / "vocab.txt", ec)) return absl::OkStatus();
  BERTD_ASSIGN_OR_RETURN(std::optional<text::BertTokenizer> tokenizer, ResolveVocabulary(spec));
  if (!tokenizer) return absl::OkStatus();  // the run learns one
  const fs::path temp_dir = fs::path(work_dir) / ".vocab.tmp";
  fs::remove_all(temp_dir, ec);
  BERTD_RETURN_IF_ERROR(tokenizer->SaveToDirectory(temp_dir.string()));
  fs::rename(temp_dir, vocab_dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create ", vocab_dir.string(), ": ", ec.message()));
  return absl::OkStatus();
}

std::vector<RankPlacement> TrainingRunner::Place(const std::string& worker) const {
  std::vector<RankPlacement> placement;
  for (absl::string_view name : absl::StrSplit(worker, ',', absl::SkipEmpty())) {
    const Slot slot = SlotFromName(name);
    RankPlacement rank;
    rank.slot = slot.name;
    if (slot.type == DeviceType::kCuda) {
      rank.cuda_device = slot.index;
    } else if (slot.index >= 0 && slot.index < static_cast<int>(options_.cpu_slot_cpus.size())) {
      rank.cpus = options_.cpu_slot_cpus[slot.index];
    }
    placement.push_back(std::move(rank));
  }
  return placement;
}

absl::Status TrainingRunner::Run(const JobRecord& job, const std::string& worker,
                                 JobContext& context) {
  BERTD_ASSIGN_OR_RETURN(training::TrainingJobSpec spec,
                         training::TrainingJobSpec::FromJson(job.spec_json));
  const bool pretraining = spec.task == training::TrainingTask::kPretraining;
  TrainingPlan plan;
  plan.job_id = job.id;
  plan.spec_json = job.spec_json;
  // The base model must still be loaded: its directory is what the registry loaded it from.
  if (!spec.scratch()) {
    absl::StatusOr<registry::ModelStatus> base = options_.registry->Get(spec.base_model);
    if (!base.ok() || base->state != registry::ModelState::kReady) {
      return absl::FailedPreconditionError(
          absl::StrCat("base_model: model '", spec.base_model, "' is not loaded"));
    }
    plan.base_model_dir = base->path;
  }
  BERTD_ASSIGN_OR_RETURN(plan.train, StoredDataset(spec.train_dataset));
  if (!spec.eval_dataset.empty()) {
    BERTD_ASSIGN_OR_RETURN(plan.eval, StoredDataset(spec.eval_dataset));
  }

  const fs::path job_dir = fs::path(options_.data_dir) / "jobs" / job.id;
  const fs::path work_dir = job_dir / "work";
  std::error_code ec;
  fs::create_directories(work_dir, ec);
  if (ec) {
    return absl::InternalError(absl::StrCat("cannot create ", work_dir.string(), ": ", ec.message()));
  }
  plan.work_dir = work_dir.string();
  if (spec.scratch() && pretraining) {
    BERTD_RETURN_IF_ERROR(PrepareNamedVocabulary(spec, plan.work_dir));
  } else if (spec.scratch()) {
    BERTD_ASSIGN_OR_RETURN(plan.base_model_dir,
                           PrepareScratchBase(spec, plan.train, plan.work_dir, context));
  }
  const std::string version = ReserveVersion(spec.output_model);
  const fs::path output_dir = fs::path(options_.registry->repository_root()) / spec.output_model / version;
  plan.output_dir = output_dir.string();

  LaunchOptions launch;
  launch.executable = options_.worker_executable;
  launch.plan = plan;
  launch.job_dir = job_dir.string();
  launch.distributed = spec.distributed;
  launch.launch_command = options_.external_launch_command;
  const bool external = spec.distributed.launcher == "external";
  launch.threads_per_rank = external ? options_.external_threads_per_rank : options_.threads_per_slot;
  if (!external) {
    launch.placement = Place(worker);
    launch.memory_limit_bytes = options_.memory_limit_bytes;
  }
  const int world = spec.distributed.world_size;
  context.Emit("log", json({{"message", absl::StrCat(
                                            "running ", job.id, " as ",
                                            world == 1 ? "a worker process" : absl::StrCat(world, " data-parallel worker processes"),
                                            external ? " (external launcher)" : absl::StrCat(" on ", worker),
                                            ", ", launch.threads_per_rank, " threads each")}})
                          .dump())
      .IgnoreError();
  absl::Status status = RunDataParallel(launch, context);
  ReleaseVersion(spec.output_model, version);
  if (!status.ok()) return status;

  absl::StatusOr<registry::ModelStatus> loaded = options_.registry->Load(spec.output_model, version);
  if (!loaded.ok()) return loaded.status();
  if (loaded->state != registry::ModelState::kReady) {
    return absl::InternalError(absl::StrCat("trained model saved at ", output_dir.string(),
                                            " but did not load: ", loaded->load_error));
  }
  context.set_result_model(loaded->key.ToString());
  // The checkpoints are only needed to resume; the finished model is in the repository.
  fs::remove_all(work_dir, ec);
  return absl::OkStatus();
}

}  // namespace bertd::jobs
