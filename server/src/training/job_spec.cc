#include "training/job_spec.h"

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "common/json.h"
#include "common/status_macros.h"
#include "training/lr_schedule.h"

namespace bertd::training {
namespace {

using nlohmann::json;

constexpr std::pair<TrainingTask, const char*> kTaskNames[] = {
    {TrainingTask::kSequenceClassification, "sequence_classification"},
    {TrainingTask::kSentencePairClassification, "sentence_pair_classification"},
    {TrainingTask::kNextSentence, "next_sentence"},
    {TrainingTask::kSpanExtraction, "span_extraction"},
    {TrainingTask::kPretraining, "pretraining"},
};

template <typename T>
absl::Status Read(const json& object, const std::string& prefix, const char* key, T* out) {
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) return absl::OkStatus();
  const std::string field = prefix + key;
  if constexpr (std::is_same_v<T, bool>) {
    if (!it->is_boolean()) return absl::InvalidArgumentError(field + ": expected true or false");
  } else if constexpr (std::is_same_v<T, std::string>) {
    if (!it->is_string()) return absl::InvalidArgumentError(field + ": expected a string");
  } else if constexpr (std::is_integral_v<T>) {
    if (!it->is_number_integer()) {
      return absl::InvalidArgumentError(absl::StrCat(field, ": expected an integer, got ", JsonTypeName(*it)));
    }
  } else {
    if (!it->is_number()) {
      return absl::InvalidArgumentError(absl::StrCat(field, ": expected a number, got ", JsonTypeName(*it)));
    }
  }
  *out = it->get<T>();
  return absl::OkStatus();
}

// Rejects keys of `object` that are not in `known`, naming the field.
absl::Status CheckKnownKeys(const json& object, const std::string& prefix,
                            std::initializer_list<const char*> known, const char* what) {
  for (const auto& [key, value] : object.items()) {
    bool found = false;
    for (const char* name : known) found = found || key == name;
    if (!found) return absl::InvalidArgumentError(absl::StrCat(prefix, key, ": unknown ", what));
  }
  return absl::OkStatus();
}

absl::StatusOr<json> Section(const json& root, const char* key) {
  if (!root.contains(key) || root[key].is_null()) return json::object();
  if (!root[key].is_object()) return absl::InvalidArgumentError(absl::StrCat(key, ": expected an object"));
  return root[key];
}

absl::Status Check(bool ok, const std::string& field, const std::string& expected, double value) {
  if (ok) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(field, ": must be ", expected, ", got ", value));
}

}  // namespace

const char* TrainingTaskName(TrainingTask task) {
  for (const auto& [value, name] : kTaskNames) {
    if (value == task) return name;
  }
  return "unknown";
}

absl::StatusOr<TrainingTask> ParseTrainingTask(absl::string_view name) {
  for (const auto& [value, known] : kTaskNames) {
    if (name == known) return value;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "task: '", name, "' is not a training task; expected sequence_classification, "
      "sentence_pair_classification, next_sentence, span_extraction or pretraining"));
}

