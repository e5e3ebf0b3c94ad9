#include "coordinator/ctl/coordctl_bench.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "common/status_macros.h"
#include "coordinator/report/fleet.h"
#include "coordinator/report/report_format.h"

namespace busyfleet::coordctl {

using report::HumanCount;
using report::JobStateName;
namespace {

struct Mode {
  std::string name;
  std::string where;
  v1::JobSpec spec;
  uint32_t slots = 0;  // the parallelism the mode allows
};

absl::StatusOr<v1::JobReport> RunJob(CoordinatorClient& client, const Mode& mode, const BenchOptions& options) {
  if (options.on_job) options.on_job(absl::StrCat(mode.name, " (", mode.where, ")"));
  absl::StatusOr<v1::SubmitJobResponse> submitted = client.Submit(mode.spec);
  if (!submitted.ok()) return submitted.status();
  absl::StatusOr<v1::JobProgress> last = client.Watch(submitted->job_id(), /*include_tasks=*/false,
                                                      absl::Now() + options.job_timeout,
                                                      [](const v1::JobProgress&) {});
  if (!last.ok()) return last.status();
  if (!last->has_report()) {
    return absl::DeadlineExceededError(absl::StrCat("bench: ", mode.name, " job ", submitted->job_id(),
                                                    " did not end within ",
                                                    absl::FormatDuration(options.job_timeout)));
  }
  const v1::JobReport& report = last->report();
  if (report.state() != v1::JOB_STATE_SUCCEEDED) {
    return absl::AbortedError(absl::StrCat("bench: the ", mode.name, " job ", report.id(), " ended ",
                                           JobStateName(report.state()),
                                           report.error().empty() ? "" : ": " + report.error()));
  }
  return report;
}

BenchRow RowOf(const Mode& mode, const v1::JobReport& report, double serial_wall) {
  BenchRow row;
  row.mode = mode.name;
  row.where = mode.where;
  row.job_id = report.id();
  row.slots = std::min(mode.slots, mode.spec.tasks());
  row.slots_busy = report.timing().slots();
  row.wall_seconds = report.timing().wall_seconds();
  row.makespan_seconds = report.timing().makespan_seconds();
  row.cpu_seconds = report.timing().cpu_seconds();
  const double base = serial_wall > 0 ? serial_wall : row.wall_seconds;
  row.speedup = row.wall_seconds > 0 ? base / row.wall_seconds : 0;
  row.efficiency = row.slots > 0 ? row.speedup / row.slots : 0;
  return row;
}

nlohmann::json RowJson(const BenchRow& r) {
  return {{"mode", r.mode},
          {"where", r.where},
          {"job_id", r.job_id},
          {"slots", r.slots},
          {"slots_busy", r.slots_busy},
          {"wall_seconds", r.wall_seconds},
          {"makespan_seconds", r.makespan_seconds},
          {"speedup", r.speedup},
          {"efficiency", r.efficiency},
          {"cpu_seconds", r.cpu_seconds}};
}

std::string Table(const std::vector<BenchRow>& rows, bool with_where) {
  std::string out = absl::StrFormat("%-10s %5s %9s %8s %10s %9s%s\n", "MODE", "SLOTS", "WALL(s)", "SPEEDUP",
                                    "EFFICIENCY", "CPU(s)", with_where ? "  WHERE" : "");
  for (const BenchRow& r : rows) {
    absl::StrAppend(&out, absl::StrFormat("%-10s %5u %9.3f %7.2fx %9.1f%% %9.3f%s\n", r.mode, r.slots,
                                          r.wall_seconds, r.speedup, r.efficiency * 100, r.cpu_seconds,
                                          with_where ? "  " + r.where : ""));
  }
  return out;
}

// The workers the bench may use: attached, READY, with slots.
// FailedPrecondition when there are none.
absl::StatusOr<std::vector<v1::WorkerInfo>> ReadyWorkers(CoordinatorClient& client) {
  absl::StatusOr<std::vector<v1::WorkerInfo>> listed = client.ListWorkers(/*include_gone=*/false);
  if (!listed.ok()) return listed.status();
  std::vector<v1::WorkerInfo> ready;
  for (const v1::WorkerInfo& w : *listed) {
    if (w.state() == v1::WORKER_STATE_READY && w.slots() > 0) ready.push_back(w);
  }
  if (ready.empty()) {
    return absl::FailedPreconditionError("bench: no worker is attached and ready; start workers first");
  }
  return ready;
}

// The fleet's size: workers, slots, machines, and their cores, each machine
// counted once however many workers (or containers) it runs.
void CountFleet(const std::vector<v1::WorkerInfo>& ready, BenchResult& result) {
  const report::FleetSize fleet = report::CountFleet(ready);
  result.fleet_workers = fleet.workers;
  result.fleet_machines = fleet.machines;
  result.fleet_slots = static_cast<uint32_t>(fleet.slots);
  result.fleet_physical_cores = static_cast<uint32_t>(fleet.physical_cores);
  result.fleet_logical_cpus = static_cast<uint32_t>(fleet.logical_cpus);
}

// The worker of the single-machine modes: `name`, or the one with most
// slots (the first by name among equals). FailedPrecondition when `name` is
// not among `ready`.
absl::StatusOr<v1::WorkerInfo> ChooseWorker(const std::vector<v1::WorkerInfo>& ready, const std::string& name) {
  const v1::WorkerInfo* chosen = nullptr;
  for (const v1::WorkerInfo& w : ready) {
    if (!name.empty() ? w.name() == name
                      : chosen == nullptr || w.slots() > chosen->slots() ||
                            (w.slots() == chosen->slots() && w.name() < chosen->name())) {
      chosen = &w;
    }
  }
  if (chosen == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat("bench: --worker ", name, " is not an attached, ready worker"));
  }
  return *chosen;
}

// serial, threads and processes on the chosen worker, then the fleet.
std::vector<Mode> ChapterModes(const BenchResult& result, const v1::JobSpec& base) {
  auto on_worker = [&](v1::ExecMode exec, uint32_t max_slots) {
    v1::JobSpec spec = base;
    spec.add_workers(result.worker);
    spec.set_exec(exec);
    spec.set_max_slots(max_slots);
    return spec;
  };
  const std::string slots_text = absl::StrCat(result.worker_slots, result.worker_slots == 1 ? " slot" : " slots");
  std::vector<Mode> modes = {
      {"serial", absl::StrCat(result.worker, ", one slot"), on_worker(v1::EXEC_MODE_THREAD, 1), 1},
      {"threads", absl::StrCat(result.worker, ", ", slots_text, ", --exec thread"),
       on_worker(v1::EXEC_MODE_THREAD, 0), result.worker_slots},
      {"processes", absl::StrCat(result.worker, ", ", slots_text, ", --exec process"),
       on_worker(v1::EXEC_MODE_PROCESS, 0), result.worker_slots},
      {"fleet", absl::StrCat(result.fleet_workers, result.fleet_workers == 1 ? " worker, " : " workers, ",
                             result.fleet_slots, " slots"),
       base, result.fleet_slots},
  };
  for (Mode& mode : modes) mode.spec.set_name(absl::StrCat("bench-", mode.name));
  return modes;
}

// The fleet on 1, 2, ... all its slots.
std::vector<Mode> SweepModes(const BenchResult& result, const v1::JobSpec& base) {
  std::vector<Mode> modes;
  for (uint32_t k = 1; k <= result.fleet_slots; ++k) {
    Mode mode{absl::StrCat(k, k == 1 ? " slot" : " slots"), "fleet", base, k};
    mode.spec.set_max_slots(k);
    mode.spec.set_name(absl::StrCat("bench-sweep-", k));
    modes.push_back(std::move(mode));
  }
  return modes;
}

// Runs the modes one after another; speedups are against the first.
absl::StatusOr<std::vector<BenchRow>> RunModes(CoordinatorClient& client, const std::vector<Mode>& modes,
                                               const BenchOptions& options) {
  std::vector<BenchRow> rows;
  double first_wall = 0;
  for (const Mode& mode : modes) {
    absl::StatusOr<v1::JobReport> report = RunJob(client, mode, options);
    if (!report.ok()) return report.status();
    BenchRow row = RowOf(mode, *report, first_wall);
    if (rows.empty()) first_wall = row.wall_seconds;
    rows.push_back(std::move(row));
  }
  return rows;
}

}  // namespace

