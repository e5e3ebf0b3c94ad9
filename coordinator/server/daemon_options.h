#ifndef BUSYFLEET_COORDINATOR_SERVER_DAEMON_OPTIONS_H_
#define BUSYFLEET_COORDINATOR_SERVER_DAEMON_OPTIONS_H_

// The coordinator daemon's command line and the server options it gives.

#include <string>

#include <CLI/CLI.hpp>

#include "absl/status/statusor.h"
#include "coordinator/server/coordinator_server.h"

namespace busyfleet::coordinator {

struct DaemonFlags {
  std::string listen = "127.0.0.1:7070";
  std::string http_listen = "127.0.0.1:7071";  // empty: no HTTP listener
  std::string db = "busyfleet.db";
  std::string worker_timeout = "5s";
  double max_heartbeat_rate = kDefaultMaxHeartbeatRate;
  // SQLite's busy timeout per write attempt; a failed batch is retried.
  std::string db_busy_timeout = "5s";
  // Until a job's first results: none, so a job of long tasks never piles
  // up on one worker; one round trip later the prefetch adapts.
  int prefetch = 0;
  // Finished jobs kept in memory (older ones read back from --db on demand).
  size_t keep_finished_jobs = 256;
  uint64_t keep_finished_tasks = 500'000;
  // Finished jobs removed from --db after this long ("0": never), and past
  // the newest retention_jobs (0: no cap).
  std::string retention = "30d";
  size_t retention_jobs = 0;
  std::string token_file;         // both roles
  std::string worker_token_file;  // one role each
  std::string client_token_file;
  std::string viewer_token_file;  // read only: get, watch, list, health, status page, /metrics
  // How long a status-page login lasts.
  std::string session_ttl = "12h";
  std::string tls_cert;
  std::string tls_key;
  std::string tls_client_ca;
  bool insecure = false;
  uint32_t max_sessions = limits::kDefaultMaxSessions;
  uint32_t max_watches = limits::kDefaultMaxWatches;
  std::string log_format = "text";
  std::string log_level = "info";
};

// Adds the daemon's flags to `app` (in --help order), each also read from
// its BUSYFLEET_* environment variable.
void AddDaemonFlags(CLI::App& app, DaemonFlags& flags);

// The server's options: addresses, database, timings, and the tokens and
// TLS credentials read from their files (--token-file serves both roles, a
// role's own file wins). Call after DecideSecurity (security_policy.h) has
// accepted the flags. InvalidArgument naming the flag when a file cannot be
// read, only one role has a token, TLS is half configured, or
// --worker-timeout is not a duration.
absl::StatusOr<CoordinatorServer::Options> BuildServerOptions(const DaemonFlags& flags);

}  // namespace busyfleet::coordinator

#endif  // BUSYFLEET_COORDINATOR_SERVER_DAEMON_OPTIONS_H_
