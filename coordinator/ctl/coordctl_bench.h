#ifndef BUSYFLEET_COORDINATOR_CTL_COORDCTL_BENCH_H_
#define BUSYFLEET_COORDINATOR_CTL_COORDCTL_BENCH_H_

// `coordctl bench`: the chapter's experiment run through the coordinator.
// The same countdown tasks, one job per mode:
//   serial     one slot of one worker (--max-slots 1),
//   threads    every slot of that worker, --exec thread,
//   processes  every slot of that worker, --exec process (a child per task),
//   fleet      every attached worker;
// each with wall time, speedup against serial (serial wall / mode wall, as
// the chapter times it), efficiency (speedup / slots) and its slots: the
// parallelism the mode allows (min(tasks, slots of the worker or fleet)).
// With `sweep`, the fleet again with 1, 2, ... slots: the scaling curve.
//
// Every mode runs `repeat` times, interleaved (serial, threads, processes,
// fleet, serial, ...) after `warmup` rounds that are not counted, so that
// the machine's drift hits every mode alike. A row gives the median wall,
// its min-max and CV, and the speedup as the median of each round's ratio
// (the round's serial wall / this wall) with a distribution-free 95%
// interval of that median; an interval that holds 1x (an efficiency
// interval that holds 100%) is "within noise" (common/trials.h).

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "busyfleet/v1/coordinator.pb.h"
#include "common/trials.h"
#include "coordinator/ctl/coordctl_client.h"
#include "nlohmann/json.hpp"

