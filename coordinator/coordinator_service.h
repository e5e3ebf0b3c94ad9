#ifndef BUSYFLEET_COORDINATOR_COORDINATOR_SERVICE_H_
#define BUSYFLEET_COORDINATOR_COORDINATOR_SERVICE_H_

// gRPC adapters over the Coordinator: validate, convert, call the domain,
// map the status back. Callback API throughout; one outstanding write per
// stream, the rest queued.

#include <grpcpp/grpcpp.h>

#include "busyfleet/v1/coordinator.grpc.pb.h"
#include "busyfleet/v1/worker.grpc.pb.h"
#include "coordinator/coordinator.h"

namespace busyfleet::coordinator {

// The client-facing service (coordctl). Does not own the coordinator.
class CoordinatorServiceImpl final : public v1::CoordinatorService::CallbackService {
 public:
  explicit CoordinatorServiceImpl(Coordinator* coordinator) : coordinator_(coordinator) {}

  grpc::ServerUnaryReactor* SubmitJob(grpc::CallbackServerContext* ctx, const v1::SubmitJobRequest* req,
                                      v1::SubmitJobResponse* resp) override;
  grpc::ServerUnaryReactor* GetJob(grpc::CallbackServerContext* ctx, const v1::GetJobRequest* req,
                                   v1::JobReport* resp) override;
  grpc::ServerWriteReactor<v1::JobProgress>* WatchJob(grpc::CallbackServerContext* ctx,
                                                      const v1::WatchJobRequest* req) override;
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

 private:
  Coordinator* const coordinator_;
};

// The worker-facing service: one Attach stream per worker.
class WorkerServiceImpl final : public v1::WorkerService::CallbackService {
 public:
  explicit WorkerServiceImpl(Coordinator* coordinator) : coordinator_(coordinator) {}

  grpc::ServerBidiReactor<v1::WorkerMessage, v1::CoordinatorMessage>* Attach(
      grpc::CallbackServerContext* ctx) override;

 private:
  Coordinator* const coordinator_;
};

}  // namespace busyfleet::coordinator

#endif  // BUSYFLEET_COORDINATOR_COORDINATOR_SERVICE_H_
