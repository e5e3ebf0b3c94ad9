#ifndef BUSYFLEET_WORKER_INTERFERENCE_H_
#define BUSYFLEET_WORKER_INTERFERENCE_H_

// What slowed a task attempt down, measured around it (issue 16 item 3):
// run-queue wait and involuntary context switches, host CPU steal on the
// CPUs it ran on, and its cgroup's CPU throttling. Filled into
// TaskResult.interference.
//
//   std::optional<Interference::Probe> begin;  // not a 4 KiB clear when skipped
//   if (WorthProbing(a, ...)) begin = Interference::Begin(/*thread=*/true);
//   ... run the task ...
//   if (begin) Interference::End(*begin, &result);  // after start/end CPU and times are set
//
// The parsers are pure functions over the files' text, for unit tests with
// captured text; the readers use open/pread into stack buffers (no streams,
// no allocation) and cost a few tens of microseconds, so tiny tasks skip
// the probe (WorthProbing).

#include <sys/resource.h>
#include <sys/types.h>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "busyfleet/v1/worker.pb.h"

namespace busyfleet::worker {

// The second field of /proc/<pid>/schedstat or /proc/thread-self/schedstat:
// nanoseconds spent runnable but waiting for a CPU (run_delay).
std::optional<int64_t> ParseSchedstatWait(std::string_view text);

// Per-CPU steal from /proc/stat, in clock ticks (USER_HZ).
struct StealTicks {
  static constexpr int kMaxCpus = 256;
  // The aggregate "cpu" line's steal; nullopt when the line is missing.
  std::optional<uint64_t> total;
  // "cpuN" lines: steal of CPU N; nullopt for CPUs not listed (or past
  // kMaxCpus, or past the text read).
  std::array<std::optional<uint64_t>, kMaxCpus> per_cpu{};
  // How many cpuN lines were read.
  int cpus = 0;
};
// Reads the "cpu" and "cpuN" lines (steal is the 8th value); stops at the
// first line that is neither. A line cut off at the end of `text` is ignored.
StealTicks ParseProcStatSteal(std::string_view text);

// A cgroup's CPU bandwidth counters (cpu.stat). v1 reports throttled_time
// in ns, v2 throttled_usec in us; both are read into ns.
struct CpuStat {
  uint64_t nr_periods = 0;
  uint64_t nr_throttled = 0;
  uint64_t throttled_ns = 0;
};
// nullopt when the text has no throttled time (a v2 cgroup without the cpu
// controller reports only usage).
std::optional<CpuStat> ParseCpuStat(std::string_view text);

// Where the cpu.stat of the process's cgroup is, from /proc/self/cgroup
// and /proc/self/mountinfo: the cgroup v1 hierarchy with the "cpu"
// controller if one is mounted, else the cgroup v2 one. The cgroup's path
// is taken relative to the mount's root (a cgroup namespace or a bind
// mount of a subtree). nullopt when neither is mounted.
std::optional<std::string> CpuStatPath(std::string_view proc_self_cgroup, std::string_view mountinfo);

// The probe costs about 50 us (Begin + End: /proc/stat twice, about 18 us
// each, schedstat, cpu.stat, getrusage; measured with
// tests/bench/interference_bench on this 2-vCPU VM): countdowns of fewer
// iterations than this (about 1.2 ms at 3.4 G iterations/s) skip it.
inline constexpr uint64_t kProbeMinIterations = uint64_t{1} << 22;
// The python loop runs about 50 M iterations per second: 2^16 is about 1.3 ms.
inline constexpr uint64_t kProbeMinPythonIterations = uint64_t{1} << 16;

// Whether an attempt is long enough to be worth probing: not a countdown
// of at most `wall_is_cpu_iterations` or kProbeMinIterations, not a python
// countdown of at most kProbeMinPythonIterations, not a spin or
// sleep under 1 ms. (Tasks run inline are never probed: the caller skips
// them.)
bool WorthProbing(const v1::Assignment& a, uint64_t wall_is_cpu_iterations);

class Interference {
 public:
  // Counters at the start of an attempt.
  struct Probe {
    bool active = false;  // from Begin; End ignores a default-made one
    bool thread = false;  // thread-mode figures (schedstat, RUSAGE_THREAD)
    std::optional<int64_t> run_delay_ns;
    std::optional<long> nivcsw;
    StealTicks steal;
    std::optional<CpuStat> cpu_stat;
  };
  // Reads the counters now. `thread`: also the calling thread's own
  // run-queue wait and involuntary switches (thread mode); in process mode
  // the child's come from ChildRunDelay and its wait4 rusage instead.
  static Probe Begin(bool thread);
  // Fills r->interference from the counters now against `begin`, over
  // r's start/end_mono_ns and on r's start/end CPUs. In process mode pass
  // the child's run delay and rusage (child_* ignored in thread mode).
  static void End(const Probe& begin, v1::TaskResult* r, std::optional<int64_t> child_run_delay_ns = std::nullopt,
                  const rusage* child_usage = nullptr);
  // A process-mode child's run-queue wait: read /proc/<child>/schedstat
  // after it exited but before it is reaped (its counters stay with the
  // zombie, and its pid cannot be reused before the reap).
  static std::optional<int64_t> ChildRunDelay(pid_t child);
};

}  // namespace busyfleet::worker

#endif  // BUSYFLEET_WORKER_INTERFERENCE_H_
