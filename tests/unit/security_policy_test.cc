#include "coordinator/server/security_policy.h"

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace busyfleet::coordinator {
namespace {

using ::busyfleet::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr char kRefusedListen[] =
    "refusing to listen on 0.0.0.0:7070 (--listen) without authentication: only loopback addresses are safe "
    "without a token or TLS. Pass --insecure to do it anyway.";
constexpr char kRefusedHttp[] =
    "refusing to listen on 0.0.0.0:7071 (--http-listen) without authentication: only loopback addresses are safe "
    "without a token or TLS. Pass --insecure to do it anyway.";
constexpr char kWarnListen[] =
    "INSECURE: serving 0.0.0.0:7070 (--listen) with no authentication; anyone who can reach this port can run "
    "jobs on your workers and read every report";
constexpr char kWarnHttp[] =
    "INSECURE: serving 0.0.0.0:7071 (--http-listen) with no authentication; anyone who can reach this port can "
    "read every report and worker";

// Served as it is: neither refused nor warned about.
MATCHER(ServedSilently, "") { return arg.refusal.empty() && arg.warnings.empty(); }

DaemonFlags Listening(const std::string& listen, const std::string& http_listen) {
  DaemonFlags flags;
  flags.listen = listen;
  flags.http_listen = http_listen;
  return flags;
}

DaemonFlags Exposed() { return Listening("0.0.0.0:7070", "0.0.0.0:7071"); }

TEST(DecideSecurityTest, DefaultsServeLoopbackInPlaintext) {
  ASSERT_OK_AND_ASSIGN(SecurityDecision d, DecideSecurity(DaemonFlags{}));
  EXPECT_FALSE(d.tokens);
  EXPECT_EQ(d.transport, "plaintext");
  EXPECT_THAT(d, ServedSilently());
}

TEST(DecideSecurityTest, EveryLoopbackSpellingIsSafeWithoutProtection) {
  for (const char* host : {"127.0.0.1:0", "127.1.2.3:7070", "[::1]:7070", "localhost:7070"}) {
    ASSERT_OK_AND_ASSIGN(SecurityDecision d, DecideSecurity(Listening(host, host)));
    EXPECT_THAT(d, ServedSilently()) << host;
  }
}

TEST(DecideSecurityTest, ListenWithoutPortIsAnError) {
  EXPECT_THAT(DecideSecurity(Listening("nope", "127.0.0.1:7071")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--listen")));
}

TEST(DecideSecurityTest, HttpListenWithoutPortIsAnError) {
  EXPECT_THAT(DecideSecurity(Listening("127.0.0.1:7070", "nope")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--http-listen")));
}

TEST(DecideSecurityTest, AddressErrorsComeBeforeTheTokenFileCheck) {
  DaemonFlags flags = Listening("nope", "127.0.0.1:7071");
  flags.token_file = flags.worker_token_file = flags.client_token_file = "t";
  EXPECT_THAT(DecideSecurity(flags), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--listen")));
}

TEST(DecideSecurityTest, EmptyHttpListenIsNoListenerAndNotChecked) {
  ASSERT_OK_AND_ASSIGN(SecurityDecision d, DecideSecurity(Listening("127.0.0.1:7070", "")));
  EXPECT_THAT(d.refusal, IsEmpty());
  DaemonFlags flags = Listening("0.0.0.0:7070", "");
  flags.insecure = true;
  ASSERT_OK_AND_ASSIGN(d, DecideSecurity(flags));
  EXPECT_THAT(d.warnings, ElementsAre(kWarnListen));
}

TEST(DecideSecurityTest, TokenFileBesideBothRoleFilesIsAnError) {
  DaemonFlags flags;
  flags.token_file = "a";
  flags.worker_token_file = "b";
  flags.client_token_file = "c";
  EXPECT_THAT(DecideSecurity(flags),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "--token-file would be ignored: --worker-token-file and --client-token-file are both given"));
}

TEST(DecideSecurityTest, NonLoopbackListenWithoutProtectionIsRefused) {
  ASSERT_OK_AND_ASSIGN(SecurityDecision d, DecideSecurity(Listening("0.0.0.0:7070", "127.0.0.1:7071")));
  EXPECT_EQ(d.refusal, kRefusedListen);
  EXPECT_THAT(d.warnings, IsEmpty());
}

TEST(DecideSecurityTest, NonLoopbackHttpListenWithoutProtectionIsRefused) {
  ASSERT_OK_AND_ASSIGN(SecurityDecision d, DecideSecurity(Listening("127.0.0.1:7070", "0.0.0.0:7071")));
  EXPECT_EQ(d.refusal, kRefusedHttp);
}

TEST(DecideSecurityTest, TheListenRefusalComesFirst) {
  ASSERT_OK_AND_ASSIGN(SecurityDecision d, DecideSecurity(Exposed()));
  EXPECT_EQ(d.refusal, kRefusedListen);
}

TEST(DecideSecurityTest, InsecureServesEveryExposedListenerWithAWarning) {
  DaemonFlags flags = Exposed();
  flags.insecure = true;
  ASSERT_OK_AND_ASSIGN(SecurityDecision d, DecideSecurity(flags));
  EXPECT_THAT(d.refusal, IsEmpty());
  EXPECT_THAT(d.warnings, ElementsAre(kWarnListen, kWarnHttp));
}

TEST(DecideSecurityTest, InsecureWarnsOnlyAboutExposedListeners) {
  DaemonFlags flags = Listening("127.0.0.1:7070", "0.0.0.0:7071");
  flags.insecure = true;
  ASSERT_OK_AND_ASSIGN(SecurityDecision d, DecideSecurity(flags));
  EXPECT_THAT(d.warnings, ElementsAre(kWarnHttp));
}

TEST(DecideSecurityTest, AnyTokenFileProtectsEveryListener) {
  using File = std::string DaemonFlags::*;
  // One file, or two (--token-file beside a single role's file is allowed).
  const std::vector<std::vector<File>> cases = {
      {&DaemonFlags::token_file},
      {&DaemonFlags::worker_token_file},
      {&DaemonFlags::client_token_file},
      {&DaemonFlags::worker_token_file, &DaemonFlags::client_token_file},
      {&DaemonFlags::token_file, &DaemonFlags::worker_token_file},
      {&DaemonFlags::token_file, &DaemonFlags::client_token_file},
  };
  for (const std::vector<File>& files : cases) {
    DaemonFlags flags = Exposed();
    for (File file : files) flags.*file = "token";
    ASSERT_OK_AND_ASSIGN(SecurityDecision d, DecideSecurity(flags));
    EXPECT_TRUE(d.tokens);
    EXPECT_EQ(d.transport, "plaintext");
    EXPECT_THAT(d, ServedSilently());
  }
}

TEST(DecideSecurityTest, TlsCertProtectsEveryListener) {
  DaemonFlags flags = Exposed();
  flags.tls_cert = "cert.pem";
  flags.tls_key = "key.pem";
  ASSERT_OK_AND_ASSIGN(SecurityDecision d, DecideSecurity(flags));
  EXPECT_FALSE(d.tokens);
  EXPECT_EQ(d.transport, "TLS");
  EXPECT_THAT(d, ServedSilently());
  flags.tls_client_ca = "ca.pem";
  ASSERT_OK_AND_ASSIGN(d, DecideSecurity(flags));
  EXPECT_EQ(d.transport, "mutual TLS");
}

TEST(DecideSecurityTest, HalfATlsSetupProtectsNothing) {
  // The server credentials reject it when they are built; the policy itself
  // counts only --tls-cert.
  DaemonFlags flags = Exposed();
  flags.tls_key = "key.pem";
  flags.tls_client_ca = "ca.pem";
  ASSERT_OK_AND_ASSIGN(SecurityDecision d, DecideSecurity(flags));
  EXPECT_EQ(d.transport, "plaintext");
  EXPECT_EQ(d.refusal, kRefusedListen);
}

}  // namespace
}  // namespace busyfleet::coordinator
