#include "worker/executor.h"

#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "busyfleet/assign_range.h"
#include "busyfleet/packed_results.h"
#include "busyfleet/proto_time.h"
#include "common/clock.h"
#include "worker/cpu_topology.h"
#include "worker/interference.h"
#include "worker/python_kernel.h"

namespace busyfleet::worker {
namespace {

KernelResult RunKernel(const v1::Assignment& a, const CancelToken& cancel, MonoTime deadline) {
  switch (a.kind()) {
    case v1::TASK_KIND_COUNTDOWN:
      return Countdown(a.iterations(), cancel, deadline);
    case v1::TASK_KIND_SPIN:
      return Spin(ToAbslDuration(a.duration()), cancel, deadline);
    case v1::TASK_KIND_SLEEP:
      return Sleep(ToAbslDuration(a.duration()), cancel, deadline);
    case v1::TASK_KIND_PYTHON:
      return PythonCountdown(a.iterations(), cancel, deadline);
    default:
      return {KernelOutcome::kBadKind, 0};
  }
}

// Kinds whose tasks count iterations (TaskResult.iterations_done).
bool CountsIterations(v1::TaskKind kind) {
  return kind == v1::TASK_KIND_COUNTDOWN || kind == v1::TASK_KIND_PYTHON;
}

// The task's timeout, on the monotonic clock.
MonoTime DeadlineOf(const v1::Assignment& a) {
  const absl::Duration timeout = ToAbslDuration(a.timeout());
  return timeout > absl::ZeroDuration() ? MonoNow() + timeout : MonoTime::InfiniteFuture();
}

void SetWallStart(absl::Time t, v1::TaskResult* r) { *r->mutable_start_wall() = ToProtoTimestamp(t); }

// A result naming the task and its slot, started now on the wall clock.
v1::TaskResult NewResult(const v1::Assignment& a, int slot) {
  v1::TaskResult r;
  *r.mutable_task() = a.task();
  r.set_slot(static_cast<uint32_t>(slot));
  SetWallStart(ReportedWallNow(), &r);
  return r;
}

// Why a task's kernel refused to run (KernelOutcome::kBadKind).
std::string BadKindError(const v1::Assignment& a) {
  if (a.kind() != v1::TASK_KIND_PYTHON) return absl::StrCat("unknown task kind ", static_cast<int>(a.kind()));
  if (!PythonKernelAvailable()) {
    return "this worker does not run python tasks (built without Python, or started with --no-python)";
  }
  return "the embedded Python raised (out of memory)";
}

// State and error for how the kernel ended, the same in both modes.
void SetOutcome(const v1::Assignment& a, KernelOutcome outcome, v1::TaskResult* r) {
  switch (outcome) {
    case KernelOutcome::kCompleted:
      r->set_state(v1::TASK_STATE_SUCCEEDED);
      break;
    case KernelOutcome::kCancelled:
      r->set_state(v1::TASK_STATE_CANCELLED);
      r->set_error("cancelled");
      break;
    case KernelOutcome::kTimedOut:
      r->set_state(v1::TASK_STATE_FAILED);
      r->set_error(absl::StrCat("timed out after ", absl::FormatDuration(ToAbslDuration(a.timeout()))));
      break;
    case KernelOutcome::kBadKind:
      r->set_state(v1::TASK_STATE_FAILED);
      r->set_error(BadKindError(a));
      r->set_permanent(true);
      break;
  }
}

// Exit codes of a process-mode child.
constexpr int kChildCompleted = 0;
constexpr int kChildTimedOut = 3;
constexpr int kChildBadKind = 4;

// The CPU the calling thread is on, for TaskResult.start_cpu / end_cpu.
void SetCpu(int cpu, void (v1::TaskResult::*set)(uint32_t), v1::TaskResult* r) {
  if (cpu >= 0) (r->*set)(static_cast<uint32_t>(cpu));
}

void SetMigrated(v1::TaskResult* r) {
  r->set_migrated(r->has_start_cpu() && r->has_end_cpu() && r->start_cpu() != r->end_cpu());
}

// The child side of a process-mode task: only the kernel, then _exit (no
// destructors, no gRPC). SIGTERM (blocked in the worker) ends it at once:
// nothing to clean up. Before exiting it writes the CPUs it started and
// ended on to `cpus_fd` (its affinity is its slot thread's, inherited).
[[noreturn]] void RunChild(const v1::Assignment& a, MonoTime deadline, int cpus_fd) {
  sigset_t term;
  sigemptyset(&term);
  sigaddset(&term, SIGTERM);
  pthread_sigmask(SIG_UNBLOCK, &term, nullptr);
  CancelToken never;
  int cpus[2] = {sched_getcpu(), -1};
  const KernelOutcome outcome = RunKernel(a, never, deadline).outcome;
  cpus[1] = sched_getcpu();
  if (cpus_fd >= 0) {
    [[maybe_unused]] const ssize_t written = write(cpus_fd, cpus, sizeof(cpus));  // lost: unknown CPUs
  }
  switch (outcome) {
    case KernelOutcome::kBadKind: _exit(kChildBadKind);
    case KernelOutcome::kTimedOut: _exit(kChildTimedOut);
    default: _exit(kChildCompleted);
  }
}

// State and error of a process-mode task from its child's wait status.
void SetChildOutcome(const v1::Assignment& a, int status, bool cancelled, v1::TaskResult* r) {
  const int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  if (code == kChildCompleted) {
    SetOutcome(a, KernelOutcome::kCompleted, r);
    r->set_iterations_done(CountsIterations(a.kind()) ? a.iterations() : 0);
  } else if (cancelled) {
    SetOutcome(a, KernelOutcome::kCancelled, r);
  } else if (code == kChildBadKind) {
    SetOutcome(a, KernelOutcome::kBadKind, r);
  } else if (code == kChildTimedOut) {
    SetOutcome(a, KernelOutcome::kTimedOut, r);
  } else if (WIFSIGNALED(status)) {
    r->set_state(v1::TASK_STATE_FAILED);
    r->set_error(absl::StrCat("task process killed by signal ", WTERMSIG(status), " (",
                              strsignal(WTERMSIG(status)), ")"));
  } else {
    r->set_state(v1::TASK_STATE_FAILED);
    r->set_error(absl::StrCat("task process exited with status ", WEXITSTATUS(status)));
  }
}

// The CPUs a child wrote before exiting (RunChild); closes `fd`.
void ReadChildCpus(int fd, v1::TaskResult* r) {
  if (fd < 0) return;
  int cpus[2] = {-1, -1};
  if (read(fd, cpus, sizeof(cpus)) == static_cast<ssize_t>(sizeof(cpus))) {
    SetCpu(cpus[0], &v1::TaskResult::set_start_cpu, r);
    SetCpu(cpus[1], &v1::TaskResult::set_end_cpu, r);
    SetMigrated(r);
  }
  close(fd);
}

}  // namespace

Executor::Executor(Options options, StartedFn on_started, FinishedFn on_finished, FinishedRunFn on_finished_run)
    : options_(options),
      on_started_(std::move(on_started)),
      on_finished_(std::move(on_finished)),
      self_pid_(static_cast<uint32_t>(getpid())),
      on_finished_run_(std::move(on_finished_run)) {
  {
    absl::MutexLock lock(&mu_);
    slot_busy_.assign(static_cast<size_t>(options_.slots), false);
    runs_.resize(static_cast<size_t>(options_.slots));
  }
  threads_.reserve(static_cast<size_t>(options_.slots));
  absl::MutexLock lock(&stop_mu_);
  for (int slot = 0; slot < options_.slots; ++slot) {
    threads_.emplace_back([this, slot] { SlotLoop(slot); });
  }
  PinSlotThreads();
  killer_ = std::thread([this] { KillerLoop(); });
}

void Executor::PinSlotThreads() {
  bound_cpus_.assign(static_cast<size_t>(options_.slots), "");
  if (options_.slot_cpus.size() != static_cast<size_t>(options_.slots)) return;
  // No task can start before the constructor returns: every slot is pinned
  // before its first task.
  for (size_t slot = 0; slot < threads_.size(); ++slot) {
    cpu_set_t mask;
    CPU_ZERO(&mask);
    bool fits = !options_.slot_cpus[slot].empty();
    for (int cpu : options_.slot_cpus[slot]) {
      fits = fits && cpu >= 0 && cpu < CPU_SETSIZE;
      if (fits) CPU_SET(cpu, &mask);
    }
    if (fits && pthread_setaffinity_np(threads_[slot].native_handle(), sizeof(mask), &mask) == 0) {
      bound_cpus_[slot] = FormatCpuList(options_.slot_cpus[slot]);
    }
  }
}

void Executor::StopChildLocked(const Key& key, pid_t child) {
  kill(child, SIGTERM);
  kills_.emplace(MonoNow() + options_.kill_grace, std::make_pair(key, child));
}

void Executor::KillerLoop() {
  absl::MutexLock lock(&mu_);
  for (;;) {
    auto wake = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_ || !kills_.empty(); };
    mu_.Await(absl::Condition(&wake));
    if (stopping_) return;
    const MonoTime due = kills_.begin()->first;
    auto stop = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_; };
    // The grace is on the monotonic clock; absl's timeout follows the wall
    // clock, so a step forward only wakes it early and it looks again.
    if (mu_.AwaitWithTimeout(absl::Condition(&stop), due - MonoNow())) return;
    const MonoTime now = MonoNow();
    while (!kills_.empty() && kills_.begin()->first <= now) {
      const auto [key, child] = kills_.begin()->second;
      kills_.erase(kills_.begin());
      // Still the same unreaped child (the pid cannot have been reused).
      auto it = running_.find(key);
      if (it != running_.end() && it->second.child == child) kill(child, SIGKILL);
    }
  }
}

