#ifndef BUSYFLEET_COORDINATOR_CORE_COORDINATOR_H_
#define BUSYFLEET_COORDINATOR_CORE_COORDINATOR_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/random/random.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "busyfleet/v1/coordinator.pb.h"
#include "busyfleet/v1/worker.pb.h"
#include "common/clock.h"
#include "coordinator/core/job_model.h"
#include "coordinator/core/limits.h"
#include "coordinator/core/metrics.h"
#include "coordinator/core/progress_watchers.h"
#include "coordinator/core/scheduler.h"
#include "coordinator/core/session_table.h"
#include "coordinator/core/timing_aggregator.h"
#include "coordinator/store/job_store.h"

namespace busyfleet::coordinator {

// While a speculative job runs, backups are looked for at least this often.
inline constexpr absl::Duration kSpeculationRecheck = absl::Milliseconds(100);

// The coordinator's domain logic: jobs, tasks, attached workers, results,
// reports. Thread-safe; no sockets (the gRPC services are thin adapters over
// it). Time comes from the injected clock: its monotonic clock decides
// (liveness, speculation, progress rate limits), its wall clock only stamps
// what users read (submitted, started, finished, task times), so a step of
// the wall clock changes no decision.
class Coordinator {
 public:
  struct Options {
    // Silence after which a worker is declared dead and its tasks requeued.
    absl::Duration worker_timeout = absl::Seconds(5);
    // How often workers send heartbeats; zero: worker_timeout / 3.
    absl::Duration heartbeat_interval = absl::ZeroDuration();
    // Heartbeats a second over the whole fleet (--max-heartbeat-rate; 0: no
    // ceiling). A fleet larger than this x heartbeat_interval is asked for
    // heartbeats less often, and worker_timeout grows in proportion
    // (HeartbeatPacing in session_table.h).
    double max_heartbeat_rate = kDefaultMaxHeartbeatRate;
    int prefetch_per_worker = 2;
    // nullptr: the real clock.
    const Clock* clock = nullptr;
    // Required; not owned.
    JobStore* store = nullptr;
    // Workers that left, kept for `coordctl workers`.
    size_t keep_gone_workers = 64;
    // Finished jobs kept in memory: at most this many, holding at most
    // keep_finished_tasks task rows together (the newest is always kept,
    // however big). Older ones are read back from the store on demand; an
    // in-memory store drops them (JobStore::TakeEvicted).
    size_t keep_finished_jobs = 256;
    uint64_t keep_finished_tasks = 500'000;
    // Progress updates to a watcher: bursts of up to progress_burst go at
    // once, then one per interval (the newest; the final one always at
    // once), so a job of tiny tasks does not send a message per task while
    // a few changes still arrive without delay. Zero interval: every change.
    absl::Duration progress_interval = absl::Milliseconds(100);
    double progress_burst = 20;
    // Tasks queued or running over all jobs; a submit that would pass it is
    // refused with ResourceExhausted instead of growing memory.
    uint64_t max_unfinished_tasks = limits::kMaxQueuedTasks;
    // Called (with the Coordinator's lock held; must not block or call back)
    // when a worker attaches whose liveness deadline comes before the next
    // check CheckLiveness planned (the first worker: a liveness loop
    // sleeping with no worker attached wakes up), not for every attach.
    std::function<void()> on_worker_attached;
    // Called (lock held; must not block or call back) when a job ends, with
    // its report without task rows: for the log. Called when the job's rows
    // are queued to the store, after its watchers had their final update.
    std::function<void(const v1::JobReport&)> on_job_finished;
    // Called (lock held; must not block) when CheckLiveness is due earlier
    // than it last said (a held-back progress update).
    std::function<void()> request_check;
  };

  // Loads unfinished jobs from the store. Their queued tasks are queued
  // again; a task that was assigned or running on a named worker stays
  // held by that worker (by name) for worker_timeout: the worker, which
  // keeps running it while the coordinator is away, claims it back in its
  // Hello (`held`) and its result is accepted. What no worker claims in
  // time is queued again without counting an attempt (the restart is not
  // the task's fault). InvalidArgument for bad options; the store's error
  // if it fails.
  static absl::StatusOr<std::unique_ptr<Coordinator>> Create(Options options);

