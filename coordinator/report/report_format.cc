#include "coordinator/report/report_format.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "google/protobuf/duration.pb.h"

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

// "JOB_STATE_SUCCEEDED" -> "SUCCEEDED" (or lower-cased). Unknown values have
// an empty name in the generated code.
// A JSON number, or null for NaN and infinities (which JSON cannot hold).
json Num(double value) {
  if (!std::isfinite(value)) return json(nullptr);
  return json(value);
}

double Seconds(const google::protobuf::Duration& d) {
  return static_cast<double>(d.seconds()) +
         static_cast<double>(d.nanos()) * 1e-9;
}

bool IsUnset(const google::protobuf::Timestamp& ts) {
  return ts.seconds() == 0 && ts.nanos() == 0;
}

absl::Time ToAbslTime(const google::protobuf::Timestamp& ts) {
  return absl::FromUnixSeconds(ts.seconds()) + absl::Nanoseconds(ts.nanos());
}

// 40000000 -> "40,000,000".
std::string Thousands(uint64_t value) {
  std::string digits = absl::StrCat(value);
  std::string out;
  out.reserve(digits.size() + digits.size() / 3);
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out.push_back(',');
    out.push_back(digits[i]);
  }
  return out;
}

// Seconds for people: "0.4s", "59.9s", "3m12s", "2h05m", "3d04h".
std::string ShortDuration(double seconds) {
  if (!std::isfinite(seconds)) return "-";
  if (seconds < 0) seconds = 0;
  if (seconds < 59.95) return absl::StrFormat("%.1fs", seconds);
  const int64_t s = static_cast<int64_t>(std::llround(seconds));
  if (s < 3600) return absl::StrFormat("%dm%02ds", s / 60, s % 60);
  if (s < 86400) return absl::StrFormat("%dh%02dm", s / 3600, (s % 3600) / 60);
  return absl::StrFormat("%dd%02dh", s / 86400, (s % 86400) / 3600);
}

std::string Fixed3(double value) { return absl::StrFormat("%.3f", value); }

std::string Percent(double fraction) {
  return absl::StrFormat("%.1f%%", fraction * 100.0);
}

// Free text from the wire goes to a terminal: no control characters.
std::string Printable(absl::string_view text) {
  std::string out(text);
  for (char& c : out) {
    const unsigned char u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) c = '?';
  }
  return out;
}

// Terminal columns of UTF-8 text, counting one per code point.
size_t DisplayWidth(absl::string_view text) {
  size_t width = 0;
  for (char c : text) {
    if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) ++width;
  }
  return width;
}

struct Column {
  std::string header;
  bool right = false;  // Numbers are right-aligned, text left-aligned.
};

