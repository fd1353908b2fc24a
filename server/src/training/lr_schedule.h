#ifndef BERTD_TRAINING_LR_SCHEDULE_H_
#define BERTD_TRAINING_LR_SCHEDULE_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace bertd::training {

// Hugging Face's learning-rate schedules (transformers.get_scheduler): the factor that multiplies
// the base learning rate for the optimizer update number `step` (0-based).
class LrSchedule {
 public:
  enum class Type { kLinear, kCosine, kConstant, kConstantWithWarmup };

  static absl::StatusOr<Type> ParseType(absl::string_view name);
  LrSchedule(Type type, int64_t warmup_steps, int64_t total_steps);

  double Factor(int64_t step) const;

 private:
  Type type_;
  int64_t warmup_steps_;
  int64_t total_steps_;
};

}  // namespace bertd::training

#endif  // BERTD_TRAINING_LR_SCHEDULE_H_
