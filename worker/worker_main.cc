// worker: the busyfleet worker daemon. Dials the coordinator, runs tasks.
// Its flags are in worker_flags.h.

#include <cstdio>
#include <memory>
#include <string>
#include <thread>

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/flags.h"
#include "common/logging.h"
#include "common/rpc/client_security.h"
#include "common/rpc/grpc_logging.h"
#include "common/status_macros.h"
#include "worker/cpu_topology.h"
#include "worker/host_probe.h"
#include "worker/python_kernel.h"
#include "worker/worker_client.h"
#include "worker/worker_flags.h"

namespace {

using busyfleet::worker::WorkerClient;
using busyfleet::worker::WorkerFlags;

// Exit code for flags the worker refuses and for a client that cannot start.
constexpr int kExitBadFlags = 2;

int BadFlags(absl::string_view message) {
  std::fprintf(stderr, "worker: %s\n", std::string(message).c_str());
  return kExitBadFlags;
}

absl::StatusOr<WorkerClient::Options> BuildWorkerOptions(const WorkerFlags& flags,
                                                         const busyfleet::worker::HostInfo& host,
                                                         const busyfleet::worker::CpuTopology* topology) {
  WorkerClient::Options options;
  BF_ASSIGN_OR_RETURN(options.labels, busyfleet::worker::ParseLabels(flags.labels));
  options.coordinator = flags.coordinator;
  options.slots = busyfleet::worker::SlotsFor(flags, host);
  options.name = busyfleet::worker::NameFor(flags, host);
  options.default_exec = busyfleet::worker::ExecModeFor(flags);
  options.host = busyfleet::worker::HostInfoMessage(host);
  BF_ASSIGN_OR_RETURN(busyfleet::worker::Binding binding,
                      busyfleet::worker::BindingFor(flags, options.slots, topology));
  if (!binding.note.empty()) spdlog::info("{}", binding.note);
  options.slot_cpus = std::move(binding.places);
  options.host.set_bind(busyfleet::worker::BindModeName(binding.mode));
  return options;
}

// hwloc's view of the CPUs this worker may use; nullptr (logged) when it
// cannot load.
std::unique_ptr<busyfleet::worker::CpuTopology> LoadTopology() {
  absl::StatusOr<std::unique_ptr<busyfleet::worker::CpuTopology>> t = busyfleet::worker::CpuTopology::Live();
  if (t.ok()) return *std::move(t);
  spdlog::warn("CPU topology unknown: {}", t.status().message());
  return nullptr;
}

void LogHost(const busyfleet::worker::HostInfo& host, const WorkerFlags& flags, int slots) {
  spdlog::info("host {}: {} logical CPUs, {} physical cores, affinity {}, cgroup quota {}, \"{}\"",
               host.hostname, host.logical_cpus, host.physical_cores, host.affinity_cpus,
               host.cgroup_cpu_quota > 0 ? std::to_string(host.cgroup_cpu_quota) : "none", host.cpu_model);
  spdlog::info("usable CPUs: {} packages, {} NUMA nodes, {} cores, {} hardware threads ({} per core at most)",
               host.packages, host.numa_nodes, host.usable_cores, host.usable_threads, host.threads_per_core);
  spdlog::info("{} slots ({}), exec {}", slots,
               flags.slots > 0 ? "from --slots" : "smallest of physical cores, usable cores, affinity and quota", flags.exec);
}

// "0:0-1 1:2-3" for slot 0 on CPUs 0-1, slot 1 on 2-3; "floating" when none.
std::string SlotPlaces(const std::vector<std::vector<int>>& places) {
  std::string out;
  for (size_t slot = 0; slot < places.size(); ++slot) {
    absl::StrAppend(&out, slot == 0 ? "" : " ", slot, ":", busyfleet::worker::FormatCpuList(places[slot]));
  }
  return out.empty() ? "floating" : out;
}

// Starts the embedded Python for the python task kind, unless --no-python;
// its version ("" when the worker does not offer the kind), logged.
std::string StartPython(const WorkerFlags& flags) {
  if (flags.no_python) {
    spdlog::info("python task kind: off (--no-python)");
    return "";
  }
  if (absl::Status st = busyfleet::worker::InitPythonKernel(); !st.ok()) {
    spdlog::warn("python task kind: not offered: {}", st.message());
    return "";
  }
  const std::string version = busyfleet::worker::PythonVersion();
  spdlog::info("python task kind: embedded CPython {}", version);
  return version;
}

// After the first signal: drains (running tasks finish, within `limit` when
// it is positive) in the background, so that a second signal can stop at
// once instead. True when the drain finished.
bool DrainUntilDoneOrSignalled(WorkerClient& client, int sig, absl::Duration limit) {
  spdlog::info("signal {} received: draining (running tasks finish, no new ones{}); signal again to stop now",
               sig, limit > absl::ZeroDuration() ? ", limit " + absl::FormatDuration(limit) : "");
  bool drained = false;
  absl::Notification done;
  std::thread drainer([&] {
    drained = client.Drain(limit > absl::ZeroDuration() ? limit : absl::InfiniteDuration());
    done.Notify();
  });
  while (!done.HasBeenNotified()) {
    if (busyfleet::WaitForTerminationSignalUntil(absl::Now() + absl::Milliseconds(200)) != 0) {
      spdlog::warn("second signal: stopping now, running tasks are cancelled");
      client.Stop();
      break;
    }
  }
  drainer.join();
  return drained;
}

// "calibrated countdown: 3.41e+09 iterations/s per core (cpu0 3.40e+09, cpu1 2.41e+09)"
void LogCalibrations(const std::vector<busyfleet::v1::KernelCalibration>& calibrations) {
  for (const busyfleet::v1::KernelCalibration& c : calibrations) {
    std::string cpus;
    for (const busyfleet::v1::CpuRate& r : c.cpus()) {
      absl::StrAppend(&cpus, cpus.empty() ? "" : ", ", absl::StrFormat("cpu%u %.3g", r.cpu(), r.iterations_per_second()));
    }
    spdlog::info("calibrated {}: {:.3g} iterations/s per core ({})", busyfleet::v1::TaskKind_Name(c.kind()),
                 c.iterations_per_second(), cpus);
  }
}

void LogFigures(const WorkerClient::Figures& f) {
  spdlog::info("ran {} tasks ({} succeeded, {} failed, {} cancelled): {} iterations, busy {:.3f}s, cpu {:.3f}s{}",
               f.succeeded + f.failed + f.cancelled, f.succeeded, f.failed, f.cancelled, f.iterations,
               f.busy_seconds, f.cpu_seconds,
               f.busy_seconds > 0 && f.iterations > 0
                   ? absl::StrFormat(", %.3g iterations/s per busy slot", static_cast<double>(f.iterations) / f.busy_seconds)
                   : std::string());
}

}  // namespace

