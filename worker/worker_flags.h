#ifndef BUSYFLEET_WORKER_WORKER_FLAGS_H_
#define BUSYFLEET_WORKER_WORKER_FLAGS_H_

// The worker daemon's command line and the rules that turn it into the
// worker's settings. No gRPC here (the token and TLS flags, which need it,
// are common/rpc/client_security.h), so unit tests reach every rule.

#include <map>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "busyfleet/v1/types.pb.h"
#include "worker/cpu_topology.h"
#include "worker/host_probe.h"

namespace busyfleet::worker {

struct WorkerFlags {
  std::string coordinator = "127.0.0.1:7070";
  int slots = 0;  // 0: DefaultSlots of the host
  std::string name;  // empty: the host name
  std::string exec = "thread";  // thread or process (checked by the parser)
  std::string bind = "auto";  // auto, cores, threads or none (checked by the parser)
  std::string labels;  // k=v,k2=v2
  std::string drain_timeout = "0s";  // 0s: no limit
  std::string log_format = "text";
  std::string log_level = "info";
  std::string clock_skew;  // --debug-clock-skew (testing); empty: none
  bool no_python = false;  // --no-python: do not offer the python kind
};

// Adds the worker's flags to `app` in --help order; `add_client_security`
// adds the token and TLS flags (ClientSecurityFlags::AddTo) in their place,
// after --drain-timeout. Every flag but the testing one, --debug-clock-skew,
// is also read from its BUSYFLEET_* environment variable.
void AddWorkerFlags(CLI::App& app, WorkerFlags& flags, absl::FunctionRef<void(CLI::App&)> add_client_security);

// --debug-clock-skew: a duration within a year either way ("5s", "-3s").
// InvalidArgument naming the flag otherwise.
absl::StatusOr<absl::Duration> ParseClockSkew(const std::string& text);

// --labels "k=v,k2=v2" (empty: none). InvalidArgument naming the first
// entry that is not key=value.
absl::StatusOr<std::map<std::string, std::string>> ParseLabels(absl::string_view text);

// --slots, or the host's DefaultSlots.
int SlotsFor(const WorkerFlags& flags, const HostInfo& host);
// --name, or the host name, or "worker" when that is unknown.
std::string NameFor(const WorkerFlags& flags, const HostInfo& host);
// --exec: EXEC_MODE_PROCESS for "process", else EXEC_MODE_THREAD.
v1::ExecMode ExecModeFor(const WorkerFlags& flags);
// The host as the worker describes itself to the coordinator.
v1::HostInfo HostInfoMessage(const HostInfo& host);

// Where the slots go (--bind): the mode and each slot's CPUs
// (CpuTopology::Places); `note` says why auto chose none.
struct Binding {
  BindMode mode = BindMode::kNone;
  std::vector<std::vector<int>> places;
  std::string note;
};
// --bind for `slots` slots on `topology` (nullptr: unknown). auto: cores
// when the slots take every usable core, one each, else none (with a
// note): fewer slots than cores may mean other workers on the machine,
// which would be pinned to the same first cores.
// cores / threads that do not fit, or with no topology: InvalidArgument
// naming the flag, the slots and the limit.
absl::StatusOr<Binding> BindingFor(const WorkerFlags& flags, int slots, const CpuTopology* topology);

}  // namespace busyfleet::worker

#endif  // BUSYFLEET_WORKER_WORKER_FLAGS_H_
