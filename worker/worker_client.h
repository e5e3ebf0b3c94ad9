#ifndef BUSYFLEET_WORKER_WORKER_CLIENT_H_
#define BUSYFLEET_WORKER_WORKER_CLIENT_H_

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "busyfleet/v1/worker.grpc.pb.h"
#include "common/clock.h"
#include "common/rpc/client_security.h"
#include "worker/executor.h"
#include "worker/host_monitor.h"

namespace busyfleet::worker {

// A worker's session with the coordinator: dials out, attaches, runs the
// tasks it is given and reports them, and reconnects with capped
// exponential backoff when the coordinator goes away. Tasks keep running
// while the coordinator is away; their results are kept and reported to
// the next session, whose Hello lists them (Hello.held).
//
// Threads: one reads the stream; one writes it (results, batched, and
// heartbeats on their own schedule — slots busy at 100% never delay them);
// one per slot runs tasks (the Executor). A slot thread that finishes the
// last task there is to run sends its result itself when the writer is
// idle: a waiting client should not pay for a thread hand-off.
class WorkerClient {
 public:
  struct Options {
    std::string coordinator = "127.0.0.1:7070";
    std::string name;
    int slots = 1;
    std::map<std::string, std::string> labels;
    v1::ExecMode default_exec = v1::EXEC_MODE_THREAD;
    // The CPUs each slot is pinned to (Executor::Options::slot_cpus);
    // empty: slots float.
    std::vector<std::vector<int>> slot_cpus;
    v1::HostInfo host;
    // The embedded CPython's version when this worker offers the python
    // kind (InitPythonKernel succeeded); "": it does not.
    std::string python_version;
    absl::Duration backoff_initial = absl::Milliseconds(100);
    // Our reconnect backoff (with jitter: each wait is 0.5-1x the current
    // one). Capped near 1 s so a worker attaches again within about a
    // second of the coordinator's return, however long it was away.
    absl::Duration backoff_max = absl::Seconds(1);
    // Token and TLS; default: none (insecure, no token).
    ClientSecurity security;
    // Schedules heartbeats and start notices on its monotonic clock;
    // nullptr: the real clock (tests pass a FakeClock). Wire times stay on
    // the real clocks (MonoNanosNow, ReportedWallNow).
    const Clock* clock = nullptr;
    // Calibrations (in the hello and, when new, in heartbeats) and the
    // host's load (in heartbeats); nullptr: none sent. Must outlive the client.
    HostMonitor* monitor = nullptr;
  };

  // Starts the session in the background (it keeps trying to attach).
  // InvalidArgument for bad options.
  static absl::StatusOr<std::unique_ptr<WorkerClient>> Start(Options options);
  ~WorkerClient();

  // Takes no new tasks, hands the unstarted ones back, lets running ones
  // finish and reports them, then closes the stream and stops. True if all
  // of that happened within `limit` on the monotonic clock (else running
  // tasks are cancelled); InfiniteDuration: no limit.
  bool Drain(absl::Duration limit);
  // Cancels everything and closes at once. Idempotent.
  void Stop();

  // True once attached (Welcome received) before `deadline`.
  bool WaitAttached(absl::Time deadline) const;
  // True once the worker has attached `n` times (first attach plus
  // reconnections) before `deadline`.
  bool WaitAttachCount(int n, absl::Time deadline) const;
  // The interval it heartbeats at: the welcome's, then the coordinator's
  // latest HeartbeatAck.heartbeat_interval. Waits until it is `interval`;
  // false at the deadline.
  bool WaitHeartbeatInterval(absl::Duration interval, absl::Time deadline) const;
  absl::Duration heartbeat_interval() const;
  // The name the coordinator knows this worker by ("" before attaching).
  std::string name() const;
  bool attached() const;
  // Tasks finished (any outcome) since start.
  uint64_t tasks_finished() const;
  // What this worker did since start, for its own log.
  struct Figures {
    uint64_t succeeded = 0;
    uint64_t failed = 0;
    uint64_t cancelled = 0;
    uint64_t iterations = 0;
    double busy_seconds = 0;  // summed task wall time
    double cpu_seconds = 0;
  };
  Figures figures() const;
  // Nothing queued or running here.
  bool Idle() const;
  // Successful attaches so far (1 + reconnections).
  int attach_count() const;
  // Waits until no task is queued or running here; false at the deadline.
  bool WaitIdle(absl::Time deadline) const { return executor_->WaitIdle(deadline); }

