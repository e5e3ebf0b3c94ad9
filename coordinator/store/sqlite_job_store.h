#ifndef BUSYFLEET_COORDINATOR_STORE_SQLITE_JOB_STORE_H_
#define BUSYFLEET_COORDINATOR_STORE_SQLITE_JOB_STORE_H_

#include <atomic>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "coordinator/store/job_store.h"
#include "coordinator/store/task_chunk.h"

struct sqlite3;

namespace busyfleet::coordinator {

// Jobs, tasks and results in an SQLite database (WAL mode).
//
// Writes are batched: CreateJob and SaveJob queue the changed rows and
// return at once; a writer thread commits everything queued so far in one
// transaction (the newest version of each row wins). So the store never
// limits dispatch, and a crash loses at most the last batch — those tasks
// are simply run again after the restart. A task just dealt (ASSIGNED) has
// its row wait one batch more, in case its result comes first (Pending):
// a crash may lose the last two batches' deals, never a result; those
// tasks are queued again after the restart instead of held for their
// worker.
//
// Faults: a batch is never dropped. When its transaction fails (the file
// locked past the busy timeout, disk full, I/O error, read-only file) it is
// rolled back and the same batch is tried again after a backoff (from
// Options::retry_initial, doubling up to retry_max), for as long as it takes;
// changes made meanwhile gather in the next batch, which commits after it.
// So batches commit in order and a job's header is never newer than its
// rows. While a batch fails the store is not writable (Health): CreateJob
// returns Unavailable naming the database and the cause (new jobs would
// only add to the backlog), SaveJob still queues (running jobs go on in
// memory; the backlog is Health().backlog_rows). The first commit that
// gets through makes it writable again.
//
// Reads: LoadJob waits until that job's queued rows are committed (or
// returns Unavailable while the store cannot write them); ListJobHeaders
// reads what is committed, without waiting.
//
// Deletes (retention, `coordctl delete`, `jobs prune`) are queued like
// writes: the batch that commits them removes the job's header and records
// the job in `meta` as to be purged; its task rows then go at most
// Options::purge_batch_rows per transaction, interleaved with the writes,
// so deleting a million-task job never holds the write lock for long. A
// crash in between leaves only rows of no job, which the next start goes on
// purging.
class SqliteJobStore : public JobStore {
 public:
  // Opens (creating if needed) the database at `path`. FailedPrecondition
  // with the path and SQLite's words when the file cannot be opened, is not
  // a busyfleet database, is of a newer schema, or fails its integrity check.
  struct Options {
    // SQLite's busy timeout: how long a statement waits for another
    // connection's lock before it fails (then the batch is retried).
    absl::Duration busy_timeout = absl::Seconds(5);
    // Backoff between attempts of a failed batch.
    absl::Duration retry_initial = absl::Milliseconds(50);
    absl::Duration retry_max = absl::Seconds(2);
    // Task rows of deleted jobs removed per transaction (more when the
    // transaction writes more rows than this, so purging keeps pace).
    uint32_t purge_batch_rows = 20000;
    // Backlogged() past this many rows queued or being written (each about
    // 100 bytes of memory, TaskRow).
    uint64_t max_backlog_rows = 100'000;
  };
  static absl::StatusOr<std::unique_ptr<SqliteJobStore>> Open(const std::string& path, Options options);
  static absl::StatusOr<std::unique_ptr<SqliteJobStore>> Open(const std::string& path) {
    return Open(path, Options());
  }
  ~SqliteJobStore() override;

