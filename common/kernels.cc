#include "common/kernels.h"

#include <algorithm>
#include <chrono>

namespace busyfleet {

void CancelToken::Cancel() {
  if (!cancelled_.exchange(true)) notification_.Notify();
}

bool CancelToken::WaitUntil(MonoTime deadline) const {
  // absl's wait ends on the wall clock: wait again for what is left.
  for (;;) {
    const absl::Duration left = deadline - MonoNow();
    if (left <= absl::ZeroDuration()) return notification_.HasBeenNotified();
    if (notification_.WaitForNotificationWithTimeout(std::min(left, absl::Hours(24)))) return true;
  }
}

namespace {

inline void CountDownChunk(uint64_t n) {
  while (n > 0) {
    --n;
    asm volatile("" : "+r"(n));
  }
}

}  // namespace

KernelResult Countdown(uint64_t n, const CancelToken& cancel, MonoTime deadline) {
  const bool has_deadline = deadline != MonoTime::InfiniteFuture();
  uint64_t remaining = n;
  while (remaining > 0) {
    if (cancel.cancelled()) return {KernelOutcome::kCancelled, n - remaining};
    if (has_deadline && MonoNow() >= deadline) return {KernelOutcome::kTimedOut, n - remaining};
    const uint64_t chunk = std::min(remaining, kCountdownCheckEvery);
    CountDownChunk(chunk);
    remaining -= chunk;
  }
  return {KernelOutcome::kCompleted, n};
}

uint64_t BareCountdown(uint64_t n) {
  while (n > 0) {
    --n;
    asm volatile("" : "+r"(n));
  }
  return n;
}

KernelResult Spin(absl::Duration duration, const CancelToken& cancel, MonoTime deadline) {
  const auto start = std::chrono::steady_clock::now();
  const auto end = start + absl::ToChronoNanoseconds(duration);
  const bool has_deadline = deadline != MonoTime::InfiniteFuture();
  uint64_t spins = 0;
  for (;;) {
    const auto now = std::chrono::steady_clock::now();
    if (now >= end) break;
    if (cancel.cancelled()) return {KernelOutcome::kCancelled, spins};
    if (has_deadline && (spins & 0x3ff) == 0 && MonoNow() >= deadline) {
      return {KernelOutcome::kTimedOut, spins};
    }
    ++spins;
  }
  return {KernelOutcome::kCompleted, spins};
}

KernelResult Sleep(absl::Duration duration, const CancelToken& cancel, MonoTime deadline) {
  const MonoTime end = MonoNow() + duration;
  const MonoTime wake = std::min(end, deadline);
  if (cancel.WaitUntil(wake)) return {KernelOutcome::kCancelled, 0};
  if (wake < end) return {KernelOutcome::kTimedOut, 0};
  return {KernelOutcome::kCompleted, 0};
}

}  // namespace busyfleet
