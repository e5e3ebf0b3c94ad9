// Unit tests of the Coordinator across its own restarts and its workers'
// (docs/design.md, "Restart recovery"): a planned stop charges nothing,
// tasks in flight are recovered as held by their workers and claimed back,
// what nobody claims is queued again without counting an attempt, and a
// restarted worker takes its name over from its silent old session.
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/unit/coordinator_fixture.h"

namespace busyfleet::coordinator {
namespace {

// A hello from worker `name` that still holds `held`.
v1::Hello HelloHolding(const std::string& name, uint32_t slots, const std::string& instance,
                       const std::vector<v1::Assignment>& held) {
  v1::Hello h = MakeHello(name, slots, instance);
  for (const v1::Assignment& a : held) *h.add_held() = a.task();
  return h;
}

class CoordinatorRestartTest : public CoordinatorTest {
 protected:
  // A two-task job running on worker "w" (task 0 started, task 1 assigned).
  void RunTwoTasksOnW() {
    ASSERT_OK_AND_ASSIGN(w_, Attach("w", 2, "inst-1"));
    v1::JobSpec spec = Countdown(2, 7, "two");
    spec.set_max_attempts(1);  // one charged attempt would fail the job
    ASSERT_OK_AND_ASSIGN(auto sub, coord_->Submit(spec));
    job_ = sub.job_id();
    as_ = w_.channel->TakeNew();
    ASSERT_THAT(as_, SizeIs(2));
    ASSERT_OK(Started(w_, as_[0], 0, kSecond));
  }
  v1::JobReport Report() {
    auto r = coord_->GetReport(job_, true);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : v1::JobReport();
  }

