#ifndef BUSYFLEET_COORDINATOR_CORE_JOB_MODEL_H_
#define BUSYFLEET_COORDINATOR_CORE_JOB_MODEL_H_

// Plain data: a job and its tasks as the coordinator tracks them. All times
// are on the coordinator's clock (worker times are converted on arrival):
// absl::Time fields are wall-clock stamps for reports; MonoTime fields are
// on its monotonic clock, for deciding (speculation), and live only in
// memory (never stored: no attempt runs on after a restart).

#include <algorithm>
#include <cassert>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "busyfleet/v1/types.pb.h"
#include "common/clock.h"
#include "coordinator/core/metrics.h"

namespace busyfleet::coordinator {

inline bool IsTerminal(v1::JobState s) {
  return s == v1::JOB_STATE_SUCCEEDED || s == v1::JOB_STATE_FAILED || s == v1::JOB_STATE_CANCELLED;
}
inline bool IsTerminal(v1::TaskState s) {
  return s == v1::TASK_STATE_SUCCEEDED || s == v1::TASK_STATE_FAILED || s == v1::TASK_STATE_CANCELLED;
}

// Takes one off an in-flight count. A count about to go below zero is a
// miscount: it fails in debug builds (release builds keep it at zero).
inline void CountDown(uint32_t& count) {
  assert(count > 0 && "in-flight count below zero");
  if (count > 0) --count;
}

// An attempt that ended without being the task's last word: it failed, was
// lost with its worker, was handed back, or lost a speculation race. Kept
// for timelines (the task's final attempt lives in TaskRecord itself).
struct AttemptRecord {
  uint32_t attempt = 0;
  v1::TaskState state = v1::TASK_STATE_FAILED;
  bool backup = false;
  uint32_t slot = 0;
  uint32_t pid = 0;
  std::string worker;
  std::string host;
  absl::Time started_at = absl::InfinitePast();
  absl::Time ended_at = absl::InfinitePast();
  int64_t cpu_ns = 0;
  uint64_t iterations_done = 0;
  std::string error;
  double calibrated_rate = 0;  // Attempt::calibrated_rate
  // What slowed it down, measured on its worker; nullopt when not measured.
  std::optional<v1::Interference> interference;
};

// One copy of a task handed to a worker: the task's current attempt, or a
// speculative backup running beside it.
struct Attempt {
  // 1-based; 0 before the task's first assignment.
  uint32_t number = 0;
  // The session it was handed to; cleared when the attempt's result is in
  // (a later result for it is a duplicate) or it was lost.
  std::string session;
  std::string worker;
  std::string host;
  uint32_t slot = 0;
  absl::Time assigned_at = absl::InfinitePast();
  absl::Time started_at = absl::InfinitePast();
  // The same two moments on the monotonic clock (speculation's due times).
  MonoTime assigned_mono;
  MonoTime started_mono;
  // From its result (the current attempt only; a backup's result is kept
  // only when it wins, and it is the current attempt by then).
  absl::Time ended_at = absl::InfinitePast();
  absl::Time result_at = absl::InfinitePast();
  int64_t cpu_ns = 0;
  uint64_t iterations_done = 0;
  // The process that ran the attempt (the worker's own in thread mode, a
  // forked child in process mode); 0 when unknown.
  uint32_t pid = 0;
  // Where it ran (TaskResult start_cpu, end_cpu, migrated, bound_cpus);
  // -1: unknown. Stored with the task (the current attempt's).
  int start_cpu = -1;
  int end_cpu = -1;
  bool migrated = false;
  std::string bound_cpus;
  // Its worker's calibrated per-core rate for the job's kind (the CPU it
  // started on, else the worker's median) when the result came in; 0: none.
  double calibrated_rate = 0;
  // What slowed it down (TaskResult.interference); nullopt when the worker
  // did not measure it. Stored with the task (the current attempt's).
  std::optional<v1::Interference> interference;
  // The backup's phase (started on its worker). The current attempt's
  // phase is TaskRecord::state, which is what is stored.
  bool running = false;

  // The attempt as its history entry: it ended in `state` (an attempt still
  // open ends at `now`, never before it started).
  AttemptRecord ToRecord(v1::TaskState state, bool backup, std::string error, absl::Time now) const;
  // Clears what the attempt's result set (before the task's next attempt).
  void ClearResult();
};

struct TaskRecord {
  uint32_t index = 0;
  uint64_t iterations = 0;
  absl::Duration duration;
  v1::TaskState state = v1::TASK_STATE_QUEUED;
  // The current (or last) attempt; where it runs or ran, and its result.
  Attempt current;
  // The highest attempt number handed out (primaries and backups), so that
  // a new attempt never reuses a lost backup's number.
  uint32_t last_attempt = 0;
  std::string error;
  // Earlier attempts that started, oldest first (not stored across restarts).
  std::vector<AttemptRecord> history;
  // Why earlier attempts did not succeed, one line each.
  std::vector<std::string> failures;
  // Speculation: a backup copy in flight beside the current attempt.
  std::optional<Attempt> backup;
  bool speculated = false;   // a backup was ever launched
  bool backup_won = false;   // the backup's result is the one kept
  // The attempt number of the copy stopped because the other copy won the
  // speculation race (0: none): its late result is expected, not a duplicate.
  uint32_t stopped_loser = 0;

