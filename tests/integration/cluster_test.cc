// A coordinator and workers in one process over loopback gRPC.

#include <algorithm>
#include <map>
#include <memory>
#include <set>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "common/clock.h"
#include "tests/testing/cluster.h"
#include "tests/testing/status_matchers.h"
#include "worker/python_kernel.h"

namespace busyfleet::testing {
namespace {

using ::testing::Each;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr absl::Duration kJobDeadline = absl::Seconds(60);

// Waits, on the coordinator's own progress stream, until `pred` holds for a
// progress update of the job (or the deadline passes).
bool WaitForProgress(coordinator::Coordinator& c, const std::string& job_id,
                     std::function<bool(const v1::JobProgress&)> pred, absl::Time deadline) {
  struct Shared {
    absl::Mutex mu;
    bool met ABSL_GUARDED_BY(mu) = false;
  };
  auto shared = std::make_shared<Shared>();
  auto handle = c.Watch(job_id, false, [shared, pred](const v1::JobProgress& p) {
    if (!pred(p)) return;
    absl::MutexLock lock(&shared->mu);
    shared->met = true;
  });
  if (!handle.ok()) return false;
  bool met = false;
  {
    absl::MutexLock lock(&shared->mu);
    auto done = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(shared->mu) { return shared->met; };
    met = shared->mu.AwaitWithDeadline(absl::Condition(&done), deadline);
  }
  c.Unwatch(*handle);
  return met;
}

TEST(ClusterTest, JobCompletesWithEveryTaskAccountedOnce) {
  ASSERT_OK_AND_ASSIGN(auto cluster, InProcessCluster::Start({.workers = 2, .slots_per_worker = 1}));
  ASSERT_OK_AND_ASSIGN(std::string id, cluster->Submit(Countdown(8, 1'000'000)));
  ASSERT_OK_AND_ASSIGN(v1::JobReport r, cluster->WaitForJob(id, absl::Now() + kJobDeadline));
  EXPECT_EQ(r.state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(r.schema(), 1u);
  EXPECT_EQ(r.tasks_succeeded(), 8u);
  EXPECT_EQ(r.retries(), 0u);
  ASSERT_EQ(r.tasks_size(), 8);
  std::set<uint32_t> indices;
  std::set<std::string> workers;
  uint64_t iterations = 0;
  for (const v1::TaskTiming& t : r.tasks()) {
    indices.insert(t.index());
    workers.insert(t.worker());
    EXPECT_EQ(t.attempt(), 1u);
    EXPECT_EQ(t.state(), v1::TASK_STATE_SUCCEEDED);
    EXPECT_GT(t.seconds(), 0.0);
    EXPECT_GE(t.start_offset_seconds(), 0.0);
    iterations += t.iterations();
  }
  EXPECT_EQ(indices.size(), 8u);
  EXPECT_EQ(workers, (std::set<std::string>{"w1", "w2"}));
  EXPECT_EQ(iterations, 8'000'000u);
  uint64_t worker_iterations = 0;
  for (const v1::WorkerTiming& w : r.workers()) worker_iterations += w.iterations();
  EXPECT_EQ(worker_iterations, 8'000'000u);
  EXPECT_EQ(r.timing().slots(), 2u);
  EXPECT_GT(r.timing().makespan_seconds(), 0.0);
  EXPECT_GE(r.timing().wall_seconds(), r.timing().makespan_seconds());
}

TEST(ClusterTest, TinyTasksRunAsRunsAndEveryOneIsRecordedWithWhereItRan) {
  // Countdowns this short go out as ranges, run as runs on the slots and
  // come back as packed columns (issue 17): each still gets its own row.
  ASSERT_OK_AND_ASSIGN(auto cluster, InProcessCluster::Start({.workers = 2, .slots_per_worker = 2}));
  constexpr uint32_t kTasks = 20'000;
  ASSERT_OK_AND_ASSIGN(std::string id, cluster->Submit(Countdown(kTasks, 100)));
  ASSERT_OK_AND_ASSIGN(v1::JobReport r, cluster->WaitForJob(id, absl::Now() + kJobDeadline));
  EXPECT_EQ(r.state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(r.tasks_succeeded(), kTasks);
  EXPECT_EQ(r.retries(), 0u);
  ASSERT_EQ(r.tasks_size(), static_cast<int>(kTasks));
  std::set<uint32_t> indices;
  std::map<std::string, uint64_t> by_worker;
  for (const v1::TaskTiming& t : r.tasks()) {
    indices.insert(t.index());
    ++by_worker[t.worker()];
    EXPECT_EQ(t.attempt(), 1u);
    EXPECT_EQ(t.state(), v1::TASK_STATE_SUCCEEDED);
    EXPECT_EQ(t.iterations(), 100u);
    EXPECT_LT(t.slot(), 2u);
    EXPECT_GT(t.pid(), 0u);
    EXPECT_TRUE(t.has_start_cpu()) << "task " << t.index();
    EXPECT_GE(t.start_offset_seconds(), 0.0);
  }
  EXPECT_EQ(indices.size(), kTasks);
  EXPECT_EQ(*indices.rbegin(), kTasks - 1);
  uint64_t worker_tasks = 0;
  for (const v1::WorkerTiming& w : r.workers()) worker_tasks += w.tasks();
  EXPECT_EQ(worker_tasks, kTasks);
  // Each worker counted what it ran (its own figures, from the runs).
  uint64_t finished = 0;
  for (int i = 0; i < 2; ++i) finished += cluster->worker(i).tasks_finished();
  EXPECT_EQ(finished, kTasks);
  EXPECT_EQ(by_worker.size(), 2u) << "both workers took a share";
}

TEST(ClusterTest, CancelStopsRunningCountdownsWithin100ms) {
  ASSERT_OK_AND_ASSIGN(auto cluster, InProcessCluster::Start({.workers = 2, .slots_per_worker = 1}));
  // Each task would take about an hour.
  ASSERT_OK_AND_ASSIGN(std::string id, cluster->Submit(Countdown(2, 10'000'000'000'000)));
  ASSERT_TRUE(WaitForProgress(
      cluster->coordinator(), id, [](const v1::JobProgress& p) { return p.tasks_running() == 2; },
      absl::Now() + absl::Seconds(10)));
  const absl::Time cancelled = absl::Now();
  ASSERT_OK_AND_ASSIGN(v1::JobState state, cluster->coordinator().Cancel(id));
  EXPECT_EQ(state, v1::JOB_STATE_CANCELLED);
  for (int i = 0; i < cluster->worker_count(); ++i) {
    ASSERT_TRUE(cluster->worker(i).WaitIdle(absl::Now() + absl::Seconds(5)));
  }
  const absl::Duration stop_latency = absl::Now() - cancelled;
  EXPECT_LT(stop_latency, absl::Milliseconds(100)) << "countdowns took " << stop_latency << " to stop";
  ASSERT_OK_AND_ASSIGN(v1::JobReport r, cluster->coordinator().GetReport(id, true));
  EXPECT_EQ(r.state(), v1::JOB_STATE_CANCELLED);
  EXPECT_EQ(r.tasks_cancelled(), 2u);
}

TEST(ClusterTest, PythonJobWaitsWithAReasonUntilAWorkerOffersTheKind) {
  ASSERT_OK_AND_ASSIGN(auto cluster, InProcessCluster::Start({.workers = 1, .slots_per_worker = 1}));
  // w1 does not offer the python kind (its hello leaves it out).
  const std::vector<v1::WorkerInfo> listed = cluster->coordinator().ListWorkers(false);
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_THAT(listed[0].kinds(), ElementsAre(v1::TASK_KIND_COUNTDOWN, v1::TASK_KIND_SPIN, v1::TASK_KIND_SLEEP));
  EXPECT_EQ(listed[0].python_version(), "");
  v1::JobSpec spec = Countdown(4, 100'003);
  spec.set_kind(v1::TASK_KIND_PYTHON);
  ASSERT_OK_AND_ASSIGN(std::string id, cluster->Submit(spec));
  ASSERT_TRUE(WaitForProgress(
      cluster->coordinator(), id,
      [](const v1::JobProgress& p) {
        return p.pending_reason() ==
               "no attached worker offers the python kind (workers built without Python, or started with "
               "--no-python)";
      },
      absl::Now() + absl::Seconds(10)));
  ASSERT_OK(worker::InitPythonKernel());
  ASSERT_OK(cluster->AddWorker("py", 2, worker::PythonVersion()).status());
  ASSERT_OK_AND_ASSIGN(v1::JobReport r, cluster->WaitForJob(id, absl::Now() + kJobDeadline));
  EXPECT_EQ(r.state(), v1::JOB_STATE_SUCCEEDED) << r.error();
  EXPECT_EQ(r.iterations_total(), 400'012u);
  for (const v1::TaskTiming& t : r.tasks()) {
    EXPECT_EQ(t.worker(), "py");
    EXPECT_EQ(t.iterations(), 100'003u);
  }
}

TEST(ClusterTest, TwoConcurrentJobsBothProgress) {
  ASSERT_OK_AND_ASSIGN(auto cluster, InProcessCluster::Start({.workers = 2, .slots_per_worker = 1}));
  // Tasks predicted (from the workers' calibrations) to take at least the
  // 5 ms pipeline on any CPU up to 20 G iterations/s, so both jobs get
  // tasks ready from their submit on, and the fleet's freed room goes to
  // the job with the fewest in flight. Shorter ones made this test depend
  // on the machine: 30 M iterations (4 ms at 8 G iterations/s) let the
  // first job's observed prefetch keep every slot while the second, with
  // no result yet, got only free slots (1 failure in 10 runs).
  // The first job is the longer one: eight rounds of its tasks on the two
  // slots, so that the second's submit, late on a loaded machine, still
  // comes rounds before its end. With six tasks each (three rounds) the
  // second job sometimes started only microseconds after the first ended,
  // its first task queued on a worker behind the first job's last: 6 runs
  // in 400 with the other CPU kept busy (none in 150 since).
  ASSERT_OK_AND_ASSIGN(std::string a, cluster->Submit(Countdown(16, 100'000'000)));
  ASSERT_OK_AND_ASSIGN(std::string b, cluster->Submit(Countdown(6, 100'000'000)));
  ASSERT_OK_AND_ASSIGN(v1::JobReport ra, cluster->WaitForJob(a, absl::Now() + kJobDeadline));
  ASSERT_OK_AND_ASSIGN(v1::JobReport rb, cluster->WaitForJob(b, absl::Now() + kJobDeadline));
  EXPECT_EQ(ra.state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(rb.state(), v1::JOB_STATE_SUCCEEDED);
  // Fair sharing: the second job started before the first finished.
  const absl::Time a_finished = absl::FromUnixSeconds(ra.timing().finished_at().seconds()) +
                                absl::Nanoseconds(ra.timing().finished_at().nanos());
  const absl::Time b_started = absl::FromUnixSeconds(rb.timing().started_at().seconds()) +
                               absl::Nanoseconds(rb.timing().started_at().nanos());
  EXPECT_LT(b_started, a_finished);
}

TEST(ClusterTest, StoppedWorkerTasksAreRequeuedAndTheJobSucceeds) {
  ASSERT_OK_AND_ASSIGN(auto cluster, InProcessCluster::Start({.workers = 2, .slots_per_worker = 1}));
  // Long enough (0.2-0.5 s a task) that w1 is stopped during its first
  // task: with 300 M iterations (36 ms at 8 G iterations/s) it sometimes
  // finished one first, and that task was rightly counted as w1's.
  ASSERT_OK_AND_ASSIGN(std::string id, cluster->Submit(Countdown(4, 1'500'000'000)));
  ASSERT_TRUE(WaitForProgress(
      cluster->coordinator(), id, [](const v1::JobProgress& p) { return p.tasks_running() == 2; },
      absl::Now() + absl::Seconds(10)));
  cluster->worker(0).Stop();  // breaks its stream: its tasks go back to the queue
  ASSERT_OK_AND_ASSIGN(v1::JobReport r, cluster->WaitForJob(id, absl::Now() + kJobDeadline));
  EXPECT_EQ(r.state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(r.tasks_succeeded(), 4u);
  EXPECT_GE(r.retries(), 1u);
  for (const v1::TaskTiming& t : r.tasks()) {
    EXPECT_EQ(t.worker(), "w2") << "task " << t.index() << " counted from the stopped worker";
  }
}

TEST(ClusterTest, DrainingWorkerFinishesRunningTasksAndHandsBackTheRest) {
  ASSERT_OK_AND_ASSIGN(auto cluster, InProcessCluster::Start({.workers = 2, .slots_per_worker = 1}));
  // Tasks long enough (0.2-0.5 s at 3-8 G iterations/s) that the drain
  // lands while w1 runs its first: with 200 M (25 ms at 8 G iterations/s)
  // w1 had sometimes started its next one by then (3 failures in 10 runs).
  ASSERT_OK_AND_ASSIGN(std::string id, cluster->Submit(Countdown(6, 1'500'000'000)));
  ASSERT_TRUE(WaitForProgress(
      cluster->coordinator(), id, [](const v1::JobProgress& p) { return p.tasks_running() == 2; },
      absl::Now() + absl::Seconds(10)));
  EXPECT_TRUE(cluster->worker(0).Drain(absl::Seconds(30)));
  ASSERT_OK_AND_ASSIGN(v1::JobReport r, cluster->WaitForJob(id, absl::Now() + kJobDeadline));
  EXPECT_EQ(r.state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(r.tasks_succeeded(), 6u);
  EXPECT_EQ(r.retries(), 0u) << "drained tasks must not count as failures";
  int on_w1 = 0;
  for (const v1::TaskTiming& t : r.tasks()) on_w1 += t.worker() == "w1";
  EXPECT_EQ(on_w1, 1) << "w1 runs the task it had started and nothing after the drain";
}

TEST(ClusterTest, HeartbeatsAreNotStarvedBySlotsBusyAtFullCpu) {
  // Every core busy, a short timeout: a heartbeat delayed by the busy slots
  // would get the worker declared dead and its tasks retried.
  ASSERT_OK_AND_ASSIGN(auto cluster,
                       InProcessCluster::Start({.workers = 1,
                                                .slots_per_worker = 2,
                                                .worker_timeout = absl::Milliseconds(750),
                                                .heartbeat_interval = absl::Milliseconds(100)}));
  ASSERT_OK_AND_ASSIGN(std::string id, cluster->Submit(Countdown(4, 2'000'000'000)));
  ASSERT_OK_AND_ASSIGN(v1::JobReport r, cluster->WaitForJob(id, absl::Now() + kJobDeadline));
  EXPECT_EQ(r.state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(r.retries(), 0u);
  EXPECT_EQ(cluster->worker(0).attach_count(), 1);
}

TEST(ClusterTest, HeartbeatsFollowTheWorkersMonotonicClockNotItsWallClock) {
  // The worker schedules heartbeats on a FakeClock. While its monotonic
  // clock moves with real time, wall steps of an hour either way change
  // nothing; once it stops, heartbeats stop and the coordinator (on the
  // real clock, timeout 750 ms) declares the worker dead.
  FakeClock clock;
  ASSERT_OK_AND_ASSIGN(auto cluster, InProcessCluster::Start({.workers = 1,
                                                              .worker_timeout = absl::Milliseconds(750),
                                                              .heartbeat_interval = absl::Milliseconds(100),
                                                              .worker_clock = &clock}));
  absl::Notification stop_time;
  std::thread time_passes([&] {
    // Mirrors real time into the fake monotonic clock, stepping its wall
    // clock by an hour back and forth as it goes.
    for (int i = 0; !stop_time.WaitForNotificationWithTimeout(absl::Milliseconds(10)); ++i) {
      clock.Advance(absl::Milliseconds(10));
      if (i % 20 == 10) clock.StepWall(i % 40 == 10 ? absl::Hours(1) : -absl::Hours(1));
    }
  });
  const bool reattached = cluster->worker(0).WaitAttachCount(2, absl::Now() + absl::Seconds(2));
  stop_time.Notify();
  time_passes.join();
  EXPECT_FALSE(reattached) << "declared dead while its monotonic clock ran";
  EXPECT_TRUE(cluster->worker(0).WaitAttachCount(2, absl::Now() + absl::Seconds(10)))
      << "heartbeats went on without the worker's monotonic clock moving";
}

TEST(ClusterTest, WorkersAdoptThePacedIntervalAndASilentOneIsStillDeclaredDead) {
  // At most 10 heartbeats a second: three workers at 100 ms would send 30,
  // so the coordinator asks for 3 / 10 s x 1.125 = 338 ms (the first two
  // learn it from an ack) and declares a worker dead after 750 ms x 3.38.
  FakeClock clock;
  ASSERT_OK_AND_ASSIGN(auto cluster, InProcessCluster::Start({.workers = 3,
                                                              .worker_timeout = absl::Milliseconds(750),
                                                              .heartbeat_interval = absl::Milliseconds(100),
                                                              .max_heartbeat_rate = 10,
                                                              .worker_clock = &clock}));
  absl::Notification stop_time;
  std::thread time_passes([&] {
    while (!stop_time.WaitForNotificationWithTimeout(absl::Milliseconds(10))) clock.Advance(absl::Milliseconds(10));
  });
  bool adopted = true;
  for (int i = 0; i < 3; ++i) {
    adopted = adopted && cluster->worker(i).WaitHeartbeatInterval(absl::Milliseconds(338), absl::Now() + absl::Seconds(10));
  }
  // The workers' monotonic clock stops: so do their heartbeats.
  stop_time.Notify();
  time_passes.join();
  ASSERT_TRUE(adopted) << "a worker heartbeats every " << cluster->worker(0).heartbeat_interval() << ", "
                       << cluster->worker(1).heartbeat_interval() << ", " << cluster->worker(2).heartbeat_interval();
  EXPECT_TRUE(cluster->worker(0).WaitAttachCount(2, absl::Now() + absl::Seconds(20)))
      << "a silent worker was not declared dead under the paced timeout";
}

TEST(ClusterTest, SpinSleepAndProcessModeTasksRun) {
  ASSERT_OK_AND_ASSIGN(auto cluster, InProcessCluster::Start({.workers = 2, .slots_per_worker = 1}));
  v1::JobSpec spin;
  spin.set_kind(v1::TASK_KIND_SPIN);
  spin.set_tasks(2);
  spin.mutable_duration()->set_nanos(50'000'000);
  v1::JobSpec sleep = spin;
  sleep.set_kind(v1::TASK_KIND_SLEEP);
  v1::JobSpec process = Countdown(2, 10'000'000);
  process.set_exec(v1::EXEC_MODE_PROCESS);
  for (const v1::JobSpec& spec : {spin, sleep, process}) {
    ASSERT_OK_AND_ASSIGN(std::string id, cluster->Submit(spec));
    ASSERT_OK_AND_ASSIGN(v1::JobReport r, cluster->WaitForJob(id, absl::Now() + kJobDeadline));
    EXPECT_EQ(r.state(), v1::JOB_STATE_SUCCEEDED) << r.error();
    for (const v1::TaskTiming& t : r.tasks()) {
      if (spec.kind() != v1::TASK_KIND_COUNTDOWN) {
        EXPECT_GE(t.seconds(), 0.049);
      }
      // A spin burns CPU for its 50 ms, a sleep next to none. The line
      // between them sits low: on a machine busy with other work a spin
      // gets only its share of a core (12 ms of 50 seen at load 8 on 2
      // cores), while a sleep's CPU time stays in microseconds.
      if (spec.kind() == v1::TASK_KIND_SLEEP) {
        EXPECT_LT(t.cpu_seconds(), 0.005);
      }
      if (spec.kind() == v1::TASK_KIND_SPIN) {
        EXPECT_GT(t.cpu_seconds(), 0.005);
      }
    }
  }
}

TEST(ClusterTest, TaskTimeoutFailsTheJobAfterMaxAttempts) {
  ASSERT_OK_AND_ASSIGN(auto cluster, InProcessCluster::Start({.workers = 2, .slots_per_worker = 1}));
  v1::JobSpec spec = Countdown(1, 10'000'000'000'000);
  spec.mutable_task_timeout()->set_nanos(20'000'000);
  spec.set_max_attempts(2);
  ASSERT_OK_AND_ASSIGN(std::string id, cluster->Submit(spec));
  ASSERT_OK_AND_ASSIGN(v1::JobReport r, cluster->WaitForJob(id, absl::Now() + kJobDeadline));
  EXPECT_EQ(r.state(), v1::JOB_STATE_FAILED);
  EXPECT_THAT(r.error(), HasSubstr("task 0 failed 2 of 2 attempts"));
  EXPECT_THAT(r.error(), HasSubstr("timed out"));
}

TEST(ClusterTest, RestartedCoordinatorIsRejoinedByWorkers) {
  ASSERT_OK_AND_ASSIGN(auto cluster, InProcessCluster::Start({.workers = 1, .slots_per_worker = 1}));
  // A second coordinator on a new port stands in for a restart: the worker
  // reconnects with backoff once its stream breaks.
  worker::WorkerClient& w = cluster->worker(0);
  EXPECT_EQ(w.attach_count(), 1);
  const std::string address = cluster->address();
  cluster->server().Shutdown(absl::ZeroDuration());
  coordinator::CoordinatorServer::Options so;
  so.listen = address;
  ASSERT_OK_AND_ASSIGN(auto restarted, coordinator::CoordinatorServer::Start(so));
  ASSERT_TRUE(w.WaitAttachCount(2, absl::Now() + absl::Seconds(20)));
  auto result = restarted->coordinator().Submit(Countdown(2, 1'000'000));
  ASSERT_OK(result);
  restarted->Shutdown(absl::Seconds(1));
}

}  // namespace
}  // namespace busyfleet::testing
