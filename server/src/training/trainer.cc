#include "training/trainer.h"

#include <ATen/Parallel.h>
#include <ATen/autocast_mode.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <numeric>
#include <random>

#include <nlohmann/json.hpp>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/status_macros.h"
#include "data/features.h"
#include "data/metrics.h"
#include "model/checkpoint.h"
#include "model/io/safetensors.h"
#include "text/unicode.h"
#include "training/checkpointing.h"
#include "training/lr_schedule.h"
#include "training/optimizer.h"

namespace bertd::training {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

model::Architecture ArchitectureFor(TrainingTask task) {
  switch (task) {
    case TrainingTask::kSequenceClassification:
    case TrainingTask::kSentencePairClassification:
      return model::Architecture::kBertForSequenceClassification;
    case TrainingTask::kNextSentence:
      return model::Architecture::kBertForNextSentencePrediction;
    case TrainingTask::kSpanExtraction:
      return model::Architecture::kBertForQuestionAnswering;
  }
  return model::Architecture::kBertForSequenceClassification;
}

// Labels in id order: the caller's, else the base classifier's when it has exactly the training
// labels (so a fine-tuned model keeps its ids), else the training labels sorted (numerically when
// they are all integers, so "10" follows "9").
std::vector<std::string> ChooseLabels(const TrainingData& data, const model::BertConfig& base,
                                      TrainingTask task) {
  if (task == TrainingTask::kNextSentence) return {"0", "1"};  // 0 = is next, as BERT's NSP
  if (!data.labels.empty()) return data.labels;
  std::vector<std::string> found;
  for (const data::Example& example : data.train) {
    if (std::find(found.begin(), found.end(), example.label) == found.end()) found.push_back(example.label);
  }
  if (base.PrimaryArchitecture() == model::Architecture::kBertForSequenceClassification &&
      static_cast<int>(found.size()) == base.num_labels) {
    std::vector<std::string> base_labels;
    for (int id = 0; id < base.num_labels; ++id) base_labels.push_back(base.LabelName(id));
    if (std::is_permutation(found.begin(), found.end(), base_labels.begin())) return base_labels;
  }
  const bool numeric = std::all_of(found.begin(), found.end(), [](const std::string& label) {
    int64_t value;
    return absl::SimpleAtoi(label, &value);
  });
  std::sort(found.begin(), found.end(), [numeric](const std::string& a, const std::string& b) {
    if (!numeric) return a < b;
    int64_t x = 0, y = 0;
    (void)absl::SimpleAtoi(a, &x);
    (void)absl::SimpleAtoi(b, &y);
    return x < y;
  });
  return found;
}

// One padded batch of features.
struct Batch {
  model::BertInputs inputs;
  at::Tensor labels, start_positions, end_positions;
};

Batch MakeBatch(const std::vector<data::Feature>& features, const std::vector<int64_t>& indices,
                int64_t pad_id) {
  int64_t longest = 0;
  for (int64_t i : indices) longest = std::max<int64_t>(longest, features[i].ids.size());
  const int64_t n = static_cast<int64_t>(indices.size());
  Batch batch;
  at::Tensor ids = torch::full({n, longest}, pad_id, torch::kLong);
  at::Tensor types = torch::zeros({n, longest}, torch::kLong);
  at::Tensor mask = torch::zeros({n, longest}, torch::kLong);
  batch.labels = torch::zeros({n}, torch::kLong);
  batch.start_positions = torch::zeros({n}, torch::kLong);
  batch.end_positions = torch::zeros({n}, torch::kLong);
  auto ids_a = ids.accessor<int64_t, 2>();
  auto types_a = types.accessor<int64_t, 2>();
  auto mask_a = mask.accessor<int64_t, 2>();
  for (int64_t b = 0; b < n; ++b) {
    const data::Feature& f = features[indices[b]];
    for (size_t t = 0; t < f.ids.size(); ++t) {
      ids_a[b][t] = f.ids[t];
      types_a[b][t] = f.type_ids[t];
      mask_a[b][t] = 1;
    }
    batch.labels[b] = f.label;
    batch.start_positions[b] = f.start_position;
    batch.end_positions[b] = f.end_position;
  }
  batch.inputs = {ids, types, mask};
  return batch;
}

at::Tensor ComputeLoss(model::BertImpl& model, TrainingTask task, const Batch& batch,
                       at::Tensor* logits_out) {
  namespace F = torch::nn::functional;
  model::BertOutputs out = model.forward(batch.inputs);
  switch (task) {
    case TrainingTask::kSequenceClassification:
    case TrainingTask::kSentencePairClassification:
      if (logits_out) *logits_out = out.classifier_logits;
      if (model.config().num_labels == 1) {
        return F::mse_loss(out.classifier_logits.squeeze(-1), batch.labels.to(torch::kFloat));
      }
      return F::cross_entropy(out.classifier_logits, batch.labels);
    case TrainingTask::kNextSentence:
      if (logits_out) *logits_out = out.nsp_logits;
      return F::cross_entropy(out.nsp_logits, batch.labels);
    case TrainingTask::kSpanExtraction: {
      if (logits_out) *logits_out = torch::stack({out.start_logits, out.end_logits}, -1);
      const int64_t length = out.start_logits.size(1);
      at::Tensor start = batch.start_positions.clamp(0, length - 1);
      at::Tensor end = batch.end_positions.clamp(0, length - 1);
      return (F::cross_entropy(out.start_logits, start) + F::cross_entropy(out.end_logits, end)) / 2;
    }
  }
  return {};
}

// The best answer text of one example over its windows: the highest start+end logit among
// context tokens with end >= start and at most 30 tokens, compared with the no-answer score
// ([CLS] start + [CLS] end) of the best window, as SQuAD v2 evaluation expects.
std::string PredictAnswer(const std::vector<const data::Feature*>& windows,
                          const std::vector<at::Tensor>& logits, const std::string& context) {
  double best = -INFINITY, best_null = -INFINITY;
  std::pair<int32_t, int32_t> best_range{0, 0};
  for (size_t w = 0; w < windows.size(); ++w) {
    const data::Feature& f = *windows[w];
    auto l = logits[w].accessor<float, 2>();  // [T, 2]
    best_null = std::max(best_null, static_cast<double>(l[0][0] + l[0][1]));
    const int64_t length = static_cast<int64_t>(f.ids.size());
    for (int64_t s = 0; s < length; ++s) {
      if (f.sequence_ids[s] != 1) continue;
      for (int64_t e = s; e < std::min<int64_t>(length, s + 30); ++e) {
        if (f.sequence_ids[e] != 1) break;
        double score = l[s][0] + l[e][1];
        if (score > best) {
          best = score;
          best_range = {f.offsets[s].first, f.offsets[e].second};
        }
      }
    }
  }
  if (best_null > best) return "";
  return text::unicode::CodePointSubstr(context, best_range.first, best_range.second);
}

struct Evaluation {
  std::map<std::string, double> metrics;
};

Evaluation Evaluate(model::BertImpl& model, TrainingTask task,
                    const std::vector<data::Feature>& features,
                    const std::vector<data::Example>& examples, int batch_size, int64_t pad_id) {
  torch::NoGradGuard no_grad;
  model.eval();
  Evaluation evaluation;
  double loss_sum = 0;
  std::vector<at::Tensor> all_logits;
  for (size_t begin = 0; begin < features.size(); begin += batch_size) {
    std::vector<int64_t> indices;
    for (size_t i = begin; i < std::min(features.size(), begin + batch_size); ++i) indices.push_back(i);
    Batch batch = MakeBatch(features, indices, pad_id);
    at::Tensor logits;
    at::Tensor loss = ComputeLoss(model, task, batch, &logits);
    loss_sum += loss.item<double>() * indices.size();
    for (size_t i = 0; i < indices.size(); ++i) all_logits.push_back(logits[i].to(torch::kFloat).contiguous());
  }
  model.train();
  evaluation.metrics["eval_loss"] = features.empty() ? 0 : loss_sum / features.size();
  if (task == TrainingTask::kSpanExtraction) {
    std::map<int32_t, std::vector<size_t>> by_example;
    for (size_t i = 0; i < features.size(); ++i) by_example[features[i].example_index].push_back(i);
    double em = 0, f1 = 0;
    for (const auto& [example_index, feature_ids] : by_example) {
      std::vector<const data::Feature*> windows;
      std::vector<at::Tensor> logits;
      for (size_t i : feature_ids) {
        windows.push_back(&features[i]);
        logits.push_back(all_logits[i]);
      }
      const data::Example& example = examples[example_index];
      std::string prediction = PredictAnswer(windows, logits, example.text_pair);
      std::vector<std::string> golds;
      for (const data::Answer& answer : example.answers) golds.push_back(answer.text);
      em += data::ExactMatch(prediction, golds);
      f1 += data::TokenF1(prediction, golds);
    }
    const double n = std::max<size_t>(1, by_example.size());
    evaluation.metrics["exact_match"] = 100.0 * em / n;
    evaluation.metrics["f1"] = 100.0 * f1 / n;
    return evaluation;
  }
  std::vector<int32_t> predictions, golds;
  for (size_t i = 0; i < features.size(); ++i) {
    predictions.push_back(static_cast<int32_t>(all_logits[i].argmax().item<int64_t>()));
    golds.push_back(features[i].label);
  }
  evaluation.metrics["accuracy"] = data::Accuracy(predictions, golds).value_or(0);
  if (task != TrainingTask::kNextSentence) {
    evaluation.metrics["matthews_correlation"] = data::MatthewsCorrelation(predictions, golds).value_or(0);
    if (model.config().num_labels == 2) evaluation.metrics["f1"] = data::BinaryF1(predictions, golds).value_or(0);
  }
  return evaluation;
}

std::string MainMetric(TrainingTask task) {
  return task == TrainingTask::kSpanExtraction ? "f1" : "accuracy";
}

void Emit(const TrainerHooks& hooks, const std::string& type, const json& payload) {
  if (hooks.emit) hooks.emit(type, payload.dump());
}

}  // namespace

