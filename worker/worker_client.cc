#include "worker/worker_client.h"

#include <algorithm>
#include <utility>

#include <spdlog/spdlog.h>

#include "busyfleet/assign_range.h"
#include "busyfleet/packed_results.h"
#include "busyfleet/proto_time.h"
#include "common/logging.h"

#include "absl/random/random.h"
#include "absl/strings/str_format.h"
#include "absl/types/span.h"
#include "common/clock.h"
#include "common/rpc/grpc_status.h"
#include "common/rpc/keepalive.h"

namespace busyfleet::worker {
namespace {

std::string NewInstanceId() {
  absl::BitGen gen;
  return absl::StrFormat("%016x", absl::Uniform<uint64_t>(gen));
}

// A clock sample older than this is replaced even by one with a longer
// round trip, so the estimate follows drift.
constexpr int64_t kOffsetMaxAgeNs = 30'000'000'000;

// Results held while the coordinator is unreachable.
constexpr size_t kMaxHeldResults = 100'000;

// A start notice waits this long for its task's result, so a short task
// costs one message, not two.
constexpr absl::Duration kStartedNoticeDelay = absl::Milliseconds(1);
// Bounds on the heartbeat interval a coordinator may ask for.
constexpr absl::Duration kMinHeartbeatInterval = absl::Milliseconds(1);
constexpr absl::Duration kMaxHeartbeatInterval = absl::Hours(1);

// Results written while the stream has delivered nothing for longer than
// this are kept until they are known to have arrived (see AfterWriteLocked).
constexpr int64_t kStreamFreshNs = 100'000'000;

// Drain waits look at the monotonic clock at least this often.
constexpr absl::Duration kDrainSlice = absl::Milliseconds(100);

// Drops the oldest results beyond kMaxHeldResults.
void TrimHeld(std::vector<v1::TaskResult>& held) {
  if (held.size() > kMaxHeldResults) held.erase(held.begin(), held.end() - kMaxHeldResults);
}

}  // namespace

WorkerClient::WorkerClient(Options options)
    : options_(std::move(options)),
      clock_(options_.clock != nullptr ? options_.clock : Clock::Real()),
      ticker_wake_(clock_),
      instance_id_(NewInstanceId()) {}

absl::StatusOr<std::unique_ptr<WorkerClient>> WorkerClient::Start(Options options) {
  if (options.slots < 1) {
    return absl::InvalidArgumentError(absl::StrFormat("slots must be at least 1, got %d", options.slots));
  }
  if (options.name.empty()) return absl::InvalidArgumentError("name must not be empty");
  std::unique_ptr<WorkerClient> c(new WorkerClient(std::move(options)));
  c->NewChannel();
  WorkerClient* raw = c.get();
  Executor::Options executor_options;
  executor_options.slots = c->options_.slots;
  executor_options.default_exec = c->options_.default_exec;
  executor_options.slot_cpus = c->options_.slot_cpus;
  c->executor_ = std::make_unique<Executor>(
      executor_options,
      [raw](const v1::TaskStarted& s) { raw->OnStarted(s); },
      [raw](v1::TaskResult r) { raw->OnFinished(std::move(r)); },
      [raw](Executor::RunResults r) { raw->OnFinishedRun(std::move(r)); });
  c->loop_ = std::thread([raw] { raw->RunLoop(); });
  return c;
}

void WorkerClient::NewChannel() {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, static_cast<int>(absl::ToInt64Milliseconds(kKeepaliveTime)));
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS,
              static_cast<int>(absl::ToInt64Milliseconds(kKeepaliveTimeout)));
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  // Our own loop paces the retries (RunLoop). A channel of its own
  // subchannels (not shared through gRPC's global pool) starts with no
  // reconnect backoff, so gRPC's backoff (up to 120 s by default) does not
  // stack on ours: each attempt of ours really dials.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS,
              static_cast<int>(absl::ToInt64Milliseconds(options_.backoff_max)));
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS,
              static_cast<int>(absl::ToInt64Milliseconds(options_.backoff_initial)));
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS,
              static_cast<int>(absl::ToInt64Milliseconds(options_.backoff_initial)));
  args.SetMaxReceiveMessageSize(kMaxMessageBytes);
  args.SetMaxSendMessageSize(kMaxMessageBytes);
  options_.security.Apply(args);
  auto creds = options_.security.credentials ? options_.security.credentials : grpc::InsecureChannelCredentials();
  channel_ = grpc::CreateCustomChannel(options_.coordinator, creds, args);
  stub_ = v1::WorkerService::NewStub(channel_);
}

