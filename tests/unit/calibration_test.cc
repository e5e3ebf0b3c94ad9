#include "worker/calibration.h"

#include <pthread.h>
#include <sched.h>

#include <vector>

#include "gtest/gtest.h"

namespace busyfleet::worker {
namespace {

int AllowedCount() {
  cpu_set_t set;
  CPU_ZERO(&set);
  pthread_getaffinity_np(pthread_self(), sizeof(set), &set);
  return CPU_COUNT(&set);
}

KernelFn CountdownKernel() {
  return [](uint64_t n, const CancelToken& cancel) { return Countdown(n, cancel); };
}

CalibrationOptions Quick() {
  CalibrationOptions o;
  o.run = absl::Milliseconds(1);
  o.runs = 2;
  return o;
}

TEST(CalibrationCpusTest, PinnedSlotsGiveEachSlotsFirstCpuOnce) {
  EXPECT_EQ(CalibrationCpus({{2, 3}, {0, 1}, {2}}, 16), (std::vector<int>{2, 0}));
}

TEST(CalibrationCpusTest, FloatingSlotsUseTheAllowedCpus) {
  EXPECT_EQ(static_cast<int>(CalibrationCpus({}, 0).size()), AllowedCount());
}

TEST(CalibrationCpusTest, ManyCpusAreSpreadToTheCap) {
  std::vector<std::vector<int>> slots;
  for (int cpu = 0; cpu < 64; ++cpu) slots.push_back({cpu});
  EXPECT_EQ(CalibrationCpus(slots, 4), (std::vector<int>{0, 16, 32, 48}));
}

TEST(CalibrateTest, MeasuresEveryCpuAndKeepsTheMedian) {
  const std::vector<int> cpus = CalibrationCpus({}, 4);
  CancelToken never;
  const v1::KernelCalibration c = Calibrate(v1::TASK_KIND_COUNTDOWN, CountdownKernel(), cpus, never, Quick());
  EXPECT_EQ(c.kind(), v1::TASK_KIND_COUNTDOWN);
  ASSERT_EQ(c.cpus_size(), static_cast<int>(cpus.size()));
  for (int i = 0; i < c.cpus_size(); ++i) {
    EXPECT_EQ(c.cpus(i).cpu(), static_cast<uint32_t>(cpus[static_cast<size_t>(i)]));
    EXPECT_GT(c.cpus(i).iterations_per_second(), 0);
  }
  EXPECT_DOUBLE_EQ(c.iterations_per_second(), MedianRate(c));
  EXPECT_GT(c.measured_unix_ns(), 0);
  // The thread may run everywhere again.
  EXPECT_EQ(AllowedCount(), static_cast<int>(CalibrationCpus({}, 0).size()));
}

TEST(CalibrateTest, ACpuThatCannotBeUsedIsSkipped) {
  CancelToken never;
  const v1::KernelCalibration c = Calibrate(v1::TASK_KIND_COUNTDOWN, CountdownKernel(), {CPU_SETSIZE + 5}, never, Quick());
  EXPECT_EQ(c.cpus_size(), 0);
  EXPECT_DOUBLE_EQ(c.iterations_per_second(), 0);
}

TEST(CalibrateTest, ACancelledCalibrationMeasuresNothing) {
  CancelToken cancelled;
  cancelled.Cancel();
  const v1::KernelCalibration c =
      Calibrate(v1::TASK_KIND_COUNTDOWN, CountdownKernel(), CalibrationCpus({}, 2), cancelled, Quick());
  EXPECT_EQ(c.cpus_size(), 0);
}

TEST(CalibrateTest, AKernelThatFailsGivesNoRate) {
  CancelToken never;
  const KernelFn broken = [](uint64_t, const CancelToken&) { return KernelResult{KernelOutcome::kBadKind, 0}; };
  const v1::KernelCalibration c = Calibrate(v1::TASK_KIND_COUNTDOWN, broken, CalibrationCpus({}, 1), never, Quick());
  EXPECT_EQ(c.cpus_size(), 0);
  EXPECT_DOUBLE_EQ(c.iterations_per_second(), 0);
}

}  // namespace
}  // namespace busyfleet::worker
