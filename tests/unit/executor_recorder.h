#ifndef BUSYFLEET_TESTS_UNIT_EXECUTOR_RECORDER_H_
#define BUSYFLEET_TESTS_UNIT_EXECUTOR_RECORDER_H_

// Collects an Executor's callbacks; tests wait on it with deadlines. A run's
// packed entries are read back as the TaskResults they stand for.

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "busyfleet/packed_results.h"
#include "busyfleet/v1/worker.pb.h"
#include "gtest/gtest.h"
#include "worker/executor.h"

namespace busyfleet::worker::executor_testing {

inline v1::TaskRef Ref(const std::string& job, uint32_t index, uint32_t attempt = 1) {
  v1::TaskRef ref;
  ref.set_job_id(job);
  ref.set_task_index(index);
  ref.set_attempt(attempt);
  return ref;
}

// The indices of the executor's held tasks (Hello.held) of `job`, in order.
inline std::vector<uint32_t> HeldIndices(const Executor& ex, const std::string& job) {
  std::vector<uint32_t> out;
  for (const v1::TaskRef& h : ex.Held()) {
    if (h.job_id() == job) out.push_back(h.task_index());
  }
  return out;
}

class Recorder {
 public:
  static constexpr absl::Duration kWaitLimit = absl::Seconds(30);

  Executor::StartedFn OnStarted() {
    return [this](const v1::TaskStarted& s) {
      absl::MutexLock lock(&mu_);
      started_.push_back(s);
    };
  }
  Executor::FinishedFn OnFinished() {
    return [this](const v1::TaskResult& r) {
      absl::MutexLock lock(&mu_);
      singles_.push_back(r);
      results_.push_back(r);
    };
  }
  // Runs: each one's packed group is checked, then read back.
  Executor::FinishedRunFn OnRun() {
    return [this](Executor::RunResults run) {
      if (gate_ != nullptr) {
        entered_.Notify();
        gate_->WaitForNotification();
      }
      absl::MutexLock lock(&mu_);
      EXPECT_TRUE(ValidatePacked(run.packed, 1'000'000, int64_t{1} << 62).ok());
      // Every task of the run: a task that moved to another CPU while it
      // ran (or did not complete) comes as one of `others`, not packed.
      run_sizes_.push_back(run.packed.index_delta_size() + static_cast<int>(run.others.size()));
      ForEachPackedResult(run.packed, [&](const v1::TaskResult& r) { results_.push_back(r); });
      for (v1::TaskResult& r : run.others) results_.push_back(std::move(r));
    };
  }
  // Each run's hand-over waits for `gate` (WaitEntered: one has begun).
  void set_gate(absl::Notification* gate) { gate_ = gate; }
  bool WaitEntered() { return entered_.WaitForNotificationWithTimeout(kWaitLimit); }

  bool WaitForStarted(size_t n, absl::Duration timeout = kWaitLimit) {
    absl::MutexLock lock(&mu_);
    auto enough = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return started_.size() >= n; };
    return mu_.AwaitWithDeadline(absl::Condition(&enough), absl::Now() + timeout);
  }
  bool WaitForResults(size_t n, absl::Duration timeout = kWaitLimit) {
    absl::MutexLock lock(&mu_);
    auto enough = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return results_.size() >= n; };
    return mu_.AwaitWithDeadline(absl::Condition(&enough), absl::Now() + timeout);
  }

  std::vector<v1::TaskStarted> started() {
    absl::MutexLock lock(&mu_);
    return started_;
  }
  // Every result, a run's included.
  std::vector<v1::TaskResult> results() {
    absl::MutexLock lock(&mu_);
    return results_;
  }
  // Those handed over one at a time (OnFinished).
  std::vector<v1::TaskResult> singles() {
    absl::MutexLock lock(&mu_);
    return singles_;
  }
  std::vector<int> run_sizes() {
    absl::MutexLock lock(&mu_);
    return run_sizes_;
  }
  // The indices reported, sorted (repeats kept).
  std::vector<uint32_t> indices() {
    std::vector<uint32_t> out;
    for (const v1::TaskResult& r : results()) out.push_back(r.task().task_index());
    std::sort(out.begin(), out.end());
    return out;
  }

 private:
  absl::Mutex mu_;
  std::vector<v1::TaskStarted> started_ ABSL_GUARDED_BY(mu_);
  std::vector<v1::TaskResult> results_ ABSL_GUARDED_BY(mu_);
  std::vector<v1::TaskResult> singles_ ABSL_GUARDED_BY(mu_);
  std::vector<int> run_sizes_ ABSL_GUARDED_BY(mu_);
  absl::Notification* gate_ = nullptr;
  absl::Notification entered_;
};

}  // namespace busyfleet::worker::executor_testing

#endif  // BUSYFLEET_TESTS_UNIT_EXECUTOR_RECORDER_H_