Executor::~Executor() { Stop(); }

void Executor::Submit(const v1::Assignment& assignment) {
  absl::MutexLock lock(&mu_);
  if (stopping_) return;
  queue_.push_back(Work{assignment, 1});
  ++queued_tasks_;
}

void Executor::SubmitRange(const v1::AssignRange& r) {
  if (r.count() == 0 || r.count() > kMaxRangeTasks || r.first_index() > UINT32_MAX - r.count()) return;
  Work w;
  SetRangeTask(r, 0, w.a);
  w.count = r.count();
  absl::MutexLock lock(&mu_);
  if (stopping_) return;
  queue_.push_back(std::move(w));
  queued_tasks_ += r.count();
}

bool Executor::TryRunInline(const v1::Assignment& a) {
  if (ModeOf(a) != v1::EXEC_MODE_THREAD || a.kind() != v1::TASK_KIND_COUNTDOWN || a.iterations() > kInlineIterations) {
    return false;
  }
  auto cancel = std::make_shared<CancelToken>();
  int slot = -1;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_ || !queue_.empty()) return false;
    for (size_t i = 0; i < slot_busy_.size(); ++i) {
      if (!slot_busy_[i]) {
        slot = static_cast<int>(i);
        break;
      }
    }
    if (slot < 0) return false;
    ClaimSlotLocked(slot, a, cancel);
  }
  RunAndReport(a, slot, *cancel, /*on_slot_thread=*/false);
  return true;
}

