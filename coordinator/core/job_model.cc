#include "coordinator/core/job_model.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <new>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "common/parallel.h"
#include "common/prefault.h"
#include "coordinator/core/job_splitter.h"
#include "coordinator/core/limits.h"

namespace busyfleet::coordinator {
namespace {

// The interned names: texts in fixed chunks that never move, so a reader
// indexes them without a lock (an id reaches a reader only through the
// record that holds it, after the text was written).
class NamePool {
 public:
  static constexpr uint32_t kChunkBits = 12;
  static constexpr uint32_t kChunk = 1u << kChunkBits;
  static constexpr uint32_t kChunks = 1u << 14;  // 64 M names

  uint32_t Intern(absl::string_view s) {
    if (s.empty()) return 0;
    absl::MutexLock lock(&mu_);
    if (auto it = ids_.find(s); it != ids_.end()) return it->second;
    const uint32_t id = next_++;
    if (id >> kChunkBits >= kChunks) abort();  // 64 M distinct names: never in practice
    std::atomic<std::string*>& chunk = chunks_[id >> kChunkBits];
    if (chunk.load(std::memory_order_relaxed) == nullptr) chunk.store(new std::string[kChunk], std::memory_order_release);
    std::string& text = chunk.load(std::memory_order_relaxed)[id & (kChunk - 1)];
    text = std::string(s);
    ids_.emplace(absl::string_view(text), id);  // the kept text is the key
    return id;
  }
  size_t count() const {
    absl::MutexLock lock(&mu_);
    return next_ - 1;
  }
  const std::string& Text(uint32_t id) const {
    return chunks_[id >> kChunkBits].load(std::memory_order_acquire)[id & (kChunk - 1)];
  }

