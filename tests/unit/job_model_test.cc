// Unit tests of the attempt model (core/job_model.h): the one place a failed
// attempt is accounted for, attempt numbers, history, and job.running.
#include "coordinator/core/job_model.h"

#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/prefault.h"

namespace busyfleet::coordinator {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::SizeIs;

class AttemptAccountingTest : public ::testing::Test {
 protected:
  AttemptAccountingTest() {
    job_.id = "j-1";
    job_.spec.set_max_attempts(2);
    job_.tasks.resize(1);
    TaskRecord& t = task();
    t.index = 0;
    t.current.number = t.NextAttemptNumber();
    t.current.session = SessionRef(1);
    t.current.worker = "w1";
    t.current.started_at = now_ - absl::Seconds(1);
    job_.SetTaskState(t, v1::TASK_STATE_RUNNING);
  }
  TaskRecord& task() { return job_.tasks[0]; }
  AfterFailedAttempt End(const std::string& why, bool counted, bool permanent = false) {
    return EndFailedAttempt(job_, task(), why, counted, permanent, now_, counters_, &job_error_);
  }

  absl::Time now_ = absl::FromUnixSeconds(100);
  JobRecord job_;
  CoordinatorCounters counters_;
  std::string job_error_;
};

TEST_F(AttemptAccountingTest, CountedFailureIsARetryAndGoesIntoTheHistory) {
  EXPECT_EQ(End("attempt 1 on worker w1: boom", true), AfterFailedAttempt::kQueue);
  EXPECT_THAT(task().failures(), ElementsAre("attempt 1 on worker w1: boom"));
  EXPECT_EQ(task().error(), "attempt 1 on worker w1: boom");
  EXPECT_EQ(counters_.attempts_failed, 1u);
  EXPECT_EQ(counters_.retried, 1u);
  EXPECT_EQ(job_.retries, 1u);
  ASSERT_THAT(task().history(), SizeIs(1));
  EXPECT_EQ(task().history()[0].state, v1::TASK_STATE_FAILED);
  EXPECT_EQ(task().history()[0].attempt, 1u);
  EXPECT_EQ(task().history()[0].ended_at, now_) << "an open attempt ends now";
  EXPECT_EQ(task().current.started_at, absl::InfinitePast()) << "cleared for the next attempt";
  EXPECT_THAT(job_error_, IsEmpty());
}

TEST_F(AttemptAccountingTest, UncountedEndIsNoFailureAndArchivedAsCancelled) {
  EXPECT_EQ(End("cancelled on worker w1", false), AfterFailedAttempt::kQueue);
  EXPECT_THAT(task().failures(), IsEmpty());
  EXPECT_EQ(task().error(), "cancelled on worker w1");
  EXPECT_EQ(counters_.attempts_failed, 0u);
  EXPECT_EQ(job_.retries, 0u);
  ASSERT_THAT(task().history(), SizeIs(1));
  EXPECT_EQ(task().history()[0].state, v1::TASK_STATE_CANCELLED);
}

TEST_F(AttemptAccountingTest, LastAllowedAttemptFailsTheTaskWithEveryReason) {
  EXPECT_EQ(End("first", true), AfterFailedAttempt::kQueue);
  EXPECT_EQ(End("second", true), AfterFailedAttempt::kFailTask);
  EXPECT_EQ(job_error_, "task 0 failed 2 of 2 attempts: first; second");
  EXPECT_EQ(counters_.attempts_failed, 2u);
  EXPECT_EQ(job_.retries, 1u) << "the last failure is no retry";
  EXPECT_THAT(task().history(), SizeIs(1)) << "the last attempt stays the task's own";
}

TEST_F(AttemptAccountingTest, PermanentFailureFailsTheTaskAtOnce) {
  EXPECT_EQ(End("bad spec", true, /*permanent=*/true), AfterFailedAttempt::kFailTask);
  EXPECT_EQ(job_error_, "task 0 failed and cannot be retried: bad spec");
  EXPECT_THAT(task().failures(), ElementsAre("bad spec"));
  EXPECT_EQ(counters_.attempts_failed, 1u);
  EXPECT_EQ(job_.retries, 0u);
}

TEST_F(AttemptAccountingTest, BackupTakesOverWhenThereIsOne) {
  task().EmplaceBackup().number = task().NextAttemptNumber();
  EXPECT_EQ(End("lost", true), AfterFailedAttempt::kPromoteBackup);
  EXPECT_EQ(job_.retries, 1u);
}

TEST(AttemptTest, NumbersNeverRepeatNotEvenALostBackups) {
  TaskRecord t;
  t.current.number = t.NextAttemptNumber();
  EXPECT_EQ(t.current.number, 1u);
  t.EmplaceBackup().number = t.NextAttemptNumber();
  EXPECT_EQ(t.backup()->number, 2u);
  t.DropBackup(v1::TASK_STATE_FAILED, "lost", absl::FromUnixSeconds(1));
  EXPECT_THAT(t.history(), IsEmpty()) << "a backup that never started leaves no history";
  EXPECT_EQ(t.NextAttemptNumber(), 3u);
}

TEST(AttemptTest, DroppedBackupThatStartedIsArchivedAsABackup) {
  TaskRecord t;
  Attempt& b = t.EmplaceBackup();
  b.number = 2;
  b.worker = "w2";
  b.started_at = absl::FromUnixSeconds(10);
  t.DropBackup(v1::TASK_STATE_CANCELLED, "the job ended", absl::FromUnixSeconds(12));
  EXPECT_EQ(t.backup(), nullptr);
  ASSERT_THAT(t.history(), SizeIs(1));
  EXPECT_TRUE(t.history()[0].backup);
  EXPECT_EQ(t.history()[0].worker, "w2");
  EXPECT_EQ(t.history()[0].ended_at, absl::FromUnixSeconds(12));
  EXPECT_EQ(t.history()[0].error, "the job ended");
}

TEST(JobRecordTest, SetTaskStateKeepsTheRunningCount) {
  JobRecord job;
  job.tasks.resize(2);
  job.SetTaskState(job.tasks[0], v1::TASK_STATE_RUNNING);
  job.SetTaskState(job.tasks[1], v1::TASK_STATE_RUNNING);
  job.SetTaskState(job.tasks[1], v1::TASK_STATE_RUNNING);  // no change
  EXPECT_EQ(job.running, 2u);
  job.SetTaskState(job.tasks[0], v1::TASK_STATE_QUEUED);
  job.SetTaskState(job.tasks[1], v1::TASK_STATE_SUCCEEDED);
  EXPECT_EQ(job.running, 0u);
}

#ifndef NDEBUG
TEST(CountDownDeathTest, GoingBelowZeroFailsInDebugBuilds) {
  uint32_t count = 0;
  EXPECT_DEATH(CountDown(count), "below zero");
}
#endif

TEST(TaskRecordLayoutTest, SlotNumbersKeepEveryRealSlotAndClampTheRest) {
  Attempt a;
  EXPECT_EQ(static_cast<uint32_t>(a.slot), 0u);
  a.slot = 4095;  // limits::kMaxSlotsPerWorker - 1
  EXPECT_EQ(static_cast<uint32_t>(a.slot), 4095u);
  a.slot = 65535;
  EXPECT_EQ(static_cast<uint32_t>(a.slot), 65535u);
  a.slot = 70000;  // not a slot any worker has: clamped, not wrapped to 4464
  EXPECT_EQ(static_cast<uint32_t>(a.slot), 65535u);
  a.slot = UINT32_MAX;
  EXPECT_EQ(static_cast<uint32_t>(a.slot), 65535u);
}

TEST(TaskRecordLayoutTest, HotRecordStaysSmallAndColdDataIsAllocatedOnlyWhenUsed) {
  // A million-task job keeps a million records (issue 17: 150 MiB for the
  // whole coordinator); a task that ran once and succeeded has no cold part.
  EXPECT_LE(sizeof(TaskRecord), kMaxTaskRecordBytes);
  TaskRecord t;
  t.set_error("");
  t.set_stopped_loser(0);
  t.set_interference(std::nullopt);
  EXPECT_FALSE(t.cold) << "clearing what is not there allocates nothing";
  EXPECT_EQ(t.error(), "");
  EXPECT_THAT(t.history(), IsEmpty());
  EXPECT_THAT(t.failures(), IsEmpty());
  EXPECT_EQ(t.backup(), nullptr);
  EXPECT_EQ(t.interference(), nullptr);
  t.set_error("boom");
  ASSERT_TRUE(t.cold);
  const TaskRecord copy = t;
  t.set_error("other");
  EXPECT_EQ(copy.error(), "boom") << "copies are deep";
}

// The task's own small fields sit in the tail padding of its current
// attempt ([[no_unique_address]]): assigning a whole attempt, as a backup
// taking over does, must leave them alone.
TEST(TaskRecordLayoutTest, AssigningTheCurrentAttemptKeepsTheTasksFields) {
  TaskRecord t;
  t.index = 123'456;
  t.last_attempt = 7;
  t.state = v1::TASK_STATE_RUNNING;
  t.speculated = true;
  t.backup_won = true;
  Attempt a;
  a.number = 5;
  a.running = true;
  a.migrated = true;
  a.start_cpu = 3;
  t.current = a;
  Attempt& b = t.EmplaceBackup();
  b.number = 6;
  b.running = true;
  EXPECT_TRUE(t.TakeOverFromBackup());
  EXPECT_EQ(t.current.number, 6u);
  EXPECT_FALSE(t.current.running);
  EXPECT_EQ(t.index, 123'456u);
  EXPECT_EQ(t.last_attempt, 7u);
  EXPECT_EQ(t.state, v1::TASK_STATE_RUNNING);
  EXPECT_TRUE(t.speculated);
  EXPECT_TRUE(t.backup_won);
}

TEST(TaskRecordLayoutTest, NamesAreInternedAndReadBack) {
  const Name a("worker-a");
  const Name b(std::string("worker-a"));
  const Name c("worker-c");
  EXPECT_EQ(a, b);
  EXPECT_EQ(a.id(), b.id());
  EXPECT_FALSE(a == c);
  EXPECT_EQ(a.str(), "worker-a");
  EXPECT_EQ(c, std::string("worker-c"));
  EXPECT_EQ(absl::StrCat("on ", c.str()), "on worker-c");
  Name empty;
  EXPECT_TRUE(empty.empty());
  EXPECT_EQ(empty.str(), "");
  EXPECT_TRUE(Name("").empty());
  Name d = a;
  d.clear();
  EXPECT_TRUE(d.empty());
}

TEST(TaskRecordLayoutTest, WallNsKeepsNanosecondsAndNotSet) {
  const WallNs unset;
  EXPECT_EQ(unset, absl::InfinitePast());
  EXPECT_EQ(absl::Time(unset), absl::InfinitePast());
  const absl::Time t = absl::FromUnixNanos(1'700'000'000'123'456'789);
  const WallNs w = t;
  EXPECT_EQ(absl::Time(w), t);
  EXPECT_TRUE(unset < w);
  EXPECT_TRUE(w > absl::InfinitePast());
  EXPECT_EQ(WallNs(t + absl::Seconds(1)) - w, absl::Seconds(1));
  EXPECT_EQ(w + absl::Nanoseconds(1), t + absl::Nanoseconds(1));
  const MonoTime m = MonoTime::FromNanos(42);
  EXPECT_EQ(MonoNs(m).time(), m);
}

TEST(NewTaskTableTest, MakesQueuedRecordsNumberedInOrderAndReplacesAnOldTable) {
  TaskTable tasks(3);
  tasks[1].state = v1::TASK_STATE_SUCCEEDED;
  tasks[1].current.number = 4;
  // Large enough for the pages to be populated on more than one thread.
  const uint32_t n = static_cast<uint32_t>(3 * kParallelPrefaultBytes / sizeof(TaskRecord));
  NewTaskTable(tasks, n);
  ASSERT_EQ(tasks.size(), n);
  for (uint32_t i = 0; i < n; ++i) {
    ASSERT_EQ(tasks[i].index, i);
    ASSERT_EQ(tasks[i].state, v1::TASK_STATE_QUEUED) << i;
    ASSERT_EQ(tasks[i].current.number, 0u) << i;
    ASSERT_FALSE(tasks[i].current.started_at.is_set()) << i;
    ASSERT_FALSE(tasks[i].cold) << i;
  }
  NewTaskTable(tasks, 2);
  ASSERT_EQ(tasks.size(), 2u);
  EXPECT_EQ(tasks[1].index, 1u);
  EXPECT_EQ(tasks[1].state, v1::TASK_STATE_QUEUED);
  NewTaskTable(tasks, 0);
  EXPECT_TRUE(tasks.empty());
}

// A table at least kMinTaskTableBytes large, in records.
uint32_t LargeTable(double times = 1.0) {
  return static_cast<uint32_t>(times * static_cast<double>(kMinTaskTableBytes) / sizeof(TaskRecord)) + 1;
}

TEST(TaskTablePoolTest, AReleasedTableIsTheNextJobsMemoryWithFreshRecords) {
  TrimTaskTables(absl::ZeroDuration());  // none kept: tests before this one may have left some
  const uint32_t n = LargeTable(2);
  const TaskRecord* data = nullptr;
  {
    JobRecord job;
    NewTaskTable(job.tasks, n);
    data = job.tasks.data();
    job.tasks[7].state = v1::TASK_STATE_SUCCEEDED;
    job.tasks[7].current.number = 3;
    job.tasks[7].current.started_at = absl::Now();
    job.tasks[7].set_error("boom");  // a cold part, which the release must free
  }  // the job is let go of: its table is kept
  EXPECT_EQ(PooledTaskTableBytes(), size_t{n} * sizeof(TaskRecord));
  JobRecord next;
  NewTaskTable(next.tasks, n - 5);  // fits: at least n - 5, at most twice that
  EXPECT_EQ(next.tasks.data(), data);
  EXPECT_EQ(PooledTaskTableBytes(), 0u);
  ASSERT_EQ(next.tasks.size(), n - 5);
  for (uint32_t i = 0; i < n - 5; ++i) {
    ASSERT_EQ(next.tasks[i].index, i);
    ASSERT_EQ(next.tasks[i].state, v1::TASK_STATE_QUEUED) << i;
    ASSERT_EQ(next.tasks[i].current.number, 0u) << i;
    ASSERT_FALSE(next.tasks[i].current.started_at.is_set()) << i;
    ASSERT_FALSE(next.tasks[i].cold) << i;
  }
}

// Records built on more than one CPU (NewTaskTable has the resize leave
// them unbuilt): every one is a new queued record with its index, in a
// fresh table and past a kept table's records; elsewhere a table's resize
// builds its records as std::vector does.
TEST(TaskTablePoolTest, EveryRecordOfALargeNewTableIsBuilt) {
  TrimTaskTables(absl::ZeroDuration());
  auto expect_new = [](const TaskTable& t, uint32_t n) {
    ASSERT_EQ(t.size(), n);
    for (uint32_t i = 0; i < n; ++i) {
      ASSERT_EQ(t[i].index, i);
      ASSERT_EQ(t[i].state, v1::TASK_STATE_QUEUED) << i;
      ASSERT_EQ(t[i].last_attempt, 0u) << i;
      ASSERT_FALSE(t[i].current.assigned_at.is_set()) << i;
      ASSERT_FALSE(t[i].cold) << i;
    }
  };
  const uint32_t n = static_cast<uint32_t>(3 * kParallelTaskRecords + 7);  // parts on more than one CPU
  TaskTable fresh;
  NewTaskTable(fresh, n);
  expect_new(fresh, n);
  // Kept with n - 1000 records, taken for n: 1,000 built past the kept ones.
  fresh.resize(n - 1000);
  for (TaskRecord& t : fresh) t.state = v1::TASK_STATE_SUCCEEDED;
  const TaskRecord* data = fresh.data();
  ReleaseTaskTable(fresh);
  TaskTable again;
  NewTaskTable(again, n);
  ASSERT_EQ(again.data(), data);
  expect_new(again, n);
  TaskTable plain;
  plain.resize(3);
  EXPECT_EQ(plain[2].state, v1::TASK_STATE_QUEUED);
  EXPECT_FALSE(plain[2].cold);
}

TEST(TaskTablePoolTest, OnlyATableThatFitsIsTakenAndAMissFreesThem) {
  TrimTaskTables(absl::ZeroDuration());  // none kept: tests before this one may have left some
  const uint32_t n = LargeTable(4);
  TaskTable table;
  NewTaskTable(table, n);
  const TaskRecord* data = table.data();
  ReleaseTaskTable(table);
  EXPECT_EQ(table.capacity(), 0u);
  const size_t held = PooledTaskTableBytes();
  TaskTable small;
  NewTaskTable(small, 100);  // a small job: malloc's memory; the kept table stays
  EXPECT_EQ(small.capacity(), 100u);
  EXPECT_EQ(PooledTaskTableBytes(), held);
  NewTaskTable(table, n / 2 + 1);  // at most twice the job: taken
  EXPECT_EQ(table.data(), data);
  ReleaseTaskTable(table);
  TaskTable half;
  NewTaskTable(half, n / 2 - 1);  // under half the kept table: not taken, and it is freed
  EXPECT_EQ(half.capacity(), n / 2 - 1);
  EXPECT_EQ(PooledTaskTableBytes(), 0u);
  ReleaseTaskTable(half);
  EXPECT_EQ(PooledTaskTableBytes(), (n / 2 - 1) * sizeof(TaskRecord));
  NewTaskTable(table, n);  // bigger than any kept: a fresh table, and the kept one freed
  EXPECT_EQ(table.capacity(), n);
  EXPECT_EQ(PooledTaskTableBytes(), 0u);
}

TEST(TaskTablePoolTest, KeepsAtMostItsBoundAndNoSmallTables) {
  TrimTaskTables(absl::ZeroDuration());  // none kept: tests before this one may have left some
  TaskTable small;
  NewTaskTable(small, LargeTable(0.5));
  ReleaseTaskTable(small);
  EXPECT_EQ(PooledTaskTableBytes(), 0u);  // under kMinTaskTableBytes: freed
  const uint32_t n = static_cast<uint32_t>(kMaxPooledTaskTableBytes * 2 / 5 / sizeof(TaskRecord));  // two fit
  std::vector<TaskTable> tables(5);  // five jobs at once, let go of one after another
  for (TaskTable& t : tables) NewTaskTable(t, n);
  const TaskRecord* newest = tables.back().data();
  for (TaskTable& t : tables) {
    ReleaseTaskTable(t);
    EXPECT_LE(PooledTaskTableBytes(), kMaxPooledTaskTableBytes);
  }
  EXPECT_EQ(PooledTaskTableBytes(), 2 * size_t{n} * sizeof(TaskRecord));  // the two newest fit
  TaskTable again;
  NewTaskTable(again, n);
  EXPECT_EQ(again.data(), newest);  // the newest release is kept
  TaskTable too_big;
  NewTaskTable(too_big, static_cast<uint32_t>(kMaxPooledTaskTableBytes / sizeof(TaskRecord)) + 1);
  const size_t held = PooledTaskTableBytes();
  ReleaseTaskTable(too_big);
  EXPECT_EQ(PooledTaskTableBytes(), held);  // past the bound alone: freed
  TrimTaskTables();  // none has been idle for kTaskTableIdle
  EXPECT_EQ(PooledTaskTableBytes(), held);
  TrimTaskTables(absl::ZeroDuration());
  EXPECT_EQ(PooledTaskTableBytes(), 0u);
}

}  // namespace
}  // namespace busyfleet::coordinator