WorkerClient::~WorkerClient() { Stop(); }

void WorkerClient::OnStarted(const v1::TaskStarted& started) {
  absl::MutexLock lock(&mu_);
  if (!connected_) return;  // the result tells the next session
  if (started_out_.empty()) started_since_ = clock_->Mono();
  started_out_.push_back(started);
}

void WorkerClient::TakeUpdatesLocked(v1::TaskUpdates* updates) {
  for (v1::TaskStarted& s : started_out_) *updates->add_started() = std::move(s);
  for (v1::PackedResults& p : packed_out_) {
    if (!packed_constants_) ExpandConstants(p);  // an older coordinator reads full columns only
    *updates->add_packed() = std::move(p);
  }
  packed_out_.clear();
  if (packed_results_) {
    // Plain results as columns: a few bytes a task instead of ~100.
    ResultPacker packer(updates, executor_->bound_cpus());
    for (v1::TaskResult& r : results_out_) packer.Add(std::move(r));
  } else {
    for (v1::TaskResult& r : results_out_) *updates->add_results() = std::move(r);
  }
  started_out_.clear();
  results_out_.clear();
}

void WorkerClient::OnFinished(v1::TaskResult result) {
  if (result.state() == v1::TASK_STATE_FAILED) {
    LogFields fields({{"job_id", result.task().job_id()},
                      {"task", absl::StrCat(result.task().task_index())},
                      {"attempt", absl::StrCat(result.task().attempt())}});
    spdlog::warn("task {} of job {} (attempt {}) failed: {}", result.task().task_index(), result.task().job_id(),
                 result.task().attempt(), result.error());
  }
  absl::MutexLock lock(&mu_);
  ++tasks_finished_;
  switch (result.state()) {
    case v1::TASK_STATE_SUCCEEDED: ++figures_.succeeded; break;
    case v1::TASK_STATE_CANCELLED: ++figures_.cancelled; break;
    default: ++figures_.failed; break;
  }
  figures_.iterations += result.iterations_done();
  figures_.busy_seconds += static_cast<double>(result.end_mono_ns() - result.start_mono_ns()) / 1e9;
  figures_.cpu_seconds += static_cast<double>(result.cpu_ns()) / 1e9;
  // Its start notice, if not sent yet, says nothing the result does not:
  // drop it (a short task then costs the coordinator one entry, not two).
  // It is among the last few: one per slot at most follows it.
  const v1::TaskRef& done = result.task();
  const size_t look = std::min(started_out_.size(), static_cast<size_t>(options_.slots) + 1);
  for (size_t i = started_out_.size(); i > started_out_.size() - look; --i) {
    const v1::TaskRef& s = started_out_[i - 1].task();
    if (s.task_index() == done.task_index() && s.attempt() == done.attempt() && s.job_id() == done.job_id()) {
      started_out_.erase(started_out_.begin() + static_cast<ptrdiff_t>(i - 1));
      break;
    }
  }
  // Kept across a broken stream and sent after reattaching: the coordinator
  // has queued those tasks again already and records them as late
  // duplicates. Bounded, so a long outage cannot grow memory.
  results_out_.push_back(std::move(result));
  TrimHeld(results_out_);
  SendIfIdleLocked();
}

