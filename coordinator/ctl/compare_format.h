#ifndef BUSYFLEET_COORDINATOR_CTL_COMPARE_FORMAT_H_
#define BUSYFLEET_COORDINATOR_CTL_COMPARE_FORMAT_H_

// `coordctl compare JOB_A JOB_B`: two reports side by side, with the ratio
// B/A of each figure, as JSON (`-o json`) and as text tables.
// Pure functions of the generated reports: no I/O, no gRPC, thread-safe.

#include <string>
#include <vector>

#include "busyfleet/v1/coordinator.pb.h"
#include "nlohmann/json.hpp"

namespace busyfleet::coordctl {

// {"schema": 1,
//  "a": {"id", "name", "state"}, "b": {...},
//  "metrics": [{"metric", "a", "b", "ratio"}...],
//  "workers": [{"name", "a", "b", "ratio"}...]}.
// metrics, in this order: wall_seconds, makespan_seconds, serial_seconds,
// overhead_seconds, speedup, efficiency, slots, cpu_seconds,
// task_p50_seconds, task_p99_seconds, mean_queued_seconds,
// mean_dispatch_seconds, mean_result_seconds, tasks (tasks_total, or the
// task rows when that is 0), iterations_total. workers: iterations per second
// per slot (WorkerTiming.iterations_per_second) of every worker named in
// either report, by name; a worker missing from one side has null there (a
// name repeated in one report counts its first row). ratio = b / a; null when
// a is 0, either side is null, or the result is not finite. Non-finite
// figures are null. Counts are JSON integers.
nlohmann::json CompareToJson(const v1::JobReport& a, const v1::JobReport& b);

// Plain text, ending in a newline: lines "A: <id> (<name>)  <STATE>" and the
// same for B, a table METRIC A B B/A (seconds with 3 decimals, speedup
// "1.97x", efficiency "98.5%", counts as integers, iterations as HumanCount,
// ratio "0.52x", "-" for null), then, when either report has workers, a table
// WORKER A IT/S/SLOT B IT/S/SLOT B/A (HumanCount).
std::string RenderCompare(const v1::JobReport& a, const v1::JobReport& b);

// `coordctl compare A1,A2,A3 B1,B2`: repeated runs on each side (each side
// non-empty). Per metric the median of each side, ratio = median(B) /
// median(A) with a bootstrap 95% interval (common/trials.h, each side
// resampled on its own) and a verdict. JSON: CompareToJson's shape with
// "a"/"b" gaining "ids", "confidence", and each metric gaining
// "ratio_low", "ratio_high", "verdict" (VerdictName; null without a ratio),
// "a_trials", "b_trials" (every job's figure); "a"/"b" of a metric are the
// medians; "workers" is empty.
nlohmann::json CompareSetsToJson(const std::vector<v1::JobReport>& a, const std::vector<v1::JobReport>& b);
std::string RenderCompareSets(const std::vector<v1::JobReport>& a, const std::vector<v1::JobReport>& b);

}  // namespace busyfleet::coordctl

#endif  // BUSYFLEET_COORDINATOR_CTL_COMPARE_FORMAT_H_
