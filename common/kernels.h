#ifndef BUSYFLEET_COMMON_KERNELS_H_
#define BUSYFLEET_COMMON_KERNELS_H_

// The busy-wait kernels a task runs. No I/O, no logging. Deadlines (a
// task's timeout) are on the monotonic clock (MonoNow()): a wall-clock step
// neither times a task out early nor lets it run over.

#include <atomic>
#include <cstdint>

#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "common/clock.h"

namespace busyfleet {

// A one-shot cancel signal shared by a task and whoever may stop it.
// Thread-safe; Cancel() may be called any number of times.
class CancelToken {
 public:
  void Cancel();
  bool cancelled() const { return cancelled_.load(std::memory_order_relaxed); }
  // Blocks until cancelled or `deadline` (monotonic, MonoNow()); true when
  // cancelled.
  bool WaitUntil(MonoTime deadline) const;

 private:
  std::atomic<bool> cancelled_{false};
  absl::Notification notification_;
};

// kBadKind: the caller asked for a kernel that does not exist.
enum class KernelOutcome { kCompleted, kCancelled, kTimedOut, kBadKind };

struct KernelResult {
  KernelOutcome outcome = KernelOutcome::kCompleted;
  uint64_t iterations_done = 0;
};

// How often the countdown looks at its cancel token and deadline: every
// 2^20 iterations, about 0.3 ms on a 3 GHz core.
inline constexpr uint64_t kCountdownCheckEvery = uint64_t{1} << 20;

// The chapter's loop `while n > 0: n -= 1`. An empty asm barrier on the
// counter keeps the compiler from folding the loop away. Stops early, within
// kCountdownCheckEvery iterations, when `cancel` fires or `deadline` passes.
KernelResult Countdown(uint64_t n, const CancelToken& cancel,
                       MonoTime deadline = MonoTime::InfiniteFuture());

// The bare loop, without any checks: the reference the kernel is measured
// against. Returns the final counter (always 0) so the call is not elided.
uint64_t BareCountdown(uint64_t n);

// Busy-waits on the clock for `duration` (burns one core).
KernelResult Spin(absl::Duration duration, const CancelToken& cancel,
                  MonoTime deadline = MonoTime::InfiniteFuture());

// Sleeps for `duration` (burns no CPU); wakes at once on cancel.
KernelResult Sleep(absl::Duration duration, const CancelToken& cancel,
                   MonoTime deadline = MonoTime::InfiniteFuture());

}  // namespace busyfleet

#endif  // BUSYFLEET_COMMON_KERNELS_H_
