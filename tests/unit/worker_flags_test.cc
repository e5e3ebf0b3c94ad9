#include "worker/worker_flags.h"

#include <stdlib.h>

#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace busyfleet::worker {
namespace {

using ::busyfleet::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Pair;

// Parses `args` (after the program name) into WorkerFlags; the security
// flags are stood in for by --token-file, which is where AddTo puts them.
class WorkerFlagsParse {
 public:
  WorkerFlagsParse() {
    AddWorkerFlags(app_, flags_, [&](CLI::App& app) { app.add_option("--token-file", token_file_); });
  }
  void Parse(std::vector<const char*> args) {
    args.insert(args.begin(), "worker");
    app_.parse(static_cast<int>(args.size()), args.data());
  }
  CLI::App app_;
  WorkerFlags flags_;
  std::string token_file_;
};

TEST(AddWorkerFlagsTest, ParsesEveryFlag) {
  WorkerFlagsParse p;
  ASSERT_NO_THROW(p.Parse({"--coordinator", "10.0.0.1:7070", "--slots", "3", "--name", "w1", "--exec", "process",
                           "--labels", "zone=a", "--drain-timeout", "30s", "--token-file", "t", "--log-format",
                           "json", "--log-level", "debug", "--debug-clock-skew", "-3s"}));
  EXPECT_EQ(p.flags_.coordinator, "10.0.0.1:7070");
  EXPECT_EQ(p.flags_.slots, 3);
  EXPECT_EQ(p.flags_.name, "w1");
  EXPECT_EQ(p.flags_.exec, "process");
  EXPECT_EQ(p.flags_.labels, "zone=a");
  EXPECT_EQ(p.flags_.drain_timeout, "30s");
  EXPECT_EQ(p.token_file_, "t");
  EXPECT_EQ(p.flags_.log_format, "json");
  EXPECT_EQ(p.flags_.log_level, "debug");
  EXPECT_EQ(p.flags_.clock_skew, "-3s");
  EXPECT_EQ(p.flags_.bind, "auto") << "the default";
  ASSERT_NO_THROW(p.Parse({"--bind", "threads"}));
  EXPECT_EQ(p.flags_.bind, "threads");
}

TEST(AddWorkerFlagsTest, SecurityFlagsComeAfterDrainTimeoutInHelp) {
  WorkerFlagsParse p;
  const std::string help = p.app_.help();
  EXPECT_LT(help.find("--drain-timeout"), help.find("--token-file"));
  EXPECT_LT(help.find("--token-file"), help.find("--log-format"));
}

TEST(AddWorkerFlagsTest, RejectsBadValues) {
  for (std::vector<const char*> args : {std::vector<const char*>{"--slots", "5000"},
                                        {"--exec", "fork"},
                                        {"--bind", "sockets"},
                                        {"--drain-timeout", "forever"}}) {
    WorkerFlagsParse p;
    EXPECT_THROW(p.Parse(args), CLI::ParseError) << args[0];
  }
}

TEST(AddWorkerFlagsTest, TheEnvironmentSetsFlagsButNotTheTestingOne) {
  setenv("BUSYFLEET_SLOTS", "7", 1);
  setenv("BUSYFLEET_DEBUG_CLOCK_SKEW", "5s", 1);
  WorkerFlagsParse p;
  ASSERT_NO_THROW(p.Parse({}));
  unsetenv("BUSYFLEET_SLOTS");
  unsetenv("BUSYFLEET_DEBUG_CLOCK_SKEW");
  EXPECT_EQ(p.flags_.slots, 7);
  EXPECT_EQ(p.flags_.clock_skew, "");
}

TEST(ParseClockSkewTest, AcceptsADurationWithinAYearEitherWay) {
  ASSERT_OK_AND_ASSIGN(absl::Duration ahead, ParseClockSkew("5s"));
  EXPECT_EQ(ahead, absl::Seconds(5));
  ASSERT_OK_AND_ASSIGN(absl::Duration behind, ParseClockSkew("-3s"));
  EXPECT_EQ(behind, absl::Seconds(-3));
}

TEST(ParseClockSkewTest, RejectsGarbageAndMoreThanAYear) {
  EXPECT_THAT(ParseClockSkew("soon"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "--debug-clock-skew must be a duration within a year, like 5s or -3s; got \"soon\""));
  EXPECT_THAT(ParseClockSkew("9000h"), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("9000h")));
}

TEST(ParseLabelsTest, SplitsKeyValuePairs) {
  ASSERT_OK_AND_ASSIGN(auto labels, ParseLabels("zone=a,gpu=none,,empty="));
  EXPECT_THAT(labels, ElementsAre(Pair("empty", ""), Pair("gpu", "none"), Pair("zone", "a")));
  ASSERT_OK_AND_ASSIGN(auto none, ParseLabels(""));
  EXPECT_THAT(none, IsEmpty());
  ASSERT_OK_AND_ASSIGN(auto with_equals, ParseLabels("expr=a=b"));
  EXPECT_THAT(with_equals, ElementsAre(Pair("expr", "a=b")));
}

TEST(ParseLabelsTest, NamesTheBadEntry) {
  EXPECT_THAT(ParseLabels("zone=a,oops"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "--labels entries must look like key=value, got \"oops\""));
  EXPECT_THAT(ParseLabels("=v"), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("\"=v\"")));
}

HostInfo FourCoreHost() {
  HostInfo host;
  host.hostname = "box";
  host.logical_cpus = 8;
  host.physical_cores = 4;
  host.affinity_cpus = 8;
  host.cgroup_cpu_quota = 0;
  host.cpu_model = "Fast CPU";
  return host;
}

