#include "jobs/training_runner.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <random>
#include <system_error>

#include <nlohmann/json.hpp>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace bertd::jobs {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

json ColumnToJson(const data::ColumnRef& column) {
  if (!column.name.empty()) return {{"name", column.name}};
  return {{"index", column.index}};
}

absl::StatusOr<std::optional<data::ColumnRef>> ColumnFromJson(const json& root, const char* key) {
  auto it = root.find(key);
  if (it == root.end() || it->is_null()) return std::nullopt;
  data::ColumnRef column;
  if (it->is_object() && it->contains("name") && (*it)["name"].is_string()) {
    column.name = (*it)["name"].get<std::string>();
  } else if (it->is_object() && it->contains("index") && (*it)["index"].is_number_integer()) {
    column.index = (*it)["index"].get<int>();
  } else {
    return absl::InvalidArgumentError(absl::StrCat("dataset spec: bad column '", key, "'"));
  }
  return column;
}

}  // namespace

std::string DatasetSpecToJson(const data::DatasetSpec& spec) {
  json root = {{"format", std::string(data::DatasetFormatName(spec.format))},
               {"has_header", spec.has_header},
               {"allowed_labels", spec.allowed_labels}};
  if (spec.text) root["text"] = ColumnToJson(*spec.text);
  if (spec.text_pair) root["text_pair"] = ColumnToJson(*spec.text_pair);
  if (spec.label) root["label"] = ColumnToJson(*spec.label);
  return root.dump();
}

absl::StatusOr<data::DatasetSpec> DatasetSpecFromJson(absl::string_view json_text) {
  json root = json::parse(json_text.begin(), json_text.end(), nullptr, false);
  if (!root.is_object() || !root.contains("format") || !root["format"].is_string()) {
    return absl::InvalidArgumentError("dataset spec: expected an object with a format");
  }
  data::DatasetSpec spec;
  BERTD_ASSIGN_OR_RETURN(spec.format, data::ParseDatasetFormat(root["format"].get<std::string>()));
  spec.has_header = root.value("has_header", false);
  BERTD_ASSIGN_OR_RETURN(spec.text, ColumnFromJson(root, "text"));
  BERTD_ASSIGN_OR_RETURN(spec.text_pair, ColumnFromJson(root, "text_pair"));
  BERTD_ASSIGN_OR_RETURN(spec.label, ColumnFromJson(root, "label"));
  if (root.contains("allowed_labels") && root["allowed_labels"].is_array()) {
    for (const json& label : root["allowed_labels"]) {
      if (label.is_string()) spec.allowed_labels.push_back(label.get<std::string>());
    }
  }
  return spec;
}

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