void WorkerClient::OnFinishedRun(Executor::RunResults run) {
  for (v1::TaskResult& r : run.others) OnFinished(std::move(r));
  v1::PackedResults& p = run.packed;
  const int n = p.index_delta_size();
  if (n == 0) return;
  absl::MutexLock lock(&mu_);
  tasks_finished_ += static_cast<uint64_t>(n);
  figures_.succeeded += static_cast<uint64_t>(n);
  uint64_t wall = 0;
  uint64_t cpu = 0;
  ForEachPackedEntry(p, [&](const PackedEntry& e) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    figures_.iterations += e.iterations_done;
    wall += static_cast<uint64_t>(e.end_mono_ns - e.start_mono_ns);
    cpu += static_cast<uint64_t>(e.cpu_ns);
  });
  figures_.busy_seconds += static_cast<double>(wall) / 1e9;
  figures_.cpu_seconds += static_cast<double>(cpu) / 1e9;
  packed_out_.push_back(std::move(p));
  // Kept as TaskResults unless this session's coordinator reads columns;
  // bounded like the rest of the outbox.
  if (!connected_ || !packed_results_) {
    UnpackOutboxLocked();
    TrimHeld(results_out_);
  }
  SendIfIdleLocked();
}

void WorkerClient::UnpackOutboxLocked() {
  std::vector<v1::TaskResult>* out = &results_out_;  // the lambda runs under mu_ too
  for (const v1::PackedResults& p : packed_out_) {
    ForEachPackedResult(p, [out](const v1::TaskResult& r) { out->push_back(r); });
  }
  packed_out_.clear();
}

void WorkerClient::SendIfIdleLocked() {
  // Nothing left to run here, and nobody writing: send it now rather than
  // wake the sender. With tasks queued, the sender batches instead (this
  // thread has the next task to run).
  if (!connected_ || writing_ || stream_ == nullptr || executor_->queued() > 0) return;
  v1::WorkerMessage message;
  TakeUpdatesLocked(message.mutable_updates());
  WriteLocked(stream_, absl::MakeSpan(&message, 1), /*writes_done=*/false);
}

void WorkerClient::AfterWriteLocked(v1::WorkerMessage& message, bool ok) {
  if (!message.has_updates() || (message.updates().results_size() == 0 && message.updates().packed_size() == 0)) {
    return;
  }
  // Written into a stream that has been silent a while (this process was
  // stopped, say): the coordinator may have closed it already, and a write
  // into a closed stream still succeeds here. Keep them until a heartbeat
  // sent after them is acknowledged, or send them again on the next session.
  const int64_t now = ok ? MonoNanosNow() : 0;
  if (ok && now - last_read_mono_ns_.load(std::memory_order_relaxed) <= kStreamFreshNs) return;
  UnpackInto(*message.mutable_updates());  // kept one TaskResult a task, as they came
  auto* results = message.mutable_updates()->mutable_results();
  if (ok) {
    unconfirmed_written_ns_ = now;
    unconfirmed_.insert(unconfirmed_.end(), std::make_move_iterator(results->begin()),
                        std::make_move_iterator(results->end()));
    TrimHeld(unconfirmed_);
    return;
  }
  // Not sent: back to the outbox, before the newer results there.
  results_out_.insert(results_out_.begin(), std::make_move_iterator(results->begin()),
                      std::make_move_iterator(results->end()));
  TrimHeld(results_out_);
}

void WorkerClient::RunLoop() {
  absl::Duration backoff = options_.backoff_initial;
  absl::BitGen gen;
  for (;;) {
    {
      absl::MutexLock lock(&mu_);
      if (stopping_ || draining_) break;
    }
    if (RunOnce()) {
      backoff = options_.backoff_initial;
    } else {
      NewChannel();  // a fresh channel dials at once (see NewChannel)
    }
    // Jitter spreads reconnecting workers so a restarted coordinator is not
    // hit by all of them at once.
    const absl::Duration wait = backoff * absl::Uniform(gen, 0.5, 1.0);
    backoff = std::min(backoff * 2, options_.backoff_max);
    absl::MutexLock lock(&mu_);
    if (stopping_ || draining_) break;
    spdlog::info("reconnecting to {} in {}", options_.coordinator, absl::FormatDuration(wait));
    auto stop = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_ || draining_; };
    mu_.AwaitWithTimeout(absl::Condition(&stop), wait);
  }
  stopped_.Notify();
}

