#include "training/pretrainer.h"

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <numeric>
#include <random>
#include <system_error>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/status_macros.h"
#include "data/pretraining_data.h"
#include "model/checkpoint.h"
#include "model/io/safetensors.h"
#include "model/presets.h"
#include "text/vocab_trainer.h"
#include "training/checkpointing.h"
#include "training/lr_schedule.h"
#include "training/optimizer.h"

namespace bertd::training {
namespace {

namespace fs = std::filesystem;
namespace F = torch::nn::functional;
using nlohmann::json;

// splitmix64: one well-mixed 64-bit seed from a few integers, so that every (seed, epoch, pair)
// gets its own independent masking stream.
uint64_t Mix(uint64_t a, uint64_t b, uint64_t c) {
  uint64_t x = a * 0x9E3779B97F4A7C15ULL ^ (b + 0x632BE59BD9B4E019ULL) * 0xBF58476D1CE4E5B9ULL ^
               (c + 0x2545F4914F6CDD1DULL) * 0x94D049BB133111EBULL;
  x ^= x >> 30;
  x *= 0xBF58476D1CE4E5B9ULL;
  x ^= x >> 27;
  x *= 0x94D049BB133111EBULL;
  x ^= x >> 31;
  return x;
}

constexpr uint64_t kEvalEpoch = 0xE7A1'0000'0000ULL;  // masks of the held-out pairs

void Emit(const TrainerHooks& hooks, const std::string& type, const json& payload) {
  if (hooks.emit) hooks.emit(type, payload.dump());
}

struct PretrainBatch {
  model::BertInputs inputs;
  at::Tensor mlm_labels;  // [B, T], -100 where nothing is predicted
  at::Tensor nsp_labels;  // [B]
};

// Pairs come padded to max_seq_length; a batch is cut to its longest pair.
PretrainBatch MakeBatch(const std::vector<data::MaskedExample>& examples) {
  int64_t longest = 1;
  for (const data::MaskedExample& e : examples) {
    longest = std::max<int64_t>(longest, std::accumulate(e.attention_mask.begin(), e.attention_mask.end(), int64_t{0}));
  }
  const int64_t n = static_cast<int64_t>(examples.size());
  at::Tensor ids = torch::zeros({n, longest}, torch::kLong);
  at::Tensor types = torch::zeros({n, longest}, torch::kLong);
  at::Tensor mask = torch::zeros({n, longest}, torch::kLong);
  at::Tensor labels = torch::full({n, longest}, -100, torch::kLong);
  at::Tensor nsp = torch::zeros({n}, torch::kLong);
  auto ids_a = ids.accessor<int64_t, 2>();
  auto types_a = types.accessor<int64_t, 2>();
  auto mask_a = mask.accessor<int64_t, 2>();
  auto labels_a = labels.accessor<int64_t, 2>();
  auto nsp_a = nsp.accessor<int64_t, 1>();
  for (int64_t b = 0; b < n; ++b) {
    const data::MaskedExample& e = examples[b];
    const int64_t length = std::min<int64_t>(longest, e.input_ids.size());
    for (int64_t t = 0; t < length; ++t) {
      ids_a[b][t] = e.input_ids[t];
      types_a[b][t] = e.token_type_ids[t];
      mask_a[b][t] = e.attention_mask[t];
      labels_a[b][t] = e.mlm_labels[t];
    }
    nsp_a[b] = e.nsp_label;
  }
  return {{ids, types, mask}, labels, nsp};
}

struct Forward {
  at::Tensor mlm_loss;     // mean over the masked tokens
  at::Tensor nsp_loss;     // mean over the pairs
  at::Tensor mlm_logits;   // [masked tokens, V]
  at::Tensor mlm_targets;  // [masked tokens]
  at::Tensor nsp_logits;   // [B, 2]
};

// MLM logits only at the masked positions: the same loss as cross-entropy over [B,T,V] with
// ignore_index -100, without the [B,T,V] tensor.
Forward RunForward(model::BertImpl& model, const PretrainBatch& batch) {
  model::BertOutputs out = model.forward(batch.inputs);
  at::Tensor selected = batch.mlm_labels.ne(-100);
  Forward f;
  f.mlm_targets = batch.mlm_labels.index({selected});
  f.mlm_logits = model.MlmLogits(out.last_hidden_state.index({selected})).to(torch::kFloat);
  f.nsp_logits = out.nsp_logits.to(torch::kFloat);
  f.mlm_loss = F::cross_entropy(f.mlm_logits, f.mlm_targets);
  f.nsp_loss = F::cross_entropy(f.nsp_logits, batch.nsp_labels);
  return f;
}

std::map<std::string, double> Evaluate(model::BertImpl& model,
                                       const std::vector<data::MaskedExample>& examples,
                                       int batch_size) {
  torch::NoGradGuard no_grad;
  model.eval();
  double mlm_loss_sum = 0, nsp_loss_sum = 0;
  int64_t mlm_correct = 0, mlm_count = 0, nsp_correct = 0;
  for (size_t begin = 0; begin < examples.size(); begin += batch_size) {
    std::vector<data::MaskedExample> part(
        examples.begin() + begin, examples.begin() + std::min(examples.size(), begin + batch_size));
    PretrainBatch batch = MakeBatch(part);
    Forward f = RunForward(model, batch);
    const int64_t masked = f.mlm_targets.size(0);
    mlm_loss_sum += f.mlm_loss.item<double>() * masked;
    mlm_count += masked;
    mlm_correct += f.mlm_logits.argmax(-1).eq(f.mlm_targets).sum().item<int64_t>();
    nsp_loss_sum += f.nsp_loss.item<double>() * part.size();
    nsp_correct += f.nsp_logits.argmax(-1).eq(batch.nsp_labels).sum().item<int64_t>();
  }
  model.train();
  const double pairs = std::max<size_t>(1, examples.size());
  const double mlm_loss = mlm_loss_sum / std::max<int64_t>(1, mlm_count);
  const double nsp_loss = nsp_loss_sum / pairs;
  return {{"mlm_loss", mlm_loss},
          {"mlm_accuracy", static_cast<double>(mlm_correct) / std::max<int64_t>(1, mlm_count)},
          {"perplexity", std::exp(mlm_loss)},
          {"nsp_loss", nsp_loss},
          {"nsp_accuracy", nsp_correct / pairs},
          {"eval_loss", mlm_loss + nsp_loss}};
}

// Metrics where lower is better.
bool LowerIsBetter(const std::string& metric) {
  return metric == "eval_loss" || metric == "mlm_loss" || metric == "nsp_loss" || metric == "perplexity";
}

absl::StatusOr<std::vector<data::SentencePair>> MakePairs(const std::vector<std::string>& documents,
                                                          const text::BertTokenizer& tokenizer,
                                                          const data::PairOptions& options,
                                                          uint64_t seed) {
  std::vector<std::vector<std::string>> sentences;
  sentences.reserve(documents.size());
  for (const std::string& document : documents) sentences.push_back(data::SplitSentences(document));
  BERTD_ASSIGN_OR_RETURN(data::TokenizedCorpus corpus, data::TokenizeCorpus(sentences, tokenizer));
  std::mt19937_64 rng(seed);
  return data::BuildSentencePairs(corpus.tokens, corpus.word_starts, options, rng);
}

data::MaskedExample Mask(const data::SentencePair& pair, const text::Vocab& vocab, int max_length,
                         const data::MaskingOptions& options, uint64_t seed, uint64_t epoch,
                         uint64_t index) {
  std::mt19937_64 rng(Mix(seed, epoch, index));
  return data::MaskPair(pair, vocab, max_length, options, rng);
}

}  // namespace

absl::StatusOr<text::BertTokenizer> LearnVocabulary(const std::vector<std::string>& texts,
                                                    const VocabularyOptions& options,
                                                    int64_t* words_counted) {
  text::VocabTrainerOptions trainer_options;
  trainer_options.vocab_size = options.vocab_size;
  trainer_options.min_frequency = options.min_frequency;
  trainer_options.limit_alphabet = options.limit_alphabet;
  trainer_options.lowercase = options.lowercase;
  text::WordPieceTrainer trainer(trainer_options);
  for (size_t i = 0; i < texts.size(); ++i) {
    absl::Status status = trainer.AddText(texts[i]);
    if (!status.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("document ", i + 1, ": ", status.message()));
    }
  }
  if (words_counted != nullptr) *words_counted = trainer.words_counted();
  absl::StatusOr<text::Vocab> vocab = trainer.Train();
  if (!vocab.ok()) {
    return absl::Status(vocab.status().code(), absl::StrCat("vocabulary: ", vocab.status().message()));
  }
  text::TokenizerOptions tokenizer_options;
  tokenizer_options.do_lower_case = options.lowercase;
  return text::BertTokenizer::Create(*std::move(vocab), tokenizer_options);
}