 private:
  using Stream = grpc::ClientReaderWriter<v1::WorkerMessage, v1::CoordinatorMessage>;

  explicit WorkerClient(Options options);
  // A new channel and stub (Start, and after each failed attempt).
  void NewChannel();
  // Attaches, serves, waits out the backoff, again, until stopped or drained.
  void RunLoop();
  // One connection: attach, serve until the stream ends. Returns whether the
  // coordinator ever welcomed us (to reset the backoff).
  bool RunOnce();

  // --- One session, on the reader thread --------------------------------
  // Hello, welcome, then the session until the stream ends. False if the
  // coordinator did not welcome us.
  bool Serve(Stream* stream, uint64_t generation);
  v1::WorkerMessage MakeHello() const;
  // Takes in the welcome (name, heartbeat interval, the first clock sample
  // from the hello's round trip), marks the session connected and starts
  // its sender thread.
  std::thread BeginSession(const v1::Welcome& welcome, int64_t hello_sent, Stream* stream,
                           uint64_t generation);
  // Acts on each message from the coordinator until the stream ends.
  void ReadLoop(Stream* stream);
  void OnAssign(const v1::AssignBatch& assign);
  void OnHeartbeatAck(const v1::HeartbeatAck& ack);
  // Heartbeats every `interval` (bounded) from the next one scheduled on.
  void AdoptIntervalLocked(absl::Duration interval) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // How old the clock offset estimate may grow (a sample older than this
  // is replaced even by a slower one; at half of it heartbeats ask for an
  // ack): 30 s, or 18 heartbeats at a paced interval.
  int64_t OffsetMaxAgeNsLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Queues `a`, or hands it straight back once draining.
  void SubmitOrReturnLocked(const v1::Assignment& a) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Hands `tasks` back with the next drain notice (sent even with none).
  void ReturnLocked(std::vector<v1::TaskRef> tasks) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Marks the session over, waits for its writers (joins `sender`), and
  // keeps the results the coordinator may not have read for the next one.
  void EndSession(std::thread& sender);
  void LogSessionEnd(bool welcomed, const grpc::Status& status) const;

  // --- Writing, on the sender thread (or a slot thread, see OnFinished) ---
  // Runs the ticker beside SendLocked for the session.
  void SenderLoop(Stream* stream, uint64_t generation);
  void SendLocked(Stream* stream, uint64_t generation) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Waits until a heartbeat, start notice, result, drain notice or close is
  // due and nobody else is writing. False once session `generation` is over.
  bool AwaitTurnLocked(uint64_t generation, MonoTime next_heartbeat) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The sender's alarm clock: sleeps on the monotonic clock until wake_at_
  // and then sets woken_by_clock_. (absl's timed waits, in this Abseil,
  // sleep to a wall-clock deadline: a step back would hold heartbeats back
  // by the step and the coordinator would declare this worker dead.)
  void TickerLoop();
  // Heartbeat number `seq` with the clock offset estimate (running and
  // queued are filled in as it is written).
  v1::Heartbeat HeartbeatLocked(uint64_t seq) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  v1::DrainNotice TakeDrainNoticeLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Writes `messages` in order with mu_ released (writing_ keeps the other
  // writers off the stream), then WritesDone if asked and all went out;
  // AfterWriteLocked for each. True if all were written.
  bool WriteLocked(Stream* stream, absl::Span<v1::WorkerMessage> messages, bool writes_done)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  void OnStarted(const v1::TaskStarted& started);
  void OnFinished(v1::TaskResult result);
  // A run's results: the packed group joins packed_out_ while this session
  // takes packed results; otherwise each goes as a TaskResult.
  void OnFinishedRun(Executor::RunResults run);
  // Sends the outbox now when nothing is queued here and nobody writes
  // (the finishing slot thread has nothing else to do).
  void SendIfIdleLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Moves packed_out_'s entries into results_out_ as TaskResults.
  void UnpackOutboxLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool OutboxHasResultsLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return !results_out_.empty() || !packed_out_.empty();
  }
  // Moves the outbox's start notices and results into `updates`.
  void TakeUpdatesLocked(v1::TaskUpdates* updates) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // After writing `message` (ok: the write succeeded): results that could
  // not be sent go back to the front of the outbox; results written into a
  // stream silent for a while are kept in unconfirmed_.
  void AfterWriteLocked(v1::WorkerMessage& message, bool ok) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Options options_;
  const Clock* const clock_;
  // The ticker sleeps here; woken when wake_at_ changes or the ticker stops.
  MonoWaiter ticker_wake_;
  const std::string instance_id_;
  // Replaced only by the RunLoop thread (NewChannel), which alone uses them.
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::WorkerService::Stub> stub_;
  std::unique_ptr<Executor> executor_;