bool WorkerClient::RunOnce() {
  grpc::ClientContext ctx;
  uint64_t generation = 0;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return false;
    context_ = &ctx;
    generation = ++generation_;
  }
  // Fail fast when the coordinator cannot be reached, so the reason is
  // logged; the loop retries with capped backoff (gRPC's own reconnect
  // backoff is capped at the same maximum).
  options_.security.Apply(ctx);
  std::unique_ptr<Stream> stream = stub_->Attach(&ctx);
  const bool welcomed = Serve(stream.get(), generation);
  // Tasks keep running through a lost session: the coordinator may only be
  // restarting. The next Hello lists them (held); it cancels those it has
  // given to another worker meanwhile.
  const grpc::Status status = stream->Finish();
  absl::MutexLock lock(&mu_);
  context_ = nullptr;
  if (!stopping_ && !draining_) LogSessionEnd(welcomed, status);
  return welcomed;
}

bool WorkerClient::Serve(Stream* stream, uint64_t generation) {
  const v1::WorkerMessage hello = MakeHello();
  const int64_t hello_sent = hello.hello().sent_mono_ns();
  v1::CoordinatorMessage in;
  if (!stream->Write(hello) || !stream->Read(&in) || !in.has_welcome()) return false;
  std::thread sender = BeginSession(in.welcome(), hello_sent, stream, generation);
  ReadLoop(stream);
  EndSession(sender);
  return true;
}

v1::WorkerMessage WorkerClient::MakeHello() const {
  v1::WorkerMessage message;
  v1::Hello* hello = message.mutable_hello();
  hello->set_name(options_.name);
  *hello->mutable_host() = options_.host;
  hello->set_slots(static_cast<uint32_t>(options_.slots));
  hello->mutable_labels()->insert(options_.labels.begin(), options_.labels.end());
  hello->set_default_exec(options_.default_exec);
  hello->add_exec_modes(v1::EXEC_MODE_THREAD);
  hello->add_exec_modes(v1::EXEC_MODE_PROCESS);
  for (v1::TaskKind kind : {v1::TASK_KIND_COUNTDOWN, v1::TASK_KIND_SPIN, v1::TASK_KIND_SLEEP}) hello->add_kinds(kind);
  if (!options_.python_version.empty()) {
    hello->add_kinds(v1::TASK_KIND_PYTHON);
    hello->set_python_version(options_.python_version);
  }
  hello->set_version("0.1.0");
  hello->set_instance_id(instance_id_);
  hello->set_accepts_ranges(true);
  for (v1::TaskRef& ref : executor_->Held()) *hello->add_held() = std::move(ref);
  {
    absl::MutexLock lock(&mu_);
    for (const v1::TaskResult& r : results_out_) *hello->add_held() = r.task();
    for (const v1::TaskResult& r : unconfirmed_) *hello->add_held() = r.task();
  }
  // The coordinator's limit (kMaxUpdatesPerMessage): the oldest results go
  // first; what is left out is queued again there, not counted.
  if (hello->held_size() > static_cast<int>(kMaxHeldResults)) {
    hello->mutable_held()->DeleteSubrange(static_cast<int>(kMaxHeldResults),
                                          hello->held_size() - static_cast<int>(kMaxHeldResults));
  }
  if (options_.monitor != nullptr) {
    for (v1::KernelCalibration& c : options_.monitor->Calibrations()) *hello->add_calibrations() = std::move(c);
  }
  hello->set_sent_mono_ns(MonoNanosNow());
  return message;
}

