// A worker process whose embedded Python was never started (built without
// it, or --no-python): the python kind is refused, clearly and for good.
// Its own executable: no test here may start the interpreter.

#include <string>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "busyfleet/v1/worker.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "worker/executor.h"
#include "worker/python_kernel.h"

namespace busyfleet::worker {
namespace {

TEST(PythonUnavailableTest, KernelSaysSoWithoutStartingAnything) {
  EXPECT_FALSE(PythonKernelAvailable());
  EXPECT_EQ(PythonVersion(), "");
  CancelToken never;
  EXPECT_EQ(PythonCountdown(10, never).outcome, KernelOutcome::kBadKind);
}

TEST(PythonUnavailableTest, ExecutorFailsAPythonTaskPermanently) {
  for (const v1::ExecMode mode : {v1::EXEC_MODE_THREAD, v1::EXEC_MODE_PROCESS}) {
    absl::Mutex mu;
    std::vector<v1::TaskResult> results;
    Executor::Options options;
    options.slots = 1;
    Executor ex(options, [](const v1::TaskStarted&) {},
                [&](const v1::TaskResult& r) {
                  absl::MutexLock lock(&mu);
                  results.push_back(r);
                });
    v1::Assignment a;
    a.mutable_task()->set_job_id("job");
    a.set_kind(v1::TASK_KIND_PYTHON);
    a.set_iterations(1'000);
    a.set_exec(mode);
    ex.Submit(a);
    ASSERT_TRUE(ex.WaitIdle(absl::Now() + absl::Seconds(30)));
    absl::MutexLock lock(&mu);
    ASSERT_EQ(results.size(), 1u);
    EXPECT_EQ(results[0].state(), v1::TASK_STATE_FAILED);
    EXPECT_TRUE(results[0].permanent());
    EXPECT_THAT(results[0].error(), ::testing::HasSubstr("does not run python tasks"));
  }
}

}  // namespace
}  // namespace busyfleet::worker