absl::StatusOr<model::BertConfig> ScratchModelConfig(const TrainingJobSpec& spec, int vocab_size,
                                                     model::Architecture architecture) {
  const std::optional<std::string> preset = model::ParseScratchBaseModel(spec.base_model);
  if (!preset) {
    return absl::InvalidArgumentError(
        absl::StrCat("base_model: '", spec.base_model, "' is not scratch[:PRESET]"));
  }
  BERTD_ASSIGN_OR_RETURN(model::BertConfig config,
                         model::ScratchConfig(*preset, spec.model_size, vocab_size));
  config.architectures = {std::string(model::ArchitectureName(architecture))};
  return config;
}

absl::Status WriteScratchModel(const std::string& dir, const TrainingJobSpec& spec,
                               const text::BertTokenizer& tokenizer) {
  BERTD_ASSIGN_OR_RETURN(model::BertConfig config,
                         ScratchModelConfig(spec, tokenizer.vocab().size(),
                                            model::Architecture::kBertForPreTraining));
  try {
    torch::manual_seed(static_cast<uint64_t>(spec.args.seed));
    model::Bert bert(config, model::HeadSet::ForArchitecture(model::Architecture::kBertForPreTraining));
    bert->eval();
    return model::SaveModelDirectory(dir, *bert, tokenizer);
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("cannot create the scratch model: ", e.what_without_backtrace()));
  }
}