std::thread WorkerClient::BeginSession(const v1::Welcome& w, int64_t hello_sent, Stream* stream,
                                       uint64_t generation) {
  const int64_t now = MonoNanosNow();
  std::thread sender;
  {
    absl::MutexLock lock(&mu_);
    name_ = w.name();
    heartbeat_interval_ = ToAbslDuration(w.heartbeat_interval());
    if (heartbeat_interval_ <= absl::ZeroDuration()) heartbeat_interval_ = absl::Seconds(1);
    // First clock sample from the hello round trip.
    offset_rtt_ns_ = now - hello_sent;
    offset_ns_ = w.coordinator_unix_ns() - (hello_sent + now) / 2;
    offset_taken_mono_ns_ = now;
    offset_valid_ = true;
    packed_results_ = w.accepts_packed_results();
    packed_constants_ = w.accepts_packed_constants();
    connected_ = true;
    stream_ = stream;
    ++attach_count_;
    sender = std::thread([this, stream, generation] { SenderLoop(stream, generation); });
  }
  spdlog::info("attached to {} as {} (session {}, {} slots)", options_.coordinator, w.name(), w.session_id(),
               options_.slots);
  if (w.name() != options_.name) {
    spdlog::warn("another live worker is attached as {}: this one is known as {}; give each worker its own "
                 "--name",
                 options_.name, w.name());
  }
  return sender;
}

void WorkerClient::ReadLoop(Stream* stream) {
  v1::CoordinatorMessage in;
  while (stream->Read(&in)) {
    last_read_mono_ns_.store(MonoNanosNow(), std::memory_order_relaxed);
    switch (in.msg_case()) {
      case v1::CoordinatorMessage::kAssign:
        OnAssign(in.assign());
        break;
      case v1::CoordinatorMessage::kCancel:
        for (const v1::TaskRef& ref : in.cancel().tasks()) executor_->Cancel(ref);
        break;
      case v1::CoordinatorMessage::kHeartbeatAck:
        OnHeartbeatAck(in.heartbeat_ack());
        break;
      case v1::CoordinatorMessage::kGoingAway:
        spdlog::info("coordinator going away ({}): keeping {} running and {} queued tasks, attaching again",
                     in.going_away().reason(), executor_->running(), executor_->queued());
        break;
      case v1::CoordinatorMessage::kDrain: {
        spdlog::info("coordinator asked this worker to drain");
        absl::MutexLock lock(&mu_);
        ReturnLocked(executor_->TakeQueued());
        break;
      }
      default:
        break;
    }
  }
}

void WorkerClient::OnAssign(const v1::AssignBatch& assign) {
  {
    absl::MutexLock lock(&mu_);
    if (draining_ || assign.assignments_size() != 1 || assign.ranges_size() != 0) {
      for (const v1::Assignment& a : assign.assignments()) SubmitOrReturnLocked(a);
      v1::Assignment a;
      for (const v1::AssignRange& r : assign.ranges()) {
        if (r.count() > Executor::kMaxRangeTasks || r.first_index() > UINT32_MAX - r.count()) {
          spdlog::error("ignored an assignment range of job {}: tasks {} + {} (at most {} a range, indices below 2^32)",
                        r.job_id(), r.first_index(), r.count(), Executor::kMaxRangeTasks);
          continue;
        }
        if (!draining_) {
          executor_->SubmitRange(r);  // one queue entry, not one a task
          continue;
        }
        for (uint32_t i = 0; i < r.count(); ++i) {
          SetRangeTask(r, i, a);
          SubmitOrReturnLocked(a);
        }
      }
      return;
    }
  }
  // A lone tiny task runs here, on this thread, if a slot is idle (it takes
  // about as long as waking a slot thread would).
  if (executor_->TryRunInline(assign.assignments(0))) return;
  absl::MutexLock lock(&mu_);
  SubmitOrReturnLocked(assign.assignments(0));
}

void WorkerClient::SubmitOrReturnLocked(const v1::Assignment& a) {
  if (draining_) {
    // Raced with our drain notice: hand it straight back.
    ReturnLocked({a.task()});
  } else {
    executor_->Submit(a);
  }
}

void WorkerClient::ReturnLocked(std::vector<v1::TaskRef> tasks) {
  for (v1::TaskRef& ref : tasks) returned_out_.push_back(std::move(ref));
  drain_notice_pending_ = true;
}

