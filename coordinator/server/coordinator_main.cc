// coordinator: the busyfleet coordinator daemon.

#include <cstdlib>
#include <string>

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/flags.h"
#include "common/logging.h"
#include "common/rpc/grpc_logging.h"
#include "common/net.h"
#include "common/rpc/auth.h"
#include "common/rpc/tls.h"
#include <tuple>
#include "coordinator/server/coordinator_server.h"

int main(int argc, char** argv) {
  busyfleet::BlockTerminationSignals();
  // Abseil's lock-order (deadlock) graph costs every nested lock on the
  // dispatch path; the tests and the clang -Wthread-safety build keep it.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  CLI::App app{"busyfleet coordinator: splits busy-wait jobs across workers and reports their timing"};
  std::string listen = "127.0.0.1:7070";
  std::string http_listen = "127.0.0.1:7071";
  std::string worker_timeout = "5s";
  std::string db = "busyfleet.db";
  std::string log_format = "text";
  std::string log_level = "info";
  // Until a job's first results: none, so a job of long tasks never piles
  // up on one worker; one round trip later the prefetch adapts.
  int prefetch = 0;
  bool insecure = false;
  std::string token_file, worker_token_file, client_token_file;
  std::string tls_cert, tls_key, tls_client_ca;
  app.add_option("--listen", listen, "gRPC address to listen on (host:port)")->capture_default_str();
  app.add_option("--http-listen", http_listen,
                 "HTTP address for /metrics (Prometheus), the status page and /healthz; empty: none")
      ->capture_default_str();
  app.add_option("--db", db, "SQLite file for jobs and results (\":memory:\": keep nothing)")
      ->capture_default_str();
  app.add_option("--worker-timeout", worker_timeout,
                 "declare a worker dead after this long without a heartbeat")
      ->capture_default_str()
      ->check(busyfleet::DurationValidator());
  app.add_option("--prefetch", prefetch,
                 "tasks assigned to a worker beyond its slots until a job's first results (then adaptive)")
      ->capture_default_str()
      ->check(CLI::Range(0, 1024));
  app.add_option("--token-file", token_file, "bearer token required of workers and clients alike");
  app.add_option("--worker-token-file", worker_token_file, "token that lets a process attach as a worker");
  app.add_option("--client-token-file", client_token_file, "token that lets coordctl submit, cancel, drain, read");
  app.add_option("--tls-cert", tls_cert, "PEM certificate chain: serve TLS");
  app.add_option("--tls-key", tls_key, "PEM private key of --tls-cert");
  app.add_option("--tls-client-ca", tls_client_ca, "PEM CA: require client certificates signed by it (mTLS)");
  app.add_flag("--insecure", insecure,
               "allow listening on a non-loopback address without a token or TLS (anyone who can reach "
               "the port can submit jobs and attach workers)");
  app.add_option("--log-format", log_format, "text or json")
      ->capture_default_str()
      ->check(CLI::IsMember({"text", "json"}));
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error")
      ->capture_default_str()
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "off"}));
  busyfleet::BindEnvironment(app);
  CLI11_PARSE(app, argc, argv);

  if (auto st = busyfleet::SetupGrpcLogging("coordinator", log_format, log_level); !st.ok()) {
    std::fprintf(stderr, "coordinator: %s\n", std::string(st.message()).c_str());
    return 2;
  }
  auto host = busyfleet::HostOfAddress("--listen", listen);
  if (!host.ok()) {
    spdlog::critical("{}", host.status().message());
    return 2;
  }
  absl::StatusOr<std::string> http_host = std::string("127.0.0.1");
  if (!http_listen.empty()) http_host = busyfleet::HostOfAddress("--http-listen", http_listen);
  if (!http_host.ok()) {
    spdlog::critical("{}", http_host.status().message());
    return 2;
  }
  // Tokens: --token-file for both roles, or one file per role.
  if (!token_file.empty() && !worker_token_file.empty() && !client_token_file.empty()) {
    spdlog::critical("--token-file would be ignored: --worker-token-file and --client-token-file are both given");
    return 2;
  }
  std::string worker_token, client_token;
  for (auto [flag, path, out] : {std::tuple{"--token-file", &token_file, &worker_token},
                                 std::tuple{"--worker-token-file", &worker_token_file, &worker_token},
                                 std::tuple{"--client-token-file", &client_token_file, &client_token}}) {
    if (path->empty()) continue;
    auto token = busyfleet::ReadTokenFile(flag, *path);
    if (!token.ok()) {
      spdlog::critical("{}", token.status().message());
      return 2;
    }
    *out = *token;
    if (std::string(flag) == "--token-file") client_token = *token;
  }
  auto authenticator = busyfleet::TokenAuthenticator::Create(worker_token, client_token);
  if (!authenticator.ok()) {
    spdlog::critical("{}", authenticator.status().message());
    return 2;
  }
  auto credentials = busyfleet::MakeServerCredentials(tls_cert, tls_key, tls_client_ca);
  if (!credentials.ok()) {
    spdlog::critical("{}", credentials.status().message());
    return 2;
  }
  const bool secured = authenticator->enabled() || !tls_cert.empty();
  for (auto [flag, address, address_host] : {std::tuple{"--listen", &listen, &*host},
                                             std::tuple{"--http-listen", &http_listen, &*http_host}}) {
    if (address->empty() || busyfleet::IsLoopbackHost(*address_host) || secured) continue;
    if (!insecure) {
      spdlog::critical(
          "refusing to listen on {} ({}) without authentication: only loopback addresses are safe without a "
          "token or TLS. Pass --insecure to do it anyway.", *address, flag);
      return 2;
    }
    spdlog::warn("INSECURE: serving {} ({}) with no authentication; anyone who can reach this port can "
                 "{}", *address, flag, std::string(flag) == "--listen"
                     ? "run jobs on your workers and read every report" : "read every report and worker");
  }
  busyfleet::coordinator::CoordinatorServer::Options options;
  options.listen = listen;
  options.authenticator = *authenticator;
  options.credentials = *credentials;
  options.db = db;
  options.worker_timeout = *busyfleet::ParseDurationFlag("worker-timeout", worker_timeout);
  options.prefetch_per_worker = prefetch;
  if (!http_listen.empty()) {
    busyfleet::coordinator::HttpServer::Options http;
    http.listen = http_listen;
    http.tls_cert = tls_cert;
    http.tls_key = tls_key;
    http.tls_client_ca = tls_client_ca;
    options.http = http;
  }
  auto server = busyfleet::coordinator::CoordinatorServer::Start(options);
  if (!server.ok()) {
    spdlog::critical("cannot start: {}", server.status().message());
    return 1;
  }
  spdlog::info("coordinator listening on {} (worker timeout {}, database {}, {}{})", (*server)->address(),
               absl::FormatDuration(options.worker_timeout), db,
               tls_cert.empty() ? "plaintext" : (tls_client_ca.empty() ? "TLS" : "mutual TLS"),
               authenticator->enabled() ? ", tokens required" : "");
  if ((*server)->http_port() > 0) {
    spdlog::info("status page and metrics on {}://{}:{}/ (/metrics, /healthz)", tls_cert.empty() ? "http" : "https",
                 http_listen.substr(0, http_listen.rfind(':')), (*server)->http_port());
  }
  const int sig = busyfleet::WaitForTerminationSignal();
  spdlog::info("signal {} received, shutting down", sig);
  (*server)->Shutdown(absl::Seconds(2));
  spdlog::info("coordinator stopped");
  return 0;
}