void SplitForEval(std::vector<data::Example> examples, double fraction, uint64_t seed,
                  std::vector<data::Example>* train, std::vector<data::Example>* eval) {
  train->clear();
  eval->clear();
  const size_t n = examples.size();
  const size_t eval_count =
      std::min(n, static_cast<size_t>(std::llround(fraction * static_cast<double>(n))));
  // Fisher-Yates with mt19937_64 directly: std::shuffle and the distributions differ between
  // standard libraries, mt19937_64's output does not.
  std::vector<size_t> order(n);
  for (size_t i = 0; i < n; ++i) order[i] = i;
  std::mt19937_64 rng(seed);
  for (size_t i = n; i > 1; --i) std::swap(order[i - 1], order[rng() % i]);
  std::vector<bool> is_eval(n, false);
  for (size_t i = 0; i < eval_count; ++i) is_eval[order[i]] = true;
  for (size_t i = 0; i < n; ++i) {
    (is_eval[i] ? eval : train)->push_back(std::move(examples[i]));
  }
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

absl::StatusOr<data::ParsedDataset> TrainingRunner::ParseStored(
    const std::string& id_or_name, std::vector<std::string>* allowed_labels) {
  BERTD_ASSIGN_OR_RETURN(DatasetRecord record, options_.store->GetDataset(id_or_name));
  BERTD_ASSIGN_OR_RETURN(data::DatasetSpec spec, DatasetSpecFromJson(record.spec_json));
  if (allowed_labels != nullptr) *allowed_labels = spec.allowed_labels;
  return data::ParseDatasetFile(DatasetFilePath(options_.data_dir, record), spec);
}

absl::StatusOr<training::TrainingData> TrainingRunner::LoadData(
    const training::TrainingJobSpec& spec, JobContext& context) {
  training::TrainingData data;
  std::vector<std::string> allowed_labels;
  BERTD_ASSIGN_OR_RETURN(data::ParsedDataset train, ParseStored(spec.train_dataset, &allowed_labels));
  if (!spec.eval_dataset.empty()) {
    BERTD_ASSIGN_OR_RETURN(data::ParsedDataset eval, ParseStored(spec.eval_dataset, nullptr));
    data.train = std::move(train.examples);
    data.eval = std::move(eval.examples);
  } else if (spec.eval_split > 0) {
    SplitForEval(std::move(train.examples), spec.eval_split, static_cast<uint64_t>(spec.args.seed),
                 &data.train, &data.eval);
  } else {
    data.train = std::move(train.examples);
  }
  // The upload's allowed labels fix the label ids; without them the trainer decides.
  if (spec.task != training::TrainingTask::kSpanExtraction) data.labels = allowed_labels;
  if (data.train.empty()) return absl::FailedPreconditionError("train_dataset: no training examples");
  context.Emit("log", json({{"message", absl::StrCat("data: ", data.train.size(), " training and ",
                                                      data.eval.size(), " evaluation examples")}})
                          .dump())
      .IgnoreError();
  return data;
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
                                                               const training::TrainingData& data,
                                                               const std::string& work_dir,
                                                               JobContext& context) {
  const fs::path base_dir = fs::path(work_dir) / "scratch-base";
  std::error_code ec;
  if (fs::exists(base_dir / "config.json", ec)) return base_dir.string();
  BERTD_ASSIGN_OR_RETURN(std::optional<text::BertTokenizer> tokenizer, ResolveVocabulary(spec));
  if (!tokenizer) {
    // No vocabulary named: learn one from the training texts.
    std::vector<std::string> texts;
    for (const data::Example& example : data.train) {
      texts.push_back(example.text);
      if (!example.text_pair.empty()) texts.push_back(example.text_pair);
    }
    BERTD_ASSIGN_OR_RETURN(tokenizer, training::LearnVocabulary(texts, spec.vocabulary));
  }
  BERTD_RETURN_IF_ERROR(training::WriteScratchModel(base_dir.string(), spec, *tokenizer));
  context.Emit("log", json({{"message", absl::StrCat("scratch base model (", spec.base_model, ", ",
                                                      tokenizer->vocab().size(), " tokens) in ",
                                                      base_dir.string())}})
                          .dump())
      .IgnoreError();
  return base_dir.string();
}

absl::Status TrainingRunner::RunPretrainingJob(const JobRecord& job,
                                               const training::TrainingJobSpec& spec,
                                               JobContext& context, const std::string& work_dir,
                                               const std::string& output_dir,
                                               const training::TrainerHooks& hooks) {
  training::PretrainingStart start;
  if (spec.scratch()) {
    BERTD_ASSIGN_OR_RETURN(start.tokenizer, ResolveVocabulary(spec));
  } else {
    absl::StatusOr<registry::ModelStatus> base = options_.registry->Get(spec.base_model);
    if (!base.ok() || base->state != registry::ModelState::kReady) {
      return absl::FailedPreconditionError(
          absl::StrCat("base_model: model '", spec.base_model, "' is not loaded"));
    }
    start.base_model_dir = base->path;
  }
  training::PretrainingData data;
  BERTD_ASSIGN_OR_RETURN(data::ParsedDataset train, ParseStored(spec.train_dataset, nullptr));
  std::vector<data::Example> train_docs, eval_docs;
  if (!spec.eval_dataset.empty()) {
    BERTD_ASSIGN_OR_RETURN(data::ParsedDataset eval, ParseStored(spec.eval_dataset, nullptr));
    train_docs = std::move(train.examples);
    eval_docs = std::move(eval.examples);
  } else {
    const double fraction = spec.eval_split > 0 ? spec.eval_split : kDefaultPretrainingEvalSplit;
    SplitForEval(std::move(train.examples), fraction, static_cast<uint64_t>(spec.args.seed),
                 &train_docs, &eval_docs);
  }
  for (data::Example& example : train_docs) data.train_documents.push_back(std::move(example.text));
  for (data::Example& example : eval_docs) data.eval_documents.push_back(std::move(example.text));
  if (data.train_documents.empty()) {
    return absl::FailedPreconditionError("train_dataset: no training documents");
  }
  context.Emit("log", json({{"message", absl::StrCat("pretraining ", job.id, ": ",
                                                      data.train_documents.size(), " training and ",
                                                      data.eval_documents.size(),
                                                      " held-out documents into ", output_dir)}})
                          .dump())
      .IgnoreError();
  return training::RunPretraining(spec, start, data, work_dir, output_dir, hooks).status();
}

absl::Status TrainingRunner::Run(const JobRecord& job, const std::string& worker,
                                 JobContext& context) {
  BERTD_ASSIGN_OR_RETURN(training::TrainingJobSpec spec,
                         training::TrainingJobSpec::FromJson(job.spec_json));
  const bool pretraining = spec.task == training::TrainingTask::kPretraining;
  // The base model must still be loaded: its directory is what the registry loaded it from.
  std::string base_path;
  if (!spec.scratch() && !pretraining) {
    absl::StatusOr<registry::ModelStatus> base = options_.registry->Get(spec.base_model);
    if (!base.ok() || base->state != registry::ModelState::kReady) {
      return absl::FailedPreconditionError(
          absl::StrCat("base_model: model '", spec.base_model, "' is not loaded"));
    }
    base_path = base->path;
  }
  training::TrainingData data;
  if (!pretraining) {
    BERTD_ASSIGN_OR_RETURN(data, LoadData(spec, context));
  }

  const fs::path work_dir = fs::path(options_.data_dir) / "jobs" / job.id / "work";
  std::error_code ec;
  fs::create_directories(work_dir, ec);
  if (ec) {
    return absl::InternalError(absl::StrCat("cannot create ", work_dir.string(), ": ", ec.message()));
  }
  if (spec.scratch() && !pretraining) {
    BERTD_ASSIGN_OR_RETURN(base_path, PrepareScratchBase(spec, data, work_dir.string(), context));
  }
  const std::string version = ReserveVersion(spec.output_model);
  const fs::path output_dir = fs::path(options_.registry->repository_root()) / spec.output_model / version;

  training::TrainerHooks hooks;
  hooks.should_stop = [&context] { return context.cancelled(); };
  hooks.emit = [&context](const std::string& type, const std::string& payload_json) {
    // A lost progress event must not stop training; the next one supersedes it.
    context.Emit(type, payload_json).IgnoreError();
  };
  hooks.intra_op_threads = options_.intra_op_threads;
  absl::Status status;
  if (pretraining) {
    status = RunPretrainingJob(job, spec, context, work_dir.string(), output_dir.string(), hooks);
  } else {
    context.Emit("log", json({{"message", absl::StrCat("training ", job.id, " on ", worker, " from ",
                                                        base_path, " into ", output_dir.string())}})
                            .dump())
        .IgnoreError();
    status = training::RunFineTuning(spec, base_path, data, work_dir.string(), output_dir.string(),
                                     hooks)
                 .status();
  }
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
