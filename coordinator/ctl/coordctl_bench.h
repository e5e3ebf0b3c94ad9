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

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "busyfleet/v1/coordinator.pb.h"
#include "coordinator/ctl/coordctl_client.h"
#include "nlohmann/json.hpp"

namespace busyfleet::coordctl {

struct BenchOptions {
  uint64_t iterations = 500'000'000;
  // 0: one per slot of the fleet, at least 4 (the chapter's 4).
  uint32_t tasks = 0;
  bool sweep = false;
  // The worker of the single-machine modes; empty: the one with most slots.
  std::string worker;
  // Longest any one job may take.
  absl::Duration job_timeout = absl::Minutes(30);
  // Called before each job starts, e.g. "threads (worker-1, 2 slots)".
  std::function<void(const std::string&)> on_job;
};

struct BenchRow {
  std::string mode;  // serial, threads, processes, fleet, or "N slots" in a sweep
  std::string where;
  std::string job_id;
  uint32_t slots = 0;        // parallelism the mode allows: min(tasks, its slots)
  uint32_t slots_busy = 0;   // the most tasks that actually ran at once (the report's slots)
  double wall_seconds = 0;   // submit -> last result
  double makespan_seconds = 0;
  double speedup = 0;        // serial wall / this wall
  double efficiency = 0;     // speedup / slots
  double cpu_seconds = 0;
};

struct BenchResult {
  uint64_t iterations = 0;
  uint32_t tasks = 0;
  std::string worker;         // of the single-machine modes
  uint32_t worker_slots = 0;
  uint32_t fleet_workers = 0;
  uint32_t fleet_slots = 0;
  uint32_t fleet_machines = 0;
  uint32_t fleet_physical_cores = 0;  // each machine once (report/fleet.h)
  uint32_t fleet_logical_cpus = 0;
  std::vector<BenchRow> modes;
  std::vector<BenchRow> sweep;  // empty without --sweep
};

// FailedPrecondition when no worker is ready (or `worker` is not among
// them); Aborted naming the mode when one of its jobs does not succeed;
// DeadlineExceeded past job_timeout; the client's errors otherwise.
absl::StatusOr<BenchResult> RunBench(CoordinatorClient& client, const BenchOptions& options);

// {"schema":1, iterations, tasks, worker, worker_slots, fleet{workers, slots,
// physical_cores, logical_cpus}, modes[{mode, where, job_id, slots, slots_busy,
// wall_seconds, makespan_seconds, speedup, efficiency, cpu_seconds}],
// sweep[same]}.
nlohmann::json BenchToJson(const BenchResult& result);
// The table as the chapter prints it, plus the sweep when there is one.
std::string RenderBench(const BenchResult& result);

}  // namespace busyfleet::coordctl

#endif  // BUSYFLEET_COORDINATOR_CTL_COORDCTL_BENCH_H_