void Executor::Cancel(const v1::TaskRef& ref) {
  absl::MutexLock lock(&mu_);
  const uint32_t index = ref.task_index();
  for (auto it = queue_.begin(); it != queue_.end(); ++it) {
    const v1::TaskRef& head = it->a.task();
    const uint32_t first = head.task_index();
    if (index < first || index - first >= it->count || head.attempt() != ref.attempt() ||
        head.job_id() != ref.job_id()) {
      continue;
    }
    --queued_tasks_;
    if (it->count == 1) {
      queue_.erase(it);
    } else if (index == first) {
      it->a.mutable_task()->set_task_index(first + 1);
      --it->count;
    } else if (index - first == it->count - 1) {
      --it->count;
    } else {
      // The middle of a range: split it around the task.
      Work rest{it->a, it->count - (index - first) - 1};
      rest.a.mutable_task()->set_task_index(index + 1);
      it->count = index - first;
      queue_.insert(std::next(it), std::move(rest));
    }
    return;
  }
  const Key key = KeyOf(ref);
  auto it = running_.find(key);
  if (it != running_.end()) {
    CancelRunningLocked(key, it->second);
    return;
  }
  // In a run: skipped unless it has begun (a tiny task then just ends,
  // and its result comes).
  for (const std::unique_ptr<Run>& run : runs_) {
    if (run == nullptr || index < run->first || index - run->first >= run->count || run->attempt != ref.attempt() ||
        run->job != ref.job_id()) {
      continue;
    }
    run->any_skip.store(true, std::memory_order_seq_cst);
    if (index - run->first < run->begun.load(std::memory_order_seq_cst)) return;
    auto at = std::lower_bound(run->skip.begin(), run->skip.end(), index);
    if (at == run->skip.end() || *at != index) run->skip.insert(at, index);
    return;
  }
}

