// The CPUs this worker may use, as hwloc sees them: packages, NUMA nodes,
// physical cores and hardware threads of the allowed CPU set (the cgroup
// cpuset, and this process's CPU affinity on a live system), and where each
// slot goes when slots are pinned (--bind).
//
// Loaded from the live system or from an hwloc XML file (`lstopo --of xml`;
// the tests' fixtures). The cgroup CPU quota is not hwloc's business:
// host_probe.h reads it. Nothing here logs.
#ifndef BUSYFLEET_WORKER_CPU_TOPOLOGY_H_
#define BUSYFLEET_WORKER_CPU_TOPOLOGY_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace busyfleet::worker {

// Counts over the usable CPUs only (a core with one usable thread of two is
// a usable core with one thread).
struct TopologySummary {
  int packages = 0;          // packages with a usable CPU
  int numa_nodes = 0;        // NUMA nodes whose CPUs include a usable one
  int cores = 0;             // physical cores with a usable CPU
  int threads = 0;           // usable hardware threads (hwloc PUs)
  int threads_per_core = 0;  // most usable hardware threads on one core
  int host_cores = 0;        // physical cores of the whole machine, usable or not
};

// How slots are pinned: each to its own physical core (all its usable
// hardware threads), each to its own hardware thread, or not at all.
enum class BindMode { kNone, kCores, kThreads };

// "none", "cores", "threads".
std::string BindModeName(BindMode mode);

class CpuTopology {
 public:
  // This machine: hwloc's allowed CPU set (the cgroup cpuset) intersected
  // with the calling thread's CPU affinity (taskset, a parent's binding).
  static absl::StatusOr<std::unique_ptr<CpuTopology>> Live();
  // A topology captured as hwloc XML; its allowed_cpuset is the usable set.
  static absl::StatusOr<std::unique_ptr<CpuTopology>> FromXml(const std::string& path);
  ~CpuTopology();
  CpuTopology(const CpuTopology&) = delete;
  CpuTopology& operator=(const CpuTopology&) = delete;

  TopologySummary Summary() const;

  // The OS CPU numbers each of `slots` slots is pinned to, one entry per
  // slot, no CPU in two entries: kCores gives slot i the usable threads of
  // the i-th usable core; kThreads gives slot i one hardware thread, taking
  // the first thread of every core before any core's second (two slots on
  // a hyper-threaded laptop get two cores). Empty for kNone, and when the
  // slots do not fit (more slots than usable cores, or threads).
  std::vector<std::vector<int>> Places(BindMode mode, int slots) const;

 private:
  struct Impl;
  explicit CpuTopology(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// A CPU list in the kernel's syntax: {0,1,2,5} -> "0-2,5"; {} -> "".
std::string FormatCpuList(const std::vector<int>& cpus);

}  // namespace busyfleet::worker

#endif  // BUSYFLEET_WORKER_CPU_TOPOLOGY_H_
