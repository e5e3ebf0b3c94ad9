#include "worker/host_probe.h"

#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "worker/cpu_topology.h"

namespace busyfleet::worker {
namespace {

using ::testing::TempDir;

// Captured from a Docker container on a cgroup v1 host.
constexpr char kDockerV1Cgroup[] =
    "12:hugetlb:/docker/3f2a9c1e7b\n"
    "11:pids:/docker/3f2a9c1e7b\n"
    "10:memory:/docker/3f2a9c1e7b\n"
    "9:cpuset:/docker/3f2a9c1e7b\n"
    "8:net_cls,net_prio:/docker/3f2a9c1e7b\n"
    "7:blkio:/docker/3f2a9c1e7b\n"
    "6:freezer:/docker/3f2a9c1e7b\n"
    "5:devices:/docker/3f2a9c1e7b\n"
    "4:cpu,cpuacct:/docker/3f2a9c1e7b\n"
    "3:perf_event:/docker/3f2a9c1e7b\n"
    "2:rdma:/\n"
    "1:name=systemd:/docker/3f2a9c1e7b\n"
    "0::/system.slice/containerd.service\n";

// Captured inside a Docker container on a cgroup v2 host (cgroup namespace).
constexpr char kDockerV2Cgroup[] = "0::/\n";

// Captured from a systemd service on a cgroup v2 host.
constexpr char kSystemdV2Cgroup[] = "0::/system.slice/busyfleet-worker.service\n";

// Captured from a sandbox with separate cpu and cpuacct v1 hierarchies.
constexpr char kSplitCpuV1Cgroup[] =
    "9:name=systemd:/\n"
    "8:pids:/\n"
    "4:memory:/process_api/263ecc64\n"
    "3:cpuset:/\n"
    "2:cpuacct:/acct\n"
    "1:cpu:/limited\n"
    "0::/\n";

constexpr char kCpuInfo[] =
    "processor\t: 0\n"
    "vendor_id\t: GenuineIntel\n"
    "cpu family\t: 6\n"
    "model\t\t: 85\n"
    "model name\t: Intel(R) Xeon(R) Platinum 8259CL CPU @ 2.50GHz  \n"
    "stepping\t: 7\n"
    "\n"
    "processor\t: 1\n"
    "model name\t: Some Other CPU\n";

void ExpectInvalidArgumentNaming(const absl::Status& status, absl::string_view needle) {
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_TRUE(absl::StrContains(status.message(), needle))
      << "message \"" << status.message() << "\" does not name \"" << needle << "\"";
}

// A directory laid out like / for ProbeHost; removed on destruction.
class FakeRoot {
 public:
  FakeRoot() {
    static std::atomic<int> counter{0};
    path_ = std::filesystem::path(TempDir()) /
            absl::StrCat("host_probe_test_", getpid(), "_", counter++);
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~FakeRoot() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  FakeRoot(const FakeRoot&) = delete;
  FakeRoot& operator=(const FakeRoot&) = delete;

  void Write(const std::string& relative, const std::string& content) {
    std::filesystem::path file = path_ / relative;
    std::filesystem::create_directories(file.parent_path());
    std::ofstream out(file, std::ios::binary | std::ios::trunc);
    out << content;
    ASSERT_TRUE(out.good()) << file;
  }

  std::string path() const { return path_.string(); }

 private:
  std::filesystem::path path_;
};

TEST(HostProbeTest, ParsesCpuListRanges) {
  absl::StatusOr<std::vector<int>> cpus = ParseCpuList("0-3,8-11\n");
  ASSERT_TRUE(cpus.ok()) << cpus.status();
  EXPECT_EQ(*cpus, (std::vector<int>{0, 1, 2, 3, 8, 9, 10, 11}));
}

TEST(HostProbeTest, ParsesCpuListSingleCpuAndMixed) {
  absl::StatusOr<std::vector<int>> single = ParseCpuList("0\n");
  ASSERT_TRUE(single.ok()) << single.status();
  EXPECT_EQ(*single, (std::vector<int>{0}));

  absl::StatusOr<std::vector<int>> mixed = ParseCpuList("5,0-1,7  \n");
  ASSERT_TRUE(mixed.ok()) << mixed.status();
  EXPECT_EQ(*mixed, (std::vector<int>{0, 1, 5, 7}));
}

TEST(HostProbeTest, ParsesEmptyCpuListAsEmptySet) {
  absl::StatusOr<std::vector<int>> empty = ParseCpuList("");
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_TRUE(empty->empty());

  absl::StatusOr<std::vector<int>> blank = ParseCpuList("\n");
  ASSERT_TRUE(blank.ok()) << blank.status();
  EXPECT_TRUE(blank->empty());
}

TEST(HostProbeTest, RejectsMalformedCpuList) {
  ExpectInvalidArgumentNaming(ParseCpuList("0-").status(), "\"0-\"");
  ExpectInvalidArgumentNaming(ParseCpuList("a").status(), "\"a\"");
  ExpectInvalidArgumentNaming(ParseCpuList("3-1").status(), "\"3-1\"");
  ExpectInvalidArgumentNaming(ParseCpuList("0-3,x,5").status(), "\"x\"");
  ExpectInvalidArgumentNaming(ParseCpuList("0,,2").status(), "\"\"");
  ExpectInvalidArgumentNaming(ParseCpuList("-1").status(), "\"-1\"");
  ExpectInvalidArgumentNaming(ParseCpuList("0-99999999").status(), "\"0-99999999\"");
}

TEST(HostProbeTest, ParsesCgroupV2CpuMax) {
  absl::StatusOr<double> unlimited = ParseCgroupV2CpuMax("max 100000\n");
  ASSERT_TRUE(unlimited.ok()) << unlimited.status();
  EXPECT_EQ(*unlimited, 0.0);

  absl::StatusOr<double> two = ParseCgroupV2CpuMax("200000 100000\n");
  ASSERT_TRUE(two.ok()) << two.status();
  EXPECT_DOUBLE_EQ(*two, 2.0);

  absl::StatusOr<double> one_and_half = ParseCgroupV2CpuMax("150000 100000");
  ASSERT_TRUE(one_and_half.ok()) << one_and_half.status();
  EXPECT_DOUBLE_EQ(*one_and_half, 1.5);
}

TEST(HostProbeTest, RejectsGarbageCgroupV2CpuMax) {
  for (const char* garbage :
       {"", "\n", "garbage", "abc 100000", "200000 0", "200000", "0 100000",
        "-5 100000", "200000 100000 7", "max x"}) {
    absl::StatusOr<double> quota = ParseCgroupV2CpuMax(garbage);
    EXPECT_EQ(quota.status().code(), absl::StatusCode::kInvalidArgument)
        << "\"" << garbage << "\" gave " << quota.status();
  }
}

TEST(HostProbeTest, ParsesCgroupV1Quota) {
  absl::StatusOr<double> unlimited = ParseCgroupV1Quota("-1\n", "100000\n");
  ASSERT_TRUE(unlimited.ok()) << unlimited.status();
  EXPECT_EQ(*unlimited, 0.0);

  absl::StatusOr<double> half = ParseCgroupV1Quota("50000\n", "100000\n");
  ASSERT_TRUE(half.ok()) << half.status();
  EXPECT_DOUBLE_EQ(*half, 0.5);
}

TEST(HostProbeTest, RejectsGarbageCgroupV1Quota) {
  EXPECT_EQ(ParseCgroupV1Quota("lots", "100000").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseCgroupV1Quota("50000", "0").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseCgroupV1Quota("0", "100000").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseCgroupV1Quota("-2", "100000").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseCgroupV1Quota("50000", "").status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(HostProbeTest, ParsesFirstCpuModel) {
  EXPECT_EQ(ParseCpuModel(kCpuInfo), "Intel(R) Xeon(R) Platinum 8259CL CPU @ 2.50GHz");
  EXPECT_EQ(ParseCpuModel("processor\t: 0\nBogoMIPS\t: 48.00\n"), "");
  EXPECT_EQ(ParseCpuModel(""), "");
}

TEST(HostProbeTest, ParsesCgroupV2Path) {
  EXPECT_EQ(ParseCgroupV2Path(kSystemdV2Cgroup),
            std::optional<std::string>("/system.slice/busyfleet-worker.service"));
  EXPECT_EQ(ParseCgroupV2Path(kDockerV2Cgroup), std::optional<std::string>("/"));
  EXPECT_EQ(ParseCgroupV2Path(kDockerV1Cgroup),
            std::optional<std::string>("/system.slice/containerd.service"));
  EXPECT_EQ(ParseCgroupV2Path("4:cpu,cpuacct:/docker/abc\n"), std::nullopt);
  EXPECT_EQ(ParseCgroupV2Path(""), std::nullopt);
}

TEST(HostProbeTest, ParsesCgroupV1CpuPath) {
  EXPECT_EQ(ParseCgroupV1CpuPath(kDockerV1Cgroup),
            std::optional<std::string>("/docker/3f2a9c1e7b"));
  EXPECT_EQ(ParseCgroupV1CpuPath(kSplitCpuV1Cgroup), std::optional<std::string>("/limited"));
  EXPECT_EQ(ParseCgroupV1CpuPath(kSystemdV2Cgroup), std::nullopt);
  EXPECT_EQ(ParseCgroupV1CpuPath(kDockerV2Cgroup), std::nullopt);
  // "cpuset" and "cpuacct" alone are not the cpu controller.
  EXPECT_EQ(ParseCgroupV1CpuPath("3:cpuset:/a\n2:cpuacct:/b\n"), std::nullopt);
}

// Topologies captured as hwloc XML (tests/unit/data/topology, made with
// lstopo --input "<synthetic description>" --of xml; the container's
// allowed_cpuset edited to 0-2,8 as a cgroup cpuset would allow).
std::unique_ptr<CpuTopology> Fixture(const std::string& name) {
  absl::StatusOr<std::unique_ptr<CpuTopology>> t =
      CpuTopology::FromXml(absl::StrCat(BUSYFLEET_TEST_DATA_DIR, "/topology/", name));
  EXPECT_TRUE(t.ok()) << t.status();
  return t.ok() ? *std::move(t) : nullptr;
}

TEST(CpuTopologyTest, HyperThreadedLaptopHasFourCoresOfTwoThreads) {
  auto t = Fixture("laptop_4c8t.xml");
  ASSERT_NE(t, nullptr);
  const TopologySummary s = t->Summary();
  EXPECT_EQ(s.packages, 1);
  EXPECT_EQ(s.numa_nodes, 1);
  EXPECT_EQ(s.cores, 4);
  EXPECT_EQ(s.threads, 8);
  EXPECT_EQ(s.threads_per_core, 2);
  EXPECT_EQ(s.host_cores, 4);
}

TEST(CpuTopologyTest, TwoSocketServerHasTwoPackagesAndTwoNumaNodes) {
  auto t = Fixture("server_2s16c32t.xml");
  ASSERT_NE(t, nullptr);
  const TopologySummary s = t->Summary();
  EXPECT_EQ(s.packages, 2);
  EXPECT_EQ(s.numa_nodes, 2);
  EXPECT_EQ(s.cores, 16);
  EXPECT_EQ(s.threads, 32);
  EXPECT_EQ(s.threads_per_core, 2);
}

TEST(CpuTopologyTest, ContainerCountsOnlyItsCpuset) {
  // 2 packages x 4 cores x 2 threads; allowed: PUs 0-2 (core 0 whole,
  // core 1 half) and 8 (the second package's first core, half).
  auto t = Fixture("container_cpuset.xml");
  ASSERT_NE(t, nullptr);
  const TopologySummary s = t->Summary();
  EXPECT_EQ(s.packages, 2);
  EXPECT_EQ(s.numa_nodes, 2);
  EXPECT_EQ(s.cores, 3);
  EXPECT_EQ(s.threads, 4);
  EXPECT_EQ(s.threads_per_core, 2);
  EXPECT_EQ(s.host_cores, 8) << "the machine's cores, usable or not";
}

TEST(CpuTopologyTest, PlacesGiveEachSlotItsOwnCoreOrThread) {
  auto laptop = Fixture("laptop_4c8t.xml");
  ASSERT_NE(laptop, nullptr);
  using Places = std::vector<std::vector<int>>;
  EXPECT_EQ(laptop->Places(BindMode::kCores, 2), (Places{{0, 1}, {2, 3}}));
  // Threads: one per core first, siblings after.
  EXPECT_EQ(laptop->Places(BindMode::kThreads, 5), (Places{{0}, {2}, {4}, {6}, {1}}));
  EXPECT_EQ(laptop->Places(BindMode::kCores, 5), Places{}) << "5 slots do not fit on 4 cores";
  EXPECT_EQ(laptop->Places(BindMode::kThreads, 9), Places{});
  EXPECT_EQ(laptop->Places(BindMode::kNone, 2), Places{});
  auto container = Fixture("container_cpuset.xml");
  ASSERT_NE(container, nullptr);
  EXPECT_EQ(container->Places(BindMode::kCores, 3), (Places{{0, 1}, {2}, {8}})) << "only the allowed threads";
  EXPECT_EQ(container->Places(BindMode::kThreads, 4), (Places{{0}, {2}, {8}, {1}}));
}

TEST(CpuTopologyTest, MissingXmlIsAnError) {
  EXPECT_FALSE(CpuTopology::FromXml("/nonexistent/topology.xml").ok());
}

TEST(CpuTopologyTest, LiveTopologyMatchesTheAffinityMask) {
  absl::StatusOr<std::unique_ptr<CpuTopology>> t = CpuTopology::Live();
  ASSERT_TRUE(t.ok()) << t.status();
  const TopologySummary s = (*t)->Summary();
  EXPECT_EQ(s.threads, ProbeHost().affinity_cpus);
  EXPECT_GE(s.cores, 1);
  EXPECT_LE(s.cores, s.threads);
}

TEST(CpuTopologyTest, FormatsCpuLists) {
  EXPECT_EQ(FormatCpuList({}), "");
  EXPECT_EQ(FormatCpuList({3}), "3");
  EXPECT_EQ(FormatCpuList({0, 1, 2, 5, 7, 8}), "0-2,5,7-8");
}

TEST(HostProbeTest, DefaultSlotsUsesUsableCoresOfACpuset) {
  HostInfo info;
  info.logical_cpus = 16;
  info.physical_cores = 8;
  info.affinity_cpus = 4;
  info.usable_cores = 3;
  EXPECT_EQ(DefaultSlots(info), 3);
}

TEST(HostProbeTest, DefaultSlotsUsesPhysicalCores) {
  HostInfo info;
  info.logical_cpus = 8;
  info.physical_cores = 4;
  info.affinity_cpus = 8;
  EXPECT_EQ(DefaultSlots(info), 4);
}

TEST(HostProbeTest, DefaultSlotsHonoursQuota) {
  HostInfo info;
  info.logical_cpus = 64;
  info.physical_cores = 32;
  info.affinity_cpus = 64;
  info.cgroup_cpu_quota = 2.0;
  EXPECT_EQ(DefaultSlots(info), 2);

  info.cgroup_cpu_quota = 2.9;
  EXPECT_EQ(DefaultSlots(info), 2);

  info.cgroup_cpu_quota = 0.5;
  EXPECT_EQ(DefaultSlots(info), 1);
}

TEST(HostProbeTest, DefaultSlotsHonoursAffinity) {
  HostInfo info;
  info.logical_cpus = 8;
  info.physical_cores = 4;
  info.affinity_cpus = 3;
  EXPECT_EQ(DefaultSlots(info), 3);
}

TEST(HostProbeTest, DefaultSlotsFallsBackToLogicalThenOne) {
  HostInfo info;
  info.logical_cpus = 6;
  EXPECT_EQ(DefaultSlots(info), 6);
  EXPECT_EQ(DefaultSlots(HostInfo{}), 1);
}

// Captured on this VM: the kernel's boot id (also what every container on
// it reads) and a systemd machine-id.
constexpr char kBootId[] = "8c1f6a6e-3d1b-4e55-9b8a-2f0c3e7d4a91\n";
constexpr char kMachineId[] = "4f9e2b0c7a1d4e8f9b3c6d5e2a1f0b7c\n";

TEST(HostProbeTest, MachineIdIsTheBootIdWhenThereIsOne) {
  EXPECT_EQ(MachineId(kBootId, kMachineId), "8c1f6a6e-3d1b-4e55-9b8a-2f0c3e7d4a91");
}

TEST(HostProbeTest, MachineIdFallsBackToMachineIdThenNothing) {
  EXPECT_EQ(MachineId(std::nullopt, kMachineId), "4f9e2b0c7a1d4e8f9b3c6d5e2a1f0b7c");
  EXPECT_EQ(MachineId("", kMachineId), "4f9e2b0c7a1d4e8f9b3c6d5e2a1f0b7c");
  EXPECT_EQ(MachineId(std::nullopt, std::nullopt), "");
  EXPECT_EQ(MachineId(" \n", "\n"), "");
}

TEST(HostProbeTest, MachineIdRefusesWhatIsNotAnId) {
  // Not hex, too long, or with room for a second line: not an id of ours.
  EXPECT_EQ(MachineId("not an id\n", std::nullopt), "");
  EXPECT_EQ(MachineId(std::string(65, 'a'), std::nullopt), "");
  EXPECT_EQ(MachineId("abc\ndef", kMachineId), "4f9e2b0c7a1d4e8f9b3c6d5e2a1f0b7c");
  EXPECT_EQ(MachineId(std::string(64, 'a'), std::nullopt), std::string(64, 'a'));
}

TEST(HostProbeTest, ProbeHostReadsTheMachineId) {
  FakeRoot root;
  root.Write("sys/devices/system/cpu/online", "0-1\n");
  root.Write("proc/sys/kernel/random/boot_id", kBootId);
  root.Write("etc/machine-id", kMachineId);
  EXPECT_EQ(ProbeHost(root.path()).machine_id, "8c1f6a6e-3d1b-4e55-9b8a-2f0c3e7d4a91");

  FakeRoot container;  // an image without a boot id to read
  container.Write("etc/machine-id", kMachineId);
  EXPECT_EQ(ProbeHost(container.path()).machine_id, "4f9e2b0c7a1d4e8f9b3c6d5e2a1f0b7c");
}

TEST(HostProbeTest, ProbeHostReadsFakeRootWithNestedCgroupV2Limit) {
  FakeRoot root;
  root.Write("sys/devices/system/cpu/online", "0-7\n");
  root.Write("proc/cpuinfo", kCpuInfo);
  root.Write("proc/self/cgroup", "0::/kubepods.slice/pod1/ctr\n");
  root.Write("sys/fs/cgroup/cpu.max", "max 100000\n");
  root.Write("sys/fs/cgroup/kubepods.slice/cpu.max", "max 100000\n");
  root.Write("sys/fs/cgroup/kubepods.slice/pod1/cpu.max", "200000 100000\n");
  root.Write("sys/fs/cgroup/kubepods.slice/pod1/ctr/cpu.max", "max 100000\n");

  auto laptop = Fixture("laptop_4c8t.xml");
  ASSERT_NE(laptop, nullptr);
  HostInfo info = ProbeHost(root.path(), laptop.get());
  EXPECT_EQ(info.logical_cpus, 8);
  EXPECT_EQ(info.physical_cores, 4);
  EXPECT_EQ(info.usable_cores, 4);
  EXPECT_EQ(info.usable_threads, 8);
  EXPECT_EQ(info.threads_per_core, 2);
  EXPECT_EQ(info.packages, 1);
  EXPECT_EQ(info.numa_nodes, 1);
  EXPECT_DOUBLE_EQ(info.cgroup_cpu_quota, 2.0);
  EXPECT_EQ(info.cpu_model, "Intel(R) Xeon(R) Platinum 8259CL CPU @ 2.50GHz");
  EXPECT_GT(info.affinity_cpus, 0);
  EXPECT_EQ(DefaultSlots(info), 2);
}

TEST(HostProbeTest, ProbeHostTakesSmallestCgroupV2LimitOnPath) {
  FakeRoot root;
  root.Write("sys/devices/system/cpu/online", "0-3\n");
  root.Write("proc/self/cgroup", "0::/outer/inner\n");
  root.Write("sys/fs/cgroup/outer/cpu.max", "150000 100000\n");
  root.Write("sys/fs/cgroup/outer/inner/cpu.max", "300000 100000\n");

  HostInfo info = ProbeHost(root.path());
  EXPECT_EQ(info.logical_cpus, 4);
  EXPECT_DOUBLE_EQ(info.cgroup_cpu_quota, 1.5);
}

TEST(HostProbeTest, ProbeHostReadsCgroupV1QuotaAtMountRootInsideNamespace) {
  FakeRoot root;
  root.Write("sys/devices/system/cpu/online", "0-1\n");
  // Inside a cgroup namespace the own path is "/" (or absent from the mount).
  root.Write("proc/self/cgroup", "4:cpu,cpuacct:/docker/3f2a9c1e7b\n");
  root.Write("sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us", "50000\n");
  root.Write("sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us", "100000\n");

  HostInfo info = ProbeHost(root.path());
  EXPECT_EQ(info.logical_cpus, 2);
  EXPECT_DOUBLE_EQ(info.cgroup_cpu_quota, 0.5);
}

TEST(HostProbeTest, ProbeHostReadsCgroupV1QuotaOnOwnPath) {
  FakeRoot root;
  root.Write("proc/self/cgroup", kSplitCpuV1Cgroup);
  root.Write("sys/fs/cgroup/cpu/cpu.cfs_quota_us", "-1\n");
  root.Write("sys/fs/cgroup/cpu/cpu.cfs_period_us", "100000\n");
  root.Write("sys/fs/cgroup/cpu/limited/cpu.cfs_quota_us", "300000\n");
  root.Write("sys/fs/cgroup/cpu/limited/cpu.cfs_period_us", "100000\n");

  HostInfo info = ProbeHost(root.path());
  EXPECT_DOUBLE_EQ(info.cgroup_cpu_quota, 3.0);
}

TEST(HostProbeTest, ProbeHostLeavesUnknownsZero) {
  FakeRoot root;
  // Online CPUs are listed; no topology.
  root.Write("sys/devices/system/cpu/online", "0-1\n");

  HostInfo info = ProbeHost(root.path());
  EXPECT_EQ(info.logical_cpus, 2);
  EXPECT_EQ(info.physical_cores, 0);
  EXPECT_EQ(info.usable_cores, 0);
  EXPECT_EQ(info.packages, 0);
  EXPECT_EQ(info.cgroup_cpu_quota, 0.0);
  EXPECT_EQ(info.cpu_model, "");
  EXPECT_GT(info.affinity_cpus, 0);
}

}  // namespace
}  // namespace busyfleet::worker
