#include "model/checkpoint.h"

#include <torch/torch.h>

#include <unistd.h>

#include <filesystem>
#include <set>

#include <nlohmann/json.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/json.h"
#include "absl/strings/str_join.h"
#include "common/file_util.h"
#include "common/status_macros.h"
#include "model/io/safetensors.h"
#include "model/io/torch_pickle.h"

namespace bertd::model {
namespace {

namespace fs = std::filesystem;

std::string ShapeString(const at::Tensor& tensor) {
  return absl::StrCat("[", absl::StrJoin(tensor.sizes(), ", "), "]");
}

// Maps a checkpoint key onto one of the model's parameter names, or "" if none fits.
std::string ResolveName(std::string key, const torch::OrderedDict<std::string, at::Tensor>& params) {
  // Checkpoints converted from TensorFlow name LayerNorm parameters gamma/beta.
  if (absl::EndsWith(key, ".gamma")) key = key.substr(0, key.size() - 6) + ".weight";
  if (absl::EndsWith(key, ".beta")) key = key.substr(0, key.size() - 5) + ".bias";
  if (params.contains(key)) return key;
  // A bare BertModel checkpoint has no `bert.` prefix.
  std::string prefixed = "bert." + key;
  if (params.contains(prefixed)) return prefixed;
  return "";
}

bool IsEncoderParameter(const std::string& name) {
  return absl::StartsWith(name, "bert.embeddings.") || absl::StartsWith(name, "bert.encoder.");
}

absl::StatusOr<TensorMap> ReadShardedWeights(const std::string& index_path,
                                             absl::StatusOr<TensorMap> (*read_shard)(const std::string&)) {
  BERTD_ASSIGN_OR_RETURN(std::string index_text, ReadFileToString(index_path));
  absl::StatusOr<nlohmann::json> parsed = ParseJson(index_text);
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(index_path, ": ", parsed.status().message()));
  }
  nlohmann::json& index = *parsed;
  if (!index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat(index_path, ": expected a JSON object with a 'weight_map' object"));
  }
  std::set<std::string> shards;
  for (const auto& [name, shard] : index["weight_map"].items()) {
    if (!shard.is_string() || shard.get<std::string>().find('/') != std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat(index_path, ": weight_map entry '", name, "' must name a file beside it"));
    }
    shards.insert(shard.get<std::string>());
  }
  TensorMap merged;
  const fs::path dir = fs::path(index_path).parent_path();
  for (const std::string& shard : shards) {
    BERTD_ASSIGN_OR_RETURN(TensorMap part, read_shard((dir / shard).string()));
    merged.merge(part);
  }
  return merged;
}

absl::StatusOr<TensorMap> ReadSafetensorsFile(const std::string& path) { return ReadSafetensors(path); }

}  // namespace

std::vector<std::string> LoadReport::Warnings() const {
  std::vector<std::string> warnings;
  if (!missing.empty()) {
    warnings.push_back(absl::StrCat(
        "Some weights were not in the checkpoint ", weights_path,
        " and are newly initialized: [", absl::StrJoin(missing, ", "),
        "]. Train the model on a downstream task before using it for predictions."));
  }
  if (!unexpected.empty()) {
    warnings.push_back(absl::StrCat("Some weights of the checkpoint ", weights_path,
                                    " were not used: [", absl::StrJoin(unexpected, ", "),
                                    "] (expected when its heads differ from this model's)."));
  }
  if (!mismatched.empty()) {
    warnings.push_back(absl::StrCat("Some weights had other shapes in the checkpoint and are newly "
                                    "initialized: [", absl::StrJoin(mismatched, "; "), "]"));
  }
  return warnings;
}

