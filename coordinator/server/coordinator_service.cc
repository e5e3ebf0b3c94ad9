#include "coordinator/server/coordinator_service.h"

#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include <spdlog/spdlog.h>

#include "common/logging.h"

#include "absl/base/thread_annotations.h"
#include "absl/strings/escaping.h"
#include "absl/synchronization/mutex.h"
#include "common/rpc/grpc_status.h"
#include "busyfleet/proto_time.h"
#include "coordinator/core/limits.h"
#include "coordinator/core/timing_aggregator.h"
#include "coordinator/server/watch_stream.h"

namespace busyfleet::coordinator {
namespace {

grpc::ServerUnaryReactor* FinishUnary(grpc::CallbackServerContext* ctx, const absl::Status& status) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

// SubmitJob and RunJob log a new job the same way.
void LogSubmitted(grpc::CallbackServerContext* ctx, const v1::SubmitJobResponse& submitted) {
  LogFields fields({{"job_id", submitted.job_id()}});
  spdlog::info("job {} submitted from {}: {} tasks", submitted.job_id(), ctx->peer(), submitted.tasks());
}

// ---------------------------------------------------------------------------
// Attach: the worker's bidirectional stream.

class AttachReactor;

// What the Coordinator holds for a stream. Outlives the reactor: after the
// stream is done, Send and Close do nothing.
class StreamChannel final : public WorkerChannel {
 public:
  explicit StreamChannel(AttachReactor* reactor) : reactor_(reactor) {}
  void Send(v1::CoordinatorMessage message) override;
  void Close(const absl::Status& status) override;
  void Detach() {
    absl::MutexLock lock(&mu_);
    reactor_ = nullptr;
  }

 private:
  absl::Mutex mu_;
  AttachReactor* reactor_ ABSL_GUARDED_BY(mu_);
};

// One worker's session: the first message must be a hello (the Coordinator
// attaches the worker), every later one goes to the Coordinator as is.
// Writes one message at a time; the rest wait in out_. Deletes itself in
// OnDone.
class AttachReactor final : public grpc::ServerBidiReactor<v1::WorkerMessage, v1::CoordinatorMessage> {
 public:
  AttachReactor(grpc::CallbackServerContext* ctx, Coordinator* coordinator)
      : ctx_(ctx), coordinator_(coordinator), channel_(std::make_shared<StreamChannel>(this)) {
    StartRead(&in_);
  }

  // Queues a message; writes at once if no write is outstanding.
  void Enqueue(v1::CoordinatorMessage message);
  // Ends the stream with `status` once the outstanding write is done; a
  // write stuck on a peer that stopped reading is cancelled.
  void CloseWith(const grpc::Status& status);

  void OnReadDone(bool ok) override;
  void OnWriteDone(bool ok) override;
  void OnCancel() override { DetachFromCoordinator(absl::CancelledError("stream cancelled")); }
  void OnDone() override;

 private:
  // The first message: attaches the worker. False if the stream is closing.
  bool OnHello();
  // A later message, handled by the Coordinator. False if the stream is closing.
  bool OnSessionMessage();
  // Tells the Coordinator the session is over (once, and only if it began).
  void DetachFromCoordinator(const absl::Status& why);

  grpc::CallbackServerContext* const ctx_;
  Coordinator* const coordinator_;
  const std::shared_ptr<StreamChannel> channel_;
  v1::WorkerMessage in_;
  std::string session_;  // set once, on the reactor's read path

