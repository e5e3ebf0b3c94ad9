#ifndef BUSYFLEET_COORDINATOR_CORE_JOB_MODEL_H_
#define BUSYFLEET_COORDINATOR_CORE_JOB_MODEL_H_

// Plain data: a job and its tasks as the coordinator tracks them. All times
// are on the coordinator's clock (worker times are converted on arrival).

#include <cstdint>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "busyfleet/v1/types.pb.h"

namespace busyfleet::coordinator {

inline bool IsTerminal(v1::JobState s) {
  return s == v1::JOB_STATE_SUCCEEDED || s == v1::JOB_STATE_FAILED || s == v1::JOB_STATE_CANCELLED;
}
inline bool IsTerminal(v1::TaskState s) {
  return s == v1::TASK_STATE_SUCCEEDED || s == v1::TASK_STATE_FAILED || s == v1::TASK_STATE_CANCELLED;
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
};

struct TaskRecord {
  uint32_t index = 0;
  uint64_t iterations = 0;
  absl::Duration duration;
  v1::TaskState state = v1::TASK_STATE_QUEUED;
  // The current (or last) attempt, 1-based; 0 before the first assignment.
  uint32_t attempt = 0;
  // The highest attempt number handed out (primaries and backups), so that
  // a new attempt never reuses a lost backup's number.
  uint32_t last_attempt = 0;
  // Where the current attempt runs or ran.
  std::string session;
  std::string worker;
  std::string host;
  uint32_t slot = 0;
  absl::Time assigned_at = absl::InfinitePast();
  absl::Time started_at = absl::InfinitePast();
  absl::Time ended_at = absl::InfinitePast();
  absl::Time result_at = absl::InfinitePast();
  int64_t cpu_ns = 0;
  uint64_t iterations_done = 0;
  // The process that ran the attempt (the worker's own in thread mode, a
  // forked child in process mode); 0 when unknown.
  uint32_t pid = 0;
  std::string error;
  // Earlier attempts that started, oldest first (not stored across restarts).
  std::vector<AttemptRecord> history;
  // Why earlier attempts did not succeed, one line each.
  std::vector<std::string> failures;
  // Speculation: a backup copy running beside the current attempt.
  uint32_t backup_attempt = 0;  // 0: none running
  std::string backup_session;
  std::string backup_worker;
  std::string backup_host;
  absl::Time backup_assigned_at = absl::InfinitePast();
  absl::Time backup_started_at = absl::InfinitePast();
  uint32_t backup_slot = 0;
  bool backup_running = false;
  bool speculated = false;   // a backup was ever launched
  bool backup_won = false;   // the backup's result is the one kept

  bool has_timing() const { return started_at != absl::InfinitePast() && ended_at != absl::InfinitePast(); }
  double seconds() const { return has_timing() ? absl::ToDoubleSeconds(ended_at - started_at) : 0; }
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
  uint32_t running = 0;
  uint32_t retries = 0;
  // Results that arrived for an attempt no longer current (ignored).
  uint32_t duplicates = 0;
  uint32_t backups = 0;
  uint32_t backups_won = 0;
  uint64_t iterations_total = 0;
  uint64_t iterations_done = 0;

  uint32_t done() const { return succeeded + failed + cancelled; }
  uint32_t max_attempts() const;
};

// Copies every field of `from` but its tasks into `to`.
void CopyJobHeader(const JobRecord& from, JobRecord* to);
// Copies what changes while a job runs (state, error, times, counters) into
// a `to` that already has the job's id and spec (they never change).
void CopyJobProgress(const JobRecord& from, JobRecord* to);

}  // namespace busyfleet::coordinator

#endif  // BUSYFLEET_COORDINATOR_CORE_JOB_MODEL_H_
