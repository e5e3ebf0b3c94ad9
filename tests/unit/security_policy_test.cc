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
    "without it. Add tokens (--worker-token-file and --client-token-file, or --token-file) or mutual TLS "
    "(--tls-client-ca) with TLS (--tls-cert, --tls-key), or pass --insecure to do it anyway.";
constexpr char kRefusedHttp[] =
    "refusing to listen on 0.0.0.0:7071 (--http-listen) without authentication: only loopback addresses are safe "
    "without it. Add tokens (--worker-token-file and --client-token-file, or --token-file) or mutual TLS "
    "(--tls-client-ca) with TLS (--tls-cert, --tls-key), or pass --insecure to do it anyway.";
constexpr char kRefusedTlsAlone[] =
    "refusing to listen on 0.0.0.0:7070 (--listen) with TLS alone: TLS without client certificates authenticates "
    "only the server, so anyone who can reach this port could run jobs on your workers and read every report. "
    "Add tokens (--worker-token-file and --client-token-file, or --token-file) or mutual TLS (--tls-client-ca), "
    "or pass --insecure to do it anyway.";
constexpr char kWarnTlsAlone[] =
    "INSECURE: serving 0.0.0.0:7070 (--listen) with TLS but no client authentication; anyone who can reach this "
    "port can run jobs on your workers and read every report";
constexpr char kCleartextListen[] =
    "CLEARTEXT: tokens cross the network unencrypted on 0.0.0.0:7070 (--listen); anyone on the path can read and "
    "reuse them. Add --tls-cert and --tls-key.";
constexpr char kCleartextHttp[] =
    "CLEARTEXT: tokens cross the network unencrypted on 0.0.0.0:7071 (--http-listen); anyone on the path can read "
    "and reuse them. Add --tls-cert and --tls-key.";
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

// The role token files in every combination the flags allow: one file, or
// two (--token-file beside a single role's file is allowed).
std::vector<DaemonFlags> WithEachTokenCombination(const DaemonFlags& base) {
  using File = std::string DaemonFlags::*;
  const std::vector<std::vector<File>> cases = {
      {&DaemonFlags::token_file},
      {&DaemonFlags::worker_token_file},
      {&DaemonFlags::client_token_file},
      {&DaemonFlags::worker_token_file, &DaemonFlags::client_token_file},
      {&DaemonFlags::token_file, &DaemonFlags::worker_token_file},
      {&DaemonFlags::token_file, &DaemonFlags::client_token_file},
  };
  std::vector<DaemonFlags> out;
  for (const std::vector<File>& files : cases) {
    DaemonFlags flags = base;
    for (File file : files) flags.*file = "token";
    out.push_back(flags);
  }
  return out;
}

TEST(DecideSecurityTest, TokensWithTlsProtectEveryListenerSilently) {
  DaemonFlags base = Exposed();
  base.tls_cert = "cert.pem";
  base.tls_key = "key.pem";
  for (const DaemonFlags& flags : WithEachTokenCombination(base)) {
    ASSERT_OK_AND_ASSIGN(SecurityDecision d, DecideSecurity(flags));
    EXPECT_TRUE(d.tokens);
    EXPECT_EQ(d.transport, "TLS");
    EXPECT_THAT(d, ServedSilently());
  }
}

TEST(DecideSecurityTest, TokensWithoutTlsAreServedWithACleartextWarning) {
  for (const DaemonFlags& flags : WithEachTokenCombination(Exposed())) {
    ASSERT_OK_AND_ASSIGN(SecurityDecision d, DecideSecurity(flags));
    EXPECT_TRUE(d.tokens);
    EXPECT_EQ(d.transport, "plaintext");
    EXPECT_THAT(d.refusal, IsEmpty());
    EXPECT_THAT(d.warnings, ElementsAre(kCleartextListen, kCleartextHttp));
  }
}

TEST(DecideSecurityTest, TokensWithoutTlsOnLoopbackAreSilent) {
  DaemonFlags flags;
  flags.token_file = "token";
  ASSERT_OK_AND_ASSIGN(SecurityDecision d, DecideSecurity(flags));
  EXPECT_THAT(d, ServedSilently());
}

TEST(DecideSecurityTest, TlsAloneAuthenticatesNoClientAndIsRefused) {
  DaemonFlags flags = Exposed();
  flags.tls_cert = "cert.pem";
  flags.tls_key = "key.pem";
  ASSERT_OK_AND_ASSIGN(SecurityDecision d, DecideSecurity(flags));
  EXPECT_FALSE(d.tokens);
  EXPECT_EQ(d.transport, "TLS");
  EXPECT_EQ(d.refusal, kRefusedTlsAlone);
}

TEST(DecideSecurityTest, TlsAloneWithInsecureIsServedWithAWarning) {
  DaemonFlags flags = Listening("0.0.0.0:7070", "");
  flags.tls_cert = "cert.pem";
  flags.tls_key = "key.pem";
  flags.insecure = true;
  ASSERT_OK_AND_ASSIGN(SecurityDecision d, DecideSecurity(flags));
  EXPECT_THAT(d.refusal, IsEmpty());
  EXPECT_THAT(d.warnings, ElementsAre(kWarnTlsAlone));
}

TEST(DecideSecurityTest, MutualTlsProtectsEveryListenerWithoutTokens) {
  // The HTTP listener too: with a client CA it requires client certificates.
  DaemonFlags flags = Exposed();
  flags.tls_cert = "cert.pem";
  flags.tls_key = "key.pem";
  flags.tls_client_ca = "ca.pem";
  ASSERT_OK_AND_ASSIGN(SecurityDecision d, DecideSecurity(flags));
  EXPECT_FALSE(d.tokens);
  EXPECT_EQ(d.transport, "mutual TLS");
  EXPECT_THAT(d, ServedSilently());
}

TEST(DecideSecurityTest, AViewerTokenAloneAuthenticatesNothing) {
  // Its file is refused when read (the viewer needs the other roles); the
  // policy does not count it.
  DaemonFlags flags = Exposed();
  flags.viewer_token_file = "viewer";
  ASSERT_OK_AND_ASSIGN(SecurityDecision d, DecideSecurity(flags));
  EXPECT_FALSE(d.tokens);
  EXPECT_EQ(d.refusal, kRefusedListen);
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