  absl::Mutex mu_;
  std::deque<v1::CoordinatorMessage> out_ ABSL_GUARDED_BY(mu_);
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finishing_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  bool detached_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status finish_status_ ABSL_GUARDED_BY(mu_);
};

void AttachReactor::Enqueue(v1::CoordinatorMessage message) {
  const v1::CoordinatorMessage* to_write = nullptr;
  {
    absl::MutexLock lock(&mu_);
    if (finishing_) return;
    out_.push_back(std::move(message));
    if (writing_) return;
    writing_ = true;
    to_write = &out_.front();
  }
  StartWrite(to_write);
}

void AttachReactor::CloseWith(const grpc::Status& status) {
  bool finish_now = false;
  {
    absl::MutexLock lock(&mu_);
    if (finishing_) return;
    finishing_ = true;
    finish_status_ = status;
    out_.clear();
    finish_now = !writing_;
  }
  if (finish_now) {
    Finish(status);
  } else {
    ctx_->TryCancel();
  }
}

void AttachReactor::OnReadDone(bool ok) {
  if (!ok) {
    // The worker closed its side (drained) or the stream broke.
    DetachFromCoordinator(absl::UnavailableError("stream closed by the worker"));
    CloseWith(grpc::Status::OK);
    return;
  }
  const bool more = session_.empty() ? OnHello() : OnSessionMessage();
  if (more) StartRead(&in_);
}

bool AttachReactor::OnHello() {
  if (in_.msg_case() != v1::WorkerMessage::kHello) {
    CloseWith(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "the first message on Attach must be a hello"));
    return false;
  }
  auto session = coordinator_->Attach(in_.hello(), ctx_->peer(), channel_);
  if (!session.ok()) {
    // The name is not validated yet: escape it so it cannot forge log lines.
    spdlog::warn("worker \"{}\" at {} refused: {}", absl::CHexEscape(in_.hello().name()), ctx_->peer(),
                 session.status().message());
    CloseWith(ToGrpcStatus(session.status()));
    return false;
  }
  session_ = *session;
  LogFields fields({{"worker", in_.hello().name()}, {"session", session_}});
  spdlog::info("worker {} attached from {} (session {}, {} slots)", in_.hello().name(), ctx_->peer(), session_,
               in_.hello().slots());
  return true;
}

bool AttachReactor::OnSessionMessage() {
  const absl::Status status = coordinator_->HandleMessage(session_, in_);
  if (status.ok()) return true;
  LogFields fields({{"session", session_}});
  spdlog::warn("closing session {}: {}", session_, status.message());
  DetachFromCoordinator(status);
  CloseWith(ToGrpcStatus(status));
  return false;
}

void AttachReactor::OnWriteDone(bool ok) {
  const v1::CoordinatorMessage* next = nullptr;
  std::optional<grpc::Status> finish;
  {
    absl::MutexLock lock(&mu_);
    if (!out_.empty()) out_.pop_front();
    if (!ok) out_.clear();  // the stream is broken; OnReadDone(false) follows
    if (finishing_ && !finished_) {
      finished_ = true;
      writing_ = false;
      finish = finish_status_;
    } else if (!out_.empty()) {
      next = &out_.front();
    } else {
      writing_ = false;
    }
  }
  if (finish) {
    Finish(*finish);
  } else if (next != nullptr) {
    StartWrite(next);
  }
}

void AttachReactor::OnDone() {
  channel_->Detach();
  DetachFromCoordinator(absl::UnavailableError("stream done"));
  delete this;
}

void AttachReactor::DetachFromCoordinator(const absl::Status& why) {
  std::string session;
  {
    absl::MutexLock lock(&mu_);
    if (detached_ || session_.empty()) return;
    detached_ = true;
    session = session_;
  }
  LogFields fields({{"session", session}});
  spdlog::info("worker session {} detached: {}", session, why.message());
  coordinator_->Detach(session, why);
}

void StreamChannel::Send(v1::CoordinatorMessage message) {
  absl::MutexLock lock(&mu_);
  if (reactor_ != nullptr) reactor_->Enqueue(std::move(message));
}

void StreamChannel::Close(const absl::Status& status) {
  absl::MutexLock lock(&mu_);
  if (reactor_ != nullptr) reactor_->CloseWith(ToGrpcStatus(status));
}

// ---------------------------------------------------------------------------
// WatchJob: progress updates until the job ends. Only the newest pending
// update is kept, so a slow reader never makes the server buffer more than one.

// RunJob's first progress update waits this long: a job that ends sooner
// gets one message, its final report (which names the job too). A short job
// would otherwise pay for a second message on both ends, on the CPUs its
// task needs.
constexpr absl::Duration kRunFirstUpdateDelay = absl::Milliseconds(5);

// Streams one job's progress from a Coordinator watch; the final update
// (with the report) ends the call. Deletes itself in OnDone. What to write
// and when to finish is WatchStream's (watch_stream.h).
class WatchReactor final : public grpc::ServerWriteReactor<v1::JobProgress> {
 public:
  WatchReactor(Coordinator* coordinator, const v1::WatchJobRequest& request,
               absl::Duration first_update_delay = absl::ZeroDuration());