namespace busyfleet::coordctl {

struct BenchOptions {
  v1::TaskKind kind = v1::TASK_KIND_COUNTDOWN;
  // Iterations per task; 0: DefaultBenchIterations(kind).
  uint64_t iterations = 0;
  // 0: one per slot of the fleet, at least 4 (the chapter's 4).
  uint32_t tasks = 0;
  // Counted rounds of every mode, and uncounted rounds before them.
  uint32_t repeat = 5;
  uint32_t warmup = 1;
  // Confidence of the intervals (common/trials.h).
  double confidence = kConfidence;
  bool sweep = false;
  // The worker of the single-machine modes; empty: the one with most slots.
  std::string worker;
  // Longest any one job may take.
  absl::Duration job_timeout = absl::Minutes(30);
  // Called before each job starts, e.g. "round 2/5: threads (worker-1, 2 slots)".
  std::function<void(const std::string&)> on_job;
};

// Per task: 500 M countdown iterations (~0.15 s at 3.4 G/s); the python
// kind, the chapter's 10 M (~0.2-0.3 s at 30-50 M/s).
uint64_t DefaultBenchIterations(v1::TaskKind kind);

// One job of one mode.
struct BenchTrial {
  uint32_t round = 0;  // 1-based among the counted rounds
  std::string job_id;
  double wall_seconds = 0;
  double makespan_seconds = 0;
  double cpu_seconds = 0;
  // The same round's baseline (first mode) wall / this wall.
  double speedup = 0;
  // The report's work-based speedup (JobTiming.work_speedup: against the
  // workers' calibrated serial time); 0 when the report has none.
  double work_speedup = 0;
  // What the workers measured around its tasks (WorkerTiming interference,
  // over its measured tasks): run-queue wait and throttled time as shares
  // of their busy time, and steal (the largest worker's share).
  double wait_share = 0;
  double throttled_share = 0;
  double steal_share = 0;
};

struct BenchRow {
  std::string mode;  // serial, threads, processes, fleet, or "N slots" in a sweep
  std::string where;
  std::string job_id;        // the last counted trial's job
  uint32_t slots = 0;        // parallelism the mode allows: min(tasks, its slots)
  uint32_t slots_busy = 0;   // the most tasks that actually ran at once (the report's slots)
  // Medians over the trials.
  double wall_seconds = 0;   // submit -> last result
  double makespan_seconds = 0;
  double speedup = 0;        // median of the rounds' baseline wall / this wall
  double efficiency = 0;     // speedup / slots
  double cpu_seconds = 0;
  double work_speedup = 0;   // median of the trials' work_speedup (0: none)
  std::vector<BenchTrial> trials;
  TrialStats wall;      // of wall_seconds
  TrialStats speedups;  // of the paired speedups
  Interval efficiency_ci;  // speedups.ci / slots
  Verdict speedup_verdict = Verdict::kSingleTrial;     // against 1x
  Verdict efficiency_verdict = Verdict::kSingleTrial;  // against 100%
  bool baseline = false;  // the row the others are measured against
};

struct BenchResult {
  v1::TaskKind kind = v1::TASK_KIND_COUNTDOWN;
  uint64_t iterations = 0;
  uint32_t tasks = 0;
  uint32_t repeat = 0;
  uint32_t warmup = 0;
  double confidence = kConfidence;
  std::string worker;         // of the single-machine modes
  uint32_t worker_slots = 0;
  uint32_t fleet_workers = 0;
  uint32_t fleet_slots = 0;
  uint32_t fleet_machines = 0;
  uint32_t fleet_physical_cores = 0;  // each machine once (report/fleet.h)
  uint32_t fleet_logical_cpus = 0;
  std::vector<BenchRow> modes;
  std::vector<BenchRow> sweep;  // empty without --sweep
  std::vector<std::string> warmup_job_ids;
  // The noise check before the run: one line per machine, and advice.
  std::vector<std::string> noise;
  std::vector<std::string> advice;
  // Rows whose walls vary more than kHighCv, with the likely causes.
  std::vector<std::string> warnings;
};

// FailedPrecondition when no worker is ready (or `worker` is not among
// them); Aborted naming the mode when one of its jobs does not succeed;
// DeadlineExceeded past job_timeout; the client's errors otherwise.
absl::StatusOr<BenchResult> RunBench(CoordinatorClient& client, const BenchOptions& options);

// Fills the medians, intervals and verdicts of `rows` from their trials
// (rows[0] is the baseline; each trial's speedup must be set).
void SummarizeRows(std::vector<BenchRow>& rows, double confidence = kConfidence);

// Warnings for the rows whose walls vary by more than kHighCv, each with
// the likely causes: what its trials' workers measured (tasks waiting for a
// CPU, throttled, stolen from: TrialCauses) and `causes` (from the noise
// check and calibration), or a generic cause when there are none.
std::vector<std::string> UnstableRowWarnings(const std::vector<BenchRow>& rows,
                                             const std::vector<std::string>& causes);
// "its tasks waited for a CPU 34% of their time in the slowest trial", ...:
// a row's trials' interference figures over 5% (steal over 2%).
std::vector<std::string> TrialCauses(const BenchRow& row);

// {"schema":1, kind, iterations, tasks, repeat, warmup, confidence, worker,
// worker_slots, fleet{...}, noise[], advice[], warnings[], warmup_job_ids[],
// modes[row], sweep[row]}; a row: {mode, where, job_id, slots, slots_busy,
// wall_seconds, makespan_seconds, speedup, efficiency, cpu_seconds (medians),
// work_speedup, baseline, wall{median, min, max, mean, stdev, cv, ci_low,
// ci_high}, speedup_interval{low, high, min, max, coverage}, speedup_verdict,
// efficiency_interval{low, high}, efficiency_verdict, trials[{round, job_id,
// wall_seconds, makespan_seconds, cpu_seconds, speedup, work_speedup}]}.
nlohmann::json BenchToJson(const BenchResult& result);
// The table as the chapter prints it, plus the sweep when there is one.
std::string RenderBench(const BenchResult& result);
// A speedup or efficiency cell: "1.95x [1.90-1.99]", "≈ no difference (within noise)
// [0.93-1.10]", "1.14x (1 trial)"; efficiency "97.4% [95.0-99.5]",
// "≈ 100% (within noise) [98.0-103.1]", "113.5% (1 trial, no interval)".
std::string SpeedupCell(const BenchRow& row);
std::string EfficiencyCell(const BenchRow& row);

}  // namespace busyfleet::coordctl

#endif  // BUSYFLEET_COORDINATOR_CTL_COORDCTL_BENCH_H_
