#include "coordinator/server/coordinator_service.h"

#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include <grpcpp/alarm.h>
#include <spdlog/spdlog.h>

#include "common/logging.h"

#include "absl/base/thread_annotations.h"
#include "absl/strings/escaping.h"
#include "absl/synchronization/mutex.h"
#include "common/rpc/grpc_status.h"
#include "busyfleet/proto_time.h"
#include "absl/strings/str_cat.h"
#include "coordinator/core/limits.h"
#include "coordinator/core/timing_aggregator.h"
#include "coordinator/server/watch_stream.h"
#include "coordinator/core/worker_messages.h"

namespace busyfleet::coordinator {
namespace {

// `status` with its message cut to limits::kMaxStatusMessageBytes: a message
// that echoes a peer's 1 MiB job id would make trailers no client can read
// (gRPC's metadata limit is 8 KiB), and log lines as long.
absl::Status Bounded(const absl::Status& status) {
  if (status.message().size() <= limits::kMaxStatusMessageBytes) return status;
  std::string message(status.message());
  TruncateText(message, limits::kMaxStatusMessageBytes);
  return absl::Status(status.code(), message);
}

grpc::ServerUnaryReactor* FinishUnary(grpc::CallbackServerContext* ctx, const absl::Status& status) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  reactor->Finish(ToGrpcStatus(Bounded(status)));
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
  // Holds one of `admission`'s session places until OnDone.
  AttachReactor(grpc::CallbackServerContext* ctx, Coordinator* coordinator, PeerAdmission* admission)
      : ctx_(ctx), coordinator_(coordinator), admission_(admission),
        channel_(std::make_shared<StreamChannel>(this)) {
    {
      absl::MutexLock lock(&cancel_target_->mu);
      cancel_target_->ctx = ctx;
    }
    StartRead(&in_);
  }

  // Queues a message; writes at once if no write is outstanding. A worker
  // whose queue is full (it stopped reading) is disconnected.
  void Enqueue(v1::CoordinatorMessage message);
  // Ends the stream with `status` once the outstanding write is done, so
  // the peer learns why. A write still outstanding `cancel_after` from now
  // (the peer stopped reading) is cancelled; zero cancels it at once.
  void CloseWith(const grpc::Status& status, absl::Duration cancel_after = limits::kStuckWriteGrace);
  // The Coordinator ends the session (declared dead, replaced, shutdown):
  // CloseWith, and the detach logs `why` rather than "closed by the worker".
  void CloseFor(const absl::Status& why) {
    {
      absl::MutexLock lock(&mu_);
      if (closed_because_.ok()) closed_because_ = why;
    }
    CloseWith(ToGrpcStatus(why));
  }

  void OnReadDone(bool ok) override;
  void OnWriteDone(bool ok) override;
  // A cancelled call still has to be finished, or gRPC never calls OnDone
  // (the place stays held, Server::Shutdown waits forever). The read that
  // was in flight may complete ok and stop, since the session is detached.
  void OnCancel() override {
    DetachFromCoordinator(absl::CancelledError("stream cancelled"));
    CloseWith(grpc::Status(grpc::StatusCode::CANCELLED, "stream cancelled"), absl::ZeroDuration());
  }
  void OnDone() override;

 private:
  // The first message: attaches the worker. False if the stream is closing.
  bool OnHello();
  // A later message, handled by the Coordinator. False if the stream is closing.
  bool OnSessionMessage();
  // Tells the Coordinator the session is over (once, and only if it began).
  void DetachFromCoordinator(const absl::Status& why);
  // Ends a session the Coordinator or this reactor refused, counted.
  void Refuse(const absl::Status& status);
  // The queue is full: why the stream is closed (nullopt if it is not).
  std::optional<absl::Status> OverflowLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  grpc::CallbackServerContext* const ctx_;
  Coordinator* const coordinator_;
  PeerAdmission* const admission_;
  const std::shared_ptr<StreamChannel> channel_;
  v1::WorkerMessage in_;
  std::string session_;  // set once, on the reactor's read path