 private:
  mutable absl::Mutex mu_;
  absl::flat_hash_map<absl::string_view, uint32_t> ids_ ABSL_GUARDED_BY(mu_);
  uint32_t next_ ABSL_GUARDED_BY(mu_) = 1;  // 0: the empty string
  std::array<std::atomic<std::string*>, kChunks> chunks_{};
};

NamePool& Pool() {
  static NamePool* const pool = new NamePool();  // never destroyed: names outlive static records
  return *pool;
}

// The last names interned by this thread: the same few (its workers,
// hosts, sessions) repeat for every task, and a hit takes no lock.
struct RecentNames {
  static constexpr size_t kSize = 8;
  std::array<std::pair<std::string, uint32_t>, kSize> entries;
  size_t next = 0;
};

}  // namespace

Name::Name(absl::string_view s) {
  if (s.empty()) return;
  thread_local RecentNames recent;
  for (const auto& [text, id] : recent.entries) {
    if (id != 0 && text == s) {
      id_ = id;
      return;
    }
  }
  id_ = Pool().Intern(s);
  recent.entries[recent.next] = {std::string(s), id_};
  recent.next = (recent.next + 1) % RecentNames::kSize;
}

size_t InternedNameCount() { return Pool().count(); }

const std::string& Name::str() const {
  return id_ == 0 ? TaskRecord::EmptyString() : Pool().Text(id_);
}

const std::string& TaskRecord::EmptyString() {
  static const std::string* const empty = new std::string();
  return *empty;
}
const std::vector<AttemptRecord>& TaskRecord::EmptyHistory() {
  static const std::vector<AttemptRecord>* const empty = new std::vector<AttemptRecord>();
  return *empty;
}
const std::vector<std::string>& TaskRecord::EmptyFailures() {
  static const std::vector<std::string>* const empty = new std::vector<std::string>();
  return *empty;
}

void TaskRecord::set_error(std::string e) {
  if (e.empty() && !cold) return;
  Cold().error = std::move(e);
}

AttemptRecord Attempt::ToRecord(v1::TaskState state, bool backup, std::string error, absl::Time now) const {
  AttemptRecord a;
  a.attempt = number;
  a.state = state;
  a.backup = backup;
  a.slot = slot;
  a.pid = pid;
  a.worker = worker;
  a.host = host;
  a.started_at = started_at;
  a.ended_at = ended_at != absl::InfinitePast() ? ended_at.time() : std::max(now, started_at.time());
  a.cpu_ns = cpu_ns;
  a.iterations_done = iterations_done;
  a.error = std::move(error);
  a.calibrated_rate = calibrated_rate;
  return a;
}

void Attempt::ClearResult() {
  started_at = absl::InfinitePast();
  ended_at = absl::InfinitePast();
  result_at = absl::InfinitePast();
  cpu_ns = 0;
  iterations_done = 0;
  pid = 0;
  start_cpu = -1;
  end_cpu = -1;
  migrated = false;
  bound_cpus.clear();
  calibrated_rate = 0;
}

void TaskRecord::ArchiveCurrent(v1::TaskState ended_as, std::string why, absl::Time now) {
  if (current.started_at != absl::InfinitePast()) {
    AttemptRecord r = current.ToRecord(ended_as, /*backup=*/false, std::move(why), now);
    if (const v1::Interference* m = interference()) r.interference = *m;
    mutable_history().push_back(std::move(r));
  }
  current.ClearResult();
  set_interference(std::nullopt);
}

bool TaskRecord::TakeOverFromBackup() {
  Attempt* b = backup();
  const bool running = b->running;
  current = std::move(*b);
  current.running = false;
  ResetBackup();
  return running;
}

void TaskRecord::DropBackup(v1::TaskState ended_as, std::string why, absl::Time now) {
  const Attempt* b = backup();
  if (b != nullptr && b->started_at != absl::InfinitePast()) {
    AttemptRecord r = b->ToRecord(ended_as, /*backup=*/true, std::move(why), now);
    mutable_history().push_back(std::move(r));
  }
  ResetBackup();
}

std::string SummarizeFailures(const std::vector<std::string>& failures, size_t max_distinct) {
  // "attempt N " differs on every line; the rest (worker and error) is what
  // repeats.
  std::vector<std::pair<absl::string_view, size_t>> distinct;
  for (absl::string_view f : failures) {
    if (absl::ConsumePrefix(&f, "attempt ")) {
      const size_t space = f.find(' ');
      f = space == absl::string_view::npos ? f : f.substr(space + 1);
    }
    auto it = std::find_if(distinct.begin(), distinct.end(), [&](const auto& d) { return d.first == f; });
    if (it != distinct.end()) {
      ++it->second;
    } else {
      distinct.emplace_back(f, 1);
    }
  }
  std::string out;
  for (size_t i = 0; i < distinct.size() && i < max_distinct; ++i) {
    absl::StrAppend(&out, i == 0 ? "" : "; ", distinct[i].first);
    if (distinct[i].second > 1) absl::StrAppend(&out, " (x", distinct[i].second, ")");
  }
  if (distinct.size() > max_distinct) {
    absl::StrAppend(&out, "; and ", distinct.size() - max_distinct, " more distinct errors");
  }
  return out;
}

absl::Duration JobRecord::task_duration() const { return TaskDuration(spec); }

uint64_t JobRecord::task_iterations(uint32_t index) const { return PlanFor(spec, total_tasks()).Iterations(index); }

namespace {

// Released task tables' memory, for the next jobs' tables (ReleaseTaskTable,
// NewTaskTable). A fresh 100,000-task table is 11 MB of pages the kernel
// must find, zero and charge (madvise MADV_POPULATE_WRITE), and a finished
// one was unmapped again: with jobs coming one after another, about a fifth
// of the coordinator's CPU (`perf`, 100,000-task jobs on `:memory:`). Only
// tables of at least kMinTaskTableBytes are kept, at most
// kMaxPooledTaskTableBytes together (the newest releases win); a table
// idle for kTaskTableIdle goes back to the system at the next release,
// take or trim, and all of them when a job they do not fit comes (so they
// never add to the peak of a job bigger than they are).
class TaskTablePool {
 public:
  // Keeps `tasks` (its records as they are: Take resets them in place, one
  // pass instead of a destroying one now and a building one then, and
  // nothing proportional to the table here, which runs under the
  // coordinator's lock when a job is evicted).
  void Put(TaskTable& tasks, MonoTime now) {
    const size_t bytes = Bytes(tasks);
    if (bytes < kMinTaskTableBytes || bytes > kMaxPooledTaskTableBytes) {
      TaskTable().swap(tasks);
      return;
    }
    std::vector<TaskTable> dropped;  // freed outside the lock
    {
      absl::MutexLock lock(&mu_);
      DropIdleLocked(now, dropped);
      while (!free_.empty() && bytes_ + bytes > kMaxPooledTaskTableBytes) DropOldestLocked(dropped);
      free_.push_back(Entry{std::move(tasks), now});
      bytes_ += bytes;
    }
    tasks = {};
  }

