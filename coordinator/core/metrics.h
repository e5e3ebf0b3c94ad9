#ifndef BUSYFLEET_COORDINATOR_CORE_METRICS_H_
#define BUSYFLEET_COORDINATOR_CORE_METRICS_H_

// The coordinator's figures for monitoring (server/prometheus_text.h gives
// their Prometheus text form).
// Plain data and pure functions: no I/O, no locking (the Coordinator takes a
// snapshot under its own lock).

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "busyfleet/v1/types.pb.h"

namespace busyfleet::coordinator {

// A cumulative histogram with fixed upper bounds (Prometheus semantics:
// counts[i] observations <= bounds[i]; `count` includes those above the last
// bound, the +Inf bucket).
class Histogram {
 public:
  // `bounds` strictly increasing.
  explicit Histogram(std::vector<double> bounds);
  // Task durations: 1 ms to 1 h.
  static Histogram TaskSeconds();

  void Add(double value);
  const std::vector<double>& bounds() const { return bounds_; }
  // Cumulative counts, one per bound.
  std::vector<uint64_t> cumulative() const;
  double sum() const { return sum_; }
  uint64_t count() const { return count_; }

 private:
  std::vector<double> bounds_;
  std::vector<uint64_t> counts_;  // per bucket, not cumulative
  double sum_ = 0;
  uint64_t count_ = 0;
};

// Totals since the coordinator started.
struct CoordinatorCounters {
  uint64_t dispatched = 0;       // attempts handed to workers (backups included)
  uint64_t succeeded = 0;        // tasks that succeeded
  uint64_t attempts_failed = 0;  // attempts that failed, timed out or were lost
  uint64_t retried = 0;          // attempts queued again after a counted failure
  Histogram task_seconds = Histogram::TaskSeconds();  // succeeded tasks' durations
};

// The job store's state (JobStore::Health). Plain data.
struct StoreHealth {
  // False while the store cannot write: its backlog grows in memory, new
  // jobs are refused (Unavailable), running jobs go on.
  bool writable = true;
  // Why not (the database, the step and SQLite's words); empty when writable.
  std::string cause;
  // Rows (job headers and task rows) queued and not yet committed: the
  // memory a store that cannot write is holding.
  uint64_t backlog_rows = 0;
  // Transactions committed, and attempts that failed (each is retried).
  uint64_t commits = 0;
  uint64_t write_failures = 0;
  // When the store last stopped being writable (InfinitePast: never).
  int64_t unwritable_since_unix_ns = 0;
  // Finished jobs removed by retention, `coordctl delete` or `jobs prune`;
  // and (--db :memory: only) finished jobs whose task rows were dropped past
  // the bound on finished jobs kept in memory.
  uint64_t jobs_deleted = 0;
  uint64_t jobs_dropped = 0;
  // Task rows of deleted jobs still to be removed (a durable store removes
  // a big job's rows over several small transactions).
  uint64_t purge_rows = 0;
};

// What misbehaving peers were refused since start (issue 14): each refusal
// a peer sees is counted once here. Plain data.
struct PeerCounters {
  uint64_t sessions_refused = 0;  // Attach past --max-sessions (RESOURCE_EXHAUSTED)
  uint64_t watches_refused = 0;   // WatchJob/RunJob past --max-watches (RESOURCE_EXHAUSTED)
  uint64_t slow_readers = 0;      // worker streams closed: their send queue was full
  uint64_t stalled_watches = 0;   // watch streams closed: a write stuck too long
  uint64_t workers_refused = 0;   // Attach streams ended for a refused hello or message
  uint64_t strings_truncated = 0; // worker strings cut to their limit
  // Client calls (coordctl's service) refused, by the gRPC code's name in
  // lower case ("invalid_argument"); watches_refused are among them.
  std::map<std::string, uint64_t> client_refusals;
};

// The thread-safe tally behind PeerCounters (the gRPC adapters count; the
// Coordinator reports). Lock-free.
class PeerTally {
 public:
  enum Kind { kSessionsRefused, kWatchesRefused, kSlowReaders, kStalledWatches, kWorkersRefused,
              kStringsTruncated, kKinds };
  void Add(Kind kind, uint64_t n = 1) { counts_[kind].fetch_add(n, std::memory_order_relaxed); }
  // `code` is an absl::StatusCode (0 to 16); OK is not counted.
  void AddClientRefusal(int code);
  PeerCounters Snapshot() const;

 private:
  std::array<std::atomic<uint64_t>, kKinds> counts_{};
  std::array<std::atomic<uint64_t>, 17> client_{};
};


struct MetricsSnapshot {
  // Attached workers by state (READY, DRAINING) and recently gone ones (GONE).
  std::map<v1::WorkerState, uint32_t> workers;
  // Slots of attached workers, and tasks running on them.
  uint64_t slots = 0;
  uint64_t running = 0;
  // Tasks waiting for a slot, over all jobs.
  uint64_t queue_depth = 0;
  // Jobs the coordinator holds (unfinished ones, and recently finished ones) by state.
  std::map<v1::JobState, uint32_t> jobs;
  uint64_t jobs_submitted = 0;
  CoordinatorCounters counters;
  StoreHealth store;
  PeerCounters peers;
};


}  // namespace busyfleet::coordinator

#endif  // BUSYFLEET_COORDINATOR_CORE_METRICS_H_
