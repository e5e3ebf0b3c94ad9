#include "coordinator/server/prometheus_text.h"

#include <algorithm>
#include <charconv>
#include <cmath>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "coordinator/core/enum_names.h"

namespace busyfleet::coordinator {
namespace {

// A state label: the display name (core/enum_names.h) lower-cased,
// WORKER_STATE_READY -> "ready".
std::string Label(std::string display_name) {
  absl::AsciiStrToLower(&display_name);
  return display_name;
}

// A float in the exposition format's syntax: shortest round-trip form, +Inf,
// -Inf, NaN. Not report::JsonNumber: Prometheus has words for what JSON
// makes null.
std::string PrometheusFloat(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (std::isnan(v)) return "NaN";
  char buf[64];
  const auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);  // shortest that reads back the same
  return ec == std::errc() ? std::string(buf, end) : absl::StrFormat("%.17g", v);
}

void Header(std::string* out, absl::string_view name, absl::string_view type, absl::string_view help) {
  absl::StrAppend(out, "# HELP ", name, " ", help, "\n# TYPE ", name, " ", type, "\n");
}

}  // namespace

std::string PrometheusText(const MetricsSnapshot& m) {
  std::string out;
  Header(&out, "busyfleet_workers", "gauge", "Workers by state (gone: recently lost or detached).");
  for (v1::WorkerState s : {v1::WORKER_STATE_READY, v1::WORKER_STATE_DRAINING, v1::WORKER_STATE_GONE}) {
    auto it = m.workers.find(s);
    absl::StrAppend(&out, "busyfleet_workers{state=\"", Label(WorkerStateName(s)),
                    "\"} ", it == m.workers.end() ? 0 : it->second, "\n");
  }
  Header(&out, "busyfleet_slots", "gauge", "Task slots of the attached workers.");
  absl::StrAppend(&out, "busyfleet_slots ", m.slots, "\n");
  Header(&out, "busyfleet_tasks_running", "gauge", "Tasks running on workers now.");
  absl::StrAppend(&out, "busyfleet_tasks_running ", m.running, "\n");
  Header(&out, "busyfleet_queue_depth", "gauge", "Tasks waiting for a slot, over all jobs.");
  absl::StrAppend(&out, "busyfleet_queue_depth ", m.queue_depth, "\n");
  Header(&out, "busyfleet_jobs", "gauge", "Jobs the coordinator holds, by state.");
  for (v1::JobState s : {v1::JOB_STATE_PENDING, v1::JOB_STATE_RUNNING, v1::JOB_STATE_SUCCEEDED,
                         v1::JOB_STATE_FAILED, v1::JOB_STATE_CANCELLED}) {
    auto it = m.jobs.find(s);
    absl::StrAppend(&out, "busyfleet_jobs{state=\"", Label(JobStateName(s)), "\"} ",
                    it == m.jobs.end() ? 0 : it->second, "\n");
  }
  Header(&out, "busyfleet_jobs_submitted_total", "counter", "Jobs accepted since start.");
  absl::StrAppend(&out, "busyfleet_jobs_submitted_total ", m.jobs_submitted, "\n");
  Header(&out, "busyfleet_tasks_total", "counter",
         "Task attempts since start: dispatched to workers, succeeded, failed (incl. lost and timed out), "
         "retried.");
  const CoordinatorCounters& c = m.counters;
  absl::StrAppend(&out, "busyfleet_tasks_total{state=\"dispatched\"} ", c.dispatched, "\n",
                  "busyfleet_tasks_total{state=\"succeeded\"} ", c.succeeded, "\n",
                  "busyfleet_tasks_total{state=\"failed\"} ", c.attempts_failed, "\n",
                  "busyfleet_tasks_total{state=\"retried\"} ", c.retried, "\n");
  Header(&out, "busyfleet_task_duration_seconds", "histogram", "Durations of succeeded tasks, seconds.");
  const std::vector<uint64_t> cumulative = c.task_seconds.cumulative();
  for (size_t i = 0; i < cumulative.size(); ++i) {
    absl::StrAppend(&out, "busyfleet_task_duration_seconds_bucket{le=\"", PrometheusFloat(c.task_seconds.bounds()[i]),
                    "\"} ", cumulative[i], "\n");
  }
  absl::StrAppend(&out, "busyfleet_task_duration_seconds_bucket{le=\"+Inf\"} ", c.task_seconds.count(), "\n",
                  "busyfleet_task_duration_seconds_sum ", PrometheusFloat(c.task_seconds.sum()), "\n",
                  "busyfleet_task_duration_seconds_count ", c.task_seconds.count(), "\n");
  const StoreHealth& st = m.store;
  Header(&out, "busyfleet_store_writable", "gauge", "1 when the job store commits its writes, 0 while it cannot.");
  absl::StrAppend(&out, "busyfleet_store_writable ", st.writable ? 1 : 0, "\n");
  Header(&out, "busyfleet_store_backlog_rows", "gauge",
         "Job and task rows queued in memory and not yet committed to the store.");
  absl::StrAppend(&out, "busyfleet_store_backlog_rows ", st.backlog_rows, "\n");
  Header(&out, "busyfleet_store_commits_total", "counter", "Store transactions committed since start.");
  absl::StrAppend(&out, "busyfleet_store_commits_total ", st.commits, "\n");
  Header(&out, "busyfleet_store_write_failures_total", "counter",
         "Store commit attempts that failed since start (each batch is retried until it commits).");
  absl::StrAppend(&out, "busyfleet_store_write_failures_total ", st.write_failures, "\n");
  absl::StrAppend(&out, PeerCountersText(m.peers));
  return out;
}

}  // namespace busyfleet::coordinator
