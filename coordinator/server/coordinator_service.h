#ifndef BUSYFLEET_COORDINATOR_SERVER_COORDINATOR_SERVICE_H_
#define BUSYFLEET_COORDINATOR_SERVER_COORDINATOR_SERVICE_H_

// gRPC adapters over the Coordinator: validate, convert, call the domain,
// map the status back. Callback API throughout; one outstanding write per
// stream, the rest queued.

#include <grpcpp/grpcpp.h>

#include "busyfleet/v1/coordinator.grpc.pb.h"
#include "busyfleet/v1/worker.grpc.pb.h"
#include "common/rpc/auth.h"
#include "coordinator/core/coordinator.h"

namespace busyfleet::coordinator {

// Checks every call's token before anything else (the one place), and logs
// refusals with the peer address, rate-limited, never the token.
class CallGate {
 public:
  explicit CallGate(TokenAuthenticator authenticator)
      : authenticator_(std::move(authenticator)), log_limit_(10, absl::Seconds(1)) {}
  // `method` names the call in the log line.
  absl::Status Check(grpc::CallbackServerContext* ctx, Role role, absl::string_view method);

 private:
  const TokenAuthenticator authenticator_;
  LogRateLimiter log_limit_;
};

// The client-facing service (coordctl). Does not own the coordinator or the gate.
class CoordinatorServiceImpl final : public v1::CoordinatorService::CallbackService {
 public:
  CoordinatorServiceImpl(Coordinator* coordinator, CallGate* gate) : coordinator_(coordinator), gate_(gate) {}

  grpc::ServerUnaryReactor* SubmitJob(grpc::CallbackServerContext* ctx, const v1::SubmitJobRequest* req,
                                      v1::SubmitJobResponse* resp) override;
  grpc::ServerUnaryReactor* GetJob(grpc::CallbackServerContext* ctx, const v1::GetJobRequest* req,
                                   v1::JobReport* resp) override;
  grpc::ServerWriteReactor<v1::JobProgress>* WatchJob(grpc::CallbackServerContext* ctx,
                                                      const v1::WatchJobRequest* req) override;
  grpc::ServerWriteReactor<v1::JobProgress>* RunJob(grpc::CallbackServerContext* ctx,
                                                    const v1::RunJobRequest* req) override;
  grpc::ServerUnaryReactor* ListJobs(grpc::CallbackServerContext* ctx, const v1::ListJobsRequest* req,
                                     v1::ListJobsResponse* resp) override;
  grpc::ServerUnaryReactor* CancelJob(grpc::CallbackServerContext* ctx, const v1::CancelJobRequest* req,
                                      v1::CancelJobResponse* resp) override;
  grpc::ServerUnaryReactor* ListWorkers(grpc::CallbackServerContext* ctx,
                                        const v1::ListWorkersRequest* req,
                                        v1::ListWorkersResponse* resp) override;
  grpc::ServerUnaryReactor* DrainWorker(grpc::CallbackServerContext* ctx,
                                        const v1::DrainWorkerRequest* req,
                                        v1::DrainWorkerResponse* resp) override;
  grpc::ServerUnaryReactor* GetHealth(grpc::CallbackServerContext* ctx, const v1::GetHealthRequest* req,
                                      v1::HealthReport* resp) override;
  grpc::ServerUnaryReactor* DeleteJob(grpc::CallbackServerContext* ctx, const v1::DeleteJobRequest* req,
                                      v1::DeleteJobResponse* resp) override;
  grpc::ServerUnaryReactor* PruneJobs(grpc::CallbackServerContext* ctx, const v1::PruneJobsRequest* req,
                                      v1::PruneJobsResponse* resp) override;

 private:
  Coordinator* const coordinator_;
  CallGate* const gate_;
};

// The worker-facing service: one Attach stream per worker.
class WorkerServiceImpl final : public v1::WorkerService::CallbackService {
 public:
  WorkerServiceImpl(Coordinator* coordinator, CallGate* gate) : coordinator_(coordinator), gate_(gate) {}

  grpc::ServerBidiReactor<v1::WorkerMessage, v1::CoordinatorMessage>* Attach(
      grpc::CallbackServerContext* ctx) override;

 private:
  Coordinator* const coordinator_;
  CallGate* const gate_;
};

}  // namespace busyfleet::coordinator

#endif  // BUSYFLEET_COORDINATOR_SERVER_COORDINATOR_SERVICE_H_
