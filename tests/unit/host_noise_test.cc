#include "worker/host_noise.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "gtest/gtest.h"

namespace busyfleet::worker {
namespace {

std::string Captured(const std::string& name) {
  std::ifstream in(std::string(BUSYFLEET_TEST_DATA_DIR) + "/proc/" + name);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

TEST(ProcStatTest, SumsTheAggregateLineWithStealAndIdle) {
  const std::optional<CpuTimes> t = ParseProcStatCpu(Captured("stat_steal.txt"));
  ASSERT_TRUE(t.has_value());
  // user nice system idle iowait irq softirq steal
  EXPECT_EQ(t->total, 4705u + 356 + 584 + 3699 + 23 + 0 + 23 + 512);
  EXPECT_EQ(t->idle, 3699u + 23);
  EXPECT_EQ(t->steal, 512u);
}

TEST(ProcStatTest, AnOldKernelWithoutStealHasNone) {
  const std::optional<CpuTimes> t = ParseProcStatCpu("cpu  10 0 5 100 1\ncpu0 10 0 5 100 1\n");
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(t->total, 116u);
  EXPECT_EQ(t->steal, 0u);
}

TEST(ProcStatTest, GarbageIsRefused) {
  EXPECT_FALSE(ParseProcStatCpu("").has_value());
  EXPECT_FALSE(ParseProcStatCpu("cpu0 1 2 3 4\n").has_value());
  EXPECT_FALSE(ParseProcStatCpu("cpu  1 x 3 4 5\n").has_value());
}

TEST(LoadAvgTest, TakesTheOneMinuteFigure) {
  EXPECT_DOUBLE_EQ(*ParseLoadAvg("0.52 0.58 0.59 1/467 12345\n"), 0.52);
  EXPECT_FALSE(ParseLoadAvg("").has_value());
  EXPECT_FALSE(ParseLoadAvg("-1 0 0").has_value());
}

TEST(PidStatTest, ANameWithSpacesAndParentheses) {
  // Fields after the name: state ppid pgrp session tty tpgid flags minflt
  // cminflt majflt cmajflt utime stime cutime cstime ...
  const std::string line = "4242 (my (odd) name) R 1 4242 4242 0 -1 4194560 100 0 0 0 700 50 9 1 20 0 1 0";
  const std::optional<ProcessTicks> p = ParsePidStat(line);
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->name, "my (odd) name");
  EXPECT_EQ(p->ticks, 750u);
  EXPECT_EQ(ParsePidStat(line, /*children=*/true)->ticks, 760u);
}

TEST(PidStatTest, ANameOutsidePrintableAsciiIsMadeSafe) {
  const std::optional<ProcessTicks> p = ParsePidStat("7 (b\xff\x01z) S 1 7 7 0 -1 0 0 0 0 0 3 4 0 0 20 0 1 0");
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->name, "b??z");
}

TEST(PidStatTest, TruncatedLinesAreRefused) {
  EXPECT_FALSE(ParsePidStat("12 (x) S 1 2 3").has_value());
  EXPECT_FALSE(ParsePidStat("no parentheses").has_value());
}

// A fake /proc: two readings; the first sets the baseline.
class NoiseSamplerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = ::testing::TempDir() + "/noise_proc_" + std::to_string(::getpid());
    std::filesystem::create_directories(root_ + "/self");
    std::filesystem::create_directories(root_ + "/4242");
    Write("loadavg", "1.50 1.00 0.50 2/100 4242\n");
  }
  void TearDown() override { std::filesystem::remove_all(root_); }
  void Write(const std::string& file, const std::string& text) { std::ofstream(root_ + "/" + file) << text; }
  void Reading(uint64_t busy, uint64_t idle, uint64_t steal, uint64_t self_ticks, uint64_t other_ticks) {
    Write("stat", "cpu  " + std::to_string(busy) + " 0 0 " + std::to_string(idle) + " 0 0 0 " +
                      std::to_string(steal) + " 0 0\n");
    Write("self/stat", "1 (worker) S 0 1 1 0 -1 0 0 0 0 0 " + std::to_string(self_ticks) + " 0 0 0 20 0 1 0");
    Write("4242/stat", "4242 (hog) R 1 1 1 0 -1 0 0 0 0 0 " + std::to_string(other_ticks) + " 0 0 0 20 0 1 0");
  }
  std::string root_;
};

TEST_F(NoiseSamplerTest, StealAndOtherLoadOverTheInterval) {
  NoiseSampler sampler(root_, root_ + "/sys");
  Reading(1000, 1000, 0, 100, 500);
  EXPECT_FALSE(sampler.Sample(absl::Seconds(10)).has_value());  // the baseline
  // 1 s later, 2 CPUs at 100 ticks/s (the test assumes USER_HZ 100): 200
  // ticks in all, 40 of them steal, 120 busy of which 20 were the worker's.
  ASSERT_EQ(sysconf(_SC_CLK_TCK), 100);
  Reading(1120, 1040, 40, 120, 600);
  std::optional<v1::HostNoise> n = sampler.Sample(absl::Seconds(11));
  ASSERT_TRUE(n.has_value());
  EXPECT_DOUBLE_EQ(n->steal_share(), 0.2);
  EXPECT_DOUBLE_EQ(n->other_busy_cpus(), 1.0);
  EXPECT_DOUBLE_EQ(n->load1(), 1.5);
  EXPECT_DOUBLE_EQ(n->interval_seconds(), 1.0);
  EXPECT_EQ(n->governor(), "");  // no cpufreq here
  // The first busy sample only starts the process scan; the next names the hog.
  EXPECT_EQ(n->busy_size(), 0);
  Reading(1220, 1080, 40, 140, 690);
  n = sampler.Sample(absl::Seconds(12));
  ASSERT_TRUE(n.has_value());
  ASSERT_EQ(n->busy_size(), 1);
  EXPECT_EQ(n->busy(0).name(), "hog");
  EXPECT_EQ(n->busy(0).pid(), 4242u);
  EXPECT_DOUBLE_EQ(n->busy(0).cpus(), 0.9);
}

TEST_F(NoiseSamplerTest, AQuietHostHasNoListAndReadsTheGovernor) {
  std::filesystem::create_directories(root_ + "/sys/devices/system/cpu/cpu0/cpufreq");
  std::ofstream(root_ + "/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor") << "powersave\n";
  NoiseSampler sampler(root_, root_ + "/sys");
  Reading(1000, 1000, 0, 100, 500);
  sampler.Sample(absl::Seconds(1));
  Reading(1010, 1190, 0, 105, 501);
  const std::optional<v1::HostNoise> n = sampler.Sample(absl::Seconds(2));
  ASSERT_TRUE(n.has_value());
  EXPECT_EQ(n->governor(), "powersave");
  EXPECT_NEAR(n->other_busy_cpus(), 0.05, 1e-9);
  EXPECT_EQ(n->busy_size(), 0);
}

}  // namespace
}  // namespace busyfleet::worker