  absl::Status CreateJob(const JobRecord& job) override;
  absl::Status SaveJob(const JobRecord& job, const std::vector<uint32_t>& changed_tasks) override;
  absl::StatusOr<JobRecord> LoadJob(absl::string_view id) const override;
  absl::StatusOr<bool> HasJob(absl::string_view id) const override;
  absl::StatusOr<std::vector<std::string>> ListJobIds(size_t limit) const override;
  absl::StatusOr<std::vector<JobRecord>> ListJobHeaders(size_t limit) const override;
  absl::StatusOr<std::vector<JobRecord>> LoadUnfinished() const override;
  absl::StatusOr<std::vector<JobRecord>> ExpiredJobs(const RetentionRule& rule, size_t limit) const override;
  absl::Status DeleteJobs(const std::vector<std::string>& ids) override;
  // Each task saved is a row queued for the writer until written.
  bool QueuesTaskRows() const override { return true; }
  StoreHealth Health() const override;
  bool Backlogged() const override { return backlogged_.load(std::memory_order_relaxed); }
  void SetHealthObserver(HealthObserver observer) override;

  // Waits until everything queued before the call is committed; OK, or
  // Unavailable with the cause once a commit has failed and is being retried.
  absl::Status Flush() const;
  // Transactions committed so far (for tests and benchmarks).
  uint64_t commits() const;

 private:
  struct Pending {
    // Job header rows by id (newest wins); task rows changed since, by job,
    // in the order saved (a task changed twice has two; the writer keeps
    // its newest, off the coordinator's lock). A new job's never-assigned
    // tasks have no row (schema version 2).
    std::map<std::string, JobRecord> headers;
    std::map<std::string, TaskRowLog> tasks;
    // Rows of tasks just dealt (ASSIGNED; DealtRow: 32 bytes each), saved since the last batch was
    // taken: they wait for the next one, unless a newer row of the task
    // (its result, mostly) comes first and drops them, so that a short
    // task is written once, not dealt and then finished. Kept indexed()
    // (a row that would end that goes to `tasks`), so that Drop finds every
    // row. A batch writes `aged` (the window before's), then `tasks`, then
    // (taken whole, by Flush or at a stop) `dealt`: each task's rows in
    // the order they were saved.
    std::map<std::string, DealtRowLog> dealt;
    std::map<std::string, DealtRowLog> aged;
    // Jobs to delete (after the writes of the batch).
    std::set<std::string> deletes;
    bool empty() const {
      return headers.empty() && tasks.empty() && deletes.empty() && dealt.empty() && aged.empty();
    }
    bool Contains(const std::string& id) const {
      return headers.contains(id) || tasks.contains(id) || deletes.contains(id) || dealt.contains(id) ||
             aged.contains(id);
    }
    // Header and task rows queued (O(jobs)).
    uint64_t Rows() const;
  };

  struct WriteStatements;
  // What a transaction did besides writing rows; applied once it commits.
  struct CommitEffects {
    uint64_t jobs_deleted = 0;
    uint64_t purge_rows_added = 0;
    uint64_t rows_purged = 0;
    bool purge_left = false;  // rows of deleted jobs remain
  };

  SqliteJobStore(sqlite3* db, sqlite3* read_db, std::string path, Options options, uint64_t purge_rows);
  void WriterLoop();
  // Takes the next batch from pending_ (waiting for changes, then the
  // group-commit delay). False when stopping with nothing left.
  // *purge: purge rows of deleted jobs in this transaction too.
  bool TakeBatch(Pending* batch, bool committed, bool* purge);
  // Waits out the backoff before a failed batch is tried again; false when
  // the store is stopping.
  bool WaitToRetry(absl::Duration backoff);
  // Records a commit attempt's outcome; tells the observer of a failure or
  // a recovery.
  void Committed(const absl::Status& status, const CommitEffects& effects);
  absl::Status Unwritable() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // One transaction: the batch's job headers, then its changed rows. Rolled
  // back on the first error.
  absl::Status Commit(const Pending& batch, bool purge, CommitEffects* effects) ABSL_EXCLUSIVE_LOCKS_REQUIRED(db_mu_);
  absl::Status CommitOnce(const Pending& batch, bool purge, CommitEffects* effects)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(db_mu_);
  // The batch's deletes: headers go, the jobs are recorded as to be purged.
  absl::Status DeleteQueued(const Pending& batch, CommitEffects* effects) ABSL_EXCLUSIVE_LOCKS_REQUIRED(db_mu_);
  // Removes up to `budget` task rows of deleted jobs.
  absl::Status PurgeSome(int64_t budget, CommitEffects* effects) ABSL_EXCLUSIVE_LOCKS_REQUIRED(db_mu_);
  // Sets backlogged_ from the rows queued and being written; true when it
  // turned false (only Committed acts on that: it tells the observer).
  bool UpdateBacklogged() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status WriteHeaders(const Pending& batch) ABSL_EXCLUSIVE_LOCKS_REQUIRED(db_mu_);
  // Each job's changed rows as chunks of at most kChunkRows (task_chunks).
  absl::Status WriteChangedTasks(const Pending& batch) ABSL_EXCLUSIVE_LOCKS_REQUIRED(db_mu_);
  absl::StatusOr<JobRecord> LoadJobLocked(const std::string& id) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(read_mu_);