  void OnWriteDone(bool ok) override { Apply(stream_.OnWriteDone(ok)); }
  void OnCancel() override { Apply(stream_.OnCancel()); }
  void OnDone() override;

 private:
  // The final update (it carries the report) goes out with the status in
  // one batch: no OnWriteDone round before the trailers, so the client sees
  // the end of the stream together with the report.
  void Apply(const WatchStream::Step& step);

  Coordinator* const coordinator_;
  WatchStream stream_;
  absl::Mutex mu_;
  uint64_t handle_ ABSL_GUARDED_BY(mu_) = 0;
};

WatchReactor::WatchReactor(Coordinator* coordinator, const v1::WatchJobRequest& request,
                           absl::Duration first_update_delay)
    : coordinator_(coordinator) {
  // Called by the Coordinator with its lock held.
  auto handle = coordinator_->Watch(
      request.job_id(), !request.omit_tasks(), [this](const v1::JobProgress& p) { Apply(stream_.OnProgress(p)); },
      first_update_delay);
  if (!handle.ok()) {
    Finish(ToGrpcStatus(handle.status()));
    return;
  }
  {
    absl::MutexLock lock(&mu_);
    handle_ = *handle;
  }
  Apply(stream_.Start());
}

void WatchReactor::OnDone() {
  uint64_t handle = 0;
  {
    absl::MutexLock lock(&mu_);
    handle = handle_;
  }
  if (handle != 0) coordinator_->Unwatch(handle);
  delete this;
}

void WatchReactor::Apply(const WatchStream::Step& step) {
  if (step.finish_cancelled) {
    Finish(grpc::Status(grpc::StatusCode::CANCELLED, "watch cancelled"));
  } else if (step.write != nullptr && step.write->has_report()) {
    StartWriteAndFinish(step.write, grpc::WriteOptions(), grpc::Status::OK);
  } else if (step.write != nullptr) {
    StartWrite(step.write);
  }
}

// Ends a refused streaming call at once with its status.
template <typename Reactor>
class Refused final : public Reactor {
 public:
  explicit Refused(const absl::Status& status) { this->Finish(ToGrpcStatus(status)); }
  void OnDone() override { delete this; }
};
using RefusedWatch = Refused<grpc::ServerWriteReactor<v1::JobProgress>>;
using RefusedAttach = Refused<grpc::ServerBidiReactor<v1::WorkerMessage, v1::CoordinatorMessage>>;

}  // namespace

grpc::ServerUnaryReactor* CoordinatorServiceImpl::SubmitJob(grpc::CallbackServerContext* ctx,
                                                            const v1::SubmitJobRequest* req,
                                                            v1::SubmitJobResponse* resp) {
  if (auto st = gate_->Check(ctx, Role::kClient, "SubmitJob"); !st.ok()) return FinishUnary(ctx, st);
  auto result = coordinator_->Submit(req->spec());
  if (!result.ok()) return FinishUnary(ctx, result.status());
  *resp = *std::move(result);
  LogSubmitted(ctx, *resp);
  return FinishUnary(ctx, absl::OkStatus());
}

grpc::ServerUnaryReactor* CoordinatorServiceImpl::GetJob(grpc::CallbackServerContext* ctx,
                                                         const v1::GetJobRequest* req,
                                                         v1::JobReport* resp) {
  if (auto st = gate_->Check(ctx, Role::kViewer, "GetJob"); !st.ok()) return FinishUnary(ctx, st);
  ReportOptions options;
  options.tasks = !req->omit_tasks();
  options.task_offset = req->task_offset();
  options.task_limit = req->task_limit() == 0 ? limits::kMaxTaskRowsPerReply
                                              : std::min(req->task_limit(), limits::kMaxTaskRowsPerReply);
  // Without a page asked for, a job larger than one page gets a summary.
  options.summarize_large = req->task_limit() == 0 && req->task_offset() == 0;
  options.attempts = req->include_attempts();
  auto result = coordinator_->GetReport(req->job_id(), options);
  if (!result.ok()) return FinishUnary(ctx, result.status());
  *resp = *std::move(result);
  return FinishUnary(ctx, absl::OkStatus());
}

