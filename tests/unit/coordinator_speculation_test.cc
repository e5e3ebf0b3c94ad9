// Unit tests of the Coordinator's speculation (backup attempts).
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/unit/coordinator_fixture.h"

namespace busyfleet::coordinator {
namespace {

// --- Speculation (backup tasks) ---

class SpeculationTest : public CoordinatorTest {
 protected:
  void SetUp() override {
    Coordinator::Options o = Defaults();
    o.prefetch_per_worker = 0;  // keep every slot's work visible
    Start(o);
  }
  void RunToStraggler() { CoordinatorTest::RunToStraggler(s_); }
  // The straggler past 1.5x the median (1.6 s): its backup goes to a's free
  // slot, in *backup.
  void RunToBackup(std::vector<v1::Assignment>* backup) {
    RunToStraggler();
    clock_.Advance(absl::Milliseconds(400));
    coord_->CheckLiveness();
    *backup = a_.channel->TakeNew();
    ASSERT_THAT(*backup, SizeIs(1));
  }
  Straggler s_;
  FakeWorker& a_ = s_.a;
  FakeWorker& b_ = s_.b;
  std::string& job_ = s_.job;
  v1::Assignment& first_a_ = s_.first_a;
  v1::Assignment& slow_ = s_.slow;
  v1::Assignment& third_ = s_.third;
};

TEST_F(SpeculationTest, SlowTaskGetsABackupOnAFreeSlotAndTheBackupWins) {
  RunToStraggler();
  // 1.2 s into a 1 s median task: not yet past 1.5x.
  coord_->CheckLiveness();
  EXPECT_THAT(a_.channel->TakeNew(), IsEmpty());
  clock_.Advance(absl::Milliseconds(400));  // 1.6 s
  coord_->CheckLiveness();
  auto backup = a_.channel->TakeNew();
  ASSERT_THAT(backup, SizeIs(1));
  EXPECT_EQ(backup[0].task().task_index(), slow_.task().task_index());
  EXPECT_EQ(backup[0].task().attempt(), slow_.task().attempt() + 1);
  // Only one backup per task.
  clock_.Advance(absl::Seconds(2));
  coord_->CheckLiveness();
  EXPECT_THAT(a_.channel->TakeNew(), IsEmpty());
  ASSERT_OK(Started(a_, backup[0], 0, 10 * kSecond));
  ASSERT_OK(Succeed(a_, backup[0], 10 * kSecond, 11 * kSecond));
  // The primary is told to stop; its late result is the loser's echo, not a duplicate.
  const auto cancels = b_.channel->cancelled();
  ASSERT_THAT(cancels, SizeIs(1));
  EXPECT_EQ(cancels[0].attempt(), slow_.task().attempt());
  ASSERT_OK(Succeed(b_, slow_, kSecond, 9 * kSecond));
  ASSERT_OK_AND_ASSIGN(v1::JobReport r, coord_->GetReport(job_, true));
  EXPECT_EQ(r.state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(r.tasks_succeeded(), 3u);
  EXPECT_EQ(r.backups(), 1u);
  EXPECT_EQ(r.backups_won(), 1u);
  const v1::TaskTiming& t = r.tasks(static_cast<int>(slow_.task().task_index()));
  EXPECT_TRUE(t.speculated());
  EXPECT_TRUE(t.backup_won());
  EXPECT_EQ(t.worker(), "a");
  EXPECT_DOUBLE_EQ(t.seconds(), 1.0);
  EXPECT_EQ(r.backups_cancelled(), 1u);
  EXPECT_EQ(r.duplicates(), 0u);
  ASSERT_OK_AND_ASSIGN(JobRecord stored, store_.LoadJob(job_));
  EXPECT_EQ(stored.duplicates, 0u);
}

TEST_F(SpeculationTest, PrimaryFinishingFirstCancelsTheBackup) {
  std::vector<v1::Assignment> backup;
  ASSERT_NO_FATAL_FAILURE(RunToBackup(&backup));
  ASSERT_OK(Succeed(b_, slow_, kSecond, 3 * kSecond));
  const auto cancels = a_.channel->cancelled();
  ASSERT_THAT(cancels, SizeIs(1));
  EXPECT_EQ(cancels[0].attempt(), backup[0].task().attempt());
  ASSERT_OK(Result(a_, MakeResult(backup[0], v1::TASK_STATE_CANCELLED, kSecond, kSecond + 1)));
  ASSERT_OK_AND_ASSIGN(v1::JobReport r, coord_->GetReport(job_, true));
  EXPECT_EQ(r.state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(r.backups(), 1u);
  EXPECT_EQ(r.backups_won(), 0u);
  const v1::TaskTiming& t = r.tasks(static_cast<int>(slow_.task().task_index()));
  EXPECT_TRUE(t.speculated());
  EXPECT_FALSE(t.backup_won());
  EXPECT_EQ(t.worker(), "b");
  // The credit of the backup is back: worker a is idle.
  for (const v1::WorkerInfo& w : coord_->ListWorkers(false)) {
    EXPECT_EQ(w.running() + w.assigned(), 0u) << w.name();
  }
}

TEST_F(SpeculationTest, LosingThePrimaryPromotesTheBackup) {
  std::vector<v1::Assignment> backup;
  ASSERT_NO_FATAL_FAILURE(RunToBackup(&backup));
  coord_->Detach(b_.session, absl::UnavailableError("gone"));
  // No third copy: the backup carries on as the task's attempt.
  EXPECT_THAT(a_.channel->TakeNew(), IsEmpty());
  ASSERT_OK(Succeed(a_, backup[0], kSecond, 2 * kSecond));
  ASSERT_OK_AND_ASSIGN(v1::JobReport r, coord_->GetReport(job_, true));
  EXPECT_EQ(r.state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(r.retries(), 1u);
  EXPECT_EQ(r.tasks(static_cast<int>(slow_.task().task_index())).attempt(), backup[0].task().attempt());
}

TEST_F(SpeculationTest, FailedPrimaryLeavesTheRunningBackupCountedAsRunning) {
  std::vector<v1::Assignment> backup;
  ASSERT_NO_FATAL_FAILURE(RunToBackup(&backup));
  ASSERT_OK(Started(a_, backup[0], 0, 10 * kSecond));
  // The primary fails (retryably): the running backup takes over, and the
  // job still has one task running (it used to count none).
  ASSERT_OK(Fail(b_, slow_, "boom"));
  EXPECT_THAT(b_.channel->TakeNew(), IsEmpty()) << "no third copy";
  std::vector<v1::JobProgress> seen;
  ASSERT_OK(coord_->Watch(job_, false, [&](const v1::JobProgress& p) { seen.push_back(p); }).status());
  ASSERT_THAT(seen, SizeIs(1));
  EXPECT_EQ(seen[0].tasks_running(), 1u);
  EXPECT_EQ(Info("a").running(), 1u);
  EXPECT_EQ(Info("b").running() + Info("b").assigned(), 0u);
  ASSERT_OK(Succeed(a_, backup[0], 10 * kSecond, 11 * kSecond));
  ASSERT_OK_AND_ASSIGN(v1::JobReport r, coord_->GetReport(job_, true));
  EXPECT_EQ(r.state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(r.retries(), 1u);
}

TEST_F(SpeculationTest, FailedPrimaryPromotesAnAssignedBackupWithoutMiscounting) {
  std::vector<v1::Assignment> backup;
  ASSERT_NO_FATAL_FAILURE(RunToBackup(&backup));
  // The backup has not started when the primary fails: the task waits for
  // it, assigned, with nothing running.
  ASSERT_OK(Fail(b_, slow_, "boom"));
  EXPECT_EQ(Info("a").assigned(), 1u);
  ASSERT_OK(Started(a_, backup[0], 0, 10 * kSecond));
  EXPECT_EQ(Info("a").running(), 1u);
  EXPECT_EQ(Info("a").assigned(), 0u);
  ASSERT_OK(Succeed(a_, backup[0], 10 * kSecond, 11 * kSecond));
  ASSERT_OK_AND_ASSIGN(v1::JobReport r, coord_->GetReport(job_, true));
  EXPECT_EQ(r.state(), v1::JOB_STATE_SUCCEEDED);
}

TEST_F(SpeculationTest, HandedBackPrimaryLetsItsBackupTakeOver) {
  std::vector<v1::Assignment> backup;
  ASSERT_NO_FATAL_FAILURE(RunToBackup(&backup));
  ASSERT_OK(Started(a_, backup[0], 0, 10 * kSecond));
  // Worker b drains and hands the primary back: the running backup is the
  // task's attempt now; nothing is queued again or counted.
  ASSERT_OK(Return(b_, {slow_}));
  ASSERT_OK_AND_ASSIGN(v1::JobReport r, coord_->GetReport(job_, true));
  const v1::TaskTiming& t = r.tasks(static_cast<int>(slow_.task().task_index()));
  EXPECT_EQ(t.state(), v1::TASK_STATE_RUNNING);
  EXPECT_EQ(t.attempt(), backup[0].task().attempt());
  EXPECT_EQ(r.retries(), 0u);
  EXPECT_EQ(Info("b").running() + Info("b").assigned(), 0u);
  ASSERT_OK(Succeed(a_, backup[0], 10 * kSecond, 11 * kSecond));
  ASSERT_OK_AND_ASSIGN(r, coord_->GetReport(job_, true));
  EXPECT_EQ(r.state(), v1::JOB_STATE_SUCCEEDED);
}

// Issue 14: the losing copy's CANCELLED echo was counted in duplicates.
TEST_F(SpeculationTest, LosersEchoIsCountedApartFromDuplicates) {
  std::vector<v1::Assignment> backup;
  ASSERT_NO_FATAL_FAILURE(RunToBackup(&backup));
  ASSERT_OK(Started(a_, backup[0], 0, 10 * kSecond));
  ASSERT_OK(Succeed(b_, slow_, kSecond, 3 * kSecond));  // the primary wins
  const v1::TaskResult echo = MakeResult(backup[0], v1::TASK_STATE_CANCELLED, 10 * kSecond, 11 * kSecond);
  ASSERT_OK(Result(a_, echo));
  ASSERT_OK_AND_ASSIGN(v1::JobReport r, coord_->GetReport(job_, false));
  EXPECT_EQ(r.backups_cancelled(), 1u);
  EXPECT_EQ(r.duplicates(), 0u);
  // The same echo again is a real duplicate (a repeated message).
  ASSERT_OK(Result(a_, echo));
  ASSERT_OK_AND_ASSIGN(r, coord_->GetReport(job_, false));
  EXPECT_EQ(r.duplicates(), 1u);
  EXPECT_EQ(r.backups_cancelled(), 1u);
}

// Issue 14: a backup handed back by a draining worker stayed the task's
// backup; when the primary then failed, it was promoted and the task
// waited forever on a copy nobody ran.
TEST_F(SpeculationTest, HandedBackBackupIsDroppedNotPromotedLater) {
  std::vector<v1::Assignment> backup;
  ASSERT_NO_FATAL_FAILURE(RunToBackup(&backup));
  ASSERT_OK(Return(a_, {backup[0]}));  // a drains before the copy started
  EXPECT_EQ(Info("a").running() + Info("a").assigned(), 0u) << "the copy's credit is freed";
  ASSERT_OK(Fail(b_, slow_, "boom"));
  // The task runs again on b (a drains), not on the copy a handed back.
  auto again = b_.channel->TakeNew();
  ASSERT_THAT(again, SizeIs(1));
  EXPECT_EQ(again[0].task().task_index(), slow_.task().task_index());
  EXPECT_GT(again[0].task().attempt(), backup[0].task().attempt());
  ASSERT_OK(Succeed(b_, again[0], 3 * kSecond, 4 * kSecond));
  ASSERT_OK_AND_ASSIGN(v1::JobReport r, coord_->GetReport(job_, false));
  EXPECT_EQ(r.state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(r.retries(), 1u);
}

TEST_F(SpeculationTest, JobsWithoutSpeculationGetNoBackups) {
  ASSERT_OK_AND_ASSIGN(FakeWorker a, Attach("a", 1));
  ASSERT_OK_AND_ASSIGN(FakeWorker b, Attach("b", 1));
  ASSERT_OK_AND_ASSIGN(auto sub, coord_->Submit(Countdown(2)));
  auto on_a = a.channel->TakeNew();
  auto on_b = b.channel->TakeNew();
  ASSERT_OK(Started(b, on_b[0], 0, kSecond));
  ASSERT_OK(Succeed(a, on_a[0], kSecond, 2 * kSecond));
  clock_.Advance(absl::Seconds(3));  // far past 1.5x the median, within the worker timeout
  EXPECT_EQ(coord_->CheckLiveness(), clock_.Mono() + absl::Seconds(2) + kLivenessSlack) << "only heartbeat deadlines remain";
  EXPECT_THAT(a.channel->TakeNew(), IsEmpty());
}

}  // namespace
}  // namespace busyfleet::coordinator
