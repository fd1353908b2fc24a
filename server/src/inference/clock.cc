#include "inference/clock.h"

namespace bertd::inference {
namespace {

class RealClock : public Clock {
 public:
  absl::Time Now() const override { return absl::Now(); }
};

}  // namespace

Clock* Clock::Real() {
  // Leaked on purpose: batchers may still read it while static destructors run.
  static Clock* const clock = new RealClock();
  return clock;
}

}  // namespace bertd::inference
