// Tokens per role and request validation, through a real gRPC server on
// loopback: every refusal has the documented code and message, and the
// coordinator keeps serving afterwards.

#include <functional>
#include <memory>
#include <string>

#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "busyfleet/v1/coordinator.grpc.pb.h"
#include "busyfleet/v1/worker.grpc.pb.h"
#include "common/rpc/auth.h"
#include "coordinator/core/limits.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "tests/testing/cluster.h"
#include "tests/testing/specs.h"
#include "tests/testing/status_matchers.h"

namespace busyfleet::testing {
namespace {

using ::testing::HasSubstr;

constexpr char kWorkerToken[] = "worker-secret-0123456789";
constexpr char kClientToken[] = "client-secret-9876543210";

// A cluster, and a client stub on a channel to its coordinator.
class CoordinatorCallTest : public ::testing::Test {
 protected:
  void StartCluster(InProcessCluster::Options options) {
    ASSERT_OK_AND_ASSIGN(cluster_, InProcessCluster::Start(std::move(options)));
    channel_ = cluster_->NewChannel();
    client_ = v1::CoordinatorService::NewStub(channel_);
  }

  std::unique_ptr<InProcessCluster> cluster_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::CoordinatorService::Stub> client_;
};

class AuthTest : public CoordinatorCallTest {
 protected:
  void SetUp() override {
    ASSERT_OK_AND_ASSIGN(TokenAuthenticator auth, TokenAuthenticator::Create(kWorkerToken, kClientToken));
    StartCluster({.workers = 0, .authenticator = auth});
    worker_ = v1::WorkerService::NewStub(channel_);
  }

  std::unique_ptr<grpc::ClientContext> Context(const std::string& token) {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    if (!token.empty()) ctx->AddMetadata("authorization", BearerValue(token));
    return ctx;
  }
  grpc::Status ListJobs(const std::string& token) {
    auto ctx = Context(token);
    v1::ListJobsRequest req;
    v1::ListJobsResponse resp;
    return client_->ListJobs(ctx.get(), req, &resp);
  }
  // Opens an Attach stream with `token`, sends a hello and returns how the
  // stream ended (or OK with a welcome).
  grpc::Status Attach(const std::string& token, bool* welcomed) {
    auto ctx = Context(token);
    auto stream = worker_->Attach(ctx.get());
    v1::WorkerMessage hello;
    hello.mutable_hello()->set_name("w");
    hello.mutable_hello()->set_slots(1);
    stream->Write(hello);
    v1::CoordinatorMessage in;
    *welcomed = stream->Read(&in) && in.has_welcome();
    if (*welcomed) {
      stream->WritesDone();
      while (stream->Read(&in)) {
      }
    }
    return stream->Finish();
  }

