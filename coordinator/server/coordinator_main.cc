// coordinator: the busyfleet coordinator daemon. Its flags and the server
// options they give are in daemon_options.h, the rules for exposing it in
// security_policy.h.

#include <cstdio>
#include <string>

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/flags.h"
#include "common/logging.h"
#include "common/net.h"
#include "common/rpc/grpc_logging.h"
#include "coordinator/server/coordinator_server.h"
#include "coordinator/server/daemon_options.h"
#include "coordinator/server/security_policy.h"

namespace {

using busyfleet::coordinator::CoordinatorServer;

// Exit codes: 2 for flags the daemon refuses, 1 when it cannot start (a
// flag the parser rejects exits with CLI11's own code, as always).
constexpr int kExitCannotStart = 1;
constexpr int kExitBadFlags = 2;

void LogListening(const CoordinatorServer& server, const busyfleet::coordinator::DaemonFlags& flags,
                  const CoordinatorServer::Options& options,
                  const busyfleet::coordinator::SecurityDecision& security) {
  spdlog::info("coordinator listening on {} (worker timeout {}, database {}, {}{})", server.address(),
               absl::FormatDuration(options.worker_timeout), flags.db, security.transport,
               security.tokens ? ", tokens required" : "");
  if (server.http_port() > 0) {
    spdlog::info("status page and metrics on {}://{}:{}/ (/metrics, /healthz)", flags.tls_cert.empty() ? "http" : "https",
                 flags.http_listen.substr(0, flags.http_listen.rfind(':')), server.http_port());
  }
}

}  // namespace

int main(int argc, char** argv) {
  busyfleet::BlockTerminationSignals();
  // Abseil's lock-order (deadlock) graph costs every nested lock on the
  // dispatch path; the tests and the clang -Wthread-safety build keep it.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  CLI::App app{"busyfleet coordinator: splits busy-wait jobs across workers and reports their timing"};
  busyfleet::coordinator::DaemonFlags flags;
  busyfleet::coordinator::AddDaemonFlags(app, flags);
  CLI11_PARSE(app, argc, argv);

  if (auto st = busyfleet::SetupGrpcLogging("coordinator", flags.log_format, flags.log_level); !st.ok()) {
    std::fprintf(stderr, "coordinator: %s\n", std::string(st.message()).c_str());
    return kExitBadFlags;
  }
  auto security = busyfleet::coordinator::DecideSecurity(flags);
  if (!security.ok()) {
    spdlog::critical("{}", security.status().message());
    return kExitBadFlags;
  }
  auto options = busyfleet::coordinator::BuildServerOptions(flags);
  if (!options.ok()) {
    spdlog::critical("{}", options.status().message());
    return kExitBadFlags;
  }
  if (!security->refusal.empty()) {
    spdlog::critical("{}", security->refusal);
    return kExitBadFlags;
  }
  for (const std::string& warning : security->warnings) spdlog::warn("{}", warning);

  // Every attached worker holds a socket: --max-sessions of them need as
  // many open files (plus the database, the HTTP server, gRPC's own).
  if (const uint64_t open_files = busyfleet::RaiseOpenFileLimit(); open_files < flags.max_sessions + 256ull) {
    spdlog::warn("the open-file limit is {}: fewer than --max-sessions ({}) workers can attach; raise the hard "
                 "limit (ulimit -Hn, LimitNOFILE= in systemd)",
                 open_files, flags.max_sessions);
  }
  auto server = CoordinatorServer::Start(*options);
  if (!server.ok()) {
    spdlog::critical("cannot start: {}", server.status().message());
    return kExitCannotStart;
  }
  LogListening(**server, flags, *options, *security);
  const int sig = busyfleet::WaitForTerminationSignal();
  spdlog::info("signal {} received, shutting down", sig);
  (*server)->Shutdown(absl::Seconds(2));
  spdlog::info("coordinator stopped");
  return 0;
}
