#include "coordinator/ctl/coordctl_client.h"

#include <algorithm>
#include <chrono>

#include "absl/time/clock.h"
#include "common/rpc/grpc_status.h"
#include "common/rpc/keepalive.h"
#include "coordinator/core/limits.h"
#include "grpc/health/v1/health.grpc.pb.h"

namespace busyfleet::coordctl {

CoordinatorClient::CoordinatorClient(Options options) : options_(std::move(options)) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(kMaxMessageBytes);
  args.SetMaxSendMessageSize(kMaxMessageBytes);
  options_.security.Apply(args);
  auto creds = options_.security.credentials ? options_.security.credentials : grpc::InsecureChannelCredentials();
  channel_ = grpc::CreateCustomChannel(options_.address, creds, args);
  stub_ = v1::CoordinatorService::NewStub(channel_);
}

void CoordinatorClient::Prepare(grpc::ClientContext* ctx) const {
  ctx->set_deadline(std::chrono::system_clock::now() + absl::ToChronoNanoseconds(options_.timeout));
  options_.security.Apply(*ctx);
}

absl::StatusOr<v1::SubmitJobResponse> CoordinatorClient::Submit(const v1::JobSpec& spec) {
  grpc::ClientContext ctx;
  Prepare(&ctx);
  v1::SubmitJobRequest req;
  *req.mutable_spec() = spec;
  v1::SubmitJobResponse resp;
  grpc::Status st = stub_->SubmitJob(&ctx, req, &resp);
  if (!st.ok()) return FromGrpcStatus(st);
  return resp;
}

absl::StatusOr<bool> CoordinatorClient::Healthy() {
  grpc::ClientContext ctx;
  Prepare(&ctx);
  grpc::health::v1::HealthCheckRequest req;
  grpc::health::v1::HealthCheckResponse resp;
  grpc::Status st = grpc::health::v1::Health::NewStub(channel_)->Check(&ctx, req, &resp);
  if (!st.ok()) return FromGrpcStatus(st);
  return resp.status() == grpc::health::v1::HealthCheckResponse::SERVING;
}

absl::StatusOr<v1::JobReport> CoordinatorClient::GetJobWithAllTasks(absl::string_view id) {
  constexpr uint32_t kPageRows = limits::kMaxTaskRowsPerReply;  // the server's largest page
  absl::StatusOr<v1::JobReport> report = GetJob(id, true, false, 0, kPageRows);
  if (!report.ok()) return report;
  while (static_cast<uint32_t>(report->tasks_size()) < report->tasks_total()) {
    absl::StatusOr<v1::JobReport> page =
        GetJob(id, true, false, static_cast<uint32_t>(report->tasks_size()), kPageRows);
    if (!page.ok()) return page.status();
    if (page->tasks_size() == 0) break;  // the job shrank? (cannot happen; never loop forever)
    for (v1::TaskTiming& t : *page->mutable_tasks()) *report->add_tasks() = std::move(t);
  }
  return report;
}

absl::StatusOr<v1::JobReport> CoordinatorClient::GetJob(absl::string_view id, bool include_tasks,
                                                        bool include_attempts, uint32_t task_offset,
                                                        uint32_t task_limit) {
  grpc::ClientContext ctx;
  Prepare(&ctx);
  v1::GetJobRequest req;
  req.set_job_id(std::string(id));
  req.set_omit_tasks(!include_tasks);
  req.set_include_attempts(include_attempts);
  req.set_task_offset(task_offset);
  req.set_task_limit(task_limit);
  v1::JobReport resp;
  grpc::Status st = stub_->GetJob(&ctx, req, &resp);
  if (!st.ok()) return FromGrpcStatus(st);
  return resp;
}

absl::StatusOr<std::vector<v1::JobSummary>> CoordinatorClient::ListJobs(uint32_t limit) {
  grpc::ClientContext ctx;
  Prepare(&ctx);
  v1::ListJobsRequest req;
  req.set_limit(limit);
  v1::ListJobsResponse resp;
  grpc::Status st = stub_->ListJobs(&ctx, req, &resp);
  if (!st.ok()) return FromGrpcStatus(st);
  return std::vector<v1::JobSummary>(resp.jobs().begin(), resp.jobs().end());
}

absl::StatusOr<v1::JobState> CoordinatorClient::Cancel(absl::string_view id) {
  grpc::ClientContext ctx;
  Prepare(&ctx);
  v1::CancelJobRequest req;
  req.set_job_id(std::string(id));
  v1::CancelJobResponse resp;
  grpc::Status st = stub_->CancelJob(&ctx, req, &resp);
  if (!st.ok()) return FromGrpcStatus(st);
  return resp.state();
}

absl::StatusOr<std::vector<v1::WorkerInfo>> CoordinatorClient::ListWorkers(bool include_gone) {
  grpc::ClientContext ctx;
  Prepare(&ctx);
  v1::ListWorkersRequest req;
  req.set_include_gone(include_gone);
  v1::ListWorkersResponse resp;
  grpc::Status st = stub_->ListWorkers(&ctx, req, &resp);
  if (!st.ok()) return FromGrpcStatus(st);
  return std::vector<v1::WorkerInfo>(resp.workers().begin(), resp.workers().end());
}

absl::StatusOr<v1::HealthReport> CoordinatorClient::GetHealth() {
  grpc::ClientContext ctx;
  Prepare(&ctx);
  v1::GetHealthRequest req;
  v1::HealthReport resp;
  grpc::Status st = stub_->GetHealth(&ctx, req, &resp);
  if (!st.ok()) return FromGrpcStatus(st);
  return resp;
}

