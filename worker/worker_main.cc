// worker: the busyfleet worker daemon. Dials the coordinator, runs tasks.

#include <cmath>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include "absl/strings/str_split.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/flags.h"
#include "common/logging.h"
#include "common/rpc/grpc_logging.h"
#include "worker/host_probe.h"
#include "worker/worker_client.h"

namespace {

// "k=v,k2=v2" -> map; an error message naming the bad entry, or "".
std::string ParseLabels(const std::string& text, std::map<std::string, std::string>* out) {
  if (text.empty()) return "";
  for (absl::string_view item : absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    std::vector<std::string> kv = absl::StrSplit(item, absl::MaxSplits('=', 1));
    if (kv.size() != 2 || kv[0].empty()) {
      return "--labels entries must look like key=value, got \"" + std::string(item) + "\"";
    }
    (*out)[kv[0]] = kv[1];
  }
  return "";
}

}  // namespace

int main(int argc, char** argv) {
  busyfleet::BlockTerminationSignals();
  // Abseil's lock-order (deadlock) graph costs every nested lock on the
  // dispatch path; the tests and the clang -Wthread-safety build keep it.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  CLI::App app{"busyfleet worker: runs busy-wait tasks for a coordinator"};
  std::string coordinator = "127.0.0.1:7070";
  int slots = 0;
  std::string name;
  std::string exec = "thread";
  std::string labels;
  std::string drain_timeout = "0s";
  std::string log_format = "text";
  std::string log_level = "info";
  app.add_option("--coordinator", coordinator, "coordinator address (host:port)")->capture_default_str();
  app.add_option("--slots", slots,
                 "tasks run at once; default: the smallest of physical cores, CPU affinity and cgroup quota")
      ->check(CLI::Range(0, 4096));
  app.add_option("--name", name, "worker name; default: the host name");
  app.add_option("--exec", exec, "how tasks run: thread (one thread per slot) or process (a child per task)")
      ->capture_default_str()
      ->check(CLI::IsMember({"thread", "process"}));
  app.add_option("--labels", labels, "labels for job selectors, k=v,k2=v2");
  app.add_option("--drain-timeout", drain_timeout,
                 "on SIGTERM, how long running tasks may take to finish; 0s: no limit")
      ->capture_default_str()
      ->check(busyfleet::DurationValidator());
  busyfleet::ClientSecurityFlags security_flags;
  security_flags.AddTo(app);
  app.add_option("--log-format", log_format, "text or json")
      ->capture_default_str()
      ->check(CLI::IsMember({"text", "json"}));
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error")
      ->capture_default_str()
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "off"}));
  busyfleet::BindEnvironment(app);
  std::string clock_skew;
  app.add_option("--debug-clock-skew", clock_skew,
                 "testing: pretend this machine's clocks are off by this much (e.g. 5s, -3s)")
      ->group("Testing");
  CLI11_PARSE(app, argc, argv);
  if (!clock_skew.empty()) {
    absl::Duration skew;
    if (!absl::ParseDuration(clock_skew, &skew) || absl::AbsDuration(skew) > absl::Hours(24 * 365)) {
      std::fprintf(stderr, "worker: --debug-clock-skew must be a duration within a year, like 5s or -3s; got \"%s\"\n",
                   clock_skew.c_str());
      return 2;
    }
    busyfleet::SetClockSkewForTesting(skew);
  }

  if (auto st = busyfleet::SetupGrpcLogging("worker", log_format, log_level); !st.ok()) {
    std::fprintf(stderr, "worker: %s\n", std::string(st.message()).c_str());
    return 2;
  }
  busyfleet::worker::WorkerClient::Options options;
  if (std::string err = ParseLabels(labels, &options.labels); !err.empty()) {
    std::fprintf(stderr, "worker: %s\n", err.c_str());
    return 2;
  }
  auto security = security_flags.Load();
  if (!security.ok()) {
    spdlog::critical("{}", security.status().message());
    return 2;
  }
  options.security = *std::move(security);
  const busyfleet::worker::HostInfo host = busyfleet::worker::ProbeHost();
  const int default_slots = busyfleet::worker::DefaultSlots(host);
  options.coordinator = coordinator;
  options.slots = slots > 0 ? slots : default_slots;
  options.name = !name.empty() ? name : (!host.hostname.empty() ? host.hostname : "worker");
  options.default_exec = exec == "process" ? busyfleet::v1::EXEC_MODE_PROCESS : busyfleet::v1::EXEC_MODE_THREAD;
  options.host.set_hostname(host.hostname);
  options.host.set_logical_cpus(static_cast<uint32_t>(host.logical_cpus));
  options.host.set_physical_cores(static_cast<uint32_t>(host.physical_cores));
  options.host.set_affinity_cpus(static_cast<uint32_t>(host.affinity_cpus));
  options.host.set_cgroup_cpu_quota(host.cgroup_cpu_quota);
  options.host.set_cpu_model(host.cpu_model);
  spdlog::info("host {}: {} logical CPUs, {} physical cores, affinity {}, cgroup quota {}, \"{}\"",
               host.hostname, host.logical_cpus, host.physical_cores, host.affinity_cpus,
               host.cgroup_cpu_quota > 0 ? std::to_string(host.cgroup_cpu_quota) : "none", host.cpu_model);
  spdlog::info("{} slots ({}), exec {}", options.slots,
               slots > 0 ? "from --slots" : "smallest of physical cores, affinity and quota", exec);

  auto client = busyfleet::worker::WorkerClient::Start(options);
  if (!client.ok()) {
    spdlog::critical("cannot start: {}", client.status().message());
    return 2;
  }
  const int sig = busyfleet::WaitForTerminationSignal();
  const absl::Duration limit = *busyfleet::ParseDurationFlag("drain-timeout", drain_timeout);
  spdlog::info("signal {} received: draining (running tasks finish, no new ones{}); signal again to stop now",
               sig, limit > absl::ZeroDuration() ? ", limit " + absl::FormatDuration(limit) : "");
  // Drain in the background so a second signal can cut it short.
  bool drained = false;
  absl::Notification done;
  std::thread drainer([&] {
    drained = (*client)->Drain(limit > absl::ZeroDuration() ? absl::Now() + limit : absl::InfiniteFuture());
    done.Notify();
  });
  while (!done.HasBeenNotified()) {
    if (busyfleet::WaitForTerminationSignalUntil(absl::Now() + absl::Milliseconds(200)) != 0) {
      spdlog::warn("second signal: stopping now, running tasks are cancelled");
      (*client)->Stop();
      break;
    }
  }
  drainer.join();
  const auto f = (*client)->figures();
  spdlog::info("ran {} tasks ({} succeeded, {} failed, {} cancelled): {} iterations, busy {:.3f}s, cpu {:.3f}s{}",
               f.succeeded + f.failed + f.cancelled, f.succeeded, f.failed, f.cancelled, f.iterations,
               f.busy_seconds, f.cpu_seconds,
               f.busy_seconds > 0 && f.iterations > 0
                   ? absl::StrFormat(", %.3g iterations/s per busy slot", static_cast<double>(f.iterations) / f.busy_seconds)
                   : std::string());
  spdlog::info("worker stopped ({})", drained ? "drained" : "tasks cancelled");
  return 0;
}
