// Issue 17's wire forms between the coordinator and a worker: assignment
// ranges (only to workers that take them) and packed results.
#include <algorithm>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "busyfleet/packed_results.h"
#include "coordinator/core/worker_messages.h"
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
  EXPECT_TRUE(w.channel->messages().front().welcome().accepts_packed_constants());
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

// Before a job's first result, the daemon's default deals only free slots
// (--prefetch 0: tasks of unknown length must not pile up on one worker),
// so each slot of a far worker idled a round trip after its first task.
// A countdown predicted from the worker's calibration to take at least
// the 5 ms pipeline gets one task ready per slot at once; a shorter
// prediction, or none, changes nothing.
TEST_F(CoordinatorWireTest, APredictedLongCountdownGetsOneTaskReadyPerSlotBeforeItsFirstResult) {
  struct Case {
    double rate;          // the worker's calibration; 0: none
    uint64_t iterations;  // per task
    size_t dealt;
  };
  for (const Case& c : {Case{1e9, 50'000'000, 4}, Case{1e9, 1'000'000, 2}, Case{0, 50'000'000, 2}}) {
    SCOPED_TRACE(::testing::Message() << c.rate << " it/s, " << c.iterations << " iterations");
    Coordinator::Options o = Defaults();
    o.prefetch_per_worker = 0;
    Start(o);
    v1::Hello h = MakeHello("w", 2);
    if (c.rate > 0) {
      v1::KernelCalibration* k = h.add_calibrations();
      k->set_kind(v1::TASK_KIND_COUNTDOWN);
      k->set_iterations_per_second(c.rate);
    }
    ASSERT_OK_AND_ASSIGN(FakeWorker w, AttachHello(h));
    ASSERT_OK(coord_->Submit(Countdown(10, c.iterations)).status());
    EXPECT_EQ(w.channel->assignments().size(), c.dealt);
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


// What a run of results does, read back from the coordinator: the report
// with every task row (the job's id cleared), the worker's counts, and how
// many tasks of a second job its freed credit takes.
struct RunOutcome {
  v1::JobReport report;
  uint32_t running = 0;
  uint32_t assigned = 0;
  uint64_t tasks_done = 0;
  size_t cancels = 0;
  size_t next_dealt = 0;
};

class PackedEquivalenceTest : public CoordinatorWireTest {
 protected:
  // One message carries results for a 12-task job on a worker calibrated per
  // CPU: tasks 0-3 started first, 4-11 only assigned; a duplicate of task 0
  // and an unknown attempt of task 1 in the middle; an index past the job;
  // the job's last task before the end of the message, so that a duplicate
  // of task 2 comes after the job ended. `packed`: as one packed group, else
  // as the same TaskResults (UnpackInto) one by one.
  RunOutcome Run(bool packed) {
    // Each run on a store and clock of its own, from the same start.
    FakeClock& clock = *clocks_.emplace_back(std::make_unique<FakeClock>());
    Coordinator::Options o = Defaults();
    o.clock = &clock;
    o.store = stores_.emplace_back(std::make_unique<InMemoryJobStore>()).get();
    o.prefetch_per_worker = 20;
    Start(o);
    v1::Hello h = MakeHello("w", 2);
    h.set_accepts_ranges(true);
    v1::KernelCalibration* c = h.add_calibrations();
    c->set_kind(v1::TASK_KIND_COUNTDOWN);
    c->set_iterations_per_second(1.5e9);
    for (uint32_t cpu = 0; cpu < 2; ++cpu) {
      v1::CpuRate* r = c->add_cpus();
      r->set_cpu(cpu);
      r->set_iterations_per_second(1e9 * (cpu + 1));
    }
    RunOutcome out;
    absl::StatusOr<FakeWorker> w = AttachHello(h);
    EXPECT_OK(w.status());
    if (!w.ok()) return out;
    EXPECT_OK(Heartbeat(*w, 1, 0, /*offset_valid=*/true, absl::ToUnixNanos(clock.Now()) - 5 * kSecond));
    v1::JobSpec spec = Countdown(12, 500);
    spec.set_name("twelve");  // not the job's id, which differs
    absl::StatusOr<v1::SubmitJobResponse> sub = coord_->Submit(spec);
    EXPECT_OK(sub.status());
    if (!sub.ok()) return out;
    std::vector<v1::Assignment> got = w->channel->TakeNew();
    EXPECT_THAT(got, SizeIs(12));
    if (got.size() != 12) return out;
    std::sort(got.begin(), got.end(),
              [](const auto& a, const auto& b) { return a.task().task_index() < b.task().task_index(); });
    for (uint32_t i = 0; i < 4; ++i) EXPECT_OK(Started(*w, got[i], i % 2, kSecond + i * 1000));
    clock.Advance(absl::Milliseconds(3));

    v1::WorkerMessage m;
    ResultPacker packer(m.mutable_updates(), {});
    auto add = [&](const v1::Assignment& a, uint32_t i) {
      v1::TaskResult r = MakeResult(a, v1::TASK_STATE_SUCCEEDED, kSecond + i * 1000, kSecond + i * 1000 + 300 + i,
                                    "", i % 2);
      r.set_cpu_ns(200 + i);
      if (i % 3 != 0) r.set_start_cpu((i / 3) % 2);  // every third start CPU unknown
      r.set_end_cpu(i % 2);
      packer.Add(r);
    };
    for (uint32_t i = 0; i < 6; ++i) add(got[i], i);
    add(got[0], 0);  // a duplicate
    v1::Assignment unknown = got[1];
    unknown.mutable_task()->set_attempt(7);
    add(unknown, 1);
    v1::Assignment past = got[11];
    past.mutable_task()->set_task_index(500);
    add(past, 11);
    for (uint32_t i = 6; i < 12; ++i) add(got[i], i);
    add(got[2], 2);  // after the job's end
    EXPECT_THAT(m.updates().packed(), SizeIs(1));
    if (!packed) UnpackInto(*m.mutable_updates());
    EXPECT_THAT(m.updates().packed(), SizeIs(packed ? 1 : 0));
    EXPECT_OK(Send(*w, m));

    absl::StatusOr<v1::JobReport> report = coord_->GetReport(sub->job_id(), /*include_tasks=*/true);
    EXPECT_OK(report.status());
    if (report.ok()) out.report = *report;
    out.report.clear_id();
    const v1::WorkerInfo info = Info("w");
    out.running = info.running();
    out.assigned = info.assigned();
    out.tasks_done = info.tasks_done();
    out.cancels = w->channel->cancelled().size();
    EXPECT_OK(coord_->Submit(Countdown(40, 500)).status());
    out.next_dealt = w->channel->TakeNew().size();
    return out;
  }
  void TearDown() override { coord_.reset(); }  // before the clocks and stores it uses

  std::vector<std::unique_ptr<FakeClock>> clocks_;
  std::vector<std::unique_ptr<InMemoryJobStore>> stores_;
};

TEST_F(PackedEquivalenceTest, APackedGroupDoesWhatItsResultsDoOneByOne) {
  const RunOutcome one_by_one = Run(/*packed=*/false);
  const RunOutcome packed = Run(/*packed=*/true);
  // The scenario itself: every task in, the three strays counted.
  EXPECT_EQ(one_by_one.report.state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(one_by_one.report.duplicates(), 3u);
  EXPECT_EQ(one_by_one.tasks_done, 12u);
  EXPECT_EQ(one_by_one.running, 0u);
  EXPECT_EQ(one_by_one.assigned, 0u);
  EXPECT_EQ(one_by_one.cancels, 0u) << "nothing was left in flight to cancel";
  EXPECT_GT(one_by_one.next_dealt, 0u);
  ASSERT_THAT(one_by_one.report.tasks(), SizeIs(12));
  EXPECT_NE(one_by_one.report.tasks(1).rate_ratio(), one_by_one.report.tasks(2).rate_ratio())
      << "tasks on different CPUs, with different calibrated rates";

  EXPECT_EQ(packed.report.DebugString(), one_by_one.report.DebugString());
  EXPECT_EQ(packed.running, one_by_one.running);
  EXPECT_EQ(packed.assigned, one_by_one.assigned);
  EXPECT_EQ(packed.tasks_done, one_by_one.tasks_done);
  EXPECT_EQ(packed.cancels, one_by_one.cancels);
  EXPECT_EQ(packed.next_dealt, one_by_one.next_dealt);
}

TEST(AddRunToRangesTest, RunsExtendTheLastRangeOfTheirJobAndSplitWhereTheAttemptChanges) {
  JobRecord job;
  job.id = "j";
  job.spec = Countdown(10, 500);
  NewTaskTable(job.tasks, 10);
  for (TaskRecord& t : job.tasks) t.current.number = 1;
  job.tasks[5].current.number = 2;  // requeued once
  v1::AssignBatch batch;
  v1::AssignRange* other = batch.add_ranges();  // another job's, ending where j's tasks start
  other->set_job_id("k");
  other->set_first_index(0);
  other->set_count(0);
  other->set_attempt(1);
  other->set_iterations(500);
  AddRunToRanges(job, 0, 4, batch);
  AddRunToRanges(job, 4, 4, batch);  // goes on from task 3
  AddRunToRanges(job, 9, 1, batch);  // not next to task 7
  std::vector<std::tuple<std::string, uint32_t, uint32_t, uint32_t>> got;  // job, first, count, attempt
  for (const v1::AssignRange& r : batch.ranges()) got.emplace_back(r.job_id(), r.first_index(), r.count(), r.attempt());
  EXPECT_THAT(got, ::testing::ElementsAre(std::make_tuple("k", 0u, 0u, 1u), std::make_tuple("j", 0u, 5u, 1u),
                                          std::make_tuple("j", 5u, 1u, 2u), std::make_tuple("j", 6u, 2u, 1u),
                                          std::make_tuple("j", 9u, 1u, 1u)));
  for (int i = 1; i < batch.ranges_size(); ++i) {
    EXPECT_EQ(batch.ranges(i).iterations(), 500u);
    EXPECT_EQ(batch.ranges(i).kind(), v1::TASK_KIND_COUNTDOWN);
  }
}

// A total split unevenly gives the first tasks one iteration more: a run
// across that edge is two ranges; a run longer than a message's limit is
// cut at it and goes on in the next range.
TEST(AddRunToRangesTest, RunsSplitWhereTheWorkChangesAndAtTheMessageLimit) {
  JobRecord job;
  job.id = "j";
  job.spec = Countdown(10);
  job.spec.set_iterations(0);
  job.spec.set_total(10 * 500 + 3);  // tasks 0-2: 501, 3-9: 500
  NewTaskTable(job.tasks, 10);
  for (TaskRecord& t : job.tasks) t.current.number = 1;
  v1::AssignBatch batch;
  AddRunToRanges(job, 1, 8, batch);
  std::vector<std::tuple<uint32_t, uint32_t, uint64_t>> got;  // first, count, iterations
  for (const v1::AssignRange& r : batch.ranges()) got.emplace_back(r.first_index(), r.count(), r.iterations());
  EXPECT_THAT(got, ::testing::ElementsAre(std::make_tuple(1u, 2u, 501u), std::make_tuple(3u, 6u, 500u)));

  const uint32_t n = limits::kMaxUpdatesPerMessage + 5;
  JobRecord big;
  big.id = "big";
  big.spec = Countdown(n, 7);
  NewTaskTable(big.tasks, n);
  for (TaskRecord& t : big.tasks) t.current.number = 1;
  v1::AssignBatch b2;
  AddRunToRanges(big, 0, n - 2, b2);
  AddRunToRanges(big, n - 2, 2, b2);  // extends the last range
  ASSERT_EQ(b2.ranges_size(), 2);
  EXPECT_EQ(b2.ranges(0).first_index(), 0u);
  EXPECT_EQ(b2.ranges(0).count(), static_cast<uint32_t>(limits::kMaxUpdatesPerMessage));
  EXPECT_EQ(b2.ranges(1).first_index(), static_cast<uint32_t>(limits::kMaxUpdatesPerMessage));
  EXPECT_EQ(b2.ranges(1).count(), 5u);
  EXPECT_EQ(b2.ranges(1).iterations(), 7u);

  // The dealer that knows every task's attempt (DispatchLocked) gets the
  // same ranges without the table being read.
  v1::AssignBatch told;
  AddRunToRanges(job, 1, 8, told, /*attempt_of_all=*/1);
  EXPECT_EQ(told.DebugString(), batch.DebugString());
  v1::AssignBatch b2_told;
  AddRunToRanges(big, 0, n - 2, b2_told, 1);
  AddRunToRanges(big, n - 2, 2, b2_told, 1);
  EXPECT_EQ(b2_told.DebugString(), b2.DebugString());
}

}  // namespace
}  // namespace busyfleet::coordinator