  mutable absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool draining_ ABSL_GUARDED_BY(mu_) = false;
  // The coordinator may close the stream once everything is reported.
  bool close_when_idle_ ABSL_GUARDED_BY(mu_) = false;
  bool connected_ ABSL_GUARDED_BY(mu_) = false;
  // This session's coordinator reads packed results (Welcome.accepts_packed_results).
  bool packed_results_ ABSL_GUARDED_BY(mu_) = false;
  // It also reads their constant columns (Welcome.accepts_packed_constants);
  // else packed groups are written out in full before they are sent.
  bool packed_constants_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t generation_ ABSL_GUARDED_BY(mu_) = 0;
  grpc::ClientContext* context_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::string name_ ABSL_GUARDED_BY(mu_);
  absl::Duration heartbeat_interval_ ABSL_GUARDED_BY(mu_) = absl::Seconds(1);
  // The open stream while connected_ (for writes from a slot thread).
  Stream* stream_ ABSL_GUARDED_BY(mu_) = nullptr;
  // When the reader last got a message (monotonic ns).
  std::atomic<int64_t> last_read_mono_ns_{0};
  // A thread is writing to stream_ (one at a time: the sender, or a slot
  // thread sending its own result).
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  // Outbox, flushed by the sender thread, or by the slot thread that
  // finished the last task there was to run (see OnFinished).
  std::vector<v1::TaskStarted> started_out_ ABSL_GUARDED_BY(mu_);
  // When the oldest unsent start notice was queued (monotonic).
  MonoTime started_since_ ABSL_GUARDED_BY(mu_);
  // The sender's alarm (TickerLoop): when it wants waking, whether the
  // alarm went off, and the ticker's end with the session's sender.
  MonoTime wake_at_ ABSL_GUARDED_BY(mu_) = MonoTime::InfiniteFuture();
  bool woken_by_clock_ ABSL_GUARDED_BY(mu_) = false;
  bool ticker_stop_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<v1::TaskResult> results_out_ ABSL_GUARDED_BY(mu_);
  // Runs' plain results as the executor packed them (issue 17). Only while
  // connected to a coordinator that takes them: OnFinishedRun unpacks into
  // results_out_ otherwise, and EndSession before the next Hello. Sent
  // before results_out_.
  std::vector<v1::PackedResults> packed_out_ ABSL_GUARDED_BY(mu_);
  // Results written while the stream was silent, until a heartbeat sent
  // after the newest of them is acknowledged (see AfterWriteLocked); sent
  // again if the stream breaks first.
  std::vector<v1::TaskResult> unconfirmed_ ABSL_GUARDED_BY(mu_);
  int64_t unconfirmed_written_ns_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<v1::TaskRef> returned_out_ ABSL_GUARDED_BY(mu_);
  bool drain_notice_pending_ ABSL_GUARDED_BY(mu_) = false;
  // Clock offset estimate: coordinator Unix ns - worker monotonic ns.
  bool offset_valid_ ABSL_GUARDED_BY(mu_) = false;
  int64_t offset_ns_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t offset_rtt_ns_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t offset_taken_mono_ns_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t tasks_finished_ ABSL_GUARDED_BY(mu_) = 0;
  Figures figures_ ABSL_GUARDED_BY(mu_);
  int attach_count_ ABSL_GUARDED_BY(mu_) = 0;

  absl::Notification stopped_;  // RunLoop has returned
  std::thread loop_;
};

}  // namespace busyfleet::worker

#endif  // BUSYFLEET_WORKER_WORKER_CLIENT_H_