// Columns separated by two spaces, each as wide as its widest cell; no
// trailing blanks. Every row has one cell per column.
std::string RenderTable(const std::vector<Column>& columns,
                        const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> widths(columns.size(), 0);
  for (size_t c = 0; c < columns.size(); ++c) {
    widths[c] = DisplayWidth(columns[c].header);
    for (const auto& row : rows) {
      widths[c] = std::max(widths[c], DisplayWidth(row[c]));
    }
  }
  std::string out;
  auto append_row = [&](const std::vector<std::string>& cells) {
    std::string line;
    for (size_t c = 0; c < columns.size(); ++c) {
      if (c > 0) line += "  ";
      const std::string cell = Printable(cells[c]);
      const std::string pad(widths[c] - DisplayWidth(cell), ' ');
      if (columns[c].right) {
        absl::StrAppend(&line, pad, cell);
      } else {
        absl::StrAppend(&line, cell, pad);
      }
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    absl::StrAppend(&out, line, "\n");
  };
  std::vector<std::string> headers;
  headers.reserve(columns.size());
  for (const Column& column : columns) headers.push_back(column.header);
  append_row(headers);
  for (const auto& row : rows) append_row(row);
  return out;
}

json PhasesJson(double queued, double dispatch, double result) {
  json phases = json::object();
  phases["queued_seconds"] = Num(queued);
  phases["dispatch_seconds"] = Num(dispatch);
  phases["result_seconds"] = Num(result);
  return phases;
}

json TimingJson(const v1::JobTiming& t) {
  json timing = json::object();
  timing["submitted_at"] = Rfc3339(t.submitted_at());
  timing["started_at"] = Rfc3339(t.started_at());
  timing["finished_at"] = Rfc3339(t.finished_at());
  timing["wall_seconds"] = Num(t.wall_seconds());
  timing["makespan_seconds"] = Num(t.makespan_seconds());
  timing["serial_seconds"] = Num(t.serial_seconds());
  timing["overhead_seconds"] = Num(t.overhead_seconds());
  timing["speedup"] = Num(t.speedup());
  timing["efficiency"] = Num(t.efficiency());
  timing["slots"] = t.slots();
  const v1::TaskDurationStats& s = t.task_seconds();
  timing["task_seconds"] = {{"min", Num(s.min())},
                            {"p50", Num(s.p50())},
                            {"p90", Num(s.p90())},
                            {"p99", Num(s.p99())},
                            {"max", Num(s.max())}};
  timing["cpu_seconds"] = Num(t.cpu_seconds());
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
  worker["busy_seconds"] = Num(w.busy_seconds());
  worker["utilization"] = Num(w.utilization());
  worker["iterations_per_second"] = Num(w.iterations_per_second());
  worker["slots_used"] = w.slots_used();
  return worker;
}

json TaskTimingJson(const v1::TaskTiming& t) {
  json task = json::object();
  task["index"] = t.index();
  task["worker"] = t.worker();
  task["slot"] = t.slot();
  task["attempt"] = t.attempt();
  task["state"] = TaskStateName(t.state());
  task["iterations"] = t.iterations();
  task["start_offset_seconds"] = Num(t.start_offset_seconds());
  task["seconds"] = Num(t.seconds());
  task["cpu_seconds"] = Num(t.cpu_seconds());
  if (!t.error().empty()) task["error"] = t.error();
  if (t.pid() != 0) task["pid"] = t.pid();
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
  spec["duration_seconds"] = Num(Seconds(s.duration()));
  spec["max_slots"] = s.max_slots();
  spec["max_attempts"] = s.max_attempts();
  spec["exec"] = ExecModeName(s.exec());
  spec["task_timeout_seconds"] = Num(Seconds(s.task_timeout()));
  spec["speculate"] = s.speculate();
  json workers = json::array();
  for (const std::string& w : s.workers()) workers.push_back(w);
  spec["workers"] = std::move(workers);
  json selector = json::object();
  for (const auto& [key, value] : s.selector()) selector[key] = value;
  spec["selector"] = std::move(selector);
  return spec;
}

uint32_t TaskCount(const v1::JobReport& report) {
  if (report.tasks_total() > 0) return report.tasks_total();
  return static_cast<uint32_t>(report.tasks_size());
}

// "4 x 10,000,000 iterations (40,000,000 in all)", "4 x 2.000s spin", ...
std::string TasksLine(const v1::JobReport& report) {
  const uint32_t n = TaskCount(report);
  const v1::JobSpec& spec = report.spec();
  const std::string tasks = absl::StrCat(n, n == 1 ? " task" : " tasks");
  switch (report.kind()) {
    case v1::TASK_KIND_COUNTDOWN: {
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
        return absl::StrFormat("%d x %.3fs %s", n, Seconds(spec.duration()),
                               TaskKindName(report.kind()));
      }
      return tasks;
    default:
      return tasks;
  }
}

std::string ResultsLine(const v1::JobReport& report) {
  return absl::StrFormat("%d succeeded, %d failed, %d cancelled, %d %s",
                         report.tasks_succeeded(), report.tasks_failed(),
                         report.tasks_cancelled(), report.retries(),
                         report.retries() == 1 ? "retry" : "retries");
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
  return line + "\n";
}

std::string WorkersTable(const v1::JobReport& report) {
  const std::vector<Column> columns = {
      {"WORKER", false}, {"HOST", false},      {"SLOTS", true},
      {"TASKS", true},   {"ITERATIONS", true}, {"BUSY(s)", true},
      {"UTIL", true},    {"IT/S/SLOT", true},
  };
  std::vector<std::vector<std::string>> rows;
  for (const v1::WorkerTiming& w : report.workers()) {
    rows.push_back({w.name(), w.host().empty() ? "-" : w.host(),
                    absl::StrCat(w.slots()), absl::StrCat(w.tasks()),
                    HumanCount(static_cast<double>(w.iterations())),
                    Fixed3(w.busy_seconds()), Percent(w.utilization()),
                    HumanCount(w.iterations_per_second())});
  }
  return RenderTable(columns, rows);
}

std::string TasksTable(const v1::JobReport& report) {
  bool any_error = false;
  for (const v1::TaskTiming& t : report.tasks()) {
    if (!t.error().empty()) any_error = true;
  }
  std::vector<Column> columns = {
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
        ran ? Fixed3(t.start_offset_seconds()) : "-",
        ran ? Fixed3(t.seconds()) : "-",
        ran ? Fixed3(t.cpu_seconds()) : "-",
    };
    if (any_error) row.push_back(t.error());
    rows.push_back(std::move(row));
  }
  return RenderTable(columns, rows);
}

}  // namespace

