#ifndef BUSYFLEET_COORDINATOR_CORE_JOB_MODEL_H_
#define BUSYFLEET_COORDINATOR_CORE_JOB_MODEL_H_

// Plain data: a job and its tasks as the coordinator tracks them. All times
// are on the coordinator's clock (worker times are converted on arrival):
// absl::Time fields are wall-clock stamps for reports; MonoTime fields are
// on its monotonic clock, for deciding (speculation), and live only in
// memory (never stored: no attempt runs on after a restart).

#include <algorithm>
#include <cassert>
#include <compare>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "busyfleet/v1/types.pb.h"
#include "common/clock.h"
#include "coordinator/core/metrics.h"

namespace busyfleet::coordinator {

inline bool IsTerminal(v1::JobState s) {
  return s == v1::JOB_STATE_SUCCEEDED || s == v1::JOB_STATE_FAILED || s == v1::JOB_STATE_CANCELLED;
}
inline bool IsTerminal(v1::TaskState s) {
  return s == v1::TASK_STATE_SUCCEEDED || s == v1::TASK_STATE_FAILED || s == v1::TASK_STATE_CANCELLED;
}

// Takes one off an in-flight count. A count about to go below zero is a
// miscount: it fails in debug builds (release builds keep it at zero).
inline void CountDown(uint32_t& count) {
  assert(count > 0 && "in-flight count below zero");
  if (count > 0) --count;
}

// Compact per-task value types. A job keeps one TaskRecord per task (a
// million-task job keeps a million), so what every task carries is kept
// small: names are interned (Name), instants are int64 nanoseconds (WallNs,
// MonoNs), and what few tasks need lives behind a pointer that is null for
// the rest (ValuePtr). See docs/design.md, "The task table".

// A worker, host or CPU-list string interned for the process's life: 4
// bytes in a record, the text shared by every task that names it. The
// empty string is id 0. Thread-safe; reading the text takes no lock. The
// set of distinct names must stay small (one per worker and host that ran
// a task, and distinct bound-CPU lists), about 100 bytes each: nothing new
// at every connection (a session is a SessionRef, not a Name).
class Name {
 public:
  Name() = default;
  Name(absl::string_view s);  // NOLINT: implicit, so records read like strings
  Name(const std::string& s) : Name(absl::string_view(s)) {}  // NOLINT
  Name(const char* s) : Name(absl::string_view(s)) {}         // NOLINT

  const std::string& str() const;
  operator const std::string&() const { return str(); }  // NOLINT
  bool empty() const { return id_ == 0; }
  void clear() { id_ = 0; }
  uint32_t id() const { return id_; }

  friend bool operator==(Name a, Name b) { return a.id_ == b.id_; }
  friend bool operator==(Name a, const std::string& b) { return a.str() == b; }
  friend bool operator==(Name a, absl::string_view b) { return a.str() == b; }
  friend bool operator==(Name a, const char* b) { return a.str() == b; }

 private:
  uint32_t id_ = 0;
};

// How many distinct names have been interned (they are kept for the
// process's life, so what interns them must be bounded: tests).
size_t InternedNameCount();

// A worker session as an attempt refers to it: the number its SessionTable
// gave it at attach (Session::ref), unique among the attached sessions; 0:
// none. Not an interned name: a session id is new at every connection, and
// the intern pool keeps what it holds for the process's life.
class SessionRef {
 public:
  SessionRef() = default;
  explicit SessionRef(uint32_t number) : number_(number) {}
  bool empty() const { return number_ == 0; }
  void clear() { number_ = 0; }
  uint32_t number() const { return number_; }
  friend bool operator==(SessionRef a, SessionRef b) { return a.number_ == b.number_; }

