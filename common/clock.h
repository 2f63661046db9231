// Clock: where time-driven logic (stall checks, deadlines) reads the time, so
// that unit tests drive it with a fake instead of sleeping.
#pragma once

#include <time.h>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace axon {

// The time, as absl::Now() gives it, read from the kernel's clock (the
// vDSO: no system call, no lock). absl::Now() keeps a cycle-counter clock
// that it recalibrates under one process-wide spin lock; threads that read
// the time in their spin loops (libaxon's waiters, progress and handler
// threads) queued on that lock.
inline absl::Time Now() {
  timespec ts;
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return absl::TimeFromTimespec(ts);
}

class Clock {
 public:
  virtual ~Clock() = default;
  virtual absl::Time Now() const = 0;

  // axon::Now(); one instance, shared.
  static const Clock& Real();
};

inline const Clock& Clock::Real() {
  class RealClock final : public Clock {
   public:
    absl::Time Now() const override { return axon::Now(); }
  };
  static const RealClock clock;
  return clock;
}

}  // namespace axon