absl::StatusOr<TrainingResult> RunFineTuning(const TrainingJobSpec& spec,
                                             const std::string& base_model_dir,
                                             const TrainingData& data, const std::string& work_dir,
                                             const std::string& output_dir,
                                             const TrainerHooks& hooks) {
  BERTD_RETURN_IF_ERROR(spec.Validate());
  if (data.train.empty()) return absl::InvalidArgumentError("train_dataset: has no examples");
  if (hooks.intra_op_threads > 0) at::set_num_threads(hooks.intra_op_threads);
  const TrainingArguments& args = spec.args;
  try {
    BERTD_ASSIGN_OR_RETURN(model::BertConfig base_config,
                           model::BertConfig::FromFile((fs::path(base_model_dir) / "config.json").string()));
    BERTD_ASSIGN_OR_RETURN(text::BertTokenizer tokenizer, text::BertTokenizer::FromDirectory(base_model_dir));

    const std::vector<std::string> labels = ChooseLabels(data, base_config, spec.task);
    std::map<std::string, int> label_to_id;
    model::ModelLoadOptions load_options;
    load_options.architecture = ArchitectureFor(spec.task);
    load_options.ignore_mismatched_sizes = true;
    if (spec.task != TrainingTask::kSpanExtraction && spec.task != TrainingTask::kNextSentence) {
      for (size_t id = 0; id < labels.size(); ++id) {
        label_to_id[labels[id]] = static_cast<int>(id);
        load_options.id2label[static_cast<int>(id)] = labels[id];
      }
    } else if (spec.task == TrainingTask::kNextSentence) {
      label_to_id = {{"0", 0}, {"1", 1}};
    }
    // Same head initialization on every run (and so on resume).
    torch::manual_seed(static_cast<uint64_t>(args.seed));
    BERTD_ASSIGN_OR_RETURN(model::LoadedBert loaded, model::LoadBertFromDirectory(base_model_dir, load_options));
    model::Bert model = loaded.model;
    for (const std::string& warning : loaded.report.Warnings()) Emit(hooks, "log", {{"message", warning}});

    const int max_length = std::min(args.max_seq_length, loaded.config.max_position_embeddings);
    auto featurize = [&](const std::vector<data::Example>& examples) -> absl::StatusOr<std::vector<data::Feature>> {
      if (spec.task == TrainingTask::kSpanExtraction) {
        // doc_stride is the overlap of consecutive windows; it must leave room for new tokens.
        return data::FeaturizeSpans(examples, tokenizer, max_length,
                                    std::min(args.doc_stride, max_length / 4));
      }
      return data::FeaturizeClassification(examples, tokenizer, label_to_id, max_length);
    };
    BERTD_ASSIGN_OR_RETURN(std::vector<data::Feature> train_features, featurize(data.train));
    std::vector<data::Feature> eval_features;
    if (!data.eval.empty()) {
      BERTD_ASSIGN_OR_RETURN(eval_features, featurize(data.eval));
    }
    const int64_t pad_id = loaded.config.pad_token_id;

    // Steps as the Hugging Face Trainer counts them.
    const int64_t batches_per_epoch =
        (static_cast<int64_t>(train_features.size()) + args.per_device_train_batch_size - 1) /
        args.per_device_train_batch_size;
    const int64_t updates_per_epoch =
        std::max<int64_t>(1, batches_per_epoch / args.gradient_accumulation_steps);
    const int64_t total_steps = args.max_steps > 0
                                    ? args.max_steps
                                    : static_cast<int64_t>(std::ceil(args.num_train_epochs * updates_per_epoch));
    const int64_t warmup = args.warmup_steps > 0
                               ? args.warmup_steps
                               : static_cast<int64_t>(std::ceil(args.warmup_ratio * total_steps));
    BERTD_ASSIGN_OR_RETURN(LrSchedule::Type schedule_type, LrSchedule::ParseType(args.lr_scheduler_type));
    LrSchedule schedule(schedule_type, warmup, total_steps);

    AdamWSettings settings{args.learning_rate, args.weight_decay, args.adam_beta1, args.adam_beta2,
                           args.adam_epsilon};
    auto optimizer = MakeAdamW(*model, settings);
    model->train();

    const fs::path work(work_dir);
    std::error_code ec;
    fs::create_directories(work, ec);
    TrainerState state;
    BERTD_ASSIGN_OR_RETURN(bool resumed, RestoreCheckpoint(work, *model, *optimizer, &state));
    if (resumed) {
      Emit(hooks, "log", {{"message", absl::StrCat("resumed from checkpoint at step ", state.global_step)}});
    }

    const std::string best_metric_name =
        args.metric_for_best_model.empty() ? MainMetric(spec.task) : args.metric_for_best_model;
    const fs::path best_dir = work / "best";
    auto evaluate_and_track = [&]() -> absl::StatusOr<bool> {  // returns "stop early"
      Evaluation evaluation = Evaluate(*model, spec.task, eval_features, data.eval,
                                       args.per_device_eval_batch_size, pad_id);
      Emit(hooks, "eval", {{"step", state.global_step}, {"metrics", evaluation.metrics}});
      auto it = evaluation.metrics.find(best_metric_name);
      if (it == evaluation.metrics.end()) {
        return absl::InvalidArgumentError(absl::StrCat("hyperparameters.metric_for_best_model: '",
                                                       best_metric_name, "' is not computed for this task"));
      }
      const double value = best_metric_name == "eval_loss" ? -it->second : it->second;
      if (value > state.best_metric) {
        state.best_metric = value;
        state.evaluations_without_improvement = 0;
        if (args.load_best_model_at_end) {
          BERTD_RETURN_IF_ERROR(model::WriteSafetensors((work / "best.safetensors").string(),
                                                        model::StateDict(*model)));
        }
      } else {
        ++state.evaluations_without_improvement;
      }
      return args.early_stopping_patience > 0 &&
             state.evaluations_without_improvement >= args.early_stopping_patience;
    };
    (void)best_dir;

    auto last_progress = std::chrono::steady_clock::now() - std::chrono::seconds(10);
    const auto started = std::chrono::steady_clock::now();
    const int64_t start_step = state.global_step;
    int64_t samples_since_start = 0;
    int micro_batches = 0;
    bool stop_early = false;
    const int64_t max_epochs = total_steps * args.gradient_accumulation_steps / std::max<int64_t>(1, batches_per_epoch) + 2;

    while (state.global_step < total_steps && !stop_early && state.epoch < max_epochs) {
      // Epoch order depends only on (seed, epoch), so a resumed run sees the same batches.
      std::vector<int64_t> order(train_features.size());
      std::iota(order.begin(), order.end(), 0);
      std::mt19937_64 shuffle_rng(static_cast<uint64_t>(args.seed) * 1000003ULL + state.epoch);
      std::shuffle(order.begin(), order.end(), shuffle_rng);

      for (int64_t b = state.batch_in_epoch; b < batches_per_epoch && state.global_step < total_steps; ++b) {
        std::vector<int64_t> indices(
            order.begin() + b * args.per_device_train_batch_size,
            order.begin() + std::min<int64_t>((b + 1) * args.per_device_train_batch_size, order.size()));
        Batch batch = MakeBatch(train_features, indices, pad_id);
        at::Tensor loss;
        {
          CpuAutocast autocast(args.bf16);
          loss = ComputeLoss(*model, spec.task, batch, nullptr).to(torch::kFloat);
        }
        const double loss_value = loss.item<double>();
        if (!std::isfinite(loss_value)) {
          return absl::InternalError(absl::StrCat("loss became ", loss_value, " at step ",
                                                  state.global_step, "; lower learning_rate"));
        }
        (loss / args.gradient_accumulation_steps).backward();
        state.loss_sum += loss_value;
        ++state.loss_count;
        samples_since_start += static_cast<int64_t>(indices.size());
        state.batch_in_epoch = b + 1;
        if (++micro_batches < args.gradient_accumulation_steps && b + 1 < batches_per_epoch) continue;
        micro_batches = 0;

        ClipGradientNorm(*model, args.max_grad_norm);
        const double lr = args.learning_rate * schedule.Factor(state.global_step);
        SetLearningRate(*optimizer, lr);
        optimizer->step();
        optimizer->zero_grad();
        ++state.global_step;
        if (state.batch_in_epoch >= batches_per_epoch) {
          ++state.epoch;
          state.batch_in_epoch = 0;
        }

        const auto now = std::chrono::steady_clock::now();
        if (now - last_progress > std::chrono::seconds(1) || state.global_step == total_steps) {
          last_progress = now;
          const double seconds = std::chrono::duration<double>(now - started).count();
          const double steps_per_second = (state.global_step - start_step) / std::max(seconds, 1e-9);
          Emit(hooks, "progress",
               {{"epoch", static_cast<double>(state.global_step) / updates_per_epoch},
                {"step", state.global_step},
                {"total_steps", total_steps},
                {"loss", loss_value},
                {"learning_rate", lr},
                {"samples_per_second", samples_since_start / std::max(seconds, 1e-9)},
                {"eta_seconds", (total_steps - state.global_step) / std::max(steps_per_second, 1e-9)}});
        }
        const bool epoch_ended = state.batch_in_epoch == 0;
        if (!eval_features.empty() &&
            ((args.eval_strategy == "steps" && state.global_step % args.eval_steps == 0) ||
             (args.eval_strategy == "epoch" && epoch_ended))) {
          BERTD_ASSIGN_OR_RETURN(stop_early, evaluate_and_track());
        }
        if (state.global_step % args.save_steps == 0) {
          BERTD_RETURN_IF_ERROR(SaveCheckpoint(work, *model, *optimizer, state, args.save_total_limit));
          Emit(hooks, "checkpoint", {{"step", state.global_step},
                                     {"path", (work / absl::StrCat("checkpoint-", state.global_step)).string()}});
        }
        if (hooks.should_stop && hooks.should_stop()) {
          BERTD_RETURN_IF_ERROR(SaveCheckpoint(work, *model, *optimizer, state, args.save_total_limit));
          return absl::CancelledError(absl::StrCat("stopped at step ", state.global_step,
                                                   "; checkpoint kept in ", work_dir));
        }
        if (stop_early) break;
      }
      if (state.batch_in_epoch >= batches_per_epoch) {
        ++state.epoch;
        state.batch_in_epoch = 0;
      }
    }

    if (args.load_best_model_at_end && fs::exists(work / "best.safetensors", ec)) {
      BERTD_ASSIGN_OR_RETURN(model::TensorMap best, model::ReadSafetensors((work / "best.safetensors").string()));
      model::LoadReport report;
      BERTD_RETURN_IF_ERROR(model::LoadStateDict(*model, best, false, &report));
    }
    TrainingResult result;
    result.global_step = state.global_step;
    result.train_loss = state.loss_count > 0 ? state.loss_sum / state.loss_count : 0;
    if (!eval_features.empty()) {
      result.eval_metrics = Evaluate(*model, spec.task, eval_features, data.eval,
                                     args.per_device_eval_batch_size, pad_id).metrics;
      Emit(hooks, "eval", {{"step", state.global_step}, {"metrics", result.eval_metrics}, {"final", true}});
    }
    model->eval();
    BERTD_RETURN_IF_ERROR(model::SaveModelDirectory(output_dir, *model, tokenizer));
    json summary = {{"spec", json::parse(spec.ToJson())},
                    {"global_step", result.global_step},
                    {"train_loss", result.train_loss},
                    {"eval_metrics", result.eval_metrics},
                    {"labels", labels}};
    BERTD_RETURN_IF_ERROR(WriteFileAtomically((fs::path(output_dir) / "training_summary.json").string(),
                                              summary.dump(2)));
    return result;
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("training failed: ", e.what_without_backtrace()));
  }
}

}  // namespace bertd::training
