#ifndef BERTD_TRAINING_PRETRAINER_H_
#define BERTD_TRAINING_PRETRAINER_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "model/config.h"
#include "text/tokenizer.h"
#include "training/job_spec.h"
#include "training/trainer.h"

// Pretraining BERT from raw text (masked LM + next sentence), and new models from scratch.
namespace bertd::training {

// A tokenizer for a vocabulary learned with WordPieceTrainer from `texts` (documents, lines,
// sentences: anything the words are counted in) under `options`; `words_counted` receives the
// number of words seen. Lowercasing follows options.lowercase.
absl::StatusOr<text::BertTokenizer> LearnVocabulary(const std::vector<std::string>& texts,
                                                    const VocabularyOptions& options,
                                                    int64_t* words_counted = nullptr);

// The config of spec's scratch base model (base_model "scratch[:PRESET]" + model_size) for a
// vocabulary of `vocab_size`, with `architecture` as its head.
absl::StatusOr<model::BertConfig> ScratchModelConfig(const TrainingJobSpec& spec, int vocab_size,
                                                     model::Architecture architecture);

// Writes a complete model directory (config.json, model.safetensors, vocab.txt,
// tokenizer_config.json) holding a BertForPreTraining model with BERT's random initialization,
// seeded by spec.args.seed: the base model of a fine-tuning job that starts from scratch. The same
// spec and tokenizer give the same weights.
absl::Status WriteScratchModel(const std::string& dir, const TrainingJobSpec& spec,
                               const text::BertTokenizer& tokenizer);

struct PretrainingData {
  std::vector<std::string> train_documents;  // each a document (lines joined by '\n')
  std::vector<std::string> eval_documents;   // held out; may be empty (no evaluation)
};

// Where pretraining starts.
struct PretrainingStart {
  // A model directory to continue pretraining (its vocabulary is used; its MLM/NSP heads are
  // created when it has none). Empty: a new model from spec's scratch preset.
  std::string base_model_dir;
  // For a new model: the vocabulary; unset = learn one from the training documents with
  // spec.vocabulary (kept in work_dir/vocab/ so a resumed run need not learn it again).
  std::optional<text::BertTokenizer> tokenizer;
};

// Pretrains a BertForPreTraining model: documents -> sentences (data::SplitSentences) -> word
// pieces -> NSP pairs (data::BuildSentencePairs, built once from the seed) -> MLM masks
// (data::MaskPair, drawn again every epoch from (seed, epoch, pair): dynamic masking, as RoBERTa)
// -> loss = MLM cross-entropy over the masked tokens + NSP cross-entropy. Optimizer, schedules,
// clipping, bf16, checkpoints (with exact resume) and events are those of RunFineTuning. Evaluation
// on the held-out documents (pairs and masks fixed by the seed) reports mlm_loss, mlm_accuracy,
// perplexity = exp(mlm_loss), nsp_loss, nsp_accuracy and eval_loss = mlm_loss + nsp_loss. The
// result, a complete Hugging Face model directory with architectures [BertForPreTraining], is
// written to `output_dir` (which must not exist).
absl::StatusOr<TrainingResult> RunPretraining(const TrainingJobSpec& spec,
                                              const PretrainingStart& start,
                                              const PretrainingData& data,
                                              const std::string& work_dir,
                                              const std::string& output_dir,
                                              const TrainerHooks& hooks);

}  // namespace bertd::training

#endif  // BERTD_TRAINING_PRETRAINER_H_
