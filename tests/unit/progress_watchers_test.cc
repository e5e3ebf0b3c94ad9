// Unit tests of ProgressWatchers: the token bucket, held-back updates and
// the final update.
#include "coordinator/core/progress_watchers.h"

#include <map>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/time/time.h"
#include "common/clock.h"

namespace busyfleet::coordinator {
namespace {

using ::testing::IsEmpty;
using ::testing::SizeIs;

class ProgressWatchersTest : public ::testing::Test {
 protected:
  ProgressWatchersTest() : watchers_(ProgressWatchers::Options{absl::Seconds(1), 2, [this] { ++checks_; }}) {
    job_.id = "j-1";
    job_.state = v1::JOB_STATE_RUNNING;
    job_.tasks.resize(4);
  }
  void Watch(absl::Duration first_delay = absl::ZeroDuration()) {
    watchers_.Add(watchers_.NewHandle(), job_, false, [this](const v1::JobProgress& p) { seen_.push_back(p); },
                  first_delay, clock_.Now(), clock_.Mono());
  }
  void Notify() {
    watchers_.Notify(job_, clock_.Now(), clock_.Mono(), [] { return std::map<std::string, WorkerFacts>(); });
  }
  MonoTime SendDue() {
    return watchers_.SendDue(clock_.Now(), clock_.Mono(), [this](const std::string& id) { return id == job_.id ? &job_ : nullptr; });
  }

  FakeClock clock_;
  JobRecord job_;
  int checks_ = 0;
  std::vector<v1::JobProgress> seen_;
  ProgressWatchers watchers_;
};

TEST_F(ProgressWatchersTest, BurstGoesAtOnceThenChangesAreHeldBack) {
  Watch();  // the first update takes one of the 2 tokens
  ASSERT_THAT(seen_, SizeIs(1));
  Notify();
  EXPECT_THAT(seen_, SizeIs(2));
  Notify();  // the bucket is empty: held back, due in a second
  Notify();  // already held back: no second wake-up
  EXPECT_THAT(seen_, SizeIs(2));
  EXPECT_EQ(checks_, 1);
  EXPECT_EQ(SendDue(), clock_.Mono() + absl::Seconds(1));
  clock_.Advance(absl::Seconds(1));
  ++job_.succeeded;
  EXPECT_EQ(SendDue(), MonoTime::InfiniteFuture());
  ASSERT_THAT(seen_, SizeIs(3));
  EXPECT_EQ(seen_.back().tasks_done(), 1u) << "the held-back update carries the newest progress";
}

TEST_F(ProgressWatchersTest, TokensRefillWithTimeUpToTheBurst) {
  Watch();
  Notify();
  clock_.Advance(absl::Seconds(10));  // refills to 2, not 10
  Notify();
  Notify();
  Notify();
  EXPECT_THAT(seen_, SizeIs(4));
  EXPECT_EQ(checks_, 1);
}

TEST_F(ProgressWatchersTest, FinalUpdateAlwaysGoesAndEndsTheWatch) {
  Watch();
  Notify();
  job_.state = v1::JOB_STATE_SUCCEEDED;
  Notify();  // no token left, and still sent
  ASSERT_THAT(seen_, SizeIs(3));
  EXPECT_TRUE(seen_.back().has_report());
  EXPECT_EQ(watchers_.size(), 0u);
}

TEST_F(ProgressWatchersTest, FirstUpdateDelayHoldsTheFirstUpdateBack) {
  Watch(absl::Milliseconds(300));
  EXPECT_THAT(seen_, IsEmpty());
  EXPECT_EQ(checks_, 1);
  EXPECT_EQ(SendDue(), clock_.Mono() + absl::Milliseconds(300));
  clock_.Advance(absl::Milliseconds(300));
  SendDue();
  EXPECT_THAT(seen_, SizeIs(1));
}

TEST(ProgressWatchersNoLimitTest, ZeroIntervalSendsEveryChange) {
  ProgressWatchers watchers(ProgressWatchers::Options{absl::ZeroDuration(), 1, nullptr});
  JobRecord job;
  job.id = "j-1";
  job.state = v1::JOB_STATE_RUNNING;
  int seen = 0;
  const FakeClock clock;
  watchers.Add(watchers.NewHandle(), job, false, [&](const v1::JobProgress&) { ++seen; }, absl::ZeroDuration(),
               clock.Now(), clock.Mono());
  for (int i = 0; i < 5; ++i) watchers.Notify(job, clock.Now(), clock.Mono(), [] { return std::map<std::string, WorkerFacts>(); });
  EXPECT_EQ(seen, 6);
}

}  // namespace
}  // namespace busyfleet::coordinator
