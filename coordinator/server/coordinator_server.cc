#include "coordinator/server/coordinator_server.h"

#include <grpc/grpc.h>
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <spdlog/spdlog.h>

#include "common/logging.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/rpc/keepalive.h"
#include "common/status_macros.h"
#include "coordinator/core/enum_names.h"
#include "coordinator/store/sqlite_job_store.h"

namespace busyfleet::coordinator {

void ApplyServerKeepalive(grpc::ServerBuilder& builder) {
  // Workers ping every kKeepaliveTime; accept pings that often, also on
  // idle streams, so no side ever answers with too_many_pings.
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS,
                             static_cast<int>(absl::ToInt64Milliseconds(kKeepaliveTime / 2)));
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES, 0);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS,
                             static_cast<int>(absl::ToInt64Milliseconds(kKeepaliveTime)));
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS,
                             static_cast<int>(absl::ToInt64Milliseconds(kKeepaliveTimeout)));
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  builder.SetMaxReceiveMessageSize(kMaxMessageBytes);
  builder.SetMaxSendMessageSize(kMaxMessageBytes);
}

absl::StatusOr<std::unique_ptr<CoordinatorServer>> CoordinatorServer::Start(Options options) {
  std::unique_ptr<CoordinatorServer> s(new CoordinatorServer());
  s->options_ = options;
  if (options.store) {
    s->store_ = options.store;
  } else if (options.db == ":memory:") {
    s->store_ = std::make_shared<InMemoryJobStore>(/*copy_task_rows=*/false);
  } else {
    SqliteJobStore::Options so;
    so.busy_timeout = options.db_busy_timeout;
    BF_ASSIGN_OR_RETURN(std::shared_ptr<SqliteJobStore> store, SqliteJobStore::Open(options.db, so));
    s->store_ = std::move(store);
  }
  Coordinator::Options co;
  co.worker_timeout = options.worker_timeout;
  co.heartbeat_interval = options.heartbeat_interval;
  co.max_heartbeat_rate = options.max_heartbeat_rate;
  co.prefetch_per_worker = options.prefetch_per_worker;
  co.keep_finished_jobs = options.keep_finished_jobs;
  co.keep_finished_tasks = options.keep_finished_tasks;
  co.store = s->store_.get();
  // A wake-up is kept when the loop is busy in CheckLiveness right now.
  co.on_worker_attached = [raw = s.get()] { raw->wake_.Wake(); };
  co.request_check = co.on_worker_attached;
  // A job that ends can push an old one past --retention-jobs, never past
  // the age cutoff (it is the newest): age alone waits for the timer, so a
  // busy coordinator does not scan the jobs table at every job's end.
  co.on_job_finished = [raw = s.get(), capped = options.retention_jobs > 0](const v1::JobReport& r) {
    if (capped) raw->retention_wake_.Wake();
    LogFields fields({{"job_id", r.id()}, {"state", v1::JobState_Name(r.state())}});
    spdlog::info("job {} ended {}: {} tasks ({} succeeded, {} failed, {} cancelled, {} retries), wall {:.3f}s, "
                 "speedup {:.2f} on {} slots, efficiency {:.1f}%{}{}",
                 r.id(), JobStateName(r.state()), r.tasks_total(), r.tasks_succeeded(),
                 r.tasks_failed(), r.tasks_cancelled(), r.retries(), r.timing().wall_seconds(), r.timing().speedup(),
                 r.timing().slots(), r.timing().efficiency() * 100, r.error().empty() ? "" : ": ", r.error());
  };
  BF_ASSIGN_OR_RETURN(s->coordinator_, Coordinator::Create(co));
  s->gate_ = std::make_unique<CallGate>(options.authenticator);
  s->admission_ = std::make_unique<PeerAdmission>(options.max_sessions, options.max_watches,
                                                  &s->coordinator_->peer_tally());
  s->client_service_ =
      std::make_unique<CoordinatorServiceImpl>(s->coordinator_.get(), s->gate_.get(), s->admission_.get());
  s->worker_service_ =
      std::make_unique<WorkerServiceImpl>(s->coordinator_.get(), s->gate_.get(), s->admission_.get());

  BF_RETURN_IF_ERROR(s->StartGrpc());
  if (options.http) BF_RETURN_IF_ERROR(s->StartHttp(*options.http));
  {
    absl::MutexLock lock(&s->mu_);
    s->serving_ = true;
    s->server_->GetHealthCheckService()->SetServingStatus(true);
  }
  s->store_->SetHealthObserver([raw = s.get()](const StoreHealth& h) { raw->OnStoreHealth(h); });
  if (StoreHealth h = s->store_->Health(); !h.writable) s->OnStoreHealth(h);
  s->liveness_ = std::thread([raw = s.get()] { raw->LivenessLoop(); });
  s->retention_ = std::thread([raw = s.get()] { raw->RetentionLoop(); });
  return s;
}

