#ifndef BUSYFLEET_COORDINATOR_STORE_SQLITE_JOB_STORE_H_
#define BUSYFLEET_COORDINATOR_STORE_SQLITE_JOB_STORE_H_

#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/btree_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "coordinator/store/job_store.h"

struct sqlite3;

namespace busyfleet::coordinator {

// Jobs, tasks and results in an SQLite database (WAL mode).
//
// Writes are batched: CreateJob and SaveJob queue the changed rows and
// return at once; a writer thread commits everything queued so far in one
// transaction (the newest version of each row wins). So the store never
// limits dispatch, and a crash loses at most the last batch — those tasks
// are simply run again after the restart. Reads see every write queued
// before them (they wait for the queue to be committed).
class SqliteJobStore : public JobStore {
 public:
  // Opens (creating if needed) the database at `path`. FailedPrecondition
  // with the path and SQLite's words when the file cannot be opened, is not
  // a busyfleet database, is of a newer schema, or fails its integrity check.
  static absl::StatusOr<std::unique_ptr<SqliteJobStore>> Open(const std::string& path);
  ~SqliteJobStore() override;

  absl::Status CreateJob(const JobRecord& job) override;
  absl::Status SaveJob(const JobRecord& job, const std::vector<uint32_t>& changed_tasks) override;
  absl::StatusOr<JobRecord> LoadJob(absl::string_view id) const override;
  absl::StatusOr<bool> HasJob(absl::string_view id) const override;
  absl::StatusOr<std::vector<std::string>> ListJobIds(size_t limit) const override;
  absl::StatusOr<std::vector<JobRecord>> LoadUnfinished() const override;

  // Commits everything queued; returns the first write error seen, if any.
  absl::Status Flush() const;
  // Transactions committed so far (for tests and benchmarks).
  uint64_t commits() const;

 private:
  // A task row as stored: the columns of `tasks`, no more (a TaskRecord
  // also carries sessions, speculation state and history, over twice the
  // size, and a busy coordinator queues hundreds of thousands a second).
  struct TaskRow {
    explicit TaskRow(const TaskRecord& t);
    uint32_t index;
    uint32_t attempt;
    uint32_t slot;
    v1::TaskState state;
    uint64_t iterations;
    absl::Duration duration;
    std::string worker;
    std::string host;
    std::string error;
    std::string failures;  // one line each
    absl::Time assigned_at;
    absl::Time started_at;
    absl::Time ended_at;
    absl::Time result_at;
    int64_t cpu_ns;
    uint64_t iterations_done;
    bool speculated;
    bool backup_won;
  };
  // A new job's tasks as created (all queued): what a row needs, 24 bytes.
  struct NewTask {
    uint32_t index;
    uint64_t iterations;
    int64_t duration_ns;
  };
  struct Pending {
    // Job header rows by id (newest wins); new jobs' task lists; task rows
    // changed since, by job, then index (a B-tree per job: rows go in
    // without a node each). A changed row is written after its new one.
    std::map<std::string, JobRecord> headers;
    std::map<std::string, std::vector<NewTask>> created;
    std::map<std::string, absl::btree_map<uint32_t, TaskRow>> tasks;
    bool empty() const { return headers.empty() && created.empty() && tasks.empty(); }
  };

  struct WriteStatements;

  explicit SqliteJobStore(sqlite3* db, std::string path);
  void WriterLoop();
  // One transaction: the batch's job headers, its new jobs' rows, then its
  // changed rows. Rolled back on the first error.
  absl::Status Commit(const Pending& batch) ABSL_EXCLUSIVE_LOCKS_REQUIRED(db_mu_);
  absl::Status WriteHeaders(const Pending& batch) ABSL_EXCLUSIVE_LOCKS_REQUIRED(db_mu_);
  absl::Status WriteCreatedTasks(const Pending& batch) ABSL_EXCLUSIVE_LOCKS_REQUIRED(db_mu_);
  absl::Status WriteChangedTasks(const Pending& batch) ABSL_EXCLUSIVE_LOCKS_REQUIRED(db_mu_);
  absl::StatusOr<JobRecord> LoadJobLocked(const std::string& id) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(db_mu_);

  const std::string path_;

  // Order: mu_ may be taken while db_mu_ is held, never the other way.
  mutable absl::Mutex db_mu_;
  sqlite3* const db_ ABSL_GUARDED_BY(db_mu_);
  std::unique_ptr<WriteStatements> writes_ ABSL_GUARDED_BY(db_mu_);

  mutable absl::Mutex mu_;
  Pending pending_ ABSL_GUARDED_BY(mu_);
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  // Jobs in the batch being committed (no longer in pending_, not yet in the
  // database).
  std::set<std::string> writing_ids_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status write_error_ ABSL_GUARDED_BY(mu_);
  uint64_t commits_ ABSL_GUARDED_BY(mu_) = 0;
  // Callers of Flush() waiting now: the writer commits without delay.
  mutable int flush_waiters_ ABSL_GUARDED_BY(mu_) = 0;
  // How long the writer lets changes gather before a transaction.
  static constexpr absl::Duration kGroupCommitDelay = absl::Milliseconds(5);
  std::thread writer_;
};

}  // namespace busyfleet::coordinator

#endif  // BUSYFLEET_COORDINATOR_STORE_SQLITE_JOB_STORE_H_