absl::Status LoadStateDict(BertImpl& model, const TensorMap& tensors, bool ignore_mismatched_sizes,
                           LoadReport* report) {
  torch::NoGradGuard no_grad;
  auto params = model.named_parameters();
  std::set<std::string> loaded;
  std::vector<std::string> reinitialize;
  std::vector<std::string> fatal_mismatches;

  // The decoder bias duplicates cls.predictions.bias in older checkpoints; use it only as a
  // fallback.
  const bool has_prediction_bias = tensors.count("cls.predictions.bias") > 0;
  for (const auto& [key, tensor] : tensors) {
    std::string name = ResolveName(key, params);
    if (name.empty() && key == "cls.predictions.decoder.bias" && !has_prediction_bias) {
      name = ResolveName("cls.predictions.bias", params);
    }
    if (name.empty()) {
      if (!IsTiedOrDerivedParameter(key)) report->unexpected.push_back(key);
      continue;
    }
    if (loaded.count(name)) continue;
    at::Tensor& param = params[name];
    if (param.sizes() != tensor.sizes()) {
      std::string what = absl::StrCat(name, ": checkpoint ", ShapeString(tensor), " vs model ",
                                      ShapeString(param));
      if (!ignore_mismatched_sizes || IsEncoderParameter(name)) {
        fatal_mismatches.push_back(what);
      } else {
        report->mismatched.push_back(what);
        reinitialize.push_back(name);
      }
      loaded.insert(name);
      continue;
    }
    if (!tensor.is_floating_point()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "checkpoint tensor ", key, " has dtype ", c10::toString(tensor.scalar_type()),
          ", expected a floating-point type"));
    }
    param.copy_(tensor);
    loaded.insert(name);
  }

  if (!fatal_mismatches.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "checkpoint does not fit the model config: ", absl::StrJoin(fatal_mismatches, "; "),
        ignore_mismatched_sizes ? "" : " (heads can be re-initialized with ignore_mismatched_sizes)"));
  }
  std::vector<std::string> missing_encoder;
  for (const auto& item : params) {
    if (loaded.count(item.key())) continue;
    if (IsEncoderParameter(item.key())) missing_encoder.push_back(item.key());
    report->missing.push_back(item.key());
    reinitialize.push_back(item.key());
  }
  if (!missing_encoder.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "checkpoint lacks ", missing_encoder.size(), " encoder tensor(s), e.g. ",
        missing_encoder.front(), "; is it a BERT checkpoint with this config.json?"));
  }
  model.InitializeParameters(reinitialize);
  return absl::OkStatus();
}

TensorMap StateDict(BertImpl& model) {
  TensorMap state;
  for (const auto& item : model.named_parameters()) {
    state.emplace(item.key(), item.value().detach().to(torch::kCPU).contiguous());
  }
  return state;
}

absl::StatusOr<TensorMap> ReadModelWeights(const std::string& model_dir, std::string* weights_path) {
  const fs::path dir(model_dir);
  struct Candidate {
    const char* file;
    absl::StatusOr<TensorMap> (*read)(const std::string&);
    bool sharded_index;
  };
  const Candidate candidates[] = {
      {"model.safetensors", &ReadSafetensorsFile, false},
      {"model.safetensors.index.json", &ReadSafetensorsFile, true},
      {"pytorch_model.bin", &ReadTorchCheckpoint, false},
      {"pytorch_model.bin.index.json", &ReadTorchCheckpoint, true},
  };
  for (const Candidate& candidate : candidates) {
    std::error_code ec;
    fs::path path = dir / candidate.file;
    if (!fs::exists(path, ec)) continue;
    if (weights_path != nullptr) *weights_path = path.string();
    return candidate.sharded_index ? ReadShardedWeights(path.string(), candidate.read)
                                   : candidate.read(path.string());
  }
  return absl::NotFoundError(absl::StrCat(
      "no weights in ", model_dir, ": expected model.safetensors or pytorch_model.bin"));
}

