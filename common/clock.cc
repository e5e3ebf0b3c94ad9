#include "common/clock.h"

#include <algorithm>
#include <atomic>

#include <time.h>

namespace busyfleet {
namespace {

class RealClock : public Clock {
 public:
  absl::Time Now() const override { return absl::Now(); }
  int64_t MonoNanos() const override { return MonoNanosNow(); }
};

}  // namespace

const Clock* Clock::Real() {
  static const RealClock* clock = new RealClock();
  return clock;
}

FakeClock::FakeClock(absl::Time start) : now_(start) {}

absl::Time FakeClock::Now() const {
  absl::MutexLock lock(&mu_);
  return now_;
}

int64_t FakeClock::MonoNanos() const {
  absl::MutexLock lock(&mu_);
  return mono_;
}

void FakeClock::Advance(absl::Duration d) {
  absl::MutexLock lock(&mu_);
  now_ += d;
  mono_ += absl::ToInt64Nanoseconds(d);
}

void FakeClock::StepWall(absl::Duration d) {
  absl::MutexLock lock(&mu_);
  now_ += d;
}

MonoWaiter::MonoWaiter(const Clock* clock) : clock_(clock != nullptr ? clock : Clock::Real()) {}

bool MonoWaiter::WaitUntil(MonoTime deadline) {
  std::unique_lock<std::mutex> lock(mu_);
  const bool real = clock_ == Clock::Real();
  for (;;) {
    if (woken_) break;
    const absl::Duration left = deadline - clock_->Mono();
    if (left <= absl::ZeroDuration()) return false;
    // wait_for measures on steady_clock (CLOCK_MONOTONIC). A fake clock
    // moves by itself only in tests: look at it again soon.
    const absl::Duration slice = real ? std::min(left, absl::Hours(24)) : absl::Milliseconds(10);
    cv_.wait_for(lock, absl::ToChronoNanoseconds(slice));
  }
  woken_ = false;
  return true;
}

void MonoWaiter::Wake() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    woken_ = true;
  }
  cv_.notify_all();
}

int64_t ThreadCpuNanos() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

namespace {
std::atomic<int64_t> clock_skew_ns{0};
}  // namespace

int64_t MonoNanosNow() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec + clock_skew_ns.load(std::memory_order_relaxed);
}

absl::Time ReportedWallNow() {
  return absl::Now() + absl::Nanoseconds(clock_skew_ns.load(std::memory_order_relaxed));
}

void SetClockSkewForTesting(absl::Duration skew) {
  clock_skew_ns.store(absl::ToInt64Nanoseconds(skew), std::memory_order_relaxed);
}

}  // namespace busyfleet