void WorkerClient::OnHeartbeatAck(const v1::HeartbeatAck& ack) {
  const int64_t recv = MonoNanosNow();
  const int64_t rtt = recv - ack.echo_sent_mono_ns();
  absl::MutexLock lock(&mu_);
  if (ack.has_heartbeat_interval()) AdoptIntervalLocked(ToAbslDuration(ack.heartbeat_interval()));
  // The coordinator read that heartbeat, so everything written before it.
  if (ack.echo_sent_mono_ns() >= unconfirmed_written_ns_) unconfirmed_.clear();
  if (rtt >= 0 && (rtt <= offset_rtt_ns_ || recv - offset_taken_mono_ns_ > OffsetMaxAgeNsLocked())) {
    offset_rtt_ns_ = rtt;
    offset_ns_ = ack.coordinator_unix_ns() - (ack.echo_sent_mono_ns() + recv) / 2;
    offset_taken_mono_ns_ = recv;
  }
}

int64_t WorkerClient::OffsetMaxAgeNsLocked() const {
  // At a paced interval (10 s for 10,000 workers) 30 s would make every
  // other heartbeat ask for an ack: most of a large fleet's cost. Nine
  // heartbeats, about when every tenth asks for one anyway.
  return std::max(kOffsetMaxAgeNs, 18 * absl::ToInt64Nanoseconds(heartbeat_interval_));
}

void WorkerClient::AdoptIntervalLocked(absl::Duration interval) {
  // The coordinator paces a large fleet (--max-heartbeat-rate); the next
  // heartbeat after the one already scheduled comes at the new interval.
  interval = std::clamp(interval, kMinHeartbeatInterval, kMaxHeartbeatInterval);
  if (interval == heartbeat_interval_) return;
  spdlog::debug("the coordinator asks for a heartbeat every {} (was {})", absl::FormatDuration(interval),
                absl::FormatDuration(heartbeat_interval_));
  heartbeat_interval_ = interval;
}

void WorkerClient::EndSession(std::thread& sender) {
  {
    absl::MutexLock lock(&mu_);
    connected_ = false;
    stream_ = nullptr;
    started_out_.clear();
    returned_out_.clear();
    drain_notice_pending_ = false;
    // A slot thread may be writing its result: the stream must outlive it.
    auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !writing_; };
    mu_.Await(absl::Condition(&idle));
  }
  sender.join();
  // Nobody writes now. Results the coordinator may not have read go again
  // next session, before the ones not sent yet.
  absl::MutexLock lock(&mu_);
  UnpackOutboxLocked();
  results_out_.insert(results_out_.begin(), std::make_move_iterator(unconfirmed_.begin()),
                      std::make_move_iterator(unconfirmed_.end()));
  unconfirmed_.clear();
  TrimHeld(results_out_);
}

void WorkerClient::LogSessionEnd(bool welcomed, const grpc::Status& status) const {
  if (welcomed) {
    spdlog::warn("lost the coordinator at {}: {}", options_.coordinator,
                 status.ok() ? "stream closed" : status.error_message());
  } else {
    spdlog::warn("cannot attach to {}: {}: {}", options_.coordinator,
                 absl::StatusCodeToString(FromGrpcStatus(status).code()), status.error_message());
  }
}

void WorkerClient::SenderLoop(Stream* stream, uint64_t generation) {
  {
    absl::MutexLock lock(&mu_);
    ticker_stop_ = false;
    woken_by_clock_ = false;
    wake_at_ = MonoTime::InfiniteFuture();
  }
  std::thread ticker([this] { TickerLoop(); });
  {
    absl::MutexLock lock(&mu_);
    SendLocked(stream, generation);
    ticker_stop_ = true;
  }
  ticker_wake_.Wake();
  ticker.join();
}

void WorkerClient::TickerLoop() {
  absl::MutexLock lock(&mu_);
  while (!ticker_stop_) {
    const MonoTime due = wake_at_;
    mu_.Unlock();
    const bool woken = ticker_wake_.WaitUntil(due);
    mu_.Lock();
    // Setting the flag under mu_ makes the sender's Await look again.
    if (!woken && clock_->Mono() >= wake_at_) woken_by_clock_ = true;
  }
}