  // --- Client API ---

  // InvalidArgument for a bad spec (naming the field and limit),
  // FailedPrecondition for `tasks auto` with no worker, ResourceExhausted
  // when too many tasks are queued, Unavailable while shutting down.
  absl::StatusOr<v1::SubmitJobResponse> Submit(const v1::JobSpec& spec);
  // NotFound for an unknown job.
  absl::StatusOr<v1::JobReport> GetReport(absl::string_view job_id, const ReportOptions& options);
  absl::StatusOr<v1::JobReport> GetReport(absl::string_view job_id, bool include_tasks,
                                          bool include_attempts = false) {
    ReportOptions options;
    options.tasks = include_tasks;
    options.attempts = include_attempts;
    return GetReport(job_id, options);
  }
  // Newest first; `limit` 0 means the default. Reads job headers only (no
  // task rows), and the store without the lock. Unavailable when the store
  // cannot be read.
  absl::StatusOr<std::vector<v1::JobSummary>> ListJobs(uint32_t limit);
  // Returns the job's state after the call. NotFound for an unknown job,
  // FailedPrecondition if it has already ended.
  absl::StatusOr<v1::JobState> Cancel(absl::string_view job_id);
  std::vector<v1::WorkerInfo> ListWorkers(bool include_gone);
  // NotFound for a name no attached worker has.
  absl::StatusOr<v1::WorkerState> Drain(absl::string_view worker_name);
  // Removes a finished job from memory and the store (its report is gone).
  // NotFound for an unknown job, FailedPrecondition for one still running.
  absl::Status DeleteJob(absl::string_view job_id);
  // Removes the finished jobs `rule` selects, oldest first, at most `limit`
  // (as the store has them committed), and returns them (headers); with
  // `dry_run` only returns them. Retention calls it periodically.
  absl::StatusOr<std::vector<JobRecord>> Prune(const RetentionRule& rule, size_t limit, bool dry_run);
  // Calls `callback` with the current progress, then on every change until
  // the job ends. Returns a handle for Unwatch. NotFound for an unknown job.
  // For a finished job the callback gets only the final update. The first
  // update goes at once, or after `first_update_delay` (a job that ends
  // sooner sends only its final update).
  absl::StatusOr<uint64_t> Watch(absl::string_view job_id, bool include_tasks, ProgressCallback callback,
                                 absl::Duration first_update_delay = absl::ZeroDuration());
  // Stops calls to the callback; after it returns, none is in progress.
  void Unwatch(uint64_t handle);

  // --- Worker API ---

  // A worker attached: validates its Hello (InvalidArgument), registers it,
  // sends Welcome and its first tasks through `channel`. Returns the session
  // id. Unavailable while shutting down. The attempts in `hello.held` that
  // are held for this worker's name (after a restart) or were in flight on
  // its previous session (same instance_id) carry on here; the others are
  // cancelled on the worker, and attempts held for the name that it does
  // not list are queued again at once (not counted). A worker of another
  // instance whose namesake has missed two heartbeats takes the name over:
  // the old session is closed and its attempts end as lost.
  absl::StatusOr<std::string> Attach(const v1::Hello& hello, absl::string_view peer,
                                     std::shared_ptr<WorkerChannel> channel);
  // A message from an attached worker. InvalidArgument for a malformed
  // message (the adapter then closes the stream); NotFound for an unknown
  // session. Stale or duplicate results are recorded and ignored (OK).
  absl::Status HandleMessage(absl::string_view session, const v1::WorkerMessage& message);
  // The worker's stream ended. Its unfinished tasks are queued again with
  // the attempt counted. Unknown sessions are ignored, and so is every
  // detach once Shutdown has begun (the streams close because we stop).
  void Detach(absl::string_view session, const absl::Status& reason);

