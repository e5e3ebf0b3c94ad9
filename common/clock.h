#ifndef BUSYFLEET_COMMON_CLOCK_H_
#define BUSYFLEET_COMMON_CLOCK_H_

#include <cstdint>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace busyfleet {

// Time source injected into domain classes so tests control time.
class Clock {
 public:
  virtual ~Clock() = default;
  // Wall clock (Unix time).
  virtual absl::Time Now() const = 0;
  // Monotonic clock, nanoseconds since an arbitrary epoch.
  virtual int64_t MonoNanos() const = 0;

  // The process-wide real clock.
  static const Clock* Real();
};

// A clock that moves only when told to. Thread-safe.
class FakeClock : public Clock {
 public:
  explicit FakeClock(absl::Time start = absl::FromUnixSeconds(1'700'000'000));
  absl::Time Now() const override;
  int64_t MonoNanos() const override;
  void Advance(absl::Duration d);

 private:
  mutable absl::Mutex mu_;
  absl::Time now_ ABSL_GUARDED_BY(mu_);
  int64_t mono_ ABSL_GUARDED_BY(mu_) = 1'000'000'000;
};

// CPU time used by the calling thread, nanoseconds.
int64_t ThreadCpuNanos();

// Monotonic clock, nanoseconds (CLOCK_MONOTONIC).
int64_t MonoNanosNow();

// The wall clock as this process reports it to others: absl::Now() plus the
// skew below.
absl::Time ReportedWallNow();

// Test hook (worker --debug-clock-skew): shifts MonoNanosNow() and
// ReportedWallNow() by `skew`, as on a machine whose clocks are that far
// off, so tests can check that clock offsets are estimated and applied.
// Call before any thread reads the clocks.
void SetClockSkewForTesting(absl::Duration skew);

}  // namespace busyfleet

#endif  // BUSYFLEET_COMMON_CLOCK_H_