TEST(WorkerSettingsTest, SlotsFromTheFlagElseFromTheHost) {
  WorkerFlags flags;
  EXPECT_EQ(SlotsFor(flags, FourCoreHost()), 4);
  flags.slots = 2;
  EXPECT_EQ(SlotsFor(flags, FourCoreHost()), 2);
}

TEST(WorkerSettingsTest, NameFromTheFlagElseTheHostNameElseWorker) {
  WorkerFlags flags;
  HostInfo host = FourCoreHost();
  EXPECT_EQ(NameFor(flags, host), "box");
  host.hostname.clear();
  EXPECT_EQ(NameFor(flags, host), "worker");
  flags.name = "w7";
  EXPECT_EQ(NameFor(flags, host), "w7");
}

TEST(WorkerSettingsTest, ExecMode) {
  WorkerFlags flags;
  EXPECT_EQ(ExecModeFor(flags), v1::EXEC_MODE_THREAD);
  flags.exec = "process";
  EXPECT_EQ(ExecModeFor(flags), v1::EXEC_MODE_PROCESS);
}

TEST(WorkerSettingsTest, HostInfoMessageCarriesEveryField) {
  HostInfo host = FourCoreHost();
  host.cgroup_cpu_quota = 1.5;
  const v1::HostInfo m = HostInfoMessage(host);
  EXPECT_EQ(m.hostname(), "box");
  EXPECT_EQ(m.logical_cpus(), 8u);
  EXPECT_EQ(m.physical_cores(), 4u);
  EXPECT_EQ(m.affinity_cpus(), 8u);
  EXPECT_DOUBLE_EQ(m.cgroup_cpu_quota(), 1.5);
  EXPECT_EQ(m.cpu_model(), "Fast CPU");
  host.packages = 2;
  host.numa_nodes = 2;
  host.usable_cores = 3;
  host.usable_threads = 5;
  host.threads_per_core = 2;
  const v1::HostInfo t = HostInfoMessage(host);
  EXPECT_EQ(t.packages(), 2u);
  EXPECT_EQ(t.numa_nodes(), 2u);
  EXPECT_EQ(t.usable_cores(), 3u);
  EXPECT_EQ(t.usable_threads(), 5u);
  EXPECT_EQ(t.threads_per_core(), 2u);
}

std::unique_ptr<CpuTopology> Laptop() {  // 4 cores x 2 threads
  absl::StatusOr<std::unique_ptr<CpuTopology>> t =
      CpuTopology::FromXml(std::string(BUSYFLEET_TEST_DATA_DIR) + "/topology/laptop_4c8t.xml");
  EXPECT_TRUE(t.ok()) << t.status();
  return t.ok() ? *std::move(t) : nullptr;
}

WorkerFlags Bind(const std::string& mode) {
  WorkerFlags f;
  f.bind = mode;
  return f;
}

TEST(BindingForTest, AutoPinsSlotsThatTakeEveryCoreOnePerCore) {
  auto laptop = Laptop();
  ASSERT_NE(laptop, nullptr);
  absl::StatusOr<Binding> b = BindingFor(Bind("auto"), 4, laptop.get());
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(b->mode, BindMode::kCores);
  EXPECT_EQ(b->places, (std::vector<std::vector<int>>{{0, 1}, {2, 3}, {4, 5}, {6, 7}}));
  EXPECT_THAT(b->note, IsEmpty());
}

TEST(BindingForTest, AutoFloatsWithANoteWhenSlotsDoNotMatchTheCores) {
  auto laptop = Laptop();
  ASSERT_NE(laptop, nullptr);
  for (int slots : {2, 8}) {  // fewer: other workers may share the cores; more: they do not fit
    absl::StatusOr<Binding> b = BindingFor(Bind("auto"), slots, laptop.get());
    ASSERT_TRUE(b.ok()) << b.status();
    EXPECT_EQ(b->mode, BindMode::kNone) << slots;
    EXPECT_THAT(b->places, IsEmpty());
    EXPECT_THAT(b->note, HasSubstr("slots float")) << slots;
  }
  absl::StatusOr<Binding> unknown = BindingFor(Bind("auto"), 2, nullptr);
  ASSERT_TRUE(unknown.ok());
  EXPECT_EQ(unknown->mode, BindMode::kNone);
}

TEST(BindingForTest, ExplicitModesPinOrNameTheLimit) {
  auto laptop = Laptop();
  ASSERT_NE(laptop, nullptr);
  absl::StatusOr<Binding> cores = BindingFor(Bind("cores"), 2, laptop.get());
  ASSERT_TRUE(cores.ok());
  EXPECT_EQ(cores->places, (std::vector<std::vector<int>>{{0, 1}, {2, 3}}));
  absl::StatusOr<Binding> threads = BindingFor(Bind("threads"), 8, laptop.get());
  ASSERT_TRUE(threads.ok());
  EXPECT_EQ(threads->mode, BindMode::kThreads);
  EXPECT_EQ(threads->places.size(), 8u);
  EXPECT_THAT(BindingFor(Bind("cores"), 5, laptop.get()),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--bind cores: 5 slots need 5 distinct usable "
                                                                     "cores; this worker may use 4")));
  EXPECT_THAT(BindingFor(Bind("threads"), 9, laptop.get()),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("may use 8")));
  EXPECT_THAT(BindingFor(Bind("cores"), 1, nullptr),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("topology is unknown")));
  absl::StatusOr<Binding> none = BindingFor(Bind("none"), 2, laptop.get());
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->mode, BindMode::kNone);
  EXPECT_THAT(none->note, IsEmpty());
}

}  // namespace
}  // namespace busyfleet::worker
