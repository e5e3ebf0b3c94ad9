#ifndef BUSYFLEET_COORDINATOR_CORE_SCHEDULER_H_
#define BUSYFLEET_COORDINATOR_CORE_SCHEDULER_H_

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/container/node_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"
#include "absl/time/time.h"
#include "busyfleet/v1/types.pb.h"

namespace busyfleet::coordinator {

// A job's queued task indices, in order, kept as runs of consecutive
// indices: a fresh million-task job is one entry, not four megabytes.
class IndexQueue {
 public:
  // Indices 0 .. n-1.
  void AssignRange(uint32_t n);
  void Assign(const std::vector<uint32_t>& indices);
  bool empty() const { return size_ == 0; }
  size_t size() const { return size_; }
  // Must not be empty.
  uint32_t front() const { return runs_.front().first; }
  void pop_front();
  void push_front(uint32_t index);
  // Removes `index` wherever it is queued; false if it is not.
  bool Erase(uint32_t index);
  void clear() {
    runs_.clear();
    size_ = 0;
  }

 private:
  struct Run {
    uint32_t first;
    uint32_t count;
  };
  void PushBack(uint32_t index);
  std::deque<Run> runs_;
  size_t size_ = 0;
};

// A set of task indices kept as sorted runs of consecutive ones. A
// worker's in-flight tasks of a job are a few runs (dealt in order, their
// results back in order), so adding past the end and removing at the front
// cost O(1) without hashing; a scattered index costs a binary search and a
// move of the runs after it.
class IndexSet {
 public:
  // False if `index` is already in the set.
  bool Insert(uint32_t index);
  // False if `index` is not in the set.
  bool Erase(uint32_t index);
  bool Contains(uint32_t index) const;
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  // Appends the indices to `out`, ascending.
  void AppendTo(std::vector<uint32_t>& out) const;
  // The number of runs (tests).
  size_t runs() const { return runs_.size(); }

 private:
  struct Run {
    uint32_t first;
    uint32_t last;  // inclusive: a run may end at UINT32_MAX
  };
  // upper_bound's order: `r` starts after `index`.
  static bool StartsAfter(uint32_t index, const Run& r);
  // The first run starting after `index`.
  std::vector<Run>::iterator After(uint32_t index);
  std::vector<Run> runs_;
  size_t size_ = 0;
};

struct TaskKey {
  std::string job_id;
  uint32_t index = 0;

  bool operator==(const TaskKey& o) const { return index == o.index && job_id == o.job_id; }
  template <typename H>
  friend H AbslHashValue(H h, const TaskKey& k) {
    return H::combine(std::move(h), k.job_id, k.index);
  }
};

// Hands queued tasks to workers with free credit. Thread-safe; no I/O.
//
// Pull with credits: each worker may hold up to `slots + prefetch` tasks in
// flight (assigned or running), so no slot waits a round trip between tasks.
// Prefetch adapts to each job's task durations (ObserveTaskSeconds) and to
// each worker's round trip (SetRoundTrip): enough tasks to keep
// kPipelineSeconds plus kRoundTripMargin round trips of work queued per
// slot (the link's bandwidth-delay product, see PrefetchSize), so tiny
// tasks go out (and come back) hundreds to a message and a far worker's
// slots do not idle while results and new tasks cross the link; longer
// ones get at least one task per slot ready behind the running one while
// the job has more than kTailSlotsFactor times the fleet's slots queued
// (a job alone on the fleet: while its queued and already-waiting tasks
// number at least the slots, so each slot's last task is ready too), and
// after that only tasks shorter than that budget, so no long task waits
// on one worker while a slot elsewhere idles at the job's end. Until a
// job's first result, Options::prefetch_per_worker, or its prediction when
// that is of long tasks (PredictTaskSeconds).
// Dispatch fills free slots across all workers first, round-robin, and only
// then prefetches, so a job smaller than the fleet is spread, not piled on
// the first worker. Jobs share the fleet fairly: each pick goes to the
// eligible job with the fewest tasks in flight (the oldest on a tie), within
// the job's max_slots cap.
class Scheduler {
 public:
  struct Options {
    int prefetch_per_worker = 2;
    // The caps of PrefetchSize (below): kMaxAdaptivePrefetch and
    // kMaxLinkPrefetch, or the larger ones for a store that holds no row
    // per task in flight.
    int max_prefetch = kMaxAdaptivePrefetch;
    int max_link_prefetch = kMaxLinkPrefetch;
  };
  struct WorkerSpec {
    std::string session;
    std::string name;
    int slots = 1;
    std::map<std::string, std::string> labels;
    std::vector<v1::ExecMode> exec_modes;
    // The task kinds it runs (Hello.kinds); empty: countdown, spin and
    // sleep (a worker older than the python kind).
    std::vector<v1::TaskKind> kinds;
  };
  struct JobConstraints {
    uint32_t max_slots = 0;  // 0: no cap
    std::vector<std::string> workers;
    std::map<std::string, std::string> selector;
    v1::ExecMode exec = v1::EXEC_MODE_UNSPECIFIED;
    // Only workers that offer this kind take the job's tasks; unspecified: any.
    v1::TaskKind kind = v1::TASK_KIND_UNSPECIFIED;

