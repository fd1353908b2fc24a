#include "jobs/training_plan.h"

#include <filesystem>
#include <random>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "training/job_spec.h"
#include "training/pretrainer.h"

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

absl::StatusOr<data::ParsedDataset> ParseFile(const DatasetFile& file) {
  BERTD_ASSIGN_OR_RETURN(data::DatasetSpec spec, DatasetSpecFromJson(file.spec_json));
  return data::ParseDatasetFile(file.path, spec);
}

void Log(const training::TrainerHooks& hooks, const std::string& message) {
  if (hooks.emit) hooks.emit("log", json({{"message", message}}).dump());
}

json DatasetFileToJson(const DatasetFile& file) {
  if (file.path.empty()) return nullptr;
  return {{"path", file.path}, {"spec", json::parse(file.spec_json, nullptr, false)}};
}

absl::StatusOr<DatasetFile> DatasetFileFromJson(const json& root, const char* key) {
  auto it = root.find(key);
  if (it == root.end() || it->is_null()) return DatasetFile{};
  if (!it->is_object() || !it->contains("path") || !(*it)["path"].is_string() ||
      !it->contains("spec") || !(*it)["spec"].is_object()) {
    return absl::InvalidArgumentError(absl::StrCat("plan: ", key, ": expected {path, spec}"));
  }
  return DatasetFile{(*it)["path"].get<std::string>(), (*it)["spec"].dump()};
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

std::string TrainingPlan::ToJson() const {
  json root = {{"job_id", job_id},
               {"spec", json::parse(spec_json, nullptr, false)},
               {"base_model_dir", base_model_dir},
               {"train", DatasetFileToJson(train)},
               {"eval", DatasetFileToJson(eval)},
               {"work_dir", work_dir},
               {"output_dir", output_dir},
               {"intra_op_threads", intra_op_threads}};
  return root.dump(2);
}

absl::StatusOr<TrainingPlan> TrainingPlan::FromJson(absl::string_view json_text) {
  json root = json::parse(json_text.begin(), json_text.end(), nullptr, false);
  if (!root.is_object() || !root.contains("spec") || !root["spec"].is_object()) {
    return absl::InvalidArgumentError("plan: expected a JSON object with a spec");
  }
  TrainingPlan plan;
  plan.job_id = root.value("job_id", "");
  plan.spec_json = root["spec"].dump();
  plan.base_model_dir = root.value("base_model_dir", "");
  BERTD_ASSIGN_OR_RETURN(plan.train, DatasetFileFromJson(root, "train"));
  BERTD_ASSIGN_OR_RETURN(plan.eval, DatasetFileFromJson(root, "eval"));
  plan.work_dir = root.value("work_dir", "");
  plan.output_dir = root.value("output_dir", "");
  plan.intra_op_threads = root.value("intra_op_threads", 0);
  if (plan.train.path.empty() || plan.work_dir.empty() || plan.output_dir.empty()) {
    return absl::InvalidArgumentError("plan: train, work_dir and output_dir are required");
  }
  return plan;
}

absl::Status ExecutePlan(const TrainingPlan& plan, const training::TrainerHooks& hooks) {
  BERTD_ASSIGN_OR_RETURN(training::TrainingJobSpec spec,
                         training::TrainingJobSpec::FromJson(plan.spec_json));
  training::TrainerHooks run_hooks = hooks;
  if (plan.intra_op_threads > 0) run_hooks.intra_op_threads = plan.intra_op_threads;
  BERTD_ASSIGN_OR_RETURN(data::ParsedDataset train, ParseFile(plan.train));
  std::vector<data::Example> train_examples, eval_examples;
  const bool pretraining = spec.task == training::TrainingTask::kPretraining;
  if (!plan.eval.path.empty()) {
    BERTD_ASSIGN_OR_RETURN(data::ParsedDataset eval, ParseFile(plan.eval));
    train_examples = std::move(train.examples);
    eval_examples = std::move(eval.examples);
  } else {
    const double fraction =
        spec.eval_split > 0 ? spec.eval_split : (pretraining ? kDefaultPretrainingEvalSplit : 0.0);
    if (fraction > 0) {
      SplitForEval(std::move(train.examples), fraction, static_cast<uint64_t>(spec.args.seed),
                   &train_examples, &eval_examples);
    } else {
      train_examples = std::move(train.examples);
    }
  }

  if (pretraining) {
    training::PretrainingData data;
    for (data::Example& example : train_examples) data.train_documents.push_back(std::move(example.text));
    for (data::Example& example : eval_examples) data.eval_documents.push_back(std::move(example.text));
    if (data.train_documents.empty()) {
      return absl::FailedPreconditionError("train_dataset: no training documents");
    }
    Log(run_hooks, absl::StrCat("pretraining ", plan.job_id, ": ", data.train_documents.size(),
                                " training and ", data.eval_documents.size(),
                                " held-out documents into ", plan.output_dir));
    training::PretrainingStart start;
    start.base_model_dir = plan.base_model_dir;
    return training::RunPretraining(spec, start, data, plan.work_dir, plan.output_dir, run_hooks)
        .status();
  }

  training::TrainingData data;
  data.train = std::move(train_examples);
  data.eval = std::move(eval_examples);
  // The upload's allowed labels fix the label ids; without them the trainer decides.
  if (spec.task != training::TrainingTask::kSpanExtraction) {
    BERTD_ASSIGN_OR_RETURN(data::DatasetSpec train_spec, DatasetSpecFromJson(plan.train.spec_json));
    data.labels = train_spec.allowed_labels;
  }
  if (data.train.empty()) return absl::FailedPreconditionError("train_dataset: no training examples");
  Log(run_hooks, absl::StrCat("data: ", data.train.size(), " training and ", data.eval.size(),
                              " evaluation examples"));
  Log(run_hooks, absl::StrCat("training ", plan.job_id, " from ", plan.base_model_dir, " into ",
                              plan.output_dir));
  return training::RunFineTuning(spec, plan.base_model_dir, data, plan.work_dir, plan.output_dir,
                                 run_hooks)
      .status();
}

}  // namespace bertd::jobs