void WorkerClient::SendLocked(Stream* stream, uint64_t generation) {
  uint64_t seq = 0;
  MonoTime next_heartbeat = clock_->Mono();  // at once: carries the clock offset
  for (;;) {
    if (!AwaitTurnLocked(generation, next_heartbeat)) return;
    const MonoTime now = clock_->Mono();
    std::vector<v1::WorkerMessage> batch;
    if (now >= next_heartbeat) {
      *batch.emplace_back().mutable_heartbeat() = HeartbeatLocked(++seq);
      // The first few come quickly, to settle the clock offset estimate
      // (smallest round trip wins) before results arrive.
      next_heartbeat = clock_->Mono() + (seq < 4 ? std::min(heartbeat_interval_, absl::Milliseconds(20))
                                               : heartbeat_interval_);
    }
    if (OutboxHasResultsLocked() || (!started_out_.empty() && now >= started_since_ + kStartedNoticeDelay)) {
      TakeUpdatesLocked(batch.emplace_back().mutable_updates());
    }
    if (drain_notice_pending_) *batch.emplace_back().mutable_drain() = TakeDrainNoticeLocked();
    const bool close =
        close_when_idle_ && batch.empty() && executor_->running() == 0 && executor_->queued() == 0;
    if (batch.empty() && !close) continue;
    if (!WriteLocked(stream, absl::MakeSpan(batch), close) || close) return;
  }
}

bool WorkerClient::AwaitTurnLocked(uint64_t generation, MonoTime next_heartbeat) {
  auto gone = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !connected_ || generation_ != generation; };
  auto ready = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return gone() || (!writing_ && (OutboxHasResultsLocked() || drain_notice_pending_ || close_when_idle_));
  };
  auto ready_or_due = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return woken_by_clock_ || ready(); };
  auto can_write = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return gone() || !writing_; };
  for (;;) {
    // Start notices alone wait a little (their result usually follows).
    MonoTime wake = next_heartbeat;
    if (!started_out_.empty()) wake = std::min(wake, started_since_ + kStartedNoticeDelay);
    if (clock_->Mono() < wake) {
      // The ticker wakes us at `wake` on the monotonic clock.
      woken_by_clock_ = false;
      wake_at_ = wake;
      ticker_wake_.Wake();
      mu_.Await(absl::Condition(&ready_or_due));
      wake_at_ = MonoTime::InfiniteFuture();
    }
    if (gone()) return false;
    if (!writing_) return true;
    // Woken by the clock while a slot thread writes.
    mu_.Await(absl::Condition(&can_write));
  }
}

v1::Heartbeat WorkerClient::HeartbeatLocked(uint64_t seq) const {
  v1::Heartbeat hb;
  hb.set_seq(seq);
  hb.set_sent_mono_ns(MonoNanosNow());
  hb.set_sent_unix_ns(absl::ToUnixNanos(ReportedWallNow()));
  hb.set_clock_offset_valid(offset_valid_);
  hb.set_clock_offset_ns(offset_ns_);
  hb.set_clock_rtt_ns(offset_rtt_ns_);
  *hb.mutable_heartbeat_interval() = ToProtoDuration(heartbeat_interval_);
  // Round trips refine the clock offset: ask for one while settling, then
  // every tenth heartbeat (or when the estimate is getting old).
  // An ack also confirms results written into a silent stream.
  if (options_.monitor != nullptr) {
    for (v1::KernelCalibration& c : options_.monitor->TakeNewCalibrations()) *hb.add_calibrations() = std::move(c);
    if (std::optional<v1::HostNoise> noise = options_.monitor->TakeNewNoise()) *hb.mutable_noise() = *std::move(noise);
  }
  hb.set_no_ack(seq > 4 && seq % 10 != 0 && offset_valid_ && unconfirmed_.empty() &&
                MonoNanosNow() - offset_taken_mono_ns_ < OffsetMaxAgeNsLocked() / 2);
  return hb;
}

v1::DrainNotice WorkerClient::TakeDrainNoticeLocked() {
  v1::DrainNotice notice;
  for (v1::TaskRef& r : returned_out_) *notice.add_returned() = std::move(r);
  returned_out_.clear();
  drain_notice_pending_ = false;
  return notice;
}

