#include "coordinator/ctl/bench_noise.h"

#include <algorithm>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "coordinator/report/format.h"

namespace busyfleet::coordctl {
namespace {

// A worker's calibration of `kind`, or nullptr.
const v1::KernelCalibration* CalibrationOf(const v1::WorkerInfo& w, v1::TaskKind kind) {
  for (const v1::KernelCalibration& c : w.calibrations()) {
    if (c.kind() == kind) return &c;
  }
  return nullptr;
}

struct Machine {
  std::string host;
  std::vector<const v1::WorkerInfo*> workers;
};

// Workers grouped by machine (HostInfo.machine_id, else the host name), in
// the order first seen.
std::vector<Machine> GroupByMachine(const std::vector<v1::WorkerInfo>& workers) {
  std::vector<Machine> machines;
  std::map<std::string, size_t> index;
  for (const v1::WorkerInfo& w : workers) {
    const std::string key = w.host().machine_id().empty() ? w.host().hostname() : w.host().machine_id();
    auto [it, added] = index.emplace(key, machines.size());
    if (added) machines.push_back({w.host().hostname(), {}});
    machines[it->second].workers.push_back(&w);
  }
  return machines;
}

// The machine's noise: its first worker's that has one.
const v1::HostNoise* NoiseOf(const Machine& m) {
  for (const v1::WorkerInfo* w : m.workers) {
    if (w->has_noise()) return &w->noise();
  }
  return nullptr;
}

// `slots`: of the machine's workers (the bench's tasks will add as much load).
void CheckLoad(const std::string& host, const v1::HostNoise& n, uint32_t slots, NoiseCheck& check) {
  if (n.other_busy_cpus() >= kNoisyOtherCpus) {
    std::vector<std::string> top;
    for (const v1::BusyProcess& p : n.busy()) top.push_back(absl::StrFormat("%s (pid %u) %.2f", p.name(), p.pid(), p.cpus()));
    check.advice.push_back(absl::StrFormat(
        "other processes on %s use %.2f CPUs%s: stop them, or expect wide intervals", host, n.other_busy_cpus(),
        top.empty() ? "" : absl::StrCat(" (", absl::StrJoin(top, ", "), ")")));
    check.causes.push_back(absl::StrFormat("other processes used %.2f CPUs on %s", n.other_busy_cpus(), host));
  }
  // The load average lags (a minute) and counts the workers' own tasks of
  // a moment ago: the other processes' CPU, measured over the last
  // seconds, is what the bench's slots will compete with.
  if (n.online_cpus() > 0 && n.other_busy_cpus() >= kNoisyOtherCpus &&
      n.other_busy_cpus() + slots > n.online_cpus() + kNoisyOtherCpus) {
    check.advice.push_back(absl::StrFormat(
        "%s's %u CPUs: %.2f busy with other processes, and the bench adds up to %u busy slots: tasks will "
        "share CPUs",
        host, n.online_cpus(), n.other_busy_cpus(), slots));
    check.causes.push_back(absl::StrFormat("%u slots and %.2f CPUs of other work on %s's %u CPUs", slots,
                                           n.other_busy_cpus(), host, n.online_cpus()));
  }
  if (n.online_cpus() > 0 && n.load1() > 2.0 * n.online_cpus()) {
    check.advice.push_back(absl::StrFormat("load average %.2f on %s's %u CPUs: the machine is oversubscribed",
                                           n.load1(), host, n.online_cpus()));
    check.causes.push_back(absl::StrFormat("load average %.2f on %u CPUs on %s", n.load1(), n.online_cpus(), host));
  }
}

void CheckHost(const std::string& host, const v1::HostNoise& n, uint32_t slots, NoiseCheck& check) {
  CheckLoad(host, n, slots, check);
  if (n.steal_share() >= kNoisyStealShare) {
    check.advice.push_back(absl::StrFormat(
        "the hypervisor took %.1f%% of %s's CPU time (steal): a noisy neighbour; run more trials (--repeat)",
        n.steal_share() * 100, host));
    check.causes.push_back(absl::StrFormat("steal %.1f%% on %s", n.steal_share() * 100, host));
  }
  if (!n.governor().empty() && n.governor() != "performance") {
    check.advice.push_back(absl::StrFormat(
        "CPU frequency governor '%s' on %s: for steady figures use 'performance' "
        "(cpupower frequency-set -g performance)",
        n.governor(), host));
    check.causes.push_back(absl::StrFormat("frequency governor '%s' on %s", n.governor(), host));
  }
}

// "calibrated 3.41 G it/s per core (CPUs 2.41-3.52 G)" and, when the CPUs
// differ by more than kUnevenCpuRates, advice.
std::string CheckCalibration(const Machine& m, v1::TaskKind kind, NoiseCheck& check) {
  double low = 0;
  double high = 0;
  double median = 0;
  for (const v1::WorkerInfo* w : m.workers) {
    const v1::KernelCalibration* c = CalibrationOf(*w, kind);
    if (c == nullptr) continue;
    median = c->iterations_per_second();
    for (const v1::CpuRate& cpu : c->cpus()) {
      low = low == 0 ? cpu.iterations_per_second() : std::min(low, cpu.iterations_per_second());
      high = std::max(high, cpu.iterations_per_second());
    }
  }
  if (median <= 0) return "not calibrated";
  std::string text = absl::StrCat("calibrated ", report::HumanCount(median), " it/s per core");
  if (high > low && low > 0) {
    absl::StrAppend(&text, " (CPUs ", report::HumanCount(low), "-", report::HumanCount(high), ")");
    if (high / low > kUnevenCpuRates) {
      check.advice.push_back(absl::StrFormat(
          "%s's CPUs ran at different speeds when calibrated (%s-%s it/s, %.2fx): a task's time depends on "
          "which CPU it gets; compare intervals, not single runs",
          m.host, report::HumanCount(low), report::HumanCount(high), high / low));
      check.causes.push_back(absl::StrFormat("%s's CPUs differ %.2fx in speed", m.host, high / low));
    }
  }
  return text;
}

}  // namespace

NoiseCheck CheckNoise(const std::vector<v1::WorkerInfo>& workers, v1::TaskKind kind) {
  NoiseCheck check;
  for (const Machine& m : GroupByMachine(workers)) {
    std::vector<std::string> names;
    for (const v1::WorkerInfo* w : m.workers) names.push_back(w->name());
    std::string line = absl::StrCat(m.host, " (", absl::StrJoin(names, ", "), "): ");
    const v1::HostNoise* n = NoiseOf(m);
    if (n == nullptr) {
      absl::StrAppend(&line, "no load figures yet");
    } else {
      absl::StrAppend(&line, absl::StrFormat("load %.2f on %u CPUs, steal %.1f%%, other processes %.2f CPUs, "
                                             "governor %s",
                                             n->load1(), n->online_cpus(), n->steal_share() * 100,
                                             n->other_busy_cpus(), n->governor().empty() ? "n/a" : n->governor()));
      uint32_t slots = 0;
      for (const v1::WorkerInfo* w : m.workers) slots += w->slots();
      CheckHost(m.host, *n, slots, check);
    }
    absl::StrAppend(&line, "; ", CheckCalibration(m, kind, check));
    check.lines.push_back(std::move(line));
  }
  return check;
}

}  // namespace busyfleet::coordctl
