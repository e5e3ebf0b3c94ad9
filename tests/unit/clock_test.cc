// Unit tests of common/clock: MonoTime, FakeClock's two clocks, MonoWaiter.
#include "common/clock.h"

#include <thread>

#include <gtest/gtest.h>

#include "absl/synchronization/notification.h"
#include "absl/time/time.h"

namespace busyfleet {
namespace {

TEST(MonoTimeTest, ArithmeticAndOrder) {
  const MonoTime t = MonoTime::FromNanos(5'000'000'000);
  EXPECT_EQ(t.nanos(), 5'000'000'000);
  EXPECT_EQ((t + absl::Seconds(2)) - t, absl::Seconds(2));
  EXPECT_EQ(t - absl::Seconds(5), MonoTime());
  EXPECT_LT(t, t + absl::Nanoseconds(1));
  EXPECT_LT(t + absl::Hours(1'000'000), MonoTime::InfiniteFuture());
  EXPECT_EQ(MonoTime::InfiniteFuture() + absl::Seconds(1), MonoTime::InfiniteFuture());
}

TEST(FakeClockTest, StepWallMovesTheWallClockAlone) {
  FakeClock clock;
  const absl::Time wall = clock.Now();
  const MonoTime mono = clock.Mono();
  clock.StepWall(-absl::Hours(1));
  EXPECT_EQ(clock.Now(), wall - absl::Hours(1));
  EXPECT_EQ(clock.Mono(), mono);
  clock.Advance(absl::Seconds(3));
  EXPECT_EQ(clock.Now(), wall - absl::Hours(1) + absl::Seconds(3));
  EXPECT_EQ(clock.Mono(), mono + absl::Seconds(3));
}

TEST(MonoWaiterTest, AWakeWithNobodyWaitingIsKeptForTheNextWait) {
  MonoWaiter waiter;
  waiter.Wake();
  EXPECT_TRUE(waiter.WaitUntil(MonoTime::InfiniteFuture()));
  // Taken: the next wait runs to its deadline.
  EXPECT_FALSE(waiter.WaitUntil(MonoNow() + absl::Milliseconds(5)));
}

TEST(MonoWaiterTest, WakeEndsAWaitFromAnotherThread) {
  MonoWaiter waiter;
  std::thread waker([&] { waiter.Wake(); });
  EXPECT_TRUE(waiter.WaitUntil(MonoNow() + absl::Seconds(30)));
  waker.join();
}

TEST(MonoWaiterTest, AFakeClocksWaitEndsWhenItsMonotonicClockPassesTheDeadlineNotItsWallClock) {
  FakeClock clock;
  MonoWaiter waiter(&clock);
  const MonoTime deadline = clock.Mono() + absl::Seconds(10);
  absl::Notification stepped;
  std::thread time_passes([&] {
    clock.StepWall(absl::Hours(1));
    stepped.Notify();
    clock.Advance(absl::Seconds(10));
  });
  EXPECT_FALSE(waiter.WaitUntil(deadline));
  EXPECT_TRUE(stepped.HasBeenNotified());
  EXPECT_GE(clock.Mono(), deadline);
  time_passes.join();
}

}  // namespace
}  // namespace busyfleet
