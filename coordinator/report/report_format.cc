#include "coordinator/report/report_format.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "busyfleet/proto_time.h"
#include "coordinator/report/fleet.h"
#include "coordinator/report/format.h"
#include "coordinator/report/text_table.h"

namespace busyfleet::report {
namespace {

using nlohmann::json;

// The job's task count above which RenderReport leaves out the per-task table
// unless asked for it.
constexpr int kMaxTasksShownByDefault = 16;
// Straggler indices listed on the stragglers line before "... and N more".
constexpr int kMaxStragglersListed = 20;
// Inner width of the progress bar: at most (room allowing), and the least
// worth drawing.
constexpr int kMaxBarWidth = 30;
constexpr int kMinBarWidth = 4;

json PhasesJson(double queued, double dispatch, double result) {
  json phases = json::object();
  phases["queued_seconds"] = JsonNumber(queued);
  phases["dispatch_seconds"] = JsonNumber(dispatch);
  phases["result_seconds"] = JsonNumber(result);
  return phases;
}

json TimingJson(const v1::JobTiming& t) {
  json timing = json::object();
  timing["submitted_at"] = Rfc3339(t.submitted_at());
  timing["started_at"] = Rfc3339(t.started_at());
  timing["finished_at"] = Rfc3339(t.finished_at());
  timing["wall_seconds"] = JsonNumber(t.wall_seconds());
  timing["makespan_seconds"] = JsonNumber(t.makespan_seconds());
  timing["serial_seconds"] = JsonNumber(t.serial_seconds());
  timing["overhead_seconds"] = JsonNumber(t.overhead_seconds());
  timing["speedup"] = JsonNumber(t.speedup());
  timing["efficiency"] = JsonNumber(t.efficiency());
  timing["slots"] = t.slots();
  const v1::TaskDurationStats& s = t.task_seconds();
  timing["task_seconds"] = {{"min", JsonNumber(s.min())},
                            {"p50", JsonNumber(s.p50())},
                            {"p90", JsonNumber(s.p90())},
                            {"p99", JsonNumber(s.p99())},
                            {"max", JsonNumber(s.max())}};
  timing["cpu_seconds"] = JsonNumber(t.cpu_seconds());
  timing["work_serial_seconds"] = JsonNumber(t.work_serial_seconds());
  timing["work_speedup"] = JsonNumber(t.work_speedup());
  timing["work_efficiency"] = JsonNumber(t.work_efficiency());
  timing["slow_tasks"] = t.slow_tasks();
  timing["phases"] =
      PhasesJson(t.mean_queued_seconds(), t.mean_dispatch_seconds(),
                 t.mean_result_seconds());
  return timing;
}

json WorkerTimingJson(const v1::WorkerTiming& w) {
  json worker = json::object();
  worker["name"] = w.name();
  worker["host"] = w.host();
  worker["slots"] = w.slots();
  worker["tasks"] = w.tasks();
  worker["iterations"] = w.iterations();
  worker["busy_seconds"] = JsonNumber(w.busy_seconds());
  worker["utilization"] = JsonNumber(w.utilization());
  worker["iterations_per_second"] = JsonNumber(w.iterations_per_second());
  worker["slots_used"] = w.slots_used();
  worker["calibrated_rate"] = JsonNumber(w.calibrated_rate());
  worker["rate_ratio"] = JsonNumber(w.rate_ratio());
  worker["steal_share"] = JsonNumber(w.steal_share());
  worker["throttled_seconds"] = JsonNumber(w.throttled_seconds());
  worker["throttled_share"] = JsonNumber(w.throttled_share());
  worker["run_queue_wait_seconds"] = JsonNumber(w.run_queue_wait_seconds());
  worker["involuntary_switches"] = w.involuntary_switches();
  worker["tasks_measured"] = w.tasks_measured();
  return worker;
}

// The figures measured (absent ones left out), times in seconds.
json InterferenceJson(const v1::Interference& m) {
  json out = json::object();
  if (m.has_run_queue_wait_ns()) out["run_queue_wait_seconds"] = JsonNumber(static_cast<double>(m.run_queue_wait_ns()) / 1e9);
  if (m.has_involuntary_switches()) out["involuntary_switches"] = m.involuntary_switches();
  if (m.has_steal_ns()) out["steal_seconds"] = JsonNumber(static_cast<double>(m.steal_ns()) / 1e9);
  if (m.has_steal_share()) out["steal_share"] = JsonNumber(m.steal_share());
  if (m.has_throttled_ns()) out["throttled_seconds"] = JsonNumber(static_cast<double>(m.throttled_ns()) / 1e9);
  if (m.has_throttled_periods()) out["throttled_periods"] = m.throttled_periods();
  if (m.has_periods()) out["periods"] = m.periods();
  return out;
}

json TaskTimingJson(const v1::TaskTiming& t) {
  json task = json::object();
  task["index"] = t.index();
  task["worker"] = t.worker();
  task["slot"] = t.slot();
  task["attempt"] = t.attempt();
  task["state"] = TaskStateName(t.state());
  task["iterations"] = t.iterations();
  task["start_offset_seconds"] = JsonNumber(t.start_offset_seconds());
  task["seconds"] = JsonNumber(t.seconds());
  task["cpu_seconds"] = JsonNumber(t.cpu_seconds());
  if (!t.error().empty()) task["error"] = t.error();
  if (t.pid() != 0) task["pid"] = t.pid();
  if (t.has_start_cpu()) task["start_cpu"] = t.start_cpu();
  if (t.has_end_cpu()) task["end_cpu"] = t.end_cpu();
  if (t.has_start_cpu() && t.has_end_cpu()) task["migrated"] = t.migrated();
  if (!t.bound_cpus().empty()) task["bound_cpus"] = t.bound_cpus();
  if (t.calibrated_rate() > 0) {
    task["calibrated_rate"] = JsonNumber(t.calibrated_rate());
    task["rate_ratio"] = JsonNumber(t.rate_ratio());
  }
  if (t.has_interference()) task["interference"] = InterferenceJson(t.interference());
  if (!t.slow_cause().empty()) task["slow_cause"] = t.slow_cause();
  if (t.speculated()) {
    task["speculated"] = true;
    task["backup_won"] = t.backup_won();
  }
  task["phases"] =
      PhasesJson(t.queued_seconds(), t.dispatch_seconds(), t.result_seconds());
  return task;
}

json SpecJson(const v1::JobSpec& s) {
  json spec = json::object();
  spec["tasks"] = s.tasks();
  spec["iterations"] = s.iterations();
  spec["total"] = s.total();
  spec["duration_seconds"] = JsonNumber(ToDoubleSeconds(s.duration()));
  spec["max_slots"] = s.max_slots();
  spec["max_attempts"] = s.max_attempts();
  spec["exec"] = ExecModeName(s.exec());
  spec["task_timeout_seconds"] = JsonNumber(ToDoubleSeconds(s.task_timeout()));
  spec["pending_timeout_seconds"] = JsonNumber(ToDoubleSeconds(s.pending_timeout()));
  spec["speculate"] = s.speculate();
  json workers = json::array();
  for (const std::string& w : s.workers()) workers.push_back(w);
  spec["workers"] = std::move(workers);
  json selector = json::object();
  for (const auto& [key, value] : s.selector()) selector[key] = value;
  spec["selector"] = std::move(selector);
  return spec;
}

// "4 x 10,000,000 iterations (40,000,000 in all)", "4 x 2.000s spin", ...
std::string TasksLine(const v1::JobReport& report) {
  const uint32_t n = TaskCount(report);
  const v1::JobSpec& spec = report.spec();
  const std::string tasks = absl::StrCat(n, n == 1 ? " task" : " tasks");
  switch (report.kind()) {
    case v1::TASK_KIND_COUNTDOWN:
    case v1::TASK_KIND_PYTHON: {
      uint64_t in_all = report.iterations_total();
      if (spec.total() == 0 && spec.iterations() > 0) {
        if (in_all == 0) in_all = spec.iterations() * n;
        return absl::StrFormat("%d x %s iterations (%s in all)", n,
                               Thousands(spec.iterations()), Thousands(in_all));
      }
      if (in_all == 0) in_all = spec.total();
      return absl::StrFormat("%s, %s iterations in all", tasks,
                             Thousands(in_all));
    }
    case v1::TASK_KIND_SPIN:
    case v1::TASK_KIND_SLEEP:
      if (spec.has_duration()) {
        return absl::StrFormat("%d x %s %s", n,
                               Fixed(ToDoubleSeconds(spec.duration()), 3, "s"),
                               TaskKindName(report.kind()));
      }
      return tasks;
    default:
      return tasks;
  }
}

std::string ResultsLine(const v1::JobReport& report) {
  std::string line = absl::StrFormat("%d succeeded, %d failed, %d cancelled, %d %s",
                                     report.tasks_succeeded(), report.tasks_failed(),
                                     report.tasks_cancelled(), report.retries(),
                                     report.retries() == 1 ? "retry" : "retries");
  if (report.backups() > 0) {
    absl::StrAppend(&line, absl::StrFormat("; %d backups (%d won, %d losing copies stopped)", report.backups(),
                                           report.backups_won(), report.backups_cancelled()));
  }
  return line;
}

std::string StragglersLine(const v1::JobReport& report) {
  if (report.stragglers_size() == 0) return "Stragglers: none\n";
  std::vector<uint32_t> listed;
  for (int i = 0; i < report.stragglers_size() && i < kMaxStragglersListed;
       ++i) {
    listed.push_back(report.stragglers(i));
  }
  std::string line =
      absl::StrCat("Stragglers (> 1.5x median): ", absl::StrJoin(listed, ", "));
  if (report.stragglers_size() > kMaxStragglersListed) {
    absl::StrAppend(&line, ", ... and ",
                    report.stragglers_size() - kMaxStragglersListed, " more");
  }
  absl::StrAppend(&line, "\n");
  // Why, for the listed ones whose rows the report has.
  int causes = 0;
  for (const v1::TaskTiming& t : report.tasks()) {
    if (t.slow_cause().empty() || causes >= kMaxStragglersListed) continue;
    absl::StrAppend(&line, absl::StrFormat("  task %d: %s\n", t.index(), Printable(t.slow_cause())));
    ++causes;
  }
  return line;
}

std::string WorkersTable(const v1::JobReport& report) {
  const std::vector<TableColumn> columns = {
      {"WORKER", false}, {"HOST", false},      {"SLOTS", true},
      {"TASKS", true},   {"ITERATIONS", true}, {"BUSY(s)", true},
      {"UTIL", true},    {"IT/S/SLOT", true}, {"VS-CALIB", true},
  };
  std::vector<TableColumn> all = columns;
  // Interference columns when a worker measured some of its tasks.
  const bool measured = std::any_of(report.workers().begin(), report.workers().end(),
                                    [](const v1::WorkerTiming& w) { return w.tasks_measured() > 0; });
  if (measured) all.insert(all.end(), {{"STEAL", true}, {"THROTTLED(s)", true}});
  std::vector<std::vector<std::string>> rows;
  for (const v1::WorkerTiming& w : report.workers()) {
    rows.push_back({w.name(), w.host().empty() ? "-" : w.host(),
                    absl::StrCat(w.slots()), absl::StrCat(w.tasks()),
                    HumanCount(static_cast<double>(w.iterations())),
                    Fixed(w.busy_seconds(), 3), Percent(w.utilization()),
                    HumanCount(w.iterations_per_second()),
                    w.rate_ratio() > 0 ? Multiple(w.rate_ratio()) : "-"});
    if (!measured) continue;
    const bool any = w.tasks_measured() > 0;
    rows.back().push_back(any ? Percent(w.steal_share()) : "-");
    rows.back().push_back(any ? Fixed(w.throttled_seconds(), 3) : "-");
  }
  return RenderTextTable(all, rows);
}

std::string TasksTable(const v1::JobReport& report) {
  bool any_error = false;
  for (const v1::TaskTiming& t : report.tasks()) {
    if (!t.error().empty()) any_error = true;
  }
  std::vector<TableColumn> columns = {
      {"TASK", true},    {"WORKER", false}, {"SLOT", true},
      {"ATTEMPT", true}, {"STATE", false},  {"START(s)", true},
      {"SECONDS", true}, {"CPU(s)", true},
  };
  if (any_error) columns.push_back({"ERROR", false});
  std::vector<std::vector<std::string>> rows;
  for (const v1::TaskTiming& t : report.tasks()) {
    const bool ran = !t.worker().empty();
    std::vector<std::string> row = {
        absl::StrCat(t.index()),
        ran ? t.worker() : "-",
        ran ? absl::StrCat(t.slot()) : "-",
        absl::StrCat(t.attempt()),
        TaskStateName(t.state()),
        ran ? Fixed(t.start_offset_seconds(), 3) : "-",
        ran ? Fixed(t.seconds(), 3) : "-",
        ran ? Fixed(t.cpu_seconds(), 3) : "-",
    };
    if (any_error) row.push_back(t.error());
    rows.push_back(std::move(row));
  }
  return RenderTextTable(columns, rows);
}

// How far the job is, in [0, 1]: by iterations when it counts them, by
// tasks otherwise.
double ProgressFraction(const v1::JobProgress& p) {
  double fraction = 0;
  if (p.iterations_total() > 0) {
    fraction = static_cast<double>(p.iterations_done()) /
               static_cast<double>(p.iterations_total());
  } else if (p.tasks_total() > 0) {
    fraction = static_cast<double>(p.tasks_done()) /
               static_cast<double>(p.tasks_total());
  }
  if (!std::isfinite(fraction)) return 0;
  return std::clamp(fraction, 0.0, 1.0);
}

// A part of the progress line after the bar; `drop` orders the ones that go
// when space is short (1 first), 0 for those that stay.
struct ProgressPart {
  std::string text;
  int drop;
};

std::vector<ProgressPart> ProgressParts(const v1::JobProgress& p,
                                        double fraction) {
  const int percent = static_cast<int>(std::floor(fraction * 100.0));
  std::vector<ProgressPart> parts;
  parts.push_back(
      {absl::StrFormat("%d/%d tasks", p.tasks_done(), p.tasks_total()), 0});
  if (p.tasks_failed() > 0) {
    parts.push_back({absl::StrFormat("%d failed", p.tasks_failed()), 3});
  }
  parts.push_back({absl::StrFormat("%d%%", percent), 0});
  if (p.iterations_total() > 0 || p.iterations_per_second() > 0) {
    parts.push_back(
        {absl::StrCat(HumanCount(p.iterations_per_second()), " it/s"), 1});
  }
  if (p.eta_seconds() >= 0) {
    parts.push_back({absl::StrCat("ETA ", ShortDuration(p.eta_seconds())), 2});
  }
  parts.push_back({JobStateName(p.state()), 0});
  return parts;
}

std::string JoinParts(const std::vector<ProgressPart>& parts) {
  std::vector<absl::string_view> texts;
  texts.reserve(parts.size());
  for (const ProgressPart& part : parts) texts.push_back(part.text);
  return absl::StrJoin(texts, "  ");
}

json CalibrationsJson(const v1::WorkerInfo& w) {
  json out = json::array();
  for (const v1::KernelCalibration& c : w.calibrations()) {
    json cpus = json::array();
    for (const v1::CpuRate& r : c.cpus()) {
      cpus.push_back({{"cpu", r.cpu()}, {"iterations_per_second", JsonNumber(r.iterations_per_second())}});
    }
    out.push_back({{"kind", TaskKindName(c.kind())},
                   {"iterations_per_second", JsonNumber(c.iterations_per_second())},
                   {"cpus", std::move(cpus)},
                   {"measured_at", Rfc3339(ToProtoTimestamp(absl::FromUnixNanos(c.measured_unix_ns())))}});
  }
  return out;
}

json NoiseJson(const v1::HostNoise& n) {
  json busy = json::array();
  for (const v1::BusyProcess& p : n.busy()) {
    busy.push_back({{"pid", p.pid()}, {"name", p.name()}, {"cpus", JsonNumber(p.cpus())}});
  }
  return {{"load1", JsonNumber(n.load1())},
          {"online_cpus", n.online_cpus()},
          {"steal_share", JsonNumber(n.steal_share())},
          {"other_busy_cpus", JsonNumber(n.other_busy_cpus())},
          {"busy", std::move(busy)},
          {"governor", n.governor()},
          {"interval_seconds", JsonNumber(n.interval_seconds())}};
}

}  // namespace

nlohmann::json ReportToJson(const v1::JobReport& report) {
  json j = json::object();
  j["schema"] = report.schema();
  j["id"] = report.id();
  j["name"] = report.name();
  j["state"] = JobStateName(report.state());
  j["kind"] = TaskKindName(report.kind());
  j["error"] = report.error();
  j["pending_reason"] = report.pending_reason();
  j["timing"] = TimingJson(report.timing());

  json workers = json::array();
  for (const v1::WorkerTiming& w : report.workers()) {
    workers.push_back(WorkerTimingJson(w));
  }
  j["workers"] = std::move(workers);

  json tasks = json::array();
  for (const v1::TaskTiming& t : report.tasks()) {
    tasks.push_back(TaskTimingJson(t));
  }
  j["tasks"] = std::move(tasks);

  json stragglers = json::array();
  for (uint32_t index : report.stragglers()) stragglers.push_back(index);
  j["stragglers"] = std::move(stragglers);
  j["stragglers_total"] = std::max<uint32_t>(report.stragglers_total(), static_cast<uint32_t>(report.stragglers_size()));

  j["counts"] = {{"total", report.tasks_total()},
                 {"succeeded", report.tasks_succeeded()},
                 {"failed", report.tasks_failed()},
                 {"cancelled", report.tasks_cancelled()},
                 {"retries", report.retries()},
                 {"duplicates", report.duplicates()},
                 {"backups", report.backups()},
                 {"backups_won", report.backups_won()},
                 {"backups_cancelled", report.backups_cancelled()}};
  j["iterations_total"] = report.iterations_total();
  j["spec"] = SpecJson(report.spec());
  return j;
}

namespace {

// The kinds a worker runs, by name; countdown, spin, sleep when the
// coordinator (older than WorkerInfo.kinds) sent none.
std::vector<std::string> WorkerKindNames(const v1::WorkerInfo& w) {
  if (w.kinds().empty()) return {"countdown", "spin", "sleep"};
  std::vector<std::string> names;
  for (const int k : w.kinds()) names.push_back(TaskKindName(static_cast<v1::TaskKind>(k)));
  return names;
}

}  // namespace

nlohmann::json WorkersToJson(const std::vector<v1::WorkerInfo>& workers) {
  json out = json::array();
  for (const v1::WorkerInfo& w : workers) {
    json worker = json::object();
    worker["name"] = w.name();
    worker["host"] = w.host().hostname();
    worker["slots"] = w.slots();
    worker["logical_cpus"] = w.host().logical_cpus();
    worker["physical_cores"] = w.host().physical_cores();
    worker["state"] = WorkerStateName(w.state());
    worker["running"] = w.running();
    worker["last_heartbeat"] = Rfc3339(w.last_heartbeat());
    worker["affinity_cpus"] = w.host().affinity_cpus();
    worker["cgroup_cpu_quota"] = JsonNumber(w.host().cgroup_cpu_quota());
    worker["cpu_model"] = w.host().cpu_model();
    worker["machine_id"] = w.host().machine_id();
    worker["packages"] = w.host().packages();
    worker["numa_nodes"] = w.host().numa_nodes();
    worker["usable_cores"] = w.host().usable_cores();
    worker["usable_threads"] = w.host().usable_threads();
    worker["threads_per_core"] = w.host().threads_per_core();
    worker["bind"] = w.host().bind();
    worker["assigned"] = w.assigned();
    json labels = json::object();
    for (const auto& [key, value] : w.labels()) labels[key] = value;
    worker["labels"] = std::move(labels);
    worker["attached_at"] = Rfc3339(w.attached_at());
    worker["tasks_done"] = w.tasks_done();
    worker["clock_offset_seconds"] = JsonNumber(ToDoubleSeconds(w.clock_offset()));
    worker["session_id"] = w.session_id();
    worker["peer"] = w.peer();
    worker["calibrations"] = CalibrationsJson(w);
    if (w.has_noise()) worker["noise"] = NoiseJson(w.noise());
    worker["kinds"] = WorkerKindNames(w);
    worker["python_version"] = w.python_version();
    out.push_back(std::move(worker));
  }
  return out;
}

nlohmann::json JobsToJson(const std::vector<v1::JobSummary>& jobs) {
  json out = json::array();
  for (const v1::JobSummary& s : jobs) {
    json job = json::object();
    job["id"] = s.id();
    job["name"] = s.name();
    job["state"] = JobStateName(s.state());
    job["tasks"] = s.tasks();
    job["submitted_at"] = Rfc3339(s.submitted_at());
    job["wall_seconds"] = JsonNumber(s.wall_seconds());
    job["kind"] = TaskKindName(s.kind());
    job["tasks_done"] = s.tasks_done();
    out.push_back(std::move(job));
  }
  return out;
}

nlohmann::json ProgressToJson(const v1::JobProgress& p) {
  json j = json::object();
  j["id"] = p.job_id();
  j["state"] = JobStateName(p.state());
  j["tasks_total"] = p.tasks_total();
  j["tasks_done"] = p.tasks_done();
  j["tasks_running"] = p.tasks_running();
  j["tasks_failed"] = p.tasks_failed();
  j["iterations_total"] = p.iterations_total();
  j["iterations_done"] = p.iterations_done();
  j["elapsed_seconds"] = JsonNumber(p.elapsed_seconds());
  j["iterations_per_second"] = JsonNumber(p.iterations_per_second());
  j["eta_seconds"] = p.eta_seconds() < 0 ? json(nullptr) : JsonNumber(p.eta_seconds());
  j["pending_reason"] = p.pending_reason();
  return j;
}

std::string RenderReport(const v1::JobReport& report, bool show_tasks) {
  const v1::JobTiming& t = report.timing();
  std::string out;
  auto field = [&out](absl::string_view label, absl::string_view value) {
    absl::StrAppend(&out, absl::StrFormat("%-14s%s\n", absl::StrCat(label, ":"),
                                          Printable(value)));
  };

  field("Job", report.name().empty()
                   ? report.id()
                   : absl::StrCat(report.id(), "  (", report.name(), ")"));
  field("State", JobStateName(report.state()));
  std::string kind = TaskKindName(report.kind());
  if (report.spec().exec() != v1::EXEC_MODE_UNSPECIFIED) {
    absl::StrAppend(&kind, "  (exec ", ExecModeName(report.spec().exec()), ")");
  }
  field("Kind", kind);
  if (!report.error().empty()) field("Error", report.error());
  if (!report.pending_reason().empty()) field("Pending", report.pending_reason());
  field("Tasks", TasksLine(report));
  field("Results", ResultsLine(report));
  if (!IsUnset(t.submitted_at())) field("Submitted", Rfc3339(t.submitted_at()));
  if (!IsUnset(t.finished_at())) field("Finished", Rfc3339(t.finished_at()));
  field("Wall", Fixed(t.wall_seconds(), 3, "s"));
  field("Makespan", Fixed(t.makespan_seconds(), 3, "s"));
  field("Serial-equiv", Fixed(t.serial_seconds(), 3, "s"));
  field("Overhead", Fixed(t.overhead_seconds(), 3, "s"));
  field("Speedup", absl::StrCat(Multiple(t.speedup()), "  (Serial-equiv / Makespan)"));
  field("Efficiency", Percent(t.efficiency()));
  if (t.work_serial_seconds() > 0) {
    field("Work-serial", absl::StrCat(Fixed(t.work_serial_seconds(), 3, "s"),
                                      "  (the iterations at the workers' calibrated per-core rates)"));
    field("Work speedup", absl::StrCat(Multiple(t.work_speedup()), "  (Work-serial / Makespan), efficiency ",
                                       Percent(t.work_efficiency())));
  }
  if (t.slow_tasks() > 0) {
    field("Slow tasks", absl::StrCat(t.slow_tasks(), " ran below 0.6x their core's calibrated rate"));
  }
  field("Slots", absl::StrCat(t.slots()));
  const v1::TaskDurationStats& s = t.task_seconds();
  field("Task seconds",
        absl::StrCat("min ", Fixed(s.min(), 3), "  p50 ", Fixed(s.p50(), 3),
                     "  p90 ", Fixed(s.p90(), 3), "  p99 ", Fixed(s.p99(), 3),
                     "  max ", Fixed(s.max(), 3)));

  if (report.workers_size() > 0) {
    absl::StrAppend(&out, "\n", WorkersTable(report));
  }
  absl::StrAppend(&out, "\n", StragglersLine(report));

  if (report.tasks_size() > 0) {
    if (show_tasks ||
        TaskCount(report) <= static_cast<uint32_t>(kMaxTasksShownByDefault)) {
      absl::StrAppend(&out, "\n", TasksTable(report));
    } else {
      absl::StrAppend(&out, "(", report.tasks_size(),
                      " per-task rows not shown)\n");
    }
  }
  return out;
}

std::string RenderWorkers(const std::vector<v1::WorkerInfo>& workers,
                          absl::Time now) {
  if (workers.empty()) return "No workers.\n";
  const std::vector<TableColumn> columns = {
      {"NAME", false},   {"HOST", false},           {"SLOTS", true},
      {"CPUS", true},    {"CORES", true},           {"BIND", false},   {"STATE", false},
      {"RUNNING", true}, {"LAST-HEARTBEAT", false}, {"PYTHON", false},
  };
  std::vector<std::vector<std::string>> rows;
  for (const v1::WorkerInfo& w : workers) {
    rows.push_back(
        {w.name(), w.host().hostname().empty() ? "-" : w.host().hostname(),
         absl::StrCat(w.slots()), absl::StrCat(w.host().logical_cpus()),
         absl::StrCat(w.host().physical_cores()), w.host().bind().empty() ? "-" : w.host().bind(),
         WorkerStateName(w.state()),
         absl::StrCat(w.running()), Ago(w.last_heartbeat(), now),
         // The python kind's CPython version; "-": the worker does not offer it.
         w.python_version().empty() ? "-" : w.python_version()});
  }
  // Workers on one machine share its cores: the total counts each once.
  return absl::StrCat(RenderTextTable(columns, rows), FleetLine(CountFleet(workers)), "\n");
}

std::string RenderJobs(const std::vector<v1::JobSummary>& jobs) {
  if (jobs.empty()) return "No jobs.\n";
  const std::vector<TableColumn> columns = {
      {"ID", false},   {"NAME", false},      {"STATE", false},
      {"TASKS", true}, {"SUBMITTED", false}, {"WALL(s)", true},
  };
  std::vector<std::vector<std::string>> rows;
  for (const v1::JobSummary& s : jobs) {
    const std::string submitted =
        IsUnset(s.submitted_at()) ? "-" : Rfc3339Seconds(s.submitted_at());
    rows.push_back({s.id(), s.name().empty() ? "-" : s.name(),
                    JobStateName(s.state()),
                    absl::StrCat(s.tasks_done(), "/", s.tasks()), submitted,
                    s.wall_seconds() > 0 ? Fixed(s.wall_seconds(), 3) : "-"});
  }
  return RenderTextTable(columns, rows);
}

std::string RenderProgressLine(const v1::JobProgress& p, int width) {
  if (width <= 0) return "";
  const double fraction = ProgressFraction(p);
  std::vector<ProgressPart> parts = ProgressParts(p, fraction);
  std::string rest = JoinParts(parts);

  // "[" + bar + "]" + "  " + rest.
  const int room = width - static_cast<int>(rest.size()) - 4;
  if (room >= kMinBarWidth) {
    const int bar = std::min(room, kMaxBarWidth);
    const int filled =
        std::clamp(static_cast<int>(std::floor(fraction * bar)), 0, bar);
    return absl::StrCat("[", std::string(filled, '#'),
                        std::string(bar - filled, '.'), "]  ", rest);
  }
  for (int level = 1; level <= 3 && static_cast<int>(rest.size()) > width;
       ++level) {
    parts.erase(std::remove_if(parts.begin(), parts.end(),
                               [level](const ProgressPart& part) {
                                 return part.drop == level;
                               }),
                parts.end());
    rest = JoinParts(parts);
  }
  if (static_cast<int>(rest.size()) > width) rest.resize(width);
  return rest;
}

}  // namespace busyfleet::report
