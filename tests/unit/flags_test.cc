#include "common/flags.h"

#include <stdlib.h>

#include <string>

#include <CLI/CLI.hpp>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace busyfleet {
namespace {

using ::busyfleet::testing::StatusIs;
using ::testing::HasSubstr;

// Sets an environment variable for the scope of a test and restores the
// previous state (unset) afterwards, even when an assertion fails.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) { setenv(name, value, 1); }
  ~ScopedEnv() { unsetenv(name_.c_str()); }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  std::string name_;
};

TEST(EnvNameForFlagTest, UppercasesAndReplacesDashes) {
  EXPECT_EQ(EnvNameForFlag("worker-timeout"), "BUSYFLEET_WORKER_TIMEOUT");
  EXPECT_EQ(EnvNameForFlag("listen"), "BUSYFLEET_LISTEN");
  EXPECT_EQ(EnvNameForFlag("tls-client-ca"), "BUSYFLEET_TLS_CLIENT_CA");
}

TEST(ParseDurationFlagTest, AcceptsAbseilSyntax) {
  ASSERT_OK_AND_ASSIGN(absl::Duration ms, ParseDurationFlag("worker-timeout", "500ms"));
  EXPECT_EQ(ms, absl::Milliseconds(500));
  ASSERT_OK_AND_ASSIGN(absl::Duration s, ParseDurationFlag("worker-timeout", "2s"));
  EXPECT_EQ(s, absl::Seconds(2));
  ASSERT_OK_AND_ASSIGN(absl::Duration m, ParseDurationFlag("worker-timeout", "1.5m"));
  EXPECT_EQ(m, absl::Seconds(90));
  ASSERT_OK_AND_ASSIGN(absl::Duration zero, ParseDurationFlag("worker-timeout", "0"));
  EXPECT_EQ(zero, absl::ZeroDuration());
}

TEST(ParseDurationFlagTest, AcceptsDays) {
  ASSERT_OK_AND_ASSIGN(absl::Duration month, ParseDurationFlag("retention", "30d"));
  EXPECT_EQ(month, absl::Hours(24 * 30));
  ASSERT_OK_AND_ASSIGN(absl::Duration half, ParseDurationFlag("retention", "1.5d"));
  EXPECT_EQ(half, absl::Hours(36));
  EXPECT_THAT(ParseDurationFlag("retention", "xd"),
              StatusIs(absl::StatusCode::kInvalidArgument, ::testing::AllOf(HasSubstr("retention"), HasSubstr("\"xd\""))));
  EXPECT_THAT(ParseDurationFlag("retention", "-2d"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("negative")));
  EXPECT_THAT(ParseDurationFlag("retention", "infd"), StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
}

TEST(ParseDurationFlagTest, RejectsGarbageNamingTheField) {
  EXPECT_THAT(ParseDurationFlag("worker-timeout", "abc"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       ::testing::AllOf(HasSubstr("worker-timeout"), HasSubstr("abc"))));
  EXPECT_THAT(ParseDurationFlag("worker-timeout", ""),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("worker-timeout")));
  // A bare number other than 0 has no unit.
  EXPECT_THAT(ParseDurationFlag("worker-timeout", "5"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("worker-timeout")));
}

TEST(ParseDurationFlagTest, RejectsNegativeNamingTheField) {
  EXPECT_THAT(ParseDurationFlag("task-timeout", "-1s"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       ::testing::AllOf(HasSubstr("task-timeout"), HasSubstr("negative"))));
}

TEST(DurationValidatorTest, AcceptsAndRejectsLikeParseDurationFlag) {
  CLI::Validator v = DurationValidator();
  std::string ok = "500ms";
  EXPECT_EQ(v(ok), "");
  std::string bad = "abc";
  EXPECT_NE(v(bad), "");
  std::string negative = "-1s";
  EXPECT_NE(v(negative), "");
}

TEST(AddLogFlagsTest, DefaultsAndChoices) {
  CLI::App app("test");
  std::string format = "text", level = "info";
  AddLogFlags(app, format, level);
  const char* argv[] = {"test", "--log-format", "json", "--log-level", "off"};
  ASSERT_NO_THROW(app.parse(5, argv));
  EXPECT_EQ(format, "json");
  EXPECT_EQ(level, "off");
  EXPECT_THAT(app.help(), ::testing::AllOf(HasSubstr("text or json"), HasSubstr("=text"), HasSubstr("=info")));
  for (const char* bad : {"--log-format=xml", "--log-level=verbose"}) {
    CLI::App strict("test");
    AddLogFlags(strict, format, level);
    const char* args[] = {"test", bad};
    EXPECT_THROW(strict.parse(2, args), CLI::ParseError) << bad;
  }
}

TEST(BindEnvironmentTest, EnvironmentSetsAnOptionNotGiven) {
  CLI::App app("test");
  std::string listen = "127.0.0.1:7070";
  app.add_option("--listen", listen);
  BindEnvironment(app);
  ScopedEnv env("BUSYFLEET_LISTEN", "0.0.0.0:9000");
  const char* argv[] = {"test"};
  ASSERT_NO_THROW(app.parse(1, argv));
  EXPECT_EQ(listen, "0.0.0.0:9000");
}

TEST(BindEnvironmentTest, FlagWinsOverEnvironment) {
  CLI::App app("test");
  std::string listen = "127.0.0.1:7070";
  app.add_option("--listen", listen);
  BindEnvironment(app);
  ScopedEnv env("BUSYFLEET_LISTEN", "0.0.0.0:9000");
  const char* argv[] = {"test", "--listen", "127.0.0.1:8080"};
  ASSERT_NO_THROW(app.parse(3, argv));
  EXPECT_EQ(listen, "127.0.0.1:8080");
}

TEST(BindEnvironmentTest, DefaultStaysWithoutFlagOrEnvironment) {
  unsetenv("BUSYFLEET_LISTEN");
  CLI::App app("test");
  std::string listen = "127.0.0.1:7070";
  app.add_option("--listen", listen);
  BindEnvironment(app);
  const char* argv[] = {"test"};
  ASSERT_NO_THROW(app.parse(1, argv));
  EXPECT_EQ(listen, "127.0.0.1:7070");
}

TEST(BindEnvironmentTest, DashedFlagUsesUnderscoredVariable) {
  CLI::App app("test");
  std::string timeout = "5s";
  app.add_option("--worker-timeout", timeout);
  BindEnvironment(app);
  ScopedEnv env("BUSYFLEET_WORKER_TIMEOUT", "750ms");
  const char* argv[] = {"test"};
  ASSERT_NO_THROW(app.parse(1, argv));
  EXPECT_EQ(timeout, "750ms");
}

TEST(BindEnvironmentTest, SubcommandOptionsAreNotBound) {
  CLI::App app("test");
  CLI::App* sub = app.add_subcommand("submit", "submit a job");
  std::string name = "default";
  sub->add_option("--name", name);
  BindEnvironment(app);
  ScopedEnv env("BUSYFLEET_NAME", "from-env");
  const char* argv[] = {"test", "submit"};
  ASSERT_NO_THROW(app.parse(2, argv));
  EXPECT_EQ(name, "default");
}

}  // namespace
}  // namespace busyfleet