absl::StatusOr<TrainingJobSpec> TrainingJobSpec::FromJson(absl::string_view json_text) {
  absl::StatusOr<json> parsed = ParseJson(json_text);
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("job spec: ", parsed.status().message()));
  }
  const json& root = *parsed;
  if (!root.is_object()) return absl::InvalidArgumentError("job spec: expected a JSON object");
  TrainingJobSpec spec;
  std::string task = TrainingTaskName(spec.task);
  BERTD_RETURN_IF_ERROR(Read(root, "", "name", &spec.name));
  BERTD_RETURN_IF_ERROR(Read(root, "", "task", &task));
  BERTD_ASSIGN_OR_RETURN(spec.task, ParseTrainingTask(task));
  BERTD_RETURN_IF_ERROR(Read(root, "", "base_model", &spec.base_model));
  BERTD_RETURN_IF_ERROR(Read(root, "", "train_dataset", &spec.train_dataset));
  BERTD_RETURN_IF_ERROR(Read(root, "", "eval_dataset", &spec.eval_dataset));
  BERTD_RETURN_IF_ERROR(Read(root, "", "eval_split", &spec.eval_split));
  BERTD_RETURN_IF_ERROR(Read(root, "", "problem_type", &spec.problem_type));
  BERTD_RETURN_IF_ERROR(Read(root, "", "output_model", &spec.output_model));
  BERTD_RETURN_IF_ERROR(Read(root, "", "priority", &spec.priority));

  const json hp = root.contains("hyperparameters") ? root["hyperparameters"] : json::object();
  if (!hp.is_object()) return absl::InvalidArgumentError("hyperparameters: expected an object");
  const std::string p = "hyperparameters.";
  TrainingArguments& a = spec.args;
  static const char* const kKnown[] = {
      "learning_rate", "num_train_epochs", "max_steps", "per_device_train_batch_size",
      "per_device_eval_batch_size", "gradient_accumulation_steps", "weight_decay", "adam_beta1",
      "adam_beta2", "adam_epsilon", "max_grad_norm", "lr_scheduler_type", "warmup_steps",
      "warmup_ratio", "seed", "max_seq_length", "doc_stride", "eval_strategy", "eval_steps",
      "save_steps", "save_total_limit", "load_best_model_at_end", "metric_for_best_model",
      "early_stopping_patience", "bf16", "fp16"};
  for (const auto& [key, value] : hp.items()) {
    bool known = false;
    for (const char* name : kKnown) known = known || key == name;
    if (!known) return absl::InvalidArgumentError(absl::StrCat(p, key, ": unknown hyperparameter"));
  }
  BERTD_RETURN_IF_ERROR(Read(hp, p, "learning_rate", &a.learning_rate));
  BERTD_RETURN_IF_ERROR(Read(hp, p, "num_train_epochs", &a.num_train_epochs));
  BERTD_RETURN_IF_ERROR(Read(hp, p, "max_steps", &a.max_steps));
  BERTD_RETURN_IF_ERROR(Read(hp, p, "per_device_train_batch_size", &a.per_device_train_batch_size));
  BERTD_RETURN_IF_ERROR(Read(hp, p, "per_device_eval_batch_size", &a.per_device_eval_batch_size));
  BERTD_RETURN_IF_ERROR(Read(hp, p, "gradient_accumulation_steps", &a.gradient_accumulation_steps));
  BERTD_RETURN_IF_ERROR(Read(hp, p, "weight_decay", &a.weight_decay));
  BERTD_RETURN_IF_ERROR(Read(hp, p, "adam_beta1", &a.adam_beta1));
  BERTD_RETURN_IF_ERROR(Read(hp, p, "adam_beta2", &a.adam_beta2));
  BERTD_RETURN_IF_ERROR(Read(hp, p, "adam_epsilon", &a.adam_epsilon));
  BERTD_RETURN_IF_ERROR(Read(hp, p, "max_grad_norm", &a.max_grad_norm));
  BERTD_RETURN_IF_ERROR(Read(hp, p, "lr_scheduler_type", &a.lr_scheduler_type));
  BERTD_RETURN_IF_ERROR(Read(hp, p, "warmup_steps", &a.warmup_steps));
  BERTD_RETURN_IF_ERROR(Read(hp, p, "warmup_ratio", &a.warmup_ratio));
  BERTD_RETURN_IF_ERROR(Read(hp, p, "seed", &a.seed));
  BERTD_RETURN_IF_ERROR(Read(hp, p, "max_seq_length", &a.max_seq_length));
  BERTD_RETURN_IF_ERROR(Read(hp, p, "doc_stride", &a.doc_stride));
  BERTD_RETURN_IF_ERROR(Read(hp, p, "eval_strategy", &a.eval_strategy));
  BERTD_RETURN_IF_ERROR(Read(hp, p, "eval_steps", &a.eval_steps));
  BERTD_RETURN_IF_ERROR(Read(hp, p, "save_steps", &a.save_steps));
  BERTD_RETURN_IF_ERROR(Read(hp, p, "save_total_limit", &a.save_total_limit));
  BERTD_RETURN_IF_ERROR(Read(hp, p, "load_best_model_at_end", &a.load_best_model_at_end));
  BERTD_RETURN_IF_ERROR(Read(hp, p, "metric_for_best_model", &a.metric_for_best_model));
  BERTD_RETURN_IF_ERROR(Read(hp, p, "early_stopping_patience", &a.early_stopping_patience));
  BERTD_RETURN_IF_ERROR(Read(hp, p, "bf16", &a.bf16));
  BERTD_RETURN_IF_ERROR(Read(hp, p, "fp16", &a.fp16));

  BERTD_ASSIGN_OR_RETURN(json vocab, Section(root, "vocabulary"));
  BERTD_RETURN_IF_ERROR(CheckKnownKeys(
      vocab, "vocabulary.",
      {"source", "vocab_size", "min_frequency", "limit_alphabet", "lowercase"}, "setting"));
  VocabularyOptions& v = spec.vocabulary;
  BERTD_RETURN_IF_ERROR(Read(vocab, "vocabulary.", "source", &v.source));
  BERTD_RETURN_IF_ERROR(Read(vocab, "vocabulary.", "vocab_size", &v.vocab_size));
  BERTD_RETURN_IF_ERROR(Read(vocab, "vocabulary.", "min_frequency", &v.min_frequency));
  BERTD_RETURN_IF_ERROR(Read(vocab, "vocabulary.", "limit_alphabet", &v.limit_alphabet));
  BERTD_RETURN_IF_ERROR(Read(vocab, "vocabulary.", "lowercase", &v.lowercase));

  BERTD_ASSIGN_OR_RETURN(json size, Section(root, "model_size"));
  BERTD_RETURN_IF_ERROR(CheckKnownKeys(size, "model_size.",
                                       {"num_hidden_layers", "hidden_size", "num_attention_heads",
                                        "intermediate_size", "max_position_embeddings"},
                                       "size"));
  model::ModelSize& m = spec.model_size;
  BERTD_RETURN_IF_ERROR(Read(size, "model_size.", "num_hidden_layers", &m.num_hidden_layers));
  BERTD_RETURN_IF_ERROR(Read(size, "model_size.", "hidden_size", &m.hidden_size));
  BERTD_RETURN_IF_ERROR(Read(size, "model_size.", "num_attention_heads", &m.num_attention_heads));
  BERTD_RETURN_IF_ERROR(Read(size, "model_size.", "intermediate_size", &m.intermediate_size));
  BERTD_RETURN_IF_ERROR(Read(size, "model_size.", "max_position_embeddings", &m.max_position_embeddings));

  BERTD_ASSIGN_OR_RETURN(json pre, Section(root, "pretraining"));
  BERTD_RETURN_IF_ERROR(CheckKnownKeys(pre, "pretraining.",
                                       {"masked_lm_prob", "max_predictions_per_seq",
                                        "whole_word_masking", "short_seq_prob", "dupe_factor"},
                                       "setting"));
  PretrainingOptions& o = spec.pretraining;
  BERTD_RETURN_IF_ERROR(Read(pre, "pretraining.", "masked_lm_prob", &o.masked_lm_prob));
  BERTD_RETURN_IF_ERROR(Read(pre, "pretraining.", "max_predictions_per_seq", &o.max_predictions_per_seq));
  BERTD_RETURN_IF_ERROR(Read(pre, "pretraining.", "whole_word_masking", &o.whole_word_masking));
  BERTD_RETURN_IF_ERROR(Read(pre, "pretraining.", "short_seq_prob", &o.short_seq_prob));
  BERTD_RETURN_IF_ERROR(Read(pre, "pretraining.", "dupe_factor", &o.dupe_factor));

  BERTD_ASSIGN_OR_RETURN(json dist, Section(root, "distributed"));
  BERTD_RETURN_IF_ERROR(CheckKnownKeys(
      dist, "distributed.",
      {"world_size", "timeout_seconds", "restart_policy", "max_restarts", "launcher"},
      "setting"));
  DistributedOptions& d = spec.distributed;
  BERTD_RETURN_IF_ERROR(Read(dist, "distributed.", "world_size", &d.world_size));
  BERTD_RETURN_IF_ERROR(Read(dist, "distributed.", "timeout_seconds", &d.timeout_seconds));
  BERTD_RETURN_IF_ERROR(Read(dist, "distributed.", "restart_policy", &d.restart_policy));
  BERTD_RETURN_IF_ERROR(Read(dist, "distributed.", "max_restarts", &d.max_restarts));
  BERTD_RETURN_IF_ERROR(Read(dist, "distributed.", "launcher", &d.launcher));

  BERTD_ASSIGN_OR_RETURN(json resources, Section(root, "resources"));
  BERTD_RETURN_IF_ERROR(CheckKnownKeys(resources, "resources.", {"device"}, "setting"));
  BERTD_RETURN_IF_ERROR(Read(resources, "resources.", "device", &spec.resources.device));
  BERTD_RETURN_IF_ERROR(spec.Validate());
  return spec;
}

