// Unit tests of the Coordinator's progress watches: the first update, the
// rate limit, the final report.
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/unit/coordinator_fixture.h"

namespace busyfleet::coordinator {
namespace {

// --- Watch ---

TEST_F(CoordinatorTest, WatchOfFinishedJobGetsOnlyTheFinalUpdate) {
  ASSERT_OK_AND_ASSIGN(FakeWorker w, Attach("w", 1));
  ASSERT_OK_AND_ASSIGN(auto sub, coord_->Submit(Countdown(1)));
  ASSERT_OK(Succeed(w, w.channel->TakeNew().at(0)));
  std::vector<v1::JobProgress> updates;
  ASSERT_OK(coord_->Watch(sub.job_id(), false,
                          [&updates](const v1::JobProgress& p) { updates.push_back(p); }));
  ASSERT_THAT(updates, SizeIs(1));
  EXPECT_EQ(updates[0].state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_TRUE(updates[0].has_report());
  EXPECT_THAT(updates[0].report().tasks(), IsEmpty());  // include_tasks = false
  EXPECT_THAT(coord_->Watch("j-nope", false, [](const v1::JobProgress&) {}),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("j-nope")));
}

TEST_F(CoordinatorTest, TheEndedJobsReportReachesOnJobFinishedWithOrWithoutWatchers) {
  // on_job_finished (the server's log line) reuses the report built for the
  // watchers when there are any: it must say what theirs says.
  std::vector<v1::JobReport> finished;
  Coordinator::Options o = Defaults();
  o.on_job_finished = [&finished](const v1::JobReport& r) { finished.push_back(r); };
  Start(o);
  ASSERT_OK_AND_ASSIGN(FakeWorker w, Attach("w", 1));
  for (int watchers : {0, 1, 2}) {
    SCOPED_TRACE(absl::StrCat(watchers, " watchers"));
    finished.clear();
    ASSERT_OK_AND_ASSIGN(auto sub, coord_->Submit(Countdown(3)));
    const auto as = w.channel->TakeNew();
    ASSERT_THAT(as, SizeIs(3));
    std::vector<v1::JobProgress> updates;
    for (int i = 0; i < watchers; ++i) {
      // The second watcher asks for task rows: a report of another kind.
      ASSERT_OK(coord_->Watch(sub.job_id(), i == 1, [&updates](const v1::JobProgress& p) { updates.push_back(p); }));
    }
    ASSERT_OK(Succeed(w, as[0]));
    ASSERT_OK(Fail(w, as[1], "boom"));
    ASSERT_OK(Succeed(w, as[2]));
    EXPECT_THAT(finished, IsEmpty());
    const auto retry = w.channel->TakeNew();
    ASSERT_THAT(retry, SizeIs(1));
    ASSERT_OK(Succeed(w, retry[0]));
    ASSERT_THAT(finished, SizeIs(1));
    const v1::JobReport& r = finished[0];
    EXPECT_EQ(r.id(), sub.job_id());
    EXPECT_EQ(r.state(), v1::JOB_STATE_SUCCEEDED);
    EXPECT_EQ(r.tasks_total(), 3u);
    EXPECT_EQ(r.tasks_succeeded(), 3u);
    EXPECT_EQ(r.retries(), 1u);
    EXPECT_THAT(r.tasks(), IsEmpty()) << "the report without task rows, when one was built";
    for (const v1::JobProgress& p : updates) {
      if (!p.has_report()) continue;
      EXPECT_EQ(p.report().tasks_succeeded(), r.tasks_succeeded());
      EXPECT_EQ(p.report().timing().wall_seconds(), r.timing().wall_seconds());
      EXPECT_EQ(p.report().timing().efficiency(), r.timing().efficiency());
    }
  }
}

TEST_F(CoordinatorTest, ProgressIsRateLimitedButTheFinalUpdateIsNot) {
  // A burst of one, then one update per 100 ms.
  Coordinator::Options o = Defaults();
  o.progress_interval = absl::Milliseconds(100);
  o.progress_burst = 1;  // the first update (at Watch) spends it
  int wakeups = 0;
  o.request_check = [&wakeups] { ++wakeups; };
  Start(o);
  ASSERT_OK_AND_ASSIGN(FakeWorker w, Attach("w", 1));
  ASSERT_OK_AND_ASSIGN(auto sub, coord_->Submit(Countdown(3)));
  const auto as = w.channel->TakeNew();
  ASSERT_THAT(as, SizeIs(3));
  std::vector<v1::JobProgress> updates;
  ASSERT_OK(coord_->Watch(sub.job_id(), false, [&updates](const v1::JobProgress& p) { updates.push_back(p); }));
  ASSERT_THAT(updates, SizeIs(1));
  ASSERT_OK(Succeed(w, as[0]));
  ASSERT_OK(Succeed(w, as[1]));
  EXPECT_THAT(updates, SizeIs(1)) << "changes within the interval are held back";
  EXPECT_EQ(wakeups, 1) << "the liveness loop is asked to send it later, once";
  EXPECT_LE(coord_->CheckLiveness(), clock_.Mono() + absl::Milliseconds(100));
  clock_.Advance(absl::Milliseconds(100));
  coord_->CheckLiveness();
  ASSERT_THAT(updates, SizeIs(2));
  EXPECT_EQ(updates[1].tasks_done(), 2u) << "the newest progress, not a stale one";
  ASSERT_OK(Succeed(w, as[2]));
  ASSERT_THAT(updates, SizeIs(3)) << "the final update goes at once";
  EXPECT_TRUE(updates[2].has_report());
  EXPECT_EQ(updates[2].report().state(), v1::JOB_STATE_SUCCEEDED);
}

TEST_F(CoordinatorTest, DelayedFirstUpdateGoesWhenDue) {
  Coordinator::Options o = Defaults();
  int wakeups = 0;
  o.request_check = [&wakeups] { ++wakeups; };
  Start(o);
  ASSERT_OK_AND_ASSIGN(FakeWorker w, Attach("w", 1));
  ASSERT_OK_AND_ASSIGN(auto sub, coord_->Submit(Countdown(2)));
  const auto as = w.channel->TakeNew();
  ASSERT_THAT(as, SizeIs(2));
  std::vector<v1::JobProgress> updates;
  ASSERT_OK(coord_->Watch(
      sub.job_id(), false, [&updates](const v1::JobProgress& p) { updates.push_back(p); }, absl::Milliseconds(5)));
  EXPECT_THAT(updates, IsEmpty()) << "nothing before the delay";
  EXPECT_EQ(wakeups, 1) << "the liveness loop is asked to send it when due";
  ASSERT_OK(Succeed(w, as[0]));
  EXPECT_THAT(updates, IsEmpty()) << "a change within the delay is held back too";
  EXPECT_EQ(coord_->CheckLiveness(), clock_.Mono() + absl::Milliseconds(5));
  clock_.Advance(absl::Milliseconds(5));
  coord_->CheckLiveness();
  ASSERT_THAT(updates, SizeIs(1));
  EXPECT_EQ(updates[0].job_id(), sub.job_id());
  EXPECT_EQ(updates[0].tasks_done(), 1u) << "the newest progress";
  EXPECT_FALSE(updates[0].has_report());
  ASSERT_OK(Succeed(w, as[1]));
  ASSERT_THAT(updates, SizeIs(2));
  EXPECT_TRUE(updates[1].has_report());
}

TEST_F(CoordinatorTest, JobEndingWithinTheFirstUpdateDelaySendsOnlyItsReport) {
  ASSERT_OK_AND_ASSIGN(FakeWorker w, Attach("w", 1));
  ASSERT_OK_AND_ASSIGN(auto sub, coord_->Submit(Countdown(1)));
  const auto as = w.channel->TakeNew();
  ASSERT_THAT(as, SizeIs(1));
  std::vector<v1::JobProgress> updates;
  ASSERT_OK(coord_->Watch(
      sub.job_id(), false, [&updates](const v1::JobProgress& p) { updates.push_back(p); }, absl::Milliseconds(5)));
  ASSERT_OK(Succeed(w, as[0]));
  ASSERT_THAT(updates, SizeIs(1));
  EXPECT_EQ(updates[0].job_id(), sub.job_id());
  ASSERT_TRUE(updates[0].has_report());
  EXPECT_EQ(updates[0].report().state(), v1::JOB_STATE_SUCCEEDED);
  clock_.Advance(absl::Milliseconds(5));
  coord_->CheckLiveness();
  EXPECT_THAT(updates, SizeIs(1)) << "nothing after the final update";
}

}  // namespace
}  // namespace busyfleet::coordinator