  // A pooled table with capacity for `n` records and at most twice as many
  // (holding an earlier job's records); false when none fits (a job too
  // small to keep a table for leaves them; any other job frees them).
  bool Take(TaskTable& tasks, uint32_t n, MonoTime now) {
    if (size_t{n} * sizeof(TaskRecord) < kMinTaskTableBytes / 2) return false;
    std::vector<TaskTable> dropped;
    absl::MutexLock lock(&mu_);
    DropIdleLocked(now, dropped);
    auto best = free_.end();
    for (auto it = free_.begin(); it != free_.end(); ++it) {
      const size_t cap = it->tasks.capacity();
      // The smallest that fits; of equal ones the newest (its pages most likely cached).
      if (cap >= n && cap / 2 <= n && (best == free_.end() || cap <= best->tasks.capacity())) best = it;
    }
    if (best == free_.end()) {
      // None fits this job, which is bigger or much smaller: they are let
      // go of, so that kept tables never add to a big job's peak memory.
      for (Entry& e : free_) dropped.push_back(std::move(e.tasks));
      free_.clear();
      bytes_ = 0;
      return false;
    }
    bytes_ -= Bytes(best->tasks);
    tasks = std::move(best->tasks);
    free_.erase(best);
    return true;
  }

  void Trim(MonoTime now, absl::Duration idle) {
    std::vector<TaskTable> dropped;
    absl::MutexLock lock(&mu_);
    DropIdleLocked(now, dropped, idle);
  }

  size_t bytes() const {
    absl::MutexLock lock(&mu_);
    return bytes_;
  }

 private:
  struct Entry {
    TaskTable tasks;
    MonoTime released;
  };
  static size_t Bytes(const TaskTable& tasks) { return tasks.capacity() * sizeof(TaskRecord); }
  void DropOldestLocked(std::vector<TaskTable>& dropped) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    bytes_ -= Bytes(free_.front().tasks);
    dropped.push_back(std::move(free_.front().tasks));
    free_.erase(free_.begin());
  }
  void DropIdleLocked(MonoTime now, std::vector<TaskTable>& dropped,
                      absl::Duration idle = kTaskTableIdle) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    while (!free_.empty() && now - free_.front().released >= idle) DropOldestLocked(dropped);
  }

  mutable absl::Mutex mu_;
  std::vector<Entry> free_ ABSL_GUARDED_BY(mu_);  // oldest release first
  size_t bytes_ ABSL_GUARDED_BY(mu_) = 0;
};

TaskTablePool& Tables() {
  static TaskTablePool* const pool = new TaskTablePool();  // never destroyed: static records release into it
  return *pool;
}

}  // namespace

