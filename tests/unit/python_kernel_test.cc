// The python kind's kernel: the chapter's loop in the embedded CPython.

#include "worker/python_kernel.h"

#include <pthread.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cstdint>
#include <thread>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace busyfleet::worker {
namespace {

// Only ever stopped early.
constexpr uint64_t kForever = 1'000'000'000'000ULL;
// Bound on anything that should happen promptly on a loaded 2-core machine.
constexpr absl::Duration kPrompt = absl::Seconds(2);

class PythonKernelTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_OK(InitPythonKernel()); }
};

TEST_F(PythonKernelTest, StartsOnceAndReportsItsVersion) {
  EXPECT_TRUE(PythonKernelAvailable());
  EXPECT_OK(InitPythonKernel());  // idempotent
  EXPECT_THAT(PythonVersion(), ::testing::StartsWith("3."));
}

TEST_F(PythonKernelTest, CountsExactlyN) {
  CancelToken never;
  for (const uint64_t n : {uint64_t{0}, uint64_t{1}, kPythonChunk, kPythonChunk + 1, uint64_t{1'000'003}}) {
    const KernelResult r = PythonCountdown(n, never);
    EXPECT_EQ(r.outcome, KernelOutcome::kCompleted) << n;
    EXPECT_EQ(r.iterations_done, n);
  }
}

// Two threads share the one interpreter (and its GIL) and both finish.
TEST_F(PythonKernelTest, ThreadsShareTheInterpreter) {
  CancelToken never;
  KernelResult a, b;
  std::thread other([&] { b = PythonCountdown(3'000'001, never); });
  a = PythonCountdown(2'000'001, never);
  other.join();
  EXPECT_EQ(a.outcome, KernelOutcome::kCompleted);
  EXPECT_EQ(a.iterations_done, 2'000'001u);
  EXPECT_EQ(b.outcome, KernelOutcome::kCompleted);
  EXPECT_EQ(b.iterations_done, 3'000'001u);
}

// A cancel while the loop runs (and while another thread competes for the
// GIL) stops it: the result comes back within the bound, cancelled, short.
TEST_F(PythonKernelTest, CancelStopsARunningLoop) {
  CancelToken cancel, never;
  KernelResult r, rival;
  absl::Notification done;
  std::thread runner([&] {
    r = PythonCountdown(kForever, cancel);
    done.Notify();
  });
  std::thread competitor([&] { rival = PythonCountdown(5'000'000, never); });
  competitor.join();  // the loop has been running all this while
  cancel.Cancel();
  EXPECT_TRUE(done.WaitForNotificationWithTimeout(kPrompt)) << "not stopped within " << kPrompt;
  runner.join();
  EXPECT_EQ(r.outcome, KernelOutcome::kCancelled);
  EXPECT_LT(r.iterations_done, kForever);
  EXPECT_EQ(r.iterations_done % kPythonChunk, 0u);  // whole chunks, counted exactly
  EXPECT_EQ(rival.iterations_done, 5'000'000u);
}

TEST_F(PythonKernelTest, DeadlineTimesTheLoopOut) {
  CancelToken never;
  const KernelResult r = PythonCountdown(kForever, never, MonoNow() + absl::Milliseconds(30));
  EXPECT_EQ(r.outcome, KernelOutcome::kTimedOut);
  EXPECT_LT(r.iterations_done, kForever);
}

TEST_F(PythonKernelTest, AlreadyCancelledRunsNothing) {
  CancelToken cancel;
  cancel.Cancel();
  const KernelResult r = PythonCountdown(1'000, cancel);
  EXPECT_EQ(r.outcome, KernelOutcome::kCancelled);
  EXPECT_EQ(r.iterations_done, 0u);
}

// PythonFork while another thread holds the GIL running Python: the child
// still gets an interpreter that runs busy_wait (without the protocol it
// would wait forever for a GIL held by a thread that does not exist there).
TEST_F(PythonKernelTest, ForkedChildRunsPythonWhileAnotherThreadHoldsTheGil) {
  CancelToken stop;
  std::thread busy([&] { PythonCountdown(kForever, stop); });
  // `busy` burns CPU only inside busy_wait, which it runs holding the GIL,
  // and nothing else asks for the GIL: once its CPU clock has run 20 ms it
  // is in the loop, and holds the GIL at the fork.
  clockid_t busy_clock;
  ASSERT_EQ(pthread_getcpuclockid(busy.native_handle(), &busy_clock), 0);
  const absl::Time give_up = absl::Now() + absl::Seconds(30);
  for (timespec ts{}; clock_gettime(busy_clock, &ts) == 0 && ts.tv_sec == 0 && ts.tv_nsec < 20'000'000;) {
    if (absl::Now() > give_up) {
      stop.Cancel();
      busy.join();
      FAIL() << "the Python thread never ran";
    }
    std::this_thread::yield();
  }
  const pid_t pid = PythonFork();
  if (pid == 0) {
    CancelToken never;
    const KernelResult r = PythonCountdown(100'003, never);
    _exit(r.outcome == KernelOutcome::kCompleted && r.iterations_done == 100'003 ? 0 : 1);
  }
  ASSERT_GT(pid, 0);
  // Wait for the child with a deadline; kill it if it hangs.
  int status = -1;
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (waitpid(pid, &status, WNOHANG) == 0) {
    if (absl::Now() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      ADD_FAILURE() << "the forked child hung";
      break;
    }
    absl::SleepFor(absl::Milliseconds(5));  // a poll of the child's state, bounded above
  }
  stop.Cancel();
  busy.join();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "status " << status;
}

}  // namespace
}  // namespace busyfleet::worker