  FakeWorker w_;
  std::string job_;
  std::vector<v1::Assignment> as_;
};

TEST_F(CoordinatorRestartTest, ShutdownSaysGoingAwayAndChargesNoAttempt) {
  RunTwoTasksOnW();
  coord_->Shutdown();
  EXPECT_EQ(w_.channel->Count(v1::CoordinatorMessage::kGoingAway), 1);
  EXPECT_THAT(w_.channel->closes(), SizeIs(1));
  // The stream ends because we stop: nothing is charged for it.
  coord_->Detach(w_.session, absl::UnavailableError("stream closed by the worker"));
  const v1::JobReport r = Report();
  EXPECT_EQ(r.state(), v1::JOB_STATE_RUNNING);
  EXPECT_EQ(r.retries(), 0u);
  EXPECT_EQ(r.tasks(0).state(), v1::TASK_STATE_RUNNING);
  EXPECT_EQ(r.tasks(1).state(), v1::TASK_STATE_ASSIGNED);
  EXPECT_EQ(r.tasks(0).worker(), "w");
}

TEST_F(CoordinatorRestartTest, AfterShutdownTheWorkerClaimsItsTasksAndTheirResultsCount) {
  RunTwoTasksOnW();
  coord_->Shutdown();
  coord_->Detach(w_.session, absl::UnavailableError("stream done"));
  Start(Defaults());  // same store

  ASSERT_OK_AND_ASSIGN(FakeWorker back, AttachHello(HelloHolding("w", 2, "inst-1", as_)));
  EXPECT_EQ(back.name, "w");
  EXPECT_THAT(back.channel->TakeNew(), IsEmpty());  // it has them: nothing to send again
  EXPECT_THAT(back.channel->cancelled(), IsEmpty());
  EXPECT_EQ(Info("w").running() + Info("w").assigned(), 2u);
  ASSERT_OK(Succeed(back, as_[0]));
  ASSERT_OK(Succeed(back, as_[1]));
  const v1::JobReport r = Report();
  EXPECT_EQ(r.state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(r.retries(), 0u);
  EXPECT_EQ(r.duplicates(), 0u);
  EXPECT_EQ(r.tasks(0).attempt(), 1u);
  EXPECT_EQ(r.tasks(1).attempt(), 1u);
}

TEST_F(CoordinatorRestartTest, AfterACrashRunningTasksAreHeldAndClaimed) {
  RunTwoTasksOnW();
  coord_.reset();  // kill -9: no Shutdown, no Detach
  Start(Defaults());
  // Nobody else gets them while they are held.
  ASSERT_OK_AND_ASSIGN(FakeWorker other, Attach("other", 2));
  EXPECT_THAT(other.channel->TakeNew(), IsEmpty());
  ASSERT_OK_AND_ASSIGN(FakeWorker back, AttachHello(HelloHolding("w", 2, "inst-1", as_)));
  ASSERT_OK(Succeed(back, as_[0]));
  ASSERT_OK(Succeed(back, as_[1]));
  const v1::JobReport r = Report();
  EXPECT_EQ(r.state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(r.retries(), 0u);
}

TEST_F(CoordinatorRestartTest, UnclaimedHeldTasksAreQueuedAfterTheGraceWithoutCharge) {
  RunTwoTasksOnW();
  coord_.reset();
  Start(Defaults());
  ASSERT_OK_AND_ASSIGN(FakeWorker other, Attach("other", 2));
  // The grace is the worker timeout; CheckLiveness says when it ends.
  EXPECT_LE(coord_->CheckLiveness(), clock_.Mono() + absl::Seconds(5) + kLivenessSlack);
  clock_.Advance(absl::Seconds(5) - absl::Milliseconds(1));
  ASSERT_OK(Heartbeat(other, 1));
  coord_->CheckLiveness();
  EXPECT_THAT(other.channel->TakeNew(), IsEmpty());
  clock_.Advance(absl::Milliseconds(1));
  ASSERT_OK(Heartbeat(other, 2));
  coord_->CheckLiveness();
  const auto again = other.channel->TakeNew();
  ASSERT_THAT(again, SizeIs(2));
  for (const auto& a : again) EXPECT_EQ(a.task().attempt(), 2u);
  EXPECT_EQ(Report().retries(), 0u);

  // "w" comes back late: what it still runs is no longer its to run.
  ASSERT_OK_AND_ASSIGN(FakeWorker late, AttachHello(HelloHolding("w", 2, "inst-1", as_)));
  EXPECT_THAT(late.channel->cancelled(), SizeIs(2));
  ASSERT_OK(Succeed(late, as_[0]));  // a late result: a duplicate, ignored
  ASSERT_OK(Succeed(other, again[0]));
  ASSERT_OK(Succeed(other, again[1]));
  const v1::JobReport r = Report();
  EXPECT_EQ(r.state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(r.retries(), 0u);
  EXPECT_EQ(r.duplicates(), 1u);
}

TEST_F(CoordinatorRestartTest, AWorkerBackWithoutAHeldTaskHasItQueuedAtOnce) {
  RunTwoTasksOnW();
  coord_.reset();
  Start(Defaults());
  // It restarted too: it holds only task 1.
  ASSERT_OK_AND_ASSIGN(FakeWorker back, AttachHello(HelloHolding("w", 2, "inst-2", {as_[1]})));
  const auto again = back.channel->TakeNew();
  ASSERT_THAT(again, SizeIs(1));
  EXPECT_EQ(again[0].task().task_index(), 0u);
  EXPECT_EQ(again[0].task().attempt(), 2u);
  EXPECT_EQ(Report().retries(), 0u);
}

TEST_F(CoordinatorRestartTest, ReconnectingWorkerKeepsWhatItRuns) {
  RunTwoTasksOnW();
  // The same process, a new stream (a network blip), before the old one
  // was declared dead.
  ASSERT_OK_AND_ASSIGN(FakeWorker again, AttachHello(HelloHolding("w", 2, "inst-1", as_)));
  EXPECT_EQ(again.name, "w");
  EXPECT_THAT(again.channel->TakeNew(), IsEmpty());
  ASSERT_OK(Succeed(again, as_[0]));
  ASSERT_OK(Succeed(again, as_[1]));
  const v1::JobReport r = Report();
  EXPECT_EQ(r.state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(r.retries(), 0u);
}

TEST_F(CoordinatorRestartTest, RestartedWorkerTakesItsNameOverFromItsSilentSession) {
  ASSERT_OK_AND_ASSIGN(FakeWorker old, Attach("w", 1, "inst-1"));
  ASSERT_OK_AND_ASSIGN(auto sub, coord_->Submit(Countdown(1)));
  ASSERT_THAT(old.channel->TakeNew(), SizeIs(1));
  // Two heartbeats missed (interval 5 s / 3), still within the 5 s timeout.
  clock_.Advance(absl::Seconds(4));
  ASSERT_OK_AND_ASSIGN(FakeWorker fresh, Attach("w", 1, "inst-2"));
  EXPECT_EQ(fresh.name, "w");
  EXPECT_THAT(old.channel->closes(), SizeIs(1));
  ASSERT_THAT(coord_->ListWorkers(false), SizeIs(1));
  // The old process's task is lost with it (counted) and runs again here.
  const auto again = fresh.channel->TakeNew();
  ASSERT_THAT(again, SizeIs(1));
  EXPECT_EQ(again[0].task().attempt(), 2u);
  ASSERT_OK(Succeed(fresh, again[0]));
  ASSERT_OK_AND_ASSIGN(auto r, coord_->GetReport(sub.job_id(), true));
  EXPECT_EQ(r.state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(r.tasks(0).worker(), "w");
}

TEST_F(CoordinatorRestartTest, LiveWorkersSharingANameDoNotEvictEachOther) {
  ASSERT_OK_AND_ASSIGN(FakeWorker a, Attach("w", 1, "inst-1"));
  ASSERT_OK_AND_ASSIGN(FakeWorker b, Attach("w", 1, "inst-2"));
  EXPECT_EQ(b.name, "w-2");
  for (int i = 1; i <= 6; ++i) {  // both heartbeat on time
    clock_.Advance(absl::Seconds(1));
    ASSERT_OK(Heartbeat(a, static_cast<uint64_t>(i)));
    ASSERT_OK(Heartbeat(b, static_cast<uint64_t>(i)));
  }
  ASSERT_OK_AND_ASSIGN(FakeWorker c, Attach("w", 1, "inst-3"));
  EXPECT_EQ(c.name, "w-3");
  EXPECT_THAT(a.channel->closes(), IsEmpty());
  EXPECT_THAT(b.channel->closes(), IsEmpty());
  EXPECT_THAT(coord_->ListWorkers(false), SizeIs(3));
}

}  // namespace
}  // namespace busyfleet::coordinator