 private:
  uint32_t number_ = 0;
};

// A wall-clock instant as Unix nanoseconds (the store's resolution);
// absl::InfinitePast() (not set) is INT64_MIN. Converts to and from
// absl::Time.
class WallNs {
 public:
  constexpr WallNs() = default;
  WallNs(absl::Time t) : ns_(t == absl::InfinitePast() ? kNone : absl::ToUnixNanos(t)) {}  // NOLINT
  // `ns` must not be INT64_MIN (that is "not set").
  static WallNs FromUnixNanos(int64_t ns) {
    WallNs w;
    w.ns_ = ns;
    return w;
  }
  operator absl::Time() const { return time(); }  // NOLINT
  absl::Time time() const { return ns_ == kNone ? absl::InfinitePast() : absl::FromUnixNanos(ns_); }
  // Without the trip through absl::Time (aggregation reads a million).
  bool is_set() const { return ns_ != kNone; }
  int64_t unix_ns() const { return ns_; }  // meaningful when is_set()

  friend bool operator==(WallNs a, WallNs b) { return a.ns_ == b.ns_; }
  friend auto operator<=>(WallNs a, WallNs b) { return a.ns_ <=> b.ns_; }
  friend bool operator==(WallNs a, absl::Time b) { return a.time() == b; }
  friend std::weak_ordering operator<=>(WallNs a, absl::Time b) {
    const absl::Time t = a.time();
    return t < b ? std::weak_ordering::less : t > b ? std::weak_ordering::greater : std::weak_ordering::equivalent;
  }
  friend absl::Duration operator-(WallNs a, WallNs b) { return a.time() - b.time(); }
  friend absl::Duration operator-(WallNs a, absl::Time b) { return a.time() - b; }
  friend absl::Duration operator-(absl::Time a, WallNs b) { return a - b.time(); }
  friend absl::Time operator+(WallNs a, absl::Duration d) { return a.time() + d; }

 private:
  static constexpr int64_t kNone = INT64_MIN;
  int64_t ns_ = kNone;
};

// An instant on the coordinator's monotonic clock, as nanoseconds.
class MonoNs {
 public:
  constexpr MonoNs() = default;
  MonoNs(MonoTime t) : ns_(t.nanos()) {}  // NOLINT
  operator MonoTime() const { return time(); }  // NOLINT
  MonoTime time() const { return MonoTime::FromNanos(ns_); }

 private:
  int64_t ns_ = 0;
};

// A value on the heap only when set: 8 bytes when absent, copied deeply
// (what std::optional<T> would be, without its sizeof(T) in every record).
template <typename T>
class ValuePtr {
 public:
  ValuePtr() = default;
  ValuePtr(const ValuePtr& o) : p_(o.p_ ? std::make_unique<T>(*o.p_) : nullptr) {}
  ValuePtr(ValuePtr&&) noexcept = default;
  ValuePtr& operator=(const ValuePtr& o) {
    if (this != &o) p_ = o.p_ ? std::make_unique<T>(*o.p_) : nullptr;
    return *this;
  }
  ValuePtr& operator=(ValuePtr&&) noexcept = default;
  ValuePtr& operator=(T v) {
    p_ = std::make_unique<T>(std::move(v));
    return *this;
  }
  ValuePtr& operator=(std::optional<T> v) {
    p_ = v ? std::make_unique<T>(*std::move(v)) : nullptr;
    return *this;
  }
  explicit operator bool() const { return p_ != nullptr; }
  bool has_value() const { return p_ != nullptr; }
  T& operator*() const { return *p_; }
  T* operator->() const { return p_.get(); }
  T* get() const { return p_.get(); }
  T& emplace() {
    p_ = std::make_unique<T>();
    return *p_;
  }
  void reset() { p_.reset(); }

