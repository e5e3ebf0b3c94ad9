#include "coordinator/server/daemon_options.h"

#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include <CLI/CLI.hpp>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace busyfleet::coordinator {
namespace {

using ::busyfleet::testing::StatusIs;
using ::testing::HasSubstr;

class BuildServerOptionsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::path(::testing::TempDir()) /
           ("daemon_options_" + std::to_string(getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string File(const std::string& name, const std::string& content) {
    const std::string path = (dir_ / name).string();
    std::ofstream(path) << content;
    return path;
  }

  std::filesystem::path dir_;
};

TEST_F(BuildServerOptionsTest, DefaultsGiveAnOpenLoopbackServer) {
  ASSERT_OK_AND_ASSIGN(CoordinatorServer::Options options, BuildServerOptions(DaemonFlags{}));
  EXPECT_EQ(options.listen, "127.0.0.1:7070");
  EXPECT_EQ(options.db, "busyfleet.db");
  EXPECT_EQ(options.worker_timeout, absl::Seconds(5));
  EXPECT_EQ(options.prefetch_per_worker, 0);
  EXPECT_FALSE(options.authenticator.enabled());
  ASSERT_TRUE(options.http.has_value());
  EXPECT_EQ(options.http->listen, "127.0.0.1:7071");
}

TEST_F(BuildServerOptionsTest, EmptyHttpListenMeansNoHttpListener) {
  DaemonFlags flags;
  flags.http_listen = "";
  ASSERT_OK_AND_ASSIGN(CoordinatorServer::Options options, BuildServerOptions(flags));
  EXPECT_FALSE(options.http.has_value());
}

TEST_F(BuildServerOptionsTest, OneTokenFileServesBothRoles) {
  DaemonFlags flags;
  flags.token_file = File("token", "s3cret\n");
  ASSERT_OK_AND_ASSIGN(CoordinatorServer::Options options, BuildServerOptions(flags));
  EXPECT_TRUE(options.authenticator.enabled());
  const absl::string_view bearer = "Bearer s3cret";
  EXPECT_OK(options.authenticator.CheckAuthorization(Role::kWorker, &bearer));
  EXPECT_OK(options.authenticator.CheckAuthorization(Role::kClient, &bearer));
}

TEST_F(BuildServerOptionsTest, ARoleFileWinsOverTheSharedOne) {
  DaemonFlags flags;
  flags.token_file = File("token", "shared");
  flags.worker_token_file = File("worker", "w");
  ASSERT_OK_AND_ASSIGN(CoordinatorServer::Options options, BuildServerOptions(flags));
  const absl::string_view worker = "Bearer w", shared = "Bearer shared";
  EXPECT_OK(options.authenticator.CheckAuthorization(Role::kWorker, &worker));
  EXPECT_OK(options.authenticator.CheckAuthorization(Role::kClient, &shared));
  EXPECT_FALSE(options.authenticator.CheckAuthorization(Role::kWorker, &shared).ok());
}

TEST_F(BuildServerOptionsTest, OneRoleAloneIsAnError) {
  DaemonFlags flags;
  flags.client_token_file = File("client", "c");
  EXPECT_THAT(BuildServerOptions(flags), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("both")));
}

TEST_F(BuildServerOptionsTest, UnreadableOrEmptyTokenFileIsAnErrorNamingTheFlag) {
  DaemonFlags flags;
  flags.worker_token_file = (dir_ / "missing").string();
  flags.client_token_file = File("client", "c");
  EXPECT_THAT(BuildServerOptions(flags),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--worker-token-file")));
  flags.worker_token_file = File("empty", "");
  EXPECT_THAT(BuildServerOptions(flags),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--worker-token-file")));
}

TEST_F(BuildServerOptionsTest, HalfATlsSetupIsAnError) {
  DaemonFlags flags;
  flags.tls_key = File("key.pem", "x");
  EXPECT_THAT(BuildServerOptions(flags), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--tls-cert")));
}

TEST(AddDaemonFlagsTest, ParsesEveryFlag) {
  CLI::App app;
  DaemonFlags flags;
  AddDaemonFlags(app, flags);
  const char* argv[] = {"coordinator", "--listen", "0.0.0.0:1", "--http-listen", "", "--db", ":memory:",
                        "--worker-timeout", "750ms", "--prefetch", "3", "--token-file", "t", "--insecure",
                        "--log-format", "json", "--log-level", "debug"};
  ASSERT_NO_THROW(app.parse(static_cast<int>(std::size(argv)), argv));
  EXPECT_EQ(flags.listen, "0.0.0.0:1");
  EXPECT_EQ(flags.http_listen, "");
  EXPECT_EQ(flags.db, ":memory:");
  EXPECT_EQ(flags.worker_timeout, "750ms");
  EXPECT_EQ(flags.prefetch, 3);
  EXPECT_EQ(flags.token_file, "t");
  EXPECT_TRUE(flags.insecure);
  EXPECT_EQ(flags.log_format, "json");
  EXPECT_EQ(flags.log_level, "debug");
}

TEST(AddDaemonFlagsTest, PeerCapsReachTheServerOptions) {
  CLI::App app;
  DaemonFlags flags;
  AddDaemonFlags(app, flags);
  const char* argv[] = {"coordinator", "--max-sessions", "7", "--max-watches", "3"};
  ASSERT_NO_THROW(app.parse(static_cast<int>(std::size(argv)), argv));
  ASSERT_OK_AND_ASSIGN(CoordinatorServer::Options options, BuildServerOptions(flags));
  EXPECT_EQ(options.max_sessions, 7u);
  EXPECT_EQ(options.max_watches, 3u);
  EXPECT_EQ(DaemonFlags{}.max_sessions, limits::kDefaultMaxSessions);
  EXPECT_EQ(DaemonFlags{}.max_watches, limits::kDefaultMaxWatches);
}

TEST(AddDaemonFlagsTest, RejectsBadValues) {
  for (std::vector<const char*> argv : {std::vector<const char*>{"coordinator", "--prefetch", "2000"},
                                        {"coordinator", "--worker-timeout", "5"},
                                        {"coordinator", "--log-format", "xml"},
                                        {"coordinator", "--max-sessions", "0"},
                                        {"coordinator", "--max-watches", "0"}}) {
    CLI::App app;
    DaemonFlags flags;
    AddDaemonFlags(app, flags);
    EXPECT_THROW(app.parse(static_cast<int>(argv.size()), argv.data()), CLI::ParseError) << argv[1];
  }
}

TEST(AddDaemonFlagsTest, TheEnvironmentSetsAFlagNotGiven) {
  setenv("BUSYFLEET_WORKER_TIMEOUT", "2s", 1);
  CLI::App app;
  DaemonFlags flags;
  AddDaemonFlags(app, flags);
  const char* argv[] = {"coordinator"};
  ASSERT_NO_THROW(app.parse(1, argv));
  unsetenv("BUSYFLEET_WORKER_TIMEOUT");
  EXPECT_EQ(flags.worker_timeout, "2s");
}

}  // namespace
}  // namespace busyfleet::coordinator
