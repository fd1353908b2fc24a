#include "training/checkpointing.h"

#include <torch/torch.h>
#include <torch/version.h>

#include <algorithm>
#include <mutex>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/status_macros.h"
#include "model/checkpoint.h"
#include "model/io/safetensors.h"

namespace bertd::training {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

json StateToJson(const TrainerState& s) {
  return {{"global_step", s.global_step}, {"epoch", s.epoch}, {"batch_in_epoch", s.batch_in_epoch},
          {"loss_sum", s.loss_sum}, {"loss_count", s.loss_count},
          {"best_metric", std::isfinite(s.best_metric) ? json(s.best_metric) : json(nullptr)},
          {"evaluations_without_improvement", s.evaluations_without_improvement},
          {"loss_scale", s.loss_scale}, {"loss_scale_clean_steps", s.loss_scale_clean_steps}};
}

TrainerState StateFromJson(const json& j) {
  TrainerState s;
  s.global_step = j.value("global_step", int64_t{0});
  s.epoch = j.value("epoch", int64_t{0});
  s.batch_in_epoch = j.value("batch_in_epoch", int64_t{0});
  s.loss_sum = j.value("loss_sum", 0.0);
  s.loss_count = j.value("loss_count", int64_t{0});
  s.best_metric = j["best_metric"].is_number() ? j["best_metric"].get<double>() : -INFINITY;
  s.evaluations_without_improvement = j.value("evaluations_without_improvement", int64_t{0});
  s.loss_scale = j.value("loss_scale", 0.0);
  s.loss_scale_clean_steps = j.value("loss_scale_clean_steps", int64_t{0});
  return s;
}

}  // namespace

// LibTorch 2.4 replaced the per-device autocast setters with ones that take the device type.
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
Autocast::Autocast(c10::DeviceType device, bool bf16, bool fp16)
    : device_(device), previous_(at::autocast::is_autocast_enabled(device)) {
  const bool enabled = bf16 || fp16;
  if (enabled) at::autocast::set_autocast_dtype(device, fp16 ? at::kHalf : at::kBFloat16);
  at::autocast::set_autocast_enabled(device, enabled);
}

Autocast::~Autocast() {
  at::autocast::set_autocast_enabled(device_, previous_);
  at::autocast::clear_cache();
}
#else
Autocast::Autocast(c10::DeviceType device, bool bf16, bool fp16) : device_(device) {
  const bool enabled = bf16 || fp16;
  if (device_ == c10::DeviceType::CUDA) {
    previous_ = at::autocast::is_enabled();
    if (enabled) at::autocast::set_autocast_gpu_dtype(fp16 ? at::kHalf : at::kBFloat16);
    at::autocast::set_enabled(enabled);
  } else {
    // CPU autocast in LibTorch 1.13 knows bf16 only; fp16 jobs are refused on CPU slots.
    previous_ = at::autocast::is_cpu_enabled();
    if (enabled) at::autocast::set_autocast_cpu_dtype(at::kBFloat16);
    at::autocast::set_cpu_enabled(enabled);
  }
}

Autocast::~Autocast() {
  if (device_ == c10::DeviceType::CUDA) {
    at::autocast::set_enabled(previous_);
  } else {
    at::autocast::set_cpu_enabled(previous_);
  }
  at::autocast::clear_cache();
}
#endif

absl::Status SaveCheckpoint(const fs::path& work_dir, model::BertImpl& model,
                            torch::optim::AdamW& optimizer, const TrainerState& state,
                            int save_total_limit) {
  const std::string name = absl::StrCat("checkpoint-", state.global_step);
  const fs::path final_dir = work_dir / name;
  const fs::path temp_dir = work_dir / (".tmp-" + name);
  std::error_code ec;
  fs::remove_all(temp_dir, ec);
  fs::create_directories(temp_dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create ", temp_dir.string(), ": ", ec.message()));
  BERTD_RETURN_IF_ERROR(model::WriteSafetensors((temp_dir / "model.safetensors").string(),
                                                model::StateDict(model)));
  try {
    torch::save(optimizer, (temp_dir / "optimizer.pt").string());
    auto generator = at::detail::getDefaultCPUGenerator();
    at::Tensor rng;
    {
      std::lock_guard<std::mutex> lock(generator.mutex());
      rng = generator.get_state();
    }
    torch::save(rng, (temp_dir / "rng.pt").string());
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("cannot save optimizer state: ", e.what_without_backtrace()));
  }
  BERTD_RETURN_IF_ERROR(WriteFileAtomically((temp_dir / "trainer_state.json").string(),
                                            StateToJson(state).dump(2)));
  BERTD_RETURN_IF_ERROR(SyncDirectory(temp_dir.string()));
  fs::remove_all(final_dir, ec);
  fs::rename(temp_dir, final_dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot publish checkpoint ", final_dir.string(), ": ", ec.message()));
  BERTD_RETURN_IF_ERROR(WriteFileAtomically((work_dir / "latest").string(), name));
  if (save_total_limit > 0) {
    std::vector<std::pair<int64_t, fs::path>> checkpoints;
    for (const auto& entry : fs::directory_iterator(work_dir, ec)) {
      int64_t step = 0;
      const std::string file = entry.path().filename().string();
      if (file.rfind("checkpoint-", 0) == 0 && absl::SimpleAtoi(file.substr(11), &step)) {
        checkpoints.emplace_back(step, entry.path());
      }
    }
    std::sort(checkpoints.begin(), checkpoints.end());
    for (size_t i = 0; i + save_total_limit < checkpoints.size(); ++i) fs::remove_all(checkpoints[i].second, ec);
  }
  return absl::OkStatus();
}

absl::StatusOr<bool> RestoreCheckpoint(const fs::path& work_dir, model::BertImpl& model,
                                       torch::optim::AdamW& optimizer, TrainerState* state) {
  std::error_code ec;
  if (!fs::exists(work_dir / "latest", ec)) return false;
  BERTD_ASSIGN_OR_RETURN(std::string name, ReadFileToString((work_dir / "latest").string()));
  const fs::path dir = work_dir / name;
  BERTD_ASSIGN_OR_RETURN(model::TensorMap tensors,
                         model::ReadSafetensors((dir / "model.safetensors").string()));
  model::LoadReport report;
  BERTD_RETURN_IF_ERROR(model::LoadStateDict(model, tensors, false, &report));
  BERTD_ASSIGN_OR_RETURN(std::string state_text, ReadFileToString((dir / "trainer_state.json").string()));
  json state_json = json::parse(state_text, nullptr, false);
  if (!state_json.is_object()) return absl::DataLossError(absl::StrCat(dir.string(), ": bad trainer_state.json"));
  *state = StateFromJson(state_json);
  try {
    // Onto the model's device, whatever device wrote it: a job may resume on another slot type.
    torch::load(optimizer, (dir / "optimizer.pt").string(), model.parameters().front().device());
    at::Tensor rng;
    torch::load(rng, (dir / "rng.pt").string());
    auto generator = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(generator.mutex());
    generator.set_state(rng);
  } catch (const c10::Error& e) {
    return absl::DataLossError(absl::StrCat("cannot restore checkpoint ", dir.string(), ": ",
                                            e.what_without_backtrace()));
  }
  return true;
}


}  // namespace bertd::training
