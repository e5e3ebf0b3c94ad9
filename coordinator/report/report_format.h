#ifndef BUSYFLEET_COORDINATOR_REPORT_REPORT_FORMAT_H_
#define BUSYFLEET_COORDINATOR_REPORT_REPORT_FORMAT_H_

// How coordctl shows reports, workers, jobs and progress: the JSON contract of
// docs/design.md ("JSON contract") and the human-readable tables.
// Pure functions of the generated messages: no I/O, no gRPC, thread-safe.

#include <string>
#include <vector>

#include "absl/time/time.h"
#include "busyfleet/v1/coordinator.pb.h"
#include "busyfleet/v1/types.pb.h"
#include "coordinator/core/enum_names.h"
#include "coordinator/report/format.h"
#include "nlohmann/json.hpp"

namespace busyfleet::report {

// Enum names as users see them (coordinator/core/enum_names.h).
using coordinator::ExecModeName;
using coordinator::JobStateName;
using coordinator::TaskKindName;
using coordinator::TaskStateName;
using coordinator::WorkerStateName;

// Rfc3339, HumanCount and the other format helpers the renderers share are
// in coordinator/report/format.h (included above, so callers that found them
// here still do).

// The report as `coordctl -o json status` prints it. The contract keys of
// docs/design.md ("JSON contract"), exactly:
//   schema, id, name, state, kind, error,
//   timing{submitted_at, started_at, finished_at, wall_seconds,
//          makespan_seconds, serial_seconds, overhead_seconds, speedup,
//          efficiency, slots, task_seconds{min, p50, p90, p99, max}},
//   workers[{name, host, slots, tasks, iterations, busy_seconds, utilization,
//            iterations_per_second}],
//   tasks[{index, worker, slot, attempt, state, iterations,
//          start_offset_seconds, seconds, cpu_seconds}],
//   stragglers[task index...].
// Extra keys (never renamed, may grow): timing.cpu_seconds,
// timing.phases{queued_seconds, dispatch_seconds, result_seconds} (means),
// workers[].slots_used, tasks[].error (only when non-empty), tasks[].pid
// (the process that ran the task, when known),
// tasks[].phases{queued_seconds, dispatch_seconds, result_seconds},
// counts{total, succeeded, failed, cancelled, retries}, iterations_total,
// spec{tasks, iterations, total, duration_seconds, max_slots, max_attempts,
//      exec, task_timeout_seconds, workers[], selector{}}.
// Numbers are JSON numbers (uint64 stays integral); a non-finite double is
// null. Timestamps are Rfc3339() strings ("" when unset).
nlohmann::json ReportToJson(const v1::JobReport& report);

// `coordctl -o json workers`: an array of {name, host, slots, logical_cpus,
// physical_cores, state, running, last_heartbeat} plus affinity_cpus,
// cgroup_cpu_quota, cpu_model, assigned, labels{}, attached_at, tasks_done,
// clock_offset_seconds, session_id, peer.
nlohmann::json WorkersToJson(const std::vector<v1::WorkerInfo>& workers);

// `coordctl -o json jobs`: an array of {id, name, state, tasks, submitted_at,
// wall_seconds} plus kind, tasks_done.
nlohmann::json JobsToJson(const std::vector<v1::JobSummary>& jobs);

// One object per progress update (`watch -o json`): {id, state, tasks_total,
// tasks_done, tasks_running, tasks_failed, iterations_total, iterations_done,
// elapsed_seconds, iterations_per_second, eta_seconds}; eta_seconds is null
// when unknown (negative). The final update's report is not included: print
// it with ReportToJson.
nlohmann::json ProgressToJson(const v1::JobProgress& progress);

// The report as a plain-text block (no colour codes), ending in a newline:
// a header (job, state, kind, error if any, tasks x iterations, wall,
// makespan, serial-equivalent and overhead seconds, speedup "1.97x",
// efficiency "98.5%", slots, task-seconds percentiles), the per-worker table
// (WORKER HOST SLOTS TASKS ITERATIONS BUSY(s) UTIL IT/S/SLOT), the stragglers
// line, and the per-task table (TASK WORKER SLOT ATTEMPT STATE START(s)
// SECONDS CPU(s), plus ERROR when a task has one) when `show_tasks` is true
// or the job has at most 16 tasks.
std::string RenderReport(const v1::JobReport& report, bool show_tasks);

// The workers table: NAME HOST SLOTS CPUS CORES STATE RUNNING LAST-HEARTBEAT,
// the heartbeat relative to `now` ("0.4s ago", "3m12s ago", "-" when unset).
std::string RenderWorkers(const std::vector<v1::WorkerInfo>& workers,
                          absl::Time now);

// The jobs table: ID NAME STATE TASKS (done/total) SUBMITTED (RFC 3339 UTC,
// whole seconds) WALL(s) ("-" while zero).
std::string RenderJobs(const std::vector<v1::JobSummary>& jobs);

// One progress line without a newline, for redrawing with '\r':
//   "[#########...........]  12/40 tasks  30%  3.41G it/s  ETA 4.2s  RUNNING"
// ("N failed" follows the task count when some failed; it/s is left out when
// the job counts no iterations, ETA when unknown). The percentage follows
// iterations when the job counts them, tasks otherwise. Never longer than
// `width` columns: the bar shrinks first, then goes, then it/s, ETA and the
// failed count go, then the line is cut. "" when width <= 0.
std::string RenderProgressLine(const v1::JobProgress& progress, int width);

}  // namespace busyfleet::report

#endif  // BUSYFLEET_COORDINATOR_REPORT_REPORT_FORMAT_H_
