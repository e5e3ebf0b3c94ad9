#include "coordinator/server/daemon_options.h"

#include <tuple>

#include "absl/strings/str_cat.h"
#include "common/flags.h"
#include "common/rpc/auth.h"
#include "common/rpc/tls.h"
#include "common/status_macros.h"

namespace busyfleet::coordinator {

void AddDaemonFlags(CLI::App& app, DaemonFlags& flags) {
  app.add_option("--listen", flags.listen, "gRPC address to listen on (host:port)")->capture_default_str();
  app.add_option("--http-listen", flags.http_listen,
                 "HTTP address for /metrics (Prometheus), the status page and /healthz; empty: none")
      ->capture_default_str();
  app.add_option("--db", flags.db, "SQLite file for jobs and results (\":memory:\": keep nothing)")
      ->capture_default_str();
  app.add_option("--db-busy-timeout", flags.db_busy_timeout,
                 "how long a write waits for another connection's lock on --db before it fails and is retried "
                 "(the store is then reported not writable)")
      ->capture_default_str()
      ->check(DurationValidator());
  app.add_option("--worker-timeout", flags.worker_timeout, "declare a worker dead after this long without a heartbeat")
      ->capture_default_str()
      ->check(DurationValidator());
  app.add_option("--max-heartbeat-rate", flags.max_heartbeat_rate,
                 "heartbeats a second from all workers together: a fleet larger than this x a third of "
                 "--worker-timeout is asked for heartbeats less often, and its worker timeout grows in "
                 "proportion (0: no ceiling)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1e9));
  app.add_option("--prefetch", flags.prefetch,
                 "tasks assigned to a worker beyond its slots until a job's first results (then adaptive)")
      ->capture_default_str()
      ->check(CLI::Range(0, 1024));
  app.add_option("--keep-finished-jobs", flags.keep_finished_jobs,
                 "finished jobs kept in memory; older ones are read back from --db when asked for (with --db "
                 ":memory: they are dropped)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1'000'000));
  app.add_option("--keep-finished-tasks", flags.keep_finished_tasks,
                 "at most this many task rows of finished jobs in memory (about 120 bytes each; the newest "
                 "finished job is always kept)")
      ->capture_default_str()
      ->check(CLI::Range(uint64_t{0}, uint64_t{1'000'000'000}));
  app.add_option("--retention", flags.retention,
                 "remove finished jobs from --db this long after they finished (e.g. 30d, 12h; 0: keep forever)")
      ->capture_default_str()
      ->check(DurationValidator());
  app.add_option("--retention-jobs", flags.retention_jobs,
                 "keep at most this many finished jobs in --db, removing the oldest (0: no cap)")
      ->capture_default_str()
      ->check(CLI::Range(size_t{0}, size_t{1'000'000'000}));
  app.add_option("--token-file", flags.token_file, "bearer token required of workers and clients alike");
  app.add_option("--worker-token-file", flags.worker_token_file, "token that lets a process attach as a worker");
  app.add_option("--client-token-file", flags.client_token_file,
                 "token that lets coordctl submit, cancel, drain, read");
  app.add_option("--viewer-token-file", flags.viewer_token_file,
                 "token that may only read: jobs, workers, health, the status page and /metrics (Prometheus)");
  app.add_option("--session-ttl", flags.session_ttl, "how long a login on the status page (/login) lasts")
      ->capture_default_str()
      ->check(DurationValidator());
  app.add_option("--tls-cert", flags.tls_cert, "PEM certificate chain: serve TLS");
  app.add_option("--tls-key", flags.tls_key, "PEM private key of --tls-cert");
  app.add_option("--tls-client-ca", flags.tls_client_ca, "PEM CA: require client certificates signed by it (mTLS)");
  app.add_flag("--insecure", flags.insecure,
               "allow listening on a non-loopback address without a token or TLS (anyone who can reach "
               "the port can submit jobs and attach workers)");
  app.add_option("--max-sessions", flags.max_sessions,
                 "worker sessions attached at once; more are refused (RESOURCE_EXHAUSTED)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1'000'000));
  app.add_option("--max-watches", flags.max_watches,
                 "progress streams (coordctl watch, submit --wait) open at once; more are refused (RESOURCE_EXHAUSTED)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1'000'000));
  AddLogFlags(app, flags.log_format, flags.log_level);
  BindEnvironment(app);
}

namespace {

// --token-file for both roles, or one file per role (read in this order, so
// a role's own file wins).
absl::StatusOr<TokenAuthenticator> LoadTokens(const DaemonFlags& flags) {
  std::string worker_token, client_token, viewer_token;
  for (auto [flag, path, out] : {std::tuple{"--token-file", &flags.token_file, &worker_token},
                                 std::tuple{"--worker-token-file", &flags.worker_token_file, &worker_token},
                                 std::tuple{"--client-token-file", &flags.client_token_file, &client_token},
                                 std::tuple{"--viewer-token-file", &flags.viewer_token_file, &viewer_token}}) {
    if (path->empty()) continue;
    BF_ASSIGN_OR_RETURN(*out, ReadTokenFile(flag, *path));
    if (std::string(flag) == "--token-file") client_token = *out;
  }
  return TokenAuthenticator::Create(worker_token, client_token, viewer_token);
}

}  // namespace

absl::StatusOr<CoordinatorServer::Options> BuildServerOptions(const DaemonFlags& flags) {
  CoordinatorServer::Options options;
  options.listen = flags.listen;
  BF_ASSIGN_OR_RETURN(options.authenticator, LoadTokens(flags));
  BF_ASSIGN_OR_RETURN(options.credentials, MakeServerCredentials(flags.tls_cert, flags.tls_key, flags.tls_client_ca));
  options.db = flags.db;
  BF_ASSIGN_OR_RETURN(options.db_busy_timeout, ParseDurationFlag("db-busy-timeout", flags.db_busy_timeout));
  BF_ASSIGN_OR_RETURN(options.worker_timeout, ParseDurationFlag("worker-timeout", flags.worker_timeout));
  options.max_heartbeat_rate = flags.max_heartbeat_rate;
  options.prefetch_per_worker = flags.prefetch;
  options.keep_finished_jobs = flags.keep_finished_jobs;
  options.keep_finished_tasks = flags.keep_finished_tasks;
  BF_ASSIGN_OR_RETURN(options.retention, ParseDurationFlag("--retention", flags.retention));
  options.retention_jobs = flags.retention_jobs;
  options.max_sessions = flags.max_sessions;
  options.max_watches = flags.max_watches;
  if (!flags.http_listen.empty()) {
    HttpServer::Options http;
    http.listen = flags.http_listen;
    http.tls_cert = flags.tls_cert;
    http.tls_key = flags.tls_key;
    http.tls_client_ca = flags.tls_client_ca;
    BF_ASSIGN_OR_RETURN(http.sessions.ttl, ParseDurationFlag("session-ttl", flags.session_ttl));
    if (http.sessions.ttl < absl::Minutes(1) || http.sessions.ttl > absl::Hours(24 * 30)) {
      return absl::InvalidArgumentError(absl::StrCat("--session-ttl must be between 1m and 720h (30 days); got \"",
                                                     flags.session_ttl, "\""));
    }
    options.http = http;
  }
  return options;
}

}  // namespace busyfleet::coordinator
