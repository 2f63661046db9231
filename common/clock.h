// Clock: where time-driven logic (stall checks, deadlines) reads the time, so
// that unit tests drive it with a fake instead of sleeping.
#pragma once

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace axon {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual absl::Time Now() const = 0;

  // absl::Now(); one instance, shared.
  static const Clock& Real();
};

inline const Clock& Clock::Real() {
  class RealClock final : public Clock {
   public:
    absl::Time Now() const override { return absl::Now(); }
  };
  static const RealClock clock;
  return clock;
}

}  // namespace axon