bool Executor::SkippedInRun(const Run& run, uint32_t index) const {
  absl::MutexLock lock(&mu_);
  return std::binary_search(run.skip.begin(), run.skip.end(), index);
}

void Executor::CancelAll() {
  absl::MutexLock lock(&mu_);
  queue_.clear();
  queued_tasks_ = 0;
  for (const auto& [key, r] : running_) CancelRunningLocked(key, r);
  for (const std::unique_ptr<Run>& run : runs_) {
    if (run != nullptr) run->cancel.Cancel();
  }
}

void Executor::CancelRunningLocked(const Key& key, const Running& running) {
  running.cancel->Cancel();
  if (running.child > 0) StopChildLocked(key, running.child);
}

std::vector<v1::TaskRef> Executor::Held() const {
  absl::MutexLock lock(&mu_);
  std::vector<v1::TaskRef> out;
  out.reserve(running_.size() + queue_.size());
  for (const auto& [key, running] : running_) {
    v1::TaskRef& ref = out.emplace_back();
    ref.set_job_id(std::get<0>(key));
    ref.set_task_index(std::get<1>(key));
    ref.set_attempt(std::get<2>(key));
  }
  for (const std::unique_ptr<Run>& run : runs_) {
    if (run == nullptr) continue;
    for (uint32_t i = run->first; i - run->first < run->count; ++i) {
      if (std::binary_search(run->skip.begin(), run->skip.end(), i)) continue;
      v1::TaskRef& ref = out.emplace_back();
      ref.set_job_id(run->job);
      ref.set_task_index(i);
      ref.set_attempt(run->attempt);
    }
  }
  AppendQueuedLocked(out);
  return out;
}

void Executor::AppendQueuedLocked(std::vector<v1::TaskRef>& out) const {
  out.reserve(out.size() + queued_tasks_);
  for (const Work& w : queue_) {
    for (uint32_t i = 0; i < w.count; ++i) {
      out.push_back(w.a.task());
      out.back().set_task_index(w.a.task().task_index() + i);
    }
  }
}

std::vector<v1::TaskRef> Executor::TakeQueued() {
  absl::MutexLock lock(&mu_);
  std::vector<v1::TaskRef> out;
  AppendQueuedLocked(out);
  queue_.clear();
  queued_tasks_ = 0;
  return out;
}

int Executor::RunningLocked() const {
  size_t n = running_.size();
  for (const std::unique_ptr<Run>& run : runs_) {
    if (run != nullptr) n += run->count - std::min<size_t>(run->count, run->skip.size());
  }
  return static_cast<int>(n);
}

int Executor::running() const {
  absl::MutexLock lock(&mu_);
  return RunningLocked();
}

int Executor::queued() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(queued_tasks_);
}

bool Executor::WaitIdle(absl::Time deadline) const {
  absl::MutexLock lock(&mu_);
  auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!queue_.empty() || !running_.empty()) return false;
    for (const std::unique_ptr<Run>& run : runs_) {
      if (run != nullptr) return false;
    }
    return true;
  };
  return mu_.AwaitWithDeadline(absl::Condition(&idle), deadline);
}

void Executor::Stop() {
  absl::MutexLock stop_lock(&stop_mu_);
  {
    absl::MutexLock lock(&mu_);
    if (stopping_ && threads_.empty()) return;
    stopping_ = true;
    queue_.clear();
    queued_tasks_ = 0;
    for (auto& [key, r] : running_) {
      r.cancel->Cancel();
      if (r.child > 0) kill(r.child, SIGKILL);
    }
    for (const std::unique_ptr<Run>& run : runs_) {
      if (run != nullptr) run->cancel.Cancel();
    }
  }
  for (std::thread& t : threads_) {
    if (t.joinable()) t.join();
  }
  threads_.clear();
  if (killer_.joinable()) killer_.join();
}

void Executor::SlotLoop(int slot) {
  for (;;) {
    v1::Assignment a;
    auto cancel = std::make_shared<CancelToken>();
    uint32_t run = 0;
    {
      absl::MutexLock lock(&mu_);
      // A slot lent to an inline task takes nothing until that one is done.
      auto ready = [this, slot]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stopping_ || (!queue_.empty() && !slot_busy_[static_cast<size_t>(slot)]);
      };
      mu_.Await(absl::Condition(&ready));
      if (stopping_) return;
      run = TakeFrontLocked(slot, a);
      if (run == 0) ClaimSlotLocked(slot, a, cancel);
    }
    if (run > 0) {
      RunRun(a, slot);
    } else {
      RunAndReport(a, slot, *cancel);
    }
  }
}

