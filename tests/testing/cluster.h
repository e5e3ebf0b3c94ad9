#ifndef BUSYFLEET_TESTS_TESTING_CLUSTER_H_
#define BUSYFLEET_TESTS_TESTING_CLUSTER_H_

// The one in-process cluster for integration tests: a coordinator server on
// 127.0.0.1:0 and N worker sessions speaking the real protocol over loopback.

#include <memory>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "busyfleet/v1/coordinator.pb.h"
#include "common/rpc/auth.h"
#include "common/rpc/client_security.h"
#include "coordinator/server/coordinator_server.h"
#include "worker/worker_client.h"
#include "tests/testing/specs.h"

namespace busyfleet::testing {

class InProcessCluster {
 public:
  struct Options {
    int workers = 2;
    int slots_per_worker = 1;
    absl::Duration worker_timeout = absl::Seconds(5);
    absl::Duration heartbeat_interval = absl::ZeroDuration();
    double max_heartbeat_rate = coordinator::kDefaultMaxHeartbeatRate;
    int prefetch = 2;
    v1::ExecMode exec = v1::EXEC_MODE_THREAD;
    // The tokens the coordinator requires; default: none.
    TokenAuthenticator authenticator = {};
    // The coordinator's TLS credentials; nullptr: insecure.
    std::shared_ptr<grpc::ServerCredentials> server_credentials = nullptr;
    // What the workers present: their token, and the channel credentials
    // (and TLS server name) NewChannel uses too. Default: no token, insecure.
    ClientSecurity worker_security = {};
    // The clock the workers schedule heartbeats on; nullptr: the real one.
    const Clock* worker_clock = nullptr;
  };

  // Starts the coordinator and the workers and waits (up to 10 s) until
  // every worker is attached.
  static absl::StatusOr<std::unique_ptr<InProcessCluster>> Start(Options options);
  ~InProcessCluster();

  std::string address() const { return server_->address(); }
  // A new channel to the coordinator, for tests that make their own calls:
  // worker_security's credentials and server name, no token (a call adds
  // its own).
  std::shared_ptr<grpc::Channel> NewChannel() const;
  coordinator::CoordinatorServer& server() { return *server_; }
  coordinator::Coordinator& coordinator() { return server_->coordinator(); }
  worker::WorkerClient& worker(int i) { return *workers_.at(static_cast<size_t>(i)); }
  int worker_count() const { return static_cast<int>(workers_.size()); }

  // Starts one more worker named `name` and waits until it is attached.
  // With a `python_version` it offers the python kind (the caller has
  // started the embedded Python: worker::InitPythonKernel).
  absl::StatusOr<worker::WorkerClient*> AddWorker(const std::string& name, int slots,
                                                  const std::string& python_version = "");

  // Submits through the domain API.
  absl::StatusOr<std::string> Submit(const v1::JobSpec& spec);
  // Blocks (on the coordinator's watch, no polling) until the job ends;
  // DeadlineExceeded at `deadline`.
  absl::StatusOr<v1::JobReport> WaitForJob(const std::string& job_id, absl::Time deadline);

 private:
  InProcessCluster() = default;
  Options options_;
  std::unique_ptr<coordinator::CoordinatorServer> server_;
  std::vector<std::unique_ptr<worker::WorkerClient>> workers_;
};

}  // namespace busyfleet::testing

#endif  // BUSYFLEET_TESTS_TESTING_CLUSTER_H_
