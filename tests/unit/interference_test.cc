#include "worker/interference.h"

#include <fstream>
#include <sstream>
#include <string>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "busyfleet/v1/worker.pb.h"
#include "gtest/gtest.h"
#include "worker/executor.h"

namespace busyfleet::worker {
namespace {

// A captured file from tests/unit/data/proc.
std::string Captured(const std::string& name) {
  std::ifstream in(std::string(BUSYFLEET_TEST_DATA_DIR) + "/proc/" + name);
  EXPECT_TRUE(in.good()) << name;
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

TEST(InterferenceParseTest, SchedstatWaitIsTheSecondField) {
  // Captured from /proc/thread-self/schedstat: on-CPU ns, run_delay ns, timeslices.
  EXPECT_EQ(ParseSchedstatWait(Captured("schedstat")), 4260322);
  EXPECT_EQ(ParseSchedstatWait("151475 3348156 3\n"), 3348156);
  EXPECT_EQ(ParseSchedstatWait("151475 3348156"), 3348156);
  EXPECT_FALSE(ParseSchedstatWait(""));
  EXPECT_FALSE(ParseSchedstatWait("151475\n"));
  EXPECT_FALSE(ParseSchedstatWait("151475 x12 3\n"));
}

TEST(InterferenceParseTest, ProcStatStealPerCpuAndInAll) {
  const StealTicks s = ParseProcStatSteal(Captured("stat"));
  ASSERT_TRUE(s.total);
  EXPECT_EQ(*s.total, 4959u);
  EXPECT_EQ(s.cpus, 2);
  EXPECT_EQ(s.per_cpu[0], 2521u);
  EXPECT_EQ(s.per_cpu[1], 2438u);
  EXPECT_FALSE(s.per_cpu[2]);
}

TEST(InterferenceParseTest, ProcStatLineCutOffAtTheBufferEndIsIgnored) {
  const StealTicks s = ParseProcStatSteal(
      "cpu  10 0 0 0 0 0 0 30 0 0\ncpu0 5 0 0 0 0 0 0 12 0 0\ncpu1 5 0 0 0 0 0 0 1");
  EXPECT_EQ(s.total, 30u);
  EXPECT_EQ(s.per_cpu[0], 12u);
  EXPECT_FALSE(s.per_cpu[1]) << "a partial line could hold a truncated number";
  EXPECT_EQ(s.cpus, 1);
}

TEST(InterferenceParseTest, ProcStatOfAnOldKernelWithoutStealHasNone) {
  const StealTicks s = ParseProcStatSteal("cpu  10 0 0 0 0 0 0\ncpu0 10 0 0 0 0 0 0\nintr 1\n");
  EXPECT_FALSE(s.total);
  EXPECT_FALSE(s.per_cpu[0]);
}

TEST(InterferenceParseTest, CpuStatV1ThrottledTimeIsNanoseconds) {
  const std::optional<CpuStat> s = ParseCpuStat(Captured("cpu.stat.v1"));
  ASSERT_TRUE(s);
  EXPECT_EQ(s->nr_periods, 412u);
  EXPECT_EQ(s->nr_throttled, 318u);
  EXPECT_EQ(s->throttled_ns, 25'321'854'207u);
}

TEST(InterferenceParseTest, CpuStatV2ThrottledUsecBecomesNanoseconds) {
  const std::optional<CpuStat> s = ParseCpuStat(Captured("cpu.stat.v2"));
  ASSERT_TRUE(s);
  EXPECT_EQ(s->nr_periods, 296u);
  EXPECT_EQ(s->nr_throttled, 231u);
  EXPECT_EQ(s->throttled_ns, 18'431'920'000u);
}

TEST(InterferenceParseTest, CpuStatWithoutTheCpuControllerHasNoThrottling) {
  EXPECT_FALSE(ParseCpuStat(Captured("cpu.stat.v2_nocpu")));
  EXPECT_FALSE(ParseCpuStat(""));
}

TEST(InterferenceParseTest, CpuStatPathOfTheV1CpuHierarchy) {
  // This machine: cgroup v1 with cpu mounted alone, and a v2 "unified" mount
  // beside it; the v1 cpu hierarchy is the one with the quota.
  EXPECT_EQ(CpuStatPath(Captured("cgroup_v1"), Captured("mountinfo_v1")), "/sys/fs/cgroup/cpu/cpu.stat");
  EXPECT_EQ(CpuStatPath("4:memory:/x\n1:cpu:/busyfleet-throttle-1\n0::/\n", Captured("mountinfo_v1")),
            "/sys/fs/cgroup/cpu/busyfleet-throttle-1/cpu.stat");
}

TEST(InterferenceParseTest, CpuStatPathWithCpuAndCpuacctCoMounted) {
  const std::string mountinfo =
      "33 25 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:15 - cgroup cgroup rw,cpu,cpuacct\n";
  EXPECT_EQ(CpuStatPath("6:cpu,cpuacct:/docker/abc\n", mountinfo), "/sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.stat");
  // cpuacct alone is not cpu.
  EXPECT_FALSE(CpuStatPath("2:cpuacct:/a\n", "33 25 0:29 / /c rw - cgroup cgroup rw,cpuacct\n"));
}

TEST(InterferenceParseTest, CpuStatPathOfCgroupV2) {
  EXPECT_EQ(CpuStatPath(Captured("cgroup_v2"), Captured("mountinfo_v2")),
            "/sys/fs/cgroup/system.slice/busyfleet-worker.service/cpu.stat");
  EXPECT_EQ(CpuStatPath("0::/\n", Captured("mountinfo_v2")), "/sys/fs/cgroup/cpu.stat");
}

TEST(InterferenceParseTest, CpuStatPathIsRelativeToTheMountedSubtree) {
  // A container sees its own cgroup mounted at /sys/fs/cgroup/cpu, the
  // hierarchy's /docker/abc subtree.
  const std::string mountinfo = "40 31 0:29 /docker/abc /sys/fs/cgroup/cpu ro - cgroup cgroup rw,cpu\n";
  EXPECT_EQ(CpuStatPath("3:cpu:/docker/abc\n", mountinfo), "/sys/fs/cgroup/cpu/cpu.stat");
  EXPECT_EQ(CpuStatPath("3:cpu:/docker/abc/job\n", mountinfo), "/sys/fs/cgroup/cpu/job/cpu.stat");
  // Not a prefix at a path boundary: kept whole.
  EXPECT_EQ(CpuStatPath("3:cpu:/docker/abcd\n", mountinfo), "/sys/fs/cgroup/cpu/docker/abcd/cpu.stat");
}

TEST(InterferenceParseTest, CpuStatPathWithoutACgroupMount) {
  EXPECT_FALSE(CpuStatPath(Captured("cgroup_v1"), "22 1 253:1 / / rw - ext4 /dev/vda1 rw\n"));
  EXPECT_FALSE(CpuStatPath("", Captured("mountinfo_v2")));
}

v1::Assignment Task(v1::TaskKind kind, uint64_t iterations, absl::Duration d = absl::ZeroDuration()) {
  v1::Assignment a;
  a.set_kind(kind);
  a.set_iterations(iterations);
  a.mutable_duration()->set_nanos(static_cast<int32_t>(absl::ToInt64Nanoseconds(d)));
  return a;
}

TEST(InterferenceProbeTest, TinyTasksAreNotWorthProbing) {
  constexpr uint64_t kWall = Executor::kWallIsCpuIterations;
  EXPECT_FALSE(WorthProbing(Task(v1::TASK_KIND_COUNTDOWN, kWall), kWall));
  EXPECT_FALSE(WorthProbing(Task(v1::TASK_KIND_COUNTDOWN, kWall + 1), kWall)) << "50 us of probe on a 20 us task";
  EXPECT_FALSE(WorthProbing(Task(v1::TASK_KIND_COUNTDOWN, kProbeMinIterations), kWall));
  EXPECT_TRUE(WorthProbing(Task(v1::TASK_KIND_COUNTDOWN, kProbeMinIterations + 1), kWall));
  EXPECT_TRUE(WorthProbing(Task(v1::TASK_KIND_COUNTDOWN, kProbeMinIterations * 2), kProbeMinIterations + 1));
  EXPECT_FALSE(WorthProbing(Task(v1::TASK_KIND_SPIN, 0, absl::Microseconds(999)), kWall));
  EXPECT_TRUE(WorthProbing(Task(v1::TASK_KIND_SPIN, 0, absl::Milliseconds(1)), kWall));
  EXPECT_FALSE(WorthProbing(Task(v1::TASK_KIND_SLEEP, 0, absl::Microseconds(10)), kWall));
}

// The real files of this host: a probe over some work fills what the host
// exposes (Linux always has schedstat, /proc/stat and rusage).
TEST(InterferenceProbeTest, ThreadProbeMeasuresOnThisHost) {
  v1::TaskResult r;
  const Interference::Probe begin = Interference::Begin(/*thread=*/true);
  r.set_start_mono_ns(1);
  r.set_end_mono_ns(1'000'000'001);
  Interference::End(begin, &r);
  ASSERT_TRUE(r.has_interference());
  EXPECT_TRUE(r.interference().has_run_queue_wait_ns());
  EXPECT_GE(r.interference().run_queue_wait_ns(), 0);
  EXPECT_TRUE(r.interference().has_involuntary_switches());
  EXPECT_TRUE(r.interference().has_steal_share());
  EXPECT_GE(r.interference().steal_share(), 0);
  EXPECT_LE(r.interference().steal_share(), 1);
}

TEST(InterferenceProbeTest, SkippedProbeLeavesNoInterference) {
  v1::TaskResult r;
  Interference::End(Interference::Probe{}, &r);
  EXPECT_FALSE(r.has_interference());
}

// Results of the executor, collected.
class Results {
 public:
  Executor::FinishedFn OnFinished() {
    return [this](const v1::TaskResult& r) {
      absl::MutexLock lock(&mu_);
      results_.push_back(r);
    };
  }
  std::vector<v1::TaskResult> Wait(size_t n) {
    absl::MutexLock lock(&mu_);
    auto enough = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return results_.size() >= n; };
    EXPECT_TRUE(mu_.AwaitWithDeadline(absl::Condition(&enough), absl::Now() + absl::Seconds(30)));
    return results_;
  }

 private:
  absl::Mutex mu_;
  std::vector<v1::TaskResult> results_ ABSL_GUARDED_BY(mu_);
};

class ExecutorInterferenceTest : public ::testing::TestWithParam<v1::ExecMode> {};

TEST_P(ExecutorInterferenceTest, ALongTaskIsMeasuredATinyOneIsNot) {
  Results results;
  Executor::Options o;
  o.slots = 1;
  o.default_exec = GetParam();
  Executor ex(o, [](const v1::TaskStarted&) {}, results.OnFinished());
  v1::Assignment big = Task(v1::TASK_KIND_COUNTDOWN, 20'000'000);
  big.mutable_task()->set_task_index(0);
  v1::Assignment tiny = Task(v1::TASK_KIND_COUNTDOWN, 1000);
  tiny.mutable_task()->set_task_index(1);
  ex.Submit(big);
  ex.Submit(tiny);
  const std::vector<v1::TaskResult> rs = results.Wait(2);
  ASSERT_EQ(rs.size(), 2u);
  for (const v1::TaskResult& r : rs) {
    SCOPED_TRACE(r.task().task_index());
    ASSERT_EQ(r.state(), v1::TASK_STATE_SUCCEEDED) << r.error();
    if (r.task().task_index() == 1) {
      EXPECT_FALSE(r.has_interference());
      continue;
    }
    ASSERT_TRUE(r.has_interference());
    EXPECT_TRUE(r.interference().has_run_queue_wait_ns()) << "schedstat of the slot thread or the child";
    EXPECT_TRUE(r.interference().has_involuntary_switches());
    EXPECT_TRUE(r.interference().has_steal_share());
  }
}

INSTANTIATE_TEST_SUITE_P(Modes, ExecutorInterferenceTest,
                         ::testing::Values(v1::EXEC_MODE_THREAD, v1::EXEC_MODE_PROCESS));

}  // namespace
}  // namespace busyfleet::worker
