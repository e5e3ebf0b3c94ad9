// Unit tests of the Coordinator: jobs from submit to report, dispatch,
// results and retries, worker loss, cancel, scheduling, timing, recovery.
// The fixture (fake workers, fake clock) is in coordinator_fixture.h.
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "coordinator/core/scheduler.h"
#include "tests/unit/coordinator_fixture.h"

namespace busyfleet::coordinator {
namespace {

// --- A job from submit to report ---

TEST_F(CoordinatorTest, JobRunsToSuccessAcrossTwoWorkers) {
  ASSERT_OK_AND_ASSIGN(FakeWorker a, Attach("alpha", 1));
  ASSERT_OK_AND_ASSIGN(FakeWorker b, Attach("beta", 1));
  ASSERT_OK_AND_ASSIGN(auto sub, coord_->Submit(Countdown(4, 10'000'000, "chapter")));
  EXPECT_EQ(sub.tasks(), 4u);
  EXPECT_THAT(sub.job_id(), HasSubstr("j-"));

  std::vector<v1::JobProgress> updates;
  ASSERT_OK_AND_ASSIGN(uint64_t handle,
                       coord_->Watch(sub.job_id(), true,
                                     [&updates](const v1::JobProgress& p) { updates.push_back(p); }));
  ASSERT_THAT(updates, SizeIs(1));  // the current progress, at once
  EXPECT_EQ(updates[0].state(), v1::JOB_STATE_RUNNING);
  EXPECT_EQ(updates[0].tasks_total(), 4u);
  EXPECT_EQ(updates[0].tasks_done(), 0u);
  EXPECT_FALSE(updates[0].has_report());

  // 2 workers x (1 slot + prefetch 2), 4 tasks: two each, in one batch each.
  EXPECT_EQ(a.channel->Count(v1::CoordinatorMessage::kAssign), 1);
  EXPECT_EQ(b.channel->Count(v1::CoordinatorMessage::kAssign), 1);
  const auto for_a = a.channel->TakeNew();
  const auto for_b = b.channel->TakeNew();
  ASSERT_THAT(for_a, SizeIs(2));
  ASSERT_THAT(for_b, SizeIs(2));
  std::set<uint32_t> all = Indices(for_a);
  for (uint32_t i : Indices(for_b)) EXPECT_TRUE(all.insert(i).second) << "task " << i << " twice";
  EXPECT_EQ(all, (std::set<uint32_t>{0, 1, 2, 3}));
  std::map<uint32_t, std::string> worker_of;
  for (const auto& x : for_a) worker_of[x.task().task_index()] = "alpha";
  for (const auto& x : for_b) worker_of[x.task().task_index()] = "beta";
  for (const auto& x : for_a) EXPECT_EQ(x.task().attempt(), 1u);
  for (const auto& x : for_b) EXPECT_EQ(x.task().attempt(), 1u);

  // Start one on each; the worker list shows it.
  ASSERT_OK(Started(a, for_a[0], 0, 10 * kSecond));
  ASSERT_OK(Started(b, for_b[0], 0, 20 * kSecond));
  EXPECT_EQ(Info("alpha").running(), 1u);
  EXPECT_EQ(Info("alpha").assigned(), 1u);

  clock_.Advance(absl::Seconds(3));
  // Durations 1s, 2s (alpha) and 1.5s, 0.5s (beta).
  ASSERT_OK(Succeed(a, for_a[0], 10 * kSecond, 11 * kSecond));
  ASSERT_OK(Succeed(b, for_b[0], 20 * kSecond, 21 * kSecond + kSecond / 2));
  ASSERT_OK(Succeed(a, for_a[1], 11 * kSecond, 13 * kSecond));
  ASSERT_OK_AND_ASSIGN(auto mid, coord_->GetReport(sub.job_id(), false));
  EXPECT_EQ(mid.state(), v1::JOB_STATE_RUNNING);
  EXPECT_EQ(mid.tasks_succeeded(), 3u);
  clock_.Advance(absl::Seconds(1));
  ASSERT_OK(Succeed(b, for_b[1], 22 * kSecond, 22 * kSecond + kSecond / 2));

  ASSERT_OK_AND_ASSIGN(auto report, coord_->GetReport(sub.job_id(), true));
  EXPECT_EQ(report.state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(report.name(), "chapter");
  EXPECT_EQ(report.error(), "");
  EXPECT_EQ(report.tasks_total(), 4u);
  EXPECT_EQ(report.tasks_succeeded(), 4u);
  EXPECT_EQ(report.tasks_failed(), 0u);
  EXPECT_EQ(report.retries(), 0u);
  EXPECT_EQ(report.iterations_total(), 40'000'000u);
  EXPECT_DOUBLE_EQ(report.timing().serial_seconds(), 5.0);
  EXPECT_DOUBLE_EQ(report.timing().wall_seconds(), 4.0);  // submit -> last result
  ASSERT_THAT(report.tasks(), SizeIs(4));
  std::map<uint32_t, double> seconds;
  for (const auto& t : report.tasks()) {
    EXPECT_EQ(t.state(), v1::TASK_STATE_SUCCEEDED) << t.index();
    EXPECT_EQ(t.attempt(), 1u) << t.index();
    EXPECT_EQ(t.worker(), worker_of[t.index()]) << t.index();
    seconds[t.index()] = t.seconds();
  }
  EXPECT_DOUBLE_EQ(seconds[for_a[0].task().task_index()], 1.0);
  EXPECT_DOUBLE_EQ(seconds[for_a[1].task().task_index()], 2.0);
  EXPECT_DOUBLE_EQ(seconds[for_b[0].task().task_index()], 1.5);
  EXPECT_DOUBLE_EQ(seconds[for_b[1].task().task_index()], 0.5);
  ASSERT_THAT(report.workers(), SizeIs(2));
  EXPECT_EQ(report.workers(0).name(), "alpha");
  EXPECT_EQ(report.workers(0).tasks(), 2u);
  EXPECT_EQ(report.workers(0).iterations(), 20'000'000u);
  EXPECT_EQ(report.workers(0).host(), "alpha.host");
  EXPECT_EQ(report.workers(1).name(), "beta");
  EXPECT_EQ(report.workers(1).tasks(), 2u);

  // Progress: one update per change, then exactly one final one with the report.
  ASSERT_GE(updates.size(), 6u);
  int finals = 0;
  uint32_t last_done = 0;
  for (const auto& p : updates) {
    EXPECT_GE(p.tasks_done(), last_done);
    last_done = p.tasks_done();
    if (p.has_report()) ++finals;
  }
  EXPECT_EQ(finals, 1);
  const v1::JobProgress& final_update = updates.back();
  ASSERT_TRUE(final_update.has_report());
  EXPECT_EQ(final_update.state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(final_update.tasks_done(), 4u);
  EXPECT_EQ(final_update.report().state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(final_update.report().tasks_succeeded(), 4u);
  EXPECT_THAT(final_update.report().tasks(), SizeIs(4));

  // Nothing after the final update, even when the job's record changes again.
  const size_t n = updates.size();
  ASSERT_OK(Succeed(a, for_a[0], 10 * kSecond, 11 * kSecond));  // a duplicate
  EXPECT_EQ(updates.size(), n);
  coord_->Unwatch(handle);

  EXPECT_EQ(Info("alpha").running(), 0u);
  EXPECT_EQ(Info("alpha").assigned(), 0u);
  EXPECT_EQ(Info("alpha").tasks_done(), 2u);
}

// --- Every task counted once ---

TEST_F(CoordinatorTest, DuplicateResultIsCountedOnce) {
  ASSERT_OK_AND_ASSIGN(FakeWorker w, Attach("w", 1));
  ASSERT_OK_AND_ASSIGN(auto sub, coord_->Submit(Countdown(3)));
  const auto as = w.channel->TakeNew();
  ASSERT_THAT(as, SizeIs(3));

  ASSERT_OK(Succeed(w, as[0]));
  ASSERT_OK(Succeed(w, as[0]));  // the same job/task/attempt again
  // And twice inside one message.
  v1::WorkerMessage m;
  *m.mutable_updates()->add_results() = MakeResult(as[1], v1::TASK_STATE_SUCCEEDED, 0, kSecond);
  *m.mutable_updates()->add_results() = MakeResult(as[1], v1::TASK_STATE_SUCCEEDED, 0, kSecond);
  ASSERT_OK(Send(w, m));

  ASSERT_OK_AND_ASSIGN(auto report, coord_->GetReport(sub.job_id(), false));
  EXPECT_EQ(report.tasks_succeeded(), 2u);
  EXPECT_EQ(report.state(), v1::JOB_STATE_RUNNING);
  ASSERT_OK_AND_ASSIGN(JobRecord stored, store_.LoadJob(sub.job_id()));
  EXPECT_EQ(stored.duplicates, 2u);
  EXPECT_EQ(stored.succeeded, 2u);

  ASSERT_OK(Succeed(w, as[2]));
  ASSERT_OK_AND_ASSIGN(report, coord_->GetReport(sub.job_id(), false));
  EXPECT_EQ(report.tasks_succeeded(), 3u);
  EXPECT_EQ(report.state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(report.workers(0).tasks(), 3u);
  EXPECT_EQ(report.workers(0).iterations(), 3000u);
}

TEST_F(CoordinatorTest, StaleAttemptResultIsIgnored) {
  ASSERT_OK_AND_ASSIGN(FakeWorker w, Attach("w", 1));
  v1::JobSpec spec = Countdown(1);
  spec.set_max_attempts(3);
  ASSERT_OK_AND_ASSIGN(auto sub, coord_->Submit(spec));
  const v1::Assignment first = w.channel->TakeNew().at(0);
  ASSERT_OK(Fail(w, first, "boom"));
  const auto again = w.channel->TakeNew();
  ASSERT_THAT(again, SizeIs(1));
  EXPECT_EQ(again[0].task().attempt(), 2u);

  // A late success of attempt 1: recorded as a duplicate, ignored.
  ASSERT_OK(Succeed(w, first));
  ASSERT_OK_AND_ASSIGN(auto report, coord_->GetReport(sub.job_id(), true));
  EXPECT_EQ(report.state(), v1::JOB_STATE_RUNNING);
  EXPECT_EQ(report.tasks_succeeded(), 0u);
  ASSERT_OK_AND_ASSIGN(JobRecord stored, store_.LoadJob(sub.job_id()));
  EXPECT_EQ(stored.duplicates, 1u);
  // An attempt from the future is no better.
  v1::Assignment future = again[0];
  future.mutable_task()->set_attempt(3);
  ASSERT_OK(Succeed(w, future));
  ASSERT_OK_AND_ASSIGN(stored, store_.LoadJob(sub.job_id()));
  EXPECT_EQ(stored.duplicates, 2u);
  EXPECT_EQ(stored.succeeded, 0u);

  ASSERT_OK(Succeed(w, again[0]));
  ASSERT_OK_AND_ASSIGN(report, coord_->GetReport(sub.job_id(), true));
  EXPECT_EQ(report.state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(report.tasks_succeeded(), 1u);
  EXPECT_EQ(report.retries(), 1u);
  EXPECT_EQ(report.tasks(0).attempt(), 2u);
}

TEST_F(CoordinatorTest, ResultFromAnotherSessionIsIgnored) {
  ASSERT_OK_AND_ASSIGN(FakeWorker a, Attach("a", 1));
  ASSERT_OK_AND_ASSIGN(auto sub, coord_->Submit(Countdown(1)));
  ASSERT_OK_AND_ASSIGN(FakeWorker b, Attach("b", 1));
  const v1::Assignment task = a.channel->TakeNew().at(0);
  ASSERT_OK(Succeed(b, task));  // b never had it
  ASSERT_OK_AND_ASSIGN(auto report, coord_->GetReport(sub.job_id(), false));
  EXPECT_EQ(report.tasks_succeeded(), 0u);
  EXPECT_EQ(report.state(), v1::JOB_STATE_RUNNING);
  ASSERT_OK(Succeed(a, task));
  ASSERT_OK_AND_ASSIGN(report, coord_->GetReport(sub.job_id(), false));
  EXPECT_EQ(report.state(), v1::JOB_STATE_SUCCEEDED);
}

// --- Worker loss ---

TEST_F(CoordinatorTest, DeadWorkerTasksAreRequeued) {
  ASSERT_OK_AND_ASSIGN(FakeWorker a, Attach("a", 1));
  ASSERT_OK_AND_ASSIGN(FakeWorker b, Attach("b", 1));
  ASSERT_OK_AND_ASSIGN(auto sub, coord_->Submit(Countdown(2)));
  const auto for_a = a.channel->TakeNew();
  const auto for_b = b.channel->TakeNew();
  ASSERT_THAT(for_a, SizeIs(1));  // free slots are filled before prefetching
  ASSERT_THAT(for_b, SizeIs(1));
  ASSERT_OK(Started(a, for_a[0], 0, kSecond));

  coord_->Detach(a.session, absl::UnavailableError("connection reset"));
  EXPECT_THAT(a.channel->closes(), IsEmpty());  // the stream already ended
  const auto moved = b.channel->TakeNew();
  ASSERT_THAT(moved, SizeIs(1));
  EXPECT_EQ(moved[0].task().task_index(), for_a[0].task().task_index());
  EXPECT_EQ(moved[0].task().attempt(), 2u);

  ASSERT_OK_AND_ASSIGN(auto report, coord_->GetReport(sub.job_id(), true));
  EXPECT_EQ(report.retries(), 1u);
  EXPECT_EQ(report.state(), v1::JOB_STATE_RUNNING);
  const auto& lost = report.tasks(static_cast<int>(for_a[0].task().task_index()));
  EXPECT_THAT(lost.error(), AllOf(HasSubstr("lost with worker a"), HasSubstr("connection reset")));

  ASSERT_OK(Succeed(b, for_b[0]));
  ASSERT_OK(Succeed(b, moved[0]));
  ASSERT_OK_AND_ASSIGN(report, coord_->GetReport(sub.job_id(), true));
  EXPECT_EQ(report.state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(report.tasks_succeeded(), 2u);
  EXPECT_EQ(report.retries(), 1u);
  for (const auto& t : report.tasks()) EXPECT_EQ(t.worker(), "b");
  EXPECT_EQ(report.tasks(static_cast<int>(moved[0].task().task_index())).attempt(), 2u);

  const auto all = coord_->ListWorkers(true);
  ASSERT_THAT(all, SizeIs(2));
  EXPECT_EQ(all[0].name(), "b");
  EXPECT_EQ(all[1].name(), "a");
  EXPECT_EQ(all[1].state(), v1::WORKER_STATE_GONE);
  EXPECT_THAT(coord_->ListWorkers(false), SizeIs(1));
  // Detach of an unknown (or already detached) session is ignored.
  coord_->Detach(a.session, absl::OkStatus());
  coord_->Detach("s-unknown", absl::OkStatus());
  EXPECT_THAT(coord_->ListWorkers(true), SizeIs(2));
}

TEST_F(CoordinatorTest, TaskLostMaxAttemptsTimesFailsTheJob) {
  ASSERT_OK_AND_ASSIGN(FakeWorker a, Attach("alpha", 1));
  ASSERT_OK_AND_ASSIGN(FakeWorker b, Attach("beta", 1));
  v1::JobSpec spec = Countdown(1);
  spec.set_max_attempts(2);
  ASSERT_OK_AND_ASSIGN(auto sub, coord_->Submit(spec));
  FakeWorker* first = &a;
  FakeWorker* second = &b;
  if (a.channel->assignments().empty()) std::swap(first, second);
  ASSERT_THAT(first->channel->TakeNew(), SizeIs(1));
  ASSERT_THAT(second->channel->TakeNew(), IsEmpty());

  coord_->Detach(first->session, absl::UnavailableError("gone 1"));
  const auto moved = second->channel->TakeNew();
  ASSERT_THAT(moved, SizeIs(1));
  EXPECT_EQ(moved[0].task().attempt(), 2u);
  coord_->Detach(second->session, absl::UnavailableError("gone 2"));

  ASSERT_OK_AND_ASSIGN(auto report, coord_->GetReport(sub.job_id(), true));
  EXPECT_EQ(report.state(), v1::JOB_STATE_FAILED);
  EXPECT_EQ(report.tasks_failed(), 1u);
  EXPECT_THAT(report.error(), AllOf(HasSubstr("task 0"), HasSubstr("2 of 2"), HasSubstr(first->name),
                                    HasSubstr(second->name)));
  EXPECT_EQ(report.tasks(0).state(), v1::TASK_STATE_FAILED);
  // The job is over: a new worker gets nothing of it.
  ASSERT_OK_AND_ASSIGN(FakeWorker c, Attach("gamma", 1));
  EXPECT_THAT(c.channel->assignments(), IsEmpty());
}

TEST_F(CoordinatorTest, FailedTaskIsRetriedThenFailsTheJob) {
  ASSERT_OK_AND_ASSIGN(FakeWorker w, Attach("w", 1));
  ASSERT_OK_AND_ASSIGN(FakeWorker other, Attach("other", 1));
  v1::JobSpec spec = Countdown(3);
  spec.set_max_attempts(2);
  spec.add_workers("w");  // everything on w: 1 slot + prefetch 2
  ASSERT_OK_AND_ASSIGN(auto sub, coord_->Submit(spec));
  const auto as = w.channel->TakeNew();
  ASSERT_THAT(as, SizeIs(3));
  EXPECT_THAT(other.channel->assignments(), IsEmpty());
  // A 1 ms task: the job's prefetch stays above one (see the scheduler's
  // adaptive prefetch), so the retry goes out at once.
  ASSERT_OK(Succeed(w, as[0], kSecond, kSecond + kSecond / 1000));
  ASSERT_OK(Fail(w, as[1], "timed out"));
  const auto retry = w.channel->TakeNew();
  ASSERT_THAT(retry, SizeIs(1));
  EXPECT_EQ(retry[0].task().task_index(), 1u);
  EXPECT_EQ(retry[0].task().attempt(), 2u);
  ASSERT_OK_AND_ASSIGN(auto report, coord_->GetReport(sub.job_id(), false));
  EXPECT_EQ(report.state(), v1::JOB_STATE_RUNNING);
  EXPECT_EQ(report.retries(), 1u);

  ASSERT_OK(Fail(w, retry[0], "timed out"));
  ASSERT_OK_AND_ASSIGN(report, coord_->GetReport(sub.job_id(), true));
  EXPECT_EQ(report.state(), v1::JOB_STATE_FAILED);
  EXPECT_THAT(report.error(), AllOf(HasSubstr("task 1 "), HasSubstr("2 of 2"), HasSubstr("timed out")));
  EXPECT_EQ(report.tasks_succeeded(), 1u);
  EXPECT_EQ(report.tasks_failed(), 1u);
  EXPECT_EQ(report.tasks_cancelled(), 1u);  // task 2, still in flight
  EXPECT_EQ(report.retries(), 1u);
  EXPECT_EQ(report.tasks(1).state(), v1::TASK_STATE_FAILED);
  EXPECT_EQ(report.tasks(2).state(), v1::TASK_STATE_CANCELLED);
  // Task 2 was still on w: it is told to stop.
  const auto cancels = w.channel->cancelled();
  ASSERT_THAT(cancels, SizeIs(1));
  EXPECT_EQ(cancels[0].job_id(), sub.job_id());
  EXPECT_EQ(cancels[0].task_index(), 2u);
  EXPECT_EQ(cancels[0].attempt(), 1u);
  EXPECT_EQ(Info("w").assigned(), 0u);
}

TEST_F(CoordinatorTest, WorkerGivingUpATaskDoesNotCountAnAttempt) {
  ASSERT_OK_AND_ASSIGN(FakeWorker w, Attach("w", 1));
  v1::JobSpec spec = Countdown(1);
  spec.set_max_attempts(1);
  ASSERT_OK_AND_ASSIGN(auto sub, coord_->Submit(spec));
  const v1::Assignment a = w.channel->TakeNew().at(0);
  ASSERT_OK(Result(w, MakeResult(a, v1::TASK_STATE_CANCELLED, 0, kSecond)));
  const auto again = w.channel->TakeNew();
  ASSERT_THAT(again, SizeIs(1));
  EXPECT_EQ(again[0].task().attempt(), 2u);
  ASSERT_OK(Succeed(w, again[0]));
  ASSERT_OK_AND_ASSIGN(auto report, coord_->GetReport(sub.job_id(), false));
  EXPECT_EQ(report.state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(report.retries(), 0u);
}

// --- Cancel ---

TEST_F(CoordinatorTest, CancelStopsARunningJob) {
  ASSERT_OK_AND_ASSIGN(FakeWorker a, Attach("a", 1));
  ASSERT_OK_AND_ASSIGN(FakeWorker b, Attach("b", 1));
  ASSERT_OK_AND_ASSIGN(FakeWorker idle, Attach("idle", 1));
  v1::JobSpec spec = Countdown(4);
  spec.add_workers("a");
  spec.add_workers("b");
  ASSERT_OK_AND_ASSIGN(auto sub, coord_->Submit(spec));
  const auto for_a = a.channel->TakeNew();
  const auto for_b = b.channel->TakeNew();
  ASSERT_THAT(for_a, SizeIs(2));
  ASSERT_THAT(for_b, SizeIs(2));
  ASSERT_OK(Started(a, for_a[0], 0, kSecond));
  std::vector<v1::JobProgress> updates;
  ASSERT_OK(coord_->Watch(sub.job_id(), false,
                          [&updates](const v1::JobProgress& p) { updates.push_back(p); }));

  clock_.Advance(absl::Seconds(2));
  ASSERT_OK_AND_ASSIGN(v1::JobState state, coord_->Cancel(sub.job_id()));
  EXPECT_EQ(state, v1::JOB_STATE_CANCELLED);

  auto refs = [](const std::vector<v1::TaskRef>& rs) {
    std::set<std::pair<uint32_t, uint32_t>> out;
    for (const auto& r : rs) out.emplace(r.task_index(), r.attempt());
    return out;
  };
  auto expected = [](const std::vector<v1::Assignment>& as) {
    std::set<std::pair<uint32_t, uint32_t>> out;
    for (const auto& x : as) out.emplace(x.task().task_index(), x.task().attempt());
    return out;
  };
  EXPECT_EQ(a.channel->Count(v1::CoordinatorMessage::kCancel), 1);
  EXPECT_EQ(refs(a.channel->cancelled()), expected(for_a));
  EXPECT_EQ(refs(b.channel->cancelled()), expected(for_b));
  for (const auto& r : a.channel->cancelled()) EXPECT_EQ(r.job_id(), sub.job_id());
  EXPECT_THAT(idle.channel->cancelled(), IsEmpty());
  EXPECT_EQ(Info("a").running(), 0u);
  EXPECT_EQ(Info("a").assigned(), 0u);
  EXPECT_EQ(Info("b").assigned(), 0u);

  ASSERT_OK_AND_ASSIGN(auto report, coord_->GetReport(sub.job_id(), true));
  EXPECT_EQ(report.state(), v1::JOB_STATE_CANCELLED);
  EXPECT_EQ(report.tasks_cancelled(), 4u);
  EXPECT_DOUBLE_EQ(report.timing().wall_seconds(), 2.0);
  ASSERT_FALSE(updates.empty());
  EXPECT_TRUE(updates.back().has_report());
  EXPECT_EQ(updates.back().state(), v1::JOB_STATE_CANCELLED);

  EXPECT_THAT(coord_->Cancel(sub.job_id()),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("CANCELLED")));
  EXPECT_THAT(coord_->Cancel("j-00000000"), StatusIs(absl::StatusCode::kNotFound, HasSubstr("j-00000000")));

  // The worker's late answer to the cancel changes nothing.
  ASSERT_OK(Result(a, MakeResult(for_a[0], v1::TASK_STATE_CANCELLED, kSecond, 2 * kSecond)));
  ASSERT_OK(Succeed(b, for_b[0]));
  ASSERT_OK_AND_ASSIGN(report, coord_->GetReport(sub.job_id(), true));
  EXPECT_EQ(report.state(), v1::JOB_STATE_CANCELLED);
  EXPECT_EQ(report.tasks_cancelled(), 4u);
  EXPECT_EQ(report.tasks_succeeded(), 0u);
  EXPECT_EQ(report.retries(), 0u);
  for (const auto& t : report.tasks()) EXPECT_EQ(t.state(), v1::TASK_STATE_CANCELLED);
  EXPECT_THAT(a.channel->TakeNew(), IsEmpty());  // nothing requeued
  EXPECT_THAT(b.channel->TakeNew(), IsEmpty());
  EXPECT_EQ(Info("a").running(), 0u);
}

// docs/design.md: "A result is accepted once per task; a late duplicate ... is
// recorded as such and ignored."
TEST_F(CoordinatorTest, LateResultAfterCancelIsAcceptedOnlyOnce) {
  ASSERT_OK_AND_ASSIGN(FakeWorker w, Attach("w", 1));
  ASSERT_OK_AND_ASSIGN(auto sub, coord_->Submit(Countdown(1)));
  const v1::Assignment x = w.channel->TakeNew().at(0);
  ASSERT_OK(coord_->Cancel(sub.job_id()));
  // The worker's answer to the cancel: 1s of work, recorded for the report.
  ASSERT_OK(Result(w, MakeResult(x, v1::TASK_STATE_CANCELLED, 0, kSecond)));
  ASSERT_OK_AND_ASSIGN(auto report, coord_->GetReport(sub.job_id(), true));
  EXPECT_DOUBLE_EQ(report.tasks(0).seconds(), 1.0);
  ASSERT_OK_AND_ASSIGN(JobRecord stored, store_.LoadJob(sub.job_id()));
  EXPECT_EQ(stored.duplicates, 0u);
  // The same attempt's result again: a duplicate, recorded and ignored.
  ASSERT_OK(Result(w, MakeResult(x, v1::TASK_STATE_SUCCEEDED, 0, 5 * kSecond)));
  ASSERT_OK_AND_ASSIGN(stored, store_.LoadJob(sub.job_id()));
  EXPECT_EQ(stored.duplicates, 1u);
  ASSERT_OK_AND_ASSIGN(report, coord_->GetReport(sub.job_id(), true));
  EXPECT_EQ(report.state(), v1::JOB_STATE_CANCELLED);
  EXPECT_EQ(report.tasks(0).state(), v1::TASK_STATE_CANCELLED);
  EXPECT_DOUBLE_EQ(report.tasks(0).seconds(), 1.0);
  EXPECT_EQ(report.workers(0).iterations(), 0u);
}

TEST_F(CoordinatorTest, CancelOfFinishedJobIsFailedPrecondition) {
  ASSERT_OK_AND_ASSIGN(FakeWorker w, Attach("w", 1));
  ASSERT_OK_AND_ASSIGN(auto sub, coord_->Submit(Countdown(1)));
  ASSERT_OK(Succeed(w, w.channel->TakeNew().at(0)));
  EXPECT_THAT(coord_->Cancel(sub.job_id()),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("SUCCEEDED")));
  ASSERT_OK_AND_ASSIGN(auto report, coord_->GetReport(sub.job_id(), false));
  EXPECT_EQ(report.state(), v1::JOB_STATE_SUCCEEDED);
}

TEST_F(CoordinatorTest, CancelOfQueuedJobSendsNoCancels) {
  ASSERT_OK_AND_ASSIGN(auto sub, coord_->Submit(Countdown(2)));
  std::vector<v1::JobProgress> updates;
  ASSERT_OK(coord_->Watch(sub.job_id(), false,
                          [&updates](const v1::JobProgress& p) { updates.push_back(p); }));
  ASSERT_OK_AND_ASSIGN(v1::JobState state, coord_->Cancel(sub.job_id()));
  EXPECT_EQ(state, v1::JOB_STATE_CANCELLED);
  ASSERT_THAT(updates, SizeIs(2));
  EXPECT_EQ(updates[0].state(), v1::JOB_STATE_PENDING);
  EXPECT_TRUE(updates[1].has_report());
  EXPECT_EQ(updates[1].report().state(), v1::JOB_STATE_CANCELLED);
  ASSERT_OK_AND_ASSIGN(FakeWorker w, Attach("w", 1));
  EXPECT_THAT(w.channel->assignments(), IsEmpty());
  ASSERT_OK_AND_ASSIGN(auto report, coord_->GetReport(sub.job_id(), false));
  EXPECT_EQ(report.tasks_cancelled(), 2u);
}

// --- Scheduling through the coordinator ---

TEST_F(CoordinatorTest, TwoJobsBackToBackBothGetTasksInFlight) {
  ASSERT_OK_AND_ASSIGN(FakeWorker a, Attach("a", 1));
  ASSERT_OK_AND_ASSIGN(FakeWorker b, Attach("b", 1));
  ASSERT_OK_AND_ASSIGN(auto first, coord_->Submit(Countdown(4)));
  ASSERT_OK_AND_ASSIGN(auto second, coord_->Submit(Countdown(4)));
  std::map<std::string, int> per_job;
  for (FakeWorker* w : {&a, &b}) {
    for (const auto& x : w->channel->TakeNew()) ++per_job[x.task().job_id()];
  }
  // 2 x (1 slot + prefetch 2) = 6 credits: 4 to the first job, 2 to the second.
  EXPECT_EQ(per_job[first.job_id()], 4);
  EXPECT_EQ(per_job[second.job_id()], 2);
}

TEST_F(CoordinatorTest, LosingAWorkerThatFailsAJobCancelsItsOtherTasks) {
  ASSERT_OK_AND_ASSIGN(FakeWorker a, Attach("a", 1));
  ASSERT_OK_AND_ASSIGN(FakeWorker b, Attach("b", 1));
  v1::JobSpec spec = Countdown(2);
  spec.set_max_attempts(1);
  ASSERT_OK_AND_ASSIGN(auto sub, coord_->Submit(spec));
  const auto for_a = a.channel->TakeNew();
  const auto for_b = b.channel->TakeNew();
  ASSERT_THAT(for_a, SizeIs(1));
  ASSERT_THAT(for_b, SizeIs(1));
  ASSERT_OK(Started(b, for_b[0], 0, kSecond));
  coord_->Detach(a.session, absl::UnavailableError("reset"));
  ASSERT_OK_AND_ASSIGN(auto report, coord_->GetReport(sub.job_id(), false));
  EXPECT_EQ(report.state(), v1::JOB_STATE_FAILED);
  EXPECT_THAT(report.error(), AllOf(HasSubstr(absl::StrCat("task ", for_a[0].task().task_index())),
                                    HasSubstr("1 of 1"), HasSubstr("worker a (reset)")));
  EXPECT_EQ(report.tasks_failed(), 1u);
  EXPECT_EQ(report.tasks_cancelled(), 1u);
  const auto cancels = b.channel->cancelled();
  ASSERT_THAT(cancels, SizeIs(1));
  EXPECT_EQ(cancels[0].task_index(), for_b[0].task().task_index());
  EXPECT_EQ(Info("b").running(), 0u);
  EXPECT_THAT(b.channel->TakeNew(), IsEmpty());
}

TEST_F(CoordinatorTest, GoneWorkersAreKeptUpToTheLimit) {
  Coordinator::Options o = Defaults();
  o.keep_gone_workers = 1;
  Start(o);
  ASSERT_OK_AND_ASSIGN(FakeWorker a, Attach("a", 1));
  ASSERT_OK_AND_ASSIGN(FakeWorker b, Attach("b", 1));
  ASSERT_OK_AND_ASSIGN(FakeWorker c, Attach("c", 1));
  coord_->Detach(a.session, absl::OkStatus());
  coord_->Detach(b.session, absl::OkStatus());
  const auto all = coord_->ListWorkers(true);
  ASSERT_THAT(all, SizeIs(2));
  EXPECT_EQ(all[0].name(), "c");
  EXPECT_EQ(all[1].name(), "b");
  EXPECT_EQ(all[1].state(), v1::WORKER_STATE_GONE);
}

TEST_F(CoordinatorTest, SelectorPlacesTasksOnMatchingWorkers) {
  auto labelled = std::make_shared<FakeChannel>();
  v1::Hello hello = MakeHello("gpu", 1);
  (*hello.mutable_labels())["zone"] = "b";
  ASSERT_OK(coord_->Attach(hello, "p", labelled));
  ASSERT_OK_AND_ASSIGN(FakeWorker plain, Attach("plain", 1));
  v1::JobSpec spec = Countdown(2);
  (*spec.mutable_selector())["zone"] = "b";
  ASSERT_OK(coord_->Submit(spec));
  EXPECT_THAT(labelled->TakeNew(), SizeIs(2));
  EXPECT_THAT(plain.channel->TakeNew(), IsEmpty());
}

TEST_F(CoordinatorTest, TwoJobsShareTheFleet) {
  Coordinator::Options o = Defaults();
  o.prefetch_per_worker = 0;
  Start(o);
  ASSERT_OK_AND_ASSIGN(FakeWorker a, Attach("a", 1));
  ASSERT_OK_AND_ASSIGN(FakeWorker b, Attach("b", 1));
  ASSERT_OK_AND_ASSIGN(auto first, coord_->Submit(Countdown(4)));
  ASSERT_OK_AND_ASSIGN(auto second, coord_->Submit(Countdown(4)));

  std::map<std::string, std::vector<std::pair<FakeWorker*, v1::Assignment>>> in_flight;
  auto collect = [&] {
    for (FakeWorker* w : {&a, &b}) {
      for (const auto& x : w->channel->TakeNew()) in_flight[x.task().job_id()].emplace_back(w, x);
    }
  };
  collect();
  ASSERT_THAT(in_flight[first.job_id()], SizeIs(2));  // it came first and took both slots
  ASSERT_THAT(in_flight[second.job_id()], IsEmpty());

  // The slot freed by the first job's task goes to the second job.
  auto [w, x] = in_flight[first.job_id()].front();
  in_flight[first.job_id()].erase(in_flight[first.job_id()].begin());
  ASSERT_OK(Succeed(*w, x));
  collect();
  EXPECT_THAT(in_flight[first.job_id()], SizeIs(1));
  EXPECT_THAT(in_flight[second.job_id()], SizeIs(1));

  // From then on the two alternate: both always have a task in flight until
  // one runs out.
  for (int step = 0; step < 4; ++step) {
    const std::string& job = step % 2 == 0 ? first.job_id() : second.job_id();
    auto [w2, x2] = in_flight[job].front();
    in_flight[job].erase(in_flight[job].begin());
    ASSERT_OK(Succeed(*w2, x2));
    collect();
    EXPECT_THAT(in_flight[first.job_id()], SizeIs(1)) << "step " << step;
    EXPECT_THAT(in_flight[second.job_id()], SizeIs(1)) << "step " << step;
  }
}

TEST_F(CoordinatorTest, MaxSlotsOneRunsOneTaskAtATime) {
  ASSERT_OK_AND_ASSIGN(FakeWorker a, Attach("a", 2));
  ASSERT_OK_AND_ASSIGN(FakeWorker b, Attach("b", 2));
  v1::JobSpec spec = Countdown(4);
  spec.set_max_slots(1);
  ASSERT_OK_AND_ASSIGN(auto sub, coord_->Submit(spec));
  std::set<uint32_t> seen;
  for (int step = 0; step < 4; ++step) {
    auto for_a = a.channel->TakeNew();
    auto for_b = b.channel->TakeNew();
    ASSERT_EQ(for_a.size() + for_b.size(), 1u) << "step " << step;
    FakeWorker& w = for_a.empty() ? b : a;
    const v1::Assignment x = for_a.empty() ? for_b[0] : for_a[0];
    EXPECT_TRUE(seen.insert(x.task().task_index()).second);
    ASSERT_OK(Started(w, x, 0, kSecond));
    EXPECT_THAT(a.channel->TakeNew(), IsEmpty());
    EXPECT_THAT(b.channel->TakeNew(), IsEmpty());
    ASSERT_OK(Succeed(w, x));
  }
  EXPECT_EQ(seen, (std::set<uint32_t>{0, 1, 2, 3}));
  ASSERT_OK_AND_ASSIGN(auto report, coord_->GetReport(sub.job_id(), false));
  EXPECT_EQ(report.state(), v1::JOB_STATE_SUCCEEDED);
}

TEST_F(CoordinatorTest, TasksAutoUsesFreeSlots) {
  v1::JobSpec spec;
  spec.set_kind(v1::TASK_KIND_COUNTDOWN);
  spec.set_iterations(100);
  spec.set_tasks_auto(true);
  EXPECT_THAT(coord_->Submit(spec), StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("worker")));

  ASSERT_OK_AND_ASSIGN(FakeWorker a, Attach("a", 2));
  ASSERT_OK_AND_ASSIGN(FakeWorker b, Attach("b", 2));
  ASSERT_OK_AND_ASSIGN(auto sub, coord_->Submit(spec));
  EXPECT_EQ(sub.tasks(), 4u);
  EXPECT_THAT(a.channel->TakeNew(), SizeIs(2));
  EXPECT_THAT(b.channel->TakeNew(), SizeIs(2));

  // Every slot is busy now: auto falls back to the fleet's size.
  ASSERT_OK_AND_ASSIGN(auto sub2, coord_->Submit(spec));
  EXPECT_EQ(sub2.tasks(), 4u);
}

TEST_F(CoordinatorTest, SpinJobAssignmentsCarryDurationAndTimeout) {
  ASSERT_OK_AND_ASSIGN(FakeWorker w, Attach("w", 1));
  v1::JobSpec spec;
  spec.set_kind(v1::TASK_KIND_SPIN);
  spec.set_tasks(1);
  spec.mutable_duration()->set_nanos(250'000'000);
  spec.mutable_task_timeout()->set_seconds(3);
  spec.set_exec(v1::EXEC_MODE_PROCESS);
  ASSERT_OK(coord_->Submit(spec));
  const auto as = w.channel->TakeNew();
  ASSERT_THAT(as, SizeIs(1));
  EXPECT_EQ(as[0].kind(), v1::TASK_KIND_SPIN);
  EXPECT_EQ(as[0].duration().nanos(), 250'000'000);
  EXPECT_EQ(as[0].timeout().seconds(), 3);
  EXPECT_EQ(as[0].exec(), v1::EXEC_MODE_PROCESS);
}

// --- Client API errors ---

TEST_F(CoordinatorTest, ListJobsIsNewestFirst) {
  ASSERT_OK_AND_ASSIGN(auto j1, coord_->Submit(Countdown(1, 1, "first")));
  clock_.Advance(absl::Seconds(1));
  ASSERT_OK_AND_ASSIGN(auto j2, coord_->Submit(Countdown(2, 1, "second")));
  clock_.Advance(absl::Seconds(1));
  ASSERT_OK_AND_ASSIGN(auto j3, coord_->Submit(Countdown(3, 1)));  // unnamed: named after its id
  ASSERT_OK_AND_ASSIGN(auto jobs, coord_->ListJobs(0));
  ASSERT_THAT(jobs, SizeIs(3));
  EXPECT_EQ(jobs[0].id(), j3.job_id());
  EXPECT_EQ(jobs[0].name(), j3.job_id());
  EXPECT_EQ(jobs[0].tasks(), 3u);
  EXPECT_EQ(jobs[1].id(), j2.job_id());
  EXPECT_EQ(jobs[1].name(), "second");
  EXPECT_EQ(jobs[2].id(), j1.job_id());
  EXPECT_EQ(jobs[2].name(), "first");
  EXPECT_DOUBLE_EQ(jobs[2].wall_seconds(), 2.0);
  EXPECT_EQ(jobs[2].state(), v1::JOB_STATE_PENDING);
  ASSERT_OK_AND_ASSIGN(jobs, coord_->ListJobs(2));
  ASSERT_THAT(jobs, SizeIs(2));
  EXPECT_EQ(jobs[1].id(), j2.job_id());
  EXPECT_THAT(coord_->ListJobs(1001), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("limit")));
}

TEST_F(CoordinatorTest, GetReportOfUnknownJobIsNotFound) {
  EXPECT_THAT(coord_->GetReport("j-deadbeef", true),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("j-deadbeef")));
}

TEST_F(CoordinatorTest, SubmitRejectsInvalidSpecNamingTheField) {
  EXPECT_THAT(coord_->Submit(Countdown(0)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("tasks must be between 1 and")));
  v1::JobSpec spec = Countdown(1);
  spec.set_max_attempts(101);
  EXPECT_THAT(coord_->Submit(spec),
              StatusIs(absl::StatusCode::kInvalidArgument, AllOf(HasSubstr("max_attempts"), HasSubstr("100"))));
  spec = Countdown(1);
  spec.set_kind(v1::TASK_KIND_UNSPECIFIED);
  EXPECT_THAT(coord_->Submit(spec), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("kind")));
  spec = Countdown(1);
  spec.set_iterations(10'000'000'000'001ULL);
  EXPECT_THAT(coord_->Submit(spec), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("iterations")));
  ASSERT_OK_AND_ASSIGN(auto jobs, coord_->ListJobs(0));
  EXPECT_THAT(jobs, IsEmpty());  // nothing was created
}

TEST_F(CoordinatorTest, ShutdownRefusesNewWorkAndClosesStreams) {
  ASSERT_OK_AND_ASSIGN(FakeWorker w, Attach("w", 1));
  coord_->Shutdown();
  ASSERT_THAT(w.channel->closes(), SizeIs(1));
  EXPECT_EQ(w.channel->closes()[0].code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(coord_->Submit(Countdown(1)), StatusIs(absl::StatusCode::kUnavailable, HasSubstr("shutting down")));
  auto ch = std::make_shared<FakeChannel>();
  EXPECT_THAT(coord_->Attach(MakeHello("late", 1), "p", ch),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("shutting down")));
  coord_->Shutdown();  // idempotent
  EXPECT_THAT(w.channel->closes(), SizeIs(1));
}

// --- Timing ---

TEST_F(CoordinatorTest, TimingUsesTheWorkersClockOffset) {
  ASSERT_OK_AND_ASSIGN(FakeWorker w, Attach("w", 1));
  ASSERT_OK_AND_ASSIGN(auto sub, coord_->Submit(Countdown(1)));
  const absl::Time submitted = clock_.Now();
  const v1::Assignment a = w.channel->TakeNew().at(0);

  // The worker's monotonic clock reads 50s when ours reads `submitted`.
  const int64_t worker_mono_at_submit = 50 * kSecond;
  const int64_t offset = absl::ToUnixNanos(submitted) - worker_mono_at_submit;
  ASSERT_OK(Heartbeat(w, 1, worker_mono_at_submit, true, offset));

  const int64_t start = worker_mono_at_submit + 250'000'000;  // 0.25s after submit
  const int64_t end = start + 1'234'567'891;
  ASSERT_OK(Started(w, a, 3, start));
  clock_.Advance(absl::Seconds(2));
  v1::TaskResult r = MakeResult(a, v1::TASK_STATE_SUCCEEDED, start, end, "", 3);
  r.set_cpu_ns(1'000'000'000);
  ASSERT_OK(Result(w, r));

  ASSERT_OK_AND_ASSIGN(auto report, coord_->GetReport(sub.job_id(), true));
  ASSERT_EQ(report.state(), v1::JOB_STATE_SUCCEEDED);
  ASSERT_THAT(report.tasks(), SizeIs(1));
  const v1::TaskTiming& t = report.tasks(0);
  EXPECT_DOUBLE_EQ(t.seconds(), 1'234'567'891 / 1e9);
  EXPECT_DOUBLE_EQ(t.start_offset_seconds(), 0.25);
  EXPECT_DOUBLE_EQ(t.cpu_seconds(), 1.0);
  EXPECT_EQ(t.slot(), 3u);
  EXPECT_DOUBLE_EQ(t.result_seconds(), 2.0 - 0.25 - 1.234567891);
  const absl::Time expected_start = submitted + absl::Milliseconds(250);
  EXPECT_EQ(report.timing().started_at().seconds(), absl::ToUnixSeconds(expected_start));
  EXPECT_EQ(report.timing().started_at().nanos(), 250'000'000);
  EXPECT_DOUBLE_EQ(report.timing().wall_seconds(), 2.0);
  EXPECT_DOUBLE_EQ(report.timing().makespan_seconds(), 1.234567891);
  EXPECT_DOUBLE_EQ(report.timing().overhead_seconds(), 2.0 - 1.234567891);
}

// The offset estimate is good to half a round trip only: a run it would
// put before its assignment, or ending after its result came in, is moved
// to lie between the two, its length kept.
TEST_F(CoordinatorTest, AnOffClockOffsetStillPutsTheRunBetweenAssignmentAndResult) {
  ASSERT_OK_AND_ASSIGN(FakeWorker w, Attach("w", 1));
  const int64_t worker_mono_at_submit = 50 * kSecond;
  const int64_t ran = 1'234'567'891;
  struct Case {
    const char* what;
    int64_t offset_error_ns;      // how wrong the worker's offset is
    double want_start_offset_s;   // after the assignment (at submit)
  };
  for (const Case& c : {Case{"offset 1 s early: before its assignment", -kSecond, 0.0},
                        Case{"offset 1.5 s late: past its result", 3 * kSecond / 2, 2.0 - 1.234567891}}) {
    SCOPED_TRACE(c.what);
    ASSERT_OK_AND_ASSIGN(auto sub, coord_->Submit(Countdown(1)));
    const absl::Time submitted = clock_.Now();
    const v1::Assignment a = w.channel->TakeNew().at(0);
    const int64_t offset = absl::ToUnixNanos(submitted) - worker_mono_at_submit + c.offset_error_ns;
    ASSERT_OK(Heartbeat(w, 1, worker_mono_at_submit, true, offset));
    const int64_t start = worker_mono_at_submit + 250'000'000;  // truly 0.25 s after submit
    clock_.Advance(absl::Seconds(2));
    ASSERT_OK(Result(w, MakeResult(a, v1::TASK_STATE_SUCCEEDED, start, start + ran, "", 0)));
    ASSERT_OK_AND_ASSIGN(auto report, coord_->GetReport(sub.job_id(), true));
    ASSERT_THAT(report.tasks(), SizeIs(1));
    const v1::TaskTiming& t = report.tasks(0);
    EXPECT_DOUBLE_EQ(t.seconds(), ran / 1e9);
    EXPECT_NEAR(t.start_offset_seconds(), c.want_start_offset_s, 1e-9);
    EXPECT_NEAR(t.result_seconds(), 2.0 - c.want_start_offset_s - ran / 1e9, 1e-9);
  }
}

TEST_F(CoordinatorTest, TimingWithoutOffsetEndsAtTheResult) {
  ASSERT_OK_AND_ASSIGN(FakeWorker w, Attach("w", 1));
  ASSERT_OK_AND_ASSIGN(auto sub, coord_->Submit(Countdown(1)));
  const v1::Assignment a = w.channel->TakeNew().at(0);
  clock_.Advance(absl::Seconds(3));
  ASSERT_OK(Succeed(w, a, 900 * kSecond, 901 * kSecond + 500'000'000));  // 1.5s
  ASSERT_OK_AND_ASSIGN(auto report, coord_->GetReport(sub.job_id(), true));
  EXPECT_DOUBLE_EQ(report.tasks(0).seconds(), 1.5);
  EXPECT_DOUBLE_EQ(report.tasks(0).start_offset_seconds(), 1.5);  // 3s - 1.5s
  EXPECT_DOUBLE_EQ(report.timing().wall_seconds(), 3.0);
}

// --- Recovery ---

TEST_F(CoordinatorTest, RestartRequeuesUnfinishedTasksAndUnclaimedHeldOnes) {
  Coordinator::Options o = Defaults();
  o.prefetch_per_worker = 0;
  Start(o);
  std::string done_job, open_job;
  {
    ASSERT_OK_AND_ASSIGN(FakeWorker w, Attach("old", 1));
    ASSERT_OK_AND_ASSIGN(auto j1, coord_->Submit(Countdown(1, 7, "done")));
    done_job = j1.job_id();
    ASSERT_OK(Succeed(w, w.channel->TakeNew().at(0)));
    ASSERT_OK_AND_ASSIGN(auto j2, coord_->Submit(Countdown(4, 7, "open")));
    open_job = j2.job_id();
    const v1::Assignment t0 = w.channel->TakeNew().at(0);
    EXPECT_EQ(t0.task().task_index(), 0u);
    ASSERT_OK(Succeed(w, t0));
    // After the first result (1 s tasks): task 1 for the slot and task 2
    // ready behind it (2 queued, more than the fleet's 1 slot); task 3 waits.
    const auto next = w.channel->TakeNew();
    ASSERT_THAT(next, SizeIs(2));
    EXPECT_EQ(next[0].task().task_index(), 1u);
    EXPECT_EQ(next[1].task().task_index(), 2u);
    ASSERT_OK(Started(w, next[0], 0, kSecond));  // running when the coordinator dies
  }
  coord_.reset();  // crash: no Shutdown, no Detach

  Start(o);
  ASSERT_OK_AND_ASSIGN(auto finished, coord_->GetReport(done_job, true));
  EXPECT_EQ(finished.state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(finished.tasks_succeeded(), 1u);
  EXPECT_EQ(finished.tasks(0).worker(), "old");
  ASSERT_OK_AND_ASSIGN(auto open, coord_->GetReport(open_job, true));
  EXPECT_EQ(open.state(), v1::JOB_STATE_RUNNING);
  EXPECT_EQ(open.tasks_succeeded(), 1u);
  // Tasks 1 and 2 are held for "old" (they may still run there) until the
  // grace ends; task 3 was never assigned.
  EXPECT_EQ(open.tasks(1).state(), v1::TASK_STATE_RUNNING);
  EXPECT_EQ(open.tasks(2).state(), v1::TASK_STATE_ASSIGNED);
  EXPECT_EQ(open.tasks(3).state(), v1::TASK_STATE_QUEUED);
  clock_.Advance(o.worker_timeout);
  coord_->CheckLiveness();
  ASSERT_OK_AND_ASSIGN(open, coord_->GetReport(open_job, true));
  EXPECT_EQ(open.tasks(1).state(), v1::TASK_STATE_QUEUED);
  EXPECT_EQ(open.tasks(2).state(), v1::TASK_STATE_QUEUED);
  EXPECT_EQ(open.retries(), 0u);  // the restart is not the tasks' fault
  ASSERT_OK_AND_ASSIGN(auto jobs, coord_->ListJobs(0));
  ASSERT_THAT(jobs, SizeIs(2));
  EXPECT_EQ(jobs[0].id(), open_job);
  EXPECT_EQ(jobs[1].id(), done_job);

  ASSERT_OK_AND_ASSIGN(FakeWorker fresh, Attach("new", 2));
  auto as = fresh.channel->TakeNew();
  ASSERT_THAT(as, SizeIs(2));  // task 0 already succeeded; the slots only
  std::sort(as.begin(), as.end(), [](const v1::Assignment& a, const v1::Assignment& b) {
    return a.task().task_index() < b.task().task_index();
  });
  EXPECT_EQ(as[0].task().job_id(), open_job);
  EXPECT_EQ(as[0].task().task_index(), 1u);
  EXPECT_EQ(as[0].task().attempt(), 2u);  // attempt 1 ran before the crash
  EXPECT_EQ(as[1].task().task_index(), 2u);
  EXPECT_EQ(as[1].task().attempt(), 2u);  // attempt 1 was handed out before the crash
  ASSERT_OK(Succeed(fresh, as[0]));
  ASSERT_OK(Succeed(fresh, as[1]));
  as = fresh.channel->TakeNew();
  ASSERT_THAT(as, SizeIs(1));
  EXPECT_EQ(as[0].task().task_index(), 3u);
  EXPECT_EQ(as[0].task().attempt(), 1u);  // never assigned before
  ASSERT_OK(Succeed(fresh, as[0]));
  ASSERT_OK_AND_ASSIGN(open, coord_->GetReport(open_job, true));
  EXPECT_EQ(open.state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(open.tasks_succeeded(), 4u);
  EXPECT_EQ(open.tasks(0).worker(), "old");
  EXPECT_EQ(open.tasks(1).worker(), "new");
  // A new job id never collides with a stored one, and cancel of a finished
  // stored job is FailedPrecondition.
  EXPECT_THAT(coord_->Cancel(done_job), StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("SUCCEEDED")));
}

TEST_F(CoordinatorTest, EvictedFinishedJobsAreReadFromTheStore) {
  Coordinator::Options o = Defaults();
  o.keep_finished_jobs = 0;
  Start(o);
  ASSERT_OK_AND_ASSIGN(FakeWorker w, Attach("w", 1));
  ASSERT_OK_AND_ASSIGN(auto sub, coord_->Submit(Countdown(2)));
  const auto as = w.channel->TakeNew();
  ASSERT_OK(Succeed(w, as[0], 0, kSecond));
  ASSERT_OK(Succeed(w, as[1], 0, 3 * kSecond));
  ASSERT_OK_AND_ASSIGN(auto report, coord_->GetReport(sub.job_id(), true));
  EXPECT_EQ(report.state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(report.tasks_succeeded(), 2u);
  EXPECT_DOUBLE_EQ(report.timing().serial_seconds(), 4.0);
  ASSERT_OK_AND_ASSIGN(auto jobs, coord_->ListJobs(0));
  ASSERT_THAT(jobs, SizeIs(1));
  EXPECT_EQ(jobs[0].state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(jobs[0].tasks_done(), 2u);
  EXPECT_THAT(coord_->Cancel(sub.job_id()), StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("SUCCEEDED")));
  // A late duplicate for an evicted job is harmless.
  EXPECT_OK(Succeed(w, as[0]));
}

// --- Idempotency under concurrency ---

TEST_F(CoordinatorTest, SameResultHandledConcurrentlyCountsOnce) {
  ASSERT_OK_AND_ASSIGN(FakeWorker w, Attach("w", 4));
  ASSERT_OK_AND_ASSIGN(auto sub, coord_->Submit(Countdown(4)));
  const auto as = w.channel->TakeNew();
  ASSERT_THAT(as, SizeIs(4));
  std::vector<std::thread> threads;
  for (int copy = 0; copy < 8; ++copy) {
    threads.emplace_back([&] {
      for (const v1::Assignment& a : as) EXPECT_OK(Succeed(w, a));
    });
  }
  for (std::thread& t : threads) t.join();
  ASSERT_OK_AND_ASSIGN(v1::JobReport r, coord_->GetReport(sub.job_id(), true));
  EXPECT_EQ(r.state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(r.tasks_succeeded(), 4u);
  EXPECT_EQ(r.duplicates(), 28u);
  for (const v1::TaskTiming& t : r.tasks()) EXPECT_EQ(t.attempt(), 1u);
}

TEST_F(CoordinatorTest, TooMuchQueuedWorkIsRefusedUntilJobsFinish) {
  Coordinator::Options o = Defaults();
  o.max_unfinished_tasks = 10;
  Start(o);
  ASSERT_OK_AND_ASSIGN(FakeWorker w, Attach("w", 1));
  ASSERT_OK_AND_ASSIGN(auto first, coord_->Submit(Countdown(8)));
  EXPECT_THAT(coord_->Submit(Countdown(3)),
              StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("the limit is 10")));
  ASSERT_OK(coord_->Submit(Countdown(2)).status());
  ASSERT_OK(coord_->Cancel(first.job_id()).status());
  EXPECT_OK(coord_->Submit(Countdown(8)).status());
}

// A store that holds a row for every task saved until it writes it, as the
// SQLite store's write queue does.
class RowQueueingStore final : public InMemoryJobStore {
 public:
  RowQueueingStore() : InMemoryJobStore(/*copy_task_rows=*/false) {}
  bool QueuesTaskRows() const override { return true; }
};

// Tiny tasks go out by the thousands a worker once their time is known:
// 65,536 per 5 ms of work with a store that holds no row per task in
// flight, 4,096 with one that does (every task in flight is a row queued).
TEST_F(CoordinatorTest, TinyTasksInFlightAreCappedByWhatTheStoreHoldsForEach) {
  for (const bool queues_rows : {false, true}) {
    SCOPED_TRACE(queues_rows ? "a store that queues rows" : ":memory:");
    RowQueueingStore queueing;
    Coordinator::Options o = Defaults();
    if (queues_rows) o.store = &queueing;
    Start(o);
    ASSERT_OK_AND_ASSIGN(FakeWorker w, Attach("w", 4));
    ASSERT_OK(coord_->Submit(Countdown(100'000, 0)).status());
    std::vector<v1::Assignment> first = w.channel->TakeNew();
    ASSERT_EQ(first.size(), 4u + 2u) << "no timing yet: the slots and the configured prefetch";
    // One result of 100 ns: 5 ms of such work a slot is 200,000 tasks.
    ASSERT_OK(Succeed(w, first[0], kSecond, kSecond + 100));
    const size_t cap = queues_rows ? Scheduler::kMaxAdaptivePrefetch : Scheduler::kMaxAdaptivePrefetchRowless;
    EXPECT_EQ(first.size() - 1 + w.channel->TakeNew().size(), 4 + cap);
    coord_.reset();  // before the store it uses
  }
}

// Counts the task indices each SaveJob is handed.
class IndexCountingStore final : public InMemoryJobStore {
 public:
  explicit IndexCountingStore(bool copy_task_rows) : InMemoryJobStore(copy_task_rows) {}
  absl::Status SaveJob(const JobRecord& job, const std::vector<uint32_t>& changed_tasks) override {
    indices_ += changed_tasks.size();
    ++saves_;
    return InMemoryJobStore::SaveJob(job, changed_tasks);
  }
  size_t indices() const { return indices_; }
  size_t saves() const { return saves_; }

 private:
  std::atomic<size_t> indices_{0};
  std::atomic<size_t> saves_{0};
};

// `--db :memory:` keeps no task rows: the coordinator does not list the
// tasks that changed for it (a push a deal and a result, and a sort at each
// flush, for nothing), yet saves the job's header at each flush and tells
// its watchers as before. A store that keeps rows gets every one.
TEST_F(CoordinatorTest, AStoreWithoutTaskRowsIsNotHandedTheirIndices) {
  for (const bool keeps_rows : {false, true}) {
    SCOPED_TRACE(keeps_rows ? "a store that keeps rows" : ":memory:");
    IndexCountingStore store(keeps_rows);
    ASSERT_EQ(store.KeepsTaskRows(), keeps_rows);
    Coordinator::Options o = Defaults();
    o.store = &store;
    Start(o);
    ASSERT_OK_AND_ASSIGN(FakeWorker w, Attach("w", 1));
    ASSERT_OK_AND_ASSIGN(auto sub, coord_->Submit(Countdown(3)));
    std::vector<v1::JobProgress> updates;
    ASSERT_OK(coord_->Watch(sub.job_id(), false, [&](const v1::JobProgress& p) { updates.push_back(p); }).status());
    for (int done = 0; done < 3;) {
      const std::vector<v1::Assignment> got = w.channel->TakeNew();
      ASSERT_FALSE(got.empty()) << "no assignment after " << done << " results";
      for (const v1::Assignment& a : got) {
        ASSERT_OK(Succeed(w, a));
        ++done;
      }
    }
    ASSERT_OK_AND_ASSIGN(auto report, coord_->GetReport(sub.job_id(), false));
    EXPECT_EQ(report.state(), v1::JOB_STATE_SUCCEEDED);
    EXPECT_EQ(report.tasks_succeeded(), 3u);
    EXPECT_GE(store.saves(), 2u) << "the job's header is saved at each flush";
    ASSERT_FALSE(updates.empty());
    EXPECT_TRUE(updates.back().has_report()) << "its watcher is told the job ended";
    // Each task's deal and result: all three, at least once.
    if (keeps_rows) {
      EXPECT_GE(store.indices(), 3u);
    } else {
      EXPECT_EQ(store.indices(), 0u);
    }
    coord_.reset();  // before the store it uses
  }
}

}  // namespace
}  // namespace busyfleet::coordinator
