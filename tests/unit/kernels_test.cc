#include "common/kernels.h"

#include <cstdint>
#include <thread>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace busyfleet {
namespace {

// A countdown this long would take minutes; tests only ever stop it early.
constexpr uint64_t kForever = 1'000'000'000'000ULL;

TEST(CountdownTest, CountsExactlyAndCompletes) {
  const uint64_t cases[] = {0,
                            1,
                            kCountdownCheckEvery - 1,
                            kCountdownCheckEvery,
                            kCountdownCheckEvery + 1,
                            3 * kCountdownCheckEvery + 7,
                            5'000'000};
  for (const uint64_t n : cases) {
    SCOPED_TRACE(n);
    CancelToken cancel;
    const KernelResult r = Countdown(n, cancel);
    EXPECT_EQ(r.outcome, KernelOutcome::kCompleted);
    EXPECT_EQ(r.iterations_done, n);
  }
}

TEST(CountdownTest, CompletesBeforeAFarDeadline) {
  CancelToken cancel;
  const KernelResult r = Countdown(2 * kCountdownCheckEvery, cancel, MonoNow() + absl::Hours(1));
  EXPECT_EQ(r.outcome, KernelOutcome::kCompleted);
  EXPECT_EQ(r.iterations_done, 2 * kCountdownCheckEvery);
}

TEST(CountdownTest, AlreadyCancelledTokenStopsBeforeCounting) {
  CancelToken cancel;
  cancel.Cancel();
  const KernelResult r = Countdown(kForever, cancel);
  EXPECT_EQ(r.outcome, KernelOutcome::kCancelled);
  EXPECT_EQ(r.iterations_done, 0u);
}

TEST(CountdownTest, StopsPromptlyWhenCancelledFromAnotherThread) {
  CancelToken cancel;
  absl::Notification started;
  KernelResult result;
  absl::Time cancelled_at;
  absl::Time returned_at;
  std::thread runner([&] {
    started.Notify();
    result = Countdown(kForever, cancel);
    returned_at = absl::Now();
  });
  started.WaitForNotification();
  // Let it count a little (a bounded wait on a condition that never comes).
  cancel.WaitUntil(MonoNow() + absl::Milliseconds(20));
  cancelled_at = absl::Now();
  cancel.Cancel();
  runner.join();
  const absl::Duration stop_latency = returned_at - cancelled_at;
  // Contract: within kCountdownCheckEvery iterations (~0.3 ms); a loaded
  // 2-core box can be much slower, so the bound is generous.
  EXPECT_LT(stop_latency, absl::Seconds(1));
  EXPECT_EQ(result.outcome, KernelOutcome::kCancelled);
  EXPECT_LT(result.iterations_done, kForever);
  EXPECT_EQ(result.iterations_done % kCountdownCheckEvery, 0u);
}

TEST(CountdownTest, PassedDeadlineTimesOut) {
  CancelToken cancel;
  const absl::Time before = absl::Now();
  const KernelResult r = Countdown(kForever, cancel, MonoNow() + absl::Milliseconds(30));
  const absl::Duration elapsed = absl::Now() - before;
  EXPECT_EQ(r.outcome, KernelOutcome::kTimedOut);
  EXPECT_GT(r.iterations_done, 0u);
  EXPECT_LT(r.iterations_done, kForever);
  EXPECT_EQ(r.iterations_done % kCountdownCheckEvery, 0u);
  EXPECT_GE(elapsed, absl::Milliseconds(30));
  EXPECT_LT(elapsed, absl::Seconds(2));
}

TEST(CountdownTest, DeadlineInThePastStopsAtOnce) {
  CancelToken cancel;
  const KernelResult r = Countdown(kForever, cancel, MonoNow() - absl::Seconds(1));
  EXPECT_EQ(r.outcome, KernelOutcome::kTimedOut);
  EXPECT_EQ(r.iterations_done, 0u);
}

TEST(BareCountdownTest, ReturnsZero) {
  EXPECT_EQ(BareCountdown(0), 0u);
  EXPECT_EQ(BareCountdown(1'000'000), 0u);
}

TEST(SpinTest, RunsAtLeastItsDuration) {
  CancelToken cancel;
  const absl::Time before = absl::Now();
  const KernelResult r = Spin(absl::Milliseconds(30), cancel);
  const absl::Duration elapsed = absl::Now() - before;
  EXPECT_EQ(r.outcome, KernelOutcome::kCompleted);
  EXPECT_GE(elapsed, absl::Milliseconds(30));
  EXPECT_LT(elapsed, absl::Seconds(2));
  EXPECT_GT(r.iterations_done, 0u);
}

TEST(SpinTest, ZeroDurationCompletesAtOnce) {
  CancelToken cancel;
  const KernelResult r = Spin(absl::ZeroDuration(), cancel);
  EXPECT_EQ(r.outcome, KernelOutcome::kCompleted);
}

TEST(SpinTest, StopsWhenCancelledFromAnotherThread) {
  CancelToken cancel;
  absl::Notification started;
  KernelResult result;
  absl::Time returned_at;
  const absl::Time before = absl::Now();
  std::thread runner([&] {
    started.Notify();
    result = Spin(absl::Hours(1), cancel);
    returned_at = absl::Now();
  });
  started.WaitForNotification();
  const absl::Time cancelled_at = absl::Now();
  cancel.Cancel();
  runner.join();
  EXPECT_EQ(result.outcome, KernelOutcome::kCancelled);
  EXPECT_LT(returned_at - cancelled_at, absl::Seconds(1));
  EXPECT_LT(returned_at - before, absl::Seconds(2));
}

TEST(SpinTest, DeadlineBeforeDurationTimesOut) {
  CancelToken cancel;
  const absl::Time before = absl::Now();
  const KernelResult r = Spin(absl::Hours(1), cancel, MonoNow() + absl::Milliseconds(20));
  const absl::Duration elapsed = absl::Now() - before;
  EXPECT_EQ(r.outcome, KernelOutcome::kTimedOut);
  EXPECT_GE(elapsed, absl::Milliseconds(20));
  EXPECT_LT(elapsed, absl::Seconds(2));
}

TEST(SleepTest, SleepsItsDurationAndCompletes) {
  CancelToken cancel;
  const absl::Time before = absl::Now();
  const KernelResult r = Sleep(absl::Milliseconds(30), cancel);
  const absl::Duration elapsed = absl::Now() - before;
  EXPECT_EQ(r.outcome, KernelOutcome::kCompleted);
  EXPECT_EQ(r.iterations_done, 0u);
  EXPECT_GE(elapsed, absl::Milliseconds(30));
  EXPECT_LT(elapsed, absl::Seconds(2));
}

TEST(SleepTest, WakesAtOnceOnCancel) {
  CancelToken cancel;
  absl::Notification started;
  absl::Notification finished;
  KernelResult result;
  absl::Time returned_at;
  std::thread runner([&] {
    started.Notify();
    result = Sleep(absl::Hours(1), cancel);
    returned_at = absl::Now();
    finished.Notify();
  });
  started.WaitForNotification();
  const absl::Time cancelled_at = absl::Now();
  cancel.Cancel();
  // Bounded wait: a sleeper that ignored the cancel would hold us an hour.
  const bool woke = finished.WaitForNotificationWithTimeout(absl::Seconds(5));
  ASSERT_TRUE(woke) << "Sleep did not wake on cancel";
  runner.join();
  EXPECT_EQ(result.outcome, KernelOutcome::kCancelled);
  EXPECT_LT(returned_at - cancelled_at, absl::Seconds(1));
}

TEST(SleepTest, DeadlineBeforeDurationTimesOut) {
  CancelToken cancel;
  const absl::Time before = absl::Now();
  const KernelResult r = Sleep(absl::Hours(1), cancel, MonoNow() + absl::Milliseconds(20));
  const absl::Duration elapsed = absl::Now() - before;
  EXPECT_EQ(r.outcome, KernelOutcome::kTimedOut);
  EXPECT_GE(elapsed, absl::Milliseconds(20));
  EXPECT_LT(elapsed, absl::Seconds(2));
}

TEST(SleepTest, DeadlineAfterDurationCompletes) {
  CancelToken cancel;
  const KernelResult r = Sleep(absl::Milliseconds(5), cancel, MonoNow() + absl::Hours(1));
  EXPECT_EQ(r.outcome, KernelOutcome::kCompleted);
}

TEST(CancelTokenTest, CancelTwiceIsSafe) {
  CancelToken cancel;
  EXPECT_FALSE(cancel.cancelled());
  cancel.Cancel();
  cancel.Cancel();
  EXPECT_TRUE(cancel.cancelled());
  EXPECT_TRUE(cancel.WaitUntil(MonoTime()));
}

TEST(CancelTokenTest, ConcurrentCancelsAreSafe) {
  CancelToken cancel;
  std::thread a([&] { cancel.Cancel(); });
  std::thread b([&] { cancel.Cancel(); });
  cancel.Cancel();
  a.join();
  b.join();
  EXPECT_TRUE(cancel.cancelled());
}

TEST(CancelTokenTest, WaitUntilTimesOutWhenNotCancelled) {
  CancelToken cancel;
  const absl::Time before = absl::Now();
  EXPECT_FALSE(cancel.WaitUntil(MonoNow() + absl::Milliseconds(10)));
  EXPECT_GE(absl::Now() - before, absl::Milliseconds(10));
  EXPECT_FALSE(cancel.cancelled());
}

TEST(CancelTokenTest, WaitUntilWakesOnCancelFromAnotherThread) {
  CancelToken cancel;
  std::thread canceller([&] { cancel.Cancel(); });
  EXPECT_TRUE(cancel.WaitUntil(MonoNow() + absl::Seconds(5)));
  canceller.join();
}

}  // namespace
}  // namespace busyfleet
