// The viewer role: what each token may do (TokenAuthenticator), and the
// coordinator's --viewer-token-file and --session-ttl flags.

#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include <CLI/CLI.hpp>

#include "absl/status/status.h"
#include "common/rpc/auth.h"
#include "coordinator/server/daemon_options.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace busyfleet::coordinator {
namespace {

using ::busyfleet::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr Role kAllRoles[] = {Role::kWorker, Role::kClient, Role::kViewer};

TokenAuthenticator ThreeRoles() {
  absl::StatusOr<TokenAuthenticator> a = TokenAuthenticator::Create("w-token", "c-token", "v-token");
  EXPECT_OK(a.status());
  return a.ok() ? *std::move(a) : TokenAuthenticator();
}

TEST(ViewerRoleTest, EachTokenOpensItsRolesAndNoOther) {
  const TokenAuthenticator a = ThreeRoles();
  // worker: attach only; client: everything a client or viewer may; viewer: read only.
  EXPECT_OK(a.CheckToken(Role::kWorker, "w-token"));
  EXPECT_THAT(a.CheckToken(Role::kClient, "w-token"), StatusIs(absl::StatusCode::kPermissionDenied, ::testing::_));
  EXPECT_THAT(a.CheckToken(Role::kViewer, "w-token"), StatusIs(absl::StatusCode::kPermissionDenied, ::testing::_));
  EXPECT_THAT(a.CheckToken(Role::kWorker, "c-token"), StatusIs(absl::StatusCode::kPermissionDenied, ::testing::_));
  EXPECT_OK(a.CheckToken(Role::kClient, "c-token"));
  EXPECT_OK(a.CheckToken(Role::kViewer, "c-token"));
  EXPECT_THAT(a.CheckToken(Role::kWorker, "v-token"), StatusIs(absl::StatusCode::kPermissionDenied, ::testing::_));
  EXPECT_THAT(a.CheckToken(Role::kClient, "v-token"),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("a viewer token cannot")));
  EXPECT_OK(a.CheckToken(Role::kViewer, "v-token"));
}

TEST(ViewerRoleTest, UnknownTokensAreUnauthenticatedForEveryRole) {
  const TokenAuthenticator a = ThreeRoles();
  for (Role role : kAllRoles) {
    for (absl::string_view token : {"", "v-toke", "v-token2", "V-TOKEN"}) {
      EXPECT_THAT(a.CheckToken(role, token), StatusIs(absl::StatusCode::kUnauthenticated, ::testing::_)) << token;
    }
  }
}

TEST(ViewerRoleTest, WithoutAViewerTokenAnEmptyTokenIsNoViewer) {
  ASSERT_OK_AND_ASSIGN(TokenAuthenticator a, TokenAuthenticator::Create("w", "c"));
  EXPECT_THAT(a.CheckToken(Role::kViewer, ""), StatusIs(absl::StatusCode::kUnauthenticated, ::testing::_));
  EXPECT_OK(a.CheckToken(Role::kViewer, "c"));
}

TEST(ViewerRoleTest, RefusalsNeverContainAToken) {
  const TokenAuthenticator a = ThreeRoles();
  for (Role role : kAllRoles) {
    for (absl::string_view token : {"w-token", "c-token", "v-token", "guess-token"}) {
      const absl::Status st = a.CheckToken(role, token);
      EXPECT_THAT(std::string(st.message()), Not(HasSubstr(std::string(token)))) << token;
    }
  }
}

TEST(ViewerRoleTest, AViewerTokenNeedsTheOtherRoles) {
  EXPECT_THAT(TokenAuthenticator::Create("", "", "v"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--viewer-token-file")));
}

TEST(ViewerRoleTest, OpenAuthenticatorLetsEveryRoleIn) {
  const TokenAuthenticator open;
  for (Role role : kAllRoles) EXPECT_OK(open.CheckToken(role, ""));
}

TEST(ViewerRoleTest, RoleNames) {
  EXPECT_EQ(RoleName(Role::kWorker), "worker");
  EXPECT_EQ(RoleName(Role::kClient), "client");
  EXPECT_EQ(RoleName(Role::kViewer), "viewer");
}

class ViewerFlagsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::path(::testing::TempDir()) /
           ("viewer_role_" + std::to_string(getpid()) + "_" +
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

TEST_F(ViewerFlagsTest, TheViewerTokenFileOpensReadingOnly) {
  DaemonFlags flags;
  flags.token_file = File("token", "both\n");
  flags.viewer_token_file = File("viewer", "look\n");
  ASSERT_OK_AND_ASSIGN(CoordinatorServer::Options options, BuildServerOptions(flags));
  const absl::string_view viewer = "Bearer look";
  EXPECT_OK(options.authenticator.CheckAuthorization(Role::kViewer, &viewer));
  EXPECT_THAT(options.authenticator.CheckAuthorization(Role::kClient, &viewer),
              StatusIs(absl::StatusCode::kPermissionDenied, ::testing::_));
}

TEST_F(ViewerFlagsTest, AnEmptyViewerTokenFileIsAnErrorNamingTheFlag) {
  DaemonFlags flags;
  flags.token_file = File("token", "both\n");
  flags.viewer_token_file = File("viewer", " \n");
  EXPECT_THAT(BuildServerOptions(flags),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--viewer-token-file")));
}

TEST_F(ViewerFlagsTest, SessionTtlReachesTheHttpServer) {
  DaemonFlags flags;
  flags.session_ttl = "90m";
  ASSERT_OK_AND_ASSIGN(CoordinatorServer::Options options, BuildServerOptions(flags));
  ASSERT_TRUE(options.http.has_value());
  EXPECT_EQ(options.http->sessions.ttl, absl::Minutes(90));
}

TEST_F(ViewerFlagsTest, SessionTtlOutsideOneMinuteToThirtyDaysIsAnError) {
  for (const char* ttl : {"0s", "59s", "721h"}) {
    DaemonFlags flags;
    flags.session_ttl = ttl;
    EXPECT_THAT(BuildServerOptions(flags),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--session-ttl must be between 1m and 720h")))
        << ttl;
  }
}

TEST(ViewerFlagsParseTest, TheEnvironmentSetsTheViewerTokenFileAndSessionTtl) {
  setenv("BUSYFLEET_VIEWER_TOKEN_FILE", "/run/viewer.token", 1);
  setenv("BUSYFLEET_SESSION_TTL", "1h", 1);
  CLI::App app;
  DaemonFlags flags;
  AddDaemonFlags(app, flags);
  const char* argv[] = {"coordinator"};
  ASSERT_NO_THROW(app.parse(1, argv));
  unsetenv("BUSYFLEET_VIEWER_TOKEN_FILE");
  unsetenv("BUSYFLEET_SESSION_TTL");
  EXPECT_EQ(flags.viewer_token_file, "/run/viewer.token");
  EXPECT_EQ(flags.session_ttl, "1h");
}

TEST(ViewerFlagsParseTest, ABadSessionTtlIsRejected) {
  CLI::App app;
  DaemonFlags flags;
  AddDaemonFlags(app, flags);
  const char* argv[] = {"coordinator", "--session-ttl", "12"};
  EXPECT_THROW(app.parse(3, argv), CLI::ParseError);
}

}  // namespace
}  // namespace busyfleet::coordinator
