#include "tests/testing/cluster.h"

#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/status_macros.h"

namespace busyfleet::testing {

absl::StatusOr<std::unique_ptr<InProcessCluster>> InProcessCluster::Start(Options options) {
  std::unique_ptr<InProcessCluster> c(new InProcessCluster());
  c->options_ = options;
  coordinator::CoordinatorServer::Options so;
  so.listen = "127.0.0.1:0";
  so.worker_timeout = options.worker_timeout;
  so.heartbeat_interval = options.heartbeat_interval;
  so.max_heartbeat_rate = options.max_heartbeat_rate;
  so.prefetch_per_worker = options.prefetch;
  so.authenticator = options.authenticator;
  so.credentials = options.server_credentials;
  BF_ASSIGN_OR_RETURN(c->server_, coordinator::CoordinatorServer::Start(so));
  for (int i = 0; i < options.workers; ++i) {
    BF_RETURN_IF_ERROR(c->AddWorker(absl::StrCat("w", i + 1), options.slots_per_worker).status());
  }
  return c;
}

InProcessCluster::~InProcessCluster() {
  for (auto& w : workers_) w->Stop();
  server_->Shutdown(absl::Seconds(1));
}

std::shared_ptr<grpc::Channel> InProcessCluster::NewChannel() const {
  grpc::ChannelArguments args;
  options_.worker_security.Apply(args);
  auto creds = options_.worker_security.credentials ? options_.worker_security.credentials
                                                    : grpc::InsecureChannelCredentials();
  return grpc::CreateCustomChannel(address(), creds, args);
}

absl::StatusOr<worker::WorkerClient*> InProcessCluster::AddWorker(const std::string& name, int slots,
                                                                   const std::string& python_version) {
  worker::WorkerClient::Options wo;
  wo.coordinator = server_->address();
  wo.name = name;
  wo.slots = slots;
  wo.default_exec = options_.exec;
  wo.host.set_hostname("testhost");
  wo.host.set_logical_cpus(2);
  wo.host.set_physical_cores(2);
  wo.backoff_initial = absl::Milliseconds(20);
  wo.backoff_max = absl::Milliseconds(200);
  wo.security = options_.worker_security;
  wo.clock = options_.worker_clock;
  wo.python_version = python_version;
  BF_ASSIGN_OR_RETURN(std::unique_ptr<worker::WorkerClient> w, worker::WorkerClient::Start(wo));
  if (!w->WaitAttached(absl::Now() + absl::Seconds(10))) {
    return absl::DeadlineExceededError(absl::StrCat("worker ", name, " did not attach within 10s"));
  }
  workers_.push_back(std::move(w));
  return workers_.back().get();
}

absl::StatusOr<std::string> InProcessCluster::Submit(const v1::JobSpec& spec) {
  BF_ASSIGN_OR_RETURN(v1::SubmitJobResponse r, coordinator().Submit(spec));
  return r.job_id();
}

absl::StatusOr<v1::JobReport> InProcessCluster::WaitForJob(const std::string& job_id, absl::Time deadline) {
  struct Shared {
    absl::Mutex mu;
    std::optional<v1::JobReport> report ABSL_GUARDED_BY(mu);
  };
  auto shared = std::make_shared<Shared>();
  BF_ASSIGN_OR_RETURN(uint64_t handle,
                      coordinator().Watch(job_id, /*include_tasks=*/true, [shared](const v1::JobProgress& p) {
                        if (!p.has_report()) return;
                        absl::MutexLock lock(&shared->mu);
                        shared->report = p.report();
                      }));
  std::optional<v1::JobReport> report;
  {
    absl::MutexLock lock(&shared->mu);
    auto done = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(shared->mu) { return shared->report.has_value(); };
    shared->mu.AwaitWithDeadline(absl::Condition(&done), deadline);
    report = shared->report;
  }
  coordinator().Unwatch(handle);
  if (!report) return absl::DeadlineExceededError(absl::StrCat("job ", job_id, " did not end in time"));
  return *report;
}

}  // namespace busyfleet::testing