int main(int argc, char** argv) {
  busyfleet::BlockTerminationSignals();
  // Abseil's lock-order (deadlock) graph costs every nested lock on the
  // dispatch path; the tests and the clang -Wthread-safety build keep it.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  CLI::App app{"busyfleet worker: runs busy-wait tasks for a coordinator"};
  WorkerFlags flags;
  busyfleet::ClientSecurityFlags security_flags;
  busyfleet::worker::AddWorkerFlags(app, flags, [&](CLI::App& a) { security_flags.AddTo(a); });
  CLI11_PARSE(app, argc, argv);
  if (!flags.clock_skew.empty()) {
    absl::StatusOr<absl::Duration> skew = busyfleet::worker::ParseClockSkew(flags.clock_skew);
    if (!skew.ok()) return BadFlags(skew.status().message());
    busyfleet::SetClockSkewForTesting(*skew);
  }
  if (auto st = busyfleet::SetupGrpcLogging("worker", flags.log_format, flags.log_level); !st.ok()) {
    return BadFlags(st.message());
  }
  const std::unique_ptr<busyfleet::worker::CpuTopology> topology = LoadTopology();
  const busyfleet::worker::HostInfo host = busyfleet::worker::ProbeHost("", topology.get());
  absl::StatusOr<WorkerClient::Options> options = BuildWorkerOptions(flags, host, topology.get());
  if (!options.ok()) return BadFlags(options.status().message());
  absl::StatusOr<busyfleet::ClientSecurity> security = security_flags.Load();
  if (!security.ok()) {
    spdlog::critical("{}", security.status().message());
    return kExitBadFlags;
  }
  options->security = *std::move(security);
  options->python_version = StartPython(flags);
  LogHost(host, flags, options->slots);
  spdlog::info("slots pinned: {} ({})", options->host.bind(), SlotPlaces(options->slot_cpus));

  busyfleet::worker::HostMonitor::Options monitor_options;
  monitor_options.slot_cpus = options->slot_cpus;
  monitor_options.kernels.push_back({busyfleet::v1::TASK_KIND_COUNTDOWN, [](uint64_t n, const busyfleet::CancelToken& c) {
                                       return busyfleet::Countdown(n, c);
                                     }});
  if (!options->python_version.empty()) {  // the interpreter started: calibrate its loop too
    monitor_options.kernels.push_back(
        {busyfleet::v1::TASK_KIND_PYTHON, [](uint64_t n, const busyfleet::CancelToken& c) {
           return busyfleet::worker::PythonCountdown(n, c, busyfleet::MonoTime::InfiniteFuture());
         }});
  }
  busyfleet::worker::HostMonitor monitor(std::move(monitor_options));
  monitor.CalibrateNow();
  LogCalibrations(monitor.Calibrations());
  options->monitor = &monitor;
  auto client = WorkerClient::Start(*std::move(options));
  if (!client.ok()) {
    spdlog::critical("cannot start: {}", client.status().message());
    return kExitBadFlags;
  }
  monitor.Start([c = client->get()] { return c->Idle(); });
  const int sig = busyfleet::WaitForTerminationSignal();
  const absl::Duration limit = *busyfleet::ParseDurationFlag("drain-timeout", flags.drain_timeout);
  const bool drained = DrainUntilDoneOrSignalled(**client, sig, limit);
  LogFigures((*client)->figures());
  monitor.Stop();
  spdlog::info("worker stopped ({})", drained ? "drained" : "tasks cancelled");
  return 0;
}
