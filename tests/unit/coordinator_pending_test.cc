// Unit tests of jobs that cannot run: the pending reason (no attached
// worker can take the job's queued tasks) and JobSpec.pending_timeout.
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/unit/coordinator_fixture.h"

namespace busyfleet::coordinator {
namespace {

class PendingTest : public CoordinatorTest {
 protected:
  std::string Reason(const std::string& job) {
    auto r = coord_->GetReport(job, false);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? r->pending_reason() : "";
  }
  v1::JobState State(const std::string& job) {
    auto r = coord_->GetReport(job, false);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? r->state() : v1::JOB_STATE_UNSPECIFIED;
  }
  std::string SubmitOrDie(const v1::JobSpec& spec) {
    auto sub = coord_->Submit(spec);
    EXPECT_TRUE(sub.ok()) << sub.status();
    return sub.ok() ? sub->job_id() : "";
  }
  static v1::JobSpec WithPendingTimeout(v1::JobSpec spec, int64_t seconds) {
    spec.mutable_pending_timeout()->set_seconds(seconds);
    return spec;
  }
  absl::StatusOr<FakeWorker> AttachWith(const std::string& name, std::map<std::string, std::string> labels,
                                        std::vector<v1::ExecMode> modes) {
    v1::Hello h = MakeHello(name, 1);
    h.mutable_labels()->insert(labels.begin(), labels.end());
    h.clear_exec_modes();
    for (v1::ExecMode m : modes) h.add_exec_modes(m);
    h.set_default_exec(modes.front());
    return AttachHello(h);
  }
};

TEST_F(PendingTest, NoWorkerAttachedIsTheReasonUntilOneAttaches) {
  const std::string job = SubmitOrDie(Countdown(2));
  EXPECT_EQ(Reason(job), "no worker attached");
  ASSERT_OK_AND_ASSIGN(FakeWorker a, Attach("a", 2));
  EXPECT_EQ(Reason(job), "");
  EXPECT_THAT(a.channel->TakeNew(), SizeIs(2));
}

TEST_F(PendingTest, UnknownWorkerNameIsNamed) {
  ASSERT_OK_AND_ASSIGN(FakeWorker a, Attach("a", 1));
  v1::JobSpec spec = Countdown(1);
  spec.add_workers("nosuch");
  const std::string job = SubmitOrDie(spec);
  EXPECT_EQ(Reason(job), "no attached worker matches --workers nosuch");
  EXPECT_THAT(a.channel->TakeNew(), IsEmpty());
  // The worker it names attaches: the task runs there and the reason goes.
  ASSERT_OK_AND_ASSIGN(FakeWorker named, Attach("nosuch", 1));
  EXPECT_EQ(Reason(job), "");
  EXPECT_THAT(named.channel->TakeNew(), SizeIs(1));
}

TEST_F(PendingTest, ExecModeAndLabelsNoWorkerOffers) {
  ASSERT_OK(AttachWith("a", {{"zone", "x"}}, {v1::EXEC_MODE_THREAD}).status());
  v1::JobSpec process = Countdown(1);
  process.set_exec(v1::EXEC_MODE_PROCESS);
  EXPECT_EQ(Reason(SubmitOrDie(process)), "no worker offers --exec process");
  v1::JobSpec gpu = Countdown(1);
  (*gpu.mutable_selector())["gpu"] = "1";
  EXPECT_EQ(Reason(SubmitOrDie(gpu)), "no worker with labels gpu=1");
  v1::JobSpec both = gpu;
  both.set_exec(v1::EXEC_MODE_PROCESS);
  EXPECT_EQ(Reason(SubmitOrDie(both)), "no worker offers --exec process; no worker with labels gpu=1");
}

TEST_F(PendingTest, ConstraintsEachMetButNotByOneWorker) {
  ASSERT_OK(AttachWith("a", {{"gpu", "1"}}, {v1::EXEC_MODE_THREAD}).status());
  ASSERT_OK(AttachWith("b", {}, {v1::EXEC_MODE_PROCESS}).status());
  v1::JobSpec spec = Countdown(1);
  spec.set_exec(v1::EXEC_MODE_PROCESS);
  (*spec.mutable_selector())["gpu"] = "1";
  EXPECT_EQ(Reason(SubmitOrDie(spec)), "no single worker matches all of --exec process, labels gpu=1");
}

TEST_F(PendingTest, BusyWorkersOrMaxSlotsAreNoReason) {
  ASSERT_OK_AND_ASSIGN(FakeWorker a, Attach("a", 1));
  v1::JobSpec spec = Countdown(4);
  spec.set_max_slots(1);
  const std::string job = SubmitOrDie(spec);
  coord_->CheckLiveness();
  EXPECT_EQ(Reason(job), "") << "queued behind capacity, not unrunnable";
}

TEST_F(PendingTest, DrainingTheOnlyWorkerIsTheReason) {
  ASSERT_OK_AND_ASSIGN(FakeWorker a, Attach("a", 1));
  ASSERT_OK(coord_->Drain("a").status());
  const std::string job = SubmitOrDie(Countdown(1));
  EXPECT_EQ(Reason(job), "every attached worker is draining");
}

TEST_F(PendingTest, LosingTheOnlyMatchingWorkerSetsTheReasonAndWatchersHearIt) {
  ASSERT_OK_AND_ASSIGN(FakeWorker a, Attach("a", 1));
  const std::string job = SubmitOrDie(Countdown(1));
  std::vector<v1::JobProgress> seen;
  ASSERT_OK(coord_->Watch(job, false, [&](const v1::JobProgress& p) { seen.push_back(p); }).status());
  ASSERT_THAT(seen, SizeIs(1));
  EXPECT_EQ(seen.back().pending_reason(), "");
  coord_->Detach(a.session, absl::UnavailableError("gone"));
  ASSERT_FALSE(seen.empty());
  EXPECT_EQ(seen.back().pending_reason(), "no worker attached");
  EXPECT_EQ(Reason(job), "no worker attached");
}

TEST_F(PendingTest, PendingTimeoutFailsTheJobWithTheReason) {
  int checks = 0;
  Coordinator::Options o = Defaults();
  o.request_check = [&checks] { ++checks; };
  Start(o);
  const std::string job = SubmitOrDie(WithPendingTimeout(Countdown(2), 2));
  EXPECT_GE(checks, 1) << "the liveness loop must learn of the new deadline";
  EXPECT_EQ(coord_->CheckLiveness(), clock_.Mono() + absl::Seconds(2));
  clock_.StepWall(absl::Hours(1));  // the wall clock decides nothing
  coord_->CheckLiveness();
  EXPECT_EQ(State(job), v1::JOB_STATE_PENDING);
  clock_.Advance(absl::Seconds(2));
  coord_->CheckLiveness();
  ASSERT_OK_AND_ASSIGN(v1::JobReport r, coord_->GetReport(job, false));
  EXPECT_EQ(r.state(), v1::JOB_STATE_FAILED);
  EXPECT_THAT(r.error(), AllOf(HasSubstr("pending timeout"), HasSubstr("no worker attached")));
  EXPECT_EQ(r.pending_reason(), "");
  EXPECT_EQ(r.tasks_cancelled(), 2u);
}

TEST_F(PendingTest, PendingTimeoutCountsOnlyTimeWithoutABreak) {
  const std::string job = SubmitOrDie(WithPendingTimeout(Countdown(1), 2));
  clock_.Advance(absl::Seconds(1));
  ASSERT_OK_AND_ASSIGN(FakeWorker a, Attach("a", 1));  // it can run now
  auto on_a = a.channel->TakeNew();
  ASSERT_THAT(on_a, SizeIs(1));
  coord_->Detach(a.session, absl::UnavailableError("gone"));  // queued again, pending again
  clock_.Advance(absl::Milliseconds(1500));
  coord_->CheckLiveness();
  EXPECT_EQ(State(job), v1::JOB_STATE_RUNNING) << "1.5 s pending since the worker left";
  clock_.Advance(absl::Milliseconds(500));
  coord_->CheckLiveness();
  EXPECT_EQ(State(job), v1::JOB_STATE_FAILED);
}

TEST_F(PendingTest, WithoutAPendingTimeoutTheJobWaits) {
  const std::string job = SubmitOrDie(Countdown(1));
  EXPECT_EQ(coord_->CheckLiveness(), MonoTime::InfiniteFuture());
  clock_.Advance(absl::Hours(24));
  coord_->CheckLiveness();
  EXPECT_EQ(State(job), v1::JOB_STATE_PENDING);
  EXPECT_EQ(Reason(job), "no worker attached");
}

TEST_F(PendingTest, NegativePendingTimeoutIsRefusedNamingTheField) {
  v1::JobSpec spec = Countdown(1);
  spec.mutable_pending_timeout()->set_seconds(-1);
  EXPECT_THAT(coord_->Submit(spec).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("pending_timeout")));
}

}  // namespace
}  // namespace busyfleet::coordinator
