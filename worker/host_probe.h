// Probes the CPU resources this worker may use, so the default slot count
// matches what the host (and any container limit) actually allows.
//
// The parse functions are pure and take captured file contents; ProbeHost
// reads the live system (or a fake tree under `root`) and never fails.
// Nothing here logs.
#ifndef BUSYFLEET_WORKER_HOST_PROBE_H_
#define BUSYFLEET_WORKER_HOST_PROBE_H_

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "worker/cpu_topology.h"

namespace busyfleet::worker {

struct HostInfo {
  std::string hostname;
  int logical_cpus = 0;         // online logical CPUs (from /sys/devices/system/cpu/online, else sysconf)
  int physical_cores = 0;       // physical cores of the machine (hwloc), usable or not; 0 if unknown
  int affinity_cpus = 0;        // CPUs in this process's sched_getaffinity mask; 0 if unknown
  double cgroup_cpu_quota = 0;  // CPUs allowed by the cgroup quota (e.g. 1.5); 0 = no limit / unknown
  std::string cpu_model;        // "model name" from /proc/cpuinfo (first one), or ""
  std::string machine_id;       // MachineId() of the kernel's boot id and /etc/machine-id, or ""
  // The CPUs this worker may use (cgroup cpuset and CPU affinity), from
  // hwloc (cpu_topology.h); all 0 when the topology is unknown.
  int packages = 0;
  int numa_nodes = 0;
  int usable_cores = 0;      // physical cores with a usable hardware thread
  int usable_threads = 0;    // usable hardware threads
  int threads_per_core = 0;  // most usable hardware threads on one core
};

// Which machine this is, from the captured contents of
// /proc/sys/kernel/random/boot_id and /etc/machine-id (std::nullopt when a
// file could not be read): the boot id, which every container on one kernel
// shares (containers often have no machine-id, or the image's), so workers
// in containers on one machine are counted as one machine; else the
// machine-id; else "". Surrounding whitespace is dropped; a value that is
// empty, longer than 64 bytes or not made of hex digits and dashes does not
// count.
std::string MachineId(const std::optional<std::string>& boot_id,
                      const std::optional<std::string>& machine_id);

// Parses a kernel CPU list ("0-3,8-11" -> {0,1,2,3,8,9,10,11}), as found in
// /sys/devices/system/cpu/online. The result is sorted and free of
// duplicates. Leading/trailing whitespace (e.g. the trailing newline) is
// allowed; an empty or all-whitespace string gives an empty set.
// InvalidArgument, naming the offending token, on a malformed token ("0-",
// "a", "", "+1"), a reversed range ("3-1"), or a CPU id above 65535.
absl::StatusOr<std::vector<int>> ParseCpuList(absl::string_view text);

// Parses cgroup v2 cpu.max ("<quota|max> <period>") into the number of CPUs
// allowed: "max 100000" -> 0 (no limit), "200000 100000" -> 2.0,
// "150000 100000" -> 1.5. A lone "max" is also accepted as no limit.
// InvalidArgument on anything else (non-numeric, quota or period <= 0,
// missing period, extra fields).
absl::StatusOr<double> ParseCgroupV2CpuMax(absl::string_view text);

// Parses cgroup v1 cpu.cfs_quota_us and cpu.cfs_period_us into the number of
// CPUs allowed: quota "-1" -> 0 (no limit), otherwise quota / period
// ("50000", "100000" -> 0.5). Surrounding whitespace is allowed.
// InvalidArgument on non-numeric text, a quota of 0 or below -1, or a
// period <= 0.
absl::StatusOr<double> ParseCgroupV1Quota(absl::string_view quota_us,
                                          absl::string_view period_us);

// Returns the value of the first "model name" line of /proc/cpuinfo text,
// trimmed; "" if there is none (e.g. many ARM kernels).
std::string ParseCpuModel(absl::string_view cpuinfo);

// From /proc/self/cgroup content, returns this process's cgroup v2 path (the
// "0::<path>" line: "0::/system.slice/x.service" -> "/system.slice/x.service"),
// or std::nullopt when there is no such line.
std::optional<std::string> ParseCgroupV2Path(absl::string_view proc_self_cgroup);

// From /proc/self/cgroup content, returns the cgroup v1 path of the hierarchy
// whose controller list contains "cpu" ("4:cpu,cpuacct:/docker/abc" ->
// "/docker/abc"; "1:cpu:/" -> "/"), or std::nullopt when there is none.
std::optional<std::string> ParseCgroupV1CpuPath(absl::string_view proc_self_cgroup);

// Reads the live system. `root` prefixes every path ("" for the real
// system; tests pass a directory laid out like /, with sys/devices/system/
// cpu/online, proc/cpuinfo, proc/self/cgroup, sys/fs/cgroup/...), and
// `topology` (hwloc's view: CpuTopology::Live() or a fixture; nullptr:
// unknown) gives the cores, packages, NUMA nodes and threads. Never fails:
// values that cannot be determined stay 0 / "".
//  - hostname: gethostname() (not from root).
//  - logical_cpus: size of sys/devices/system/cpu/online, else
//    sysconf(_SC_NPROCESSORS_ONLN).
//  - physical_cores, packages, numa_nodes, usable_cores, usable_threads,
//    threads_per_core: topology->Summary() (physical_cores: host_cores).
//  - affinity_cpus: sched_getaffinity() of this process (not from root).
//  - cgroup_cpu_quota: the smallest limit found, over cgroup v2
//    (sys/fs/cgroup/<v2 path>/cpu.max) and cgroup v1
//    (sys/fs/cgroup/{cpu,cpuacct|cpu|cpuacct,cpu}/<v1 path>/cpu.cfs_quota_us
//    and cpu.cfs_period_us), checking the process's own cgroup directory and
//    each parent up to the mount root. The walk covers limits that sit on a
//    parent and, inside a cgroup namespace or when the path is absent from
//    the mount, the mount root itself.
//  - cpu_model: ParseCpuModel(proc/cpuinfo).
//  - machine_id: MachineId(proc/sys/kernel/random/boot_id, etc/machine-id).
HostInfo ProbeHost(const std::string& root = "", const CpuTopology* topology = nullptr);

// The default slot count: the smallest of physical_cores, usable_cores,
// affinity_cpus and floor(cgroup_cpu_quota) (at least 1 when there is a
// quota), ignoring those that are 0 / unknown; when all are unknown,
// logical_cpus, and when that is unknown too, 1. Always >= 1.
// Examples: 4 physical / 8 logical, affinity 8, no quota -> 4;
// quota 2.0 on a 64-thread host -> 2; quota 0.5 -> 1; affinity 3 -> 3;
// a cpuset of 4 hardware threads on 2 cores -> 2.
int DefaultSlots(const HostInfo& info);

}  // namespace busyfleet::worker

#endif  // BUSYFLEET_WORKER_HOST_PROBE_H_