absl::StatusOr<v1::WorkerState> CoordinatorClient::Drain(absl::string_view name) {
  grpc::ClientContext ctx;
  Prepare(&ctx);
  v1::DrainWorkerRequest req;
  req.set_name(std::string(name));
  v1::DrainWorkerResponse resp;
  grpc::Status st = stub_->DrainWorker(&ctx, req, &resp);
  if (!st.ok()) return FromGrpcStatus(st);
  return resp.state();
}

absl::Status CoordinatorClient::Delete(absl::string_view job_id) {
  grpc::ClientContext ctx;
  Prepare(&ctx);
  v1::DeleteJobRequest req;
  req.set_job_id(std::string(job_id));
  v1::DeleteJobResponse resp;
  return FromGrpcStatus(stub_->DeleteJob(&ctx, req, &resp));
}

absl::StatusOr<v1::PruneJobsResponse> CoordinatorClient::Prune(const v1::PruneJobsRequest& request) {
  grpc::ClientContext ctx;
  Prepare(&ctx);
  v1::PruneJobsResponse resp;
  grpc::Status st = stub_->PruneJobs(&ctx, request, &resp);
  if (!st.ok()) return FromGrpcStatus(st);
  return resp;
}

absl::StatusOr<uint32_t> CoordinatorClient::WaitForReadyWorkers(uint32_t count, absl::Time deadline) {
  // A poll: the coordinator has no call that waits for workers (ListWorkers
  // answers at once and there is no stream of worker changes), so look
  // every kPollInterval. Between looks wait on the channel rather than
  // sleep: a change of its connection state (the coordinator coming up or
  // going away) ends the pause early, and no pause runs past `deadline`.
  constexpr absl::Duration kPollInterval = absl::Milliseconds(200);
  for (;;) {
    absl::StatusOr<std::vector<v1::WorkerInfo>> list = ListWorkers(/*include_gone=*/false);
    if (!list.ok() && ExitCodeFor(list.status()) != kExitUnavailable) return list.status();
    const auto ready = static_cast<uint32_t>(
        list.ok() ? std::count_if(list->begin(), list->end(),
                                  [](const v1::WorkerInfo& w) { return w.state() == v1::WORKER_STATE_READY; })
                  : 0);
    if (ready >= count || absl::Now() >= deadline) return ready;
    const grpc_connectivity_state state = channel_->GetState(/*try_to_connect=*/true);
    channel_->WaitForStateChange(state, absl::ToChronoTime(std::min(absl::Now() + kPollInterval, deadline)));
  }
}

namespace {

// Reads a progress stream to its end; the last update must carry the report.
template <typename Reader>
absl::StatusOr<v1::JobProgress> ReadProgress(Reader& reader,
                                             const std::function<void(const v1::JobProgress&)>& on_progress) {
  v1::JobProgress progress;
  v1::JobProgress last;
  bool ended = false;
  while (reader->Read(&progress)) {
    on_progress(progress);
    last = progress;
    if (progress.has_report()) ended = true;
  }
  grpc::Status st = reader->Finish();
  if (!st.ok()) return FromGrpcStatus(st);
  if (!ended) return absl::UnavailableError("the coordinator ended the stream before the job ended");
  return last;
}

}  // namespace

absl::StatusOr<v1::JobProgress> CoordinatorClient::Watch(
    absl::string_view id, bool include_tasks, absl::Time deadline,
    const std::function<void(const v1::JobProgress&)>& on_progress) {
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(deadline));
  options_.security.Apply(ctx);
  v1::WatchJobRequest req;
  req.set_job_id(std::string(id));
  req.set_omit_tasks(!include_tasks);
  auto reader = stub_->WatchJob(&ctx, req);
  return ReadProgress(reader, on_progress);
}

absl::StatusOr<v1::JobProgress> CoordinatorClient::Run(
    const v1::JobSpec& spec, bool include_tasks, absl::Time deadline,
    const std::function<void(const v1::JobProgress&)>& on_progress) {
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(deadline));
  options_.security.Apply(ctx);
  v1::RunJobRequest req;
  *req.mutable_spec() = spec;
  req.set_omit_tasks(!include_tasks);
  auto reader = stub_->RunJob(&ctx, req);
  return ReadProgress(reader, on_progress);
}

std::unique_ptr<CoordinatorClient::RunSession> CoordinatorClient::OpenRunSession(absl::Time deadline) {
  std::unique_ptr<RunSession> session(new RunSession());
  session->ctx_.set_deadline(absl::ToChronoTime(deadline));
  options_.security.Apply(session->ctx_);
  session->stream_ = stub_->RunJobs(&session->ctx_);
  return session;
}

CoordinatorClient::RunSession::~RunSession() {
  if (ended_) return;
  ctx_.TryCancel();
  (void)End();
}

absl::Status CoordinatorClient::RunSession::End() {
  ended_ = true;
  return FromGrpcStatus(stream_->Finish());
}

absl::StatusOr<v1::JobProgress> CoordinatorClient::RunSession::Run(
    const v1::JobSpec& spec, bool include_tasks, const std::function<void(const v1::JobProgress&)>& on_progress) {
  if (ended_) return absl::FailedPreconditionError("the run session has ended");
  v1::RunJobRequest req;
  *req.mutable_spec() = spec;
  req.set_omit_tasks(!include_tasks);
  v1::JobProgress progress;
  if (stream_->Write(req)) {
    while (stream_->Read(&progress)) {
      on_progress(progress);
      if (progress.has_report()) return progress;
    }
  }
  // The stream broke: the status says why (a refused job ends the session).
  absl::Status st = End();
  if (st.ok()) return absl::UnavailableError("the coordinator ended the run session before the job ended");
  return st;
}

absl::Status CoordinatorClient::RunSession::Close() {
  if (ended_) return absl::OkStatus();
  stream_->WritesDone();
  return End();
}

}  // namespace busyfleet::coordctl
