#include "coordinator/server/prometheus_text.h"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include "absl/strings/ascii.h"
#include "coordinator/core/enum_names.h"

namespace busyfleet::coordinator {
namespace {

// A state label: the display name (core/enum_names.h) lower-cased,
// WORKER_STATE_READY -> "ready".
std::string Label(std::string display_name) {
  absl::AsciiStrToLower(&display_name);
  return display_name;
}

void SetGauge(prometheus::Registry& r, const std::string& name, const std::string& help, double v) {
  prometheus::BuildGauge().Name(name).Help(help).Register(r).Add({}).Set(v);
}

void SetCounter(prometheus::Registry& r, const std::string& name, const std::string& help, double total) {
  prometheus::BuildCounter().Name(name).Help(help).Register(r).Add({}).Increment(total);
}

// One gauge per state, every state present (zero when the map lacks it).
template <typename State, typename NameFn>
void StateGauges(prometheus::Registry& r, const std::string& name, const std::string& help,
                 const std::map<State, uint32_t>& by_state, std::initializer_list<State> states, NameFn state_name) {
  auto& family = prometheus::BuildGauge().Name(name).Help(help).Register(r);
  for (State s : states) {
    auto it = by_state.find(s);
    family.Add({{"state", Label(state_name(s))}}).Set(it == by_state.end() ? 0 : it->second);
  }
}

// The snapshot's histogram as prometheus-cpp's: the same bounds, the
// per-bucket counts (the overflow last) and the sum.
void TaskSeconds(prometheus::Registry& r, const Histogram& h) {
  const std::vector<uint64_t> cumulative = h.cumulative();
  std::vector<double> increments;
  uint64_t previous = 0;
  for (uint64_t c : cumulative) {
    increments.push_back(static_cast<double>(c - previous));
    previous = c;
  }
  increments.push_back(static_cast<double>(h.count() - previous));  // the +Inf bucket
  prometheus::BuildHistogram()
      .Name("busyfleet_task_duration_seconds")
      .Help("Durations of succeeded tasks, seconds.")
      .Register(r)
      .Add({}, h.bounds())
      .ObserveMultiple(increments, h.sum());
}

void TaskCounters(prometheus::Registry& r, const CoordinatorCounters& c) {
  auto& tasks = prometheus::BuildCounter()
                    .Name("busyfleet_tasks_total")
                    .Help("Task attempts since start: dispatched to workers, succeeded, failed (incl. lost and "
                          "timed out), retried.")
                    .Register(r);
  tasks.Add({{"state", "dispatched"}}).Increment(static_cast<double>(c.dispatched));
  tasks.Add({{"state", "succeeded"}}).Increment(static_cast<double>(c.succeeded));
  tasks.Add({{"state", "failed"}}).Increment(static_cast<double>(c.attempts_failed));
  tasks.Add({{"state", "retried"}}).Increment(static_cast<double>(c.retried));
  TaskSeconds(r, c.task_seconds);
}

void StoreMetrics(prometheus::Registry& r, const StoreHealth& st) {
  SetGauge(r, "busyfleet_store_writable", "1 when the job store commits its writes, 0 while it cannot.",
           st.writable ? 1 : 0);
  SetGauge(r, "busyfleet_store_backlog_rows",
           "Job and task rows queued in memory and not yet committed to the store.",
           static_cast<double>(st.backlog_rows));
  SetCounter(r, "busyfleet_store_commits_total", "Store transactions committed since start.",
             static_cast<double>(st.commits));
  SetCounter(r, "busyfleet_store_write_failures_total",
             "Store commit attempts that failed since start (each batch is retried until it commits).",
             static_cast<double>(st.write_failures));
  SetCounter(r, "busyfleet_jobs_deleted_total",
             "Finished jobs removed by retention, coordctl delete or coordctl jobs prune since start.",
             static_cast<double>(st.jobs_deleted));
  SetCounter(r, "busyfleet_jobs_dropped_total",
             "With --db :memory:, finished jobs whose reports were dropped past --keep-finished-jobs/-tasks.",
             static_cast<double>(st.jobs_dropped));
  SetGauge(r, "busyfleet_store_purge_rows", "Task rows of deleted jobs not yet removed from the database.",
           static_cast<double>(st.purge_rows));
}

// Peers refused or cut off, worker strings truncated, client calls refused.
void PeerMetrics(prometheus::Registry& r, const PeerCounters& p) {
  auto& refusals = prometheus::BuildCounter()
                       .Name("busyfleet_peer_refusals_total")
                       .Help("Peers refused or disconnected since start, by reason (sessions and watches over "
                             "their caps, worker streams that stopped reading, stuck watches, refused worker "
                             "hellos or messages).")
                       .Register(r);
  for (const auto& [reason, n] : {std::pair{"sessions_limit", p.sessions_refused},
                                  {"watches_limit", p.watches_refused}, {"slow_reader", p.slow_readers},
                                  {"stalled_watch", p.stalled_watches}, {"invalid_worker", p.workers_refused}}) {
    refusals.Add({{"reason", reason}}).Increment(static_cast<double>(n));
  }
  SetCounter(r, "busyfleet_worker_strings_truncated_total",
             "Strings from workers cut to their limit (task errors, cpu model, version).",
             static_cast<double>(p.strings_truncated));
  auto& clients = prometheus::BuildCounter()
                      .Name("busyfleet_client_refusals_total")
                      .Help("Client calls answered with an error, by gRPC code.")
                      .Register(r);
  for (const auto& [code, n] : p.client_refusals) clients.Add({{"code", code}}).Increment(static_cast<double>(n));
}

}  // namespace

std::string PrometheusText(const MetricsSnapshot& m) {
  prometheus::Registry r;
  StateGauges(r, "busyfleet_workers", "Workers by state (gone: recently lost or detached).", m.workers,
              {v1::WORKER_STATE_READY, v1::WORKER_STATE_DRAINING, v1::WORKER_STATE_GONE},
              [](v1::WorkerState s) { return std::string(WorkerStateName(s)); });
  SetGauge(r, "busyfleet_slots", "Task slots of the attached workers.", static_cast<double>(m.slots));
  SetGauge(r, "busyfleet_tasks_running", "Tasks running on workers now.", static_cast<double>(m.running));
  SetGauge(r, "busyfleet_queue_depth", "Tasks waiting for a slot, over all jobs.",
           static_cast<double>(m.queue_depth));
  StateGauges(r, "busyfleet_jobs", "Jobs the coordinator holds, by state.", m.jobs,
              {v1::JOB_STATE_PENDING, v1::JOB_STATE_RUNNING, v1::JOB_STATE_SUCCEEDED, v1::JOB_STATE_FAILED,
               v1::JOB_STATE_CANCELLED},
              [](v1::JobState s) { return std::string(JobStateName(s)); });
  SetCounter(r, "busyfleet_jobs_submitted_total", "Jobs accepted since start.",
             static_cast<double>(m.jobs_submitted));
  TaskCounters(r, m.counters);
  StoreMetrics(r, m.store);
  PeerMetrics(r, m.peers);
  return prometheus::TextSerializer().Serialize(r.Collect());
}

}  // namespace busyfleet::coordinator