void NewTaskTable(TaskTable& tasks, uint32_t n) {
  const MonoTime now = MonoNow();
  Tables().Put(tasks, now);
  if (Tables().Take(tasks, n, now)) {
    // An earlier job's records, reset in place: parts of a large table on
    // more than one CPU at once (the other waits for the job too).
    const uint32_t kept = static_cast<uint32_t>(std::min<size_t>(tasks.size(), n));
    ParallelFor(kept, kParallelTaskRecords, [&tasks](size_t, size_t begin, size_t end) {
      for (size_t i = begin; i < end; ++i) {
        tasks[i] = TaskRecord();
        tasks[i].index = static_cast<uint32_t>(i);
      }
    });
    tasks.resize(kept);  // never grows here: drops the records past n
  } else {
    tasks.reserve(n);
    PrefaultForWrite(tasks.data(), size_t{n} * sizeof(TaskRecord));
  }
  // The records still missing, built on more than one CPU for a large
  // table: the resize (within the capacity, nothing moves) leaves them
  // unbuilt, and each is built with its index before anything reads it.
  const size_t built = tasks.size();
  {
    TaskTableAllocator<TaskRecord>::LeaveUnbuilt unbuilt;
    tasks.resize(n);
  }
  TaskRecord* const records = tasks.data();
  ParallelFor(n - built, kParallelTaskRecords, [records, built](size_t, size_t begin, size_t end) {
    for (size_t i = built + begin; i < built + end; ++i) {
      ::new (static_cast<void*>(records + i)) TaskRecord();
      records[i].index = static_cast<uint32_t>(i);
    }
  });
}

void ReleaseTaskTable(TaskTable& tasks) {
  if (tasks.capacity() == 0) return;
  Tables().Put(tasks, MonoNow());
}

void TrimTaskTables(absl::Duration idle) { Tables().Trim(MonoNow(), idle); }

size_t PooledTaskTableBytes() { return Tables().bytes(); }

JobRecord::~JobRecord() { ReleaseTaskTable(tasks); }

uint32_t JobRecord::max_attempts() const {
  return spec.max_attempts() == 0 ? limits::kDefaultMaxAttempts : spec.max_attempts();
}

AfterFailedAttempt EndFailedAttempt(JobRecord& job, TaskRecord& t, const std::string& why, bool counted,
                                    bool permanent, absl::Time now, CoordinatorCounters& counters,
                                    std::string* job_error) {
  if (counted || permanent) {
    t.mutable_failures().push_back(why);
    ++counters.attempts_failed;
  }
  t.set_error(why);
  if (permanent) {
    *job_error = absl::StrCat("task ", t.index, " failed and cannot be retried: ", why);
    return AfterFailedAttempt::kFailTask;
  }
  if (counted && t.failures().size() >= job.max_attempts()) {
    *job_error = absl::StrCat("task ", t.index, " failed ", t.failures().size(), " of ", job.max_attempts(),
                              " attempts: ", SummarizeFailures(t.failures(), limits::kMaxDistinctErrors));
    return AfterFailedAttempt::kFailTask;
  }
  if (counted) {
    ++job.retries;
    ++counters.retried;
  }
  t.ArchiveCurrent(counted ? v1::TASK_STATE_FAILED : v1::TASK_STATE_CANCELLED, why, now);
  return t.backup() != nullptr ? AfterFailedAttempt::kPromoteBackup : AfterFailedAttempt::kQueue;
}

void CopyJobHeader(const JobRecord& from, JobRecord* to) {
  to->id = from.id;
  to->spec = from.spec;
  to->task_count = from.total_tasks();
  CopyJobProgress(from, to);
}

void CopyJobProgress(const JobRecord& from, JobRecord* to) {
  to->state = from.state;
  to->error = from.error;
  to->submitted_at = from.submitted_at;
  to->finished_at = from.finished_at;
  to->succeeded = from.succeeded;
  to->failed = from.failed;
  to->cancelled = from.cancelled;
  to->running = from.running;
  to->retries = from.retries;
  to->duplicates = from.duplicates;
  to->backups = from.backups;
  to->backups_won = from.backups_won;
  to->backups_cancelled = from.backups_cancelled;
  to->pending_reason = from.pending_reason;
  to->iterations_total = from.iterations_total;
  to->iterations_done = from.iterations_done;
}

}  // namespace busyfleet::coordinator
