#ifndef BUSYFLEET_COMMON_CLOCK_H_
#define BUSYFLEET_COMMON_CLOCK_H_

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <ostream>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace busyfleet {

// An instant on this process's monotonic clock (CLOCK_MONOTONIC, or a
// FakeClock's): a duration since an arbitrary epoch. It measures time and
// never names a date, so there is no conversion to or from absl::Time: the
// two cannot be mixed by accident. Liveness, timeouts, rate limits and
// schedules use it; a wall-clock step (NTP, an operator) does not move it.
class MonoTime {
 public:
  constexpr MonoTime() = default;  // the epoch
  static constexpr MonoTime FromNanos(int64_t ns) { return MonoTime(absl::Nanoseconds(ns)); }
  // Later than every instant (nothing due).
  static constexpr MonoTime InfiniteFuture() { return MonoTime(absl::InfiniteDuration()); }

  // Nanoseconds since the epoch (for a wire field in monotonic nanoseconds).
  int64_t nanos() const { return absl::ToInt64Nanoseconds(since_epoch_); }

  MonoTime& operator+=(absl::Duration d) {
    since_epoch_ += d;
    return *this;
  }
  MonoTime& operator-=(absl::Duration d) {
    since_epoch_ -= d;
    return *this;
  }
  friend MonoTime operator+(MonoTime t, absl::Duration d) { return t += d; }
  friend MonoTime operator-(MonoTime t, absl::Duration d) { return t -= d; }
  friend absl::Duration operator-(MonoTime a, MonoTime b) { return a.since_epoch_ - b.since_epoch_; }
  friend bool operator==(MonoTime a, MonoTime b) { return a.since_epoch_ == b.since_epoch_; }
  friend bool operator!=(MonoTime a, MonoTime b) { return a.since_epoch_ != b.since_epoch_; }
  friend bool operator<(MonoTime a, MonoTime b) { return a.since_epoch_ < b.since_epoch_; }
  friend bool operator<=(MonoTime a, MonoTime b) { return a.since_epoch_ <= b.since_epoch_; }
  friend bool operator>(MonoTime a, MonoTime b) { return a.since_epoch_ > b.since_epoch_; }
  friend bool operator>=(MonoTime a, MonoTime b) { return a.since_epoch_ >= b.since_epoch_; }
  // "mono+1.5s" (test failures, logs).
  friend std::ostream& operator<<(std::ostream& os, MonoTime t) { return os << "mono+" << t.since_epoch_; }

 private:
  constexpr explicit MonoTime(absl::Duration since_epoch) : since_epoch_(since_epoch) {}
  absl::Duration since_epoch_;
};

// Time source injected into domain classes so tests control time. Two
// clocks: the wall clock stamps what users read (submitted, started,
// finished, RFC 3339 output); the monotonic clock measures everything that
// decides (liveness, timeouts, rate limits, heartbeat and speculation
// schedules, backoff).
class Clock {
 public:
  virtual ~Clock() = default;
  // Wall clock (Unix time): for stamps only, never for deciding.
  virtual absl::Time Now() const = 0;
  // Monotonic clock, nanoseconds since an arbitrary epoch.
  virtual int64_t MonoNanos() const = 0;
  // The monotonic clock as a MonoTime.
  MonoTime Mono() const { return MonoTime::FromNanos(MonoNanos()); }

  // The process-wide real clock.
  static const Clock* Real();
};

// A clock that moves only when told to. Thread-safe.
class FakeClock : public Clock {
 public:
  explicit FakeClock(absl::Time start = absl::FromUnixSeconds(1'700'000'000));
  absl::Time Now() const override;
  int64_t MonoNanos() const override;
  // Time passes: both clocks move by `d`.
  void Advance(absl::Duration d);
  // The wall clock alone is set by `d` (either way), as by an NTP step or
  // `date -s`; the monotonic clock does not move.
  void StepWall(absl::Duration d);

 private:
  mutable absl::Mutex mu_;
  absl::Time now_ ABSL_GUARDED_BY(mu_);
  int64_t mono_ ABSL_GUARDED_BY(mu_) = 1'000'000'000;
};

// CPU time used by the calling thread, nanoseconds.
int64_t ThreadCpuNanos();

// Monotonic clock, nanoseconds (CLOCK_MONOTONIC).
int64_t MonoNanosNow();
// The same as a MonoTime (Clock::Real()->Mono()).
inline MonoTime MonoNow() { return MonoTime::FromNanos(MonoNanosNow()); }

// Blocks until `deadline` on `clock`'s monotonic clock or until Wake(),
// whichever comes first. For loops that sleep until something is due:
// absl's timed waits (this Abseil) sleep until a wall-clock deadline, so a
// wall step back would stretch them by the step; this one waits on
// std::condition_variable, whose waits use CLOCK_MONOTONIC. A Wake() with
// nobody waiting is kept for the next wait (a loop busy elsewhere when it
// comes still sees it). Thread-safe.
class MonoWaiter {
 public:
  // nullptr: the real clock. With a FakeClock the wait ends only by Wake()
  // or once the fake clock has passed `deadline` (looked at every 10 ms).
  explicit MonoWaiter(const Clock* clock = nullptr);
  // True if woken (by Wake, now or earlier), false at the deadline.
  bool WaitUntil(MonoTime deadline);
  void Wake();

 private:
  const Clock* const clock_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool woken_ = false;  // guarded by mu_
};

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