uint32_t Executor::TakeFrontLocked(int slot, v1::Assignment& a) {
  Work& w = queue_.front();
  if (w.count == 1) {
    a = std::move(w.a);
    queue_.pop_front();
    --queued_tasks_;
    return 0;
  }
  const uint32_t first = w.a.task().task_index();
  const bool as_run = RunsAsRun(w.a);
  uint32_t n = 1;
  if (as_run) {
    // The slot's share of the range, so the other slots get theirs.
    const uint32_t slots = static_cast<uint32_t>(options_.slots);
    n = std::clamp((w.count + slots - 1) / slots, uint32_t{1}, MaxRunLength(w.a.iterations()));
  }
  a = w.a;
  w.a.mutable_task()->set_task_index(first + n);
  w.count -= n;
  queued_tasks_ -= n;
  if (w.count == 0) queue_.pop_front();
  if (!as_run) return 0;
  auto run = std::make_unique<Run>();
  run->job = a.task().job_id();
  run->attempt = a.task().attempt();
  run->first = first;
  run->count = n;
  runs_[static_cast<size_t>(slot)] = std::move(run);
  slot_busy_[static_cast<size_t>(slot)] = true;
  return n;
}

void Executor::RunRun(const v1::Assignment& a, int slot) {
  Run* run = nullptr;
  {
    absl::MutexLock lock(&mu_);
    run = runs_[static_cast<size_t>(slot)].get();  // this slot's until it resets it
  }
  RunResults out;
  v1::PackedResults& p = out.packed;
  p.set_job_id(run->job);
  p.set_pid(self_pid_);
  const std::string& bound = bound_cpus_[static_cast<size_t>(slot)];
  bool pinned = false;
  for (const std::string& b : bound_cpus_) pinned = pinned || !b.empty();
  if (pinned) {
    for (const std::string& b : bound_cpus_) p.add_slot_bound_cpus(b);
  }
  const int64_t base_mono = MonoNanosNow();
  const int64_t base_unix = absl::ToUnixNanos(ReportedWallNow());
  p.set_base_mono_ns(base_mono);
  p.set_base_unix_ns(base_unix);
  const bool timed = ToAbslDuration(a.timeout()) > absl::ZeroDuration();
  int64_t last_index = 0;
  int64_t last_start = base_mono;
  // A run's tasks share their attempt and slot, their wall time is their
  // CPU time, and their iterations and CPU are mostly one value: those go
  // once (PackedResults' constants), a column only from the first entry
  // that differs. WorkerClient writes them out in full for a coordinator
  // that does not read them.
  p.set_attempt_all(run->attempt);
  p.set_slot_all(static_cast<uint32_t>(slot));
  p.set_cpu_is_wall(true);
  ConstantOrColumn<uint64_t> iterations;
  ConstantOrColumn<uint32_t> cpus;  // start and end: the same CPU in this path
  for (uint32_t i = 0; i < run->count; ++i) {
    const uint32_t index = run->first + i;
    if (run->cancel.cancelled()) break;  // the rest is dropped, as a queue is
    run->begun.store(i + 1, std::memory_order_seq_cst);  // before any_skip: see Run::begun
    if (run->any_skip.load(std::memory_order_seq_cst) && SkippedInRun(*run, index)) continue;
    const MonoTime deadline = timed ? DeadlineOf(a) : MonoTime::InfiniteFuture();
    const int cpu0 = sched_getcpu();
    const int64_t t0 = MonoNanosNow();
    const KernelResult k = Countdown(a.iterations(), run->cancel, deadline);
    const int64_t t1 = MonoNanosNow();
    const int cpu1 = sched_getcpu();
    if (k.outcome == KernelOutcome::kCompleted && cpu0 == cpu1) {
      // The wall time is the CPU time here (see kWallIsCpuIterations).
      const int n = p.index_delta_size();
      p.add_index_delta(static_cast<int64_t>(index) - last_index);
      last_index = index;
      p.add_start_delta_ns(t0 - last_start);
      last_start = t0;
      p.add_wall_ns(static_cast<uint64_t>(t1 - t0));
      iterations.Add(n, k.iterations_done, [&p](uint64_t v) { p.add_iterations_done(v); });
      cpus.Add(n, cpu0 >= 0 ? static_cast<uint32_t>(cpu0) + 1 : 0, [&p](uint32_t v) {
        p.add_start_cpu_plus1(v);
        p.add_end_cpu_plus1(v);
      });
      continue;
    }
    v1::TaskResult& r = out.others.emplace_back();
    r.mutable_task()->set_job_id(run->job);
    r.mutable_task()->set_task_index(index);
    r.mutable_task()->set_attempt(run->attempt);
    r.set_slot(static_cast<uint32_t>(slot));
    r.set_pid(self_pid_);
    r.set_bound_cpus(bound);
    SetWallStart(absl::FromUnixNanos(base_unix + (t0 - base_mono)), &r);
    SetCpu(cpu0, &v1::TaskResult::set_start_cpu, &r);
    SetCpu(cpu1, &v1::TaskResult::set_end_cpu, &r);
    SetMigrated(&r);
    r.set_start_mono_ns(t0);
    r.set_end_mono_ns(t1);
    r.set_cpu_ns(t1 - t0);
    r.set_iterations_done(k.iterations_done);
    SetOutcome(a, k.outcome, &r);
  }
  if (iterations.all()) p.set_iterations_done_all(*iterations.all());
  if (cpus.all()) p.set_cpu_plus1_all(*cpus.all());
  // Hand the results over first, then free the slot: WaitIdle must not see
  // it idle before.
  if (on_finished_run_) {
    if (p.index_delta_size() > 0 || !out.others.empty()) on_finished_run_(std::move(out));
  } else {
    ForEachPackedResult(p, [this](const v1::TaskResult& r) { on_finished_(r); });
    for (v1::TaskResult& r : out.others) on_finished_(std::move(r));
  }
  absl::MutexLock lock(&mu_);
  runs_[static_cast<size_t>(slot)].reset();
  slot_busy_[static_cast<size_t>(slot)] = false;
}