std::string Rfc3339(const google::protobuf::Timestamp& ts) {
  if (IsUnset(ts)) return "";
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E6SZ", ToAbslTime(ts),
                          absl::UTCTimeZone());
}

nlohmann::json ReportToJson(const v1::JobReport& report) {
  json j = json::object();
  j["schema"] = report.schema();
  j["id"] = report.id();
  j["name"] = report.name();
  j["state"] = JobStateName(report.state());
  j["kind"] = TaskKindName(report.kind());
  j["error"] = report.error();
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
                 {"backups_won", report.backups_won()}};
  j["iterations_total"] = report.iterations_total();
  j["spec"] = SpecJson(report.spec());
  return j;
}

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
    worker["cgroup_cpu_quota"] = Num(w.host().cgroup_cpu_quota());
    worker["cpu_model"] = w.host().cpu_model();
    worker["assigned"] = w.assigned();
    json labels = json::object();
    for (const auto& [key, value] : w.labels()) labels[key] = value;
    worker["labels"] = std::move(labels);
    worker["attached_at"] = Rfc3339(w.attached_at());
    worker["tasks_done"] = w.tasks_done();
    worker["clock_offset_seconds"] = Num(Seconds(w.clock_offset()));
    worker["session_id"] = w.session_id();
    worker["peer"] = w.peer();
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
    job["wall_seconds"] = Num(s.wall_seconds());
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
  j["elapsed_seconds"] = Num(p.elapsed_seconds());
  j["iterations_per_second"] = Num(p.iterations_per_second());
  j["eta_seconds"] = p.eta_seconds() < 0 ? json(nullptr) : Num(p.eta_seconds());
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
  field("Tasks", TasksLine(report));
  field("Results", ResultsLine(report));
  if (!IsUnset(t.submitted_at())) field("Submitted", Rfc3339(t.submitted_at()));
  if (!IsUnset(t.finished_at())) field("Finished", Rfc3339(t.finished_at()));
  field("Wall", absl::StrCat(Fixed3(t.wall_seconds()), "s"));
  field("Makespan", absl::StrCat(Fixed3(t.makespan_seconds()), "s"));
  field("Serial-equiv", absl::StrCat(Fixed3(t.serial_seconds()), "s"));
  field("Overhead", absl::StrCat(Fixed3(t.overhead_seconds()), "s"));
  field("Speedup", absl::StrFormat("%.2fx", t.speedup()));
  field("Efficiency", Percent(t.efficiency()));
  field("Slots", absl::StrCat(t.slots()));
  const v1::TaskDurationStats& s = t.task_seconds();
  field("Task seconds",
        absl::StrFormat("min %.3f  p50 %.3f  p90 %.3f  p99 %.3f  max %.3f",
                        s.min(), s.p50(), s.p90(), s.p99(), s.max()));

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
  const std::vector<Column> columns = {
      {"NAME", false},   {"HOST", false},           {"SLOTS", true},
      {"CPUS", true},    {"CORES", true},           {"STATE", false},
      {"RUNNING", true}, {"LAST-HEARTBEAT", false},
  };
  std::vector<std::vector<std::string>> rows;
  for (const v1::WorkerInfo& w : workers) {
    std::string heartbeat = "-";
    if (!IsUnset(w.last_heartbeat())) {
      heartbeat = absl::StrCat(ShortDuration(absl::ToDoubleSeconds(
                                   now - ToAbslTime(w.last_heartbeat()))),
                               " ago");
    }
    rows.push_back(
        {w.name(), w.host().hostname().empty() ? "-" : w.host().hostname(),
         absl::StrCat(w.slots()), absl::StrCat(w.host().logical_cpus()),
         absl::StrCat(w.host().physical_cores()), WorkerStateName(w.state()),
         absl::StrCat(w.running()), heartbeat});
  }
  return RenderTable(columns, rows);
}

