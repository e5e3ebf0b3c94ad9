// Issue 17's wire forms between the coordinator and a worker: assignment
// ranges (only to workers that take them) and packed results.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "busyfleet/packed_results.h"
#include "tests/unit/coordinator_fixture.h"

namespace busyfleet::coordinator {
namespace {

using ::testing::HasSubstr;
using ::testing::SizeIs;

class CoordinatorWireTest : public CoordinatorTest {
 protected:
  absl::StatusOr<FakeWorker> AttachRanges(const std::string& name, uint32_t slots) {
    v1::Hello h = MakeHello(name, slots);
    h.set_accepts_ranges(true);
    return AttachHello(h);
  }
  // What the worker's channel got as ranges and as plain assignments.
  static std::pair<int, int> Shapes(const FakeChannel& c) {
    int ranges = 0;
    int plain = 0;
    for (const v1::CoordinatorMessage& m : c.messages()) {
      ranges += m.assign().ranges_size();
      plain += m.assign().assignments_size();
    }
    return {ranges, plain};
  }
};

TEST_F(CoordinatorWireTest, WelcomeSaysPackedResultsAreRead) {
  ASSERT_OK_AND_ASSIGN(FakeWorker w, Attach("w", 1));
  ASSERT_FALSE(w.channel->messages().empty());
  EXPECT_TRUE(w.channel->messages().front().welcome().accepts_packed_results());
}

TEST_F(CoordinatorWireTest, RangesGoOnlyToWorkersThatTakeThem) {
  Coordinator::Options o = Defaults();
  o.prefetch_per_worker = 40;
  Start(o);
  ASSERT_OK_AND_ASSIGN(FakeWorker fresh, AttachRanges("fresh", 2));
  ASSERT_OK_AND_ASSIGN(FakeWorker old, Attach("old", 2));
  ASSERT_OK_AND_ASSIGN(auto sub, coord_->Submit(Countdown(60, 1000)));
  const auto to_fresh = fresh.channel->assignments();
  const auto to_old = old.channel->assignments();
  ASSERT_FALSE(to_fresh.empty());
  ASSERT_FALSE(to_old.empty());
  EXPECT_EQ(to_fresh.size() + to_old.size(), 60u);
  const auto [fresh_ranges, fresh_plain] = Shapes(*fresh.channel);
  const auto [old_ranges, old_plain] = Shapes(*old.channel);
  EXPECT_GE(fresh_ranges, 1);
  EXPECT_LT(fresh_ranges + fresh_plain, static_cast<int>(to_fresh.size())) << "ranges of one task each";
  EXPECT_EQ(old_ranges, 0);
  EXPECT_EQ(old_plain, static_cast<int>(to_old.size()));
  // Every task once, on attempt 1, with the job's iterations.
  std::set<uint32_t> all = Indices(to_fresh);
  for (uint32_t i : Indices(to_old)) EXPECT_TRUE(all.insert(i).second) << "task " << i << " twice";
  EXPECT_THAT(all, SizeIs(60));
  for (const auto& a : to_fresh) {
    EXPECT_EQ(a.task().job_id(), sub.job_id());
    EXPECT_EQ(a.task().attempt(), 1u);
    EXPECT_EQ(a.iterations(), 1000u);
    EXPECT_EQ(a.kind(), v1::TASK_KIND_COUNTDOWN);
  }
}

TEST_F(CoordinatorWireTest, ALoneTaskGoesAsAPlainAssignment) {
  // A worker runs a lone tiny assignment inline (Executor::TryRunInline):
  // a one-task range would not be.
  ASSERT_OK_AND_ASSIGN(FakeWorker w, AttachRanges("w", 1));
  ASSERT_OK(coord_->Submit(Countdown(1, 10)).status());
  const auto [ranges, plain] = Shapes(*w.channel);
  EXPECT_EQ(ranges, 0);
  EXPECT_EQ(plain, 1);
}

TEST_F(CoordinatorWireTest, PackedResultsRecordEveryTask) {
  Coordinator::Options o = Defaults();
  o.prefetch_per_worker = 20;
  Start(o);
  ASSERT_OK_AND_ASSIGN(FakeWorker w, AttachRanges("w", 2));
  ASSERT_OK_AND_ASSIGN(auto sub, coord_->Submit(Countdown(10, 500)));
  const auto got = w.channel->TakeNew();
  ASSERT_THAT(got, SizeIs(10));
  v1::WorkerMessage m;
  ResultPacker packer(m.mutable_updates(), {});
  for (size_t i = 0; i < got.size(); ++i) {
    v1::TaskResult r = MakeResult(got[i], v1::TASK_STATE_SUCCEEDED, kSecond + static_cast<int64_t>(i) * 1000,
                                  kSecond + static_cast<int64_t>(i) * 1000 + 700, "", got[i].task().task_index() % 2);
    r.set_cpu_ns(600);
    r.set_start_cpu(got[i].task().task_index() % 2);
    r.set_end_cpu(got[i].task().task_index() % 2);
    packer.Add(r);
  }
  ASSERT_THAT(m.updates().results(), SizeIs(0));
  ASSERT_THAT(m.updates().packed(), SizeIs(1));
  ASSERT_OK(Send(w, m));
  ASSERT_OK_AND_ASSIGN(v1::JobReport report, coord_->GetReport(sub.job_id(), /*include_tasks=*/true));
  EXPECT_EQ(report.state(), v1::JOB_STATE_SUCCEEDED);
  ASSERT_THAT(report.tasks(), SizeIs(10));
  for (const v1::TaskTiming& t : report.tasks()) {
    EXPECT_EQ(t.state(), v1::TASK_STATE_SUCCEEDED) << t.index();
    EXPECT_EQ(t.worker(), "w");
    EXPECT_EQ(t.iterations(), 500u);
    EXPECT_NEAR(t.seconds(), 700e-9, 1e-12) << t.index();
    EXPECT_NEAR(t.cpu_seconds(), 600e-9, 1e-12) << t.index();
    EXPECT_EQ(t.slot(), t.index() % 2) << t.index();
    ASSERT_TRUE(t.has_start_cpu());
    EXPECT_EQ(t.start_cpu(), t.index() % 2);
  }
  EXPECT_EQ(report.workers(0).tasks(), 10u);
}

TEST_F(CoordinatorWireTest, ABadPackedGroupIsRefusedAndChangesNothing) {
  Coordinator::Options o = Defaults();
  o.prefetch_per_worker = 20;
  Start(o);
  ASSERT_OK_AND_ASSIGN(FakeWorker w, AttachRanges("w", 1));
  ASSERT_OK_AND_ASSIGN(auto sub, coord_->Submit(Countdown(4, 500)));
  const auto got = w.channel->TakeNew();
  ASSERT_THAT(got, SizeIs(4));
  v1::WorkerMessage m;
  ResultPacker packer(m.mutable_updates(), {});
  for (const auto& a : got) packer.Add(MakeResult(a, v1::TASK_STATE_SUCCEEDED, kSecond, kSecond + 10));
  m.mutable_updates()->mutable_packed(0)->mutable_cpu_ns()->RemoveLast();
  const absl::Status s = Send(w, m);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("packed.cpu_ns must have one entry per task (4), got 3"));
  ASSERT_OK_AND_ASSIGN(v1::JobReport report, coord_->GetReport(sub.job_id(), false));
  EXPECT_EQ(report.tasks_succeeded(), 0u);

  // A long job id is refused like a TaskResult's.
  v1::WorkerMessage long_id;
  v1::PackedResults* p = long_id.mutable_updates()->add_packed();
  p->set_job_id(std::string(129, 'j'));
  EXPECT_THAT(std::string(Send(w, long_id).message()), HasSubstr("packed.job_id must be at most 128 bytes, got 129"));
}

}  // namespace
}  // namespace busyfleet::coordinator
