// coordctl's command line and output, without a coordinator.

#include "coordinator/ctl/commands.h"

#include <stdlib.h>

#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "absl/time/clock.h"
#include "coordinator/ctl/coordctl_client.h"
#include "coordinator/ctl/output.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace busyfleet::coordctl {
namespace {

using ::busyfleet::testing::StatusIs;
using ::testing::HasSubstr;

// coordctl's command line, parsed as main parses it.
class CommandLine {
 public:
  CommandLine() : commands_(SetUpCommandLine(app_, flags_)) {}

  void Parse(std::vector<const char*> args) {
    args.insert(args.begin(), "coordctl");
    app_.parse(static_cast<int>(args.size()), args.data());
  }
  // The name of the subcommand the command line chose, or "".
  std::string Chosen() const {
    for (const Command& c : commands_) {
      if (*c.app) return c.app->get_name();
    }
    return "";
  }

  CLI::App app_;
  GlobalFlags flags_;
  std::vector<Command> commands_;
};

TEST(CommandLineTest, EverySubcommandInHelpOrder) {
  CommandLine cl;
  std::vector<std::string> names;
  for (const Command& c : cl.commands_) names.push_back(c.app->get_name());
  EXPECT_THAT(names, ::testing::ElementsAre("submit", "status", "watch", "prune", "jobs", "workers", "health",
                                            "timeline", "compare", "bench", "cancel", "delete", "drain"));
}

TEST(CommandLineTest, JobsPruneIsASubcommandOfJobs) {
  CommandLine cl;
  ASSERT_NO_THROW(cl.Parse({"jobs", "prune", "--keep", "5", "--older-than", "30d", "--dry-run", "-o", "json"}));
  EXPECT_EQ(cl.Chosen(), "prune");
  EXPECT_EQ(cl.flags_.output, "json");
  CommandLine plain;
  ASSERT_NO_THROW(plain.Parse({"jobs", "--limit", "3"}));
  EXPECT_EQ(plain.Chosen(), "jobs");
  CommandLine bad;
  EXPECT_THROW(bad.Parse({"jobs", "prune", "--older-than", "soon"}), CLI::ParseError);
}

TEST(CommandLineTest, DeleteTakesOneOrMoreJobs) {
  CommandLine cl;
  ASSERT_NO_THROW(cl.Parse({"delete", "j-1", "j-2"}));
  EXPECT_EQ(cl.Chosen(), "delete");
  CommandLine none;
  EXPECT_THROW(none.Parse({"delete"}), CLI::ParseError);
}

TEST(CommandLineTest, ChoosesTheSubcommand) {
  CommandLine cl;
  ASSERT_NO_THROW(cl.Parse({"--coordinator", "10.0.0.1:7070", "status", "j-1", "--tasks"}));
  EXPECT_EQ(cl.Chosen(), "status");
  EXPECT_EQ(cl.flags_.coordinator, "10.0.0.1:7070");
}

TEST(CommandLineTest, GlobalFlagsMayFollowTheSubcommand) {
  CommandLine cl;
  ASSERT_NO_THROW(cl.Parse({"workers", "-o", "json", "--timeout", "2s"}));
  EXPECT_EQ(cl.Chosen(), "workers");
  EXPECT_EQ(cl.flags_.output, "json");
  EXPECT_EQ(cl.flags_.timeout, "2s");
}

TEST(CommandLineTest, TheLastOfARepeatedFlagWins) {
  CommandLine cl;
  ASSERT_NO_THROW(cl.Parse({"--coordinator", "a:1", "--coordinator", "b:2", "jobs", "--limit", "3", "--limit", "4"}));
  EXPECT_EQ(cl.flags_.coordinator, "b:2");
}

TEST(CommandLineTest, OneSubcommandIsRequired) {
  CommandLine none;
  EXPECT_THROW(none.Parse({}), CLI::ParseError);
  CommandLine unknown;
  EXPECT_THROW(unknown.Parse({"frobnicate"}), CLI::ParseError);
}

TEST(CommandLineTest, BadValuesAreParseErrors) {
  for (std::vector<const char*> args : {std::vector<const char*>{"-o", "yaml", "jobs"},
                                        {"--timeout", "10", "jobs"},
                                        {"submit", "--kind", "bogus"},
                                        {"submit", "--iterations", "-5"},
                                        {"status"},
                                        {"status", "j", "--tasks-limit", "0"},
                                        {"timeline", "j", "--format", "png"},
                                        {"bench", "--iterations", "0"}}) {
    CommandLine cl;
    EXPECT_THROW(cl.Parse(args), CLI::ParseError) << args[0] << " " << args[1];
  }
}

TEST(CommandLineTest, TheEnvironmentSetsGlobalFlagsOnly) {
  setenv("BUSYFLEET_COORDINATOR", "env:7070", 1);
  setenv("BUSYFLEET_NAME", "from-env", 1);  // submit --name: not bound
  CommandLine cl;
  ASSERT_NO_THROW(cl.Parse({"jobs"}));
  unsetenv("BUSYFLEET_COORDINATOR");
  unsetenv("BUSYFLEET_NAME");
  EXPECT_EQ(cl.flags_.coordinator, "env:7070");
}

TEST(JsonOutputTest, TableOnATerminalJsonWhenPipedUnlessAsked) {
  GlobalFlags flags;
  EXPECT_FALSE(JsonOutput(flags, /*stdout_is_terminal=*/true));
  EXPECT_TRUE(JsonOutput(flags, /*stdout_is_terminal=*/false));
  flags.output = "json";
  EXPECT_TRUE(JsonOutput(flags, true));
  flags.output = "table";
  EXPECT_FALSE(JsonOutput(flags, false));
}

TEST(ClientOptionsTest, FromTheGlobalFlags) {
  GlobalFlags flags;
  flags.coordinator = "10.0.0.1:7070";
  flags.timeout = "2500ms";
  ASSERT_OK_AND_ASSIGN(CoordinatorClient::Options options, ClientOptions(flags));
  EXPECT_EQ(options.address, "10.0.0.1:7070");
  EXPECT_EQ(options.timeout, absl::Milliseconds(2500));
  EXPECT_EQ(options.security.token, "");
}

TEST(ClientOptionsTest, AnUnreadableTokenFileIsAnError) {
  GlobalFlags flags;
  flags.security.token_file = "/nonexistent/token";
  EXPECT_THAT(ClientOptions(flags), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--token-file")));
}

// Captures what is written to std::cout while it lives.
class CaptureStdout {
 public:
  CaptureStdout() : old_(std::cout.rdbuf(out_.rdbuf())) {}
  ~CaptureStdout() { std::cout.rdbuf(old_); }
  std::string str() const { return out_.str(); }

 private:
  std::ostringstream out_;
  std::streambuf* old_;
};

TEST(PrintResultTest, JsonIndentedOrTheTableAsItIsBuildingOnlyOne) {
  int built = 0;
  auto json = [&] { ++built; return nlohmann::json{{"id", "j-1"}}; };
  auto table = [&] { ++built; return std::string("j-1\n"); };
  {
    CaptureStdout out;
    PrintResult(/*json=*/true, json, table);
    EXPECT_EQ(out.str(), "{\n  \"id\": \"j-1\"\n}\n");
  }
  {
    CaptureStdout out;
    PrintResult(/*json=*/false, json, table);
    EXPECT_EQ(out.str(), "j-1\n");
  }
  EXPECT_EQ(built, 2);
}

v1::JobReport ReportWithRows(uint32_t rows, uint32_t total) {
  v1::JobReport report;
  report.set_id("j-1");
  report.set_state(v1::JOB_STATE_SUCCEEDED);
  report.set_tasks_total(total);
  for (uint32_t i = 0; i < rows; ++i) report.add_tasks()->set_index(i);
  return report;
}

TEST(ReportJsonTest, AWholeReportKeepsItsRows) {
  const nlohmann::json j = ReportJson(ReportWithRows(3, 3));
  EXPECT_EQ(j["tasks"].size(), 3u);
  EXPECT_FALSE(j.contains("tasks_omitted"));
  EXPECT_FALSE(j.contains("tasks_offset"));
}

TEST(ReportJsonTest, APartialReportShowsNoRowsAndSaysHowManyWereLeftOut) {
  const nlohmann::json j = ReportJson(ReportWithRows(2, 5));
  EXPECT_EQ(j["tasks"].size(), 0u);
  EXPECT_EQ(j["tasks_omitted"], 5);
}

TEST(ReportJsonTest, APageKeepsItsRowsAndSaysWhereItStarts) {
  v1::JobReport report = ReportWithRows(2, 5);
  report.set_tasks_offset(3);
  const nlohmann::json j = ReportJson(report, /*page=*/true);
  EXPECT_EQ(j["tasks"].size(), 2u);
  EXPECT_EQ(j["tasks_offset"], 3);
  EXPECT_FALSE(j.contains("tasks_omitted"));
}

TEST(PrintReportTest, ATableOfAPartialReportSaysHowToListTheRows) {
  CaptureStdout out;
  PrintReport(/*json=*/false, ReportWithRows(2, 5), /*show_tasks=*/true);
  EXPECT_THAT(out.str(), HasSubstr("(5 task rows left out; `coordctl status j-1 --tasks` lists them, "
                                   "--tasks-offset/--tasks-limit a page)\n"));
}

TEST(ExitForJobStateTest, FailedOrCancelledJobsExitOne) {
  EXPECT_EQ(ExitForJobState(v1::JOB_STATE_SUCCEEDED), kExitOk);
  EXPECT_EQ(ExitForJobState(v1::JOB_STATE_RUNNING), kExitOk);
  EXPECT_EQ(ExitForJobState(v1::JOB_STATE_FAILED), kExitFailed);
  EXPECT_EQ(ExitForJobState(v1::JOB_STATE_CANCELLED), kExitFailed);
}

TEST(WaitForReadyWorkersTest, AnUnreachableCoordinatorCountsNoneUntilTheDeadline) {
  CoordinatorClient::Options options;
  options.address = "127.0.0.1:1";  // nothing listens on port 1
  options.timeout = absl::Seconds(2);
  CoordinatorClient client(options);
  const absl::Time start = absl::Now();
  ASSERT_OK_AND_ASSIGN(uint32_t ready, client.WaitForReadyWorkers(1, start + absl::Milliseconds(300)));
  EXPECT_EQ(ready, 0u);
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(300));
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
}

}  // namespace
}  // namespace busyfleet::coordctl