grpc::ServerWriteReactor<v1::JobProgress>* CoordinatorServiceImpl::RunJob(grpc::CallbackServerContext* ctx,
                                                                          const v1::RunJobRequest* req) {
  if (auto st = gate_->Check(ctx, Role::kClient, "RunJob"); !st.ok()) return new RefusedWatch(st);
  auto submitted = coordinator_->Submit(req->spec());
  if (!submitted.ok()) return new RefusedWatch(submitted.status());
  LogSubmitted(ctx, *submitted);
  v1::WatchJobRequest watch;
  watch.set_job_id(submitted->job_id());
  watch.set_omit_tasks(req->omit_tasks());
  return new WatchReactor(coordinator_, watch, kRunFirstUpdateDelay);
}

grpc::ServerWriteReactor<v1::JobProgress>* CoordinatorServiceImpl::WatchJob(
    grpc::CallbackServerContext* ctx, const v1::WatchJobRequest* req) {
  if (auto st = gate_->Check(ctx, Role::kViewer, "WatchJob"); !st.ok()) return new RefusedWatch(st);
  return new WatchReactor(coordinator_, *req);
}

grpc::ServerUnaryReactor* CoordinatorServiceImpl::ListJobs(grpc::CallbackServerContext* ctx,
                                                           const v1::ListJobsRequest* req,
                                                           v1::ListJobsResponse* resp) {
  if (auto st = gate_->Check(ctx, Role::kViewer, "ListJobs"); !st.ok()) return FinishUnary(ctx, st);
  auto result = coordinator_->ListJobs(req->limit());
  if (!result.ok()) return FinishUnary(ctx, result.status());
  for (v1::JobSummary& s : *result) *resp->add_jobs() = std::move(s);
  return FinishUnary(ctx, absl::OkStatus());
}

grpc::ServerUnaryReactor* CoordinatorServiceImpl::CancelJob(grpc::CallbackServerContext* ctx,
                                                            const v1::CancelJobRequest* req,
                                                            v1::CancelJobResponse* resp) {
  if (auto st = gate_->Check(ctx, Role::kClient, "CancelJob"); !st.ok()) return FinishUnary(ctx, st);
  auto result = coordinator_->Cancel(req->job_id());
  if (!result.ok()) return FinishUnary(ctx, result.status());
  resp->set_state(*result);
  LogFields fields({{"job_id", req->job_id()}});
  spdlog::info("job {} cancelled by {}", req->job_id(), ctx->peer());
  return FinishUnary(ctx, absl::OkStatus());
}

grpc::ServerUnaryReactor* CoordinatorServiceImpl::ListWorkers(grpc::CallbackServerContext* ctx,
                                                              const v1::ListWorkersRequest* req,
                                                              v1::ListWorkersResponse* resp) {
  if (auto st = gate_->Check(ctx, Role::kViewer, "ListWorkers"); !st.ok()) return FinishUnary(ctx, st);
  for (v1::WorkerInfo& w : coordinator_->ListWorkers(req->include_gone())) {
    *resp->add_workers() = std::move(w);
  }
  return FinishUnary(ctx, absl::OkStatus());
}

grpc::ServerUnaryReactor* CoordinatorServiceImpl::GetHealth(grpc::CallbackServerContext* ctx,
                                                            const v1::GetHealthRequest*, v1::HealthReport* resp) {
  if (auto st = gate_->Check(ctx, Role::kViewer, "GetHealth"); !st.ok()) return FinishUnary(ctx, st);
  const StoreHealth h = coordinator_->Metrics().store;
  resp->set_serving(h.writable);
  v1::StoreStatus* s = resp->mutable_store();
  s->set_writable(h.writable);
  s->set_cause(h.cause);
  s->set_backlog_rows(h.backlog_rows);
  s->set_commits(h.commits);
  s->set_write_failures(h.write_failures);
  if (!h.writable) *s->mutable_unwritable_since() = busyfleet::ToProtoTimestamp(absl::FromUnixNanos(h.unwritable_since_unix_ns));
  s->set_jobs_deleted(h.jobs_deleted);
  s->set_jobs_dropped(h.jobs_dropped);
  s->set_purge_rows(h.purge_rows);
  return FinishUnary(ctx, absl::OkStatus());
}