std::string TrainingJobSpec::ToJson() const {
  const TrainingArguments& a = args;
  json hp = {{"learning_rate", a.learning_rate},
             {"num_train_epochs", a.num_train_epochs},
             {"max_steps", a.max_steps},
             {"per_device_train_batch_size", a.per_device_train_batch_size},
             {"per_device_eval_batch_size", a.per_device_eval_batch_size},
             {"gradient_accumulation_steps", a.gradient_accumulation_steps},
             {"weight_decay", a.weight_decay},
             {"adam_beta1", a.adam_beta1},
             {"adam_beta2", a.adam_beta2},
             {"adam_epsilon", a.adam_epsilon},
             {"max_grad_norm", a.max_grad_norm},
             {"lr_scheduler_type", a.lr_scheduler_type},
             {"warmup_steps", a.warmup_steps},
             {"warmup_ratio", a.warmup_ratio},
             {"seed", a.seed},
             {"max_seq_length", a.max_seq_length},
             {"doc_stride", a.doc_stride},
             {"eval_strategy", a.eval_strategy},
             {"eval_steps", a.eval_steps},
             {"save_steps", a.save_steps},
             {"save_total_limit", a.save_total_limit},
             {"load_best_model_at_end", a.load_best_model_at_end},
             {"metric_for_best_model", a.metric_for_best_model},
             {"early_stopping_patience", a.early_stopping_patience},
             {"bf16", a.bf16},
             {"fp16", a.fp16}};
  json root = {{"name", name},
               {"task", TrainingTaskName(task)},
               {"base_model", base_model},
               {"train_dataset", train_dataset},
               {"eval_dataset", eval_dataset},
               {"eval_split", eval_split},
               {"problem_type", problem_type},
               {"output_model", output_model},
               {"priority", priority},
               {"hyperparameters", hp}};
  root["vocabulary"] = {{"source", vocabulary.source},
                        {"vocab_size", vocabulary.vocab_size},
                        {"min_frequency", vocabulary.min_frequency},
                        {"limit_alphabet", vocabulary.limit_alphabet},
                        {"lowercase", vocabulary.lowercase}};
  root["model_size"] = {{"num_hidden_layers", model_size.num_hidden_layers},
                        {"hidden_size", model_size.hidden_size},
                        {"num_attention_heads", model_size.num_attention_heads},
                        {"intermediate_size", model_size.intermediate_size},
                        {"max_position_embeddings", model_size.max_position_embeddings}};
  root["pretraining"] = {{"masked_lm_prob", pretraining.masked_lm_prob},
                         {"max_predictions_per_seq", pretraining.max_predictions_per_seq},
                         {"whole_word_masking", pretraining.whole_word_masking},
                         {"short_seq_prob", pretraining.short_seq_prob},
                         {"dupe_factor", pretraining.dupe_factor}};
  root["distributed"] = {{"world_size", distributed.world_size},
                         {"timeout_seconds", distributed.timeout_seconds},
                         {"restart_policy", distributed.restart_policy},
                         {"max_restarts", distributed.max_restarts},
                         {"launcher", distributed.launcher}};
  root["resources"] = {{"device", resources.device}};
  return root.dump();
}