absl::StatusOr<c10::Device> ParseDevice(const std::string& device) {
  try {
    c10::Device parsed(device);
    if (parsed.is_cuda() && !torch::cuda::is_available()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "device '", device, "' requested, but this LibTorch build sees no CUDA device"));
    }
    if (!parsed.is_cpu() && !parsed.is_cuda()) {
      return absl::InvalidArgumentError(
          absl::StrCat("device '", device, "' is not supported; use cpu or cuda[:N]"));
    }
    return parsed;
  } catch (const c10::Error& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid device '", device, "': expected cpu, cuda or cuda:N"));
  }
}

absl::StatusOr<LoadedBert> LoadBertFromDirectory(const std::string& model_dir,
                                                 const ModelLoadOptions& options) {
  BERTD_ASSIGN_OR_RETURN(c10::Device device, ParseDevice(options.device));
  BERTD_ASSIGN_OR_RETURN(BertConfig config,
                         BertConfig::FromFile((fs::path(model_dir) / "config.json").string()));
  const Architecture architecture = options.architecture.value_or(config.PrimaryArchitecture());
  config.architectures = {std::string(ArchitectureName(architecture))};
  if (!options.id2label.empty()) {
    config.id2label = options.id2label;
    config.num_labels = static_cast<int>(options.id2label.size());
  }
  if (options.problem_type.has_value()) config.problem_type = *options.problem_type;

  LoadedBert loaded;
  BERTD_ASSIGN_OR_RETURN(TensorMap tensors, ReadModelWeights(model_dir, &loaded.report.weights_path));
  try {
    loaded.model = Bert(config, HeadSet::ForArchitecture(architecture));
    absl::Status status =
        LoadStateDict(*loaded.model, tensors, options.ignore_mismatched_sizes, &loaded.report);
    if (!status.ok()) {
      return absl::Status(status.code(),
                          absl::StrCat(loaded.report.weights_path, ": ", status.message()));
    }
    tensors.clear();  // release the checkpoint copy before moving to the device
    loaded.model->to(device);
    loaded.model->eval();
  } catch (const c10::Error& e) {
    return absl::InternalError(
        absl::StrCat("cannot build model from ", model_dir, ": ", e.what_without_backtrace()));
  }
  loaded.config = std::move(config);
  return loaded;
}

absl::Status SaveBertWeightsAndConfig(const std::string& model_dir, BertImpl& model) {
  std::error_code ec;
  fs::create_directories(model_dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create ", model_dir, ": ", ec.message()));
  BERTD_RETURN_IF_ERROR(WriteSafetensors((fs::path(model_dir) / "model.safetensors").string(),
                                         StateDict(model), {{"format", "pt"}}));
  return WriteFileAtomically((fs::path(model_dir) / "config.json").string(),
                             model.config().ToJson());
}

absl::Status SaveModelDirectory(const std::string& model_dir, BertImpl& model,
                                const text::BertTokenizer& tokenizer) {
  const fs::path target(model_dir);
  std::error_code ec;
  if (fs::exists(target, ec)) {
    return absl::AlreadyExistsError(absl::StrCat("model directory ", model_dir, " already exists"));
  }
  fs::create_directories(target.parent_path(), ec);
  if (ec) {
    return absl::InternalError(
        absl::StrCat("cannot create ", target.parent_path().string(), ": ", ec.message()));
  }
  const fs::path staging =
      target.parent_path() / absl::StrCat(".", target.filename().string(), ".staging-", getpid());
  fs::remove_all(staging, ec);
  absl::Status status = SaveBertWeightsAndConfig(staging.string(), model);
  if (status.ok()) status = tokenizer.SaveToDirectory(staging.string());
  if (status.ok()) {
    fs::rename(staging, target, ec);
    if (ec) {
      status = absl::InternalError(
          absl::StrCat("cannot move the saved model into ", model_dir, ": ", ec.message()));
    }
  }
  if (!status.ok()) {
    fs::remove_all(staging, ec);
    return status;
  }
  return SyncDirectory(target.parent_path().string());
}

}  // namespace bertd::model