absl::StatusOr<BenchResult> RunBench(CoordinatorClient& client, const BenchOptions& options) {
  BF_ASSIGN_OR_RETURN(const std::vector<v1::WorkerInfo> ready, ReadyWorkers(client));
  BenchResult result;
  CountFleet(ready, result);
  BF_ASSIGN_OR_RETURN(const v1::WorkerInfo chosen, ChooseWorker(ready, options.worker));
  result.worker = chosen.name();
  result.worker_slots = chosen.slots();
  result.iterations = options.iterations;
  result.tasks = options.tasks > 0 ? options.tasks : std::max<uint32_t>(4, result.fleet_slots);

  v1::JobSpec base;
  base.set_kind(v1::TASK_KIND_COUNTDOWN);
  base.set_iterations(options.iterations);
  base.set_tasks(result.tasks);
  BF_ASSIGN_OR_RETURN(result.modes, RunModes(client, ChapterModes(result, base), options));
  if (options.sweep) {
    BF_ASSIGN_OR_RETURN(result.sweep, RunModes(client, SweepModes(result, base), options));
  }
  return result;
}

nlohmann::json BenchToJson(const BenchResult& r) {
  nlohmann::json j = {{"schema", 1},
                      {"iterations", r.iterations},
                      {"tasks", r.tasks},
                      {"worker", r.worker},
                      {"worker_slots", r.worker_slots},
                      {"fleet",
                       {{"workers", r.fleet_workers},
                        {"machines", r.fleet_machines},
                        {"slots", r.fleet_slots},
                        {"physical_cores", r.fleet_physical_cores},
                        {"logical_cpus", r.fleet_logical_cpus}}},
                      {"modes", nlohmann::json::array()},
                      {"sweep", nlohmann::json::array()}};
  for (const BenchRow& row : r.modes) j["modes"].push_back(RowJson(row));
  for (const BenchRow& row : r.sweep) j["sweep"].push_back(RowJson(row));
  return j;
}

std::string RenderBench(const BenchResult& r) {
  std::string out = absl::StrFormat(
      "The chapter, measured: %u tasks x %s countdown iterations\n"
      "fleet: %u worker%s on %u machine%s, %u slots (%u physical cores, %u logical CPUs)\n\n",
      r.tasks, HumanCount(static_cast<double>(r.iterations)), r.fleet_workers, r.fleet_workers == 1 ? "" : "s",
      r.fleet_machines, r.fleet_machines == 1 ? "" : "s", r.fleet_slots, r.fleet_physical_cores,
      r.fleet_logical_cpus);
  absl::StrAppend(&out, Table(r.modes, /*with_where=*/true));
  absl::StrAppend(&out,
                  "\nspeedup = serial wall / wall; efficiency = speedup / slots. Unlike the chapter's Python, "
                  "threads scale too:\nthe C++ countdown holds no interpreter lock.\n");
  if (!r.sweep.empty()) {
    absl::StrAppend(&out, "\nScaling over the fleet (same tasks, --max-slots 1.."  , r.fleet_slots, "):\n",
                    Table(r.sweep, /*with_where=*/false));
  }
  return out;
}

}  // namespace busyfleet::coordctl
