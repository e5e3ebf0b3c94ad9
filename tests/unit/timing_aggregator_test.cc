#include "coordinator/core/timing_aggregator.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "busyfleet/v1/coordinator.pb.h"
#include "common/parallel.h"
#include "common/stats.h"
#include "coordinator/core/job_model.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace busyfleet::coordinator {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

constexpr double kEps = 1e-9;
constexpr uint64_t kIters = 10'000'000;

const absl::Time kT0 = absl::FromUnixSeconds(1'700'000'000);
absl::Time At(int64_t ms) { return kT0 + absl::Milliseconds(ms); }

TaskRecord Task(uint32_t index, const std::string& worker, int64_t assigned_ms, int64_t start_ms,
                int64_t end_ms, int64_t cpu_ms) {
  TaskRecord t;
  t.index = index;
  t.current.iterations_done = kIters;
  t.state = v1::TASK_STATE_SUCCEEDED;
  t.current.number = 1;
  t.current.worker = worker;
  t.current.host = "host-" + worker;
  t.current.slot = 0;
  t.current.assigned_at = At(assigned_ms);
  t.current.started_at = At(start_ms);
  t.current.ended_at = At(end_ms);
  t.current.result_at = At(end_ms + 200);
  t.current.cpu_ns = cpu_ms * 1'000'000;
  return t;
}

// 4 countdown tasks on 2 workers x 1 slot, submitted at T0:
//   w1 slot 0: task 0 [0.1 s, 1.1 s]  task 2 [1.1 s, 2.1 s]
//   w2 slot 0: task 1 [0.1 s, 1.1 s]  task 3 [1.1 s, 3.1 s]   (the straggler)
// Each result arrives 0.2 s after the task ends; the last at 3.3 s.
// makespan = 3.0, serial = 5.0, wall = 3.3.
JobRecord FinishedJob() {
  JobRecord job;
  job.id = "job-1";
  job.spec.set_name("demo");
  job.spec.set_kind(v1::TASK_KIND_COUNTDOWN);
  job.spec.set_tasks(4);
  job.spec.set_iterations(kIters);
  job.state = v1::JOB_STATE_SUCCEEDED;
  job.submitted_at = kT0;
  job.finished_at = At(3'300);
  job.tasks.push_back(Task(0, "w1", 50, 100, 1'100, 990));
  job.tasks.push_back(Task(1, "w2", 50, 100, 1'100, 980));
  job.tasks.push_back(Task(2, "w1", 60, 1'100, 2'100, 970));
  job.tasks.push_back(Task(3, "w2", 60, 1'100, 3'100, 1'960));
  job.succeeded = 4;
  job.iterations_total = 4 * kIters;
  job.iterations_done = 4 * kIters;
  return job;
}

const v1::WorkerTiming* FindWorker(const v1::JobReport& r, const std::string& name) {
  for (const v1::WorkerTiming& w : r.workers()) {
    if (w.name() == name) return &w;
  }
  return nullptr;
}

TEST(BuildReportTest, HeaderFields) {
  const JobRecord job = FinishedJob();
  const v1::JobReport r = BuildReport(job, {}, At(10'000), /*include_tasks=*/true);
  EXPECT_EQ(r.schema(), 1u);
  EXPECT_EQ(r.id(), "job-1");
  EXPECT_EQ(r.name(), "demo");
  EXPECT_EQ(r.state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(r.kind(), v1::TASK_KIND_COUNTDOWN);
  EXPECT_EQ(r.tasks_total(), 4u);
  EXPECT_EQ(r.tasks_succeeded(), 4u);
  EXPECT_EQ(r.tasks_failed(), 0u);
  EXPECT_EQ(r.iterations_total(), 4 * kIters);
  EXPECT_EQ(r.spec().tasks(), 4u);
  EXPECT_EQ(r.timing().submitted_at().seconds(), 1'700'000'000);
  EXPECT_EQ(r.timing().submitted_at().nanos(), 0);
  EXPECT_EQ(r.timing().started_at().seconds(), 1'700'000'000);
  EXPECT_EQ(r.timing().started_at().nanos(), 100'000'000);
  EXPECT_EQ(r.timing().finished_at().seconds(), 1'700'000'003);
  EXPECT_EQ(r.timing().finished_at().nanos(), 300'000'000);
}

TEST(BuildReportTest, JobTimingIsExact) {
  const v1::JobReport r = BuildReport(FinishedJob(), {}, At(10'000), true);
  const v1::JobTiming& t = r.timing();
  EXPECT_NEAR(t.wall_seconds(), 3.3, kEps);
  EXPECT_NEAR(t.makespan_seconds(), 3.0, kEps);
  EXPECT_NEAR(t.serial_seconds(), 5.0, kEps);
  EXPECT_NEAR(t.overhead_seconds(), 0.3, kEps);
  EXPECT_NEAR(t.speedup(), 5.0 / 3.0, kEps);
  EXPECT_EQ(t.slots(), 2u);
  EXPECT_NEAR(t.efficiency(), 5.0 / 6.0, kEps);
  EXPECT_NEAR(t.cpu_seconds(), 0.99 + 0.98 + 0.97 + 1.96, kEps);
  // Phases: queued = submit -> assigned, dispatch = assigned -> start,
  // result = end -> result received.
  EXPECT_NEAR(t.mean_queued_seconds(), (0.05 + 0.05 + 0.06 + 0.06) / 4, kEps);
  EXPECT_NEAR(t.mean_dispatch_seconds(), (0.05 + 0.05 + 1.04 + 1.04) / 4, kEps);
  EXPECT_NEAR(t.mean_result_seconds(), 0.2, kEps);
}

TEST(BuildReportTest, TaskDurationPercentiles) {
  const v1::JobReport r = BuildReport(FinishedJob(), {}, At(10'000), true);
  const v1::TaskDurationStats& s = r.timing().task_seconds();
  EXPECT_NEAR(s.min(), 1.0, kEps);
  EXPECT_NEAR(s.p50(), 1.0, kEps);
  EXPECT_NEAR(s.p90(), 1.7, kEps);
  EXPECT_NEAR(s.p99(), 1.97, kEps);
  EXPECT_NEAR(s.max(), 2.0, kEps);
}

TEST(BuildReportTest, StragglersAreTasksOverOneAndAHalfMedians) {
  const v1::JobReport r = BuildReport(FinishedJob(), {}, At(10'000), true);
  EXPECT_THAT(r.stragglers(), ElementsAre(3u));
}

TEST(BuildReportTest, ExactlyOneAndAHalfMediansIsNotAStraggler) {
  JobRecord job = FinishedJob();
  job.tasks[3].current.ended_at = At(2'600);  // 1.5 s = 1.5 x median
  job.tasks[3].current.result_at = At(2'800);
  const v1::JobReport r = BuildReport(job, {}, At(10'000), true);
  EXPECT_THAT(r.stragglers(), IsEmpty());
}

TEST(BuildReportTest, MicrosecondJitterIsNoStraggler) {
  JobRecord job;
  job.id = "j-tiny";
  job.state = v1::JOB_STATE_SUCCEEDED;
  job.submitted_at = At(0);
  job.finished_at = At(100);
  for (uint32_t i = 0; i < 100; ++i) {
    TaskRecord t = Task(i, "w", 0, 1, 1, 0);
    t.current.ended_at = t.current.started_at + absl::Microseconds(i % 10 == 0 ? 3 : 1);  // 3x the median, 2 us over it
    job.tasks.push_back(t);
  }
  const v1::JobReport r = BuildReport(job, {}, At(100), false);
  EXPECT_THAT(r.stragglers(), IsEmpty());
  EXPECT_EQ(r.stragglers_total(), 0u);
}

TEST(BuildReportTest, ManyStragglersListTheSlowestThousand) {
  JobRecord job;
  job.id = "j-many";
  job.state = v1::JOB_STATE_SUCCEEDED;
  job.submitted_at = At(0);
  job.finished_at = At(100'000);
  uint32_t index = 0;
  for (; index < 2000; ++index) job.tasks.push_back(Task(index, "w", 0, 0, 1'000, 0));  // the median: 1 s
  for (uint32_t k = 0; k < 1500; ++k, ++index) {
    job.tasks.push_back(Task(index, "w", 0, 0, 2'000 + k, 0));  // stragglers, slower as k grows
  }
  const v1::JobReport r = BuildReport(job, {}, At(100'000), false);
  EXPECT_EQ(r.stragglers_total(), 1500u);
  ASSERT_EQ(r.stragglers_size(), 1000);
  EXPECT_EQ(r.stragglers(0), 2000u + 500u) << "the 1000 slowest, in index order";
  EXPECT_EQ(r.stragglers(999), 3499u);
}

TEST(BuildReportTest, PerWorkerFigures) {
  const std::map<std::string, WorkerFacts> facts = {{"w1", {"real-host-1", 1}}};
  const v1::JobReport r = BuildReport(FinishedJob(), facts, At(10'000), true);
  ASSERT_EQ(r.workers_size(), 2);

  const v1::WorkerTiming* w1 = FindWorker(r, "w1");
  ASSERT_NE(w1, nullptr);
  EXPECT_EQ(w1->host(), "real-host-1");
  EXPECT_EQ(w1->slots(), 1u);
  EXPECT_EQ(w1->slots_used(), 1u);
  EXPECT_EQ(w1->tasks(), 2u);
  EXPECT_EQ(w1->iterations(), 2 * kIters);
  EXPECT_NEAR(w1->busy_seconds(), 2.0, kEps);
  EXPECT_NEAR(w1->utilization(), 2.0 / 3.0, kEps);
  EXPECT_NEAR(w1->iterations_per_second(), 2.0 * kIters / 2.0, 1e-3);

  // w2 is gone (not in `facts`): host from its tasks, slots it used.
  const v1::WorkerTiming* w2 = FindWorker(r, "w2");
  ASSERT_NE(w2, nullptr);
  EXPECT_EQ(w2->host(), "host-w2");
  EXPECT_EQ(w2->slots(), 1u);
  EXPECT_EQ(w2->tasks(), 2u);
  EXPECT_EQ(w2->iterations(), 2 * kIters);
  EXPECT_NEAR(w2->busy_seconds(), 3.0, kEps);
  EXPECT_NEAR(w2->utilization(), 1.0, kEps);
  EXPECT_NEAR(w2->iterations_per_second(), 2.0 * kIters / 3.0, 1e-3);
}

TEST(BuildReportTest, PerTaskRows) {
  const v1::JobReport r = BuildReport(FinishedJob(), {}, At(10'000), true);
  ASSERT_EQ(r.tasks_size(), 4);
  const double offsets[] = {0.1, 0.1, 1.1, 1.1};
  const double seconds[] = {1.0, 1.0, 1.0, 2.0};
  const double cpu[] = {0.99, 0.98, 0.97, 1.96};
  const char* workers[] = {"w1", "w2", "w1", "w2"};
  for (int i = 0; i < 4; ++i) {
    SCOPED_TRACE(i);
    const v1::TaskTiming& t = r.tasks(i);
    EXPECT_EQ(t.index(), static_cast<uint32_t>(i));
    EXPECT_EQ(t.worker(), workers[i]);
    EXPECT_EQ(t.slot(), 0u);
    EXPECT_EQ(t.attempt(), 1u);
    EXPECT_EQ(t.state(), v1::TASK_STATE_SUCCEEDED);
    EXPECT_EQ(t.iterations(), kIters);
    EXPECT_NEAR(t.start_offset_seconds(), offsets[i], kEps);
    EXPECT_NEAR(t.seconds(), seconds[i], kEps);
    EXPECT_NEAR(t.cpu_seconds(), cpu[i], kEps);
    EXPECT_NEAR(t.result_seconds(), 0.2, kEps);
  }
  EXPECT_NEAR(r.tasks(2).queued_seconds(), 0.06, kEps);
  EXPECT_NEAR(r.tasks(2).dispatch_seconds(), 1.04, kEps);
}

// Task 3 (the straggler, 2 s on w2) was throttled 900 ms with 2% steal;
// task 1 (1 s, w2) 100 ms; w1's tasks were not measured.
JobRecord ThrottledJob() {
  JobRecord job = FinishedJob();
  v1::Interference m;
  m.set_run_queue_wait_ns(10'000'000);
  m.set_involuntary_switches(3);
  m.set_steal_ns(40'000'000);
  m.set_steal_share(0.02);
  m.set_throttled_ns(900'000'000);
  m.set_throttled_periods(9);
  m.set_periods(20);
  job.tasks[3].set_interference(m);
  m.set_throttled_ns(100'000'000);
  m.set_steal_ns(20'000'000);
  m.set_steal_share(0.02);
  job.tasks[1].set_interference(m);
  return job;
}

TEST(BuildReportTest, StragglerRowsSayWhy) {
  const v1::JobReport r = BuildReport(ThrottledJob(), {}, At(10'000), true);
  ASSERT_EQ(r.tasks_size(), 4);
  EXPECT_EQ(r.tasks(3).slow_cause(), "throttled 900 ms (9 of 20 periods)");
  for (int i = 0; i < 3; ++i) EXPECT_EQ(r.tasks(i).slow_cause(), "") << i << " is no straggler";
  ASSERT_TRUE(r.tasks(3).has_interference());
  EXPECT_EQ(r.tasks(3).interference().throttled_ns(), 900'000'000);
  EXPECT_FALSE(r.tasks(0).has_interference());
}

TEST(BuildReportTest, UnmeasuredStragglerSaysSo) {
  const v1::JobReport r = BuildReport(FinishedJob(), {}, At(10'000), true);
  EXPECT_EQ(r.tasks(3).slow_cause(), "not measured");
}

TEST(BuildReportTest, WorkerRowsSumInterferenceOverMeasuredTasks) {
  const v1::JobReport r = BuildReport(ThrottledJob(), {}, At(10'000), true);
  const v1::WorkerTiming* w2 = FindWorker(r, "w2");
  ASSERT_NE(w2, nullptr);
  EXPECT_EQ(w2->tasks_measured(), 2u);
  EXPECT_NEAR(w2->throttled_seconds(), 1.0, kEps);
  EXPECT_NEAR(w2->throttled_share(), 1.0 / 3.0, kEps);  // 1 s of its 3 s
  EXPECT_NEAR(w2->steal_share(), 0.06 / 3.0, kEps);
  EXPECT_NEAR(w2->run_queue_wait_seconds(), 0.02, kEps);
  EXPECT_EQ(w2->involuntary_switches(), 6u);
  const v1::WorkerTiming* w1 = FindWorker(r, "w1");
  ASSERT_NE(w1, nullptr);
  EXPECT_EQ(w1->tasks_measured(), 0u);
  EXPECT_EQ(w1->throttled_seconds(), 0);
}

TEST(BuildReportTest, AttemptRowsCarryInterference) {
  JobRecord job = ThrottledJob();
  job.tasks[3].ArchiveCurrent(v1::TASK_STATE_FAILED, "lost", At(3'100));
  const v1::JobReport r = BuildReport(job, {}, At(10'000), /*include_tasks=*/false, /*include_attempts=*/true);
  int with = 0;
  for (const v1::AttemptTiming& a : r.attempts()) {
    if (a.has_interference()) {
      ++with;
      EXPECT_GT(a.interference().throttled_ns(), 0);
    }
  }
  EXPECT_EQ(with, 2) << "task 3's archived attempt and task 1's final one";
}

TEST(BuildReportTest, WithoutTasksHasNoTaskRows) {
  const v1::JobReport r = BuildReport(FinishedJob(), {}, At(10'000), /*include_tasks=*/false);
  EXPECT_EQ(r.tasks_size(), 0);
  // Everything else is still there.
  EXPECT_NEAR(r.timing().makespan_seconds(), 3.0, kEps);
  EXPECT_EQ(r.workers_size(), 2);
  EXPECT_THAT(r.stragglers(), ElementsAre(3u));
}

TEST(BuildReportTest, RunningJobWallRunsToNow) {
  JobRecord job = FinishedJob();
  job.state = v1::JOB_STATE_RUNNING;
  job.finished_at = absl::InfinitePast();
  // Task 3 still running: no end yet.
  job.tasks[3].state = v1::TASK_STATE_RUNNING;
  job.tasks[3].current.ended_at = absl::InfinitePast();
  job.tasks[3].current.result_at = absl::InfinitePast();
  job.succeeded = 3;
  job.running = 1;
  const v1::JobReport r = BuildReport(job, {}, At(5'000), true);
  const v1::JobTiming& t = r.timing();
  // Consumers (report_format.cc) treat a zero timestamp as unset.
  EXPECT_EQ(t.finished_at().seconds(), 0);
  EXPECT_EQ(t.finished_at().nanos(), 0);
  EXPECT_NEAR(t.wall_seconds(), 5.0, kEps);
  EXPECT_NEAR(t.makespan_seconds(), 2.0, kEps);  // 0.1 s -> 2.1 s
  EXPECT_NEAR(t.serial_seconds(), 3.0, kEps);
  EXPECT_NEAR(t.overhead_seconds(), 3.0, kEps);
  EXPECT_NEAR(t.speedup(), 1.5, kEps);
  EXPECT_EQ(t.slots(), 2u);
  EXPECT_NEAR(t.efficiency(), 0.75, kEps);
  EXPECT_NEAR(t.task_seconds().max(), 1.0, kEps);
  EXPECT_THAT(r.stragglers(), IsEmpty());
  ASSERT_EQ(r.tasks_size(), 4);
  EXPECT_EQ(r.tasks(3).state(), v1::TASK_STATE_RUNNING);
  EXPECT_DOUBLE_EQ(r.tasks(3).seconds(), 0.0);
}

TEST(BuildReportTest, RunningJobLeavesFinishedAtUnset) {
  JobRecord job = FinishedJob();
  job.state = v1::JOB_STATE_RUNNING;
  job.finished_at = absl::InfinitePast();
  const v1::JobReport r = BuildReport(job, {}, At(5'000), false);
  EXPECT_FALSE(r.timing().has_finished_at());
}

TEST(BuildReportTest, FailedTasksCountForTheWorkerButNotSerialTime) {
  JobRecord job = FinishedJob();
  job.state = v1::JOB_STATE_FAILED;
  job.tasks[2].state = v1::TASK_STATE_FAILED;
  job.tasks[2].current.iterations_done = kIters / 2;
  job.tasks[2].set_error("timed out after 1s");
  job.succeeded = 3;
  job.failed = 1;
  const v1::JobReport r = BuildReport(job, {}, At(10'000), true);
  EXPECT_NEAR(r.timing().serial_seconds(), 4.0, kEps);
  EXPECT_NEAR(r.timing().task_seconds().p50(), 1.0, kEps);
  EXPECT_EQ(r.tasks_failed(), 1u);
  EXPECT_EQ(r.tasks(2).error(), "timed out after 1s");
  const v1::WorkerTiming* w1 = FindWorker(r, "w1");
  ASSERT_NE(w1, nullptr);
  EXPECT_EQ(w1->tasks(), 2u);
  EXPECT_EQ(w1->iterations(), kIters + kIters / 2);
}

// The sums of run times, CPU and phases are exact in nanoseconds: seven
// 1 ns tasks after one of 2^54 ns (208 days) still count (added in seconds
// one by one, each is under half a step of the big sum's double, 3.7 ns,
// and is lost), and eight CPU times of 2^60 ns sum past what 64 bits hold.
TEST(BuildReportTest, TimeSumsAreExactNanosecondsWithoutOverflow) {
  JobRecord job = FinishedJob();
  job.tasks.resize(8);
  const int64_t t0 = absl::ToUnixNanos(kT0);
  const int64_t kBig = int64_t{1} << 54;
  for (uint32_t i = 0; i < 8; ++i) {
    job.tasks[i] = Task(i, "w1", 0, 0, 0, 0);
    Attempt& a = job.tasks[i].current;
    a.assigned_at = WallNs::FromUnixNanos(t0);
    a.started_at = WallNs::FromUnixNanos(t0 + 1);
    a.ended_at = WallNs::FromUnixNanos(t0 + 1 + (i == 0 ? kBig : 1));
    a.result_at = a.ended_at;
    a.cpu_ns = int64_t{1} << 60;
  }
  job.succeeded = 8;
  job.finished_at = absl::FromUnixNanos(t0 + 2 + kBig);
  const v1::JobReport r = BuildReport(job, {}, job.finished_at, false);
  const double serial = static_cast<double>(kBig + 7) / 1e9;  // the exact sum, rounded once
  EXPECT_EQ(r.timing().serial_seconds(), serial);
  ASSERT_EQ(r.workers_size(), 1);
  EXPECT_EQ(r.workers(0).busy_seconds(), serial);
  EXPECT_EQ(r.timing().cpu_seconds(), std::ldexp(1.0, 63) / 1e9) << "no 64-bit overflow";
  EXPECT_EQ(r.timing().mean_dispatch_seconds(), 1e-9);
}

TEST(BuildReportTest, TwoSlotsOnOneWorkerCountTwice) {
  JobRecord job = FinishedJob();
  for (TaskRecord& t : job.tasks) {
    t.current.worker = "w1";
    t.current.host = "host-w1";
  }
  job.tasks[1].current.slot = 1;
  job.tasks[3].current.slot = 1;
  const v1::JobReport r = BuildReport(job, {{"w1", {"h", 8}}}, At(10'000), true);
  EXPECT_EQ(r.timing().slots(), 2u);
  ASSERT_EQ(r.workers_size(), 1);
  EXPECT_EQ(r.workers(0).slots(), 8u);
  EXPECT_EQ(r.workers(0).slots_used(), 2u);
  EXPECT_NEAR(r.workers(0).busy_seconds(), 5.0, kEps);
  EXPECT_NEAR(r.workers(0).utilization(), 5.0 / 6.0, kEps);
}

TEST(BuildReportTest, JobWithoutTimingsIsAllZero) {
  JobRecord job;
  job.id = "empty";
  job.spec.set_kind(v1::TASK_KIND_SLEEP);
  job.state = v1::JOB_STATE_PENDING;
  job.submitted_at = kT0;
  job.tasks.resize(3);
  for (uint32_t i = 0; i < 3; ++i) job.tasks[i].index = i;
  const v1::JobReport r = BuildReport(job, {}, At(1'500), true);
  EXPECT_NEAR(r.timing().wall_seconds(), 1.5, kEps);
  EXPECT_DOUBLE_EQ(r.timing().makespan_seconds(), 0.0);
  EXPECT_DOUBLE_EQ(r.timing().speedup(), 0.0);
  EXPECT_DOUBLE_EQ(r.timing().efficiency(), 0.0);
  EXPECT_EQ(r.timing().slots(), 0u);
  EXPECT_FALSE(r.timing().has_started_at());
  EXPECT_EQ(r.workers_size(), 0);
  EXPECT_THAT(r.stragglers(), IsEmpty());
  EXPECT_EQ(r.tasks_size(), 3);
}

TEST(BuildProgressTest, CountersAndEta) {
  JobRecord job = FinishedJob();
  job.state = v1::JOB_STATE_RUNNING;
  job.finished_at = absl::InfinitePast();
  job.succeeded = 1;
  job.failed = 1;
  job.running = 2;
  job.iterations_done = kIters;  // a quarter
  const v1::JobProgress p = BuildProgress(job, At(2'000));
  EXPECT_EQ(p.job_id(), "job-1");
  EXPECT_EQ(p.state(), v1::JOB_STATE_RUNNING);
  EXPECT_EQ(p.tasks_total(), 4u);
  EXPECT_EQ(p.tasks_done(), 2u);
  EXPECT_EQ(p.tasks_running(), 2u);
  EXPECT_EQ(p.tasks_failed(), 1u);
  EXPECT_EQ(p.iterations_total(), 4 * kIters);
  EXPECT_EQ(p.iterations_done(), kIters);
  EXPECT_NEAR(p.elapsed_seconds(), 2.0, kEps);
  EXPECT_NEAR(p.iterations_per_second(), kIters / 2.0, 1e-6);
  // A quarter done in 2 s: three quarters left take 6 s.
  EXPECT_NEAR(p.eta_seconds(), 6.0, kEps);
  EXPECT_FALSE(p.has_report());
}

TEST(BuildProgressTest, EtaIsUnknownWhenNothingIsDone) {
  JobRecord job = FinishedJob();
  job.state = v1::JOB_STATE_RUNNING;
  job.finished_at = absl::InfinitePast();
  job.succeeded = 0;
  job.running = 2;
  job.iterations_done = 0;
  const v1::JobProgress p = BuildProgress(job, At(2'000));
  EXPECT_EQ(p.tasks_done(), 0u);
  EXPECT_DOUBLE_EQ(p.eta_seconds(), -1.0);
  EXPECT_DOUBLE_EQ(p.iterations_per_second(), 0.0);
}

TEST(BuildProgressTest, EtaByTasksWhenThereAreNoIterations) {
  JobRecord job;
  job.id = "sleepy";
  job.spec.set_kind(v1::TASK_KIND_SLEEP);
  job.state = v1::JOB_STATE_RUNNING;
  job.submitted_at = kT0;
  job.tasks.resize(4);
  job.succeeded = 1;
  const v1::JobProgress p = BuildProgress(job, At(3'000));
  // One of four done in 3 s: 9 s to go.
  EXPECT_NEAR(p.eta_seconds(), 9.0, kEps);
}

TEST(BuildProgressTest, EtaIsZeroWhenTerminal) {
  const JobRecord job = FinishedJob();
  const v1::JobProgress p = BuildProgress(job, At(100'000));
  EXPECT_EQ(p.state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(p.tasks_done(), 4u);
  EXPECT_DOUBLE_EQ(p.eta_seconds(), 0.0);
  // Elapsed stops at the finish, not `now`.
  EXPECT_NEAR(p.elapsed_seconds(), 3.3, kEps);
  EXPECT_NEAR(p.iterations_per_second(), 4.0 * kIters / 3.3, 1e-3);

  JobRecord cancelled = FinishedJob();
  cancelled.state = v1::JOB_STATE_CANCELLED;
  cancelled.succeeded = 0;
  cancelled.cancelled = 4;
  EXPECT_DOUBLE_EQ(BuildProgress(cancelled, At(100'000)).eta_seconds(), 0.0);
}

}  // namespace
}  // namespace busyfleet::coordinator

namespace busyfleet::coordinator {
namespace {

// FinishedJob's tasks at 10 M iterations/s calibrated: each should take 1 s.
JobRecord CalibratedJob() {
  JobRecord job = FinishedJob();
  for (TaskRecord& t : job.tasks) t.current.calibrated_rate = 10'000'000;
  return job;
}

// The work-based baseline does not grow with the straggler: task 3 took
// 2 s, so serial_seconds is 5 s, but the work is 4 x 1 s.
TEST(CalibrationReportTest, WorkSerialTimeIsIterationsAtTheCalibratedRate) {
  const v1::JobReport r = BuildReport(CalibratedJob(), {}, At(10'000), /*include_tasks=*/true);
  EXPECT_NEAR(r.timing().serial_seconds(), 5.0, kEps);
  EXPECT_NEAR(r.timing().work_serial_seconds(), 4.0, kEps);
  EXPECT_NEAR(r.timing().work_speedup(), 4.0 / 3.0, kEps);
  EXPECT_NEAR(r.timing().work_efficiency(), 4.0 / 3.0 / 2, kEps);
  EXPECT_EQ(r.timing().slow_tasks(), 1u);  // task 3 ran at 0.5x
  ASSERT_EQ(r.tasks_size(), 4);
  EXPECT_NEAR(r.tasks(0).rate_ratio(), 1.0, kEps);
  EXPECT_NEAR(r.tasks(3).rate_ratio(), 0.5, kEps);
  EXPECT_NEAR(r.tasks(3).calibrated_rate(), 10'000'000, kEps);
  const v1::WorkerTiming* w2 = FindWorker(r, "w2");
  ASSERT_NE(w2, nullptr);
  EXPECT_NEAR(w2->calibrated_rate(), 10'000'000, kEps);
  EXPECT_NEAR(w2->rate_ratio(), 20'000'000.0 / 3.0 / 10'000'000, kEps);
}

TEST(CalibrationReportTest, OneUncalibratedTaskLeavesTheWorkBaselineOut) {
  JobRecord job = CalibratedJob();
  job.tasks[2].current.calibrated_rate = 0;
  const v1::JobReport r = BuildReport(job, {}, At(10'000), /*include_tasks=*/true);
  EXPECT_EQ(r.timing().work_serial_seconds(), 0);
  EXPECT_EQ(r.timing().work_speedup(), 0);
  EXPECT_EQ(r.tasks(2).rate_ratio(), 0);
  EXPECT_NEAR(r.tasks(3).rate_ratio(), 0.5, kEps);
}

TEST(CalibrationReportTest, WithoutCalibrationNothingIsClaimed) {
  const v1::JobReport r = BuildReport(FinishedJob(), {}, At(10'000), /*include_tasks=*/true);
  EXPECT_EQ(r.timing().work_serial_seconds(), 0);
  EXPECT_EQ(r.timing().slow_tasks(), 0u);
  EXPECT_EQ(FindWorker(r, "w1")->calibrated_rate(), 0);
}

// A worker's calibrated rate is the median of its tasks' (counted per
// distinct rate, not kept per task): with an even count, halfway between
// the middle two, as Quantile over every task's rate gives it.
TEST(CalibrationReportTest, WorkersRateIsTheMedianOfItsTasksRates) {
  JobRecord job = FinishedJob();
  TaskTable more;
  for (uint32_t i = 4; i < 8; ++i) more.push_back(Task(i, "w1", 100, 3'100, 3'200, 100));
  for (TaskRecord& t : more) job.tasks.push_back(std::move(t));
  // w1 has tasks 0, 2, 4, 5, 6, 7: rates 1, 1, 2, 3, 3, 3 (M/s); median (2 + 3) / 2.
  const double rates[] = {1e6, 0, 1e6, 0, 2e6, 3e6, 3e6, 3e6};
  for (size_t i = 0; i < job.tasks.size(); ++i) job.tasks[i].current.calibrated_rate = rates[i];
  job.tasks[1].current.calibrated_rate = 5e6;  // w2: tasks 1 and 3; task 3 has none
  v1::JobReport r = BuildReport(job, {}, At(10'000), /*include_tasks=*/false);
  ASSERT_NE(FindWorker(r, "w1"), nullptr);
  EXPECT_NEAR(FindWorker(r, "w1")->calibrated_rate(), 2.5e6, kEps);
  EXPECT_NEAR(FindWorker(r, "w2")->calibrated_rate(), 5e6, kEps);
  job.tasks[7].current.calibrated_rate = 0;  // odd count: 1, 1, 2, 3, 3 -> 2
  r = BuildReport(job, {}, At(10'000), /*include_tasks=*/false);
  EXPECT_NEAR(FindWorker(r, "w1")->calibrated_rate(), 2e6, kEps);
}

// Run times past what 32-bit nanoseconds hold (4.29 s) are summarized
// from 64-bit ones, with the same figures.
TEST(BuildReportTest, TaskSecondsStatsPastFourSecondsAreExact) {
  JobRecord job = FinishedJob();
  job.tasks[3].current.ended_at = At(7'100);  // 6 s
  job.tasks[3].current.result_at = At(7'300);
  job.finished_at = At(7'300);
  const v1::JobReport r = BuildReport(job, {}, At(10'000), /*include_tasks=*/false);
  // 1, 1, 1, 6 s.
  EXPECT_NEAR(r.timing().task_seconds().min(), 1.0, kEps);
  EXPECT_NEAR(r.timing().task_seconds().p50(), 1.0, kEps);
  EXPECT_NEAR(r.timing().task_seconds().p90(), 4.5, kEps);
  EXPECT_NEAR(r.timing().task_seconds().p99(), 5.85, kEps);
  EXPECT_NEAR(r.timing().task_seconds().max(), 6.0, kEps);
}

// The stragglers AddStragglers' rule picks, from every run time: over
// kStragglerFactor x the median and the median plus the floor, the
// slowest kMaxStragglersListed in index order; and how many there were.
std::pair<std::vector<uint32_t>, uint32_t> ReferenceStragglers(const JobRecord& job, double p50) {
  const double threshold = std::max(kStragglerFactor * p50, p50 + kStragglerFloorSeconds);
  std::vector<std::pair<double, uint32_t>> slow;
  for (const TaskRecord& t : job.tasks) {
    if (t.state == v1::TASK_STATE_SUCCEEDED && t.seconds() > threshold) slow.emplace_back(t.seconds(), t.index);
  }
  const auto total = static_cast<uint32_t>(slow.size());
  std::sort(slow.begin(), slow.end(), std::greater<>());
  if (slow.size() > kMaxStragglersListed) slow.resize(kMaxStragglersListed);
  std::vector<uint32_t> listed;
  for (const auto& [seconds, index] : slow) listed.push_back(index);
  std::sort(listed.begin(), listed.end());
  return {listed, total};
}

// The quantiles of many tasks' run times, spread over more than 32 bits
// of nanoseconds with repeats, are the ones Summarize gives from every
// run time sorted: to the bit, whichever pass of the select finds them;
// and the stragglers are the ones a look at every task finds. The
// spreads take each path: run times under 512 ns (found in the first
// pass), one bucket's narrowing, two, a clock that ran backwards (the
// whole range), rare slow tasks beside sub-microsecond ones, and run
// times spread over many octaves.
// A table of more than 2 x kParallelTaskRecords is summed in parts on more
// than one CPU (ParallelFor): the report says what one pass over it would.
// Workers' runs, a host change, slots, rates and interference straddle the
// parts' bounds; the figures are checked against a plain loop here.
TEST(BuildReportTest, ALargeTableSummedInPartsGivesWhatOnePassWould) {
  const uint32_t n = 4 * static_cast<uint32_t>(kParallelTaskRecords) + 7;
  ASSERT_GT(ParallelParts(n, kParallelTaskRecords), 1u) << "this machine sums in one part: nothing to check";
  JobRecord job = FinishedJob();
  job.tasks.clear();
  job.succeeded = 0;
  std::mt19937_64 rng(77);
  struct Want {
    uint32_t tasks = 0;
    uint64_t iterations = 0;
    double busy = 0;
    std::set<uint32_t> slots;
    std::string host;
    std::vector<double> rates;
    uint32_t measured = 0;
    uint64_t switches = 0;
  };
  std::map<std::string, Want> want;
  double serial = 0, cpu = 0;
  std::vector<double> seconds;
  for (uint32_t i = 0; i < n; ++i) {
    // Runs of 1,000 tasks a worker, w3 in the first and last quarter only.
    const uint32_t run = i / 1000;
    const std::string worker = run % 5 == 4 ? (i < n / 4 || i > 3 * n / 4 ? "w3" : "w1") : run % 2 ? "w1" : "w2";
    const int64_t start_us = static_cast<int64_t>(i) * 10;
    const int64_t run_ns = 1'000 + static_cast<int64_t>(rng() % 50'000);
    TaskRecord t = Task(i, worker, 0, 0, 0, 0);
    t.current.started_at = kT0 + absl::Microseconds(start_us);
    t.current.ended_at = t.current.started_at + absl::Nanoseconds(run_ns);
    t.current.assigned_at = kT0 + absl::Microseconds(start_us / 2);
    t.current.result_at = t.current.ended_at + absl::Microseconds(3);
    t.current.cpu_ns = run_ns - 100;
    t.current.iterations_done = 1000 + i % 17;
    t.current.slot = (i / 7000) % 3;
    // w1 moves host half way through the table.
    if (worker == "w1" && i > n / 2) t.current.host = "host-w1-new";
    t.current.calibrated_rate = static_cast<float>(1e9 * (1 + (i / 20'000) % 4));
    if (i % 997 == 0) {
      v1::Interference m;
      m.set_involuntary_switches(i % 13);
      t.set_interference(m);
    }
    if (i % 101 == 0) t.state = v1::TASK_STATE_FAILED;
    Want& w = want[worker];
    ++w.tasks;
    w.iterations += t.current.iterations_done;
    w.busy += t.seconds();
    w.slots.insert(t.current.slot);
    w.host = t.current.host;
    w.rates.push_back(t.current.calibrated_rate);
    if (t.interference() != nullptr) {
      ++w.measured;
      w.switches += t.interference()->involuntary_switches();
    }
    cpu += static_cast<double>(t.current.cpu_ns) / 1e9;
    if (t.state == v1::TASK_STATE_SUCCEEDED) {
      serial += t.seconds();
      seconds.push_back(t.seconds());
      ++job.succeeded;
    } else {
      ++job.failed;
    }
    job.tasks.push_back(t);
  }
  job.finished_at = job.tasks.back().current.result_at;
  const v1::JobReport r = BuildReport(job, {}, job.finished_at, false);
  EXPECT_NEAR(r.timing().serial_seconds(), serial, 1e-9 * serial);
  EXPECT_NEAR(r.timing().cpu_seconds(), cpu, 1e-9 * cpu);
  EXPECT_EQ(r.timing().started_at().seconds(), absl::ToUnixSeconds(kT0));
  const Summary q = Summarize(seconds);
  EXPECT_DOUBLE_EQ(r.timing().task_seconds().p50(), q.p50);
  EXPECT_DOUBLE_EQ(r.timing().task_seconds().p99(), q.p99);
  EXPECT_DOUBLE_EQ(r.timing().task_seconds().max(), q.max);
  ASSERT_EQ(r.workers_size(), 3);
  for (const auto& [name, w] : want) {
    SCOPED_TRACE(name);
    const v1::WorkerTiming* got = FindWorker(r, name);
    ASSERT_NE(got, nullptr);
    EXPECT_EQ(got->tasks(), w.tasks);
    EXPECT_EQ(got->iterations(), w.iterations);
    EXPECT_NEAR(got->busy_seconds(), w.busy, 1e-9 * w.busy);
    EXPECT_EQ(got->slots_used(), w.slots.size());
    EXPECT_EQ(got->host(), w.host);
    std::vector<double> rates = w.rates;
    std::sort(rates.begin(), rates.end());
    EXPECT_DOUBLE_EQ(got->calibrated_rate(), Quantile(rates, 0.5));
    EXPECT_EQ(got->involuntary_switches(), w.switches);
  }
  EXPECT_EQ(FindWorker(r, "w1")->host(), "host-w1-new");
}

TEST(BuildReportTest, TaskSecondsQuantilesOfManyTasksAreTheSortedOnes) {
  struct Spread {
    int64_t low_ns, high_ns;
    bool log_scale = false;
    int64_t every_thousandth_ns = 0;  // if not 0, every thousandth task takes this long
  };
  const Spread spreads[] = {
      {0, 300},
      {0, 300, false, 5'000'000},
      {0, 900},
      {0, 70'000},
      {0, 5'000'000},
      {0, 5'000'000'000},
      {0, int64_t{1} << 45},
      {-2'000, 70'000},
      {1, int64_t{1} << 40, true},
      {900'000, 1'100'000},
      {900'000, 1'100'000, false, 30'000'000},
  };
  for (const Spread& spread : spreads) {
    SCOPED_TRACE(testing::Message() << spread.low_ns << ".." << spread.high_ns << (spread.log_scale ? " log" : "")
                                    << " outliers " << spread.every_thousandth_ns);
    std::mt19937_64 rng(static_cast<uint64_t>(spread.high_ns));
    std::uniform_int_distribution<int64_t> run_ns(spread.low_ns, spread.high_ns);
    std::uniform_real_distribution<double> log_ns(std::log(static_cast<double>(std::max<int64_t>(spread.low_ns, 1))),
                                                  std::log(static_cast<double>(spread.high_ns)));
    JobRecord job = FinishedJob();
    job.tasks.clear();
    std::vector<double> seconds;
    int64_t last_ns = 0;
    for (uint32_t i = 0; i < 20'001; ++i) {
      TaskRecord t = Task(i, i % 3 == 0 ? "w1" : "w2", 0, 0, 0, 0);
      // Every seventh task repeats the last run time; every eleventh failed.
      int64_t ns = spread.log_scale ? static_cast<int64_t>(std::exp(log_ns(rng))) : run_ns(rng);
      if (i % 7 == 0) ns = last_ns;
      if (spread.every_thousandth_ns != 0 && i % 1000 == 999) ns = spread.every_thousandth_ns + i;
      last_ns = ns;
      t.current.ended_at = t.current.started_at + absl::Nanoseconds(ns);
      if (i % 11 == 0) {
        t.state = v1::TASK_STATE_FAILED;
      } else {
        seconds.push_back(t.seconds());
      }
      job.tasks.push_back(t);
    }
    const Summary want = Summarize(seconds);
    const v1::JobReport r = BuildReport(job, {}, At(10'000), false);
    const v1::TaskDurationStats& s = r.timing().task_seconds();
    EXPECT_DOUBLE_EQ(s.min(), want.min);
    EXPECT_DOUBLE_EQ(s.p50(), want.p50);
    EXPECT_DOUBLE_EQ(s.p90(), want.p90);
    EXPECT_DOUBLE_EQ(s.p99(), want.p99);
    EXPECT_DOUBLE_EQ(s.max(), want.max);
    const auto [listed, total] = ReferenceStragglers(job, want.p50);
    EXPECT_EQ(r.stragglers_total(), total);
    EXPECT_THAT(r.stragglers(), ::testing::ElementsAreArray(listed));
  }
}

}  // namespace
}  // namespace busyfleet::coordinator