  std::unique_ptr<v1::WorkerService::Stub> worker_;
};

TEST_F(AuthTest, EachRoleGetsOnlyWhatItsTokenAllows) {
  EXPECT_EQ(ListJobs("").error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(ListJobs("not-a-token").error_code(), grpc::StatusCode::UNAUTHENTICATED);
  const grpc::Status as_worker = ListJobs(kWorkerToken);
  EXPECT_EQ(as_worker.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(as_worker.error_message(), ::testing::Not(HasSubstr(kWorkerToken)));
  EXPECT_TRUE(ListJobs(kClientToken).ok());

  bool welcomed = false;
  EXPECT_EQ(Attach("", &welcomed).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_FALSE(welcomed);
  EXPECT_EQ(Attach(kClientToken, &welcomed).error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_FALSE(welcomed);
  Attach(kWorkerToken, &welcomed);
  EXPECT_TRUE(welcomed);
  // Refusals do not stop the coordinator from serving the others.
  EXPECT_TRUE(ListJobs(kClientToken).ok());
}

TEST(AuthClusterTest, WorkersAttachWithTheWorkerToken) {
  InProcessCluster::Options options;
  options.workers = 1;
  ASSERT_OK_AND_ASSIGN(options.authenticator, TokenAuthenticator::Create(kWorkerToken, kClientToken));
  options.worker_security.token = kWorkerToken;
  ASSERT_OK_AND_ASSIGN(auto cluster, InProcessCluster::Start(options));
  EXPECT_TRUE(cluster->worker(0).attached());
}

TEST_F(AuthTest, WatchNeedsAClientToken) {
  auto ctx = Context(kWorkerToken);
  v1::WatchJobRequest req;
  req.set_job_id("j-00000000");
  auto reader = client_->WatchJob(ctx.get(), req);
  v1::JobProgress p;
  EXPECT_FALSE(reader->Read(&p));
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::PERMISSION_DENIED);
}

TEST_F(AuthTest, HealthChecksStayOpen) {
  auto health = grpc::health::v1::Health::NewStub(channel_);
  auto ctx = Context("");
  grpc::health::v1::HealthCheckRequest req;
  grpc::health::v1::HealthCheckResponse resp;
  ASSERT_TRUE(health->Check(ctx.get(), req, &resp).ok());
  EXPECT_EQ(resp.status(), grpc::health::v1::HealthCheckResponse::SERVING);
}

TEST(TokenAuthenticatorTest, NeedsBothTokensOrNone) {
  EXPECT_THAT(TokenAuthenticator::Create("a", ""), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("both")));
  EXPECT_THAT(TokenAuthenticator::Create("", "b"), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("both")));
  ASSERT_OK_AND_ASSIGN(TokenAuthenticator open, TokenAuthenticator::Create("", ""));
  EXPECT_FALSE(open.enabled());
  EXPECT_OK(open.Check(Role::kClient, {}));
}

TEST(TokenAuthenticatorTest, OneTokenMayServeBothRoles) {
  ASSERT_OK_AND_ASSIGN(TokenAuthenticator a, TokenAuthenticator::Create("same", "same"));
  std::multimap<grpc::string_ref, grpc::string_ref> md;
  const std::string bearer = BearerValue("same");
  md.emplace("authorization", bearer);
  EXPECT_OK(a.Check(Role::kClient, md));
  EXPECT_OK(a.Check(Role::kWorker, md));
}

TEST(ConstantTimeEqualsTest, ComparesWholeStrings) {
  EXPECT_TRUE(ConstantTimeEquals("abc", "abc"));
  EXPECT_FALSE(ConstantTimeEquals("abc", "abd"));
  EXPECT_FALSE(ConstantTimeEquals("abc", "abcd"));
  EXPECT_FALSE(ConstantTimeEquals("", "a"));
  EXPECT_TRUE(ConstantTimeEquals("", ""));
}

TEST(LogRateLimiterTest, LetsABurstThroughThenCountsWhatItHolds) {
  LogRateLimiter limiter(3, absl::Hours(1));
  uint64_t suppressed = 0;
  EXPECT_TRUE(limiter.Allow(&suppressed));
  EXPECT_TRUE(limiter.Allow(&suppressed));
  EXPECT_TRUE(limiter.Allow(&suppressed));
  for (int i = 0; i < 100; ++i) EXPECT_FALSE(limiter.Allow(&suppressed));
}

// --- Validation: every limit through the wire --------------------------------

class ValidationTest : public CoordinatorCallTest {
 protected:
  void SetUp() override { StartCluster({.workers = 0}); }

  grpc::Status Submit(const v1::JobSpec& spec) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    v1::SubmitJobRequest req;
    *req.mutable_spec() = spec;
    v1::SubmitJobResponse resp;
    return client_->SubmitJob(&ctx, req, &resp);
  }
  bool Healthy() {
    auto health = grpc::health::v1::Health::NewStub(channel_);
    grpc::ClientContext ctx;
    grpc::health::v1::HealthCheckRequest req;
    grpc::health::v1::HealthCheckResponse resp;
    return health->Check(&ctx, req, &resp).ok() &&
           resp.status() == grpc::health::v1::HealthCheckResponse::SERVING;
  }
};

struct Case {
  std::string name;
  std::function<void(v1::JobSpec&)> mutate;
  // Empty: accepted. Otherwise INVALID_ARGUMENT containing this.
  std::string error;
};

TEST_F(ValidationTest, EveryFieldAtAndBeyondItsLimit) {
  namespace l = busyfleet::limits;
  const std::vector<Case> cases = {
      {"tasks at limit", [](v1::JobSpec& s) { s.set_tasks(l::kMaxTasksPerJob); s.set_iterations(0); }, ""},
      {"tasks over limit", [](v1::JobSpec& s) { s.set_tasks(l::kMaxTasksPerJob + 1); },
       "tasks must be between 1 and 1000000, got 1000001"},
      {"tasks zero", [](v1::JobSpec& s) { s.set_tasks(0); }, "tasks must be between 1 and 1000000, got 0"},
      {"iterations at limit", [](v1::JobSpec& s) { s.set_tasks(1); s.set_iterations(l::kMaxIterationsPerTask); }, ""},
      {"iterations over limit", [](v1::JobSpec& s) { s.set_iterations(l::kMaxIterationsPerTask + 1); },
       "iterations must be between 0 and 10000000000000"},
      {"iterations wrapped negative", [](v1::JobSpec& s) { s.set_iterations(static_cast<uint64_t>(-5)); },
       "iterations must be between 0 and 10000000000000, got 18446744073709551611"},
      {"total below tasks", [](v1::JobSpec& s) { s.set_iterations(0); s.set_total(3); },
       "total must be at least tasks (4), got 3"},
      {"total overflowing per task", [](v1::JobSpec& s) { s.set_iterations(0); s.set_total(UINT64_MAX); },
       "total / tasks must be at most 10000000000000"},
      {"kind unspecified", [](v1::JobSpec& s) { s.set_kind(v1::TASK_KIND_UNSPECIFIED); }, "kind must be"},
      {"kind unknown number", [](v1::JobSpec& s) { s.set_kind(static_cast<v1::TaskKind>(99)); }, "kind must be"},
      {"spin without duration", [](v1::JobSpec& s) { s.set_kind(v1::TASK_KIND_SPIN); s.set_iterations(0); },
       "duration is required"},
      {"negative duration", [](v1::JobSpec& s) {
         s.set_kind(v1::TASK_KIND_SLEEP); s.set_iterations(0); s.mutable_duration()->set_seconds(-1); },
       "duration must be between 0s and 24h"},
      {"duration over limit", [](v1::JobSpec& s) {
         s.set_kind(v1::TASK_KIND_SLEEP); s.set_iterations(0); s.mutable_duration()->set_seconds(86401); },
       "duration must be between 0s and 24h"},
      {"max_attempts over limit", [](v1::JobSpec& s) { s.set_max_attempts(l::kMaxAttempts + 1); },
       "max_attempts must be between 1 and 100, got 101"},
      {"max_slots over limit", [](v1::JobSpec& s) { s.set_max_slots(l::kMaxSlotsPerJob + 1); },
       "max_slots must be between 0 (no cap) and 1000000"},
      {"name of 128 bytes", [](v1::JobSpec& s) { s.set_name(std::string(128, 'n')); }, ""},
      {"name of 129 bytes", [](v1::JobSpec& s) { s.set_name(std::string(129, 'n')); },
       "name must be at most 128 bytes, got 129"},
      {"name invalid UTF-8", [](v1::JobSpec& s) { s.set_name("bad\xff"); }, "name must be valid UTF-8"},
      {"name control character", [](v1::JobSpec& s) { s.set_name("a\nb"); }, "name must be printable"},
      {"too many worker names", [](v1::JobSpec& s) {
         for (size_t i = 0; i <= l::kMaxWorkerNames; ++i) s.add_workers("w" + std::to_string(i)); },
       "workers must list at most 1024 names, got 1025"},
      {"too many selector entries", [](v1::JobSpec& s) {
         for (size_t i = 0; i <= l::kMaxLabels; ++i) (*s.mutable_selector())["k" + std::to_string(i)] = "v"; },
       "selector must have at most 64 entries, got 65"},
      {"negative task timeout", [](v1::JobSpec& s) { s.mutable_task_timeout()->set_nanos(-1); },
       "task_timeout must be between 0s and 24h"},
  };
  for (const Case& c : cases) {
    v1::JobSpec spec = Countdown(4, 10'000'000);
    c.mutate(spec);
    const grpc::Status st = Submit(spec);
    if (c.error.empty()) {
      EXPECT_TRUE(st.ok()) << c.name << ": " << st.error_message();
    } else {
      EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << c.name << ": " << st.error_message();
      EXPECT_THAT(st.error_message(), HasSubstr(c.error)) << c.name;
    }
    ASSERT_TRUE(Healthy()) << "after " << c.name;
  }
}

TEST_F(ValidationTest, OversizedMessageIsRefusedAndTheServerStaysUp) {
  v1::JobSpec spec = Countdown(4, 10'000'000);
  spec.set_name(std::string(20 * 1024 * 1024, 'x'));  // over the 16 MiB message limit
  const grpc::Status st = Submit(spec);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << st.error_message();
  EXPECT_TRUE(Healthy());
  EXPECT_TRUE(Submit(Countdown(4, 10'000'000)).ok());
}

TEST_F(ValidationTest, ListJobsLimitIsChecked) {
  grpc::ClientContext ctx;
  v1::ListJobsRequest req;
  req.set_limit(limits::kMaxListJobs + 1);
  v1::ListJobsResponse resp;
  const grpc::Status st = client_->ListJobs(&ctx, req, &resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(st.error_message(), HasSubstr("limit must be between 1 and 1000"));
}

}  // namespace
}  // namespace busyfleet::testing
