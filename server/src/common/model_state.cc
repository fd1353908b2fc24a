#include "common/model_state.h"

namespace bertd {

absl::string_view ModelStateName(ModelState state) {
  switch (state) {
    case ModelState::kLoading:
      return "LOADING";
    case ModelState::kReady:
      return "READY";
    case ModelState::kFailed:
      return "FAILED";
    case ModelState::kUnloading:
      return "UNLOADING";
  }
  return "UNKNOWN";
}

}  // namespace bertd