grpc::ServerUnaryReactor* CoordinatorServiceImpl::DeleteJob(grpc::CallbackServerContext* ctx,
                                                            const v1::DeleteJobRequest* req, v1::DeleteJobResponse*) {
  if (auto st = gate_->Check(ctx, Role::kClient, "DeleteJob"); !st.ok()) return FinishUnary(ctx, st);
  if (absl::Status st = coordinator_->DeleteJob(req->job_id()); !st.ok()) return FinishUnary(ctx, st);
  LogFields fields({{"job_id", req->job_id()}});
  spdlog::info("job {} deleted at the request of {}", req->job_id(), ctx->peer());
  return FinishUnary(ctx, absl::OkStatus());
}

grpc::ServerUnaryReactor* CoordinatorServiceImpl::PruneJobs(grpc::CallbackServerContext* ctx,
                                                            const v1::PruneJobsRequest* req,
                                                            v1::PruneJobsResponse* resp) {
  if (auto st = gate_->Check(ctx, Role::kClient, "PruneJobs"); !st.ok()) return FinishUnary(ctx, st);
  RetentionRule rule;
  rule.keep_jobs = req->keep();
  const absl::Time now = absl::Now();
  if (req->has_older_than()) {
    const absl::Duration age = busyfleet::ToAbslDuration(req->older_than());
    if (age < absl::ZeroDuration()) {
      return FinishUnary(ctx, absl::InvalidArgumentError("older_than must not be negative"));
    }
    rule.finished_before = now - age;
  }
  if (rule.empty()) {
    return FinishUnary(ctx, absl::InvalidArgumentError("give older_than or keep (or both): which jobs to prune"));
  }
  auto pruned = coordinator_->Prune(rule, limits::kMaxPruneJobs + 1, req->dry_run());
  if (!pruned.ok()) return FinishUnary(ctx, pruned.status());
  resp->set_more(pruned->size() > limits::kMaxPruneJobs);
  for (const JobRecord& job : *pruned) {
    if (resp->jobs_size() == static_cast<int>(limits::kMaxPruneJobs)) break;
    *resp->add_jobs() = BuildSummary(job, now);
  }
  if (!req->dry_run() && resp->jobs_size() > 0) {
    spdlog::info("{} finished jobs pruned at the request of {}", resp->jobs_size(), ctx->peer());
  }
  return FinishUnary(ctx, absl::OkStatus());
}

grpc::ServerUnaryReactor* CoordinatorServiceImpl::DrainWorker(grpc::CallbackServerContext* ctx,
                                                              const v1::DrainWorkerRequest* req,
                                                              v1::DrainWorkerResponse* resp) {
  if (auto st = gate_->Check(ctx, Role::kClient, "DrainWorker"); !st.ok()) return FinishUnary(ctx, st);
  auto result = coordinator_->Drain(req->name());
  if (!result.ok()) return FinishUnary(ctx, result.status());
  resp->set_state(*result);
  LogFields fields({{"worker", req->name()}});
  spdlog::info("worker {} draining at the request of {}", req->name(), ctx->peer());
  return FinishUnary(ctx, absl::OkStatus());
}

grpc::ServerBidiReactor<v1::WorkerMessage, v1::CoordinatorMessage>* WorkerServiceImpl::Attach(
    grpc::CallbackServerContext* ctx) {
  if (auto st = gate_->Check(ctx, Role::kWorker, "Attach"); !st.ok()) return new RefusedAttach(st);
  return new AttachReactor(ctx, coordinator_);
}

absl::Status CallGate::Check(grpc::CallbackServerContext* ctx, Role role, absl::string_view method) {
  absl::Status st = authenticator_.Check(role, ctx->client_metadata());
  if (st.ok()) return st;
  uint64_t suppressed = 0;
  if (log_limit_.Allow(&suppressed)) {
    spdlog::warn("refused {} call {} from {}: {}{}", RoleName(role),
                 method, ctx->peer(), st.message(),
                 suppressed > 0 ? fmt::format(" ({} more refusals not logged)", suppressed) : "");
  }
  return st;
}

}  // namespace busyfleet::coordinator
