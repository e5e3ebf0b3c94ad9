#ifndef BUSYFLEET_WORKER_EXECUTOR_H_
#define BUSYFLEET_WORKER_EXECUTOR_H_

#include <sys/resource.h>
#include <sys/types.h>

#include <algorithm>
#include <atomic>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "busyfleet/v1/worker.pb.h"
#include "common/clock.h"
#include "common/kernels.h"

namespace busyfleet::worker {

// Runs assigned tasks, one thread per slot. Thread-safe; no network.
//
// Each task runs either on its slot thread (thread mode) or in a child
// process forked for it (process mode; CPU time from wait4, a crash fails
// that task only). Cancel stops a running countdown within about a
// millisecond (the kernel's cooperative flag; process-mode children are
// killed), a thread-mode python task within a chunk of its loop plus the
// wait for the GIL (a few ms; worker/python_kernel.h).
class Executor {
 public:
  struct Options {
    int slots = 1;
    // The mode for assignments that do not name one.
    v1::ExecMode default_exec = v1::EXEC_MODE_THREAD;
    // A cancelled process-mode task gets SIGTERM, then SIGKILL after this.
    absl::Duration kill_grace = absl::Milliseconds(200);
    // The OS CPU numbers each slot's thread is pinned to (CpuTopology::
    // Places), one entry per slot; process-mode children inherit their
    // slot's. Empty: slots float.
    std::vector<std::vector<int>> slot_cpus;
  };
  // Called from slot threads; must not block for long.
  using StartedFn = std::function<void(const v1::TaskStarted&)>;
  // Takes the result (moved in: the client keeps it without a copy).
  using FinishedFn = std::function<void(v1::TaskResult)>;
  // The results of a run: tiny tasks of one range run back to back on one
  // slot (see SubmitRange). The plain ones (busyfleet/packed_results.h's
  // Packable) as one column group, the others one TaskResult each.
  struct RunResults {
    v1::PackedResults packed;
    std::vector<v1::TaskResult> others;
  };
  using FinishedRunFn = std::function<void(RunResults)>;

  // Without `on_finished_run`, a run's results are handed to `on_finished`
  // one at a time.
  Executor(Options options, StartedFn on_started, FinishedFn on_finished, FinishedRunFn on_finished_run = nullptr);
  ~Executor();

  // Queues an assignment; a slot picks it up in order.
  void Submit(const v1::Assignment& assignment);
  // Queues a range's tasks (r.count() of them, at most kMaxRangeTasks),
  // without one Assignment each. A slot takes tiny thread-mode countdowns
  // (at most kWallIsCpuIterations) from it as runs (MaxRunLength):
  // one loop, one result hand-over per run. Other tasks one at a time.
  void SubmitRange(const v1::AssignRange& r);
  static constexpr uint32_t kMaxRangeTasks = 100'000;
  // Runs a tiny task on the calling thread, standing in for an idle slot,
  // and reports it like a slot would: a thread-mode countdown of at most
  // kInlineIterations, when nothing is queued and a slot is idle. Returns
  // false, having done nothing, otherwise. Spares a waiting client the
  // hand-off to a slot thread (tens of microseconds on a busy machine).
  bool TryRunInline(const v1::Assignment& assignment);
  // About 40 microseconds of countdown at 3.4 G iterations/s.
  static constexpr uint64_t kInlineIterations = uint64_t{1} << 17;
  // Thread-mode countdowns of at most this many iterations (about 20
  // microseconds) report their wall time as CPU time, and send no start
  // notice (StartedFn is not called): their result follows at once.
  static constexpr uint64_t kWallIsCpuIterations = uint64_t{1} << 16;
  // A run's bounds: at most kMaxRunIterations in all (as 64 of the longest
  // tiny tasks: about 1.3 ms, short enough that results flow while a long range
  // runs), and at most kMaxRunTasks tasks (empty ones: a result group of
  // about 32 KB with its constant columns, one hand-over for thousands of
  // tasks; it was 512, when a hand-over and its message each way were a
  // third of a worker's CPU, then 2,048 until issue 17's tenth session).
  static constexpr uint64_t kMaxRunIterations = uint64_t{64} * kWallIsCpuIterations;
  static constexpr uint32_t kMaxRunTasks = 8192;
  // The most tasks of `iterations` each that a run takes.
  static constexpr uint32_t MaxRunLength(uint64_t iterations) {
    return static_cast<uint32_t>(
        std::clamp<uint64_t>(kMaxRunIterations / std::max<uint64_t>(iterations, 1), 1, kMaxRunTasks));
  }
  // Stops the attempt: dropped silently if still queued (or in a run and not
  // started yet); if running, it stops and its result is reported as
  // CANCELLED. Unknown refs are ignored.
  void Cancel(const v1::TaskRef& ref);
  // Drops every queued task and cancels every running one.
  void CancelAll();
  // The attempts queued or running here (for Hello.held); a run's tasks
  // until its results are handed over.
  std::vector<v1::TaskRef> Held() const;
  // Removes and returns the tasks not started yet (for draining).
  std::vector<v1::TaskRef> TakeQueued();
  int running() const;
  int queued() const;
  // Waits until nothing is queued or running; false at the deadline.
  bool WaitIdle(absl::Time deadline) const;
  // Cancels everything and joins the slot threads. Idempotent.
  void Stop();
  // What each slot is pinned to, in the kernel's list syntax ("0-1"); ""
  // for a slot that floats (not asked, or the kernel refused).
  const std::vector<std::string>& bound_cpus() const { return bound_cpus_; }

