#ifndef BUSYFLEET_COORDINATOR_SERVER_PROMETHEUS_TEXT_H_
#define BUSYFLEET_COORDINATOR_SERVER_PROMETHEUS_TEXT_H_

#include <string>

#include "coordinator/core/metrics.h"

namespace busyfleet::coordinator {

// The Prometheus text exposition format (version 0.0.4) of a snapshot, made
// by prometheus-cpp (a prometheus::Registry and its TextSerializer); every
// name prefixed busyfleet_: busyfleet_workers{state}, busyfleet_slots,
// busyfleet_tasks_running, busyfleet_queue_depth, busyfleet_jobs{state},
// busyfleet_jobs_submitted_total, busyfleet_tasks_total{state=dispatched|
// succeeded|failed|retried}, busyfleet_task_duration_seconds (histogram),
// busyfleet_store_*. Every state label is present (zero when none), so
// series do not appear and vanish.
//
// Each call fills a registry of its own from the snapshot: the snapshot's
// counters are totals since start, so a fresh Counter incremented by the
// total is exactly that total (no delta bookkeeping, no shared state
// between concurrent scrapes).
std::string PrometheusText(const MetricsSnapshot& m);

}  // namespace busyfleet::coordinator

#endif  // BUSYFLEET_COORDINATOR_SERVER_PROMETHEUS_TEXT_H_