  // Declares workers silent for longer than worker_timeout (on the
  // monotonic clock) dead, launches speculative backups that are due and
  // sends held-back progress updates. Returns when the next check is due, on
  // the clock's monotonic clock (InfiniteFuture with no worker attached, no
  // speculative job and no update held back); sooner needs are announced
  // through on_worker_attached / request_check.
  MonoTime CheckLiveness();

  // A planned stop: takes no more jobs, workers or dispatches, sends every
  // worker GoingAway and closes its stream, and flushes the store. No
  // attempt ends: the store keeps each task assigned or running on its
  // worker, for the next start to recover as held. Idempotent.
  void Shutdown();

  // Figures for /metrics and the status page (a consistent snapshot).
  MetricsSnapshot Metrics() const;

  const Options& options() const { return options_; }
  // Refusals of misbehaving peers, counted by the gRPC adapters and
  // reported in Metrics(). Thread-safe (lock-free).
  PeerTally& peer_tally() { return peer_tally_; }

 private:
  // How a task's current attempt ended without success (EndAttemptLocked).
  enum class AttemptEnd {
    kGaveUp,             // the worker gave it up (a cancel we did not ask for): not counted
    kFailed,             // failed or lost: counts against max_attempts
    kFailedPermanently,  // fails by itself (a bad spec): the task fails now
  };
  // Whether the scheduler has queued the task again already (it does when
  // it forgets a worker).
  enum class Queued { kNo, kByScheduler };

  explicit Coordinator(Options options);
  absl::Status Recover();

