#include "worker/executor.h"

#include <sched.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "busyfleet/v1/worker.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/executor_recorder.h"
#include "worker/cpu_topology.h"
#include "worker/python_kernel.h"

namespace busyfleet::worker {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;
using executor_testing::Ref;

// Long enough never to finish in a test: only ever stopped early.
constexpr uint64_t kForever = 1'000'000'000'000ULL;
// Generous bound for anything that should happen "promptly" on a loaded
// 2-core machine (sanitizer builds included).
constexpr absl::Duration kPrompt = absl::Seconds(2);
// Bound on waiting for work that really runs.
constexpr absl::Duration kWaitLimit = absl::Seconds(30);

void SetDuration(absl::Duration d, google::protobuf::Duration* out) {
  out->set_seconds(absl::ToInt64Seconds(d));
  out->set_nanos(static_cast<int32_t>(absl::ToInt64Nanoseconds(d - absl::Seconds(absl::ToInt64Seconds(d)))));
}

// Attempt 1 of task `index` of `job`.
v1::Assignment NewAssignment(v1::TaskKind kind, const std::string& job, uint32_t index, v1::ExecMode exec) {
  v1::Assignment a;
  *a.mutable_task() = Ref(job, index);
  a.set_kind(kind);
  a.set_exec(exec);
  return a;
}

v1::Assignment Countdown(const std::string& job, uint32_t index, uint64_t iterations,
                         v1::ExecMode exec = v1::EXEC_MODE_UNSPECIFIED) {
  v1::Assignment a = NewAssignment(v1::TASK_KIND_COUNTDOWN, job, index, exec);
  a.set_iterations(iterations);
  return a;
}

v1::Assignment Timed(v1::TaskKind kind, const std::string& job, uint32_t index, absl::Duration d,
                     v1::ExecMode exec = v1::EXEC_MODE_UNSPECIFIED) {
  v1::Assignment a = NewAssignment(kind, job, index, exec);
  SetDuration(d, a.mutable_duration());
  return a;
}

void SetTimeout(v1::Assignment* a, absl::Duration d) { SetDuration(d, a->mutable_timeout()); }

using executor_testing::Recorder;

Executor::Options Slots(int n, v1::ExecMode mode = v1::EXEC_MODE_THREAD) {
  Executor::Options o;
  o.slots = n;
  o.default_exec = mode;
  return o;
}

// Runs `a` alone on a one-slot executor with a 50 ms timeout; its result,
// or nullopt when none came within 5 s.
std::optional<v1::TaskResult> RunWith50msTimeout(v1::Assignment a) {
  Recorder rec;
  Executor ex(Slots(1), rec.OnStarted(), rec.OnFinished());
  SetTimeout(&a, absl::Milliseconds(50));
  ex.Submit(a);
  if (!rec.WaitForResults(1, absl::Seconds(5))) return std::nullopt;
  return rec.results()[0];
}

const v1::TaskResult* FindResult(const std::vector<v1::TaskResult>& rs, uint32_t index) {
  for (const v1::TaskResult& r : rs) {
    if (r.task().task_index() == index) return &r;
  }
  return nullptr;
}

TEST(ExecutorTest, ThreadModeRunsCountdownsOnItsSlots) {
  Recorder rec;
  Executor ex(Slots(2), rec.OnStarted(), rec.OnFinished());
  const uint64_t iterations[] = {50'000'000, 1'000'000, 3'000'000};
  for (uint32_t i = 0; i < 3; ++i) ex.Submit(Countdown("job", i, iterations[i]));

  ASSERT_TRUE(rec.WaitForResults(3));
  const std::vector<v1::TaskResult> results = rec.results();
  const std::vector<v1::TaskStarted> started = rec.started();
  ASSERT_EQ(results.size(), 3u);
  ASSERT_EQ(started.size(), 3u);
  std::set<uint32_t> seen;
  for (uint32_t i = 0; i < 3; ++i) {
    SCOPED_TRACE(i);
    const v1::TaskResult* r = FindResult(results, i);
    ASSERT_NE(r, nullptr);
    seen.insert(i);
    EXPECT_EQ(r->task().job_id(), "job");
    EXPECT_EQ(r->task().attempt(), 1u);
    EXPECT_EQ(r->state(), v1::TASK_STATE_SUCCEEDED);
    EXPECT_EQ(r->error(), "");
    EXPECT_EQ(r->iterations_done(), iterations[i]);
    EXPECT_LT(r->slot(), 2u);
    EXPECT_GT(r->start_mono_ns(), 0);
    EXPECT_GE(r->end_mono_ns(), r->start_mono_ns());
    EXPECT_GE(r->cpu_ns(), 0);
    EXPECT_GT(r->start_wall().seconds(), 1'600'000'000);
    // The started message for the same task came from the same slot, first.
    const v1::TaskStarted* s = nullptr;
    for (const v1::TaskStarted& st : started) {
      if (st.task().task_index() == i) s = &st;
    }
    ASSERT_NE(s, nullptr);
    EXPECT_EQ(s->slot(), r->slot());
    EXPECT_LE(s->start_mono_ns(), r->start_mono_ns());
  }
  EXPECT_EQ(seen.size(), 3u);
  // 50M iterations burn measurable CPU time on the slot thread.
  EXPECT_GT(FindResult(results, 0)->cpu_ns(), 0);
  EXPECT_TRUE(ex.WaitIdle(absl::Now() + kWaitLimit));
  EXPECT_EQ(ex.running(), 0);
  EXPECT_EQ(ex.queued(), 0);
}

TEST(ExecutorTest, TwoSlotsRunTwoTasksAtOnce) {
  Recorder rec;
  Executor ex(Slots(2), rec.OnStarted(), rec.OnFinished());
  ex.Submit(Countdown("job", 0, kForever));
  ex.Submit(Countdown("job", 1, kForever));
  ASSERT_TRUE(rec.WaitForStarted(2));
  EXPECT_EQ(ex.running(), 2);
  EXPECT_EQ(ex.queued(), 0);
  std::set<uint32_t> slots;
  for (const v1::TaskStarted& s : rec.started()) slots.insert(s.slot());
  EXPECT_EQ(slots, (std::set<uint32_t>{0, 1}));
  ex.CancelAll();
  ASSERT_TRUE(rec.WaitForResults(2, kPrompt));
  for (const v1::TaskResult& r : rec.results()) EXPECT_EQ(r.state(), v1::TASK_STATE_CANCELLED);
}

TEST(ExecutorTest, TinyTaskRunsInlineOnTheCallingThreadAsAnIdleSlot) {
  Recorder rec;
  std::thread::id ran_on;
  Executor ex(
      Slots(2), rec.OnStarted(), [&ran_on, inner = rec.OnFinished()](const v1::TaskResult& r) {
        ran_on = std::this_thread::get_id();
        inner(r);
      });
  ex.Submit(Countdown("job", 0, kForever));
  ASSERT_TRUE(rec.WaitForStarted(1));
  const uint32_t busy_slot = rec.started()[0].slot();
  ASSERT_TRUE(ex.TryRunInline(Countdown("job", 1, 1000)));
  // Done and reported before TryRunInline returned, here.
  const std::vector<v1::TaskResult> results = rec.results();
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(ran_on, std::this_thread::get_id());
  EXPECT_EQ(results[0].task().task_index(), 1u);
  EXPECT_EQ(results[0].state(), v1::TASK_STATE_SUCCEEDED);
  EXPECT_EQ(results[0].iterations_done(), 1000u);
  EXPECT_EQ(results[0].slot(), 1 - busy_slot) << "it stood in for the idle slot";
  EXPECT_EQ(results[0].pid(), static_cast<uint32_t>(getpid()));
  EXPECT_EQ(results[0].cpu_ns(), results[0].end_mono_ns() - results[0].start_mono_ns())
      << "too short to read the CPU clock for: its wall time";
  // A countdown this short sends no start notice: its result follows at once.
  ASSERT_EQ(rec.started().size(), 1u);
  EXPECT_EQ(rec.started()[0].task().task_index(), 0u);
  ex.CancelAll();
  ASSERT_TRUE(rec.WaitForResults(2, kPrompt));
  EXPECT_TRUE(ex.WaitIdle(absl::Now() + kPrompt));
}

TEST(ExecutorTest, OnlyCountdownsTooShortToWatchGoWithoutAStartNotice) {
  Recorder rec;
  Executor ex(Slots(1), rec.OnStarted(), rec.OnFinished());
  ex.Submit(Countdown("job", 0, 1000));
  ex.Submit(Countdown("job", 1, Executor::kWallIsCpuIterations));
  ex.Submit(Countdown("job", 2, Executor::kWallIsCpuIterations + 1));
  ex.Submit(Countdown("job", 3, 1000, v1::EXEC_MODE_PROCESS));
  ASSERT_TRUE(rec.WaitForResults(4));
  std::set<uint32_t> noticed;
  for (const v1::TaskStarted& s : rec.started()) noticed.insert(s.task().task_index());
  EXPECT_EQ(noticed, (std::set<uint32_t>{2, 3}));
}

TEST(ExecutorTest, TryRunInlineDeclinesWhatASlotThreadShouldRun) {
  Recorder rec;
  Executor ex(Slots(1), rec.OnStarted(), rec.OnFinished());
  EXPECT_FALSE(ex.TryRunInline(Countdown("job", 0, Executor::kInlineIterations + 1))) << "too long";
  EXPECT_FALSE(ex.TryRunInline(Countdown("job", 0, 10, v1::EXEC_MODE_PROCESS))) << "process mode";
  EXPECT_FALSE(ex.TryRunInline(Timed(v1::TASK_KIND_SLEEP, "job", 0, absl::Milliseconds(1)))) << "not a countdown";
  ex.Submit(Countdown("job", 1, kForever));
  ASSERT_TRUE(rec.WaitForStarted(1));
  EXPECT_FALSE(ex.TryRunInline(Countdown("job", 2, 10))) << "no idle slot";
  EXPECT_EQ(rec.started().size(), 1u) << "nothing declined ran";
  ex.CancelAll();
  ASSERT_TRUE(rec.WaitForResults(1, kPrompt));
  ex.Stop();
  EXPECT_FALSE(ex.TryRunInline(Countdown("job", 5, 10))) << "stopped";
  EXPECT_EQ(rec.results().size(), 1u);
}

TEST(ExecutorTest, CancelStopsARunningCountdown) {
  Recorder rec;
  Executor ex(Slots(1), rec.OnStarted(), rec.OnFinished());
  ex.Submit(Countdown("job", 7, kForever));
  ASSERT_TRUE(rec.WaitForStarted(1));
  const absl::Time cancelled_at = absl::Now();
  ex.Cancel(Ref("job", 7));
  ASSERT_TRUE(rec.WaitForResults(1, kPrompt)) << "no result within " << kPrompt << " of Cancel";
  const absl::Duration latency = absl::Now() - cancelled_at;
  EXPECT_LT(latency, absl::Seconds(1));
  const v1::TaskResult r = rec.results()[0];
  EXPECT_EQ(r.task().task_index(), 7u);
  EXPECT_EQ(r.state(), v1::TASK_STATE_CANCELLED);
  EXPECT_THAT(r.error(), HasSubstr("cancel"));
  EXPECT_LT(r.iterations_done(), kForever);
  EXPECT_EQ(r.iterations_done() % kCountdownCheckEvery, 0u);
  EXPECT_TRUE(ex.WaitIdle(absl::Now() + kPrompt));
}

TEST(ExecutorTest, CancelOfAnotherAttemptIsIgnored) {
  Recorder rec;
  Executor ex(Slots(1), rec.OnStarted(), rec.OnFinished());
  ex.Submit(Countdown("job", 0, kForever));
  ASSERT_TRUE(rec.WaitForStarted(1));
  ex.Cancel(Ref("job", 0, /*attempt=*/2));
  v1::TaskRef unknown;
  unknown.set_job_id("nope");
  ex.Cancel(unknown);
  // Still running: a bounded wait for a result that must not come.
  EXPECT_FALSE(rec.WaitForResults(1, absl::Milliseconds(50)));
  EXPECT_EQ(ex.running(), 1);
  ex.CancelAll();
  ASSERT_TRUE(rec.WaitForResults(1, kPrompt));
}

TEST(ExecutorTest, CancelOfAQueuedTaskDropsItSilently) {
  Recorder rec;
  Executor ex(Slots(1), rec.OnStarted(), rec.OnFinished());
  const v1::Assignment running = Countdown("job", 0, kForever);
  const v1::Assignment queued = Countdown("job", 1, 1'000);
  ex.Submit(running);
  ex.Submit(queued);
  ASSERT_TRUE(rec.WaitForStarted(1));
  EXPECT_EQ(ex.queued(), 1);
  ex.Cancel(queued.task());
  EXPECT_EQ(ex.queued(), 0);
  EXPECT_EQ(ex.running(), 1);
  ex.Cancel(running.task());
  ASSERT_TRUE(rec.WaitForResults(1, kPrompt));
  ASSERT_TRUE(ex.WaitIdle(absl::Now() + kPrompt));
  // Only the running task reported; the queued one neither started nor ended.
  const std::vector<v1::TaskResult> results = rec.results();
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].task().task_index(), 0u);
  EXPECT_EQ(results[0].state(), v1::TASK_STATE_CANCELLED);
  const std::vector<v1::TaskStarted> started = rec.started();
  ASSERT_EQ(started.size(), 1u);
  EXPECT_EQ(started[0].task().task_index(), 0u);
}

TEST(ExecutorTest, TakeQueuedReturnsUnstartedTasksInOrder) {
  Recorder rec;
  Executor ex(Slots(1), rec.OnStarted(), rec.OnFinished());
  ex.Submit(Countdown("job", 0, kForever));
  ex.Submit(Countdown("job", 1, 1'000));
  ex.Submit(Countdown("other", 2, 1'000));
  ASSERT_TRUE(rec.WaitForStarted(1));
  const std::vector<v1::TaskRef> taken = ex.TakeQueued();
  ASSERT_EQ(taken.size(), 2u);
  EXPECT_EQ(taken[0].job_id(), "job");
  EXPECT_EQ(taken[0].task_index(), 1u);
  EXPECT_EQ(taken[1].job_id(), "other");
  EXPECT_EQ(taken[1].task_index(), 2u);
  EXPECT_EQ(ex.queued(), 0);
  EXPECT_EQ(ex.running(), 1);
  EXPECT_THAT(ex.TakeQueued(), IsEmpty());
  ex.CancelAll();
  ASSERT_TRUE(rec.WaitForResults(1, kPrompt));
  ASSERT_TRUE(ex.WaitIdle(absl::Now() + kPrompt));
  EXPECT_EQ(rec.results().size(), 1u);
  EXPECT_EQ(rec.started().size(), 1u);
}

TEST(ExecutorTest, WaitIdleWaitsForQueuedAndRunningWork) {
  Recorder rec;
  Executor ex(Slots(1), rec.OnStarted(), rec.OnFinished());
  EXPECT_TRUE(ex.WaitIdle(absl::Now()));  // nothing submitted yet
  for (uint32_t i = 0; i < 4; ++i) ex.Submit(Countdown("job", i, 2'000'000));
  ASSERT_TRUE(ex.WaitIdle(absl::Now() + kWaitLimit));
  EXPECT_EQ(ex.running(), 0);
  EXPECT_EQ(ex.queued(), 0);
  ASSERT_TRUE(rec.WaitForResults(4));
  for (const v1::TaskResult& r : rec.results()) EXPECT_EQ(r.state(), v1::TASK_STATE_SUCCEEDED);
}

TEST(ExecutorTest, WaitIdleGivesUpAtTheDeadline) {
  Recorder rec;
  Executor ex(Slots(1), rec.OnStarted(), rec.OnFinished());
  ex.Submit(Countdown("job", 0, kForever));
  ASSERT_TRUE(rec.WaitForStarted(1));
  const absl::Time before = absl::Now();
  EXPECT_FALSE(ex.WaitIdle(before + absl::Milliseconds(30)));
  EXPECT_GE(absl::Now() - before, absl::Milliseconds(30));
  ex.CancelAll();
  EXPECT_TRUE(ex.WaitIdle(absl::Now() + kPrompt));
}

TEST(ExecutorTest, WaitIdleReturnsOnlyAfterTheLastResultIsReported) {
  absl::Notification release;
  absl::Mutex mu;
  int delivered = 0;
  Executor ex(
      Slots(1), [](const v1::TaskStarted&) {},
      [&](const v1::TaskResult&) {
        // Hold the callback until the test has looked (bounded).
        release.WaitForNotificationWithTimeout(absl::Seconds(5));
        absl::MutexLock lock(&mu);
        ++delivered;
      });
  ex.Submit(Countdown("job", 0, 1'000));
  const bool idle = ex.WaitIdle(absl::Now() + absl::Seconds(2));
  int delivered_at_idle = 0;
  {
    absl::MutexLock lock(&mu);
    delivered_at_idle = delivered;
  }
  release.Notify();
  ex.Stop();
  // Either WaitIdle waited for the callback, or it timed out (never both idle
  // and undelivered).
  EXPECT_FALSE(idle && delivered_at_idle == 0)
      << "WaitIdle returned idle before the result callback finished";
}

TEST(ExecutorTest, TaskTimeoutFailsTheTask) {
  const std::optional<v1::TaskResult> result = RunWith50msTimeout(Countdown("job", 0, kForever));
  ASSERT_TRUE(result.has_value());
  const v1::TaskResult& r = *result;
  EXPECT_EQ(r.state(), v1::TASK_STATE_FAILED);
  EXPECT_THAT(r.error(), HasSubstr("timed out"));
  EXPECT_THAT(r.error(), HasSubstr("50ms"));
  EXPECT_LT(r.iterations_done(), kForever);
  const int64_t ran_ns = r.end_mono_ns() - r.start_mono_ns();
  EXPECT_GE(ran_ns, 50'000'000);
  EXPECT_LT(ran_ns, 2'000'000'000);
}

TEST(ExecutorTest, SpinAndSleepTasksSucceed) {
  Recorder rec;
  Executor ex(Slots(2), rec.OnStarted(), rec.OnFinished());
  ex.Submit(Timed(v1::TASK_KIND_SPIN, "job", 0, absl::Milliseconds(20)));
  ex.Submit(Timed(v1::TASK_KIND_SLEEP, "job", 1, absl::Milliseconds(20)));
  ASSERT_TRUE(rec.WaitForResults(2));
  for (const v1::TaskResult& r : rec.results()) {
    SCOPED_TRACE(r.task().task_index());
    EXPECT_EQ(r.state(), v1::TASK_STATE_SUCCEEDED);
    EXPECT_EQ(r.iterations_done(), 0u);
    EXPECT_GE(r.end_mono_ns() - r.start_mono_ns(), 20'000'000);
  }
}

TEST(ExecutorTest, CancelWakesASleepingTask) {
  Recorder rec;
  Executor ex(Slots(1), rec.OnStarted(), rec.OnFinished());
  const v1::Assignment a = Timed(v1::TASK_KIND_SLEEP, "job", 0, absl::Hours(1));
  ex.Submit(a);
  ASSERT_TRUE(rec.WaitForStarted(1));
  ex.Cancel(a.task());
  ASSERT_TRUE(rec.WaitForResults(1, kPrompt));
  EXPECT_EQ(rec.results()[0].state(), v1::TASK_STATE_CANCELLED);
}

TEST(ExecutorTest, CancelAllDropsQueuedAndStopsRunning) {
  Recorder rec;
  Executor ex(Slots(1), rec.OnStarted(), rec.OnFinished());
  ex.Submit(Countdown("job", 0, kForever));
  ex.Submit(Countdown("job", 1, kForever));
  ASSERT_TRUE(rec.WaitForStarted(1));
  ex.CancelAll();
  ASSERT_TRUE(ex.WaitIdle(absl::Now() + kPrompt));
  ASSERT_TRUE(rec.WaitForResults(1, kPrompt));
  const std::vector<v1::TaskResult> results = rec.results();
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].task().task_index(), 0u);
  EXPECT_EQ(results[0].state(), v1::TASK_STATE_CANCELLED);
  // The executor keeps working after CancelAll.
  ex.Submit(Countdown("job", 2, 1'000));
  ASSERT_TRUE(rec.WaitForResults(2));
  EXPECT_EQ(rec.results()[1].state(), v1::TASK_STATE_SUCCEEDED);
}

TEST(ExecutorTest, StopIsIdempotentAndIgnoresLaterSubmits) {
  Recorder rec;
  Executor ex(Slots(2), rec.OnStarted(), rec.OnFinished());
  ex.Submit(Countdown("job", 0, kForever));
  ASSERT_TRUE(rec.WaitForStarted(1));
  const absl::Time before = absl::Now();
  ex.Stop();
  EXPECT_LT(absl::Now() - before, kPrompt);
  ex.Stop();
  ASSERT_EQ(rec.results().size(), 1u);
  EXPECT_EQ(rec.results()[0].state(), v1::TASK_STATE_CANCELLED);
  ex.Submit(Countdown("job", 1, 1'000));
  EXPECT_EQ(ex.queued(), 0);
  EXPECT_EQ(ex.running(), 0);
}

TEST(ExecutorProcessModeTest, CountdownSucceedsInAChildProcess) {
  Recorder rec;
  Executor ex(Slots(1), rec.OnStarted(), rec.OnFinished());
  ex.Submit(Countdown("job", 0, 50'000'000, v1::EXEC_MODE_PROCESS));
  ASSERT_TRUE(rec.WaitForResults(1));
  const v1::TaskResult r = rec.results()[0];
  EXPECT_EQ(r.state(), v1::TASK_STATE_SUCCEEDED) << r.error();
  EXPECT_EQ(r.iterations_done(), 50'000'000u);
  EXPECT_GT(r.cpu_ns(), 0);
  EXPECT_EQ(r.slot(), 0u);
  EXPECT_GE(r.end_mono_ns(), r.start_mono_ns());
}

TEST(ExecutorProcessModeTest, DefaultExecAppliesToUnspecifiedAssignments) {
  Recorder rec;
  Executor ex(Slots(1, v1::EXEC_MODE_PROCESS), rec.OnStarted(), rec.OnFinished());
  ex.Submit(Countdown("job", 0, 10'000'000));
  ASSERT_TRUE(rec.WaitForResults(1));
  EXPECT_EQ(rec.results()[0].state(), v1::TASK_STATE_SUCCEEDED) << rec.results()[0].error();
  EXPECT_EQ(rec.results()[0].iterations_done(), 10'000'000u);
}

TEST(ExecutorProcessModeTest, CancelKillsTheChildPromptly) {
  Recorder rec;
  Executor ex(Slots(1), rec.OnStarted(), rec.OnFinished());
  const v1::Assignment a = Countdown("job", 0, kForever, v1::EXEC_MODE_PROCESS);
  ex.Submit(a);
  ASSERT_TRUE(rec.WaitForStarted(1));
  const absl::Time cancelled_at = absl::Now();
  ex.Cancel(a.task());
  ASSERT_TRUE(rec.WaitForResults(1, kPrompt)) << "no result within " << kPrompt << " of Cancel";
  EXPECT_LT(absl::Now() - cancelled_at, absl::Seconds(1));
  const v1::TaskResult r = rec.results()[0];
  EXPECT_EQ(r.state(), v1::TASK_STATE_CANCELLED);
  EXPECT_THAT(r.error(), HasSubstr("cancel"));
  EXPECT_TRUE(ex.WaitIdle(absl::Now() + kPrompt));
}

TEST(ExecutorProcessModeTest, TimeoutFailsTheTask) {
  const std::optional<v1::TaskResult> result =
      RunWith50msTimeout(Countdown("job", 0, kForever, v1::EXEC_MODE_PROCESS));
  ASSERT_TRUE(result.has_value());
  const v1::TaskResult& r = *result;
  EXPECT_EQ(r.state(), v1::TASK_STATE_FAILED);
  EXPECT_THAT(r.error(), HasSubstr("timed out"));
}

TEST(ExecutorProcessModeTest, SleepTaskSucceeds) {
  Recorder rec;
  Executor ex(Slots(1), rec.OnStarted(), rec.OnFinished());
  ex.Submit(Timed(v1::TASK_KIND_SLEEP, "job", 0, absl::Milliseconds(20), v1::EXEC_MODE_PROCESS));
  ASSERT_TRUE(rec.WaitForResults(1));
  const v1::TaskResult r = rec.results()[0];
  EXPECT_EQ(r.state(), v1::TASK_STATE_SUCCEEDED) << r.error();
  EXPECT_GE(r.end_mono_ns() - r.start_mono_ns(), 20'000'000);
}

// The CPUs `pid` (0: the calling thread) may run on.
std::vector<int> AffinityOf(pid_t pid) {
  cpu_set_t mask;
  CPU_ZERO(&mask);
  std::vector<int> cpus;
  if (sched_getaffinity(pid, sizeof(mask), &mask) != 0) return cpus;
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (CPU_ISSET(cpu, &mask)) cpus.push_back(cpu);
  }
  return cpus;
}

// A live (not yet reaped) child of this process, or 0 when none appears
// before the deadline.
pid_t WaitForChild(absl::Time deadline) {
  while (absl::Now() < deadline) {
    for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
      pid_t pid = 0;
      if (!absl::SimpleAtoi(entry.path().filename().string(), &pid)) continue;
      std::ifstream stat(entry.path() / "stat");
      std::string line;
      std::getline(stat, line);
      // "pid (comm) state ppid ...": the fields after the last ')'.
      const size_t paren = line.rfind(')');
      if (paren == std::string::npos) continue;
      std::vector<std::string> f = absl::StrSplit(line.substr(paren + 2), ' ');
      pid_t ppid = 0;
      if (f.size() > 1 && f[0] != "Z" && absl::SimpleAtoi(f[1], &ppid) && ppid == getpid()) return pid;
    }
    absl::SleepFor(absl::Milliseconds(5));  // polling /proc, bounded by the deadline
  }
  return 0;
}

// Places on this process's own CPUs, so the test runs anywhere: slot 0 on
// the last allowed CPU, slot 1 on the first (not the identity).
std::vector<std::vector<int>> ReversedPlaces() {
  const std::vector<int> allowed = AffinityOf(0);
  return {{allowed.back()}, {allowed.front()}};
}

TEST(ExecutorBindTest, EachSlotThreadRunsPinnedToItsPlace) {
  absl::Mutex mu;
  std::map<uint32_t, std::vector<int>> seen;  // slot -> the slot thread's affinity at start
  auto on_started = [&](const v1::TaskStarted& s) {
    absl::MutexLock lock(&mu);
    seen[s.slot()] = AffinityOf(0);  // called on the slot's own thread
  };
  Recorder rec;
  Executor::Options o = Slots(2);
  o.slot_cpus = ReversedPlaces();
  Executor ex(o, on_started, rec.OnFinished());
  EXPECT_EQ(ex.bound_cpus(), (std::vector<std::string>{FormatCpuList(o.slot_cpus[0]), FormatCpuList(o.slot_cpus[1])}));
  ex.Submit(Timed(v1::TASK_KIND_SLEEP, "job", 0, absl::Hours(1)));
  ex.Submit(Timed(v1::TASK_KIND_SLEEP, "job", 1, absl::Hours(1)));
  {
    absl::MutexLock lock(&mu);
    auto both = [&]() { return seen.size() == 2; };
    ASSERT_TRUE(mu.AwaitWithDeadline(absl::Condition(&both), absl::Now() + kWaitLimit));
    EXPECT_EQ(seen[0], o.slot_cpus[0]);
    EXPECT_EQ(seen[1], o.slot_cpus[1]);
  }
  ex.CancelAll();
  ASSERT_TRUE(rec.WaitForResults(2));
  for (const v1::TaskResult& r : rec.results()) {
    const std::vector<int>& place = o.slot_cpus[r.slot()];
    EXPECT_EQ(r.bound_cpus(), FormatCpuList(place));
    ASSERT_TRUE(r.has_start_cpu() && r.has_end_cpu());
    EXPECT_EQ(static_cast<int>(r.start_cpu()), place[0]) << "a slot pinned to one CPU starts there";
    EXPECT_EQ(static_cast<int>(r.end_cpu()), place[0]);
    EXPECT_FALSE(r.migrated());
  }
}

TEST(ExecutorBindTest, ProcessModeChildInheritsItsSlotsPlace) {
  Recorder rec;
  Executor::Options o = Slots(1, v1::EXEC_MODE_PROCESS);
  o.slot_cpus = {ReversedPlaces()[0]};
  Executor ex(o, rec.OnStarted(), rec.OnFinished());
  ex.Submit(Timed(v1::TASK_KIND_SLEEP, "job", 0, absl::Hours(1)));
  const pid_t child = WaitForChild(absl::Now() + kWaitLimit);
  ASSERT_NE(child, 0) << "no child process appeared";
  EXPECT_EQ(AffinityOf(child), o.slot_cpus[0]);
  ex.CancelAll();
  ASSERT_TRUE(rec.WaitForResults(1));
  // A child that finishes reports the CPUs it started and ended on.
  ex.Submit(Countdown("job", 1, 1'000'000));
  ASSERT_TRUE(rec.WaitForResults(2));
  const v1::TaskResult r = rec.results()[1];
  EXPECT_EQ(r.state(), v1::TASK_STATE_SUCCEEDED) << r.error();
  EXPECT_EQ(r.bound_cpus(), FormatCpuList(o.slot_cpus[0]));
  ASSERT_TRUE(r.has_start_cpu() && r.has_end_cpu());
  EXPECT_EQ(static_cast<int>(r.start_cpu()), o.slot_cpus[0][0]);
  EXPECT_EQ(static_cast<int>(r.end_cpu()), o.slot_cpus[0][0]);
}

TEST(ExecutorBindTest, UnpinnedSlotsFloatAndStillReportTheirCpus) {
  Recorder rec;
  Executor ex(Slots(1), rec.OnStarted(), rec.OnFinished());
  EXPECT_EQ(ex.bound_cpus(), std::vector<std::string>{""});
  ex.Submit(Countdown("job", 0, 10'000'000));
  ASSERT_TRUE(rec.WaitForResults(1));
  const v1::TaskResult r = rec.results()[0];
  EXPECT_EQ(r.bound_cpus(), "");
  EXPECT_TRUE(r.has_start_cpu());
  EXPECT_TRUE(r.has_end_cpu());
  EXPECT_EQ(r.migrated(), r.start_cpu() != r.end_cpu());
}

// ------------------------------------------------------------ python kind

v1::Assignment Python(const std::string& job, uint32_t index, uint64_t iterations, v1::ExecMode exec) {
  v1::Assignment a = NewAssignment(v1::TASK_KIND_PYTHON, job, index, exec);
  a.set_iterations(iterations);
  return a;
}

class ExecutorPythonTest : public ::testing::TestWithParam<v1::ExecMode> {
 protected:
  void SetUp() override { ASSERT_TRUE(InitPythonKernel().ok()); }
};

INSTANTIATE_TEST_SUITE_P(BothModes, ExecutorPythonTest,
                         ::testing::Values(v1::EXEC_MODE_THREAD, v1::EXEC_MODE_PROCESS),
                         [](const auto& info) { return info.param == v1::EXEC_MODE_THREAD ? "Thread" : "Process"; });

TEST_P(ExecutorPythonTest, TwoSlotsRunPythonTasksAndCountEveryIteration) {
  Recorder rec;
  Executor ex(Slots(2), rec.OnStarted(), rec.OnFinished());
  for (uint32_t i = 0; i < 3; ++i) ex.Submit(Python("job", i, 300'007, GetParam()));
  ASSERT_TRUE(rec.WaitForResults(3));
  for (const v1::TaskResult& r : rec.results()) {
    EXPECT_EQ(r.state(), v1::TASK_STATE_SUCCEEDED) << r.error();
    EXPECT_EQ(r.iterations_done(), 300'007u);
    EXPECT_GT(r.cpu_ns(), 0);
    if (GetParam() == v1::EXEC_MODE_THREAD) {
      EXPECT_EQ(r.pid(), static_cast<uint32_t>(getpid()));
    } else {
      EXPECT_NE(r.pid(), static_cast<uint32_t>(getpid()));
    }
  }
}

TEST_P(ExecutorPythonTest, CancelStopsARunningPythonTask) {
  Recorder rec;
  Executor ex(Slots(1), rec.OnStarted(), rec.OnFinished());
  const v1::Assignment a = Python("job", 0, kForever, GetParam());
  ex.Submit(a);
  ASSERT_TRUE(rec.WaitForStarted(1));
  ex.Cancel(a.task());
  ASSERT_TRUE(rec.WaitForResults(1, kPrompt)) << "no result within " << kPrompt << " of Cancel";
  const v1::TaskResult r = rec.results()[0];
  EXPECT_EQ(r.state(), v1::TASK_STATE_CANCELLED);
  EXPECT_LT(r.iterations_done(), kForever);
  EXPECT_TRUE(ex.WaitIdle(absl::Now() + kPrompt));
}

TEST_P(ExecutorPythonTest, TimeoutFailsAPythonTask) {
  const std::optional<v1::TaskResult> result = RunWith50msTimeout(Python("job", 0, kForever, GetParam()));
  ASSERT_TRUE(result.has_value());
  const v1::TaskResult& r = *result;
  EXPECT_EQ(r.state(), v1::TASK_STATE_FAILED);
  EXPECT_THAT(r.error(), HasSubstr("timed out"));
}

// A process-mode python task forks while a thread-mode one holds the GIL
// in the worker: the fork protocol gives the child a usable interpreter.
TEST(ExecutorPythonForkTest, ProcessTaskForksWhileAThreadTaskRunsPython) {
  ASSERT_TRUE(InitPythonKernel().ok());
  Recorder rec;
  Executor ex(Slots(2), rec.OnStarted(), rec.OnFinished());
  const v1::Assignment threaded = Python("job", 0, kForever, v1::EXEC_MODE_THREAD);
  ex.Submit(threaded);
  ASSERT_TRUE(rec.WaitForStarted(1));
  ex.Submit(Python("job", 1, 200'003, v1::EXEC_MODE_PROCESS));
  ASSERT_TRUE(rec.WaitForResults(1));
  const v1::TaskResult r = rec.results()[0];
  EXPECT_EQ(r.task().task_index(), 1u);
  EXPECT_EQ(r.state(), v1::TASK_STATE_SUCCEEDED) << r.error();
  EXPECT_EQ(r.iterations_done(), 200'003u);
  ex.Cancel(threaded.task());
  ASSERT_TRUE(rec.WaitForResults(2, kPrompt));
}

}  // namespace
}  // namespace busyfleet::worker
