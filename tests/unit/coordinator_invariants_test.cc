// The Coordinator's in-flight accounting under a random mix of operations:
// workers attach, drain and vanish, tasks start, succeed, fail, are given
// up, handed back or duplicated, jobs (some speculative) are cancelled, time
// passes. In debug builds every operation ends with CheckInvariantsLocked
// (coordinator.h), so a miscount fails here at the step that made it; in
// every build the counts the API shows must settle back to zero.
#include <random>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/unit/coordinator_fixture.h"

namespace busyfleet::coordinator {
namespace {

class InvariantsTest : public CoordinatorTest, public ::testing::WithParamInterface<int> {
 protected:
  void SetUp() override {
    Coordinator::Options o = Defaults();
    o.prefetch_per_worker = 1;
    Start(o);
  }

  // One random step; `held` tracks what each worker was sent and not yet finished.
  void Step(std::mt19937& rng) {
    auto pick = [&](size_t n) { return static_cast<size_t>(rng() % n); };
    if (workers_.size() < 2 || pick(12) == 0) {
      auto w = Attach(absl::StrCat("w", next_worker_++), 1 + static_cast<uint32_t>(pick(3)));
      ASSERT_TRUE(w.ok()) << w.status();
      workers_.push_back(*w);
      held_.emplace_back();
    }
    if (pick(6) == 0) {
      v1::JobSpec spec = Countdown(1 + static_cast<uint32_t>(pick(8)));
      spec.set_speculate(pick(2) == 0);
      spec.set_max_attempts(1 + static_cast<uint32_t>(pick(3)));
      auto sub = coord_->Submit(spec);
      if (sub.ok()) jobs_.push_back(sub->job_id());
    }
    const size_t i = pick(workers_.size());
    FakeWorker& w = workers_[i];
    for (const v1::Assignment& a : w.channel->TakeNew()) held_[i].push_back(a);
    std::vector<v1::Assignment>& held = held_[i];
    const int64_t now_mono = absl::ToUnixNanos(clock_.Now());
    switch (pick(9)) {
      case 0:
      case 1:
        if (!held.empty()) (void)Started(w, held[pick(held.size())], 0, now_mono);
        break;
      case 2:
      case 3:
      case 4:
        if (!held.empty()) {
          const size_t k = pick(held.size());
          const v1::TaskState states[] = {v1::TASK_STATE_SUCCEEDED, v1::TASK_STATE_SUCCEEDED,
                                          v1::TASK_STATE_FAILED, v1::TASK_STATE_CANCELLED};
          const int64_t ran = static_cast<int64_t>(1 + pick(2000)) * 1'000'000;  // up to 2 s
          const v1::TaskResult r = MakeResult(held[k], states[pick(4)], now_mono - ran, now_mono, "boom");
          (void)Result(w, r);
          if (pick(4) == 0) (void)Result(w, r);  // a duplicate
          held.erase(held.begin() + static_cast<std::ptrdiff_t>(k));
        }
        break;
      case 5:
        if (!held.empty()) {
          const size_t k = pick(held.size());
          (void)Return(w, {held[k]});
          held.erase(held.begin() + static_cast<std::ptrdiff_t>(k));
        }
        break;
      case 6:
        if (pick(3) == 0) {
          coord_->Detach(w.session, absl::UnavailableError("gone"));
          workers_.erase(workers_.begin() + static_cast<std::ptrdiff_t>(i));
          held_.erase(held_.begin() + static_cast<std::ptrdiff_t>(i));
        }
        break;
      case 7:
        if (!jobs_.empty() && pick(4) == 0) (void)coord_->Cancel(jobs_[pick(jobs_.size())]);
        break;
      default:
        clock_.Advance(absl::Milliseconds(static_cast<int64_t>(pick(1500))));
        for (const FakeWorker& alive : workers_) (void)Heartbeat(alive, 1);
        coord_->CheckLiveness();
        break;
    }
  }

  std::vector<FakeWorker> workers_;
  std::vector<std::vector<v1::Assignment>> held_;
  std::vector<std::string> jobs_;
  int next_worker_ = 0;
};

TEST_P(InvariantsTest, RandomOperationsKeepTheInFlightCountsConsistent) {
  std::mt19937 rng(static_cast<uint32_t>(GetParam()));
  for (int step = 0; step < 400; ++step) {
    ASSERT_NO_FATAL_FAILURE(Step(rng)) << "step " << step;
  }
  for (const std::string& id : jobs_) (void)coord_->Cancel(id);
  for (const v1::WorkerInfo& w : coord_->ListWorkers(false)) {
    EXPECT_EQ(w.running() + w.assigned(), 0u) << w.name() << " after every job ended";
  }
  for (const std::string& id : jobs_) {
    ASSERT_OK_AND_ASSIGN(v1::JobReport r, coord_->GetReport(id, false));
    EXPECT_EQ(r.tasks_succeeded() + r.tasks_failed() + r.tasks_cancelled(), r.tasks_total()) << id;
  }
  for (const FakeWorker& w : workers_) coord_->Detach(w.session, absl::OkStatus());
  EXPECT_EQ(coord_->Metrics().running, 0u);
}

INSTANTIATE_TEST_SUITE_P(Seeds, InvariantsTest, ::testing::Range(1, 41));

}  // namespace
}  // namespace busyfleet::coordinator
