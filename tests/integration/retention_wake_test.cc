// When the daemon's retention pass runs: at start, on its timer, and when a
// job ends only with a --retention-jobs cap. A job that just ended cannot be
// past the age cutoff, and each pass reads the store's job headers, so an
// age rule alone must not scan them at every job's end (it cost the
// one-task latency path 40-60 % of the coordinator's CPU).
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "coordinator/server/coordinator_server.h"
#include "coordinator/store/job_store.h"
#include "tests/testing/specs.h"
#include "tests/testing/status_matchers.h"

namespace busyfleet::testing {
namespace {

using coordinator::CoordinatorServer;
using coordinator::JobRecord;
using coordinator::RetentionRule;

// An in-memory store that counts retention passes (ExpiredJobs calls).
class CountingStore : public coordinator::InMemoryJobStore {
 public:
  absl::StatusOr<std::vector<JobRecord>> ExpiredJobs(const RetentionRule& rule, size_t limit) const override {
    {
      absl::MutexLock lock(&count_mu_);
      ++passes_;
    }
    return InMemoryJobStore::ExpiredJobs(rule, limit);
  }
  // Waits until at least `n` passes ran or `deadline` passed; the count.
  int WaitForPasses(int n, absl::Time deadline) const {
    absl::MutexLock lock(&count_mu_);
    auto reached = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(count_mu_) { return passes_ >= n; };
    count_mu_.AwaitWithDeadline(absl::Condition(&reached), deadline);
    return passes_;
  }

 private:
  mutable absl::Mutex count_mu_;
  mutable int passes_ ABSL_GUARDED_BY(count_mu_) = 0;
};

struct Started {
  std::shared_ptr<CountingStore> store;
  std::unique_ptr<CoordinatorServer> server;
};

// A coordinator (no workers) whose retention timer never fires in a test.
Started Start(absl::Duration retention, size_t retention_jobs) {
  Started s;
  s.store = std::make_shared<CountingStore>();
  CoordinatorServer::Options o;
  o.listen = "127.0.0.1:0";
  o.store = s.store;
  o.retention = retention;
  o.retention_jobs = retention_jobs;
  o.retention_interval = absl::Hours(1);
  auto server = CoordinatorServer::Start(o);
  EXPECT_OK(server.status());
  if (server.ok()) s.server = *std::move(server);
  return s;
}

// Submits a job no worker can run and cancels it: it ends at once.
void EndAJob(CoordinatorServer& server) {
  auto submitted = server.coordinator().Submit(Countdown(1));
  ASSERT_OK(submitted.status());
  ASSERT_OK(server.coordinator().Cancel(submitted->job_id()).status());
}

TEST(RetentionWakeTest, CappedRetentionRunsWhenAJobEnds) {
  Started s = Start(absl::Hours(24 * 30), /*retention_jobs=*/1);
  ASSERT_NE(s.server, nullptr);
  ASSERT_EQ(s.store->WaitForPasses(1, absl::Now() + absl::Seconds(30)), 1);  // the pass at start
  EndAJob(*s.server);
  EXPECT_GE(s.store->WaitForPasses(2, absl::Now() + absl::Seconds(30)), 2);
  s.server->Shutdown(absl::Seconds(1));
}

TEST(RetentionWakeTest, AgeRetentionDoesNotScanAtEveryJobEnd) {
  Started s = Start(absl::Hours(24 * 30), /*retention_jobs=*/0);
  ASSERT_NE(s.server, nullptr);
  ASSERT_EQ(s.store->WaitForPasses(1, absl::Now() + absl::Seconds(30)), 1);  // the pass at start
  for (int i = 0; i < 5; ++i) EndAJob(*s.server);
  // A wake at a job's end runs a pass within milliseconds; none may come
  // (the timer's is an hour away). Waiting for one that should not come
  // can only end at the deadline, which bounds the test, not the code.
  EXPECT_EQ(s.store->WaitForPasses(2, absl::Now() + absl::Seconds(1)), 1);
  s.server->Shutdown(absl::Seconds(1));
}

}  // namespace
}  // namespace busyfleet::testing
