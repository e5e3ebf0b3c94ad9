// RunJobs: job after job on one stream (a client session), through the
// coordctl client on an in-process cluster.
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/time/clock.h"
#include "common/rpc/auth.h"
#include "coordinator/ctl/coordctl_client.h"
#include "tests/testing/cluster.h"
#include "tests/testing/status_matchers.h"

namespace busyfleet::testing {
namespace {

using coordctl::CoordinatorClient;
using ::testing::HasSubstr;

constexpr absl::Duration kDeadline = absl::Seconds(60);

std::unique_ptr<CoordinatorClient> ClientOf(const InProcessCluster& cluster) {
  CoordinatorClient::Options o;
  o.address = cluster.address();
  return std::make_unique<CoordinatorClient>(o);
}

void Ignore(const v1::JobProgress&) {}

TEST(RunSessionTest, RunsJobAfterJobOnOneStream) {
  ASSERT_OK_AND_ASSIGN(auto cluster, InProcessCluster::Start({.workers = 2}));
  auto client = ClientOf(*cluster);
  auto session = client->OpenRunSession(absl::Now() + kDeadline);
  std::vector<std::string> ids;
  for (uint32_t tasks : {1u, 3u, 1u}) {
    std::vector<v1::JobProgress> seen;
    ASSERT_OK_AND_ASSIGN(v1::JobProgress last,
                         session->Run(Countdown(tasks), /*include_tasks=*/true,
                                      [&](const v1::JobProgress& p) { seen.push_back(p); }));
    ASSERT_FALSE(seen.empty());
    EXPECT_TRUE(seen.back().has_report());
    EXPECT_EQ(last.report().state(), v1::JOB_STATE_SUCCEEDED);
    EXPECT_EQ(last.report().tasks_total(), tasks);
    EXPECT_EQ(last.report().tasks_size(), static_cast<int>(tasks));
    // Every update of a job names that job.
    for (const v1::JobProgress& p : seen) EXPECT_EQ(p.job_id(), last.job_id());
    ids.push_back(last.job_id());
  }
  EXPECT_NE(ids[0], ids[1]);
  EXPECT_NE(ids[1], ids[2]);
  EXPECT_OK(session->Close());
}

TEST(RunSessionTest, ARefusedJobEndsTheSessionWithItsStatus) {
  ASSERT_OK_AND_ASSIGN(auto cluster, InProcessCluster::Start({.workers = 1}));
  auto client = ClientOf(*cluster);
  auto session = client->OpenRunSession(absl::Now() + kDeadline);
  ASSERT_OK(session->Run(Countdown(1), false, Ignore).status());
  v1::JobSpec bad = Countdown(1);
  bad.set_tasks(0);
  absl::StatusOr<v1::JobProgress> refused = session->Run(bad, false, Ignore);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(refused.status().message(), HasSubstr("tasks"));
  // Over: a new session is needed.
  EXPECT_EQ(session->Run(Countdown(1), false, Ignore).status().code(), absl::StatusCode::kFailedPrecondition);
  auto again = client->OpenRunSession(absl::Now() + kDeadline);
  EXPECT_OK(again->Run(Countdown(1), false, Ignore).status());
  EXPECT_OK(again->Close());
}

TEST(RunSessionTest, ClosingBetweenJobsEndsOk) {
  ASSERT_OK_AND_ASSIGN(auto cluster, InProcessCluster::Start({.workers = 1}));
  auto client = ClientOf(*cluster);
  for (int i = 0; i < 3; ++i) {
    auto session = client->OpenRunSession(absl::Now() + kDeadline);
    ASSERT_OK(session->Run(Countdown(1), false, Ignore).status());
    EXPECT_OK(session->Close());
  }
  // A session closed before any job ends OK too.
  auto empty = client->OpenRunSession(absl::Now() + kDeadline);
  EXPECT_OK(empty->Close());
}

TEST(RunSessionTest, NeedsTheClientToken) {
  InProcessCluster::Options options;
  options.workers = 1;
  ASSERT_OK_AND_ASSIGN(options.authenticator, TokenAuthenticator::Create("worker-secret", "client-secret"));
  options.worker_security.token = "worker-secret";
  ASSERT_OK_AND_ASSIGN(auto cluster, InProcessCluster::Start(options));
  for (const auto& [token, code] : {std::pair{"", absl::StatusCode::kUnauthenticated},
                                    std::pair{"worker-secret", absl::StatusCode::kPermissionDenied}}) {
    CoordinatorClient::Options o;
    o.address = cluster->address();
    o.security.token = token;
    CoordinatorClient client(o);
    auto session = client.OpenRunSession(absl::Now() + kDeadline);
    EXPECT_EQ(session->Run(Countdown(1), false, Ignore).status().code(), code) << "token '" << token << "'";
  }
  CoordinatorClient::Options o;
  o.address = cluster->address();
  o.security.token = "client-secret";
  CoordinatorClient client(o);
  auto session = client.OpenRunSession(absl::Now() + kDeadline);
  EXPECT_OK(session->Run(Countdown(1), false, Ignore).status());
  EXPECT_OK(session->Close());
}

// Whether a new session is admitted: a job it is refused (an invalid spec)
// says INVALID_ARGUMENT once admitted, RESOURCE_EXHAUSTED while every
// --max-watches place is taken.
absl::StatusCode TryASession(CoordinatorClient& client) {
  v1::JobSpec bad = Countdown(1);
  bad.set_tasks(0);
  auto session = client.OpenRunSession(absl::Now() + kDeadline);
  return session->Run(bad, false, Ignore).status().code();
}

TEST(RunSessionTest, HoldsOneWatchPlaceUntilTheClientGoes) {
  coordinator::CoordinatorServer::Options so;
  so.listen = "127.0.0.1:0";
  so.max_watches = 1;
  ASSERT_OK_AND_ASSIGN(auto server, coordinator::CoordinatorServer::Start(so));
  CoordinatorClient::Options o;
  o.address = server->address();
  CoordinatorClient client(o);
  {
    // No worker: the job waits, and the session with it, until the client
    // gives up (its deadline cancels the call mid-job).
    auto waiting = client.OpenRunSession(absl::Now() + absl::Seconds(2));
    absl::Status first;
    std::thread other([&] { first = waiting->Run(Countdown(1), false, Ignore).status(); });
    // Its job is there: the session was admitted, and holds the place.
    const absl::Time deadline = absl::Now() + kDeadline;
    while (absl::Now() < deadline) {
      auto jobs = server->coordinator().ListJobs(10);
      if (jobs.ok() && !jobs->empty()) break;
    }
    EXPECT_EQ(TryASession(client), absl::StatusCode::kResourceExhausted);
    other.join();
    EXPECT_EQ(first.code(), absl::StatusCode::kDeadlineExceeded);
  }
  // Once the cancelled call is done on the server, its place is free again.
  const absl::Time deadline = absl::Now() + kDeadline;
  absl::StatusCode code = TryASession(client);
  while (code == absl::StatusCode::kResourceExhausted && absl::Now() < deadline) code = TryASession(client);
  EXPECT_EQ(code, absl::StatusCode::kInvalidArgument);
  server->Shutdown(absl::Seconds(1));
}

}  // namespace
}  // namespace busyfleet::testing
