#include "training/memory_estimate.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/byte_size.h"

namespace bertd::training {

model::Architecture ArchitectureFor(TrainingTask task) {
  switch (task) {
    case TrainingTask::kSequenceClassification:
    case TrainingTask::kSentencePairClassification:
      return model::Architecture::kBertForSequenceClassification;
    case TrainingTask::kNextSentence:
      return model::Architecture::kBertForNextSentencePrediction;
    case TrainingTask::kSpanExtraction:
      return model::Architecture::kBertForQuestionAnswering;
    case TrainingTask::kPretraining:
      return model::Architecture::kBertForPreTraining;
  }
  return model::Architecture::kBertForSequenceClassification;
}

int64_t CountParameters(const model::BertConfig& config, const model::HeadSet& heads) {
  const int64_t h = config.hidden_size, i = config.intermediate_size, v = config.vocab_size;
  const int64_t layer_norm = 2 * h;
  int64_t count = (v + config.max_position_embeddings + config.type_vocab_size) * h + layer_norm;
  const int64_t layer = 4 * (h * h + h) + layer_norm + (h * i + i) + (i * h + h) + layer_norm;
  count += config.num_hidden_layers * layer;
  if (heads.pooler) count += h * h + h;
  // The MLM decoder's weight is the word embeddings (tied); only its bias is its own.
  if (heads.masked_lm) count += (h * h + h) + layer_norm + v;
  if (heads.next_sentence) count += h * 2 + 2;
  if (heads.classifier) count += h * config.num_labels + config.num_labels;
  if (heads.span) count += h * 2 + 2;
  return count;
}

MemoryEstimate EstimateTrainingMemory(const model::BertConfig& config, TrainingTask task,
                                      const TrainingArguments& args,
                                      const PretrainingOptions& pretraining) {
  const model::HeadSet heads = model::HeadSet::ForArchitecture(ArchitectureFor(task));
  MemoryEstimate estimate;
  estimate.parameters = CountParameters(config, heads);
  estimate.state_bytes = estimate.parameters * 16;
  const int64_t b = args.per_device_train_batch_size;
  const int64_t s = std::min(args.max_seq_length, config.max_position_embeddings);
  const int64_t h = config.hidden_size, i = config.intermediate_size,
                a = config.num_attention_heads;
  int64_t floats = config.num_hidden_layers * b * (s * (16 * h + 2 * i) + 3 * a * s * s);
  floats += b * 4 * s * h;
  if (heads.masked_lm) {
    const int64_t masked = pretraining.max_predictions_per_seq > 0
                               ? std::min<int64_t>(pretraining.max_predictions_per_seq, s)
                               : s;
    floats += b * masked * (config.vocab_size + 2 * h);
  }
  estimate.activation_bytes = floats * 4;
  estimate.runtime_bytes = kWorkerRuntimeBytes;
  return estimate;
}

std::string MemoryEstimate::Describe(int batch, int tokens) const {
  return absl::StrCat(FormatBytes(total()), " (", FormatBytes(state_bytes),
                      " weights, gradients and AdamW state for ",
                      absl::StrFormat("%.1fM", parameters / 1e6), " parameters, ",
                      FormatBytes(activation_bytes), " activations for a batch of ", batch, " x ",
                      tokens, " tokens, ", FormatBytes(runtime_bytes), " runtime)");
}

absl::Status CheckMemoryFits(const MemoryEstimate& estimate, int batch, int tokens,
                             const MemoryRoom& room) {
  const std::string needs =
      absl::StrCat("the job needs an estimated ", estimate.Describe(batch, tokens), " per worker");
  if (room.worker_limit > 0 && estimate.total() > room.worker_limit) {
    return absl::InvalidArgumentError(absl::StrCat(
        "hyperparameters.per_device_train_batch_size: ", needs, ", over the ",
        FormatBytes(room.worker_limit),
        " a CPU training worker may use (--training_memory_limit); lower the batch size or "
        "max_seq_length"));
  }
  if (room.machine_bytes <= 0) return absl::OkStatus();
  if (estimate.total() > room.machine_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "hyperparameters.per_device_train_batch_size: ", needs, ", more than this machine's ",
        FormatBytes(room.machine_bytes), " of memory; lower the batch size, max_seq_length or "
        "the model size"));
  }
  const int ranks = std::max(1, room.local_ranks);
  if (ranks > 1 && estimate.total() > room.machine_bytes / ranks) {
    return absl::InvalidArgumentError(absl::StrCat(
        "distributed.world_size: ", ranks, " local workers x ", FormatBytes(estimate.total()),
        " (", needs, ") do not fit this machine's ", FormatBytes(room.machine_bytes),
        " of memory; use fewer ranks or a smaller batch"));
  }
  return absl::OkStatus();
}

}  // namespace bertd::training
