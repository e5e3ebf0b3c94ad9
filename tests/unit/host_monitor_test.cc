#include "worker/host_monitor.h"

#include <atomic>

#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace busyfleet::worker {
namespace {

HostMonitor::Options Fast() {
  HostMonitor::Options o;
  o.calibration.run = absl::Milliseconds(1);
  o.calibration.runs = 1;
  o.max_cpus = 2;
  o.tick = absl::Milliseconds(10);
  return o;
}

// Recalibrates at the first idle tick.
HostMonitor::Options Eager() {
  HostMonitor::Options o = Fast();
  o.idle_before_recalibration = absl::ZeroDuration();
  o.recalibrate_age = absl::ZeroDuration();
  return o;
}

// Polls `take` until it gives something, up to a deadline.
template <typename Take>
auto WaitFor(Take take) {
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  auto got = take();
  while (got.empty() && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(5));  // polling interval, not synchronisation
    got = take();
  }
  return got;
}

TEST(HostMonitorTest, CalibrateNowPublishesTheCountdownOnce) {
  HostMonitor monitor(Fast());
  EXPECT_TRUE(monitor.Calibrations().empty());
  monitor.CalibrateNow();
  ASSERT_EQ(monitor.Calibrations().size(), 1u);
  EXPECT_EQ(monitor.Calibrations()[0].kind(), v1::TASK_KIND_COUNTDOWN);
  EXPECT_GT(monitor.Calibrations()[0].iterations_per_second(), 0);
  EXPECT_EQ(monitor.TakeNewCalibrations().size(), 1u);
  EXPECT_TRUE(monitor.TakeNewCalibrations().empty());  // taken
  EXPECT_EQ(monitor.Calibrations().size(), 1u);        // still known
}

TEST(HostMonitorTest, AnIdleWorkerRecalibratesAndSamplesTheHost) {
  HostMonitor monitor(Eager());
  monitor.CalibrateNow();
  monitor.TakeNewCalibrations();
  monitor.Start([] { return true; });
  const std::vector<v1::KernelCalibration> again = WaitFor([&] { return monitor.TakeNewCalibrations(); });
  ASSERT_EQ(again.size(), 1u);
  EXPECT_GT(again[0].iterations_per_second(), 0);
  EXPECT_GE(again[0].cpus_size(), 1);
  auto noise = WaitFor([&] {
    std::vector<v1::HostNoise> out;
    if (std::optional<v1::HostNoise> n = monitor.TakeNewNoise()) out.push_back(*n);
    return out;
  });
  ASSERT_EQ(noise.size(), 1u);
  EXPECT_GT(noise[0].online_cpus(), 0u);
  EXPECT_GT(noise[0].interval_seconds(), 0);
  monitor.Stop();
  monitor.Stop();  // idempotent
}

TEST(HostMonitorTest, ABusyWorkerIsNotRecalibrated) {
  HostMonitor monitor(Eager());
  monitor.CalibrateNow();
  monitor.TakeNewCalibrations();
  std::atomic<int> asked{0};
  monitor.Start([&] { return ++asked < 0; });  // never idle
  // Many ticks pass (the noise sampler runs on each), none recalibrates.
  WaitFor([&] { return asked.load() >= 5 ? std::vector<int>{1} : std::vector<int>{}; });
  monitor.Stop();
  EXPECT_TRUE(monitor.TakeNewCalibrations().empty());
}

}  // namespace
}  // namespace busyfleet::worker