absl::Status TrainingJobSpec::Validate() const {
  if (base_model.empty()) return absl::InvalidArgumentError("base_model: required");
  if (train_dataset.empty()) return absl::InvalidArgumentError("train_dataset: required");
  if (output_model.empty()) return absl::InvalidArgumentError("output_model: required");
  BERTD_RETURN_IF_ERROR(Check(eval_split >= 0 && eval_split < 1, "eval_split", "in [0, 1)", eval_split));
  if (!problem_type.empty()) {
    if (problem_type != "single_label_classification" && problem_type != "regression" &&
        problem_type != "multi_label_classification") {
      return absl::InvalidArgumentError(
          "problem_type: expected single_label_classification, multi_label_classification or "
          "regression (or empty)");
    }
    if (task != TrainingTask::kSequenceClassification &&
        task != TrainingTask::kSentencePairClassification) {
      return absl::InvalidArgumentError(absl::StrCat(
          "problem_type: only for sequence_classification and sentence_pair_classification, not ",
          TrainingTaskName(task)));
    }
  }
  const TrainingArguments& a = args;
  const std::string p = "hyperparameters.";
  BERTD_RETURN_IF_ERROR(Check(a.learning_rate > 0 && a.learning_rate < 1, p + "learning_rate", "in (0, 1)", a.learning_rate));
  BERTD_RETURN_IF_ERROR(Check(a.num_train_epochs > 0 || a.max_steps > 0, p + "num_train_epochs", "> 0 (or set max_steps)", a.num_train_epochs));
  BERTD_RETURN_IF_ERROR(Check(a.max_steps == -1 || a.max_steps > 0, p + "max_steps", "-1 or > 0", a.max_steps));
  BERTD_RETURN_IF_ERROR(Check(a.per_device_train_batch_size >= 1 && a.per_device_train_batch_size <= 4096, p + "per_device_train_batch_size", "in [1, 4096]", a.per_device_train_batch_size));
  BERTD_RETURN_IF_ERROR(Check(a.per_device_eval_batch_size >= 1 && a.per_device_eval_batch_size <= 4096, p + "per_device_eval_batch_size", "in [1, 4096]", a.per_device_eval_batch_size));
  BERTD_RETURN_IF_ERROR(Check(a.gradient_accumulation_steps >= 1, p + "gradient_accumulation_steps", ">= 1", a.gradient_accumulation_steps));
  BERTD_RETURN_IF_ERROR(Check(a.weight_decay >= 0, p + "weight_decay", ">= 0", a.weight_decay));
  BERTD_RETURN_IF_ERROR(Check(a.adam_beta1 >= 0 && a.adam_beta1 < 1, p + "adam_beta1", "in [0, 1)", a.adam_beta1));
  BERTD_RETURN_IF_ERROR(Check(a.adam_beta2 >= 0 && a.adam_beta2 < 1, p + "adam_beta2", "in [0, 1)", a.adam_beta2));
  BERTD_RETURN_IF_ERROR(Check(a.adam_epsilon > 0, p + "adam_epsilon", "> 0", a.adam_epsilon));
  BERTD_RETURN_IF_ERROR(Check(a.max_grad_norm >= 0, p + "max_grad_norm", ">= 0 (0 disables clipping)", a.max_grad_norm));
  BERTD_RETURN_IF_ERROR(LrSchedule::ParseType(a.lr_scheduler_type).status());
  BERTD_RETURN_IF_ERROR(Check(a.warmup_steps >= 0, p + "warmup_steps", ">= 0", a.warmup_steps));
  BERTD_RETURN_IF_ERROR(Check(a.warmup_ratio >= 0 && a.warmup_ratio <= 1, p + "warmup_ratio", "in [0, 1]", a.warmup_ratio));
  BERTD_RETURN_IF_ERROR(Check(a.max_seq_length >= 8 && a.max_seq_length <= 8192, p + "max_seq_length", "in [8, 8192]", a.max_seq_length));
  BERTD_RETURN_IF_ERROR(Check(a.doc_stride >= 0, p + "doc_stride", ">= 0", a.doc_stride));
  if (a.eval_strategy != "no" && a.eval_strategy != "steps" && a.eval_strategy != "epoch") {
    return absl::InvalidArgumentError(absl::StrCat(p, "eval_strategy: '", a.eval_strategy,
                                                   "' is not one of no, steps, epoch"));
  }
  BERTD_RETURN_IF_ERROR(Check(a.eval_steps > 0, p + "eval_steps", "> 0", a.eval_steps));
  BERTD_RETURN_IF_ERROR(Check(a.save_steps > 0, p + "save_steps", "> 0", a.save_steps));
  BERTD_RETURN_IF_ERROR(Check(a.save_total_limit >= 0, p + "save_total_limit", ">= 0", a.save_total_limit));
  BERTD_RETURN_IF_ERROR(Check(a.early_stopping_patience >= 0, p + "early_stopping_patience", ">= 0", a.early_stopping_patience));
  if (a.fp16 && a.bf16) {
    return absl::InvalidArgumentError(p + "fp16: fp16 and bf16 are exclusive; choose one");
  }
  if (a.fp16 && resources.device != "cuda") {
    // LibTorch's CPU autocast has no fp16, and fp16 needs a GPU's tensor cores to pay off.
    return absl::InvalidArgumentError(
        p + "fp16: fp16 mixed precision runs on CUDA slots only; set resources.device to cuda "
            "(or use bf16, which also runs on CPU slots)");
  }
  if ((a.load_best_model_at_end || a.early_stopping_patience > 0) && a.eval_strategy == "no") {
    return absl::InvalidArgumentError(
        p + "eval_strategy: load_best_model_at_end and early_stopping_patience need evaluation "
            "(steps or epoch)");
  }
  return ValidateNewModelOptions();
}

