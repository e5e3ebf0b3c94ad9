#ifndef BUSYFLEET_COORDINATOR_CORE_TIMING_AGGREGATOR_H_
#define BUSYFLEET_COORDINATOR_CORE_TIMING_AGGREGATOR_H_

// Turns a job's task timings into its report. Pure functions; no I/O.

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "absl/time/time.h"
#include "busyfleet/v1/coordinator.pb.h"
#include "coordinator/core/job_model.h"
#include "coordinator/core/limits.h"

namespace busyfleet::coordinator {

inline constexpr uint32_t kReportSchema = 1;
// A task is a straggler when it took longer than this multiple of the median.
inline constexpr double kStragglerFactor = 1.5;
// ... and longer than the median by at least this much.
inline constexpr double kStragglerFloorSeconds = 0.001;
// At most this many stragglers are listed (the slowest); stragglers_total counts all.
inline constexpr size_t kMaxStragglersListed = 1000;
// A task whose rate (iterations / its seconds) is below this share of its
// core's calibrated rate was slowed by something outside it (JobTiming.slow_tasks).
inline constexpr double kSlowRateRatio = 0.6;

// What the report needs to know of a worker beyond the tasks.
struct WorkerFacts {
  std::string host;
  uint32_t slots = 0;
};

// The report of `job` at time `now` (for jobs still running, wall time runs
// to `now`). Definitions (docs/design.md, "Timing"):
//  - wall = submit -> last result (or now); makespan = first task start ->
//    last task end; serial = sum of succeeded task durations;
//    speedup = serial / makespan; efficiency = speedup / slots, where slots
//    counts the distinct (worker, slot) pairs that ran the job's tasks, at
//    most the spec's max_slots (a serial job used one);
//    overhead = wall - makespan;
//  - percentiles over succeeded task durations; stragglers are succeeded
//    tasks longer than kStragglerFactor x the median and the median plus
//    kStragglerFloorSeconds (the slowest kMaxStragglersListed, by index);
//  - per worker: busy = sum of its task durations; utilization = busy /
//    (slots it used x makespan); iterations per second per slot = iterations
//    / busy.
// `workers` maps worker names to their facts; a worker missing from it
// (gone) is reported with the slots the job used on it.
// With `include_attempts`, `attempts` lists every attempt that started
// (TaskRecord::history, then each task's current one; a running or
// cancelled-while-running attempt ends at `now` or the job's end), sorted by
// start.
struct ReportOptions {
  // Task rows [task_offset, task_offset + task_limit), clamped to the job.
  bool tasks = true;
  uint32_t task_offset = 0;
  uint32_t task_limit = UINT32_MAX;
  // No task rows at all when the job has more tasks than task_limit (a
  // summary by default, rather than its first page).
  bool summarize_large = false;
  bool attempts = false;
  // Attempt rows beyond this are counted in attempts_omitted, not listed.
  uint32_t attempt_limit = 100'000;
  // The reply's size: task rows past it are counted in task_rows_omitted,
  // attempt rows (a task's all or none) in attempts_omitted.
  size_t max_bytes = limits::kMaxReplyBytes;
};
v1::JobReport BuildReport(const JobRecord& job, const std::map<std::string, WorkerFacts>& workers,
                          absl::Time now, const ReportOptions& options);
inline v1::JobReport BuildReport(const JobRecord& job, const std::map<std::string, WorkerFacts>& workers,
                                 absl::Time now, bool include_tasks, bool include_attempts = false) {
  ReportOptions options;
  options.tasks = include_tasks;
  options.attempts = include_attempts;
  return BuildReport(job, workers, now, options);
}

// Speculation: a task of the job running longer than this is a straggler
// worth a backup (kStragglerFactor x the median of its succeeded tasks);
// nullopt before any succeeded task has timing.
std::optional<absl::Duration> StragglerThreshold(const JobRecord& job);

// The job's line in a listing; wall time runs to `now` while it runs.
v1::JobSummary BuildSummary(const JobRecord& job, absl::Time now);

// Progress of `job` at `now` (O(1): counters only).
v1::JobProgress BuildProgress(const JobRecord& job, absl::Time now);

}  // namespace busyfleet::coordinator

#endif  // BUSYFLEET_COORDINATOR_CORE_TIMING_AGGREGATOR_H_