 private:
  std::unique_ptr<T> p_;
};

// An attempt that ended without being the task's last word: it failed, was
// lost with its worker, was handed back, or lost a speculation race. Kept
// for timelines (the task's final attempt lives in TaskRecord itself).
struct AttemptRecord {
  uint32_t attempt = 0;
  v1::TaskState state = v1::TASK_STATE_FAILED;
  bool backup = false;
  uint32_t slot = 0;
  uint32_t pid = 0;
  std::string worker;
  std::string host;
  absl::Time started_at = absl::InfinitePast();
  absl::Time ended_at = absl::InfinitePast();
  int64_t cpu_ns = 0;
  uint64_t iterations_done = 0;
  std::string error;
  double calibrated_rate = 0;  // Attempt::calibrated_rate
  // What slowed it down, measured on its worker; nullopt when not measured.
  std::optional<v1::Interference> interference;
};

// One copy of a task handed to a worker: the task's current attempt, or a
// speculative backup running beside it. Every task carries one inline
// (hot): keep it small (a unit test bounds its size).
// A task's state in one byte (the enum's values are 0-6); reads and
// assigns as a v1::TaskState.
class TaskStateByte {
 public:
  TaskStateByte(v1::TaskState s) : value_(static_cast<uint8_t>(s)) {}  // NOLINT: implicit
  operator v1::TaskState() const { return static_cast<v1::TaskState>(value_); }  // NOLINT

 private:
  uint8_t value_;
};

// A worker's slot number in two bytes (workers have at most 4,096 slots,
// limits::kMaxSlotsPerWorker); a reported one past 65,535 reads as 65,535.
// Reads and assigns as a uint32_t.
class SlotNumber {
 public:
  SlotNumber() = default;
  SlotNumber(uint32_t slot) : value_(static_cast<uint16_t>(std::min<uint32_t>(slot, UINT16_MAX))) {}  // NOLINT
  operator uint32_t() const { return value_; }  // NOLINT: implicit

 private:
  uint16_t value_ = 0;
};

// A CPU number as an Attempt keeps it: -1 when not reported or past 32,767.
inline int16_t CpuNumber(bool reported, uint32_t cpu) {
  return reported && cpu <= 32767 ? static_cast<int16_t>(cpu) : int16_t{-1};
}

struct Attempt {
  // Eight-byte fields first, so that TaskRecord packs its own small fields
  // into this struct's tail.
  WallNs assigned_at;
  WallNs started_at;
  // From its result (the current attempt only; a backup's result is kept
  // only when it wins, and it is the current attempt by then).
  WallNs ended_at;
  WallNs result_at;
  // On the monotonic clock: the assignment until the attempt starts, then
  // its start (speculation's due times; StartMono keeps the start after
  // the assignment).
  MonoNs mono;
  int64_t cpu_ns = 0;
  uint64_t iterations_done = 0;
  // 1-based; 0 before the task's first assignment.
  uint32_t number = 0;
  // Its worker's calibrated per-core rate for the job's kind (the CPU it
  // started on, else the worker's median) when the result came in; 0: none.
  // A float (7 significant digits, far finer than a calibration's own
  // noise): four bytes less in every task (see kMaxTaskRecordBytes).
  float calibrated_rate = 0;
  // The process that ran the attempt (the worker's own in thread mode, a
  // forked child in process mode); 0 when unknown.
  uint32_t pid = 0;
  // The session it was handed to; cleared when the attempt's result is in
  // (a later result for it is a duplicate) or it was lost.
  SessionRef session;
  Name worker;
  Name host;
  // Where it ran (TaskResult start_cpu, end_cpu, migrated, bound_cpus);
  // -1: unknown (CPU numbers up to 32,767). Stored with the task (the
  // current attempt's).
  Name bound_cpus;
  int16_t start_cpu = -1;
  int16_t end_cpu = -1;
  SlotNumber slot;
  bool migrated = false;
  // The backup's phase (started on its worker). The current attempt's
  // phase is TaskRecord::state, which is what is stored.
  bool running = false;
  // What slowed it down (TaskResult.interference) is the task's (cold):
  // only the current attempt's result sets it.