    // The constraints a job's spec sets.
    static JobConstraints Of(const v1::JobSpec& spec);
  };
  struct Assignment {
    std::string session;
    TaskKey task;
  };
  // Tasks [first, first + count) of `job_id` on `session` (DispatchRuns).
  struct Run {
    std::string session;
    std::string job_id;
    uint32_t first = 0;
    uint32_t count = 0;
  };

  // Work kept queued per slot beyond the running task (plus
  // kRoundTripMargin of the worker's round trips), and the cap on
  // prefetched tasks per worker: kMaxAdaptivePrefetch per kPipelineSeconds
  // of that work (4,096 on a link of no delay), at most kMaxLinkPrefetch.
  // A store that holds no row per task in flight (`:memory:`) takes the
  // larger caps: with a file, each task in flight is a row queued for the
  // writer, and 65,536 a worker took a million-task job past target 5's
  // 150 MiB; without, they carried a 1,000,000-empty-task job in 97-104 ms
  // instead of 118-152 (issue 17, tenth session).
  static constexpr double kPipelineSeconds = 0.005;
  static constexpr double kRoundTripMargin = 2.0;
  static constexpr int kTailSlotsFactor = 1;
  static constexpr int kMaxAdaptivePrefetch = 4096;
  static constexpr int kMaxLinkPrefetch = 64 * 1024;
  static constexpr int kMaxAdaptivePrefetchRowless = 64 * 1024;
  static constexpr int kMaxLinkPrefetchRowless = 512 * 1024;

  // Tasks to prefetch on a worker with `slots` slots and a round trip of
  // `rtt_seconds` for a job whose tasks take `task_seconds`: enough for
  // kPipelineSeconds + kRoundTripMargin x rtt of queued work per slot
  // (counted over the worker's slots, rounded down, a task counting as at
  // least 0.1 us), within the caps (`max_prefetch` per kPipelineSeconds of
  // that work, at most `max_link_prefetch`); with `plenty_queued` (not the
  // job's tail) at least one per slot. Pure; negative inputs count as 0.
  static int PrefetchSize(double rtt_seconds, double task_seconds, int slots, bool plenty_queued,
                          int max_prefetch = kMaxAdaptivePrefetch, int max_link_prefetch = kMaxLinkPrefetch);

  explicit Scheduler(Options options);

  // A task of `job_id` is predicted to take `seconds` (its iterations at
  // the fleet's calibrated rate, or its spin or sleep duration). Until the
  // job's first result, a prediction of at least kPipelineSeconds is
  // prefetched for as an observed duration would be (one task ready per
  // slot, so a far worker's slots do not idle a round trip after their
  // first task); a shorter one changes nothing (Options::prefetch_per_worker:
  // a short prediction can be far off, in process mode say, and would deal
  // thousands of tasks at once).
  void PredictTaskSeconds(absl::string_view job_id, double seconds);
  // A task of the job took `seconds`: updates the job's moving average of
  // task durations (which sets its prefetch). Unknown jobs are ignored.
  void ObserveTaskSeconds(absl::string_view job_id, double seconds);
  // The same for each of `seconds`, in order, with one lookup (a worker's
  // run of results).
  void ObserveTaskSeconds(absl::string_view job_id, absl::Span<const double> seconds);

