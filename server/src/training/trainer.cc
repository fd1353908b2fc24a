#include "training/trainer.h"

#include <ATen/Parallel.h>
#include <ATen/autocast_mode.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <filesystem>

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
#include "training/data_parallel.h"
#include "training/memory_estimate.h"
#include "training/train_loop.h"

namespace bertd::training {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;


// Labels in id order: the caller's, else the base classifier's when it has exactly the training
// labels (so a fine-tuned model keeps its ids), else the training labels sorted (numerically when
// they are all integers, so "10" follows "9").
std::vector<std::string> ChooseLabels(const TrainingData& data, const model::BertConfig& base,
                                      TrainingTask task) {
  if (task == TrainingTask::kNextSentence) return {"0", "1"};  // 0 = is next, as BERT's NSP
  if (!data.labels.empty()) return data.labels;
  std::vector<std::string> found;
  auto add = [&found](const std::string& label) {
    if (std::find(found.begin(), found.end(), label) == found.end()) found.push_back(label);
  };
  for (const data::Example& example : data.train) {
    if (!example.multi_label) add(example.label);
    for (const std::string& label : example.labels) add(label);
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

// Whether a (pair) classification job trains a regression head: as asked, else when every
// training label is a number and some is not an integer (run_glue's float label column).
bool IsRegression(const TrainingJobSpec& spec, const TrainingData& data) {
  if (spec.task != TrainingTask::kSequenceClassification &&
      spec.task != TrainingTask::kSentencePairClassification) {
    return false;
  }
  if (!spec.problem_type.empty()) return spec.problem_type == "regression";
  bool fractional = false;
  for (const data::Example& example : data.train) {
    if (example.multi_label) return false;
    double value = 0;
    if (!absl::SimpleAtod(example.label, &value) || !std::isfinite(value)) return false;
    int64_t whole = 0;
    fractional = fractional || !absl::SimpleAtoi(example.label, &whole);
  }
  return fractional;
}

// Whether a (pair) classification job trains one yes/no output per label: as asked, else when some
// training example lists its labels.
bool IsMultiLabel(const TrainingJobSpec& spec, const TrainingData& data) {
  if (spec.task != TrainingTask::kSequenceClassification &&
      spec.task != TrainingTask::kSentencePairClassification) {
    return false;
  }
  if (!spec.problem_type.empty()) return spec.problem_type == "multi_label_classification";
  return std::any_of(data.train.begin(), data.train.end(),
                     [](const data::Example& example) { return example.multi_label; });
}

// One padded batch of features.
struct Batch {
  model::BertInputs inputs;
  at::Tensor labels, start_positions, end_positions;
  at::Tensor targets;  // regression scores, float
  at::Tensor multi_hot;  // multi-label: [batch, labels], float
};

// The device the model's parameters live on.
c10::Device DeviceOf(model::BertImpl& model) { return model.parameters().front().device(); }

// Built on the CPU, then moved to `device` in one copy per tensor.
Batch MakeBatch(const std::vector<data::Feature>& features, const std::vector<int64_t>& indices,
                int64_t pad_id, c10::Device device) {
  int64_t longest = 0;
  for (int64_t i : indices) longest = std::max<int64_t>(longest, features[i].ids.size());
  const int64_t n = static_cast<int64_t>(indices.size());
  Batch batch;
  at::Tensor ids = torch::full({n, longest}, pad_id, torch::kLong);
  at::Tensor types = torch::zeros({n, longest}, torch::kLong);
  at::Tensor mask = torch::zeros({n, longest}, torch::kLong);
  batch.labels = torch::zeros({n}, torch::kLong);
  batch.targets = torch::zeros({n}, torch::kFloat);
  const int64_t num_labels = n > 0 ? static_cast<int64_t>(features[indices[0]].multi_hot.size()) : 0;
  batch.multi_hot = torch::zeros({n, num_labels}, torch::kFloat);
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
    batch.targets[b] = f.target;
    if (num_labels > 0) {
      batch.multi_hot[b] = torch::tensor(f.multi_hot, torch::kFloat);
    }
    batch.start_positions[b] = f.start_position;
    batch.end_positions[b] = f.end_position;
  }
  if (!device.is_cpu()) {
    ids = ids.to(device);
    types = types.to(device);
    mask = mask.to(device);
    batch.labels = batch.labels.to(device);
    batch.targets = batch.targets.to(device);
    batch.multi_hot = batch.multi_hot.to(device);
    batch.start_positions = batch.start_positions.to(device);
    batch.end_positions = batch.end_positions.to(device);
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
      if (model.config().problem_type == "multi_label_classification") {
        // As BertForSequenceClassification: BCEWithLogitsLoss over every label.
        return F::binary_cross_entropy_with_logits(out.classifier_logits.to(torch::kFloat),
                                                   batch.multi_hot);
      }
      if (model.config().num_labels == 1) {
        return F::mse_loss(out.classifier_logits.squeeze(-1).to(torch::kFloat), batch.targets);
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

// Metrics of `model` on the evaluation features. Under data parallel each rank scores its shard
// (whole examples for spans, whose windows are scored together) and the results are reduced, so
// every rank returns the same numbers.
absl::StatusOr<std::map<std::string, double>> Evaluate(model::BertImpl& model, TrainingTask task,
                                                       const std::vector<data::Feature>& features,
                                                       const std::vector<data::Example>& examples,
                                                       int batch_size, int64_t pad_id,
                                                       DataParallel* dp) {
  torch::NoGradGuard no_grad;
  model.eval();
  const bool spans = task == TrainingTask::kSpanExtraction;
  // The features this rank scores, in order.
  std::vector<int64_t> mine;
  if (spans) {
    std::vector<int64_t> my_examples = EvaluationShard(static_cast<int64_t>(examples.size()), dp);
    std::vector<bool> is_mine(examples.size(), false);
    for (int64_t e : my_examples) is_mine[e] = true;
    for (size_t i = 0; i < features.size(); ++i) {
      if (is_mine[features[i].example_index]) mine.push_back(static_cast<int64_t>(i));
    }
  } else {
    mine = EvaluationShard(static_cast<int64_t>(features.size()), dp);
  }
  double loss_sum = 0;
  std::vector<at::Tensor> logits_of_mine;
  for (size_t begin = 0; begin < mine.size(); begin += batch_size) {
    std::vector<int64_t> indices(mine.begin() + begin,
                                 mine.begin() + std::min(mine.size(), begin + batch_size));
    Batch batch = MakeBatch(features, indices, pad_id, DeviceOf(model));
    at::Tensor logits;
    at::Tensor loss = ComputeLoss(model, task, batch, &logits);
    loss_sum += loss.item<double>() * indices.size();
    for (size_t i = 0; i < indices.size(); ++i) logits_of_mine.push_back(logits[i].to(torch::kCPU, torch::kFloat).contiguous());
  }
  model.train();
  std::map<std::string, double> metrics;
  if (spans) {
    std::map<int32_t, std::vector<size_t>> by_example;  // example -> positions in `mine`
    for (size_t k = 0; k < mine.size(); ++k) by_example[features[mine[k]].example_index].push_back(k);
    double em = 0, f1 = 0;
    // The official v2.0 script's split: questions with answers and those without.
    double has_em = 0, has_f1 = 0, has_n = 0, no_em = 0, no_f1 = 0, no_n = 0;
    for (const auto& [example_index, positions] : by_example) {
      std::vector<const data::Feature*> windows;
      std::vector<at::Tensor> logits;
      for (size_t k : positions) {
        windows.push_back(&features[mine[k]]);
        logits.push_back(logits_of_mine[k]);
      }
      const data::Example& example = examples[example_index];
      std::string prediction = PredictAnswer(windows, logits, example.text_pair);
      std::vector<std::string> golds;
      for (const data::Answer& answer : example.answers) golds.push_back(answer.text);
      const double example_em = data::ExactMatch(prediction, golds);
      const double example_f1 = data::TokenF1(prediction, golds);
      em += example_em;
      f1 += example_f1;
      if (example.answers.empty()) {
        no_em += example_em;
        no_f1 += example_f1;
        no_n += 1;
      } else {
        has_em += example_em;
        has_f1 += example_f1;
        has_n += 1;
      }
    }
    std::vector<double> sums = {loss_sum, static_cast<double>(mine.size()), em, f1,
                                static_cast<double>(by_example.size()),
                                has_em, has_f1, has_n, no_em, no_f1, no_n};
    if (dp) BERTD_RETURN_IF_ERROR(dp->AllReduceSum(&sums));
    metrics["eval_loss"] = sums[1] > 0 ? sums[0] / sums[1] : 0;
    const double n = std::max(1.0, sums[4]);
    metrics["exact_match"] = 100.0 * sums[2] / n;
    metrics["f1"] = 100.0 * sums[3] / n;
    if (sums[10] > 0) {  // SQuAD 2.0 data: report both halves, named as the official script does
      metrics["HasAns_exact"] = sums[7] > 0 ? 100.0 * sums[5] / sums[7] : 0;
      metrics["HasAns_f1"] = sums[7] > 0 ? 100.0 * sums[6] / sums[7] : 0;
      metrics["HasAns_total"] = sums[7];
      metrics["NoAns_exact"] = 100.0 * sums[8] / sums[10];
      metrics["NoAns_f1"] = 100.0 * sums[9] / sums[10];
      metrics["NoAns_total"] = sums[10];
    }
    return metrics;
  }
  if (model.config().problem_type == "multi_label_classification") {
    // Every rank writes its 0/1 decisions (sigmoid >= 0.5, i.e. logit >= 0) into its rows; the sum
    // over ranks is every row.
    const size_t labels = static_cast<size_t>(model.config().num_labels);
    std::vector<double> values(features.size() * labels + 1, 0.0);
    values.back() = loss_sum;
    for (size_t k = 0; k < mine.size(); ++k) {
      auto row = logits_of_mine[k].accessor<float, 1>();
      for (size_t l = 0; l < labels; ++l) values[mine[k] * labels + l] = row[l] >= 0 ? 1.0 : 0.0;
    }
    if (dp) BERTD_RETURN_IF_ERROR(dp->AllReduceSum(&values));
    std::vector<std::vector<int>> decided, golds;
    for (size_t i = 0; i < features.size(); ++i) {
      std::vector<int> row(labels), gold(labels);
      for (size_t l = 0; l < labels; ++l) {
        row[l] = values[i * labels + l] > 0.5 ? 1 : 0;
        gold[l] = features[i].multi_hot[l] > 0.5f ? 1 : 0;
      }
      decided.push_back(std::move(row));
      golds.push_back(std::move(gold));
    }
    BERTD_ASSIGN_OR_RETURN(data::MultiLabelScores scores, data::MultiLabelMetrics(decided, golds));
    metrics["eval_loss"] = features.empty() ? 0 : values.back() / features.size();
    metrics["f1_micro"] = scores.f1_micro;
    metrics["f1_macro"] = scores.f1_macro;
    metrics["accuracy"] = scores.subset_accuracy;
    return metrics;
  }
  if (model.config().num_labels == 1) {
    // Regression: every rank writes its predictions into its positions of one vector; the sum
    // over ranks is then every prediction in feature order.
    std::vector<double> values(features.size() + 1, 0.0);
    values.back() = loss_sum;
    for (size_t k = 0; k < mine.size(); ++k) values[mine[k]] = logits_of_mine[k][0].item<double>();
    if (dp) BERTD_RETURN_IF_ERROR(dp->AllReduceSum(&values));
    std::vector<double> scores(values.begin(), values.end() - 1), golds;
    for (const data::Feature& feature : features) golds.push_back(feature.target);
    metrics["eval_loss"] = features.empty() ? 0 : values.back() / features.size();
    // The names of the GLUE STS-B metric in Hugging Face's evaluate.
    metrics["pearson"] = data::PearsonCorrelation(scores, golds).value_or(0);
    metrics["spearmanr"] = data::SpearmanCorrelation(scores, golds).value_or(0);
    return metrics;
  }
  std::vector<int32_t> predictions, golds;
  std::vector<double> sums = {loss_sum};
  if (dp) BERTD_RETURN_IF_ERROR(dp->AllReduceSum(&sums));
  if (dp) {
    // Rank r scored features r, r + W, r + 2W, ...: gather them back into feature order.
    const int64_t world = dp->world_size();
    const int64_t per_rank = (static_cast<int64_t>(features.size()) + world - 1) / world;
    std::vector<int64_t> local(per_rank, -1);
    for (size_t k = 0; k < logits_of_mine.size(); ++k) local[k] = logits_of_mine[k].argmax().item<int64_t>();
    BERTD_ASSIGN_OR_RETURN(std::vector<int64_t> gathered, dp->AllGather(local));
    predictions.assign(features.size(), 0);
    for (int64_t r = 0; r < world; ++r) {
      for (int64_t j = 0; j < per_rank && r + j * world < static_cast<int64_t>(features.size()); ++j) {
        predictions[r + j * world] = static_cast<int32_t>(gathered[r * per_rank + j]);
      }
    }
  } else {
    for (const at::Tensor& logits : logits_of_mine) predictions.push_back(static_cast<int32_t>(logits.argmax().item<int64_t>()));
  }
  for (const data::Feature& feature : features) golds.push_back(feature.label);
  metrics["eval_loss"] = features.empty() ? 0 : sums[0] / features.size();
  metrics["accuracy"] = data::Accuracy(predictions, golds).value_or(0);
  if (task != TrainingTask::kNextSentence) {
    metrics["matthews_correlation"] = data::MatthewsCorrelation(predictions, golds).value_or(0);
    if (model.config().num_labels == 2) metrics["f1"] = data::BinaryF1(predictions, golds).value_or(0);
  }
  return metrics;
}

std::string MainMetric(TrainingTask task, bool regression, bool multi_label) {
  if (regression) return "pearson";
  if (multi_label) return "f1_micro";
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

    const bool regression = IsRegression(spec, data);
    const bool multi_label = IsMultiLabel(spec, data);
    const std::vector<std::string> labels =
        regression ? std::vector<std::string>{"LABEL_0"} : ChooseLabels(data, base_config, spec.task);
    std::map<std::string, int> label_to_id;
    model::ModelLoadOptions load_options;
    load_options.architecture = ArchitectureFor(spec.task);
    load_options.ignore_mismatched_sizes = true;
    if (spec.task == TrainingTask::kSequenceClassification ||
        spec.task == TrainingTask::kSentencePairClassification) {
      // Written into config.json, so that Classify reads the outputs as they were trained.
      load_options.problem_type = regression    ? "regression"
                                  : multi_label ? "multi_label_classification"
                                                : "single_label_classification";
    }
    if (regression) {
      load_options.id2label[0] = labels[0];
    } else if (spec.task != TrainingTask::kSpanExtraction && spec.task != TrainingTask::kNextSentence) {
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
      if (regression) return data::FeaturizeRegression(examples, tokenizer, max_length);
      if (multi_label) return data::FeaturizeMultiLabel(examples, tokenizer, label_to_id, max_length);
      return data::FeaturizeClassification(examples, tokenizer, label_to_id, max_length);
    };
    BERTD_ASSIGN_OR_RETURN(std::vector<data::Feature> train_features, featurize(data.train));
    std::vector<data::Feature> eval_features;
    if (!data.eval.empty()) {
      BERTD_ASSIGN_OR_RETURN(eval_features, featurize(data.eval));
    }
    const int64_t pad_id = loaded.config.pad_token_id;
    // The model, and so its optimizer state, lives on the job's device.
    model->to(hooks.device);

    DataParallel* const dp = hooks.data_parallel;
    LoopTask loop;
    loop.num_samples = static_cast<int64_t>(train_features.size());
    loop.micro_batch_loss = [&](const std::vector<int64_t>& indices, int64_t) {
      return LoopTask::Loss{
          ComputeLoss(*model, spec.task, MakeBatch(train_features, indices, pad_id, hooks.device), nullptr),
          {}};
    };
    if (!eval_features.empty()) {
      loop.evaluate = [&]() {
        return Evaluate(*model, spec.task, eval_features, data.eval, args.per_device_eval_batch_size,
                        pad_id, dp);
      };
    }
    loop.best_metric =
        args.metric_for_best_model.empty() ? MainMetric(spec.task, regression, multi_label) : args.metric_for_best_model;
    loop.lower_is_better = loop.best_metric == "eval_loss";
    BERTD_ASSIGN_OR_RETURN(LoopResult outcome, RunTrainingLoop(args, *model, work_dir, loop, hooks));

    TrainingResult result;
    result.global_step = outcome.state.global_step;
    result.train_loss = outcome.state.loss_count > 0 ? outcome.state.loss_sum / outcome.state.loss_count : 0;
    result.eval_metrics = outcome.eval_metrics;
    if (dp != nullptr && dp->rank() != 0) return result;  // rank 0 writes the model
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