  // The attempt as its history entry: it ended in `state` (an attempt still
  // open ends at `now`, never before it started).
  AttemptRecord ToRecord(v1::TaskState state, bool backup, std::string error, absl::Time now) const;
  // Clears what the attempt's result set (before the task's next attempt).
  void ClearResult();
};

// What few tasks have (cold): kept behind TaskRecord::cold, null for a task
// that ran once and succeeded.
struct TaskCold {
  std::string error;
  // Earlier attempts that started, oldest first (not stored across restarts).
  std::vector<AttemptRecord> history;
  // Why earlier attempts did not succeed, one line each.
  std::vector<std::string> failures;
  // Speculation: a backup copy in flight beside the current attempt.
  std::optional<Attempt> backup;
  // The attempt number of the copy stopped because the other copy won the
  // speculation race (0: none): its late result is expected, not a duplicate.
  uint32_t stopped_loser = 0;
  // What slowed the current attempt down (TaskResult.interference),
  // measured on its worker; nullopt when not measured (short tasks).
  std::optional<v1::Interference> interference;
};

// One task: its hot fields inline, its cold ones (errors, history,
// failures, a backup copy) in `cold`, allocated on first use. Read the cold
// ones through the accessors (empty when there is none).
struct TaskRecord {
  // The current (or last) attempt; where it runs or ran, and its result.
  // Its tail padding holds the small fields below.
  [[no_unique_address]] Attempt current;
  uint32_t index = 0;
  // The highest attempt number handed out (primaries and backups), so that
  // a new attempt never reuses a lost backup's number.
  uint32_t last_attempt = 0;
  TaskStateByte state = v1::TASK_STATE_QUEUED;
  bool speculated = false;   // a backup was ever launched
  bool backup_won = false;   // the backup's result is the one kept
  // Its work is the job's split, not stored per task:
  // JobRecord::task_iterations(index) and JobRecord::task_duration().
  ValuePtr<TaskCold> cold;

  const std::string& error() const { return cold ? cold->error : EmptyString(); }
  void set_error(std::string e);
  const std::vector<AttemptRecord>& history() const { return cold ? cold->history : EmptyHistory(); }
  const std::vector<std::string>& failures() const { return cold ? cold->failures : EmptyFailures(); }
  std::vector<std::string>& mutable_failures() { return Cold().failures; }
  std::vector<AttemptRecord>& mutable_history() { return Cold().history; }
  // The backup copy in flight, or null.
  Attempt* backup() const { return cold && cold->backup ? &*cold->backup : nullptr; }
  Attempt& EmplaceBackup() { return Cold().backup.emplace(); }
  void ResetBackup() {
    if (cold) cold->backup.reset();
  }
  // The current attempt's interference (null: not measured).
  const v1::Interference* interference() const {
    return cold && cold->interference ? &*cold->interference : nullptr;
  }
  void set_interference(std::optional<v1::Interference> m) {
    if (m || cold) Cold().interference = std::move(m);
  }
  uint32_t stopped_loser() const { return cold ? cold->stopped_loser : 0; }
  void set_stopped_loser(uint32_t attempt) {
    if (attempt != 0 || cold) Cold().stopped_loser = attempt;
  }
  TaskCold& Cold() { return cold ? *cold : cold.emplace(); }

  // The number for a new attempt (primary or backup): never one handed out before.
  uint32_t NextAttemptNumber() {
    const Attempt* b = backup();
    last_attempt = std::max({current.number, b ? b->number : 0u, last_attempt}) + 1;
    return last_attempt;
  }
  // Moves the current attempt into the history when it had started, and
  // clears its result for the next.
  void ArchiveCurrent(v1::TaskState ended_as, std::string why, absl::Time now);
  // The backup becomes the current attempt (the current one must be
  // archived or ended first); returns whether it had started.
  bool TakeOverFromBackup();
  // The same for the backup copy when it had started; the backup is gone after.
  void DropBackup(v1::TaskState ended_as, std::string why, absl::Time now);

  bool has_timing() const { return current.started_at.is_set() && current.ended_at.is_set(); }
  // As absl::ToDoubleSeconds of the difference gives it (exactly, below
  // about 26 days), without the trip through absl::Time.
  double seconds() const {
    return has_timing() ? static_cast<double>(current.ended_at.unix_ns() - current.started_at.unix_ns()) / 1e9 : 0;
  }

  static const std::string& EmptyString();

