#include "coordinator/ctl/coordctl_bench.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "common/status_macros.h"
#include "coordinator/ctl/bench_noise.h"
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

absl::StatusOr<v1::JobReport> RunJob(CoordinatorClient& client, const Mode& mode, const std::string& label,
                                     const BenchOptions& options) {
  if (options.on_job) options.on_job(absl::StrCat(label, mode.name, " (", mode.where, ")"));
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

BenchTrial TrialOf(uint32_t round, const v1::JobReport& report) {
  BenchTrial t;
  t.round = round;
  t.job_id = report.id();
  t.wall_seconds = report.timing().wall_seconds();
  t.makespan_seconds = report.timing().makespan_seconds();
  t.cpu_seconds = report.timing().cpu_seconds();
  t.work_speedup = report.timing().work_speedup();
  double busy = 0;
  double wait = 0;
  double throttled = 0;
  for (const v1::WorkerTiming& w : report.workers()) {
    if (w.tasks_measured() == 0) continue;
    busy += w.busy_seconds();
    wait += w.run_queue_wait_seconds();
    throttled += w.throttled_seconds();
    t.steal_share = std::max(t.steal_share, w.steal_share());
  }
  if (busy > 0) {
    t.wait_share = std::min(1.0, wait / busy);
    t.throttled_share = std::min(1.0, throttled / busy);
  }
  return t;
}

nlohmann::json IntervalJson(const Interval& i) { return {{"low", i.low}, {"high", i.high}}; }

nlohmann::json RowJson(const BenchRow& r) {
  nlohmann::json trials = nlohmann::json::array();
  for (const BenchTrial& t : r.trials) {
    trials.push_back({{"round", t.round},
                      {"job_id", t.job_id},
                      {"wall_seconds", t.wall_seconds},
                      {"makespan_seconds", t.makespan_seconds},
                      {"cpu_seconds", t.cpu_seconds},
                      {"speedup", t.speedup},
                      {"work_speedup", t.work_speedup},
                      {"wait_share", t.wait_share},
                      {"throttled_share", t.throttled_share},
                      {"steal_share", t.steal_share}});
  }
  nlohmann::json speedup_interval = IntervalJson(r.speedups.ci);
  speedup_interval["min"] = r.speedups.min;
  speedup_interval["max"] = r.speedups.max;
  speedup_interval["coverage"] = r.speedups.coverage;
  return {{"mode", r.mode},
          {"where", r.where},
          {"job_id", r.job_id},
          {"slots", r.slots},
          {"slots_busy", r.slots_busy},
          {"wall_seconds", r.wall_seconds},
          {"makespan_seconds", r.makespan_seconds},
          {"speedup", r.speedup},
          {"efficiency", r.efficiency},
          {"cpu_seconds", r.cpu_seconds},
          {"work_speedup", r.work_speedup},
          {"baseline", r.baseline},
          {"wall",
           {{"median", r.wall.median},
            {"min", r.wall.min},
            {"max", r.wall.max},
            {"mean", r.wall.mean},
            {"stdev", r.wall.stdev},
            {"cv", r.wall.cv},
            {"ci_low", r.wall.ci.low},
            {"ci_high", r.wall.ci.high}}},
          {"speedup_interval", speedup_interval},
          {"speedup_verdict", VerdictName(r.speedup_verdict)},
          {"efficiency_interval", IntervalJson(r.efficiency_ci)},
          {"efficiency_verdict", VerdictName(r.efficiency_verdict)},
          {"trials", trials}};
}

// `text` padded with spaces to `width` columns (UTF-8: one column per code
// point, so that "≈" counts once).
std::string Pad(const std::string& text, size_t width) {
  size_t columns = 0;
  for (unsigned char c : text) columns += (c & 0xC0) != 0x80;
  return columns >= width ? text : text + std::string(width - columns, ' ');
}

std::string Table(const std::vector<BenchRow>& rows, bool with_where, double confidence) {
  const std::string ci = absl::StrFormat("[%g%% CI]", confidence * 100);
  std::string out = absl::StrFormat("%-10s %5s %8s %-15s %5s  %s %s\n", "MODE", "SLOTS", "WALL(s)", "[MIN-MAX]",
                                    "CV", Pad("SPEEDUP " + ci, 44), "EFFICIENCY " + ci);
  for (const BenchRow& r : rows) {
    absl::StrAppend(&out, absl::StrFormat("%-10s %5u %8.3f %-15s %4.1f%%  %s %s\n", r.mode, r.slots,
                                          r.wall_seconds, absl::StrFormat("[%.3f-%.3f]", r.wall.min, r.wall.max),
                                          r.wall.cv * 100, Pad(SpeedupCell(r), 44), EfficiencyCell(r)));
  }
  if (with_where) {
    for (const BenchRow& r : rows) absl::StrAppend(&out, "  ", Pad(r.mode + ":", 11), r.where, "\n");
  }
  return out;
}

// The workers the bench may use: attached, READY, with slots.
// FailedPrecondition when there are none.
std::vector<v1::WorkerInfo> ReadyOf(const std::vector<v1::WorkerInfo>& listed) {
  std::vector<v1::WorkerInfo> ready;
  for (const v1::WorkerInfo& w : listed) {
    if (w.state() == v1::WORKER_STATE_READY && w.slots() > 0) ready.push_back(w);
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

std::vector<BenchRow> EmptyRows(const std::vector<Mode>& modes) {
  std::vector<BenchRow> rows;
  for (const Mode& mode : modes) {
    BenchRow row;
    row.mode = mode.name;
    row.where = mode.where;
    row.slots = std::min(mode.slots, mode.spec.tasks());
    rows.push_back(std::move(row));
  }
  if (!rows.empty()) rows[0].baseline = true;
  return rows;
}

// Runs `warmup` uncounted rounds, then `repeat` counted ones, each round
// every mode in order; speedups are against the first mode of the round.
absl::StatusOr<std::vector<BenchRow>> RunModes(CoordinatorClient& client, const std::vector<Mode>& modes,
                                               const BenchOptions& options, std::vector<std::string>& warmup_ids) {
  std::vector<BenchRow> rows = EmptyRows(modes);
  const uint32_t rounds = options.warmup + options.repeat;
  for (uint32_t r = 0; r < rounds; ++r) {
    const bool counted = r >= options.warmup;
    const std::string label = counted ? absl::StrCat("round ", r - options.warmup + 1, "/", options.repeat, ": ")
                                      : absl::StrCat("warm-up ", r + 1, "/", options.warmup, ": ");
    for (size_t m = 0; m < modes.size(); ++m) {
      absl::StatusOr<v1::JobReport> report = RunJob(client, modes[m], label, options);
      if (!report.ok()) return report.status();
      if (!counted) {
        warmup_ids.push_back(report->id());
        continue;
      }
      BenchTrial trial = TrialOf(r - options.warmup + 1, *report);
      const double base = m == 0 ? trial.wall_seconds : rows[0].trials.back().wall_seconds;
      trial.speedup = trial.wall_seconds > 0 ? base / trial.wall_seconds : 0;
      rows[m].slots_busy = std::max(rows[m].slots_busy, report->timing().slots());
      rows[m].trials.push_back(std::move(trial));
    }
  }
  SummarizeRows(rows, options.confidence);
  return rows;
}

double MedianOf(const std::vector<BenchTrial>& trials, double BenchTrial::*field) {
  std::vector<double> values;
  for (const BenchTrial& t : trials) values.push_back(t.*field);
  return SummarizeTrials(values).median;
}

}  // namespace

uint64_t DefaultBenchIterations(v1::TaskKind kind) {
  return kind == v1::TASK_KIND_PYTHON ? 10'000'000 : 500'000'000;
}

void SummarizeRows(std::vector<BenchRow>& rows, double confidence) {
  for (BenchRow& row : rows) {
    std::vector<double> walls;
    std::vector<double> speedups;
    for (const BenchTrial& t : row.trials) {
      walls.push_back(t.wall_seconds);
      speedups.push_back(t.speedup);
    }
    row.wall = SummarizeTrials(walls, confidence);
    row.speedups = SummarizeTrials(speedups, confidence);
    row.wall_seconds = row.wall.median;
    row.makespan_seconds = MedianOf(row.trials, &BenchTrial::makespan_seconds);
    row.cpu_seconds = MedianOf(row.trials, &BenchTrial::cpu_seconds);
    row.work_speedup = MedianOf(row.trials, &BenchTrial::work_speedup);
    row.speedup = row.speedups.median;
    if (!row.trials.empty()) row.job_id = row.trials.back().job_id;
    const double slots = std::max<uint32_t>(row.slots, 1);
    row.efficiency = row.speedup / slots;
    row.efficiency_ci = {row.speedups.ci.low / slots, row.speedups.ci.high / slots};
    row.speedup_verdict = Judge(row.speedups.ci, 1.0, row.speedups.n);
    row.efficiency_verdict = Judge(row.efficiency_ci, 1.0, row.speedups.n);
  }
}

std::string SpeedupCell(const BenchRow& row) {
  if (row.baseline) return "1x (baseline)";
  const std::string interval = absl::StrFormat("[%.2f-%.2f]", row.speedups.ci.low, row.speedups.ci.high);
  switch (row.speedup_verdict) {
    case Verdict::kSingleTrial:
      return absl::StrFormat("%.2fx (1 trial)", row.speedup);
    case Verdict::kWithinNoise:
      return "≈ no difference (within noise) " + interval;
    default:
      return absl::StrFormat("%.2fx ", row.speedup) + interval;
  }
}

std::string EfficiencyCell(const BenchRow& row) {
  if (row.baseline) return "-";
  const std::string interval =
      absl::StrFormat("[%.1f-%.1f]", row.efficiency_ci.low * 100, row.efficiency_ci.high * 100);
  switch (row.efficiency_verdict) {
    case Verdict::kSingleTrial:
      return absl::StrFormat("%.1f%% (1 trial, no interval)", row.efficiency * 100);
    case Verdict::kWithinNoise:
      return "≈ 100% (within noise) " + interval;
    default:
      return absl::StrFormat("%.1f%% ", row.efficiency * 100) + interval;
  }
}

std::vector<std::string> TrialCauses(const BenchRow& row) {
  double wait = 0;
  double throttled = 0;
  double steal = 0;
  for (const BenchTrial& t : row.trials) {
    wait = std::max(wait, t.wait_share);
    throttled = std::max(throttled, t.throttled_share);
    steal = std::max(steal, t.steal_share);
  }
  std::vector<std::string> causes;
  if (wait >= 0.05) {
    causes.push_back(absl::StrFormat("its tasks waited for a CPU up to %.0f%% of their time (another process "
                                     "had it)", wait * 100));
  }
  if (throttled >= 0.05) {
    causes.push_back(absl::StrFormat("its worker's cgroup was throttled up to %.0f%% of the tasks' time (a CPU "
                                     "quota)", throttled * 100));
  }
  if (steal >= 0.02) causes.push_back(absl::StrFormat("the hypervisor stole up to %.0f%% of a CPU", steal * 100));
  return causes;
}

std::vector<std::string> UnstableRowWarnings(const std::vector<BenchRow>& rows,
                                             const std::vector<std::string>& noise_causes) {
  std::vector<std::string> warnings;
  for (const BenchRow& row : rows) {
    if (row.wall.n < 2 || row.wall.cv <= kHighCv) continue;
    std::vector<std::string> causes = TrialCauses(row);
    causes.insert(causes.end(), noise_causes.begin(), noise_causes.end());
    warnings.push_back(absl::StrFormat(
        "%s: the %u trials vary by %.0f%% (CV; min %.3f s, max %.3f s): the benchmark seems unstable. Likely: %s",
        row.mode, static_cast<unsigned>(row.wall.n), row.wall.cv * 100, row.wall.min, row.wall.max,
        causes.empty() ? "the machine itself (other load, CPUs of different speed, frequency changes); "
                         "run more trials (--repeat) and compare intervals, not single figures"
                       : absl::StrJoin(causes, "; ")));
  }
  return warnings;
}

// A worker that calibrated (it has a host monitor) but has not sent its
// first load figures yet: it attached less than a second ago.
bool AwaitsNoise(const std::vector<v1::WorkerInfo>& workers) {
  return std::any_of(workers.begin(), workers.end(), [](const v1::WorkerInfo& w) {
    return w.calibrations_size() > 0 && !w.has_noise();
  });
}

// The ready workers, once their first load figures are in (at most
// kNoiseWait: a worker sends them a second after it starts).
absl::StatusOr<std::vector<v1::WorkerInfo>> ReadyWithNoise(CoordinatorClient& client) {
  constexpr absl::Duration kNoiseWait = absl::Seconds(3);
  const absl::Time deadline = absl::Now() + kNoiseWait;
  for (;;) {
    absl::StatusOr<std::vector<v1::WorkerInfo>> listed = client.ListWorkers(/*include_gone=*/false);
    if (!listed.ok()) return listed.status();
    std::vector<v1::WorkerInfo> ready = ReadyOf(*listed);
    if (!AwaitsNoise(ready) || absl::Now() >= deadline) return ready;
    absl::SleepFor(absl::Milliseconds(200));  // polling the coordinator, bounded by the deadline
  }
}

absl::StatusOr<BenchResult> RunBench(CoordinatorClient& client, const BenchOptions& options) {
  BF_ASSIGN_OR_RETURN(const std::vector<v1::WorkerInfo> ready, ReadyWithNoise(client));
  if (ready.empty()) {
    return absl::FailedPreconditionError("bench: no worker is attached and ready; start workers first");
  }
  BenchResult result;
  CountFleet(ready, result);
  BF_ASSIGN_OR_RETURN(const v1::WorkerInfo chosen, ChooseWorker(ready, options.worker));
  result.kind = options.kind;
  result.worker = chosen.name();
  result.worker_slots = chosen.slots();
  result.iterations = options.iterations > 0 ? options.iterations : DefaultBenchIterations(options.kind);
  result.tasks = options.tasks > 0 ? options.tasks : std::max<uint32_t>(4, result.fleet_slots);
  result.repeat = std::max<uint32_t>(options.repeat, 1);
  result.warmup = options.warmup;
  result.confidence = options.confidence;
  const NoiseCheck noise = CheckNoise(ready, options.kind);
  result.noise = noise.lines;
  result.advice = noise.advice;

  BenchOptions run = options;
  run.repeat = result.repeat;
  v1::JobSpec base;
  base.set_kind(options.kind);
  base.set_iterations(result.iterations);
  base.set_tasks(result.tasks);
  BF_ASSIGN_OR_RETURN(result.modes, RunModes(client, ChapterModes(result, base), run, result.warmup_job_ids));
  if (options.sweep) {
    BF_ASSIGN_OR_RETURN(result.sweep, RunModes(client, SweepModes(result, base), run, result.warmup_job_ids));
  }
  result.warnings = UnstableRowWarnings(result.modes, noise.causes);
  for (std::string& w : UnstableRowWarnings(result.sweep, noise.causes)) result.warnings.push_back("sweep " + w);
  return result;
}

nlohmann::json BenchToJson(const BenchResult& r) {
  nlohmann::json j = {{"schema", 1},
                      {"kind", report::TaskKindName(r.kind)},
                      {"iterations", r.iterations},
                      {"tasks", r.tasks},
                      {"repeat", r.repeat},
                      {"warmup", r.warmup},
                      {"confidence", r.confidence},
                      {"worker", r.worker},
                      {"worker_slots", r.worker_slots},
                      {"fleet",
                       {{"workers", r.fleet_workers},
                        {"machines", r.fleet_machines},
                        {"slots", r.fleet_slots},
                        {"physical_cores", r.fleet_physical_cores},
                        {"logical_cpus", r.fleet_logical_cpus}}},
                      {"noise", r.noise},
                      {"advice", r.advice},
                      {"warnings", r.warnings},
                      {"warmup_job_ids", r.warmup_job_ids},
                      {"modes", nlohmann::json::array()},
                      {"sweep", nlohmann::json::array()}};
  for (const BenchRow& row : r.modes) j["modes"].push_back(RowJson(row));
  for (const BenchRow& row : r.sweep) j["sweep"].push_back(RowJson(row));
  return j;
}

std::string RenderBench(const BenchResult& r) {
  std::string out;
  if (!r.noise.empty()) {
    absl::StrAppend(&out, "Noise check before the run:\n");
    for (const std::string& line : r.noise) absl::StrAppend(&out, "  ", line, "\n");
    for (const std::string& line : r.advice) absl::StrAppend(&out, "  advice: ", line, "\n");
    absl::StrAppend(&out, "\n");
  }
  absl::StrAppend(
      &out,
      absl::StrFormat("The chapter, measured: %u tasks x %s %s iterations, %u trial%s per mode (interleaved%s)\n"
                      "fleet: %u worker%s on %u machine%s, %u slots (%u physical cores, %u logical CPUs)\n\n",
                      r.tasks, HumanCount(static_cast<double>(r.iterations)), report::TaskKindName(r.kind),
                      r.repeat, r.repeat == 1 ? "" : "s",
                      r.warmup > 0 ? absl::StrCat(", after ", r.warmup, " warm-up round", r.warmup == 1 ? "" : "s")
                                   : "",
                      r.fleet_workers, r.fleet_workers == 1 ? "" : "s", r.fleet_machines,
                      r.fleet_machines == 1 ? "" : "s", r.fleet_slots, r.fleet_physical_cores,
                      r.fleet_logical_cpus));
  absl::StrAppend(&out, Table(r.modes, /*with_where=*/true, r.confidence));
  absl::StrAppend(
      &out,
      "\nWALL: the median over the trials, [the fastest-the slowest], CV = stdev / mean.\n"
      "SPEEDUP: the median of each round's serial wall / this wall; [CI]: distribution-free interval of that\n"
      "median (with under 6 trials at 95% it is the whole range: see JSON speedup_interval.coverage).\n"
      "EFFICIENCY = speedup / slots. \"≈ ... (within noise)\": the interval holds 1x (100%): no difference\n"
      "can be told from this machine's noise.\n");
  for (const BenchRow& row : r.modes) {
    if (row.work_speedup > 0 && !row.baseline) {
      std::vector<std::string> parts;
      for (const BenchRow& each : r.modes) parts.push_back(absl::StrFormat("%s %.2fx", each.mode, each.work_speedup));
      absl::StrAppend(&out, "Work speedup, against the iterations at the workers' calibrated per-core rates: ",
                      absl::StrJoin(parts, "  "), "\n");
      break;
    }
  }
  if (r.kind == v1::TASK_KIND_COUNTDOWN) {
    absl::StrAppend(&out, "Unlike the chapter's Python, threads scale too: the C++ countdown holds no interpreter lock.\n");
  } else if (r.kind == v1::TASK_KIND_PYTHON) {
    absl::StrAppend(&out,
                    "The chapter's result: the worker's threads share one interpreter lock (the GIL), so they take\n"
                    "turns; processes each have their own interpreter and run at once.\n");
  }
  if (!r.sweep.empty()) {
    absl::StrAppend(&out, "\nScaling over the fleet (same tasks, --max-slots 1..", r.fleet_slots, "):\n",
                    Table(r.sweep, /*with_where=*/false, r.confidence));
  }
  for (const std::string& w : r.warnings) absl::StrAppend(&out, "\nWARNING: ", w, "\n");
  return out;
}

}  // namespace busyfleet::coordctl
