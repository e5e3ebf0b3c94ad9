#ifndef BUSYFLEET_COORDINATOR_SERVER_COORDINATOR_SERVICE_H_
#define BUSYFLEET_COORDINATOR_SERVER_COORDINATOR_SERVICE_H_

// gRPC adapters over the Coordinator: validate, convert, call the domain,
// map the status back. Callback API throughout; one outstanding write per
// stream, the rest queued.

#include <atomic>
#include <cstdint>

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

// Caps on the streams peers hold open at once (--max-sessions,
// --max-watches); shared by both services. Thread-safe (lock-free).
class PeerAdmission {
 public:
  PeerAdmission(uint32_t max_sessions, uint32_t max_watches, PeerTally* tally)
      : max_sessions_(max_sessions), max_watches_(max_watches), tally_(tally) {}
  // ResourceExhausted (naming the limit and its flag) past the cap, counted
  // in the tally; otherwise the caller holds a place until it calls Release.
  absl::Status AdmitSession() { return Admit(sessions_, max_sessions_, "worker sessions", "--max-sessions"); }
  void ReleaseSession() { sessions_.fetch_sub(1); }
  absl::Status AdmitWatch() { return Admit(watches_, max_watches_, "progress streams (watch, run)", "--max-watches"); }
  void ReleaseWatch() { watches_.fetch_sub(1); }
  PeerTally* tally() const { return tally_; }

 private:
  absl::Status Admit(std::atomic<uint32_t>& count, uint32_t max, absl::string_view what, absl::string_view flag);

  const uint32_t max_sessions_;
  const uint32_t max_watches_;
  PeerTally* const tally_;
  std::atomic<uint32_t> sessions_{0};
  std::atomic<uint32_t> watches_{0};
  LogRateLimiter log_limit_{10, absl::Seconds(1)};
};

// The client-facing service (coordctl). Does not own the coordinator, the
// gate or the admission. Every error it answers is counted in the
// admission's tally (client_refusals).
class CoordinatorServiceImpl final : public v1::CoordinatorService::CallbackService {
 public:
  CoordinatorServiceImpl(Coordinator* coordinator, CallGate* gate, PeerAdmission* admission)
      : coordinator_(coordinator), gate_(gate), admission_(admission) {}

  grpc::ServerUnaryReactor* SubmitJob(grpc::CallbackServerContext* ctx, const v1::SubmitJobRequest* req,
                                      v1::SubmitJobResponse* resp) override;
  grpc::ServerUnaryReactor* GetJob(grpc::CallbackServerContext* ctx, const v1::GetJobRequest* req,
                                   v1::JobReport* resp) override;
  grpc::ServerWriteReactor<v1::JobProgress>* WatchJob(grpc::CallbackServerContext* ctx,
                                                      const v1::WatchJobRequest* req) override;
  grpc::ServerWriteReactor<v1::JobProgress>* RunJob(grpc::CallbackServerContext* ctx,
                                                    const v1::RunJobRequest* req) override;
  // RunJob for job after job on one stream (a client session).
  grpc::ServerBidiReactor<v1::RunJobRequest, v1::JobProgress>* RunJobs(grpc::CallbackServerContext* ctx) override;
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
  // Ends a unary call with `status`, counting it when it is an error.
  grpc::ServerUnaryReactor* Finish(grpc::CallbackServerContext* ctx, const absl::Status& status);
  // A streaming call refused with `status` (counted).
  grpc::ServerWriteReactor<v1::JobProgress>* Refuse(const absl::Status& status);

  Coordinator* const coordinator_;
  CallGate* const gate_;
  PeerAdmission* const admission_;
};

// The worker-facing service: one Attach stream per worker, at most
// --max-sessions at once.
class WorkerServiceImpl final : public v1::WorkerService::CallbackService {
 public:
  WorkerServiceImpl(Coordinator* coordinator, CallGate* gate, PeerAdmission* admission)
      : coordinator_(coordinator), gate_(gate), admission_(admission) {}

  grpc::ServerBidiReactor<v1::WorkerMessage, v1::CoordinatorMessage>* Attach(
      grpc::CallbackServerContext* ctx) override;

 private:
  Coordinator* const coordinator_;
  CallGate* const gate_;
  PeerAdmission* const admission_;
};

}  // namespace busyfleet::coordinator

#endif  // BUSYFLEET_COORDINATOR_SERVER_COORDINATOR_SERVICE_H_