bool WorkerClient::WriteLocked(Stream* stream, absl::Span<v1::WorkerMessage> messages, bool writes_done) {
  writing_ = true;
  mu_.Unlock();
  size_t sent = 0;
  for (v1::WorkerMessage& m : messages) {
    // A heartbeat counts what the executor has as it goes out.
    if (m.has_heartbeat()) {
      m.mutable_heartbeat()->set_running(static_cast<uint32_t>(executor_->running()));
      m.mutable_heartbeat()->set_queued(static_cast<uint32_t>(executor_->queued()));
    }
    if (!stream->Write(m)) break;
    ++sent;
  }
  const bool ok = sent == messages.size();
  if (ok && writes_done) stream->WritesDone();
  mu_.Lock();
  writing_ = false;
  for (size_t i = 0; i < messages.size(); ++i) AfterWriteLocked(messages[i], i < sent);
  return ok;
}

bool WorkerClient::Drain(absl::Duration limit) {
  const MonoTime deadline = clock_->Mono() + limit;
  // Waits in slices checked against the monotonic deadline: absl's own
  // timeouts follow the wall clock, and a step forward must not end the
  // drain early.
  auto slice = [&] { return absl::Now() + std::min(deadline - clock_->Mono(), kDrainSlice); };
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return true;
    draining_ = true;
    // Not attached: nothing to drain; stop trying to attach.
    if (!connected_ && context_ != nullptr) context_->TryCancel();
    if (connected_) {
      ReturnLocked(executor_->TakeQueued());
    } else {
      executor_->TakeQueued();
    }
  }
  bool idle = false;
  while (!(idle = executor_->WaitIdle(slice())) && clock_->Mono() < deadline) {
  }
  {
    absl::MutexLock lock(&mu_);
    close_when_idle_ = true;
  }
  // The sender closes our side once everything is reported; the coordinator
  // then ends the stream and the loop returns.
  bool closed = false;
  while (idle && !(closed = stopped_.WaitForNotificationWithDeadline(slice())) && clock_->Mono() < deadline) {
  }
  Stop();
  return closed;
}

void WorkerClient::Stop() {
  {
    absl::MutexLock lock(&mu_);
    if (!stopping_) {
      stopping_ = true;
      if (context_ != nullptr) context_->TryCancel();
    }
  }
  if (loop_.joinable()) loop_.join();
  executor_->Stop();
}

bool WorkerClient::WaitAttached(absl::Time deadline) const {
  absl::MutexLock lock(&mu_);
  auto attached = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return connected_; };
  return mu_.AwaitWithDeadline(absl::Condition(&attached), deadline);
}

bool WorkerClient::WaitAttachCount(int n, absl::Time deadline) const {
  absl::MutexLock lock(&mu_);
  auto reached = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return attach_count_ >= n && connected_; };
  return mu_.AwaitWithDeadline(absl::Condition(&reached), deadline);
}

bool WorkerClient::WaitHeartbeatInterval(absl::Duration interval, absl::Time deadline) const {
  absl::MutexLock lock(&mu_);
  auto reached = [this, interval]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return heartbeat_interval_ == interval; };
  return mu_.AwaitWithDeadline(absl::Condition(&reached), deadline);
}

absl::Duration WorkerClient::heartbeat_interval() const {
  absl::MutexLock lock(&mu_);
  return heartbeat_interval_;
}

std::string WorkerClient::name() const {
  absl::MutexLock lock(&mu_);
  return name_;
}

bool WorkerClient::attached() const {
  absl::MutexLock lock(&mu_);
  return connected_;
}

bool WorkerClient::Idle() const { return executor_->running() == 0 && executor_->queued() == 0; }

WorkerClient::Figures WorkerClient::figures() const {
  absl::MutexLock lock(&mu_);
  return figures_;
}

uint64_t WorkerClient::tasks_finished() const {
  absl::MutexLock lock(&mu_);
  return tasks_finished_;
}

int WorkerClient::attach_count() const {
  absl::MutexLock lock(&mu_);
  return attach_count_;
}

}  // namespace busyfleet::worker
