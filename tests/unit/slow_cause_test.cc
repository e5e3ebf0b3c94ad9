#include "coordinator/core/slow_cause.h"

#include <optional>

#include "busyfleet/v1/types.pb.h"
#include "gtest/gtest.h"

namespace busyfleet::coordinator {
namespace {

v1::Interference Quiet() {
  v1::Interference m;
  m.set_run_queue_wait_ns(0);
  m.set_involuntary_switches(0);
  m.set_steal_ns(0);
  m.set_steal_share(0);
  m.set_throttled_ns(0);
  m.set_throttled_periods(0);
  m.set_periods(0);
  return m;
}

TEST(StragglerCauseTest, Throttled) {
  v1::Interference m = Quiet();
  m.set_throttled_ns(120'000'000);
  m.set_throttled_periods(5);
  m.set_periods(6);
  EXPECT_EQ(StragglerCause(m, 0.5, std::nullopt), "throttled 120 ms (5 of 6 periods)");
}

TEST(StragglerCauseTest, ThrottlingSummedOverCpusIsCappedAtTheTasksTime) {
  v1::Interference m = Quiet();
  m.set_throttled_ns(3'000'000'000);  // two CPUs' worth of a 1.5 s throttle
  EXPECT_EQ(StragglerCause(m, 2.0, std::nullopt), "throttled 2.0 s");
}

TEST(StragglerCauseTest, Steal) {
  v1::Interference m = Quiet();
  m.set_steal_share(0.31);
  m.set_steal_ns(155'000'000);
  EXPECT_EQ(StragglerCause(m, 0.5, std::nullopt), "steal 31%");
}

TEST(StragglerCauseTest, WaitedForACpuWithItsSwitches) {
  v1::Interference m = Quiet();
  m.set_run_queue_wait_ns(40'000'000);
  m.set_involuntary_switches(12);
  EXPECT_EQ(StragglerCause(m, 0.2, std::nullopt), "waited 40 ms for a CPU (12 involuntary switches)");
}

TEST(StragglerCauseTest, ThrottledTimeIsNotCountedAgainAsAWaitForACpu) {
  // Captured in e2e_throttle: a throttled task is runnable, so its
  // schedstat wait holds the 266 ms it was throttled.
  v1::Interference m = Quiet();
  m.set_run_queue_wait_ns(400'226'712);
  m.set_involuntary_switches(54);
  m.set_throttled_ns(266'043'392);
  m.set_throttled_periods(5);
  m.set_periods(6);
  EXPECT_EQ(StragglerCause(m, 0.516, std::nullopt),
            "throttled 266 ms (5 of 6 periods), waited 134 ms for a CPU (54 involuntary switches)");
  m.set_run_queue_wait_ns(270'000'000);
  EXPECT_EQ(StragglerCause(m, 0.516, std::nullopt), "throttled 266 ms (5 of 6 periods)");
}

TEST(StragglerCauseTest, SeveralCausesLargestFirst) {
  v1::Interference m = Quiet();
  m.set_run_queue_wait_ns(140'000'000);  // 100 ms of it throttled
  m.set_steal_share(0.5);                // 250 ms of 0.5 s
  m.set_throttled_ns(100'000'000);
  EXPECT_EQ(StragglerCause(m, 0.5, std::nullopt), "steal 50%, throttled 100 ms, waited 40 ms for a CPU");
}

TEST(StragglerCauseTest, FiguresUnderFivePercentOfTheTaskExplainNothing) {
  v1::Interference m = Quiet();
  m.set_run_queue_wait_ns(8'000'000);  // 4 ms throttled, 4 ms (4% of 0.1 s) for a CPU
  m.set_steal_share(0.04);
  m.set_throttled_ns(4'000'000);
  EXPECT_EQ(StragglerCause(m, 0.1, std::nullopt), "no interference measured");
  m.set_run_queue_wait_ns(9'000'000);
  EXPECT_EQ(StragglerCause(m, 0.1, std::nullopt), "waited 5.0 ms for a CPU");
}

TEST(StragglerCauseTest, ManyInvoluntarySwitchesAlone) {
  v1::Interference m = Quiet();
  m.set_involuntary_switches(9);
  EXPECT_EQ(StragglerCause(m, 1, std::nullopt), "no interference measured");
  m.set_involuntary_switches(14);
  EXPECT_EQ(StragglerCause(m, 1, std::nullopt), "14 involuntary switches");
}

TEST(StragglerCauseTest, SlowRateWithNothingElseSuggestsASharedCore) {
  const v1::Interference m = Quiet();
  EXPECT_EQ(StragglerCause(m, 1, 0.55), "0.55× its core's rate, no steal: shared core?");
  EXPECT_EQ(StragglerCause(m, 1, 0.6), "no interference measured") << "0.6 is not below 0.6";
  EXPECT_EQ(StragglerCause(m, 1, std::nullopt), "no interference measured");
  v1::Interference no_steal_figure;
  EXPECT_EQ(StragglerCause(no_steal_figure, 1, 0.5), "0.5× its core's rate, steal unknown: shared core?");
}

TEST(StragglerCauseTest, SlowRateIsNotTheCauseWhenSomethingElseExplainsIt) {
  v1::Interference m = Quiet();
  m.set_throttled_ns(500'000'000);
  EXPECT_EQ(StragglerCause(m, 1, 0.4), "throttled 500 ms");
}

TEST(StragglerCauseTest, NotMeasured) {
  EXPECT_EQ(StragglerCause(std::nullopt, 1, std::nullopt), "not measured");
  EXPECT_EQ(StragglerCause(std::nullopt, 1, 0.5), "0.5× its core's rate, steal unknown: shared core? (not measured)");
}

}  // namespace
}  // namespace busyfleet::coordinator