  // AlreadyExists if the session is known; InvalidArgument for slots < 1.
  absl::Status AddWorker(WorkerSpec worker);
  // Forgets the worker. Its tasks in flight are put back at the front of
  // their jobs' queues and returned. NotFound for an unknown session.
  absl::StatusOr<std::vector<TaskKey>> RemoveWorker(absl::string_view session);
  // No new tasks for the worker. NotFound for an unknown session.
  absl::Status SetDraining(absl::string_view session);
  // The worker's round trip to the coordinator (0 until known), which sizes
  // its prefetch. NotFound for an unknown session.
  absl::Status SetRoundTrip(absl::string_view session, absl::Duration rtt);

  // Adds a job whose tasks `queued` (indices, in order) wait for a worker.
  // AlreadyExists if the job is known. `seq` orders jobs (older = smaller).
  absl::Status AddJob(absl::string_view job_id, JobConstraints constraints,
                      const std::vector<uint32_t>& queued, uint64_t seq);
  // The same with tasks 0 .. tasks-1 queued (a new job).
  absl::Status AddNewJob(absl::string_view job_id, JobConstraints constraints, uint32_t tasks, uint64_t seq);
  // Forgets a job: its queued tasks are dropped; the tasks in flight are
  // returned with their sessions (their credit is freed).
  std::vector<Assignment> RemoveJob(absl::string_view job_id);
  // The task ended on `session` (or was handed back): frees its credit.
  // NotFound if it is not in flight there.
  absl::Status Release(absl::string_view session, const TaskKey& task) {
    return Release(session, task.job_id, task.index);
  }
  absl::Status Release(absl::string_view session, absl::string_view job_id, uint32_t index);
  // Release of each of `indices` (tasks of one job) on `session`, with one
  // lookup of each: a worker's run of results. Returns how many were in
  // flight there; the others are skipped.
  size_t ReleaseMany(absl::string_view session, absl::string_view job_id, absl::Span<const uint32_t> indices);
  // Queues a task of a known job again, at the front. NotFound for an
  // unknown job.
  absl::Status Requeue(const TaskKey& task);
  // Puts a task that is in no queue in flight on `session` (taking its
  // credit): a worker reclaiming, after a coordinator restart, an attempt
  // it still holds. NotFound for an unknown session or job; AlreadyExists
  // if it is in flight there already.
  absl::Status Adopt(absl::string_view session, const TaskKey& task);

  // Assigns as many queued tasks as credits allow, one entry a task.
  std::vector<Assignment> Dispatch();
  // The same, as runs of consecutive tasks of one job on one session, in
  // the order dealt: one entry per run instead of one per task.
  std::vector<Run> DispatchRuns();

  // Speculation: puts a second copy of an in-flight task on a worker with a
  // free slot (not `exclude`, eligible for the job, within its max_slots).
  // Returns that worker's session, or nullopt when no slot is free.
  std::optional<std::string> AssignBackup(const TaskKey& task, absl::string_view exclude);
  // Removes a queued task from its job's queue (a lost primary whose backup
  // takes over). False if it was not queued.
  bool Dequeue(const TaskKey& task);
  // Tasks of the job still waiting for a worker; 0 for an unknown job.
  size_t QueuedFor(absl::string_view job_id) const;

  // Slots of ready (not draining) workers, and how many of them hold no task.
  int TotalSlots() const;
  int FreeSlots() const;
  size_t QueuedTasks() const;
  // Tasks in flight on the worker; 0 for an unknown session.
  int InFlight(absl::string_view session) const;

  // A job with queued tasks that no ready (attached, not draining) worker
  // can take, whatever their credit or the job's max_slots, and why, in the
  // words of coordctl's flags: "no worker attached", "every attached worker
  // is draining", "no attached worker matches --workers a,b", "no worker
  // offers --exec process", "no attached worker offers the python kind
  // (...)", "no worker with labels gpu=1" (the constraints
  // no worker meets, joined by "; "), or "no single worker matches all of
  // ..." when each is met by some worker but none meets all. One pass over
  // jobs x workers: for changes of the fleet or the jobs, not every dispatch.
  struct Unrunnable {
    std::string job_id;
    std::string reason;
  };
  std::vector<Unrunnable> UnrunnableJobs() const;

