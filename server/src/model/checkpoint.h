#ifndef BERTD_MODEL_CHECKPOINT_H_
#define BERTD_MODEL_CHECKPOINT_H_

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "model/bert.h"
#include "model/config.h"
#include "model/io/tensor_map.h"
#include "text/tokenizer.h"

namespace bertd::model {

// What a load did with each tensor, in Hugging Face's terms.
struct LoadReport {
  std::string weights_path;               // the file(s) read
  std::vector<std::string> missing;       // model parameters the checkpoint lacked (initialized)
  std::vector<std::string> unexpected;    // checkpoint tensors the model has no place for
  std::vector<std::string> mismatched;    // "name: checkpoint [a, b] vs model [c, d]"

  // One human-readable warning per non-empty list, or none for a perfect load.
  std::vector<std::string> Warnings() const;
};

struct ModelLoadOptions {
  // Heads to build; default: the config's first `architectures` entry.
  std::optional<Architecture> architecture;
  // Labels for a classification head being created (e.g. fine-tuning bert-base-uncased).
  // Empty: keep the config's.
  std::map<int, std::string> id2label;
  // config.json's problem_type for the head being created; unset: keep the config's.
  std::optional<std::string> problem_type;
  // "cpu", "cuda", "cuda:1" ...
  std::string device = "cpu";
  // Re-initialize (and report) head tensors whose shape differs instead of failing.
  bool ignore_mismatched_sizes = false;
};

// Copies `tensors` (Hugging Face names, with or without the `bert.` prefix, TF-style
// LayerNorm gamma/beta accepted) into `model`. Parameters without a tensor keep their current
// values and are listed in report->missing. Encoder parameters (embeddings, layers) missing
// from a checkpoint are an error: the result would be a silently random model.
absl::Status LoadStateDict(BertImpl& model, const TensorMap& tensors, bool ignore_mismatched_sizes,
                           LoadReport* report);

// The model's parameters under Hugging Face names, without tied weights, on the CPU.
TensorMap StateDict(BertImpl& model);

// Reads the weights of a Hugging Face model directory: model.safetensors, else
// pytorch_model.bin (or their sharded `.index.json` forms).
absl::StatusOr<TensorMap> ReadModelWeights(const std::string& model_dir, std::string* weights_path);

struct LoadedBert {
  BertConfig config;
  Bert model{nullptr};
  LoadReport report;
};

// config.json + weights -> a model in eval mode on the requested device. Heads absent from the
// checkpoint are initialized (normal, std = initializer_range) and listed in report.missing.
absl::StatusOr<LoadedBert> LoadBertFromDirectory(const std::string& model_dir,
                                                 const ModelLoadOptions& options = {});

// Writes config.json (with `architectures` and labels) and model.safetensors into `model_dir`
// (created if needed), each file atomically.
absl::Status SaveBertWeightsAndConfig(const std::string& model_dir, BertImpl& model);

// Writes a complete Hugging Face model directory: config.json, model.safetensors, vocab.txt and
// tokenizer_config.json. Everything goes into a hidden staging directory beside `model_dir`
// that is renamed onto it only when complete, so no reader ever sees a partial model.
// ALREADY_EXISTS if `model_dir` exists: a saved version is immutable.
absl::Status SaveModelDirectory(const std::string& model_dir, BertImpl& model,
                                const text::BertTokenizer& tokenizer);

// Parses a device string, failing clearly when CUDA is requested from a CPU-only LibTorch.
absl::StatusOr<c10::Device> ParseDevice(const std::string& device);

}  // namespace bertd::model

#endif  // BERTD_MODEL_CHECKPOINT_H_
