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
#include "training/data_parallel.h"
#include "training/train_loop.h"

namespace bertd::training {
namespace {

namespace fs = std::filesystem;
namespace F = torch::nn::functional;
using nlohmann::json;

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
PretrainBatch MakeBatch(const std::vector<data::MaskedExample>& examples, c10::Device device) {
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
  if (!device.is_cpu()) {
    return {{ids.to(device), types.to(device), mask.to(device)}, labels.to(device), nsp.to(device)};
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

// Held-out MLM and NSP metrics. Under data parallel each rank scores its shard and the sums are
// reduced, so every rank returns the same numbers.
absl::StatusOr<std::map<std::string, double>> Evaluate(model::BertImpl& model,
                                                       const std::vector<data::MaskedExample>& examples,
                                                       int batch_size, DataParallel* dp) {
  torch::NoGradGuard no_grad;
  model.eval();
  const std::vector<int64_t> mine = EvaluationShard(static_cast<int64_t>(examples.size()), dp);
  // mlm loss x tokens, mlm tokens, mlm correct, nsp loss x pairs, nsp correct, pairs
  std::vector<double> sums(6, 0.0);
  for (size_t begin = 0; begin < mine.size(); begin += batch_size) {
    std::vector<data::MaskedExample> part;
    for (size_t k = begin; k < std::min(mine.size(), begin + batch_size); ++k) part.push_back(examples[mine[k]]);
    PretrainBatch batch = MakeBatch(part, model.parameters().front().device());
    Forward f = RunForward(model, batch);
    const double masked = static_cast<double>(f.mlm_targets.size(0));
    if (masked > 0) sums[0] += f.mlm_loss.item<double>() * masked;
    sums[1] += masked;
    sums[2] += static_cast<double>(f.mlm_logits.argmax(-1).eq(f.mlm_targets).sum().item<int64_t>());
    sums[3] += f.nsp_loss.item<double>() * part.size();
    sums[4] += static_cast<double>(f.nsp_logits.argmax(-1).eq(batch.nsp_labels).sum().item<int64_t>());
    sums[5] += static_cast<double>(part.size());
  }
  model.train();
  if (dp) BERTD_RETURN_IF_ERROR(dp->AllReduceSum(&sums));
  const double pairs = std::max(1.0, sums[5]);
  const double mlm_loss = sums[0] / std::max(1.0, sums[1]);
  const double nsp_loss = sums[3] / pairs;
  return std::map<std::string, double>{{"mlm_loss", mlm_loss},
                                       {"mlm_accuracy", sums[2] / std::max(1.0, sums[1])},
                                       {"perplexity", std::exp(mlm_loss)},
                                       {"nsp_loss", nsp_loss},
                                       {"nsp_accuracy", sums[4] / pairs},
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
  std::mt19937_64 rng(MixSeed(seed, epoch, index));
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
      DataParallel* const dp = hooks.data_parallel;
      const bool learns_vocabulary = !start.tokenizer && !fs::exists(work / "vocab" / "vocab.txt", ec);
      if (dp != nullptr && learns_vocabulary) {
        // Rank 0 learns the vocabulary into the shared work directory; the others read it.
        if (dp->rank() == 0) {
          BERTD_ASSIGN_OR_RETURN(tokenizer, LearnVocabulary(data.train_documents, spec.vocabulary));
          BERTD_RETURN_IF_ERROR(tokenizer->SaveToDirectory((work / "vocab").string()));
        }
        BERTD_RETURN_IF_ERROR(dp->Barrier());
      }
      if (start.tokenizer) {
        tokenizer = start.tokenizer;
      } else if (tokenizer) {
        // learned above (rank 0 of a data-parallel run)
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
                             MakePairs(data.eval_documents, *tokenizer, pair_options, MixSeed(seed, 1, 0)));
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

    // 3. The shared loop; masks are drawn again every epoch from (seed, epoch, pair). The model,
    // and so its optimizer state, lives on the job's device.
    model->to(hooks.device);
    DataParallel* const dp = hooks.data_parallel;
    LoopTask loop;
    loop.num_samples = static_cast<int64_t>(train_pairs.size());
    loop.part_names = {"mlm_loss", "nsp_loss"};
    loop.micro_batch_loss = [&](const std::vector<int64_t>& indices, int64_t epoch) {
      std::vector<data::MaskedExample> examples;
      for (int64_t i : indices) {
        examples.push_back(Mask(train_pairs[i], vocab, max_length, masking, seed,
                                static_cast<uint64_t>(epoch), static_cast<uint64_t>(i)));
      }
      Forward f = RunForward(*model, MakeBatch(examples, hooks.device));
      return LoopTask::Loss{f.mlm_loss + f.nsp_loss, {f.mlm_loss.item<double>(), f.nsp_loss.item<double>()}};
    };
    if (!eval_examples.empty()) {
      loop.evaluate = [&]() { return Evaluate(*model, eval_examples, args.per_device_eval_batch_size, dp); };
    }
    loop.best_metric = args.metric_for_best_model.empty() ? "mlm_accuracy" : args.metric_for_best_model;
    loop.lower_is_better = LowerIsBetter(loop.best_metric);
    BERTD_ASSIGN_OR_RETURN(LoopResult outcome, RunTrainingLoop(args, *model, work, loop, hooks));

    TrainingResult result;
    result.global_step = outcome.state.global_step;
    result.train_loss = outcome.state.loss_count > 0 ? outcome.state.loss_sum / outcome.state.loss_count : 0;
    result.eval_metrics = outcome.eval_metrics;
    if (dp != nullptr && dp->rank() != 0) return result;  // rank 0 writes the model
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