 private:
  static const std::vector<AttemptRecord>& EmptyHistory();
  static const std::vector<std::string>& EmptyFailures();
};

// A million-task job keeps a million of these: the hot record must not
// silently grow back (docs/design.md, "The task table").
inline constexpr size_t kMaxTaskRecordBytes = 112;
static_assert(sizeof(TaskRecord) <= kMaxTaskRecordBytes, "TaskRecord grew: keep rare fields in TaskCold");

// The task table's allocator: std::allocator's, except that NewTaskTable
// has the table's resize leave the new records unbuilt (so that it builds
// them itself, on more than one CPU: std::vector builds them one after
// another, about 1.8 ms for 100,000 on this VM's CPUs, while the job's
// workers wait). Everything else builds records as std::allocator does.
template <typename T>
class TaskTableAllocator : public std::allocator<T> {
 public:
  template <typename U>
  struct rebind {
    using other = TaskTableAllocator<U>;
  };
  TaskTableAllocator() = default;
  template <typename U>
  TaskTableAllocator(const TaskTableAllocator<U>&) noexcept {}  // NOLINT: as std::allocator's

  template <typename U, typename... Args>
  void construct(U* p, Args&&... args) {
    if constexpr (sizeof...(Args) == 0) {
      if (unbuilt_) return;  // NewTaskTable builds it next
    }
    ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
  }

  // While one lives on a thread, resizes on it leave new records unbuilt.
  class LeaveUnbuilt {
   public:
    LeaveUnbuilt() { unbuilt_ = true; }
    ~LeaveUnbuilt() { unbuilt_ = false; }
    LeaveUnbuilt(const LeaveUnbuilt&) = delete;
    LeaveUnbuilt& operator=(const LeaveUnbuilt&) = delete;
  };

 private:
  static inline thread_local bool unbuilt_ = false;
};
using TaskTable = std::vector<TaskRecord, TaskTableAllocator<TaskRecord>>;

struct JobRecord {
  JobRecord() = default;
  JobRecord(const JobRecord&) = default;
  JobRecord(JobRecord&&) = default;
  JobRecord& operator=(const JobRecord&) = default;
  JobRecord& operator=(JobRecord&&) = default;
  // The task table's memory goes to the next job's (ReleaseTaskTable).
  ~JobRecord();

  std::string id;
  v1::JobSpec spec;
  v1::JobState state = v1::JOB_STATE_PENDING;
  std::string error;
  absl::Time submitted_at = absl::InfinitePast();
  absl::Time finished_at = absl::InfinitePast();
  TaskTable tasks;
  // Counters kept in step with `tasks`, so progress is O(1).
  uint32_t succeeded = 0;
  uint32_t failed = 0;
  uint32_t cancelled = 0;
  // Tasks in TASK_STATE_RUNNING (kept by SetTaskState).
  uint32_t running = 0;
  uint32_t retries = 0;
  // Results that arrived for an attempt no longer current (ignored); not
  // the expected late result of a stopped speculation loser.
  uint32_t duplicates = 0;
  uint32_t backups = 0;
  uint32_t backups_won = 0;
  // Speculation losers stopped: the copy (backup or primary) that the other
  // copy of its task beat.
  uint32_t backups_cancelled = 0;
  // Why queued tasks wait: no attached worker can take them (empty: they
  // can run, or none is queued). Memory only; recomputed on attach, detach,
  // submit and the liveness tick.
  std::string pending_reason;
  // Since when pending_reason has been set without a break (for
  // JobSpec.pending_timeout).
  MonoTime pending_since;
  uint64_t iterations_total = 0;
  uint64_t iterations_done = 0;
  // The number of tasks when `tasks` is not loaded (a header read for a
  // summary, JobStore::ListJobHeaders); otherwise 0.
  uint32_t task_count = 0;
  // Submit order within this coordinator process (Recover numbers the
  // loaded jobs first, in the store's order); 0 for a record read back.
  uint64_t seq = 0;