  absl::Mutex mu_;
  std::deque<v1::CoordinatorMessage> out_ ABSL_GUARDED_BY(mu_);
  size_t out_bytes_ ABSL_GUARDED_BY(mu_) = 0;  // of the messages in out_
  // Why the stream was closed by us (a full queue), for the detach.
  absl::Status closed_because_ ABSL_GUARDED_BY(mu_);
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finishing_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  bool detached_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status finish_status_ ABSL_GUARDED_BY(mu_);

  // What the stuck-write alarm may cancel: the context until OnDone.
  struct CancelTarget {
    absl::Mutex mu;
    grpc::CallbackServerContext* ctx ABSL_GUARDED_BY(mu);
  };
  const std::shared_ptr<CancelTarget> cancel_target_ = std::make_shared<CancelTarget>();
  grpc::Alarm stuck_write_alarm_;  // set by CloseWith at most once
};

std::optional<absl::Status> AttachReactor::OverflowLocked() const {
  if (out_.size() < limits::kMaxQueuedMessagesPerStream && out_bytes_ < limits::kMaxQueuedBytesPerStream) {
    return std::nullopt;
  }
  return absl::ResourceExhaustedError(absl::StrCat(
      "the worker stopped reading: ", out_.size(), " messages (", out_bytes_, " bytes) wait to be sent; the limit "
      "is ", limits::kMaxQueuedMessagesPerStream, " messages or ", limits::kMaxQueuedBytesPerStream, " bytes"));
}

void AttachReactor::Enqueue(v1::CoordinatorMessage message) {
  const v1::CoordinatorMessage* to_write = nullptr;
  std::optional<absl::Status> overflow;
  {
    absl::MutexLock lock(&mu_);
    if (finishing_) return;
    overflow = OverflowLocked();
    if (!overflow) {
      out_bytes_ += message.ByteSizeLong();
      out_.push_back(std::move(message));
      if (writing_) return;
      writing_ = true;
      to_write = &out_.front();
    } else {
      closed_because_ = *overflow;
    }
  }
  if (to_write != nullptr) {
    StartWrite(to_write);
    return;
  }
  // Called with the Coordinator's lock held: no detach here. The cancel
  // below ends the call; OnCancel/OnDone detach with closed_because_.
  admission_->tally()->Add(PeerTally::kSlowReaders);
  // The detach logs the session id with the same reason.
  spdlog::warn("disconnecting the worker at {}: {}", ctx_->peer(), overflow->message());
  CloseWith(ToGrpcStatus(*overflow), absl::ZeroDuration());  // its write is stuck already
}

void AttachReactor::CloseWith(const grpc::Status& status, absl::Duration cancel_after) {
  bool finish_now = false;
  {
    absl::MutexLock lock(&mu_);
    if (finishing_) return;
    finishing_ = true;
    finish_status_ = status;
    // The message being written stays: OnWriteDone may have picked it and
    // be about to hand it to StartWrite outside the lock.
    if (writing_ && !out_.empty()) {
      out_.erase(out_.begin() + 1, out_.end());
      out_bytes_ = out_.front().ByteSizeLong();
    } else {
      out_.clear();
      out_bytes_ = 0;
    }
    finish_now = !writing_;
  }
  if (finish_now) {
    Finish(status);
  } else if (cancel_after <= absl::ZeroDuration()) {
    ctx_->TryCancel();
  } else {
    // Cancelling now would tell a peer that still reads CANCELLED instead of
    // `status`. The alarm fires at most once (finishing_ is set once); OnDone
    // clears the context first, so a late alarm touches nothing.
    stuck_write_alarm_.Set(absl::ToChronoTime(absl::Now() + cancel_after),
                           [target = cancel_target_](bool fired) {
                             if (!fired) return;  // cancelled: the reactor is done
                             absl::MutexLock lock(&target->mu);
                             if (target->ctx != nullptr) target->ctx->TryCancel();
                           });
  }
}

void AttachReactor::OnReadDone(bool ok) {
  if (!ok) {
    // The worker closed its side (drained) or the stream broke.
    DetachFromCoordinator(absl::UnavailableError("stream closed by the worker"));
    CloseWith(grpc::Status::OK);
    return;
  }
  {
    // A stream we are closing (refused, or cut for not reading) or one
    // cancelled says nothing more: its session is gone.
    absl::MutexLock lock(&mu_);
    if (finishing_ || detached_) return;
  }
  const bool more = session_.empty() ? OnHello() : OnSessionMessage();
  if (more) StartRead(&in_);
}

void AttachReactor::Refuse(const absl::Status& status) {
  admission_->tally()->Add(PeerTally::kWorkersRefused);
  CloseWith(ToGrpcStatus(Bounded(status)));
}

bool AttachReactor::OnHello() {
  if (in_.msg_case() != v1::WorkerMessage::kHello) {
    spdlog::warn("worker at {} refused: its first message on Attach is not a hello", ctx_->peer());
    Refuse(absl::InvalidArgumentError("the first message on Attach must be a hello"));
    return false;
  }
  admission_->tally()->Add(PeerTally::kStringsTruncated, TruncateHelloText(*in_.mutable_hello()));
  auto session = coordinator_->Attach(in_.hello(), ctx_->peer(), channel_);
  if (!session.ok()) {
    // The name is not validated yet: escape it so it cannot forge log lines
    // (and cut it: it may be megabytes).
    std::string name = absl::CHexEscape(in_.hello().name());
    TruncateText(name, limits::kMaxNameBytes * 2);
    spdlog::warn("worker \"{}\" at {} refused: {}", name, ctx_->peer(), Bounded(session.status()).message());
    Refuse(session.status());
    return false;
  }
  session_ = *session;
  LogFields fields({{"worker", in_.hello().name()}, {"session", session_}});
  spdlog::info("worker {} attached from {} (session {}, {} slots)", in_.hello().name(), ctx_->peer(), session_,
               in_.hello().slots());
  return true;
}

bool AttachReactor::OnSessionMessage() {
  admission_->tally()->Add(PeerTally::kStringsTruncated, TruncateWorkerText(in_));
  const absl::Status status = Bounded(coordinator_->HandleMessage(session_, in_));
  if (status.ok()) return true;
  LogFields fields({{"session", session_}});
  spdlog::warn("closing session {}: {}", session_, status.message());
  DetachFromCoordinator(status);
  if (absl::IsNotFound(status)) {
    // The session is gone already (timed out, or cancelled while this
    // message was read): nothing was refused.
    CloseWith(ToGrpcStatus(status));
  } else {
    Refuse(status);
  }
  return false;
}

void AttachReactor::OnWriteDone(bool ok) {
  const v1::CoordinatorMessage* next = nullptr;
  std::optional<grpc::Status> finish;
  {
    absl::MutexLock lock(&mu_);
    if (!out_.empty()) {
      out_bytes_ -= std::min(out_bytes_, out_.front().ByteSizeLong());
      out_.pop_front();
    }
    if (!ok) {  // the stream is broken; OnReadDone(false) follows
      out_.clear();
      out_bytes_ = 0;
    }
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
  {
    absl::MutexLock lock(&cancel_target_->mu);
    cancel_target_->ctx = nullptr;
  }
  channel_->Detach();
  DetachFromCoordinator(absl::UnavailableError("stream done"));
  admission_->ReleaseSession();
  delete this;
}

void AttachReactor::DetachFromCoordinator(const absl::Status& status) {
  std::string session;
  absl::Status why = status;
  {
    absl::MutexLock lock(&mu_);
    if (detached_ || session_.empty()) return;
    detached_ = true;
    session = session_;
    if (!closed_because_.ok()) why = closed_because_;
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
  if (reactor_ != nullptr) reactor_->CloseFor(status);
}

// ---------------------------------------------------------------------------
// WatchJob: progress updates until the job ends. Only the newest pending
// update is kept, so a slow reader never makes the server buffer more than one.

// A progress stream is done: its watch (0: none) goes, and its place.
void EndWatch(Coordinator* coordinator, PeerAdmission* admission, uint64_t handle) {
  if (handle != 0) coordinator->Unwatch(handle);
  admission->ReleaseWatch();
}

// A reader that has read nothing for kMaxWatchWriteStall: counted, logged,
// its call cancelled. Called with the Coordinator's lock held: only
// cancel; OnDone unwatches.
void CancelStuckReader(grpc::CallbackServerContext* ctx, PeerAdmission* admission, const std::string& job_id) {
  admission->tally()->Add(PeerTally::kStalledWatches);
  spdlog::warn("closing the watch of job {} from {}: it read nothing for {} (a stuck reader)", job_id,
               ctx->peer(), absl::FormatDuration(limits::kMaxWatchWriteStall));
  ctx->TryCancel();
}

// RunJob's first progress update waits this long: a job that ends sooner
// gets one message, its final report (which names the job too). A short job
// would otherwise pay for a second message on both ends, on the CPUs its
// task needs.
constexpr absl::Duration kRunFirstUpdateDelay = absl::Milliseconds(5);

// Streams one job's progress from a Coordinator watch; the final update
// (with the report) ends the call. Holds one of `admission`'s watch places
// until OnDone. What to write and when to finish is WatchStream's
// (watch_stream.h); a reader whose write is stuck for kMaxWatchWriteStall is
// cancelled at the next update. Deletes itself in OnDone.
class WatchReactor final : public grpc::ServerWriteReactor<v1::JobProgress> {
 public:
  WatchReactor(grpc::CallbackServerContext* ctx, Coordinator* coordinator, PeerAdmission* admission,
               const v1::WatchJobRequest& request, absl::Duration first_update_delay = absl::ZeroDuration());

  void OnWriteDone(bool ok) override { Apply(stream_.OnWriteDone(ok)); }
  void OnCancel() override { Apply(stream_.OnCancel()); }
  void OnDone() override;

 private:
  // Called by the Coordinator with its lock held.
  void OnProgress(const v1::JobProgress& progress);
  // The final update (it carries the report) goes out with the status in
  // one batch: no OnWriteDone round before the trailers, so the client sees
  // the end of the stream together with the report.
  void Apply(const WatchStream::Step& step);

  grpc::CallbackServerContext* const ctx_;
  Coordinator* const coordinator_;
  PeerAdmission* const admission_;
  WatchStream stream_;
  absl::Mutex mu_;
  uint64_t handle_ ABSL_GUARDED_BY(mu_) = 0;
};

WatchReactor::WatchReactor(grpc::CallbackServerContext* ctx, Coordinator* coordinator, PeerAdmission* admission,
                           const v1::WatchJobRequest& request, absl::Duration first_update_delay)
    : ctx_(ctx), coordinator_(coordinator), admission_(admission) {
  auto handle = coordinator_->Watch(
      request.job_id(), !request.omit_tasks(), [this](const v1::JobProgress& p) { OnProgress(p); },
      first_update_delay);
  if (!handle.ok()) {
    admission_->tally()->AddClientRefusal(static_cast<int>(handle.status().code()));
    Finish(ToGrpcStatus(Bounded(handle.status())));
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
  EndWatch(coordinator_, admission_, handle);
  delete this;
}

void WatchReactor::OnProgress(const v1::JobProgress& progress) {
  const WatchStream::Step step = stream_.OnProgress(progress, limits::kMaxWatchWriteStall);
  Apply(step);
  if (step.stalled) CancelStuckReader(ctx_, admission_, progress.job_id());
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
  explicit Refused(const absl::Status& status) { this->Finish(ToGrpcStatus(Bounded(status))); }
  void OnDone() override { delete this; }
};
using RefusedWatch = Refused<grpc::ServerWriteReactor<v1::JobProgress>>;
using RefusedAttach = Refused<grpc::ServerBidiReactor<v1::WorkerMessage, v1::CoordinatorMessage>>;
using RefusedRunSession = Refused<grpc::ServerBidiReactor<v1::RunJobRequest, v1::JobProgress>>;

// ---------------------------------------------------------------------------
// RunJobs: RunJob for job after job on one stream. One job at a time: the
// next request is read only once the current job's final update is written,
// so the session holds at most one job's pending update (as a watch does).
// Each job gets a WatchStream of its own; its watch is dropped (Unwatch,
// outside the Coordinator's lock) before the next request is read. Holds one
// of `admission`'s watch places until OnDone. Deletes itself in OnDone.
class RunSessionReactor final : public grpc::ServerBidiReactor<v1::RunJobRequest, v1::JobProgress> {
 public:
  RunSessionReactor(grpc::CallbackServerContext* ctx, Coordinator* coordinator, PeerAdmission* admission)
      : ctx_(ctx), coordinator_(coordinator), admission_(admission) {
    StartRead(&request_);
  }

  void OnReadDone(bool ok) override;
  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;

 private:
  // The job's watch registered: Submit and Watch (not under mu_: the
  // Coordinator may call OnProgress from inside Watch).
  absl::Status StartJob();
  // Called by the Coordinator with its lock held.
  void OnProgress(WatchStream* job, const v1::JobProgress& progress);
  void Apply(const WatchStream::Step& step);
  // Ends the call once (a cancel and a refusal may race).
  void FinishOnce(const grpc::Status& status);
  // The current job's watch is dropped; the next request may be read.
  void EndJob();

  grpc::CallbackServerContext* const ctx_;
  Coordinator* const coordinator_;
  PeerAdmission* const admission_;
  v1::RunJobRequest request_;  // only touched between reads
  absl::Mutex mu_;
  // The current job's stream (replaced only after its watch is dropped;
  // shared: OnCancel may still hold the one before).
  std::shared_ptr<WatchStream> job_ ABSL_GUARDED_BY(mu_);
  uint64_t handle_ ABSL_GUARDED_BY(mu_) = 0;
  // The outstanding write is the job's final update.
  bool final_write_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
};

void RunSessionReactor::OnReadDone(bool ok) {
  // Not ok: the client closed its writes (between jobs: nothing runs) or
  // the call is gone.
  if (!ok) return FinishOnce(grpc::Status::OK);
  if (absl::Status st = StartJob(); !st.ok()) {
    admission_->tally()->AddClientRefusal(static_cast<int>(st.code()));
    FinishOnce(ToGrpcStatus(Bounded(st)));
  }
}

absl::Status RunSessionReactor::StartJob() {
  auto submitted = coordinator_->Submit(request_.spec());
  if (!submitted.ok()) return submitted.status();
  LogSubmitted(ctx_, *submitted);
  auto job = std::make_shared<WatchStream>();
  bool cancelled = false;
  {
    absl::MutexLock lock(&mu_);
    job_ = job;
    final_write_ = false;
    cancelled = cancelled_;
  }
  // Cancelled before this job's stream was there: it ends the call.
  if (cancelled) Apply(job->OnCancel());
  auto on_progress = [this, job = job.get()](const v1::JobProgress& p) { OnProgress(job, p); };
  auto handle = coordinator_->Watch(submitted->job_id(), !request_.omit_tasks(), on_progress, kRunFirstUpdateDelay);
  if (!handle.ok()) return handle.status();
  {
    absl::MutexLock lock(&mu_);
    handle_ = *handle;
  }
  Apply(job->Start());
  return absl::OkStatus();
}

void RunSessionReactor::OnProgress(WatchStream* job, const v1::JobProgress& progress) {
  const WatchStream::Step step = job->OnProgress(progress, limits::kMaxWatchWriteStall);
  Apply(step);
  if (step.stalled) CancelStuckReader(ctx_, admission_, progress.job_id());
}

void RunSessionReactor::Apply(const WatchStream::Step& step) {
  if (step.finish_cancelled) return FinishOnce(grpc::Status(grpc::StatusCode::CANCELLED, "run session cancelled"));
  if (step.write == nullptr) return;
  {
    absl::MutexLock lock(&mu_);
    final_write_ = step.write->has_report();
  }
  StartWrite(step.write);
}

void RunSessionReactor::OnWriteDone(bool ok) {
  std::shared_ptr<WatchStream> job;
  bool final_write = false;
  {
    absl::MutexLock lock(&mu_);
    job = job_;
    final_write = final_write_;
  }
  const WatchStream::Step step = job->OnWriteDone(ok);
  if (ok && final_write && !step.finish_cancelled) return EndJob();
  Apply(step);
}

void RunSessionReactor::EndJob() {
  uint64_t handle = 0;
  {
    absl::MutexLock lock(&mu_);
    std::swap(handle, handle_);
  }
  if (handle != 0) coordinator_->Unwatch(handle);
  StartRead(&request_);
}

void RunSessionReactor::OnCancel() {
  std::shared_ptr<WatchStream> job;
  {
    absl::MutexLock lock(&mu_);
    cancelled_ = true;
    job = job_;
  }
  // Between jobs the outstanding read fails and ends the call.
  if (job != nullptr) Apply(job->OnCancel());
}

void RunSessionReactor::FinishOnce(const grpc::Status& status) {
  {
    absl::MutexLock lock(&mu_);
    if (finished_) return;
    finished_ = true;
  }
  Finish(status);
}

void RunSessionReactor::OnDone() {
  uint64_t handle = 0;
  {
    absl::MutexLock lock(&mu_);
    handle = handle_;
  }
  EndWatch(coordinator_, admission_, handle);
  delete this;
}

}  // namespace

grpc::ServerUnaryReactor* CoordinatorServiceImpl::SubmitJob(grpc::CallbackServerContext* ctx,
                                                            const v1::SubmitJobRequest* req,
                                                            v1::SubmitJobResponse* resp) {
  if (auto st = gate_->Check(ctx, Role::kClient, "SubmitJob"); !st.ok()) return Finish(ctx, st);
  auto result = coordinator_->Submit(req->spec());
  if (!result.ok()) return Finish(ctx, result.status());
  *resp = *std::move(result);
  LogSubmitted(ctx, *resp);
  return Finish(ctx, absl::OkStatus());
}

grpc::ServerUnaryReactor* CoordinatorServiceImpl::GetJob(grpc::CallbackServerContext* ctx,
                                                         const v1::GetJobRequest* req,
                                                         v1::JobReport* resp) {
  if (auto st = gate_->Check(ctx, Role::kViewer, "GetJob"); !st.ok()) return Finish(ctx, st);
  ReportOptions options;
  options.tasks = !req->omit_tasks();
  options.task_offset = req->task_offset();
  options.task_limit = req->task_limit() == 0 ? limits::kMaxTaskRowsPerReply
                                              : std::min(req->task_limit(), limits::kMaxTaskRowsPerReply);
  // Without a page asked for, a job larger than one page gets a summary.
  options.summarize_large = req->task_limit() == 0 && req->task_offset() == 0;
  options.attempts = req->include_attempts();
  auto result = coordinator_->GetReport(req->job_id(), options);
  if (!result.ok()) return Finish(ctx, result.status());
  *resp = *std::move(result);
  return Finish(ctx, absl::OkStatus());
}

grpc::ServerUnaryReactor* CoordinatorServiceImpl::Finish(grpc::CallbackServerContext* ctx,
                                                         const absl::Status& status) {
  if (!status.ok()) admission_->tally()->AddClientRefusal(static_cast<int>(status.code()));
  return FinishUnary(ctx, status);
}

grpc::ServerWriteReactor<v1::JobProgress>* CoordinatorServiceImpl::Refuse(const absl::Status& status) {
  admission_->tally()->AddClientRefusal(static_cast<int>(status.code()));
  return new RefusedWatch(status);
}

grpc::ServerWriteReactor<v1::JobProgress>* CoordinatorServiceImpl::RunJob(grpc::CallbackServerContext* ctx,
                                                                          const v1::RunJobRequest* req) {
  if (auto st = gate_->Check(ctx, Role::kClient, "RunJob"); !st.ok()) return Refuse(st);
  // Admitted before the job is submitted: a refused call leaves no job behind.
  if (auto st = admission_->AdmitWatch(); !st.ok()) return Refuse(st);
  auto submitted = coordinator_->Submit(req->spec());
  if (!submitted.ok()) {
    admission_->ReleaseWatch();
    return Refuse(submitted.status());
  }
  LogSubmitted(ctx, *submitted);
  v1::WatchJobRequest watch;
  watch.set_job_id(submitted->job_id());
  watch.set_omit_tasks(req->omit_tasks());
  return new WatchReactor(ctx, coordinator_, admission_, watch, kRunFirstUpdateDelay);
}

grpc::ServerBidiReactor<v1::RunJobRequest, v1::JobProgress>* CoordinatorServiceImpl::RunJobs(
    grpc::CallbackServerContext* ctx) {
  absl::Status st = gate_->Check(ctx, Role::kClient, "RunJobs");
  if (st.ok()) st = admission_->AdmitWatch();
  if (!st.ok()) {
    admission_->tally()->AddClientRefusal(static_cast<int>(st.code()));
    return new RefusedRunSession(st);
  }
  return new RunSessionReactor(ctx, coordinator_, admission_);
}

grpc::ServerWriteReactor<v1::JobProgress>* CoordinatorServiceImpl::WatchJob(
    grpc::CallbackServerContext* ctx, const v1::WatchJobRequest* req) {
  if (auto st = gate_->Check(ctx, Role::kViewer, "WatchJob"); !st.ok()) return Refuse(st);
  if (auto st = admission_->AdmitWatch(); !st.ok()) return Refuse(st);
  return new WatchReactor(ctx, coordinator_, admission_, *req);
}

grpc::ServerUnaryReactor* CoordinatorServiceImpl::ListJobs(grpc::CallbackServerContext* ctx,
                                                           const v1::ListJobsRequest* req,
                                                           v1::ListJobsResponse* resp) {
  if (auto st = gate_->Check(ctx, Role::kViewer, "ListJobs"); !st.ok()) return Finish(ctx, st);
  auto result = coordinator_->ListJobs(req->limit());
  if (!result.ok()) return Finish(ctx, result.status());
  for (v1::JobSummary& s : *result) *resp->add_jobs() = std::move(s);
  return Finish(ctx, absl::OkStatus());
}

grpc::ServerUnaryReactor* CoordinatorServiceImpl::CancelJob(grpc::CallbackServerContext* ctx,
                                                            const v1::CancelJobRequest* req,
                                                            v1::CancelJobResponse* resp) {
  if (auto st = gate_->Check(ctx, Role::kClient, "CancelJob"); !st.ok()) return Finish(ctx, st);
  auto result = coordinator_->Cancel(req->job_id());
  if (!result.ok()) return Finish(ctx, result.status());
  resp->set_state(*result);
  LogFields fields({{"job_id", req->job_id()}});
  spdlog::info("job {} cancelled by {}", req->job_id(), ctx->peer());
  return Finish(ctx, absl::OkStatus());
}

grpc::ServerUnaryReactor* CoordinatorServiceImpl::ListWorkers(grpc::CallbackServerContext* ctx,
                                                              const v1::ListWorkersRequest* req,
                                                              v1::ListWorkersResponse* resp) {
  if (auto st = gate_->Check(ctx, Role::kViewer, "ListWorkers"); !st.ok()) return Finish(ctx, st);
  // Within the reply budget whatever the workers sent (labels, host facts).
  size_t bytes = 0;
  for (v1::WorkerInfo& w : coordinator_->ListWorkers(req->include_gone())) {
    bytes += w.ByteSizeLong() + 8;
    if (bytes > limits::kMaxReplyBytes) {
      resp->set_workers_omitted(resp->workers_omitted() + 1);
      continue;
    }
    *resp->add_workers() = std::move(w);
  }
  return Finish(ctx, absl::OkStatus());
}

grpc::ServerUnaryReactor* CoordinatorServiceImpl::GetHealth(grpc::CallbackServerContext* ctx,
                                                            const v1::GetHealthRequest*, v1::HealthReport* resp) {
  if (auto st = gate_->Check(ctx, Role::kViewer, "GetHealth"); !st.ok()) return Finish(ctx, st);
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
  return Finish(ctx, absl::OkStatus());
}

grpc::ServerUnaryReactor* CoordinatorServiceImpl::DeleteJob(grpc::CallbackServerContext* ctx,
                                                            const v1::DeleteJobRequest* req, v1::DeleteJobResponse*) {
  if (auto st = gate_->Check(ctx, Role::kClient, "DeleteJob"); !st.ok()) return Finish(ctx, st);
  if (absl::Status st = coordinator_->DeleteJob(req->job_id()); !st.ok()) return Finish(ctx, st);
  LogFields fields({{"job_id", req->job_id()}});
  spdlog::info("job {} deleted at the request of {}", req->job_id(), ctx->peer());
  return Finish(ctx, absl::OkStatus());
}

grpc::ServerUnaryReactor* CoordinatorServiceImpl::PruneJobs(grpc::CallbackServerContext* ctx,
                                                            const v1::PruneJobsRequest* req,
                                                            v1::PruneJobsResponse* resp) {
  if (auto st = gate_->Check(ctx, Role::kClient, "PruneJobs"); !st.ok()) return Finish(ctx, st);
  RetentionRule rule;
  rule.keep_jobs = req->keep();
  const absl::Time now = absl::Now();
  if (req->has_older_than()) {
    const absl::Duration age = busyfleet::ToAbslDuration(req->older_than());
    if (age < absl::ZeroDuration()) {
      return Finish(ctx, absl::InvalidArgumentError("older_than must not be negative"));
    }
    rule.finished_before = now - age;
  }
  if (rule.empty()) {
    return Finish(ctx, absl::InvalidArgumentError("give older_than or keep (or both): which jobs to prune"));
  }
  auto pruned = coordinator_->Prune(rule, limits::kMaxPruneJobs + 1, req->dry_run());
  if (!pruned.ok()) return Finish(ctx, pruned.status());
  resp->set_more(pruned->size() > limits::kMaxPruneJobs);
  for (const JobRecord& job : *pruned) {
    if (resp->jobs_size() == static_cast<int>(limits::kMaxPruneJobs)) break;
    *resp->add_jobs() = BuildSummary(job, now);
  }
  if (!req->dry_run() && resp->jobs_size() > 0) {
    spdlog::info("{} finished jobs pruned at the request of {}", resp->jobs_size(), ctx->peer());
  }
  return Finish(ctx, absl::OkStatus());
}

grpc::ServerUnaryReactor* CoordinatorServiceImpl::DrainWorker(grpc::CallbackServerContext* ctx,
                                                              const v1::DrainWorkerRequest* req,
                                                              v1::DrainWorkerResponse* resp) {
  if (auto st = gate_->Check(ctx, Role::kClient, "DrainWorker"); !st.ok()) return Finish(ctx, st);
  auto result = coordinator_->Drain(req->name());
  if (!result.ok()) return Finish(ctx, result.status());
  resp->set_state(*result);
  LogFields fields({{"worker", req->name()}});
  spdlog::info("worker {} draining at the request of {}", req->name(), ctx->peer());
  return Finish(ctx, absl::OkStatus());
}

grpc::ServerBidiReactor<v1::WorkerMessage, v1::CoordinatorMessage>* WorkerServiceImpl::Attach(
    grpc::CallbackServerContext* ctx) {
  if (auto st = gate_->Check(ctx, Role::kWorker, "Attach"); !st.ok()) {
    admission_->tally()->Add(PeerTally::kWorkersRefused);
    return new RefusedAttach(st);
  }
  if (auto st = admission_->AdmitSession(); !st.ok()) return new RefusedAttach(st);
  return new AttachReactor(ctx, coordinator_, admission_);
}

absl::Status PeerAdmission::Admit(std::atomic<uint32_t>& count, uint32_t max, absl::string_view what,
                                  absl::string_view flag) {
  if (count.fetch_add(1) < max) return absl::OkStatus();
  count.fetch_sub(1);
  tally_->Add(&count == &sessions_ ? PeerTally::kSessionsRefused : PeerTally::kWatchesRefused);
  absl::Status st = absl::ResourceExhaustedError(absl::StrCat("too many ", what, ": the limit is ", max, " (", flag, ")"));
  uint64_t suppressed = 0;
  if (log_limit_.Allow(&suppressed)) {
    spdlog::warn("refused: {}{} (counted in busyfleet_peer_refusals_total)", st.message(),
                 suppressed > 0 ? fmt::format(" ({} more refusals not logged)", suppressed) : "");
  }
  return st;
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