 private:
  using Key = std::tuple<std::string, uint32_t, uint32_t>;
  struct Running {
    std::shared_ptr<CancelToken> cancel;
    pid_t child = 0;
  };
  // Queued work: `count` tasks from a.task().task_index() on, each as `a`
  // with its own index (1: a lone assignment).
  struct Work {
    v1::Assignment a;
    uint32_t count = 1;
  };
  // A run in progress on a slot: tasks [first, first + count) of `job`.
  struct Run {
    std::string job;
    uint32_t attempt = 0;
    uint32_t first = 0;
    uint32_t count = 0;
    // Cancelled before they began: skipped (ascending, no repeats).
    std::vector<uint32_t> skip;
    // Set by the first Cancel that finds the run: the run looks at `skip`
    // (under mu_) only then.
    std::atomic<bool> any_skip{false};
    // Tasks [first, first + begun) have begun (run, or been skipped). The
    // slot stores it before it loads any_skip; Cancel stores any_skip before
    // it loads this (both seq_cst): at least one sees the other, so a task
    // is either skipped or run and held until its result is handed over.
    std::atomic<uint32_t> begun{0};
    CancelToken cancel;  // CancelAll / Stop: the rest of the run is dropped
  };
  static Key KeyOf(const v1::TaskRef& ref) { return {ref.job_id(), ref.task_index(), ref.attempt()}; }

  // The mode `a` runs in: its own, or the default.
  v1::ExecMode ModeOf(const v1::Assignment& a) const {
    return a.exec() == v1::EXEC_MODE_UNSPECIFIED ? options_.default_exec : a.exec();
  }
  void SlotLoop(int slot);
  // Whether a range's tasks run as runs: tiny thread-mode countdowns.
  bool RunsAsRun(const v1::Assignment& a) const {
    return ModeOf(a) == v1::EXEC_MODE_THREAD && a.kind() == v1::TASK_KIND_COUNTDOWN &&
           a.iterations() <= kWallIsCpuIterations;
  }
  // Takes the next task (or run, into runs_[slot]) off the queue's front.
  // Returns the run's length (0: a single task, set into `a`).
  uint32_t TakeFrontLocked(int slot, v1::Assignment& a) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Runs runs_[slot] (prototype `a`) on its slot thread, hands its results
  // over, then frees the slot.
  void RunRun(const v1::Assignment& a, int slot);
  bool SkippedInRun(const Run& run, uint32_t index) const;
  // Every queued task's ref, appended to `out`.
  void AppendQueuedLocked(std::vector<v1::TaskRef>& out) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  int RunningLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Marks `slot` busy with `a`, cancellable through `cancel`.
  void ClaimSlotLocked(int slot, const v1::Assignment& a, std::shared_ptr<CancelToken> cancel)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Runs `a` as `slot` (already claimed), reports it, then frees the slot;
  // `on_slot_thread` false for a task run inline on another thread.
  void RunAndReport(const v1::Assignment& a, int slot, const CancelToken& cancel, bool on_slot_thread = true);
  // Pins each slot thread to options_.slot_cpus; fills bound_cpus_.
  void PinSlotThreads() ABSL_EXCLUSIVE_LOCKS_REQUIRED(stop_mu_);
  // Cancels a running task; a process-mode child is stopped.
  void CancelRunningLocked(const Key& key, const Running& running) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // SIGTERM now, SIGKILL after the grace unless it has exited by then.
  void StopChildLocked(const Key& key, pid_t child) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void KillerLoop();
  v1::TaskResult RunInThread(const v1::Assignment& a, int slot, const CancelToken& cancel, bool on_slot_thread);
  v1::TaskResult RunInProcess(const v1::Assignment& a, int slot, const Key& key,
                              const CancelToken& cancel);
  // Waits for the task's child to exit, forgets its pid, reaps it; its wait
  // status (and its CPU time in `usage`; its run-queue wait in `run_delay`
  // unless null, read between its exit and the reap).
  int ReapChild(const Key& key, pid_t child, rusage* usage, std::optional<int64_t>* run_delay);

  const Options options_;
  const StartedFn on_started_;
  const FinishedFn on_finished_;
  const uint32_t self_pid_;  // getpid() is a system call each time
  mutable absl::Mutex mu_;
  const FinishedRunFn on_finished_run_;
  std::deque<Work> queue_ ABSL_GUARDED_BY(mu_);
  size_t queued_tasks_ ABSL_GUARDED_BY(mu_) = 0;  // sum of queue_'s counts
  // One per slot; set while the slot runs a run.
  std::vector<std::unique_ptr<Run>> runs_ ABSL_GUARDED_BY(mu_);
  std::map<Key, Running> running_ ABSL_GUARDED_BY(mu_);
  // Slots running a task (on their own thread, or inline on another).
  std::vector<bool> slot_busy_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  // Children to SIGKILL at a time, unless reaped before.
  // SIGKILL due times (monotonic) of children sent SIGTERM.
  std::multimap<MonoTime, std::pair<Key, pid_t>> kills_ ABSL_GUARDED_BY(mu_);
  std::thread killer_;
  absl::Mutex stop_mu_;  // serialises Stop()
  std::vector<std::thread> threads_ ABSL_GUARDED_BY(stop_mu_);
  // Set in the constructor, before any task: read without a lock.
  std::vector<std::string> bound_cpus_;
};

}  // namespace busyfleet::worker

#endif  // BUSYFLEET_WORKER_EXECUTOR_H_
