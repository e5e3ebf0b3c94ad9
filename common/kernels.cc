#include "common/kernels.h"

#include <algorithm>
#include <chrono>

namespace busyfleet {

void CancelToken::Cancel() {
  if (!cancelled_.exchange(true)) notification_.Notify();
}

bool CancelToken::WaitUntil(absl::Time deadline) const {
  return notification_.WaitForNotificationWithDeadline(deadline);
}

namespace {

inline void CountDownChunk(uint64_t n) {
  while (n > 0) {
    --n;
    asm volatile("" : "+r"(n));
  }
}

}  // namespace

KernelResult Countdown(uint64_t n, const CancelToken& cancel, absl::Time deadline) {
  const bool has_deadline = deadline != absl::InfiniteFuture();
  uint64_t remaining = n;
  while (remaining > 0) {
    if (cancel.cancelled()) return {KernelOutcome::kCancelled, n - remaining};
    if (has_deadline && absl::Now() >= deadline) return {KernelOutcome::kTimedOut, n - remaining};
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

KernelResult Spin(absl::Duration duration, const CancelToken& cancel, absl::Time deadline) {
  const auto start = std::chrono::steady_clock::now();
  const auto end = start + absl::ToChronoNanoseconds(duration);
  const bool has_deadline = deadline != absl::InfiniteFuture();
  uint64_t spins = 0;
  for (;;) {
    const auto now = std::chrono::steady_clock::now();
    if (now >= end) break;
    if (cancel.cancelled()) return {KernelOutcome::kCancelled, spins};
    if (has_deadline && (spins & 0x3ff) == 0 && absl::Now() >= deadline) {
      return {KernelOutcome::kTimedOut, spins};
    }
    ++spins;
  }
  return {KernelOutcome::kCompleted, spins};
}

KernelResult Sleep(absl::Duration duration, const CancelToken& cancel, absl::Time deadline) {
  const absl::Time end = absl::Now() + duration;
  const absl::Time wake = std::min(end, deadline);
  if (cancel.WaitUntil(wake)) return {KernelOutcome::kCancelled, 0};
  if (wake < end) return {KernelOutcome::kTimedOut, 0};
  return {KernelOutcome::kCompleted, 0};
}

}  // namespace busyfleet
