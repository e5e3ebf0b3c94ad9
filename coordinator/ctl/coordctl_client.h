#ifndef BUSYFLEET_COORDINATOR_CTL_COORDCTL_CLIENT_H_
#define BUSYFLEET_COORDINATOR_CTL_COORDCTL_CLIENT_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "busyfleet/v1/coordinator.grpc.pb.h"
#include "common/rpc/client_security.h"
#include "coordinator/ctl/exit_codes.h"

namespace busyfleet::coordctl {

// coordctl's view of the coordinator: one call per method, each with a
// deadline, errors as absl::Status (the gRPC code kept).
class CoordinatorClient {
 public:
  struct Options {
    std::string address = "127.0.0.1:7070";
    // Deadline of each unary call.
    absl::Duration timeout = absl::Seconds(10);
    ClientSecurity security;
  };
  explicit CoordinatorClient(Options options);

  absl::StatusOr<v1::SubmitJobResponse> Submit(const v1::JobSpec& spec);
  // With `include_tasks`, task rows from `task_offset`, at most `task_limit`
  // (0: the server's page size, 50,000).
  absl::StatusOr<v1::JobReport> GetJob(absl::string_view id, bool include_tasks, bool include_attempts = false,
                                       uint32_t task_offset = 0, uint32_t task_limit = 0);
  // The report with every task row, read page by page.
  absl::StatusOr<v1::JobReport> GetJobWithAllTasks(absl::string_view id);
  // grpc.health.v1.Health/Check of the whole server: true when SERVING.
  absl::StatusOr<bool> Healthy();
  // The reasons behind Healthy (the store's state); Unimplemented from a
  // coordinator older than the call.
  absl::StatusOr<v1::HealthReport> GetHealth();
  absl::StatusOr<std::vector<v1::JobSummary>> ListJobs(uint32_t limit);
  absl::StatusOr<v1::JobState> Cancel(absl::string_view id);
  absl::StatusOr<std::vector<v1::WorkerInfo>> ListWorkers(bool include_gone);
  absl::StatusOr<v1::WorkerState> Drain(absl::string_view name);
  absl::Status Delete(absl::string_view job_id);
  absl::StatusOr<v1::PruneJobsResponse> Prune(const v1::PruneJobsRequest& request);
  // Looks at the workers until at least `count` are READY or `deadline`
  // passes (looking at least once), and returns how many were READY at the
  // last look. While the coordinator cannot be reached or refuses our
  // credentials (kExitUnavailable) it counts none and keeps trying; other
  // errors end the wait.
  absl::StatusOr<uint32_t> WaitForReadyWorkers(uint32_t count, absl::Time deadline);
  // Streams progress to `on_progress` until the job ends (the last update
  // carries the report) or `deadline`. Returns the final update.
  absl::StatusOr<v1::JobProgress> Watch(absl::string_view id, bool include_tasks, absl::Time deadline,
                                        const std::function<void(const v1::JobProgress&)>& on_progress);
  // Submits and follows in one call (RunJob): like Submit then Watch, a
  // round trip sooner. The first update names the job.
  absl::StatusOr<v1::JobProgress> Run(const v1::JobSpec& spec, bool include_tasks, absl::Time deadline,
                                      const std::function<void(const v1::JobProgress&)>& on_progress);

  // A RunJobs call: jobs run one after another on one stream, without a
  // call (HTTP/2 stream, deadline timer, headers) per job. Not thread-safe.
  class RunSession {
   public:
    ~RunSession();
    // Runs one job as Run does, on the session's stream; returns its final
    // update. After an error the session is over (open another).
    absl::StatusOr<v1::JobProgress> Run(const v1::JobSpec& spec, bool include_tasks,
                                        const std::function<void(const v1::JobProgress&)>& on_progress);
    // Closes the writes; how the call ended.
    absl::Status Close();

   private:
    friend class CoordinatorClient;
    RunSession() = default;
    // Ends the call: its status.
    absl::Status End();

    grpc::ClientContext ctx_;
    std::unique_ptr<grpc::ClientReaderWriter<v1::RunJobRequest, v1::JobProgress>> stream_;
    bool ended_ = false;
  };
  // Opens a session whose call ends at `deadline` at the latest.
  std::unique_ptr<RunSession> OpenRunSession(absl::Time deadline);

 private:
  void Prepare(grpc::ClientContext* ctx) const;

  const Options options_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::CoordinatorService::Stub> stub_;
};

}  // namespace busyfleet::coordctl

#endif  // BUSYFLEET_COORDINATOR_CTL_COORDCTL_CLIENT_H_