absl::Status CoordinatorServer::StartGrpc() {
  // Health checks stay open. Reflection cannot check tokens, so it is only
  // served when tokens are off.
  grpc::EnableDefaultHealthCheckService(true);
  if (!options_.authenticator.enabled()) grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  auto creds = options_.credentials ? options_.credentials : grpc::InsecureServerCredentials();
  builder.AddListeningPort(options_.listen, creds, &port_);
  builder.RegisterService(client_service_.get());
  builder.RegisterService(worker_service_.get());
  ApplyServerKeepalive(builder);
  // gRPC binds with SO_REUSEPORT by default: a second coordinator started
  // on this address would then start too, and the kernel would share new
  // connections between the two (workers on one, jobs on the other).
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  server_ = builder.BuildAndStart();
  if (server_ == nullptr || port_ == 0) {
    if (server_) server_->Shutdown();
    server_.reset();
    return absl::UnavailableError(absl::StrCat(
        "cannot listen on ", options_.listen,
        options_.credentials ? " (address in use, not an address of this host, or the TLS certificate and "
                               "key do not match)"
                             : " (address in use, or not an address of this host)"));
  }
  host_ = options_.listen.substr(0, options_.listen.rfind(':'));
  return absl::OkStatus();
}

absl::Status CoordinatorServer::StartHttp(HttpServer::Options http) {
  http.coordinator = coordinator_.get();
  http.authenticator = options_.authenticator;
  absl::StatusOr<std::unique_ptr<HttpServer>> started = HttpServer::Start(std::move(http));
  if (!started.ok()) {
    server_->Shutdown();
    server_.reset();
    return started.status();
  }
  http_ = *std::move(started);
  return absl::OkStatus();
}

void CoordinatorServer::OnStoreHealth(const StoreHealth& h) {
  // The backlog may have come under its cap: CheckLiveness dispatches.
  wake_.Wake();
  absl::MutexLock lock(&mu_);
  if (shut_down_ || server_ == nullptr) return;
  const absl::Time now = absl::Now();
  if (!h.writable) {
    // Every failed attempt calls here; the log gets the first and then one
    // line per interval with the count since.
    ++store_failures_unlogged_;
    if (serving_ || now - store_logged_at_ >= kStoreLogInterval) {
      spdlog::error("{} ({} failed attempts since the last line, {} in all; {} rows wait to be written; "
                    "new jobs are refused, running jobs go on)",
                    h.cause, store_failures_unlogged_, h.write_failures, h.backlog_rows);
      store_logged_at_ = now;
      store_failures_unlogged_ = 0;
    }
    if (serving_) server_->GetHealthCheckService()->SetServingStatus(false);
    serving_ = false;
    return;
  }
  if (!serving_) {
    spdlog::info("the database can be written again ({} failed attempts in all); serving", h.write_failures);
    server_->GetHealthCheckService()->SetServingStatus(true);
    serving_ = true;
    store_failures_unlogged_ = 0;
  }
}

std::string CoordinatorServer::address() const { return absl::StrCat(host_, ":", port_); }

void CoordinatorServer::LivenessLoop() {
  for (;;) {
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return;
    }
    const MonoTime next = coordinator_->CheckLiveness();
    // Wake when the oldest heartbeat would expire, on the monotonic clock
    // (both the coordinator's and the waiter's are the real one), so a step
    // of the wall clock neither wakes it early nor stretches the sleep; with
    // no worker attached, sleep until one attaches or shutdown (an idle
    // coordinator uses no CPU).
    wake_.WaitUntil(next);
  }
}

void CoordinatorServer::RetentionLoop() {
  for (;;) {
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return;
    }
    if (options_.retention > absl::ZeroDuration() || options_.retention_jobs > 0) ApplyRetention();
    // Also without a retention rule: an idle coordinator gives the task
    // tables it kept for new jobs back (job_model.h, ReleaseTaskTable).
    TrimTaskTables();
    retention_wake_.WaitUntil(MonoNow() + options_.retention_interval);
  }
}

void CoordinatorServer::ApplyRetention() {
  RetentionRule rule;
  rule.keep_jobs = options_.retention_jobs;
  if (options_.retention > absl::ZeroDuration()) rule.finished_before = absl::Now() - options_.retention;
  // A pass at a time, so that a backlog of expired jobs (a first start with
  // retention on an old file) does not hold the coordinator's lock long.
  absl::StatusOr<std::vector<JobRecord>> removed = coordinator_->Prune(rule, limits::kMaxPruneJobs, false);
  if (!removed.ok()) {
    spdlog::warn("retention: {}", removed.status().message());
    return;
  }
  if (removed->empty()) return;
  uint64_t tasks = 0;
  for (const JobRecord& job : *removed) tasks += job.total_tasks();
  spdlog::info("retention: removed {} finished jobs ({} task rows), the oldest {}{}", removed->size(), tasks,
               removed->front().id, removed->size() == limits::kMaxPruneJobs ? "; more follow" : "");
  if (removed->size() == limits::kMaxPruneJobs) retention_wake_.Wake();
}

void CoordinatorServer::Shutdown(absl::Duration grace) {
  {
    absl::MutexLock lock(&mu_);
    if (shut_down_) return;
    shut_down_ = true;
    stopping_ = true;
  }
  wake_.Wake();
  retention_wake_.Wake();
  if (liveness_.joinable()) liveness_.join();
  if (retention_.joinable()) retention_.join();
  if (store_) store_->SetHealthObserver(nullptr);  // no calls into a server being stopped
  if (http_) http_->Shutdown();
  if (coordinator_) coordinator_->Shutdown();
  if (server_ == nullptr) return;  // Start failed before the server was up
  server_->GetHealthCheckService()->SetServingStatus(false);
  server_->Shutdown(std::chrono::system_clock::now() + absl::ToChronoNanoseconds(grace));
}

CoordinatorServer::~CoordinatorServer() { Shutdown(absl::ZeroDuration()); }

}  // namespace busyfleet::coordinator
