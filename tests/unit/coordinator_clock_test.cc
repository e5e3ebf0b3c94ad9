// Unit tests of the Coordinator's two clocks: a step of the wall clock (NTP,
// `date -s`) by an hour either way changes no decision — no session dies,
// progress keeps its rate, speculation launches on time — because those run
// on the monotonic clock; the wall clock only stamps what users read.
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/unit/coordinator_fixture.h"

namespace busyfleet::coordinator {
namespace {

constexpr absl::Duration kHour = absl::Hours(1);

class WallStepTest : public CoordinatorTest, public ::testing::WithParamInterface<absl::Duration> {};

INSTANTIATE_TEST_SUITE_P(ForwardAndBack, WallStepTest, ::testing::Values(kHour, -kHour),
                         [](const ::testing::TestParamInfo<absl::Duration>& info) {
                           return info.param > absl::ZeroDuration() ? std::string("Forward")
                                                                    : std::string("Back");
                         });

TEST_P(WallStepTest, HeartbeatingWorkersStayAttachedAndNoAttemptIsCharged) {
  ASSERT_OK_AND_ASSIGN(FakeWorker a, Attach("a", 1));
  ASSERT_OK_AND_ASSIGN(FakeWorker b, Attach("b", 1));
  ASSERT_OK_AND_ASSIGN(auto sub, coord_->Submit(Countdown(2)));
  ASSERT_THAT(a.channel->TakeNew(), SizeIs(1));
  ASSERT_THAT(b.channel->TakeNew(), SizeIs(1));
  for (int i = 1; i <= 6; ++i) {
    clock_.Advance(absl::Seconds(1));
    if (i == 3) {
      clock_.StepWall(GetParam());
      coord_->CheckLiveness();  // the liveness loop may run between the step and the next heartbeat
    }
    ASSERT_OK(Heartbeat(a, static_cast<uint64_t>(i)));
    ASSERT_OK(Heartbeat(b, static_cast<uint64_t>(i)));
    coord_->CheckLiveness();
  }
  EXPECT_THAT(coord_->ListWorkers(false), SizeIs(2));
  EXPECT_THAT(a.channel->closes(), IsEmpty());
  EXPECT_THAT(b.channel->closes(), IsEmpty());
  ASSERT_OK_AND_ASSIGN(v1::JobReport r, coord_->GetReport(sub.job_id(), true));
  EXPECT_EQ(r.retries(), 0u);
}

TEST_P(WallStepTest, SilentWorkerDiesAfterTheTimeoutOnTheMonotonicClock) {
  ASSERT_OK_AND_ASSIGN(FakeWorker quiet, Attach("quiet", 1));
  clock_.StepWall(GetParam());
  clock_.Advance(absl::Seconds(4));
  coord_->CheckLiveness();
  EXPECT_THAT(coord_->ListWorkers(false), SizeIs(1)) << "4 s of silence is within the 5 s timeout";
  clock_.Advance(absl::Seconds(1));
  coord_->CheckLiveness();
  EXPECT_THAT(coord_->ListWorkers(false), IsEmpty()) << "5 s of silence, whatever the wall clock says";
  EXPECT_THAT(quiet.channel->closes(), SizeIs(1));
}

TEST_P(WallStepTest, HeldBackProgressGoesAtItsRate) {
  Coordinator::Options o = Defaults();
  o.progress_interval = absl::Milliseconds(100);
  o.progress_burst = 1;
  Start(o);
  ASSERT_OK_AND_ASSIGN(FakeWorker w, Attach("w", 4));
  ASSERT_OK_AND_ASSIGN(auto sub, coord_->Submit(Countdown(4)));
  std::vector<v1::JobProgress> seen;
  ASSERT_OK(coord_->Watch(sub.job_id(), false, [&](const v1::JobProgress& p) { seen.push_back(p); }).status());
  ASSERT_THAT(seen, SizeIs(1)) << "the first update takes the only token";
  const auto as = w.channel->TakeNew();
  ASSERT_THAT(as, SizeIs(4));
  clock_.Advance(absl::Milliseconds(10));
  ASSERT_OK(Succeed(w, as[0]));  // held back: no token for 90 ms
  EXPECT_THAT(seen, SizeIs(1));

  clock_.StepWall(GetParam());
  coord_->CheckLiveness();
  EXPECT_THAT(seen, SizeIs(1)) << "a wall step is no time passing: no token yet";
  clock_.Advance(absl::Milliseconds(90));
  coord_->CheckLiveness();
  ASSERT_THAT(seen, SizeIs(2)) << "due 100 ms after the last update, whatever the wall clock says";
  EXPECT_EQ(seen.back().tasks_done(), 1u);
  // And on at that rate: one more change, one more update 100 ms later.
  ASSERT_OK(Succeed(w, as[1]));
  EXPECT_THAT(seen, SizeIs(2));
  clock_.Advance(absl::Milliseconds(100));
  coord_->CheckLiveness();
  ASSERT_THAT(seen, SizeIs(3));
  EXPECT_EQ(seen.back().tasks_done(), 2u);
}

TEST_P(WallStepTest, TaskTimesStayTheWorkersAndWithinTheirAttempt) {
  ASSERT_OK_AND_ASSIGN(FakeWorker w, Attach("w", 1));
  // The worker's monotonic zero is our wall clock's now (its offset), as
  // estimated before the step.
  ASSERT_OK(Heartbeat(w, 1, 0, /*offset_valid=*/true, absl::ToUnixNanos(clock_.Now())));
  ASSERT_OK_AND_ASSIGN(auto sub, coord_->Submit(Countdown(1)));
  const auto as = w.channel->TakeNew();
  ASSERT_THAT(as, SizeIs(1));
  clock_.StepWall(GetParam());
  ASSERT_OK(Started(w, as[0], 0, kSecond / 10));
  clock_.Advance(absl::Seconds(2));
  ASSERT_OK(Succeed(w, as[0], kSecond / 10, kSecond / 10 + 3 * kSecond / 2));  // ran 1.5 s
  ASSERT_OK_AND_ASSIGN(v1::JobReport r, coord_->GetReport(sub.job_id(), true));
  EXPECT_EQ(r.state(), v1::JOB_STATE_SUCCEEDED);
  ASSERT_EQ(r.tasks_size(), 1);
  EXPECT_DOUBLE_EQ(r.tasks(0).seconds(), 1.5) << "a task's duration is the worker's monotonic time";
  EXPECT_DOUBLE_EQ(r.timing().makespan_seconds(), 1.5);
  EXPECT_DOUBLE_EQ(r.timing().serial_seconds(), 1.5);
  EXPECT_GE(r.tasks(0).start_offset_seconds(), 0) << "never before the job's submission";
  EXPECT_GE(r.timing().wall_seconds(), 0);
  EXPECT_GE(r.timing().overhead_seconds(), 0);
}

// Two one-slot workers and a 3-task speculative job; task 0 took 1 s (the
// median), the slow task has run for 1.2 s: its backup is due at 1.5 s.
class WallStepSpeculationTest : public WallStepTest {
 protected:
  void SetUp() override {
    Coordinator::Options o = Defaults();
    o.prefetch_per_worker = 0;
    Start(o);
    RunToStraggler(s_);
  }
  Straggler s_;
  FakeWorker& a_ = s_.a;
  FakeWorker& b_ = s_.b;
  std::string& job_ = s_.job;
  v1::Assignment& slow_ = s_.slow;
};

INSTANTIATE_TEST_SUITE_P(ForwardAndBack, WallStepSpeculationTest, ::testing::Values(kHour, -kHour),
                         [](const ::testing::TestParamInfo<absl::Duration>& info) {
                           return info.param > absl::ZeroDuration() ? std::string("Forward")
                                                                    : std::string("Back");
                         });

TEST_P(WallStepSpeculationTest, BackupLaunchesOnTimeNotEarlyNorLate) {
  clock_.StepWall(GetParam());
  coord_->CheckLiveness();
  EXPECT_THAT(a_.channel->TakeNew(), IsEmpty()) << "1.2 s into a 1 s median task: not yet past 1.5x";
  clock_.Advance(absl::Milliseconds(400));
  ASSERT_OK(Heartbeat(a_, 1));
  ASSERT_OK(Heartbeat(b_, 1));
  coord_->CheckLiveness();
  const auto backup = a_.channel->TakeNew();
  ASSERT_THAT(backup, SizeIs(1)) << "1.6 s: the backup is due";
  EXPECT_EQ(backup[0].task().task_index(), slow_.task().task_index());
}

}  // namespace
}  // namespace busyfleet::coordinator
