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
#include "coordinator/core/metrics.h"
#include "coordinator/store/job_store.h"
#include "coordinator/core/limits.h"
#include "coordinator/core/scheduler.h"
#include "coordinator/core/timing_aggregator.h"

namespace busyfleet::coordinator {

// While a speculative job runs, backups are looked for at least this often.
inline constexpr absl::Duration kSpeculationRecheck = absl::Milliseconds(100);

// The coordinator's side of one attached worker's stream. Implemented by the
// gRPC adapter (and by fakes in tests).
class WorkerChannel {
 public:
  virtual ~WorkerChannel() = default;
  // Queues `message` for the worker. Must not block and must not call back
  // into the Coordinator (it is called with the Coordinator's lock held).
  virtual void Send(v1::CoordinatorMessage message) = 0;
  // Ends the stream with `status` (worker declared dead, shutdown). Same
  // rules as Send.
  virtual void Close(const absl::Status& status) = 0;
};

// Called with each progress update of a watched job; the update with a
// terminal state carries the report and is the last. Called with the
// Coordinator's lock held: must not block or call back into it.
using ProgressCallback = std::function<void(const v1::JobProgress&)>;

// The coordinator's domain logic: jobs, tasks, attached workers, results,
// reports. Thread-safe; no sockets (the gRPC services are thin adapters over
// it). Time comes from the injected clock.
class Coordinator {
 public:
  struct Options {
    // Silence after which a worker is declared dead and its tasks requeued.
    absl::Duration worker_timeout = absl::Seconds(5);
    // How often workers send heartbeats; zero: worker_timeout / 3.
    absl::Duration heartbeat_interval = absl::ZeroDuration();
    int prefetch_per_worker = 2;
    // nullptr: the real clock.
    const Clock* clock = nullptr;
    // Required; not owned.
    JobStore* store = nullptr;
    // Workers that left, kept for `coordctl workers`.
    size_t keep_gone_workers = 64;
    // Finished jobs kept in memory (older ones are read back from the store).
    size_t keep_finished_jobs = 256;
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
    // when a worker attaches, so a liveness loop sleeping with no worker
    // attached can wake up.
    std::function<void()> on_worker_attached;
    // Called (lock held; must not block or call back) when a job ends, with
    // its report without task rows: for the log.
    std::function<void(const v1::JobReport&)> on_job_finished;
    // Called (lock held; must not block) when CheckLiveness is due earlier
    // than it last said (a held-back progress update).
    std::function<void()> request_check;
  };

  // Loads unfinished jobs from the store and queues their unfinished tasks
  // again. InvalidArgument for bad options; the store's error if it fails.
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
  // Newest first; `limit` 0 means the default.
  absl::StatusOr<std::vector<v1::JobSummary>> ListJobs(uint32_t limit);
  // Returns the job's state after the call. NotFound for an unknown job,
  // FailedPrecondition if it has already ended.
  absl::StatusOr<v1::JobState> Cancel(absl::string_view job_id);
  std::vector<v1::WorkerInfo> ListWorkers(bool include_gone);
  // NotFound for a name no attached worker has.
  absl::StatusOr<v1::WorkerState> Drain(absl::string_view worker_name);
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
  // id. Unavailable while shutting down.
  absl::StatusOr<std::string> Attach(const v1::Hello& hello, absl::string_view peer,
                                     std::shared_ptr<WorkerChannel> channel);
  // A message from an attached worker. InvalidArgument for a malformed
  // message (the adapter then closes the stream); NotFound for an unknown
  // session. Stale or duplicate results are recorded and ignored (OK).
  absl::Status HandleMessage(absl::string_view session, const v1::WorkerMessage& message);
  // The worker's stream ended. Its unfinished tasks are queued again with
  // the attempt counted. Unknown sessions are ignored.
  void Detach(absl::string_view session, const absl::Status& reason);

  // Declares workers silent for longer than worker_timeout dead, and
  // launches speculative backups that are due. Returns when the next check
  // is due (InfiniteFuture with no worker attached and no speculative job).
  absl::Time CheckLiveness();

  // Stops taking jobs and closes every worker stream. Idempotent.
  void Shutdown();

  // Figures for /metrics and the status page (a consistent snapshot).
  MetricsSnapshot Metrics() const;

  const Options& options() const { return options_; }

 private:
  struct Session {
    std::string id;
    std::string name;
    std::string instance_id;
    v1::HostInfo host;
    uint32_t slots = 0;
    std::map<std::string, std::string> labels;
    v1::ExecMode default_exec = v1::EXEC_MODE_THREAD;
    std::vector<v1::ExecMode> exec_modes;
    std::string peer;
    std::shared_ptr<WorkerChannel> channel;
    v1::WorkerState state = v1::WORKER_STATE_READY;
    absl::Time attached_at;
    absl::Time last_seen;
    absl::Time last_heartbeat = absl::InfinitePast();
    bool offset_valid = false;
    int64_t clock_offset_ns = 0;
    bool wall_offset_valid = false;
    int64_t wall_offset_ns = 0;
    uint32_t running = 0;
    uint32_t assigned = 0;
    uint64_t tasks_done = 0;
  };
  struct Watcher {
    std::string job_id;
    bool include_tasks = false;
    ProgressCallback callback;
    double tokens = 0;  // updates it may get at once (token bucket)
    absl::Time refilled = absl::InfinitePast();
    bool pending = false;  // a change not yet sent (rate limit)
    absl::Time due = absl::InfiniteFuture();  // when the pending one may go
  };

