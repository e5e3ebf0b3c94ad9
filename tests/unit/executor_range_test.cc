// Executor::SubmitRange (issue 17): a range is one queue entry; tiny
// thread-mode countdowns run as runs whose results come back packed.

#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "busyfleet/v1/worker.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/executor_recorder.h"
#include "worker/executor.h"

namespace busyfleet::worker {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using executor_testing::Recorder;
using executor_testing::HeldIndices;
using executor_testing::Ref;

constexpr uint64_t kForever = 1'000'000'000'000ULL;
constexpr absl::Duration kWaitLimit = Recorder::kWaitLimit;

v1::AssignRange Range(const std::string& job, uint32_t first, uint32_t count, uint64_t iterations,
                      uint32_t attempt = 1) {
  v1::AssignRange r;
  r.set_job_id(job);
  r.set_first_index(first);
  r.set_count(count);
  r.set_attempt(attempt);
  r.set_kind(v1::TASK_KIND_COUNTDOWN);
  r.set_iterations(iterations);
  return r;
}

v1::Assignment Forever(const std::string& job, uint32_t index) {
  v1::Assignment a;
  a.mutable_task()->set_job_id(job);
  a.mutable_task()->set_task_index(index);
  a.mutable_task()->set_attempt(1);
  a.set_kind(v1::TASK_KIND_COUNTDOWN);
  a.set_iterations(kForever);
  return a;
}

Executor::Options Slots(int n) {
  Executor::Options o;
  o.slots = n;
  return o;
}


std::vector<uint32_t> Iota(uint32_t first, uint32_t count) {
  std::vector<uint32_t> v(count);
  for (uint32_t i = 0; i < count; ++i) v[i] = first + i;
  return v;
}

TEST(ExecutorRangeTest, TinyCountdownsRunAsRunsWithEveryTaskReportedOnce) {
  Recorder rec;
  Executor ex(Slots(1), rec.OnStarted(), rec.OnFinished(), rec.OnRun());
  ex.SubmitRange(Range("job", 1'000, 1'000, 500, /*attempt=*/3));
  ASSERT_TRUE(rec.WaitForResults(1'000));
  ASSERT_TRUE(ex.WaitIdle(absl::Now() + kWaitLimit));
  EXPECT_EQ(rec.indices(), Iota(1'000, 1'000));
  EXPECT_THAT(rec.started(), IsEmpty());  // too short to watch
  for (int n : rec.run_sizes()) EXPECT_LE(n, static_cast<int>(Executor::MaxRunLength(500)));
  for (const v1::TaskResult& r : rec.results()) {
    EXPECT_EQ(r.task().job_id(), "job");
    EXPECT_EQ(r.task().attempt(), 3u);
    EXPECT_EQ(r.state(), v1::TASK_STATE_SUCCEEDED);
    EXPECT_EQ(r.iterations_done(), 500u);
    EXPECT_EQ(r.slot(), 0u);
    EXPECT_EQ(r.pid(), static_cast<uint32_t>(getpid()));
    EXPECT_TRUE(r.has_start_wall());
    EXPECT_GE(r.end_mono_ns(), r.start_mono_ns());
    EXPECT_EQ(r.cpu_ns(), r.end_mono_ns() - r.start_mono_ns());
  }
  EXPECT_EQ(ex.queued(), 0);
  EXPECT_EQ(ex.running(), 0);
}

TEST(ExecutorRangeTest, EachSlotTakesAtMostItsShareOfARange) {
  Recorder rec;
  Executor ex(Slots(2), rec.OnStarted(), rec.OnFinished(), rec.OnRun());
  ex.SubmitRange(Range("job", 0, 10, 100));
  ASSERT_TRUE(rec.WaitForResults(10));
  ASSERT_TRUE(ex.WaitIdle(absl::Now() + kWaitLimit));
  EXPECT_EQ(rec.indices(), Iota(0, 10));
  // The first take is half the range; the rest at most half what is left.
  const std::vector<int> sizes = rec.run_sizes();
  ASSERT_FALSE(sizes.empty());
  for (int n : sizes) EXPECT_LE(n, 5);
}

// A run holds at most kMaxRunTasks tasks and at most kMaxRunIterations in
// all: hundreds of empty tasks, but only 64 of the longest tiny ones, so
// their results still come every millisecond or so.
TEST(ExecutorRangeTest, ARunIsBoundedByItsTasksAndTheirIterations) {
  static_assert(Executor::MaxRunLength(0) == Executor::kMaxRunTasks);
  static_assert(Executor::MaxRunLength(1) == Executor::kMaxRunTasks);
  static_assert(Executor::MaxRunLength(Executor::kWallIsCpuIterations) == 64);
  static_assert(Executor::MaxRunLength(Executor::kWallIsCpuIterations / 2) == 128);
  static_assert(Executor::MaxRunLength(Executor::kMaxRunIterations + 1) == 1);
  for (const uint64_t iterations : {uint64_t{0}, Executor::kWallIsCpuIterations}) {
    SCOPED_TRACE(iterations);
    Recorder rec;
    Executor ex(Slots(1), rec.OnStarted(), rec.OnFinished(), rec.OnRun());
    const uint32_t tasks = 2 * Executor::kMaxRunTasks;
    ex.SubmitRange(Range("job", 0, tasks, iterations));
    ASSERT_TRUE(rec.WaitForResults(tasks));
    ASSERT_TRUE(ex.WaitIdle(absl::Now() + kWaitLimit));
    EXPECT_EQ(rec.indices(), Iota(0, tasks));
    const std::vector<int> sizes = rec.run_sizes();
    ASSERT_FALSE(sizes.empty());
    // One slot takes the longest run it may first.
    EXPECT_EQ(sizes.front(), static_cast<int>(Executor::MaxRunLength(iterations)));
    for (int n : sizes) EXPECT_LE(n, static_cast<int>(Executor::MaxRunLength(iterations)));
  }
}

TEST(ExecutorRangeTest, CancelSplitsAQueuedRangeAroundTheTask) {
  Recorder rec;
  Executor ex(Slots(1), rec.OnStarted(), rec.OnFinished(), rec.OnRun());
  ex.Submit(Forever("block", 0));
  // The slot is held by the forever task once it runs; the range queues.
  ASSERT_TRUE(rec.WaitForStarted(1));
  ex.SubmitRange(Range("job", 0, 10, 100));
  EXPECT_EQ(ex.queued(), 10);
  v1::TaskRef ref;
  ref.set_job_id("job");
  ref.set_attempt(1);
  for (uint32_t index : {5u, 0u, 9u, 5u}) {  // middle, first, last, again
    ref.set_task_index(index);
    ex.Cancel(ref);
  }
  ref.set_attempt(2);  // another attempt: not these
  ref.set_task_index(3);
  ex.Cancel(ref);
  EXPECT_EQ(ex.queued(), 7);
  const std::vector<uint32_t> held = HeldIndices(ex, "job");
  EXPECT_THAT(held, ElementsAre(1, 2, 3, 4, 6, 7, 8));
  ex.Cancel(Forever("block", 0).task());
  ASSERT_TRUE(rec.WaitForResults(8));
  ASSERT_TRUE(ex.WaitIdle(absl::Now() + kWaitLimit));
  std::vector<uint32_t> ran;
  for (const v1::TaskResult& r : rec.results()) {
    if (r.task().job_id() == "job") ran.push_back(r.task().task_index());
  }
  std::sort(ran.begin(), ran.end());
  EXPECT_THAT(ran, ElementsAre(1, 2, 3, 4, 6, 7, 8));
}

TEST(ExecutorRangeTest, TakeQueuedAndCancelAllCoverEveryTaskOfARange) {
  Recorder rec;
  Executor ex(Slots(1), rec.OnStarted(), rec.OnFinished(), rec.OnRun());
  ex.Submit(Forever("block", 0));
  ASSERT_TRUE(rec.WaitForStarted(1));
  ex.SubmitRange(Range("job", 7, 3, 100));
  std::vector<uint32_t> taken;
  for (const v1::TaskRef& t : ex.TakeQueued()) taken.push_back(t.task_index());
  EXPECT_THAT(taken, ElementsAre(7, 8, 9));
  EXPECT_EQ(ex.queued(), 0);
  ex.SubmitRange(Range("job", 20, 4, 100));
  EXPECT_EQ(ex.queued(), 4);
  ex.CancelAll();
  ASSERT_TRUE(ex.WaitIdle(absl::Now() + kWaitLimit));
  const std::vector<v1::TaskResult> results = rec.results();
  ASSERT_EQ(results.size(), 1u);  // only the forever task, cancelled
  EXPECT_EQ(results[0].task().job_id(), "block");
  EXPECT_EQ(results[0].state(), v1::TASK_STATE_CANCELLED);
}

// Tasks 0-2 of "job" run as one run on one slot; its hand-over waits for
// `gate` (WaitEntered: the three have run).
struct GatedRun {
  GatedRun() {
    rec.set_gate(&gate);
    ex.SubmitRange(Range("job", 0, 3, 100));
  }
  Recorder rec;
  absl::Notification gate;
  Executor ex{Slots(1), rec.OnStarted(), rec.OnFinished(), rec.OnRun()};
};

TEST(ExecutorRangeTest, ARunsTasksStayHeldAndRunningUntilHandedOver) {
  GatedRun run;
  Recorder& rec = run.rec;
  Executor& ex = run.ex;
  absl::Notification& gate = run.gate;
  ASSERT_TRUE(rec.WaitEntered());
  // Run, not handed over: still this worker's (Hello.held), not idle.
  EXPECT_THAT(HeldIndices(ex, "job"), ElementsAre(0, 1, 2));
  EXPECT_EQ(ex.running(), 3);
  EXPECT_FALSE(ex.WaitIdle(absl::Now()));
  gate.Notify();
  ASSERT_TRUE(ex.WaitIdle(absl::Now() + kWaitLimit));
  EXPECT_EQ(rec.indices(), Iota(0, 3));
  EXPECT_THAT(ex.Held(), IsEmpty());
}

// A cancel that comes after a run's task has run, before its result is
// handed over, changes nothing: the task is still held and running, and its
// result comes. (It used to be counted out at once, though its result came.)
TEST(ExecutorRangeTest, CancellingATaskThatHasRunLeavesItHeldUntilItsResultGoes) {
  GatedRun run;
  Recorder& rec = run.rec;
  Executor& ex = run.ex;
  absl::Notification& gate = run.gate;
  ASSERT_TRUE(rec.WaitEntered());  // all three have run
  ex.Cancel(Ref("job", 1));
  EXPECT_THAT(HeldIndices(ex, "job"), ElementsAre(0, 1, 2));
  EXPECT_EQ(ex.running(), 3);
  gate.Notify();
  ASSERT_TRUE(ex.WaitIdle(absl::Now() + kWaitLimit));
  EXPECT_EQ(rec.indices(), Iota(0, 3));
  EXPECT_EQ(ex.running(), 0);
}

TEST(ExecutorRangeTest, LongerTasksOfARangeRunOneAtATimeWithStartNotices) {
  Recorder rec;
  Executor ex(Slots(1), rec.OnStarted(), rec.OnFinished(), rec.OnRun());
  ex.SubmitRange(Range("job", 0, 3, 2 * Executor::kWallIsCpuIterations));
  ASSERT_TRUE(rec.WaitForResults(3));
  ASSERT_TRUE(ex.WaitIdle(absl::Now() + kWaitLimit));
  EXPECT_EQ(rec.singles().size(), 3u);
  EXPECT_THAT(rec.run_sizes(), IsEmpty());
  EXPECT_EQ(rec.started().size(), 3u);
  EXPECT_EQ(rec.indices(), Iota(0, 3));
}

TEST(ExecutorRangeTest, WithoutARunCallbackEachResultComesAlone) {
  Recorder rec;
  Executor ex(Slots(1), rec.OnStarted(), rec.OnFinished());
  ex.SubmitRange(Range("job", 0, 100, 100));
  ASSERT_TRUE(rec.WaitForResults(100));
  ASSERT_TRUE(ex.WaitIdle(absl::Now() + kWaitLimit));
  EXPECT_EQ(rec.indices(), Iota(0, 100));
  for (const v1::TaskResult& r : rec.singles()) {
    EXPECT_EQ(r.task().job_id(), "job");
    EXPECT_EQ(r.state(), v1::TASK_STATE_SUCCEEDED);
    EXPECT_TRUE(r.has_start_cpu());
    EXPECT_EQ(r.bound_cpus(), "");
  }
}

TEST(ExecutorRangeTest, ARangeTooLongOrPastTheLastIndexIsIgnored) {
  Recorder rec;
  Executor ex(Slots(1), rec.OnStarted(), rec.OnFinished(), rec.OnRun());
  ex.SubmitRange(Range("job", 0, Executor::kMaxRangeTasks + 1, 100));
  ex.SubmitRange(Range("job", UINT32_MAX - 1, 3, 100));
  ex.SubmitRange(Range("job", 0, 0, 100));
  EXPECT_EQ(ex.queued(), 0);
  EXPECT_TRUE(ex.WaitIdle(absl::Now()));
}

}  // namespace
}  // namespace busyfleet::worker
