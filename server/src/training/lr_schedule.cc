#include "training/lr_schedule.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"

namespace bertd::training {

absl::StatusOr<LrSchedule::Type> LrSchedule::ParseType(absl::string_view name) {
  if (name == "linear") return Type::kLinear;
  if (name == "cosine") return Type::kCosine;
  if (name == "constant") return Type::kConstant;
  if (name == "constant_with_warmup") return Type::kConstantWithWarmup;
  return absl::InvalidArgumentError(absl::StrCat(
      "lr_scheduler_type '", name, "' is not supported; expected linear, cosine, constant or "
      "constant_with_warmup"));
}

LrSchedule::LrSchedule(Type type, int64_t warmup_steps, int64_t total_steps)
    : type_(type), warmup_steps_(std::max<int64_t>(0, warmup_steps)), total_steps_(total_steps) {}

double LrSchedule::Factor(int64_t step) const {
  if (type_ == Type::kConstant) return 1.0;
  if (step < warmup_steps_) {
    return static_cast<double>(step) / static_cast<double>(std::max<int64_t>(1, warmup_steps_));
  }
  if (type_ == Type::kConstantWithWarmup) return 1.0;
  const double decay_steps = static_cast<double>(std::max<int64_t>(1, total_steps_ - warmup_steps_));
  const double progress = static_cast<double>(step - warmup_steps_) / decay_steps;
  if (type_ == Type::kLinear) return std::max(0.0, 1.0 - progress);
  // Cosine with half a cycle, as get_cosine_schedule_with_warmup's default.
  return std::max(0.0, 0.5 * (1.0 + std::cos(M_PI * progress)));
}

}  // namespace bertd::training