std::string RenderJobs(const std::vector<v1::JobSummary>& jobs) {
  if (jobs.empty()) return "No jobs.\n";
  const std::vector<Column> columns = {
      {"ID", false},   {"NAME", false},      {"STATE", false},
      {"TASKS", true}, {"SUBMITTED", false}, {"WALL(s)", true},
  };
  std::vector<std::vector<std::string>> rows;
  for (const v1::JobSummary& s : jobs) {
    const std::string submitted =
        IsUnset(s.submitted_at())
            ? "-"
            : absl::FormatTime("%Y-%m-%dT%H:%M:%SZ",
                               ToAbslTime(s.submitted_at()),
                               absl::UTCTimeZone());
    rows.push_back({s.id(), s.name().empty() ? "-" : s.name(),
                    JobStateName(s.state()),
                    absl::StrCat(s.tasks_done(), "/", s.tasks()), submitted,
                    s.wall_seconds() > 0 ? Fixed3(s.wall_seconds()) : "-"});
  }
  return RenderTable(columns, rows);
}

std::string RenderProgressLine(const v1::JobProgress& p, int width) {
  if (width <= 0) return "";

  double fraction = 0;
  if (p.iterations_total() > 0) {
    fraction = static_cast<double>(p.iterations_done()) /
               static_cast<double>(p.iterations_total());
  } else if (p.tasks_total() > 0) {
    fraction = static_cast<double>(p.tasks_done()) /
               static_cast<double>(p.tasks_total());
  }
  if (!std::isfinite(fraction)) fraction = 0;
  fraction = std::clamp(fraction, 0.0, 1.0);
  const int percent = static_cast<int>(std::floor(fraction * 100.0));

  // Parts after the bar; `drop` orders the ones that go when space is short
  // (1 first), 0 for those that stay.
  struct Part {
    std::string text;
    int drop;
  };
  std::vector<Part> parts;
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

  auto join = [&parts] {
    std::vector<absl::string_view> texts;
    for (const Part& part : parts) texts.push_back(part.text);
    return absl::StrJoin(texts, "  ");
  };
  const int w = width;
  std::string rest = join();

  // "[" + bar + "]" + "  " + rest.
  const int room = w - static_cast<int>(rest.size()) - 4;
  if (room >= kMinBarWidth) {
    const int bar = std::min(room, kMaxBarWidth);
    const int filled =
        std::clamp(static_cast<int>(std::floor(fraction * bar)), 0, bar);
    return absl::StrCat("[", std::string(filled, '#'),
                        std::string(bar - filled, '.'), "]  ", rest);
  }
  for (int level = 1; level <= 3 && static_cast<int>(rest.size()) > w;
       ++level) {
    parts.erase(std::remove_if(
                    parts.begin(), parts.end(),
                    [level](const Part& part) { return part.drop == level; }),
                parts.end());
    rest = join();
  }
  if (static_cast<int>(rest.size()) > w) rest.resize(w);
  return rest;
}

std::string HumanCount(double value) {
  if (!std::isfinite(value)) return "-";
  if (value < 0) {
    std::string magnitude = HumanCount(-value);
    return magnitude == "0" ? magnitude : absl::StrCat("-", magnitude);
  }
  if (value < 999.5) return absl::StrFormat("%.0f", value);
  static constexpr char kSuffixes[] = "kMGTPE";
  double scaled = value;
  for (int i = 0; kSuffixes[i] != '\0'; ++i) {
    scaled /= 1000.0;
    const bool last = kSuffixes[i + 1] == '\0';
    // Promote when rounding would print four integer digits ("1000.0k").
    if (scaled < 9.995) return absl::StrFormat("%.2f%c", scaled, kSuffixes[i]);
    if (scaled < 999.95 || last) {
      return absl::StrFormat("%.1f%c", scaled, kSuffixes[i]);
    }
  }
  return "-";  // Not reached: the last suffix always returns.
}

}  // namespace busyfleet::report