absl::StatusOr<TrainingResult> RunPretraining(const TrainingJobSpec& spec,
                                              const PretrainingStart& start,
                                              const PretrainingData& data,
                                              const std::string& work_dir,
                                              const std::string& output_dir,
                                              const TrainerHooks& hooks) {
  BERTD_RETURN_IF_ERROR(spec.Validate());
  if (spec.task != TrainingTask::kPretraining) {
    return absl::InvalidArgumentError("task: RunPretraining needs task pretraining");
  }
  if (data.train_documents.empty()) return absl::InvalidArgumentError("train_dataset: has no documents");
  if (hooks.intra_op_threads > 0) at::set_num_threads(hooks.intra_op_threads);
  const TrainingArguments& args = spec.args;
  const fs::path work(work_dir);
  std::error_code ec;
  fs::create_directories(work, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create ", work_dir, ": ", ec.message()));
  try {
    // 1. Vocabulary and model.
    std::optional<text::BertTokenizer> tokenizer;
    model::Bert model{nullptr};
    const uint64_t seed = static_cast<uint64_t>(args.seed);
    if (!start.base_model_dir.empty()) {
      BERTD_ASSIGN_OR_RETURN(tokenizer, text::BertTokenizer::FromDirectory(start.base_model_dir));
      model::ModelLoadOptions load_options;
      load_options.architecture = model::Architecture::kBertForPreTraining;
      torch::manual_seed(seed);  // heads the base lacks start the same on every run
      BERTD_ASSIGN_OR_RETURN(model::LoadedBert loaded,
                             model::LoadBertFromDirectory(start.base_model_dir, load_options));
      for (const std::string& warning : loaded.report.Warnings()) Emit(hooks, "log", {{"message", warning}});
      model = loaded.model;
    } else {
      if (start.tokenizer) {
        tokenizer = start.tokenizer;
      } else if (fs::exists(work / "vocab" / "vocab.txt", ec)) {
        BERTD_ASSIGN_OR_RETURN(tokenizer, text::BertTokenizer::FromDirectory((work / "vocab").string()));
      } else {
        const auto began = std::chrono::steady_clock::now();
        int64_t words = 0;
        BERTD_ASSIGN_OR_RETURN(tokenizer, LearnVocabulary(data.train_documents, spec.vocabulary, &words));
        BERTD_RETURN_IF_ERROR(tokenizer->SaveToDirectory((work / "vocab").string()));
        Emit(hooks, "log",
             {{"message", absl::StrCat("vocabulary: learned ", tokenizer->vocab().size(),
                                       " tokens from ", words, " words in ",
                                       std::chrono::duration<double>(std::chrono::steady_clock::now() - began).count(),
                                       " s")}});
      }
      BERTD_ASSIGN_OR_RETURN(model::BertConfig config,
                             ScratchModelConfig(spec, tokenizer->vocab().size(),
                                                model::Architecture::kBertForPreTraining));
      torch::manual_seed(seed);
      model = model::Bert(config, model::HeadSet::ForArchitecture(model::Architecture::kBertForPreTraining));
    }
    const text::Vocab& vocab = tokenizer->vocab();
    if (!tokenizer->mask_id()) {
      return absl::InvalidArgumentError("vocabulary: has no [MASK] token; masked-LM needs one");
    }
    const int max_length = std::min(args.max_seq_length, model->config().max_position_embeddings);

    // 2. Pairs (fixed for the run) and the held-out examples (masks fixed too).
    data::PairOptions pair_options;
    pair_options.max_seq_length = max_length;
    pair_options.short_seq_prob = spec.pretraining.short_seq_prob;
    pair_options.dupe_factor = spec.pretraining.dupe_factor;
    data::MaskingOptions masking;
    masking.masked_lm_prob = spec.pretraining.masked_lm_prob;
    masking.max_predictions_per_seq = spec.pretraining.max_predictions_per_seq;
    masking.whole_word_masking = spec.pretraining.whole_word_masking;
    BERTD_ASSIGN_OR_RETURN(std::vector<data::SentencePair> train_pairs,
                           MakePairs(data.train_documents, *tokenizer, pair_options, seed));
    if (train_pairs.empty()) {
      return absl::InvalidArgumentError(
          "train_dataset: no sentence pairs could be made (it needs documents with two or more "
          "words, and two or more documents or sentences)");
    }
    std::vector<data::MaskedExample> eval_examples;
    if (!data.eval_documents.empty()) {
      BERTD_ASSIGN_OR_RETURN(std::vector<data::SentencePair> eval_pairs,
                             MakePairs(data.eval_documents, *tokenizer, pair_options, Mix(seed, 1, 0)));
      for (size_t i = 0; i < eval_pairs.size(); ++i) {
        eval_examples.push_back(Mask(eval_pairs[i], vocab, max_length, masking, seed, kEvalEpoch, i));
      }
    }
    Emit(hooks, "log", {{"message", absl::StrCat("pretraining: ", train_pairs.size(), " training pairs from ",
                                                  data.train_documents.size(), " documents, ",
                                                  eval_examples.size(), " held-out pairs from ",
                                                  data.eval_documents.size(), " documents; vocabulary ",
                                                  vocab.size(), " tokens; ",
                                                  model->config().num_hidden_layers, " layers x ",
                                                  model->config().hidden_size, " hidden")}});

    // 3. Steps, schedule, optimizer: as RunFineTuning.
    const int64_t batches_per_epoch =
        (static_cast<int64_t>(train_pairs.size()) + args.per_device_train_batch_size - 1) /
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

    TrainerState state;
    BERTD_ASSIGN_OR_RETURN(bool resumed, RestoreCheckpoint(work, *model, *optimizer, &state));
    if (resumed) {
      Emit(hooks, "log", {{"message", absl::StrCat("resumed from checkpoint at step ", state.global_step)}});
    }

    const std::string best_metric_name =
        args.metric_for_best_model.empty() ? "mlm_accuracy" : args.metric_for_best_model;
    auto evaluate_and_track = [&]() -> absl::StatusOr<bool> {  // returns "stop early"
      std::map<std::string, double> metrics =
          Evaluate(*model, eval_examples, args.per_device_eval_batch_size);
      Emit(hooks, "eval", {{"step", state.global_step}, {"metrics", metrics}});
      auto it = metrics.find(best_metric_name);
      if (it == metrics.end()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "hyperparameters.metric_for_best_model: '", best_metric_name,
            "' is not computed for pretraining (mlm_accuracy, mlm_loss, perplexity, nsp_accuracy, "
            "nsp_loss, eval_loss)"));
      }
      const double value = LowerIsBetter(best_metric_name) ? -it->second : it->second;
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

    // 4. The loop.
    auto last_progress = std::chrono::steady_clock::now() - std::chrono::seconds(10);
    const auto started = std::chrono::steady_clock::now();
    const int64_t start_step = state.global_step;
    int64_t samples_since_start = 0;
    double mlm_since_report = 0, nsp_since_report = 0;
    int64_t batches_since_report = 0;
    int micro_batches = 0;
    bool stop_early = false;
    const int64_t max_epochs =
        total_steps * args.gradient_accumulation_steps / std::max<int64_t>(1, batches_per_epoch) + 2;

    while (state.global_step < total_steps && !stop_early && state.epoch < max_epochs) {
      // Order and masks depend only on (seed, epoch), so a resumed run sees the same batches.
      std::vector<int64_t> order(train_pairs.size());
      std::iota(order.begin(), order.end(), 0);
      std::mt19937_64 shuffle_rng(seed * 1000003ULL + state.epoch);
      std::shuffle(order.begin(), order.end(), shuffle_rng);

      for (int64_t b = state.batch_in_epoch; b < batches_per_epoch && state.global_step < total_steps; ++b) {
        std::vector<data::MaskedExample> examples;
        for (int64_t i = b * args.per_device_train_batch_size;
             i < std::min<int64_t>((b + 1) * args.per_device_train_batch_size, order.size()); ++i) {
          examples.push_back(Mask(train_pairs[order[i]], vocab, max_length, masking, seed,
                                  static_cast<uint64_t>(state.epoch), static_cast<uint64_t>(order[i])));
        }
        PretrainBatch batch = MakeBatch(examples);
        Forward f;
        at::Tensor loss;
        {
          CpuAutocast autocast(args.bf16);
          f = RunForward(*model, batch);
          loss = f.mlm_loss + f.nsp_loss;
        }
        const double loss_value = loss.item<double>();
        if (!std::isfinite(loss_value)) {
          return absl::InternalError(absl::StrCat("loss became ", loss_value, " at step ",
                                                  state.global_step, "; lower learning_rate"));
        }
        (loss / args.gradient_accumulation_steps).backward();
        state.loss_sum += loss_value;
        ++state.loss_count;
        mlm_since_report += f.mlm_loss.item<double>();
        nsp_since_report += f.nsp_loss.item<double>();
        ++batches_since_report;
        samples_since_start += static_cast<int64_t>(examples.size());
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
          const double mlm = mlm_since_report / std::max<int64_t>(1, batches_since_report);
          const double nsp = nsp_since_report / std::max<int64_t>(1, batches_since_report);
          Emit(hooks, "progress",
               {{"epoch", static_cast<double>(state.global_step) / updates_per_epoch},
                {"step", state.global_step},
                {"total_steps", total_steps},
                {"loss", mlm + nsp},
                {"mlm_loss", mlm},
                {"nsp_loss", nsp},
                {"learning_rate", lr},
                {"samples_per_second", samples_since_start / std::max(seconds, 1e-9)},
                {"eta_seconds", (total_steps - state.global_step) / std::max(steps_per_second, 1e-9)}});
          mlm_since_report = nsp_since_report = 0;
          batches_since_report = 0;
        }
        const bool epoch_ended = state.batch_in_epoch == 0;
        if (!eval_examples.empty() &&
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
    if (!eval_examples.empty()) {
      result.eval_metrics = Evaluate(*model, eval_examples, args.per_device_eval_batch_size);
      Emit(hooks, "eval", {{"step", state.global_step}, {"metrics", result.eval_metrics}, {"final", true}});
    }
    model->eval();
    BERTD_RETURN_IF_ERROR(model::SaveModelDirectory(output_dir, *model, *tokenizer));
    json summary = {{"spec", json::parse(spec.ToJson())},
                    {"global_step", result.global_step},
                    {"train_loss", result.train_loss},
                    {"eval_metrics", result.eval_metrics},
                    {"train_pairs", train_pairs.size()},
                    {"eval_pairs", eval_examples.size()},
                    {"vocab_size", vocab.size()}};
    BERTD_RETURN_IF_ERROR(WriteFileAtomically((fs::path(output_dir) / "training_summary.json").string(),
                                              summary.dump(2)));
    return result;
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("pretraining failed: ", e.what_without_backtrace()));
  }
}

}  // namespace bertd::training