  explicit Coordinator(Options options);
  absl::Status Recover();

  std::string NewIdLocked(absl::string_view prefix) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  JobRecord* FindJobLocked(absl::string_view id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::map<std::string, WorkerFacts> WorkerFactsLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void DispatchLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void HandleUpdatesLocked(Session& session, const v1::TaskUpdates& updates)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void HandleResultLocked(Session& session, JobRecord& job, const v1::TaskResult& result)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void HandleReturnedLocked(Session& session, const v1::DrainNotice& notice)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A task attempt ended without success. Counts it against max_attempts
  // when `counts`; queues the task again or fails the job.
  void RetryOrFailLocked(JobRecord& job, TaskRecord& task, const std::string& why, bool counts)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RemoveSessionLocked(const std::string& session_id, const std::string& why)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Speculation (JobSpec.speculate): launches backups of tasks running past
  // kStragglerFactor x the job's median; returns when to look again.
  absl::Time SpeculateLocked(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void HandleBackupResultLocked(Session& session, JobRecord& job, TaskRecord& t,
                                const v1::TaskResult& result) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The backup becomes the task's current attempt (its primary failed or was lost).
  void PromoteBackupLocked(JobRecord& job, TaskRecord& t) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Cancels the backup copy on its worker and frees its credit.
  void StopBackupLocked(JobRecord& job, TaskRecord& t) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Tells a worker to stop one copy (attempt) of a task; frees its credit
  // and the session's counters.
  void StopCopyLocked(const JobRecord& job, uint32_t index, const std::string& session_id, uint32_t attempt,
                      bool running) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Puts a result's worker times on our clock, kept between the attempt's
  // assignment and `now` (when its result arrived).
  void RecordTiming(const Session& session, const v1::TaskResult& result, absl::Time now, TaskRecord& t) const;
  static void ClearBackup(TaskRecord& t);
  // Moves the task's current attempt into its history when it had started
  // (a still-open attempt ends at `now`) and clears its timing for the next.
  static void ArchiveAttempt(TaskRecord& t, v1::TaskState state, std::string error, absl::Time now);
  // The same for a running backup copy (before ClearBackup).
  static void ArchiveBackup(TaskRecord& t, v1::TaskState state, std::string error, absl::Time now);
  // A task's final outcome: counters, and the job's end when it decides it.
  void SucceedTaskLocked(JobRecord& job, TaskRecord& t) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void FailTaskLocked(JobRecord& job, TaskRecord& t, std::string job_error) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void FinishJobLocked(JobRecord& job, v1::JobState state, std::string error)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Time WorkerToCoordinatorTime(const Session& session, int64_t mono_ns) const;
  void MarkDirtyLocked(JobRecord& job, uint32_t task_index) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Saves dirty jobs and notifies their watchers.
  void FlushLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void NotifyLocked(JobRecord& job) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Marks the watcher's update held back until w.due, and has the liveness
  // loop woken for it if that is sooner than anything else due.
  void HoldBackLocked(Watcher& w) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Refills the watcher's token bucket to `now`; true (taking a token) when
  // it may get an update now, else sets when it may.
  bool TakeProgressToken(Watcher& w, absl::Time now) const;
  // Sends held-back progress updates that are due; returns when the next is.
  absl::Time SendDueProgressLocked(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void EvictFinishedLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  v1::WorkerInfo WorkerInfoLocked(const Session& s) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Options options_;
  const Clock* const clock_;
  Scheduler scheduler_;

  mutable absl::Mutex mu_;
  bool shutting_down_ ABSL_GUARDED_BY(mu_) = false;
  absl::BitGen rng_ ABSL_GUARDED_BY(mu_);
  uint64_t job_seq_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<std::string, std::unique_ptr<JobRecord>> jobs_ ABSL_GUARDED_BY(mu_);
  std::deque<std::string> finished_order_ ABSL_GUARDED_BY(mu_);
  uint64_t unfinished_tasks_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<std::string, Session> sessions_ ABSL_GUARDED_BY(mu_);
  std::deque<Session> gone_ ABSL_GUARDED_BY(mu_);
  // Job id -> task indices changed since the last flush.
  std::map<std::string, std::set<uint32_t>> dirty_ ABSL_GUARDED_BY(mu_);
  uint64_t next_watch_ ABSL_GUARDED_BY(mu_) = 1;
  CoordinatorCounters counters_ ABSL_GUARDED_BY(mu_);
  uint64_t jobs_submitted_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<uint64_t, Watcher> watchers_ ABSL_GUARDED_BY(mu_);
  // When the earliest held-back progress update is due.
  absl::Time progress_due_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
};

}  // namespace busyfleet::coordinator

#endif  // BUSYFLEET_COORDINATOR_CORE_COORDINATOR_H_
