// Unit tests of the attempt model (core/job_model.h): the one place a failed
// attempt is accounted for, attempt numbers, history, and job.running.
#include "coordinator/core/job_model.h"

#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/time/time.h"

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
    t.current.session = "s-1";
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
  EXPECT_THAT(task().failures, ElementsAre("attempt 1 on worker w1: boom"));
  EXPECT_EQ(task().error, "attempt 1 on worker w1: boom");
  EXPECT_EQ(counters_.attempts_failed, 1u);
  EXPECT_EQ(counters_.retried, 1u);
  EXPECT_EQ(job_.retries, 1u);
  ASSERT_THAT(task().history, SizeIs(1));
  EXPECT_EQ(task().history[0].state, v1::TASK_STATE_FAILED);
  EXPECT_EQ(task().history[0].attempt, 1u);
  EXPECT_EQ(task().history[0].ended_at, now_) << "an open attempt ends now";
  EXPECT_EQ(task().current.started_at, absl::InfinitePast()) << "cleared for the next attempt";
  EXPECT_THAT(job_error_, IsEmpty());
}

TEST_F(AttemptAccountingTest, UncountedEndIsNoFailureAndArchivedAsCancelled) {
  EXPECT_EQ(End("cancelled on worker w1", false), AfterFailedAttempt::kQueue);
  EXPECT_THAT(task().failures, IsEmpty());
  EXPECT_EQ(task().error, "cancelled on worker w1");
  EXPECT_EQ(counters_.attempts_failed, 0u);
  EXPECT_EQ(job_.retries, 0u);
  ASSERT_THAT(task().history, SizeIs(1));
  EXPECT_EQ(task().history[0].state, v1::TASK_STATE_CANCELLED);
}

TEST_F(AttemptAccountingTest, LastAllowedAttemptFailsTheTaskWithEveryReason) {
  EXPECT_EQ(End("first", true), AfterFailedAttempt::kQueue);
  EXPECT_EQ(End("second", true), AfterFailedAttempt::kFailTask);
  EXPECT_EQ(job_error_, "task 0 failed 2 of 2 attempts: first; second");
  EXPECT_EQ(counters_.attempts_failed, 2u);
  EXPECT_EQ(job_.retries, 1u) << "the last failure is no retry";
  EXPECT_THAT(task().history, SizeIs(1)) << "the last attempt stays the task's own";
}

TEST_F(AttemptAccountingTest, PermanentFailureFailsTheTaskAtOnce) {
  EXPECT_EQ(End("bad spec", true, /*permanent=*/true), AfterFailedAttempt::kFailTask);
  EXPECT_EQ(job_error_, "task 0 failed and cannot be retried: bad spec");
  EXPECT_THAT(task().failures, ElementsAre("bad spec"));
  EXPECT_EQ(counters_.attempts_failed, 1u);
  EXPECT_EQ(job_.retries, 0u);
}

TEST_F(AttemptAccountingTest, BackupTakesOverWhenThereIsOne) {
  task().backup.emplace().number = task().NextAttemptNumber();
  EXPECT_EQ(End("lost", true), AfterFailedAttempt::kPromoteBackup);
  EXPECT_EQ(job_.retries, 1u);
}

TEST(AttemptTest, NumbersNeverRepeatNotEvenALostBackups) {
  TaskRecord t;
  t.current.number = t.NextAttemptNumber();
  EXPECT_EQ(t.current.number, 1u);
  t.backup.emplace().number = t.NextAttemptNumber();
  EXPECT_EQ(t.backup->number, 2u);
  t.DropBackup(v1::TASK_STATE_FAILED, "lost", absl::FromUnixSeconds(1));
  EXPECT_THAT(t.history, IsEmpty()) << "a backup that never started leaves no history";
  EXPECT_EQ(t.NextAttemptNumber(), 3u);
}

TEST(AttemptTest, DroppedBackupThatStartedIsArchivedAsABackup) {
  TaskRecord t;
  Attempt& b = t.backup.emplace();
  b.number = 2;
  b.worker = "w2";
  b.started_at = absl::FromUnixSeconds(10);
  t.DropBackup(v1::TASK_STATE_CANCELLED, "the job ended", absl::FromUnixSeconds(12));
  EXPECT_FALSE(t.backup.has_value());
  ASSERT_THAT(t.history, SizeIs(1));
  EXPECT_TRUE(t.history[0].backup);
  EXPECT_EQ(t.history[0].worker, "w2");
  EXPECT_EQ(t.history[0].ended_at, absl::FromUnixSeconds(12));
  EXPECT_EQ(t.history[0].error, "the job ended");
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

}  // namespace
}  // namespace busyfleet::coordinator
