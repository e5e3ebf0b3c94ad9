#ifndef BUSYFLEET_COORDINATOR_CORE_JOB_SPLITTER_H_
#define BUSYFLEET_COORDINATOR_CORE_JOB_SPLITTER_H_

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "busyfleet/v1/types.pb.h"

namespace busyfleet::coordinator {

// One task of a job, as split.
struct TaskSpec {
  uint32_t index = 0;
  uint64_t iterations = 0;        // countdown, python
  absl::Duration duration;        // spin, sleep
};

// Kinds that take iterations (per task, or a total) rather than a duration:
// countdown and python (the same loop in C++ and in the embedded CPython).
inline bool KindTakesIterations(v1::TaskKind kind) {
  return kind == v1::TASK_KIND_COUNTDOWN || kind == v1::TASK_KIND_PYTHON;
}

// Checks every field of `spec` against limits.h. InvalidArgument names the
// field, the limit and the value received.
absl::Status ValidateJobSpec(const v1::JobSpec& spec);

// Checks a name (job, worker, label): printable UTF-8, at most
// limits::kMaxNameBytes bytes. `field` names it in the error.
absl::Status ValidateName(absl::string_view field, absl::string_view name, bool allow_empty);

// A job's split without a vector of its tasks (a million-task job needs
// none): how many, and each one's work by index.
struct JobPlan {
  uint32_t tasks = 0;
  absl::Duration duration;  // every task's (spin, sleep)
  bool takes_iterations = false;
  uint64_t iterations = 0;  // every task's, when not split from a total
  // Split from a total: `base` each, one more for the first `remainder`.
  bool from_total = false;
  uint64_t base = 0;
  uint64_t remainder = 0;

  uint64_t Iterations(uint32_t index) const {
    if (!takes_iterations) return 0;
    return from_total ? base + (index < remainder ? 1 : 0) : iterations;
  }
  // How many of the `limit` tasks from `index` (limit >= 1) have task
  // `index`'s work: all of them, or those before the remainder's end.
  uint32_t SameWorkRun(uint32_t index, uint32_t limit) const {
    if (!takes_iterations || !from_total || index >= remainder) return limit;
    return static_cast<uint32_t>(std::min<uint64_t>(limit, remainder - index));
  }
  TaskSpec Task(uint32_t index) const { return TaskSpec{index, Iterations(index), duration}; }
};

// Every task's duration: the spec's for spin and sleep, zero for the
// kinds that take iterations.
absl::Duration TaskDuration(const v1::JobSpec& spec);

// The plan of a job split into `tasks` tasks (a validated spec; tasks >= 1).
JobPlan PlanFor(const v1::JobSpec& spec, uint32_t tasks);

// The plan of a job: what SplitJob returns, as a formula.
absl::StatusOr<JobPlan> PlanJob(const v1::JobSpec& spec, int free_slots, int total_slots);

// Splits a validated job into tasks. A pure function.
//  - `tasks` N with `iterations` I: N tasks of I iterations each;
//  - `total` T with `tasks` N: N near-equal parts, the first T mod N one larger;
//  - `tasks_auto`: one task per free slot (`free_slots`), or per slot of the
//    fleet (`total_slots`) when none is free; FailedPrecondition when there
//    are no slots at all.
// spin and sleep tasks all get `duration`.
absl::StatusOr<std::vector<TaskSpec>> SplitJob(const v1::JobSpec& spec, int free_slots,
                                               int total_slots);

}  // namespace busyfleet::coordinator

#endif  // BUSYFLEET_COORDINATOR_CORE_JOB_SPLITTER_H_
