// Finished jobs leave memory (bounded by jobs and task rows), and are
// deleted on request or by a retention rule.

#include <atomic>

#include "tests/unit/coordinator_fixture.h"

namespace busyfleet::coordinator {
namespace {

class CoordinatorRetentionTest : public CoordinatorTest {
 protected:
  // Submits a job of `tasks` tasks and lets `w` succeed them all.
  std::string RunToSuccess(FakeWorker& w, uint32_t tasks) {
    auto sub = coord_->Submit(Countdown(tasks));
    EXPECT_TRUE(sub.ok()) << sub.status();
    if (!sub.ok()) return "";
    for (uint32_t done = 0; done < tasks;) {
      const auto as = w.channel->TakeNew();
      EXPECT_FALSE(as.empty()) << "no assignment for " << sub->job_id();
      if (as.empty()) break;
      for (const auto& a : as) {
        EXPECT_OK(Succeed(w, a));
        ++done;
      }
    }
    return sub->job_id();
  }
  std::vector<std::string> ListedIds() {
    std::vector<std::string> ids;
    auto jobs = coord_->ListJobs(0);
    EXPECT_TRUE(jobs.ok()) << jobs.status();
    if (jobs.ok()) {
      for (const auto& j : *jobs) ids.push_back(j.id());
    }
    return ids;
  }
};

TEST_F(CoordinatorRetentionTest, InMemoryStoreDropsFinishedJobsPastTheTaskBoundAndSaysSo) {
  InMemoryJobStore memory(/*copy_task_rows=*/false);
  Coordinator::Options o = Defaults();
  o.store = &memory;
  o.keep_finished_tasks = 5;
  Start(o);
  ASSERT_OK_AND_ASSIGN(FakeWorker w, Attach("w", 2));
  const std::string first = RunToSuccess(w, 3);
  const std::string second = RunToSuccess(w, 3);
  // 6 rows > 5: the oldest is dropped, the newest stays.
  EXPECT_THAT(coord_->GetReport(first, true),
              StatusIs(absl::StatusCode::kNotFound, AllOf(HasSubstr(first), HasSubstr("dropped"),
                                                          HasSubstr("--keep-finished-tasks"))));
  ASSERT_OK_AND_ASSIGN(auto report, coord_->GetReport(second, true));
  EXPECT_EQ(report.tasks_succeeded(), 3u);
  // A job bigger than the bound on its own is still kept while it is the newest.
  const std::string big = RunToSuccess(w, 8);
  EXPECT_THAT(coord_->GetReport(second, false), StatusIs(absl::StatusCode::kNotFound, HasSubstr("dropped")));
  ASSERT_OK_AND_ASSIGN(auto big_report, coord_->GetReport(big, true));
  EXPECT_EQ(big_report.tasks_succeeded(), 8u);
  // Dropped jobs stay in the listing (headers are small), and are counted.
  EXPECT_THAT(ListedIds(), ElementsAre(big, second, first));
  EXPECT_EQ(coord_->Metrics().store.jobs_dropped, 2u);
}

TEST_F(CoordinatorRetentionTest, DurableStoreReadsEvictedJobsBack) {
  Coordinator::Options o = Defaults();
  o.keep_finished_tasks = 2;
  Start(o);
  ASSERT_OK_AND_ASSIGN(FakeWorker w, Attach("w", 2));
  const std::string first = RunToSuccess(w, 3);
  const std::string second = RunToSuccess(w, 3);
  ASSERT_OK_AND_ASSIGN(auto report, coord_->GetReport(first, true));
  EXPECT_EQ(report.tasks_succeeded(), 3u);
  EXPECT_EQ(report.tasks_size(), 3);
  EXPECT_EQ(coord_->Metrics().store.jobs_dropped, 0u);
  EXPECT_THAT(ListedIds(), ElementsAre(second, first));
}

TEST_F(CoordinatorRetentionTest, DeleteRefusesARunningJobAndRemovesAFinishedOne) {
  ASSERT_OK_AND_ASSIGN(FakeWorker w, Attach("w", 1));
  ASSERT_OK_AND_ASSIGN(auto running, coord_->Submit(Countdown(2)));
  EXPECT_THAT(coord_->DeleteJob(running.job_id()),
              StatusIs(absl::StatusCode::kFailedPrecondition, AllOf(HasSubstr("cancel it first"),
                                                                    HasSubstr(running.job_id()))));
  ASSERT_OK(coord_->Cancel(running.job_id()).status());
  EXPECT_OK(coord_->DeleteJob(running.job_id()));
  EXPECT_THAT(coord_->GetReport(running.job_id(), false), StatusIs(absl::StatusCode::kNotFound, ::testing::_));
  EXPECT_THAT(coord_->DeleteJob(running.job_id()), StatusIs(absl::StatusCode::kNotFound, ::testing::_));
  EXPECT_THAT(coord_->DeleteJob("j-nosuch"), StatusIs(absl::StatusCode::kNotFound, HasSubstr("j-nosuch")));
  EXPECT_THAT(ListedIds(), IsEmpty());
  EXPECT_EQ(coord_->Metrics().store.jobs_deleted, 1u);
}

TEST_F(CoordinatorRetentionTest, DeleteRemovesAJobOnlyTheStoreHolds) {
  Coordinator::Options o = Defaults();
  o.keep_finished_jobs = 0;
  Start(o);
  ASSERT_OK_AND_ASSIGN(FakeWorker w, Attach("w", 1));
  const std::string id = RunToSuccess(w, 2);
  ASSERT_OK_AND_ASSIGN(bool stored, store_.HasJob(id));
  ASSERT_TRUE(stored);
  EXPECT_OK(coord_->DeleteJob(id));
  ASSERT_OK_AND_ASSIGN(stored, store_.HasJob(id));
  EXPECT_FALSE(stored);
  EXPECT_THAT(coord_->GetReport(id, false), StatusIs(absl::StatusCode::kNotFound, ::testing::_));
}

TEST_F(CoordinatorRetentionTest, PruneByCountKeepsTheNewestAndNeverAnUnfinishedJob) {
  ASSERT_OK_AND_ASSIGN(FakeWorker w, Attach("w", 1));
  const std::string a = RunToSuccess(w, 1);
  const std::string b = RunToSuccess(w, 1);
  const std::string c = RunToSuccess(w, 1);
  ASSERT_OK_AND_ASSIGN(auto unfinished, coord_->Submit(Countdown(1)));
  RetentionRule keep_one;
  keep_one.keep_jobs = 1;
  ASSERT_OK_AND_ASSIGN(auto would, coord_->Prune(keep_one, 100, /*dry_run=*/true));
  ASSERT_THAT(would, SizeIs(2));
  EXPECT_EQ(would[0].id, a);  // oldest first
  EXPECT_EQ(would[1].id, b);
  EXPECT_THAT(ListedIds(), SizeIs(4));  // a dry run removes nothing
  ASSERT_OK_AND_ASSIGN(auto removed, coord_->Prune(keep_one, 100, false));
  EXPECT_THAT(removed, SizeIs(2));
  EXPECT_THAT(ListedIds(), ElementsAre(unfinished.job_id(), c));
  ASSERT_OK_AND_ASSIGN(auto report, coord_->GetReport(c, true));
  EXPECT_EQ(report.state(), v1::JOB_STATE_SUCCEEDED);
}

TEST_F(CoordinatorRetentionTest, PruneByAgeUsesTheFinishTime) {
  ASSERT_OK_AND_ASSIGN(FakeWorker w, Attach("w", 1));
  const std::string old_job = RunToSuccess(w, 1);
  clock_.Advance(absl::Hours(2));
  const std::string new_job = RunToSuccess(w, 1);
  RetentionRule older_than_hour;
  older_than_hour.finished_before = clock_.Now() - absl::Hours(1);
  ASSERT_OK_AND_ASSIGN(auto removed, coord_->Prune(older_than_hour, 100, false));
  ASSERT_THAT(removed, SizeIs(1));
  EXPECT_EQ(removed[0].id, old_job);
  EXPECT_THAT(ListedIds(), ElementsAre(new_job));
  // At most `limit` a call.
  RetentionRule all;
  all.finished_before = absl::InfiniteFuture();
  ASSERT_OK_AND_ASSIGN(auto none, coord_->Prune(all, 0, false));
  EXPECT_THAT(none, IsEmpty());
}

// A store whose backlog is past its cap: the coordinator starts no task.
class BackloggedStore : public InMemoryJobStore {
 public:
  bool Backlogged() const override { return backlogged.load(); }
  std::atomic<bool> backlogged{false};
};

TEST_F(CoordinatorRetentionTest, NoTaskStartsWhileTheStoreIsBacklogged) {
  BackloggedStore store;
  Coordinator::Options o = Defaults();
  o.store = &store;
  Start(o);
  ASSERT_OK_AND_ASSIGN(FakeWorker w, Attach("w", 2));
  store.backlogged = true;
  ASSERT_OK_AND_ASSIGN(auto sub, coord_->Submit(Countdown(2)));
  EXPECT_THAT(w.channel->TakeNew(), IsEmpty());
  // Caught up: the next check (the server wakes it) dispatches.
  store.backlogged = false;
  coord_->CheckLiveness();
  EXPECT_THAT(w.channel->TakeNew(), SizeIs(2));
}

TEST(SelectExpiredTest, AgeAndCountCombineAndUnfinishedJobsAreSkipped) {
  auto header = [](const std::string& id, v1::JobState state, int finished_hours_ago) {
    JobRecord j;
    j.id = id;
    j.state = state;
    j.finished_at = absl::FromUnixSeconds(1'700'000'000) - absl::Hours(finished_hours_ago);
    return j;
  };
  // Newest first, as the stores list them.
  std::vector<JobRecord> jobs = {header("e", v1::JOB_STATE_SUCCEEDED, 0), header("d", v1::JOB_STATE_RUNNING, 0),
                                 header("c", v1::JOB_STATE_FAILED, 1), header("b", v1::JOB_STATE_CANCELLED, 5),
                                 header("a", v1::JOB_STATE_SUCCEEDED, 9)};
  RetentionRule rule;
  rule.finished_before = absl::FromUnixSeconds(1'700'000'000) - absl::Hours(6);
  auto ids = [](const std::vector<JobRecord>& v) {
    std::vector<std::string> out;
    for (const auto& j : v) out.push_back(j.id);
    return out;
  };
  EXPECT_THAT(ids(SelectExpired(jobs, rule, 10)), ElementsAre("a"));
  rule.keep_jobs = 2;  // e and c are the newest two finished; d is running
  EXPECT_THAT(ids(SelectExpired(jobs, rule, 10)), ElementsAre("a", "b"));
  EXPECT_THAT(ids(SelectExpired(jobs, rule, 1)), ElementsAre("a"));
  EXPECT_THAT(ids(SelectExpired(jobs, RetentionRule(), 10)), IsEmpty());
}

}  // namespace
}  // namespace busyfleet::coordinator