  std::string NewIdLocked(absl::string_view prefix) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The attached workers' facts for a report built without the lock.
  std::map<std::string, WorkerFacts> WorkerFactsNow() const ABSL_LOCKS_EXCLUDED(mu_);
  JobRecord* FindJobLocked(absl::string_view id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The job's task named by `ref`; nullptr for an unknown job or index.
  TaskRecord* FindTaskLocked(const v1::TaskRef& ref, JobRecord** job) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  v1::JobReport FinalReportLocked(const JobRecord& job, bool include_tasks, absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void HandleHeartbeatLocked(Session& session, const v1::Heartbeat& hb) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void DispatchLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void HandleStartedLocked(Session& session, const v1::TaskStarted& started) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // `now`: when the result's message arrived.
  void HandleResultLocked(Session& session, JobRecord& job, const v1::TaskResult& result, absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A worker's packed results of `job` (one group): what HandleResultLocked
  // does with each, the common case without a TaskResult message each and
  // with the scheduler told once for the group.
  void HandlePackedLocked(Session& session, JobRecord& job, const v1::PackedResults& packed, absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void HandleReturnedLocked(Session& session, const v1::DrainNotice& notice)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RemoveSessionLocked(const std::string& session_id, const std::string& why)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Calls on_worker_attached if the liveness loop's next check (liveness_due_)
  // is after `session`'s deadline.
  void WakeLivenessForLocked(const Session& session) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The silence after which `session` is declared dead (see fleet_interval_).
  absl::Duration LivenessTimeoutLocked(const Session& session) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return pacing_.Timeout(std::max(session.PacedInterval(), fleet_interval_));
  }

  // --- Held attempts (restart recovery) ---
  // An attempt assigned or running on a worker that is not attached (the
  // coordinator restarted, or the worker is reconnecting): the task keeps
  // its state with no session until the worker named `worker` claims it.
  struct HeldAttempt {
    TaskKey key;
    uint32_t attempt = 0;
    MonoTime until;  // the grace ends, on the monotonic clock
  };
  // Moves the session's attempts in flight into held_ (no attempt ends;
  // backups are dropped) and retires it.
  void HoldSessionLocked(const std::string& session_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The new session takes over what `held` lists and held_ holds for its
  // name; cancels on the worker what is not recognised; queues again what
  // the worker did not list.
  void ClaimHeldLocked(Session& session, const google::protobuf::RepeatedPtrField<v1::TaskRef>& held)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Whether `h` still names the task's current attempt, unclaimed.
  TaskRecord* StillHeldLocked(const HeldAttempt& h, JobRecord** job) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Queues a held attempt's task again, without counting the attempt.
  void ReleaseHeldLocked(const HeldAttempt& h, const std::string& worker, absl::string_view why)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Releases what is held past its grace; when the next grace ends.
  MonoTime ExpireHeldLocked(MonoTime now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // --- Jobs no worker can take (coordinator_pending.cc) ---
  // Sets each live job's pending_reason from the scheduler (a change is
  // marked dirty, so its watchers hear of it) and fails a job whose reason
  // has stood for its JobSpec.pending_timeout (on the monotonic clock).
  // Returns when the next pending timeout is due. Called when workers
  // attach, leave or drain, on submit, and on the liveness tick.
  MonoTime UpdatePendingLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // --- Attempts ---
  // The one place a task's current attempt ends without success: the
  // accounting (EndFailedAttempt), then the task fails, its backup takes
  // over, or it is queued again.
  void EndAttemptLocked(JobRecord& job, TaskRecord& t, AttemptEnd end, std::string why, Queued queued)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The attempt on `session` left it (result, handed back, stopped): its
  // in-flight count there, and (with `release`) its scheduler credit.
  void LeaveSessionLocked(Session& session, absl::string_view job_id, uint32_t index, bool running, bool release)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Speculation (JobSpec.speculate): launches backups of tasks running past
  // kStragglerFactor x the job's median; returns when to look again.
  // Due times are on the monotonic clock; `now` stamps the backups.
  MonoTime SpeculateLocked(absl::Time now, MonoTime mono_now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Backups due for the job's running tasks, into `batches`; returns when
  // the next is due.
  MonoTime SpeculateJobLocked(JobRecord& job, absl::Time now, MonoTime mono_now,
                              std::map<std::string, v1::CoordinatorMessage>& batches)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void HandleBackupResultLocked(Session& session, JobRecord& job, TaskRecord& t,
                                const v1::TaskResult& result) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A draining worker handed the task's backup copy back: it is dropped (the
  // primary runs on), so it can never become the current attempt unrun.
  void DropReturnedBackupLocked(Session& session, JobRecord& job, TaskRecord& t)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The backup becomes the task's current attempt (its primary failed or was lost).
  void PromoteBackupLocked(JobRecord& job, TaskRecord& t) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Tells a worker to stop one attempt of a task; frees its credit and the
  // session's count.
  void StopAttemptLocked(const JobRecord& job, uint32_t index, const Attempt& attempt, bool running)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Stops the copy of a task that lost its speculation race (StopAttemptLocked),
  // counts it in backups_cancelled, and remembers it so its late result is
  // not taken for a duplicate.
  void StopLoserLocked(JobRecord& job, TaskRecord& t, const Attempt& loser, bool running)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A task's final outcome: counters, and the job's end when it decides it.
  // `observed`: where the task's seconds go for the scheduler's moving
  // average (the caller tells it later, in order); null: told now.
  void SucceedTaskLocked(JobRecord& job, TaskRecord& t, std::vector<double>* observed = nullptr)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void FailTaskLocked(JobRecord& job, TaskRecord& t, std::string job_error) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void FinishJobLocked(JobRecord& job, v1::JobState state, std::string error)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Cancels the job's attempts in flight on their workers (FinishJobLocked).
  void CancelInFlightLocked(JobRecord& job, absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void MarkDirtyLocked(JobRecord& job, uint32_t task_index) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Saves dirty jobs and notifies their watchers.
  void FlushLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void EvictFinishedLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Forgets a finished job held in memory (for DeleteJob and Prune).
  void ForgetFinishedLocked(const std::string& id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Dispatch, flush, and in debug builds the invariants below: the end of
  // every operation that changes tasks or sessions.
  void SettleLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void CheckInvariantsLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Options options_;
  const Clock* const clock_;

  PeerTally peer_tally_;
  mutable absl::Mutex mu_;
  // In-flight accounting. An attempt (a task's current one, or its backup)
  // is in flight from its assignment until its result, its hand-back, its
  // cancellation or its worker's loss. With the lock released:
  //  - session.assigned == attempts (primary or backup) ASSIGNED on it: sent,
  //    not yet started (a primary in TASK_STATE_ASSIGNED, a backup with
  //    !running);
  //  - session.running == attempts (primary or backup) RUNNING on it;
  //  - scheduler_.InFlight(session) == session.assigned + session.running
  //    (the credit it holds);
  //  - job.running == tasks of the job in TASK_STATE_RUNNING (their
  //    current attempt runs; JobRecord::SetTaskState keeps it);
  //  - a task ASSIGNED or RUNNING, and a backup, is on an attached session,
  //    except a held one (empty session, listed in held_, no credit
  //    anywhere; see HeldAttempt);
  //  - unfinished_tasks_ == tasks of live jobs not in a terminal state.
  // Checked after every operation in debug builds (CheckInvariantsLocked;
  // the recount of tasks while at most 20,000 are unfinished); counts are
  // taken down with CountDown, which asserts instead of hiding a miscount
  // below zero.
  Scheduler scheduler_ ABSL_GUARDED_BY(mu_);
  SessionTable sessions_ ABSL_GUARDED_BY(mu_);
  // When the liveness loop checks next (what CheckLiveness last returned,
  // or an earlier deadline it was woken for).
  MonoTime liveness_due_ ABSL_GUARDED_BY(mu_) = MonoTime::InfiniteFuture();
  // The heartbeat interval asked of the fleet now (pacing_.Next as sessions
  // come and go): new sessions get it in their welcome, the others in the
  // ack of their next heartbeat. A session is declared dead after
  // pacing_.Timeout of the longer of this and its own PacedInterval().
  const HeartbeatPacing pacing_;
  absl::Duration fleet_interval_ ABSL_GUARDED_BY(mu_);
  ProgressWatchers watchers_ ABSL_GUARDED_BY(mu_);
  bool shutting_down_ ABSL_GUARDED_BY(mu_) = false;
  // Held attempts by the name of the worker that holds them.
  std::map<std::string, std::vector<HeldAttempt>> held_ ABSL_GUARDED_BY(mu_);
  absl::BitGen rng_ ABSL_GUARDED_BY(mu_);
  uint64_t job_seq_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<std::string, std::unique_ptr<JobRecord>> jobs_ ABSL_GUARDED_BY(mu_);
  std::deque<std::string> finished_order_ ABSL_GUARDED_BY(mu_);
  // Task rows of the jobs in finished_order_.
  uint64_t finished_rows_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t unfinished_tasks_ ABSL_GUARDED_BY(mu_) = 0;
  // Job id -> task indices changed since the last flush.
  // Unsorted, with repeats (sorted and made unique at the flush: cheaper than
  // a set per mark). Without indices when the store keeps no task rows
  // (`--db :memory:`): the jobs alone, for the flush's watchers.
  std::map<std::string, std::vector<uint32_t>> dirty_ ABSL_GUARDED_BY(mu_);
  // options_.store->KeepsTaskRows(), asked once.
  const bool store_keeps_rows_;
  // The dirty_ entry marked last and its job (results come a job at a
  // time): no map lookup a task. Null whenever dirty_ loses entries.
  const JobRecord* dirty_job_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::vector<uint32_t>* dirty_rows_ ABSL_GUARDED_BY(mu_) = nullptr;
  // Jobs ended since the last flush, for on_job_finished (after the watchers).
  std::vector<std::string> ended_ ABSL_GUARDED_BY(mu_);
  CoordinatorCounters counters_ ABSL_GUARDED_BY(mu_);
  uint64_t jobs_submitted_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace busyfleet::coordinator

#endif  // BUSYFLEET_COORDINATOR_CORE_COORDINATOR_H_