  // The number for a new attempt (primary or backup): never one handed out before.
  uint32_t NextAttemptNumber() {
    last_attempt = std::max({current.number, backup ? backup->number : 0u, last_attempt}) + 1;
    return last_attempt;
  }
  // Moves the current attempt into the history when it had started, and
  // clears its result for the next.
  void ArchiveCurrent(v1::TaskState ended_as, std::string why, absl::Time now);
  // The backup becomes the current attempt (the current one must be
  // archived or ended first); returns whether it had started.
  bool TakeOverFromBackup();
  // The same for the backup copy when it had started; the backup is gone after.
  void DropBackup(v1::TaskState ended_as, std::string why, absl::Time now);

  bool has_timing() const {
    return current.started_at != absl::InfinitePast() && current.ended_at != absl::InfinitePast();
  }
  double seconds() const { return has_timing() ? absl::ToDoubleSeconds(current.ended_at - current.started_at) : 0; }
};

struct JobRecord {
  std::string id;
  v1::JobSpec spec;
  v1::JobState state = v1::JOB_STATE_PENDING;
  std::string error;
  absl::Time submitted_at = absl::InfinitePast();
  absl::Time finished_at = absl::InfinitePast();
  std::vector<TaskRecord> tasks;
  // Counters kept in step with `tasks`, so progress is O(1).
  uint32_t succeeded = 0;
  uint32_t failed = 0;
  uint32_t cancelled = 0;
  // Tasks in TASK_STATE_RUNNING (kept by SetTaskState).
  uint32_t running = 0;
  uint32_t retries = 0;
  // Results that arrived for an attempt no longer current (ignored); not
  // the expected late result of a stopped speculation loser.
  uint32_t duplicates = 0;
  uint32_t backups = 0;
  uint32_t backups_won = 0;
  // Speculation losers stopped: the copy (backup or primary) that the other
  // copy of its task beat.
  uint32_t backups_cancelled = 0;
  // Why queued tasks wait: no attached worker can take them (empty: they
  // can run, or none is queued). Memory only; recomputed on attach, detach,
  // submit and the liveness tick.
  std::string pending_reason;
  // Since when pending_reason has been set without a break (for
  // JobSpec.pending_timeout).
  MonoTime pending_since;
  uint64_t iterations_total = 0;
  uint64_t iterations_done = 0;
  // The number of tasks when `tasks` is not loaded (a header read for a
  // summary, JobStore::ListJobHeaders); otherwise 0.
  uint32_t task_count = 0;
  // Submit order within this coordinator process (Recover numbers the
  // loaded jobs first, in the store's order); 0 for a record read back.
  uint64_t seq = 0;

  uint32_t total_tasks() const { return tasks.empty() ? task_count : static_cast<uint32_t>(tasks.size()); }
  uint32_t done() const { return succeeded + failed + cancelled; }
  uint32_t max_attempts() const;
  // Every change of a task's state goes through here, keeping `running`.
  void SetTaskState(TaskRecord& t, v1::TaskState state) {
    if (t.state == v1::TASK_STATE_RUNNING) CountDown(running);
    if (state == v1::TASK_STATE_RUNNING) ++running;
    t.state = state;
  }
};

// What follows when a task's current attempt ended without success.
enum class AfterFailedAttempt {
  kFailTask,       // the task fails (and with it the job)
  kPromoteBackup,  // its backup copy takes over
  kQueue,          // it runs again
};
// The accounting of a task's current attempt that ended without success,
// in one place. `why` (one line) becomes the task's error. When `counted`,
// it joins the task's failures and counters.attempts_failed. The task fails
// when `permanent` or when it has failed max_attempts times (`*job_error`
// says why; the attempt stays the task's last word). Otherwise a counted
// failure is a retry (job.retries, counters.retried), and the attempt moves
// into the history (FAILED when counted, else CANCELLED).
AfterFailedAttempt EndFailedAttempt(JobRecord& job, TaskRecord& t, const std::string& why, bool counted,
                                    bool permanent, absl::Time now, CoordinatorCounters& counters,
                                    std::string* job_error);

// The failures of one task in one line: the first `max_distinct` distinct
// messages (ignoring the "attempt N" that starts each) in order, each with
// its count when it repeats, then how many more distinct ones there were.
std::string SummarizeFailures(const std::vector<std::string>& failures, size_t max_distinct);

// Copies every field of `from` but its tasks into `to`.
void CopyJobHeader(const JobRecord& from, JobRecord* to);
// Copies what changes while a job runs (state, error, times, counters) into
// a `to` that already has the job's id and spec (they never change).
void CopyJobProgress(const JobRecord& from, JobRecord* to);

}  // namespace busyfleet::coordinator

#endif  // BUSYFLEET_COORDINATOR_CORE_JOB_MODEL_H_