 private:
  // The tasks in flight on one worker, by job: a task's key costs no copy
  // of its job id (a million-task job goes through here a task at a time),
  // and consecutive calls for one job find it without hashing its id.
  class FlightSet {
   public:
    FlightSet() = default;
    // A node map's entries, and so what `last_` points at, move with it;
    // the moved-from set is left empty.
    FlightSet(FlightSet&& o) noexcept
        : by_job_(std::move(o.by_job_)), last_(std::exchange(o.last_, nullptr)), size_(std::exchange(o.size_, 0)) {
      o.by_job_.clear();
    }
    FlightSet& operator=(FlightSet&& o) noexcept {
      by_job_ = std::move(o.by_job_);
      o.by_job_.clear();
      last_ = std::exchange(o.last_, nullptr);
      size_ = std::exchange(o.size_, 0);
      return *this;
    }
    FlightSet(const FlightSet&) = delete;
    FlightSet& operator=(const FlightSet&) = delete;

    bool Insert(absl::string_view job_id, uint32_t index);
    bool Erase(absl::string_view job_id, uint32_t index);
    // Erase of each of `indices`; returns how many were there.
    size_t EraseMany(absl::string_view job_id, absl::Span<const uint32_t> indices);
    bool Contains(absl::string_view job_id, uint32_t index) const;
    // Removes the job's tasks; returns their indices (any order).
    std::vector<uint32_t> TakeJob(absl::string_view job_id);
    // Every task, in no particular order.
    std::vector<TaskKey> All() const;
    size_t size() const { return size_; }

   private:
    using Entry = std::pair<const std::string, IndexSet>;
    // The job's entry (added if `add`), or nullptr.
    Entry* Find(absl::string_view job_id, bool add);
    void EraseEntry(Entry* entry);

    absl::node_hash_map<std::string, IndexSet> by_job_;  // entries stay put
    Entry* last_ = nullptr;  // the entry found last, or nullptr
    size_t size_ = 0;
  };
  struct Worker {
    WorkerSpec spec;
    bool draining = false;
    double rtt_seconds = 0;
    FlightSet in_flight;
  };
  struct Job {
    std::string id;
    JobConstraints constraints;
    absl::flat_hash_set<std::string> allowed_workers;
    IndexQueue queued;
    uint32_t in_flight = 0;
    uint64_t seq = 0;
    double task_seconds = -1;  // moving average; < 0 until the first result
    double predicted_seconds = -1;  // PredictTaskSeconds; < 0: none
  };

  bool Eligible(const Job& job, const Worker& worker) const;
  // The job's worker names, labels and exec mode allow the worker (max_slots aside).
  static bool Matches(const Job& job, const Worker& worker);
  static bool NameMatches(const Job& job, const Worker& worker);
  static bool LabelsMatch(const Job& job, const Worker& worker);
  static bool ExecMatches(const Job& job, const Worker& worker);
  static bool KindMatches(const Job& job, const Worker& worker);
  // Why none of `ready` can take the job's tasks.
  static std::string WhyUnrunnable(const Job& job, const std::vector<const Worker*>& ready);
  // The fairest job with a task for the worker; with `prefetch`, only jobs
  // whose prefetch leaves the worker room for one more. `fleet_slots`: the
  // slots of all workers taking tasks.
  Job* PickJob(const Worker& worker, bool prefetch, int fleet_slots) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  int PrefetchFor(const Job& job, const Worker& worker, int fleet_slots) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status AddJobLocked(absl::string_view job_id, JobConstraints constraints, IndexQueue queued, uint64_t seq)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Moves up to `take` tasks from the front of the job's queue into the
  // worker's flight, appending them to `out` (consecutive ones as one run).
  void TakeLocked(Job& job, Worker& w, size_t take, std::vector<Run>& out) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Options options_;
  mutable absl::Mutex mu_;
  // The job (nullptr if unknown): the last one found without hashing its id.
  Job* FindJobLocked(absl::string_view job_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The session's worker, or nullptr; remembers the last one found (a
  // message's results are released one after another, all for one session).
  Worker* FindWorkerLocked(absl::string_view session) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  std::map<std::string, Worker, std::less<>> workers_ ABSL_GUARDED_BY(mu_);  // looked up by string_view: no copy a task
  absl::node_hash_map<std::string, Job> jobs_ ABSL_GUARDED_BY(mu_);          // entries stay put
  Job* last_job_ ABSL_GUARDED_BY(mu_) = nullptr;  // FindJobLocked's last find; cleared when a job goes
  Worker* last_worker_ ABSL_GUARDED_BY(mu_) = nullptr;  // FindWorkerLocked's; cleared when a worker goes
  size_t queued_ ABSL_GUARDED_BY(mu_) = 0;
  size_t cursor_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace busyfleet::coordinator

#endif  // BUSYFLEET_COORDINATOR_CORE_SCHEDULER_H_
