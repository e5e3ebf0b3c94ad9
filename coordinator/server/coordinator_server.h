#ifndef BUSYFLEET_COORDINATOR_SERVER_COORDINATOR_SERVER_H_
#define BUSYFLEET_COORDINATOR_SERVER_COORDINATOR_SERVER_H_

#include <memory>
#include <optional>
#include <string>
#include <thread>

#include <grpcpp/grpcpp.h>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "coordinator/core/coordinator.h"
#include "coordinator/server/coordinator_service.h"
#include "coordinator/server/http_server.h"
#include "coordinator/store/job_store.h"

namespace busyfleet::coordinator {

// The coordinator daemon: gRPC server (busyfleet services, health,
// reflection) around a Coordinator, plus the thread that declares silent
// workers dead.
class CoordinatorServer {
 public:
  struct Options {
    // host:port; port 0 picks a free one (read it back with port()).
    std::string listen = "127.0.0.1:7070";
    absl::Duration worker_timeout = absl::Seconds(5);
    absl::Duration heartbeat_interval = absl::ZeroDuration();
    // Heartbeats a second over the fleet (Coordinator::Options).
    double max_heartbeat_rate = kDefaultMaxHeartbeatRate;
    int prefetch_per_worker = 2;
    // Where jobs are kept: an SQLite file, or ":memory:" (lost on exit).
    // Ignored when `store` is set.
    std::string db = ":memory:";
    // SqliteJobStore::Options::busy_timeout for `db`.
    absl::Duration db_busy_timeout = absl::Seconds(5);
    // Coordinator::Options: finished jobs kept in memory.
    size_t keep_finished_jobs = 256;
    uint64_t keep_finished_tasks = 500'000;
    // Retention (README, "Operating busyfleet"): finished jobs are removed
    // from the store this long after they finished (zero: never) and past
    // the newest retention_jobs (0: no cap); checked at start, every
    // retention_interval, and (with a retention_jobs cap) when a job ends.
    absl::Duration retention = absl::Hours(24 * 30);
    size_t retention_jobs = 0;
    absl::Duration retention_interval = absl::Minutes(1);
    std::shared_ptr<JobStore> store;
    std::shared_ptr<grpc::ServerCredentials> credentials;  // nullptr: insecure
    // Bearer tokens per role; default: none required.
    TokenAuthenticator authenticator;
    // Worker sessions and progress streams (watch, run) served at once;
    // more are refused with RESOURCE_EXHAUSTED naming the limit.
    uint32_t max_sessions = limits::kDefaultMaxSessions;
    uint32_t max_watches = limits::kDefaultMaxWatches;
    // The HTTP listener (/metrics, status page); unset: none. Its
    // coordinator and authenticator are filled in by Start.
    std::optional<HttpServer::Options> http;
  };

  // Unavailable when the address cannot be bound; InvalidArgument for bad options.
  static absl::StatusOr<std::unique_ptr<CoordinatorServer>> Start(Options options);
  ~CoordinatorServer();

  int port() const { return port_; }
  // The HTTP listener's port; 0 without one.
  int http_port() const { return http_ ? http_->port() : 0; }
  std::string address() const;
  Coordinator& coordinator() { return *coordinator_; }

  // Stops taking jobs, closes worker streams, and stops the server; calls
  // still running after `grace` are cancelled. Idempotent; returns even
  // while workers are attached.
  void Shutdown(absl::Duration grace = absl::Seconds(2));

 private:
  CoordinatorServer() = default;
  // Serves the gRPC services on options_.listen; Unavailable when it cannot
  // be bound.
  absl::Status StartGrpc();
  // Serves `http` for coordinator_; on failure stops the gRPC server too.
  absl::Status StartHttp(HttpServer::Options http);
  void LivenessLoop();
  // Applies the retention rule now and then, and frees the task tables kept
  // for new jobs once idle (RetentionLoop's thread; it runs without a rule too).
  void RetentionLoop();
  void ApplyRetention();
  // The store's health changed or a write failed: gRPC health, the log.
  void OnStoreHealth(const StoreHealth& health);

  Options options_;
  std::shared_ptr<JobStore> store_;
  std::unique_ptr<Coordinator> coordinator_;
  std::unique_ptr<CallGate> gate_;
  std::unique_ptr<PeerAdmission> admission_;
  std::unique_ptr<CoordinatorServiceImpl> client_service_;
  std::unique_ptr<WorkerServiceImpl> worker_service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<HttpServer> http_;
  int port_ = 0;
  std::string host_;

  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool shut_down_ ABSL_GUARDED_BY(mu_) = false;
  // The liveness loop sleeps here on the monotonic clock; woken when the
  // coordinator wants a CheckLiveness sooner than the loop planned (a worker
  // attached, an update held back) and at shutdown.
  MonoWaiter wake_;
  // What gRPC health says now (SERVING unless the store cannot write), and
  // when a store failure was last logged (at most one line per
  // kStoreLogInterval while it lasts).
  bool serving_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time store_logged_at_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  uint64_t store_failures_unlogged_ ABSL_GUARDED_BY(mu_) = 0;
  static constexpr absl::Duration kStoreLogInterval = absl::Seconds(10);
  std::thread liveness_;
  // Woken when a job ends (the job count may be past --retention-jobs) and
  // at shutdown.
  MonoWaiter retention_wake_;
  std::thread retention_;
};

// gRPC channel arguments both ends agree on (keepalive on the Attach stream).
void ApplyServerKeepalive(grpc::ServerBuilder& builder);

}  // namespace busyfleet::coordinator

#endif  // BUSYFLEET_COORDINATOR_SERVER_COORDINATOR_SERVER_H_