void Executor::ClaimSlotLocked(int slot, const v1::Assignment& a, std::shared_ptr<CancelToken> cancel) {
  slot_busy_[static_cast<size_t>(slot)] = true;
  running_[KeyOf(a.task())] = Running{std::move(cancel), 0};
}

void Executor::RunAndReport(const v1::Assignment& a, int slot, const CancelToken& cancel, bool on_slot_thread) {
  const v1::ExecMode mode = ModeOf(a);
  if (mode != v1::EXEC_MODE_THREAD || a.kind() != v1::TASK_KIND_COUNTDOWN || a.iterations() > kWallIsCpuIterations) {
    v1::TaskStarted started;
    *started.mutable_task() = a.task();
    started.set_slot(static_cast<uint32_t>(slot));
    started.set_start_mono_ns(MonoNanosNow());
    on_started_(started);
  }
  const Key key = KeyOf(a.task());
  v1::TaskResult result = mode == v1::EXEC_MODE_PROCESS ? RunInProcess(a, slot, key, cancel)
                                                        : RunInThread(a, slot, cancel, on_slot_thread);
  // Report first, then leave running_: WaitIdle must not see this slot idle
  // before its result has been handed over.
  on_finished_(std::move(result));
  absl::MutexLock lock(&mu_);
  running_.erase(key);
  slot_busy_[static_cast<size_t>(slot)] = false;
}

v1::TaskResult Executor::RunInThread(const v1::Assignment& a, int slot, const CancelToken& cancel,
                                     bool on_slot_thread) {
  v1::TaskResult r = NewResult(a, slot);
  r.set_pid(self_pid_);
  if (on_slot_thread) r.set_bound_cpus(bound_cpus_[static_cast<size_t>(slot)]);
  SetCpu(sched_getcpu(), &v1::TaskResult::set_start_cpu, &r);
  // The thread CPU clock is a system call (a few microseconds in a VM): a
  // countdown shorter than that reports its wall time, which for a loop
  // that never blocks is its CPU time.
  const bool cpu_clock = a.kind() != v1::TASK_KIND_COUNTDOWN || a.iterations() > kWallIsCpuIterations;
  std::optional<Interference::Probe> probe;  // empty: no 4 KiB to clear for a tiny task
  if (on_slot_thread && WorthProbing(a, kWallIsCpuIterations)) probe = Interference::Begin(/*thread=*/true);
  const int64_t cpu0 = cpu_clock ? ThreadCpuNanos() : 0;
  r.set_start_mono_ns(MonoNanosNow());
  const MonoTime deadline = DeadlineOf(a);
  const KernelResult k = RunKernel(a, cancel, deadline);
  r.set_end_mono_ns(MonoNanosNow());
  SetCpu(sched_getcpu(), &v1::TaskResult::set_end_cpu, &r);
  SetMigrated(&r);
  r.set_cpu_ns(cpu_clock ? ThreadCpuNanos() - cpu0 : r.end_mono_ns() - r.start_mono_ns());
  r.set_iterations_done(CountsIterations(a.kind()) ? k.iterations_done : 0);
  SetOutcome(a, k.outcome, &r);
  if (probe) Interference::End(*probe, &r);
  return r;
}