  const std::string path_;
  const Options options_;

  // Order: mu_ may be taken while db_mu_ or read_mu_ is held, never the
  // other way; db_mu_ and read_mu_ are never held together.
  mutable absl::Mutex db_mu_;
  sqlite3* const db_ ABSL_GUARDED_BY(db_mu_);
  std::unique_ptr<WriteStatements> writes_ ABSL_GUARDED_BY(db_mu_);
  // The next task chunk's number: chunks are read in this order, so a task's
  // newest row wins.
  int64_t next_chunk_seq_ ABSL_GUARDED_BY(db_mu_) = 1;
  static constexpr size_t kChunkRows = 4096;
  // The connection reads use (never the writer's: see Open).
  mutable absl::Mutex read_mu_;
  sqlite3* const read_db_ ABSL_GUARDED_BY(read_mu_);

  mutable absl::Mutex mu_;
  Pending pending_ ABSL_GUARDED_BY(mu_);
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  // Jobs in the batch being committed (no longer in pending_, not yet in the
  // database).
  std::set<std::string> writing_ids_ ABSL_GUARDED_BY(mu_);
  // Rows of deleted jobs wait to be purged (the writer wakes for them), how
  // many (as counted when the jobs were deleted), and jobs deleted so far.
  bool purge_pending_ ABSL_GUARDED_BY(mu_) = false;
  // Rows queued since the last batch was taken (an upper bound: a row
  // changed twice counts twice), and whether the backlog is past the cap.
  uint64_t queued_rows_ ABSL_GUARDED_BY(mu_) = 0;
  std::atomic<bool> backlogged_{false};
  uint64_t purge_rows_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t jobs_deleted_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  // Health: writable_ is false from a failed commit to the next one that
  // succeeds; cause_ says why. backlog_rows_ counts the rows of the batch
  // being written (writing_rows_) plus those in pending_ when last counted.
  bool writable_ ABSL_GUARDED_BY(mu_) = true;
  std::string cause_ ABSL_GUARDED_BY(mu_);
  absl::Time unwritable_since_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  uint64_t writing_rows_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t commits_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t write_failures_ ABSL_GUARDED_BY(mu_) = 0;
  // Order: observer_mu_ is taken with no other lock of the store held.
  mutable absl::Mutex observer_mu_;
  HealthObserver observer_ ABSL_GUARDED_BY(observer_mu_);
  // Callers of Flush() waiting now: the writer commits without delay.
  mutable int flush_waiters_ ABSL_GUARDED_BY(mu_) = 0;
  // How long the writer lets changes gather before a transaction.
  static constexpr absl::Duration kGroupCommitDelay = absl::Milliseconds(5);
  std::thread writer_;
};

}  // namespace busyfleet::coordinator

#endif  // BUSYFLEET_COORDINATOR_STORE_SQLITE_JOB_STORE_H_