  uint32_t total_tasks() const { return tasks.empty() ? task_count : static_cast<uint32_t>(tasks.size()); }
  uint32_t done() const { return succeeded + failed + cancelled; }
  uint32_t max_attempts() const;
  // Every task's duration (spin, sleep; zero for the kinds that take
  // iterations), as SplitJob gives it.
  absl::Duration task_duration() const;
  // Task `index`'s iterations (countdown, python; zero for the others),
  // as SplitJob gives them for the job's number of tasks.
  uint64_t task_iterations(uint32_t index) const;
  // Every change of a task's state goes through here, keeping `running`.
  void SetTaskState(TaskRecord& t, v1::TaskState state) {
    if (t.state == v1::TASK_STATE_RUNNING) CountDown(running);
    if (state == v1::TASK_STATE_RUNNING) ++running;
    t.state = state;
  }
};

// Makes `tasks` `n` new records (queued, never assigned), tasks[i].index =
// i; the table it held is released (ReleaseTaskTable). A kept table that
// fits is taken and its records reset in place (its pages are mapped
// already); else a large table's fresh pages are mapped up front, on more
// than one CPU (PrefaultForWrite). The new records are built on more than
// one CPU too (TaskTableAllocator): a million tasks are 112 MB, built
// while the job's workers wait.
void NewTaskTable(TaskTable& tasks, uint32_t n);

// Keeps `tasks` for NewTaskTable when it is a large table (at least
// kMinTaskTableBytes; its records are reset when it is taken), else frees
// it; `tasks` is left empty, holding no memory. O(1) for a kept table.
// Thread-safe. The tables kept are bounded: at most
// kMaxPooledTaskTableBytes together, none idle for kTaskTableIdle past the
// next release, take or TrimTaskTables.
void ReleaseTaskTable(TaskTable& tasks);
inline constexpr size_t kMinTaskTableBytes = size_t{1} << 20;
// Table passes (a kept table's reset, a report's sums) split across CPUs
// in parts of at least this many records (about 3.5 MB).
inline constexpr size_t kParallelTaskRecords = 32 * 1024;
inline constexpr size_t kMaxPooledTaskTableBytes = size_t{32} << 20;
inline constexpr absl::Duration kTaskTableIdle = absl::Seconds(60);
// Frees the kept tables idle for `idle` (an idle coordinator gives their
// memory back: the server calls it from its retention loop).
void TrimTaskTables(absl::Duration idle = kTaskTableIdle);
// The bytes of the tables kept (tests, metrics).
size_t PooledTaskTableBytes();

// What follows when a task's current attempt ended without success.
enum class AfterFailedAttempt {
  kFailTask,       // the task fails (and with it the job)
  kPromoteBackup,  // its backup copy takes over
  kQueue,          // it runs again
};
// The accounting of a task's current attempt that ended without success,
// in one place. `why` (one line) becomes the task's error. When `counted`,
// it joins the task's failures and counters.attempts_failed. The task fails
// when `permanent` or when it has failed max_attempts times (`*job_error`
// says why; the attempt stays the task's last word). Otherwise a counted
// failure is a retry (job.retries, counters.retried), and the attempt moves
// into the history (FAILED when counted, else CANCELLED).
AfterFailedAttempt EndFailedAttempt(JobRecord& job, TaskRecord& t, const std::string& why, bool counted,
                                    bool permanent, absl::Time now, CoordinatorCounters& counters,
                                    std::string* job_error);

// The failures of one task in one line: the first `max_distinct` distinct
// messages (ignoring the "attempt N" that starts each) in order, each with
// its count when it repeats, then how many more distinct ones there were.
std::string SummarizeFailures(const std::vector<std::string>& failures, size_t max_distinct);

// Copies every field of `from` but its tasks into `to`.
void CopyJobHeader(const JobRecord& from, JobRecord* to);
// Copies what changes while a job runs (state, error, times, counters) into
// a `to` that already has the job's id and spec (they never change).
void CopyJobProgress(const JobRecord& from, JobRecord* to);

}  // namespace busyfleet::coordinator

#endif  // BUSYFLEET_COORDINATOR_CORE_JOB_MODEL_H_