v1::TaskResult Executor::RunInProcess(const v1::Assignment& a, int slot, const Key& key,
                                      const CancelToken& cancel) {
  v1::TaskResult r = NewResult(a, slot);
  r.set_bound_cpus(bound_cpus_[static_cast<size_t>(slot)]);
  // The child's CPUs come back through a pipe; non-blocking, so a child
  // killed before writing (or a sibling holding the write end) never
  // blocks the read.
  int cpus_pipe[2] = {-1, -1};
  if (pipe2(cpus_pipe, O_CLOEXEC | O_NONBLOCK) != 0) cpus_pipe[0] = cpus_pipe[1] = -1;
  std::optional<Interference::Probe> probe;
  if (WorthProbing(a, kWallIsCpuIterations)) probe = Interference::Begin(/*thread=*/false);
  r.set_start_mono_ns(MonoNanosNow());
  const MonoTime deadline = DeadlineOf(a);
  // A python task forks with CPython's fork protocol (PythonFork): the
  // child keeps this worker's interpreter, already started, like
  // multiprocessing's fork start method; about 2 ms a task (a fork of the
  // worker, docs/design.md) instead of the tens of milliseconds an exec of
  // a fresh worker plus Py_Initialize would add to every task. The child runs only
  // busy_wait on its one thread, then _exits.
  const pid_t pid = a.kind() == v1::TASK_KIND_PYTHON ? PythonFork() : fork();
  if (pid == 0) RunChild(a, deadline, cpus_pipe[1]);
  if (cpus_pipe[1] >= 0) close(cpus_pipe[1]);
  if (pid < 0) {
    if (cpus_pipe[0] >= 0) close(cpus_pipe[0]);
    r.set_end_mono_ns(MonoNanosNow());
    r.set_state(v1::TASK_STATE_FAILED);
    r.set_error(absl::StrCat("fork failed: ", std::strerror(errno)));
    return r;
  }
  r.set_pid(static_cast<uint32_t>(pid));
  {
    absl::MutexLock lock(&mu_);
    auto it = running_.find(key);
    if (it != running_.end()) it->second.child = pid;
    if (cancel.cancelled()) StopChildLocked(key, pid);  // cancelled before the pid was known
  }
  rusage usage{};
  std::optional<int64_t> run_delay;
  const int status = ReapChild(key, pid, &usage, probe ? &run_delay : nullptr);
  r.set_end_mono_ns(MonoNanosNow());
  r.set_cpu_ns((int64_t{usage.ru_utime.tv_sec} + usage.ru_stime.tv_sec) * 1'000'000'000 +
               (int64_t{usage.ru_utime.tv_usec} + usage.ru_stime.tv_usec) * 1'000);
  SetChildOutcome(a, status, cancel.cancelled(), &r);
  ReadChildCpus(cpus_pipe[0], &r);
  if (probe) Interference::End(*probe, &r, run_delay, &usage);
  return r;
}

int Executor::ReapChild(const Key& key, pid_t child, rusage* usage, std::optional<int64_t>* run_delay) {
  // Wait without reaping, forget the pid, then reap: a Cancel racing with
  // the exit can never signal a recycled pid.
  siginfo_t info{};
  while (waitid(P_PID, static_cast<id_t>(child), &info, WEXITED | WNOWAIT) != 0 && errno == EINTR) {
  }
  if (run_delay != nullptr) *run_delay = Interference::ChildRunDelay(child);  // the zombie keeps its counters
  {
    absl::MutexLock lock(&mu_);
    auto it = running_.find(key);
    if (it != running_.end()) it->second.child = 0;
  }
  int status = 0;
  while (wait4(child, &status, 0, usage) < 0 && errno == EINTR) {
  }
  return status;
}

}  // namespace busyfleet::worker
