#include "worker/worker_flags.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/flags.h"

namespace busyfleet::worker {

void AddWorkerFlags(CLI::App& app, WorkerFlags& flags, absl::FunctionRef<void(CLI::App&)> add_client_security) {
  app.add_option("--coordinator", flags.coordinator, "coordinator address (host:port)")->capture_default_str();
  app.add_option("--slots", flags.slots,
                 "tasks run at once; default: the smallest of physical cores, usable cores, CPU affinity and cgroup quota")
      ->check(CLI::Range(0, 4096));
  app.add_option("--name", flags.name, "worker name; default: the host name");
  app.add_option("--exec", flags.exec, "how tasks run: thread (one thread per slot) or process (a child per task)")
      ->capture_default_str()
      ->check(CLI::IsMember({"thread", "process"}));
  app.add_option("--bind", flags.bind,
                 "pin each slot (and its process-mode children) to a core of its own (cores), a hardware thread of "
                 "its own (threads), or not (none); auto: cores when the slots fit on distinct cores, else none")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "cores", "threads", "none"}));
  app.add_option("--labels", flags.labels, "labels for job selectors, k=v,k2=v2");
  app.add_option("--drain-timeout", flags.drain_timeout,
                 "on SIGTERM, how long running tasks may take to finish; 0s: no limit")
      ->capture_default_str()
      ->check(DurationValidator());
  app.add_flag("--no-python", flags.no_python,
               "do not start the embedded Python: the worker does not offer the python task kind");
  add_client_security(app);
  AddLogFlags(app, flags.log_format, flags.log_level);
  BindEnvironment(app);
  // Added after BindEnvironment: a testing flag is never picked up from the
  // environment by accident.
  app.add_option("--debug-clock-skew", flags.clock_skew,
                 "testing: pretend this machine's clocks are off by this much (e.g. 5s, -3s)")
      ->group("Testing");
}

absl::StatusOr<absl::Duration> ParseClockSkew(const std::string& text) {
  absl::Duration skew;
  if (!absl::ParseDuration(text, &skew) || absl::AbsDuration(skew) > absl::Hours(24 * 365)) {
    return absl::InvalidArgumentError(
        "--debug-clock-skew must be a duration within a year, like 5s or -3s; got \"" + text + "\"");
  }
  return skew;
}

absl::StatusOr<std::map<std::string, std::string>> ParseLabels(absl::string_view text) {
  std::map<std::string, std::string> labels;
  for (absl::string_view item : absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    std::vector<std::string> kv = absl::StrSplit(item, absl::MaxSplits('=', 1));
    if (kv.size() != 2 || kv[0].empty()) {
      return absl::InvalidArgumentError("--labels entries must look like key=value, got \"" + std::string(item) +
                                        "\"");
    }
    labels[kv[0]] = kv[1];
  }
  return labels;
}

int SlotsFor(const WorkerFlags& flags, const HostInfo& host) {
  return flags.slots > 0 ? flags.slots : DefaultSlots(host);
}

std::string NameFor(const WorkerFlags& flags, const HostInfo& host) {
  if (!flags.name.empty()) return flags.name;
  return !host.hostname.empty() ? host.hostname : "worker";
}

v1::ExecMode ExecModeFor(const WorkerFlags& flags) {
  return flags.exec == "process" ? v1::EXEC_MODE_PROCESS : v1::EXEC_MODE_THREAD;
}

v1::HostInfo HostInfoMessage(const HostInfo& host) {
  v1::HostInfo info;
  info.set_hostname(host.hostname);
  info.set_logical_cpus(static_cast<uint32_t>(host.logical_cpus));
  info.set_physical_cores(static_cast<uint32_t>(host.physical_cores));
  info.set_affinity_cpus(static_cast<uint32_t>(host.affinity_cpus));
  info.set_cgroup_cpu_quota(host.cgroup_cpu_quota);
  info.set_cpu_model(host.cpu_model);
  info.set_machine_id(host.machine_id);
  info.set_packages(static_cast<uint32_t>(host.packages));
  info.set_numa_nodes(static_cast<uint32_t>(host.numa_nodes));
  info.set_usable_cores(static_cast<uint32_t>(host.usable_cores));
  info.set_usable_threads(static_cast<uint32_t>(host.usable_threads));
  info.set_threads_per_core(static_cast<uint32_t>(host.threads_per_core));
  return info;
}

absl::StatusOr<Binding> BindingFor(const WorkerFlags& flags, int slots, const CpuTopology* topology) {
  Binding b;
  if (flags.bind == "none") return b;
  const BindMode wanted = flags.bind == "threads" ? BindMode::kThreads : BindMode::kCores;
  const std::string what = wanted == BindMode::kThreads ? "hardware threads" : "cores";
  if (topology == nullptr) {
    if (flags.bind == "auto") {
      b.note = "--bind auto: the CPU topology is unknown (hwloc could not load it); slots float";
      return b;
    }
    return absl::InvalidArgumentError("--bind " + flags.bind + ": the CPU topology is unknown (hwloc could not load it)");
  }
  const TopologySummary t = topology->Summary();
  if (flags.bind == "auto" && slots < t.cores) {
    // Other workers may share this machine (each would pin to the same
    // first cores): auto pins only a worker that takes every usable core.
    b.note = absl::StrCat("--bind auto: ", slots, " slots leave ", t.cores - slots, " of ", t.cores,
                          " usable cores to others; slots float (--bind cores pins them to the first cores)");
    return b;
  }
  b.places = topology->Places(wanted, slots);
  if (!b.places.empty()) {
    b.mode = wanted;
    return b;
  }
  const std::string limit = absl::StrCat(slots, " slots need ", slots, " distinct usable ", what,
                                         "; this worker may use ", wanted == BindMode::kThreads ? t.threads : t.cores);
  if (flags.bind == "auto") {
    b.note = absl::StrCat("--bind auto: ", limit, "; slots float (--bind none)");
    return b;
  }
  return absl::InvalidArgumentError(absl::StrCat("--bind ", flags.bind, ": ", limit));
}

}  // namespace busyfleet::worker
