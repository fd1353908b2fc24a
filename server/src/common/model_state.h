#ifndef BERTD_COMMON_MODEL_STATE_H_
#define BERTD_COMMON_MODEL_STATE_H_

#include "absl/strings/string_view.h"

namespace bertd {

// Lifecycle of one model version: what the registry tracks and bertd_model_state exports.
enum class ModelState { kLoading, kReady, kFailed, kUnloading };

inline constexpr ModelState kAllModelStates[] = {ModelState::kLoading, ModelState::kReady,
                                                 ModelState::kFailed, ModelState::kUnloading};

// "LOADING", "READY", "FAILED" or "UNLOADING".
absl::string_view ModelStateName(ModelState state);

}  // namespace bertd

#endif  // BERTD_COMMON_MODEL_STATE_H_