absl::Status TrainingJobSpec::ValidateNewModelOptions() const {
  const std::optional<std::string> preset = model::ParseScratchBaseModel(base_model);
  if (preset) {
    BERTD_RETURN_IF_ERROR(model::ScratchConfig(*preset, model_size, 128).status());
  } else if (!model_size.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "model_size: only for base_model scratch[:PRESET]; '", base_model,
        "' has its own sizes"));
  }
  const VocabularyOptions& v = vocabulary;
  if (!v.source.empty()) {
    if (!preset) {
      return absl::InvalidArgumentError(absl::StrCat(
          "vocabulary.source: only for base_model scratch[:PRESET]; '", base_model,
          "' brings its own vocabulary"));
    }
    const bool model_source = v.source.rfind("model:", 0) == 0 && v.source.size() > 6;
    const bool dataset_source = v.source.rfind("dataset:", 0) == 0 && v.source.size() > 8;
    if (!model_source && !dataset_source) {
      return absl::InvalidArgumentError(absl::StrCat(
          "vocabulary.source: '", v.source,
          "' is not model:NAME[@VERSION] or dataset:ID_OR_NAME (or empty to learn one)"));
    }
  }
  BERTD_RETURN_IF_ERROR(Check(v.vocab_size >= 6 && v.vocab_size <= (1 << 20), "vocabulary.vocab_size", "in [6, 1048576]", v.vocab_size));
  BERTD_RETURN_IF_ERROR(Check(v.min_frequency >= 0, "vocabulary.min_frequency", ">= 0", v.min_frequency));
  BERTD_RETURN_IF_ERROR(Check(v.limit_alphabet >= 1, "vocabulary.limit_alphabet", ">= 1", v.limit_alphabet));
  const PretrainingOptions& o = pretraining;
  BERTD_RETURN_IF_ERROR(Check(o.masked_lm_prob > 0 && o.masked_lm_prob < 1, "pretraining.masked_lm_prob", "in (0, 1)", o.masked_lm_prob));
  BERTD_RETURN_IF_ERROR(Check(o.short_seq_prob >= 0 && o.short_seq_prob <= 1, "pretraining.short_seq_prob", "in [0, 1]", o.short_seq_prob));
  BERTD_RETURN_IF_ERROR(Check(o.dupe_factor >= 1 && o.dupe_factor <= 100, "pretraining.dupe_factor", "in [1, 100]", o.dupe_factor));
  const DistributedOptions& d = distributed;
  BERTD_RETURN_IF_ERROR(Check(d.world_size >= 1 && d.world_size <= 1024, "distributed.world_size", "in [1, 1024]", d.world_size));
  BERTD_RETURN_IF_ERROR(Check(d.timeout_seconds >= 1 && d.timeout_seconds <= 86400, "distributed.timeout_seconds", "in [1, 86400]", static_cast<double>(d.timeout_seconds)));
  if (d.restart_policy != "never" && d.restart_policy != "on_failure") {
    return absl::InvalidArgumentError(absl::StrCat("distributed.restart_policy: '", d.restart_policy,
                                                   "' is not one of never, on_failure"));
  }
  BERTD_RETURN_IF_ERROR(Check(d.max_restarts >= 0 && d.max_restarts <= 100, "distributed.max_restarts", "in [0, 100]", d.max_restarts));
  if (d.launcher != "local" && d.launcher != "external") {
    return absl::InvalidArgumentError(absl::StrCat("distributed.launcher: '", d.launcher,
                                                   "' is not one of local, external"));
  }
  if (resources.device != "any" && resources.device != "cpu" && resources.device != "cuda") {
    return absl::InvalidArgumentError(absl::StrCat("resources.device: '", resources.device,
                                                   "' is not one of any, cpu, cuda"));
  }
  if (d.launcher == "external" && d.restart_policy != "never") {
    return absl::InvalidArgumentError(
        "distributed.restart_policy: with launcher external the launcher restarts workers "
        "(e.g. the Kubernetes Job's backoffLimit); use never");
  }
  return absl::OkStatus();
}

}  // namespace bertd::training
