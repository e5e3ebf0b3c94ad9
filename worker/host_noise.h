#ifndef BUSYFLEET_WORKER_HOST_NOISE_H_
#define BUSYFLEET_WORKER_HOST_NOISE_H_

// What else the worker's host is doing (v1::HostNoise): load average, CPU
// steal, CPU busy outside this worker and its busiest other processes, the
// frequency governor. Parsers are pure functions of /proc text (tested on
// captured text); NoiseSampler reads the live files.

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "busyfleet/v1/types.pb.h"

namespace busyfleet::worker {

// The aggregate "cpu" line of /proc/stat, in clock ticks: every field
// (user nice system idle iowait irq softirq steal; guest time is already in
// user) summed, idle + iowait, and steal.
struct CpuTimes {
  uint64_t total = 0;
  uint64_t idle = 0;
  uint64_t steal = 0;
};
std::optional<CpuTimes> ParseProcStatCpu(absl::string_view proc_stat);
// The 1-minute load average of /proc/loadavg.
std::optional<double> ParseLoadAvg(absl::string_view loadavg);
// A /proc/PID/stat line: the command name and utime + stime (clock ticks);
// with `children`, plus cutime + cstime (its reaped children).
struct ProcessTicks {
  std::string name;
  uint64_t ticks = 0;
};
std::optional<ProcessTicks> ParsePidStat(absl::string_view stat, bool children = false);

class NoiseSampler {
 public:
  // Thresholds: processes are listed over this share of a CPU, and only
  // looked for when the host's other load reaches kScanFromCpus.
  static constexpr double kListFromCpus = 0.05;
  static constexpr double kScanFromCpus = 0.25;

  explicit NoiseSampler(std::string proc_root = "/proc", std::string sys_root = "/sys");
  // Reads the files now (`now`: the monotonic time of the reading); from the
  // second call on, the noise over the interval since the previous call.
  std::optional<v1::HostNoise> Sample(absl::Duration now);

 private:
  std::map<pid_t, ProcessTicks> ScanProcesses() const;
  void ListBusy(const std::map<pid_t, ProcessTicks>& scan, double seconds, v1::HostNoise& noise) const;

  const std::string proc_;
  const std::string sys_;
  const pid_t self_;
  const double ticks_per_second_;
  bool have_previous_ = false;
  absl::Duration previous_at_;
  CpuTimes previous_cpu_;
  uint64_t previous_self_ = 0;
  // The last process scan (empty when the last sample had no need of one).
  std::map<pid_t, ProcessTicks> previous_scan_;
};

}  // namespace busyfleet::worker

#endif  // BUSYFLEET_WORKER_HOST_NOISE_H_
