#include "coordinator/store/sqlite_job_store.h"

#include <sqlite3.h>

#include <filesystem>
#include <numeric>
#include <fstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/synchronization/notification.h"
#include "coordinator/store/task_chunk.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/task_chunk_reference.h"

namespace busyfleet::coordinator {
namespace {

using ::busyfleet::testing::StatusIs;
using ::testing::HasSubstr;

// Task rows in the file (read with a connection of the test's own).
int64_t CountRows(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
  sqlite3_stmt* q = nullptr;
  EXPECT_EQ(sqlite3_prepare_v2(db, sql.c_str(), -1, &q, nullptr), SQLITE_OK) << sql;
  int64_t n = -1;
  if (sqlite3_step(q) == SQLITE_ROW) n = sqlite3_column_int64(q, 0);
  sqlite3_finalize(q);
  sqlite3_close(db);
  return n;
}

class SqliteJobStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::path(::testing::TempDir()) /
           ("sqlite_store_" + std::to_string(getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    path_ = (dir_ / "busyfleet.db").string();
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // A 4-task job "j-1", created and committed.
  static JobRecord CommittedJob(SqliteJobStore& store) {
    JobRecord job = MakeJob("j-1", 4);
    EXPECT_OK(store.CreateJob(job));
    EXPECT_OK(store.Flush());
    return job;
  }
  static JobRecord MakeJob(const std::string& id, int tasks) {
    JobRecord j;
    j.id = id;
    j.spec.set_kind(v1::TASK_KIND_COUNTDOWN);
    j.spec.set_tasks(static_cast<uint32_t>(tasks));
    j.spec.set_iterations(1000);
    j.spec.set_name("job " + id);
    j.state = v1::JOB_STATE_RUNNING;
    j.submitted_at = absl::FromUnixSeconds(1'700'000'000) + absl::Milliseconds(5);
    j.iterations_total = 1000u * static_cast<uint64_t>(tasks);
    for (int i = 0; i < tasks; ++i) {
      TaskRecord t;
      t.index = static_cast<uint32_t>(i);
      j.tasks.push_back(t);
    }
    return j;
  }

  std::filesystem::path dir_;
  std::string path_;
};

TEST_F(SqliteJobStoreTest, JobsAndTasksSurviveReopening) {
  {
    ASSERT_OK_AND_ASSIGN(auto store, SqliteJobStore::Open(path_));
    JobRecord job = MakeJob("j-1", 3);
    ASSERT_OK(store->CreateJob(job));
    TaskRecord& t = job.tasks[1];
    t.state = v1::TASK_STATE_SUCCEEDED;
    t.current.number = 2;
    t.current.worker = "w1";
    t.current.host = "h1";
    t.current.slot = 3;
    t.current.assigned_at = job.submitted_at + absl::Milliseconds(1);
    t.current.started_at = job.submitted_at + absl::Milliseconds(2);
    t.current.ended_at = job.submitted_at + absl::Milliseconds(1002);
    t.current.result_at = job.submitted_at + absl::Milliseconds(1003);
    t.current.cpu_ns = 999'000'000;
    t.current.iterations_done = 1000;
    t.mutable_failures() = {"attempt 1 lost with worker w0 (stream closed)"};
    t.current.start_cpu = 3;
    t.current.end_cpu = 5;
    t.current.migrated = true;
    t.current.bound_cpus = "3";
    v1::Interference m;
    m.set_throttled_ns(120'000'000);
    m.set_throttled_periods(5);
    m.set_periods(6);
    m.set_steal_share(0.25);
    t.set_interference(m);
    job.backups_cancelled = 2;
    job.succeeded = 1;
    job.retries = 1;
    job.iterations_done = 1000;
    ASSERT_OK(store->SaveJob(job, {1}));
    ASSERT_OK(store->Flush());
  }
  ASSERT_OK_AND_ASSIGN(auto store, SqliteJobStore::Open(path_));
  ASSERT_OK_AND_ASSIGN(JobRecord loaded, store->LoadJob("j-1"));
  EXPECT_EQ(loaded.spec.name(), "job j-1");
  EXPECT_EQ(loaded.state, v1::JOB_STATE_RUNNING);
  EXPECT_EQ(loaded.submitted_at, absl::FromUnixSeconds(1'700'000'000) + absl::Milliseconds(5));
  EXPECT_EQ(loaded.finished_at, absl::InfinitePast());
  EXPECT_EQ(loaded.succeeded, 1u);
  EXPECT_EQ(loaded.retries, 1u);
  EXPECT_EQ(loaded.iterations_total, 3000u);
  ASSERT_EQ(loaded.tasks.size(), 3u);
  const TaskRecord& t = loaded.tasks[1];
  EXPECT_EQ(t.state, v1::TASK_STATE_SUCCEEDED);
  EXPECT_EQ(t.current.number, 2u);
  EXPECT_EQ(t.current.worker, "w1");
  EXPECT_EQ(t.current.slot, 3u);
  EXPECT_EQ(t.current.ended_at - t.current.started_at, absl::Seconds(1));
  EXPECT_EQ(t.current.cpu_ns, 999'000'000);
  EXPECT_EQ(t.failures(), std::vector<std::string>{"attempt 1 lost with worker w0 (stream closed)"});
  EXPECT_EQ(t.current.start_cpu, 3);
  EXPECT_EQ(t.current.end_cpu, 5);
  EXPECT_TRUE(t.current.migrated);
  EXPECT_EQ(t.current.bound_cpus, "3");
  ASSERT_TRUE(t.interference());
  EXPECT_EQ(t.interference()->throttled_ns(), 120'000'000);
  EXPECT_EQ(t.interference()->throttled_periods(), 5u);
  EXPECT_EQ(t.interference()->periods(), 6u);
  EXPECT_EQ(t.interference()->steal_share(), 0.25);
  EXPECT_FALSE(t.interference()->has_run_queue_wait_ns());
  EXPECT_FALSE(loaded.tasks[0].interference()) << "not measured stays not measured";
  EXPECT_EQ(loaded.backups_cancelled, 2u);
  ASSERT_OK_AND_ASSIGN(auto headers, store->ListJobHeaders(1));
  ASSERT_EQ(headers.size(), 1u);
  EXPECT_EQ(headers[0].backups_cancelled, 2u);
  EXPECT_EQ(headers[0].task_count, 3u);
  EXPECT_EQ(loaded.tasks[0].state, v1::TASK_STATE_QUEUED);
  EXPECT_EQ(loaded.tasks[0].current.start_cpu, -1);
  EXPECT_EQ(loaded.tasks[0].current.started_at, absl::InfinitePast());
  // Rows written as created (never changed): index and work intact.
  EXPECT_EQ(loaded.tasks[2].index, 2u);
  EXPECT_EQ(loaded.task_iterations(2), 1000u);
  EXPECT_EQ(loaded.tasks[2].current.number, 0u);
  EXPECT_EQ(loaded.tasks[2].current.worker, "");
}

// Version 1 as first shipped: no tasks_total, backups_cancelled, nor the
// CPU columns of tasks.
constexpr const char* kVersion1Schema = R"sql(
  CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
  INSERT INTO meta VALUES ('schema_version', '1');
  CREATE TABLE jobs (id TEXT PRIMARY KEY, seq INTEGER NOT NULL, spec BLOB NOT NULL, state INTEGER NOT NULL,
    error TEXT NOT NULL, submitted_ns INTEGER, finished_ns INTEGER, succeeded INTEGER NOT NULL,
    failed INTEGER NOT NULL, cancelled INTEGER NOT NULL, retries INTEGER NOT NULL, duplicates INTEGER NOT NULL,
    iterations_total INTEGER NOT NULL, iterations_done INTEGER NOT NULL, backups INTEGER NOT NULL,
    backups_won INTEGER NOT NULL);
  CREATE TABLE tasks (job_id TEXT NOT NULL, idx INTEGER NOT NULL, iterations INTEGER NOT NULL,
    duration_ns INTEGER NOT NULL, state INTEGER NOT NULL, attempt INTEGER NOT NULL, worker TEXT NOT NULL,
    host TEXT NOT NULL, slot INTEGER NOT NULL, assigned_ns INTEGER, started_ns INTEGER, ended_ns INTEGER,
    result_ns INTEGER, cpu_ns INTEGER NOT NULL, iterations_done INTEGER NOT NULL, error TEXT NOT NULL,
    failures TEXT NOT NULL, speculated INTEGER NOT NULL, backup_won INTEGER NOT NULL,
    PRIMARY KEY (job_id, idx)) WITHOUT ROWID;
)sql";

TEST_F(SqliteJobStoreTest, AFileFromBeforeTheNewColumnsGainsThemAndStillReads) {
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, kVersion1Schema, nullptr, nullptr, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
    ASSERT_EQ(sqlite3_exec(db, R"sql(
      INSERT INTO jobs VALUES ('j-old', 1, x'', 3, '', 1, 2, 1, 0, 0, 0, 0, 10, 10, 0, 0);
      INSERT INTO tasks VALUES ('j-old', 0, 10, 0, 4, 1, 'w', 'h', 0, 1, 1, 2, 2, 5, 10, '', '', 0, 0);
    )sql", nullptr, nullptr, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
    sqlite3_close(db);
  }
  ASSERT_OK_AND_ASSIGN(auto store, SqliteJobStore::Open(path_));
  // Marked version 4: a coordinator that reads only 1 refuses it from now on.
  EXPECT_EQ(CountRows(path_, "SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'schema_version';"), 4);
  ASSERT_OK_AND_ASSIGN(JobRecord old, store->LoadJob("j-old"));
  EXPECT_EQ(old.state, v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(old.backups_cancelled, 0u);
  ASSERT_EQ(old.tasks.size(), 1u);
  EXPECT_EQ(old.tasks[0].current.start_cpu, -1);
  EXPECT_EQ(old.tasks[0].current.bound_cpus, "");
  EXPECT_FALSE(old.tasks[0].interference());
  ASSERT_OK_AND_ASSIGN(auto headers, store->ListJobHeaders(5));
  ASSERT_EQ(headers.size(), 1u);
  EXPECT_EQ(headers[0].task_count, 1u);  // counted from the rows
  // And new rows go in with the new columns.
  JobRecord job = MakeJob("j-new", 1);
  job.tasks[0].current.start_cpu = 1;
  v1::Interference measured;
  measured.set_involuntary_switches(7);
  job.tasks[0].set_interference(measured);
  ASSERT_OK(store->CreateJob(job));
  ASSERT_OK(store->SaveJob(job, {0}));
  ASSERT_OK(store->Flush());
  ASSERT_OK_AND_ASSIGN(JobRecord fresh, store->LoadJob("j-new"));
  EXPECT_EQ(fresh.tasks[0].current.start_cpu, 1);
  ASSERT_TRUE(fresh.tasks[0].interference());
  EXPECT_EQ(fresh.tasks[0].interference()->involuntary_switches(), 7u);
}

TEST_F(SqliteJobStoreTest, ListsNewestFirstAndFindsUnfinished) {
  ASSERT_OK_AND_ASSIGN(auto store, SqliteJobStore::Open(path_));
  for (const std::string id : {"j-a", "j-b", "j-c"}) ASSERT_OK(store->CreateJob(MakeJob(id, 1)));
  JobRecord done = MakeJob("j-b", 1);
  done.state = v1::JOB_STATE_SUCCEEDED;
  done.finished_at = done.submitted_at + absl::Seconds(1);
  ASSERT_OK(store->SaveJob(done, {}));
  ASSERT_OK_AND_ASSIGN(auto ids, store->ListJobIds(10));
  EXPECT_EQ(ids, (std::vector<std::string>{"j-c", "j-b", "j-a"}));
  ASSERT_OK_AND_ASSIGN(auto two, store->ListJobIds(2));
  EXPECT_EQ(two, (std::vector<std::string>{"j-c", "j-b"}));
  ASSERT_OK_AND_ASSIGN(auto unfinished, store->LoadUnfinished());
  ASSERT_EQ(unfinished.size(), 2u);
  EXPECT_EQ(unfinished[0].id, "j-a");
  EXPECT_EQ(unfinished[1].id, "j-c");
  ASSERT_OK_AND_ASSIGN(bool has, store->HasJob("j-b"));
  EXPECT_TRUE(has);
  ASSERT_OK_AND_ASSIGN(bool missing, store->HasJob("j-zz"));
  EXPECT_FALSE(missing);
  EXPECT_THAT(store->LoadJob("j-zz"), StatusIs(absl::StatusCode::kNotFound, HasSubstr("j-zz")));
}

TEST_F(SqliteJobStoreTest, ManyUpdatesAreBatchedIntoFewTransactions) {
  ASSERT_OK_AND_ASSIGN(auto store, SqliteJobStore::Open(path_));
  JobRecord job = MakeJob("j-1", 2000);
  ASSERT_OK(store->CreateJob(job));
  for (uint32_t i = 0; i < 2000; ++i) {
    job.tasks[i].state = v1::TASK_STATE_SUCCEEDED;
    ++job.succeeded;
    ASSERT_OK(store->SaveJob(job, {i}));
  }
  ASSERT_OK(store->Flush());
  EXPECT_LT(store->commits(), 2001u);
  ASSERT_OK_AND_ASSIGN(JobRecord loaded, store->LoadJob("j-1"));
  EXPECT_EQ(loaded.succeeded, 2000u);
  for (const TaskRecord& t : loaded.tasks) EXPECT_EQ(t.state, v1::TASK_STATE_SUCCEEDED);
}

TEST_F(SqliteJobStoreTest, GarbageFileIsAClearStartupError) {
  {
    std::ofstream f(path_);
    f << std::string(8192, 'x');
  }
  EXPECT_THAT(SqliteJobStore::Open(path_),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr(path_)));
}

TEST_F(SqliteJobStoreTest, ForeignDatabaseIsRefused) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "CREATE TABLE customers (id INTEGER);", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
  EXPECT_THAT(SqliteJobStore::Open(path_),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("not a busyfleet database")));
}

TEST_F(SqliteJobStoreTest, NewerSchemaIsRefused) {
  { ASSERT_OK(SqliteJobStore::Open(path_).status()); }
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "UPDATE meta SET value='99' WHERE key='schema_version';", nullptr, nullptr,
                         nullptr),
            SQLITE_OK);
  sqlite3_close(db);
  EXPECT_THAT(SqliteJobStore::Open(path_),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("schema version 99")));
}

// Refused, as newer, before anything in it changes: a newer coordinator's
// file (here with a table of its own, and one laid out as version 2's
// task_chunks was, which this one would otherwise rename) is left as it was.
TEST_F(SqliteJobStoreTest, ANewerFileIsRefusedUntouched) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, R"sql(
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    INSERT INTO meta VALUES ('schema_version', '99');
    CREATE TABLE task_chunks (job_id TEXT NOT NULL, seq INTEGER NOT NULL, data BLOB NOT NULL,
      PRIMARY KEY (job_id, seq)) WITHOUT ROWID;
    CREATE TABLE things_of_version_99 (x INTEGER);
  )sql", nullptr, nullptr, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
  sqlite3_close(db);
  const int64_t before = CountRows(path_, "SELECT count(*) FROM sqlite_master;");
  EXPECT_THAT(SqliteJobStore::Open(path_),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("schema version 99")));
  EXPECT_EQ(CountRows(path_, "SELECT count(*) FROM sqlite_master;"), before);
  EXPECT_EQ(CountRows(path_, "SELECT count(*) FROM sqlite_master WHERE name = 'task_chunks' AND "
                             "sql LIKE '%WITHOUT ROWID%';"), 1);
}

TEST_F(SqliteJobStoreTest, UnwritableDirectoryIsAClearStartupError) {
  EXPECT_THAT(SqliteJobStore::Open((dir_ / "no" / "such" / "dir" / "x.db").string()),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("cannot open")));
}


// Another connection holding the write lock (as the sqlite3 shell's BEGIN
// IMMEDIATE, a VACUUM or a migration does).
class WriteLockHolder {
 public:
  explicit WriteLockHolder(const std::string& path) {
    EXPECT_EQ(sqlite3_open(path.c_str(), &db_), SQLITE_OK);
    sqlite3_busy_timeout(db_, 10'000);  // behind a transaction of the store's own, if one runs
    EXPECT_EQ(sqlite3_exec(db_, "BEGIN IMMEDIATE;", nullptr, nullptr, nullptr), SQLITE_OK);
  }
  void Release() {
    if (db_ == nullptr) return;
    EXPECT_EQ(sqlite3_exec(db_, "ROLLBACK;", nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(db_);
    db_ = nullptr;
  }
  ~WriteLockHolder() { Release(); }

 private:
  sqlite3* db_ = nullptr;
};

SqliteJobStore::Options FastRetries() {
  SqliteJobStore::Options o;
  o.busy_timeout = absl::Milliseconds(20);
  o.retry_initial = absl::Milliseconds(5);
  o.retry_max = absl::Milliseconds(20);
  return o;
}

void Succeed(JobRecord& job, uint32_t index) {
  TaskRecord& t = job.tasks[index];
  t.state = v1::TASK_STATE_SUCCEEDED;
  t.current.number = 1;
  t.current.worker = "w1";
  t.current.iterations_done = job.task_iterations(t.index);
  ++job.succeeded;
  job.iterations_done += job.task_iterations(t.index);
}

// The store's first failure to write, and its recovery after it, as seen by
// its health observer (cleared again when this goes).
struct Outage {
  explicit Outage(SqliteJobStore& s) : store(s) {
    store.SetHealthObserver([this](const StoreHealth& h) {
      if (!h.writable && !failed.HasBeenNotified()) failed.Notify();
      if (h.writable && failed.HasBeenNotified() && !recovered.HasBeenNotified()) recovered.Notify();
    });
  }
  ~Outage() { store.SetHealthObserver(nullptr); }
  SqliteJobStore& store;
  absl::Notification failed;
  absl::Notification recovered;
};

// With `path`'s write lock held, saves task 0 as succeeded and waits for
// that batch to fail: it is retried until the lock goes, and whatever is
// saved meanwhile queues behind it.
void SaveABatchThatFails(SqliteJobStore& store, const Outage& outage, JobRecord& job) {
  Succeed(job, 0);
  ASSERT_OK(store.SaveJob(job, {0}));  // the lock is held past the busy timeout
  ASSERT_TRUE(outage.failed.WaitForNotificationWithTimeout(absl::Seconds(10)));
}

TEST_F(SqliteJobStoreTest, BatchesFailingOnALockAreRetriedInOrderAndNothingIsLost) {
  {
    ASSERT_OK_AND_ASSIGN(auto store, SqliteJobStore::Open(path_, FastRetries()));
    Outage outage(*store);
    JobRecord job = CommittedJob(*store);

    WriteLockHolder lock(path_);
    ASSERT_NO_FATAL_FAILURE(SaveABatchThatFails(*store, outage, job));
    StoreHealth down = store->Health();
    EXPECT_FALSE(down.writable);
    EXPECT_THAT(down.cause, HasSubstr(path_));
    EXPECT_THAT(down.cause, HasSubstr("database is locked"));
    EXPECT_GE(down.backlog_rows, 2u);  // the header and task 0
    // New jobs are refused, naming the database; running ones still queue.
    EXPECT_THAT(store->CreateJob(MakeJob("j-2", 1)), StatusIs(absl::StatusCode::kUnavailable, HasSubstr(path_)));
    Succeed(job, 1);
    Succeed(job, 2);
    ASSERT_OK(store->SaveJob(job, {1, 2}));
    EXPECT_THAT(store->Flush(), StatusIs(absl::StatusCode::kUnavailable, ::testing::_));
    EXPECT_THAT(store->LoadJob("j-1"), StatusIs(absl::StatusCode::kUnavailable, ::testing::_));

    lock.Release();
    ASSERT_TRUE(outage.recovered.WaitForNotificationWithTimeout(absl::Seconds(10)));
    ASSERT_OK(store->Flush());
    const StoreHealth up = store->Health();
    EXPECT_TRUE(up.writable);
    EXPECT_EQ(up.backlog_rows, 0u);
    EXPECT_GE(up.write_failures, 1u);
    ASSERT_OK(store->CreateJob(MakeJob("j-3", 1)));  // accepted again, no restart
    ASSERT_OK_AND_ASSIGN(JobRecord loaded, store->LoadJob("j-1"));
    EXPECT_EQ(loaded.succeeded, 3u);
    ASSERT_EQ(loaded.tasks.size(), 4u);
    for (uint32_t i = 0; i < 3; ++i) EXPECT_EQ(loaded.tasks[i].state, v1::TASK_STATE_SUCCEEDED) << i;
    EXPECT_EQ(loaded.tasks[3].state, v1::TASK_STATE_QUEUED);
  }
  // And it is all in the file.
  ASSERT_OK_AND_ASSIGN(auto store, SqliteJobStore::Open(path_));
  ASSERT_OK_AND_ASSIGN(JobRecord loaded, store->LoadJob("j-1"));
  EXPECT_EQ(loaded.succeeded, 3u);
  for (uint32_t i = 0; i < 3; ++i) EXPECT_EQ(loaded.tasks[i].state, v1::TASK_STATE_SUCCEEDED) << i;
  ASSERT_OK_AND_ASSIGN(auto headers, store->ListJobHeaders(10));
  ASSERT_EQ(headers.size(), 2u);
  EXPECT_EQ(headers[0].id, "j-3");
  EXPECT_EQ(headers[1].id, "j-1");
  EXPECT_EQ(headers[1].task_count, 4u);
  EXPECT_TRUE(headers[1].tasks.empty());
}

TEST_F(SqliteJobStoreTest, ATaskChangedTwiceInOneBatchIsWrittenOnceAsItsNewest) {
  ASSERT_OK_AND_ASSIGN(auto store, SqliteJobStore::Open(path_, FastRetries()));
  Outage outage(*store);
  JobRecord job = CommittedJob(*store);
  {
    // A held lock keeps the writer retrying its first batch: every change
    // after it gathers into the next one.
    WriteLockHolder lock(path_);
    job.tasks[0].state = v1::TASK_STATE_ASSIGNED;
    ASSERT_OK(store->SaveJob(job, {0}));
    ASSERT_TRUE(outage.failed.WaitForNotificationWithTimeout(absl::Seconds(10)));
    job.tasks[1].state = v1::TASK_STATE_ASSIGNED;
    job.tasks[1].current.number = 1;
    ASSERT_OK(store->SaveJob(job, {1}));
    job.tasks[2].state = v1::TASK_STATE_ASSIGNED;
    ASSERT_OK(store->SaveJob(job, {2}));
    Succeed(job, 1);
    ASSERT_OK(store->SaveJob(job, {1}));
    lock.Release();
  }
  ASSERT_TRUE(outage.recovered.WaitForNotificationWithTimeout(absl::Seconds(10)));
  ASSERT_OK(store->Flush());
  ASSERT_OK_AND_ASSIGN(JobRecord loaded, store->LoadJob("j-1"));
  EXPECT_EQ(loaded.tasks[0].state, v1::TASK_STATE_ASSIGNED);
  EXPECT_EQ(loaded.tasks[1].state, v1::TASK_STATE_SUCCEEDED) << "the newest row of task 1";
  EXPECT_EQ(loaded.tasks[2].state, v1::TASK_STATE_ASSIGNED);
  EXPECT_EQ(loaded.tasks[3].state, v1::TASK_STATE_QUEUED);
  // Task 0 in the first batch; tasks 1 and 2 once each in the second.
  EXPECT_EQ(CountRows(path_, "SELECT sum(rows) FROM task_chunks WHERE job_id = 'j-1'"), 3);
}

TEST_F(SqliteJobStoreTest, ANewJobCreatedDuringAnOutageIsNeverAHeaderWithoutRows) {
  ASSERT_OK_AND_ASSIGN(auto store, SqliteJobStore::Open(path_, FastRetries()));
  Outage outage(*store);
  WriteLockHolder lock(path_);
  JobRecord job = MakeJob("j-1", 3);
  ASSERT_OK(store->CreateJob(job));  // accepted while writable; its batch then fails
  ASSERT_TRUE(outage.failed.WaitForNotificationWithTimeout(absl::Seconds(10)));
  Succeed(job, 2);
  ASSERT_OK(store->SaveJob(job, {2}));
  lock.Release();
  ASSERT_TRUE(outage.recovered.WaitForNotificationWithTimeout(absl::Seconds(10)));
  absl::StatusOr<JobRecord> loaded = store->LoadJob("j-1");
  ASSERT_OK(loaded.status());
  ASSERT_EQ(loaded->tasks.size(), 3u);
  EXPECT_EQ(loaded->tasks[2].state, v1::TASK_STATE_SUCCEEDED);
  EXPECT_EQ(loaded->succeeded, 1u);
}

// --- Deleting jobs: retention, coordctl delete, jobs prune ---

// The job with every task run once (each then has a row of its own).
JobRecord AllRun(JobRecord job) {
  for (TaskRecord& t : job.tasks) {
    t.state = v1::TASK_STATE_SUCCEEDED;
    t.current.number = 1;
    t.current.worker = "w";
  }
  return job;
}

// Creates `job` (fresh, as the coordinator does) and saves it with every
// task run once, in the batch that is queued.
void CreateAllRun(SqliteJobStore& store, const JobRecord& job) {
  ASSERT_OK(store.CreateJob(job));
  std::vector<uint32_t> all(job.tasks.size());
  std::iota(all.begin(), all.end(), 0u);
  ASSERT_OK(store.SaveJob(AllRun(job), all));
}

// Task rows of `job` in the file: version 1 rows plus the rows of its chunks
// (those version 2 wrote, and those since).
int64_t TaskRows(const std::string& path, const std::string& job) {
  return CountRows(path, "SELECT count(*) FROM tasks WHERE job_id = '" + job + "';") +
         CountRows(path, "SELECT COALESCE(SUM(rows), 0) FROM task_chunks_v2 WHERE job_id = '" + job + "';") +
         CountRows(path, "SELECT COALESCE(SUM(rows), 0) FROM task_chunks WHERE job_id = '" + job + "';");
}

// Writes the job with every task run, `per_chunk` tasks a transaction (so
// `tasks / per_chunk` chunks).
void WriteRunInChunks(SqliteJobStore& store, const JobRecord& job, uint32_t per_chunk) {
  ASSERT_OK(store.CreateJob(job));
  const JobRecord ran = AllRun(job);
  for (uint32_t first = 0; first < ran.tasks.size(); first += per_chunk) {
    std::vector<uint32_t> changed;
    for (uint32_t i = first; i < std::min<uint32_t>(first + per_chunk, ran.tasks.size()); ++i) changed.push_back(i);
    ASSERT_OK(store.SaveJob(ran, changed));
    ASSERT_OK(store.Flush());
  }
}

JobRecord Finished(JobRecord job, absl::Time at) {
  job.state = v1::JOB_STATE_SUCCEEDED;
  job.finished_at = at;
  for (TaskRecord& t : job.tasks) t.state = v1::TASK_STATE_SUCCEEDED;
  job.succeeded = static_cast<uint32_t>(job.tasks.size());
  return job;
}

TEST_F(SqliteJobStoreTest, ANewJobIsOneRowAndItsTasksReadBackQueued) {
  ASSERT_OK_AND_ASSIGN(auto store, SqliteJobStore::Open(path_));
  JobRecord job = MakeJob("j-1", 1000);
  ASSERT_OK(store->CreateJob(job));
  ASSERT_OK(store->Flush());
  EXPECT_EQ(TaskRows(path_, "j-1"), 0);
  EXPECT_EQ(CountRows(path_, "SELECT count(*) FROM jobs;"), 1);
  // Two tasks run; the others were never assigned and still have no row.
  job.tasks[7].state = v1::TASK_STATE_SUCCEEDED;
  job.tasks[7].current.number = 1;
  job.tasks[7].current.worker = "w7";
  job.tasks[999].state = v1::TASK_STATE_RUNNING;
  job.tasks[999].current.number = 2;
  ASSERT_OK(store->SaveJob(job, {7, 999}));
  ASSERT_OK(store->Flush());
  EXPECT_EQ(CountRows(path_, "SELECT count(*) FROM task_chunks;"), 1);
  EXPECT_EQ(TaskRows(path_, "j-1"), 2);
  // A later row of a task wins over its earlier one.
  job.tasks[999].state = v1::TASK_STATE_SUCCEEDED;
  job.tasks[999].current.cpu_ns = 12345;
  ASSERT_OK(store->SaveJob(job, {999}));
  ASSERT_OK(store->Flush());
  EXPECT_EQ(CountRows(path_, "SELECT count(*) FROM task_chunks;"), 2);
  ASSERT_OK_AND_ASSIGN(JobRecord loaded, store->LoadJob("j-1"));
  ASSERT_EQ(loaded.tasks.size(), 1000u);
  for (uint32_t i = 0; i < 1000; ++i) {
    EXPECT_EQ(loaded.tasks[i].index, i);
    if (i == 7 || i == 999) continue;
    EXPECT_EQ(loaded.tasks[i].state, v1::TASK_STATE_QUEUED) << i;
    EXPECT_EQ(loaded.tasks[i].current.number, 0u) << i;
  }
  EXPECT_EQ(loaded.tasks[7].state, v1::TASK_STATE_SUCCEEDED);
  EXPECT_EQ(loaded.tasks[7].current.worker, "w7");
  EXPECT_EQ(loaded.tasks[999].state, v1::TASK_STATE_SUCCEEDED);
  EXPECT_EQ(loaded.tasks[999].current.number, 2u);
  EXPECT_EQ(loaded.tasks[999].current.cpu_ns, 12345);
  EXPECT_EQ(loaded.task_iterations(500), 1000u);
}

TEST_F(SqliteJobStoreTest, RowsThatCannotBeTheJobsAreDataLoss) {
  ASSERT_OK_AND_ASSIGN(auto store, SqliteJobStore::Open(path_));
  CreateAllRun(*store, MakeJob("j-1", 3));
  CreateAllRun(*store, MakeJob("j-2", 3));
  ASSERT_OK(store->Flush());
  ASSERT_OK(store->LoadJob("j-1").status());
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
  // A version 1 row past the job's task count; a chunk that is not one.
  ASSERT_EQ(sqlite3_exec(db, R"sql(
      INSERT INTO tasks (job_id, idx, iterations, duration_ns, state, attempt, worker, host, slot, cpu_ns,
                         iterations_done, error, failures, speculated, backup_won)
        VALUES ('j-1', 3, 0, 0, 4, 1, 'w', 'h', 0, 0, 0, '', '', 0, 0);
      UPDATE task_chunks SET data = x'ffff' WHERE job_id = 'j-2';)sql",
                         nullptr, nullptr, nullptr),
            SQLITE_OK)
      << sqlite3_errmsg(db);
  sqlite3_close(db);
  EXPECT_THAT(store->LoadJob("j-1"),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("job j-1 has a row for task 3 of 3")));
  EXPECT_THAT(store->LoadJob("j-2"), StatusIs(absl::StatusCode::kDataLoss, HasSubstr("job j-2: a task chunk")));
}

TEST_F(SqliteJobStoreTest, ExpiredJobsByAgeAndCountOldestFirst) {
  ASSERT_OK_AND_ASSIGN(auto store, SqliteJobStore::Open(path_));
  const absl::Time t0 = absl::FromUnixSeconds(1'700'000'000);
  for (int i = 0; i < 4; ++i) {
    const std::string id = "j-" + std::to_string(i);
    ASSERT_OK(store->CreateJob(MakeJob(id, 2)));
    ASSERT_OK(store->SaveJob(Finished(MakeJob(id, 2), t0 + absl::Hours(i)), {0, 1}));
  }
  ASSERT_OK(store->CreateJob(MakeJob("j-running", 2)));
  ASSERT_OK(store->Flush());
  auto ids = [](const std::vector<JobRecord>& v) {
    std::vector<std::string> out;
    for (const auto& j : v) out.push_back(j.id);
    return out;
  };
  RetentionRule by_age;
  by_age.finished_before = t0 + absl::Minutes(90);
  ASSERT_OK_AND_ASSIGN(auto old, store->ExpiredJobs(by_age, 100));
  EXPECT_THAT(ids(old), ::testing::ElementsAre("j-0", "j-1"));
  EXPECT_EQ(old[0].task_count, 2u);
  RetentionRule by_count;
  by_count.keep_jobs = 1;
  ASSERT_OK_AND_ASSIGN(auto many, store->ExpiredJobs(by_count, 100));
  EXPECT_THAT(ids(many), ::testing::ElementsAre("j-0", "j-1", "j-2"));
  ASSERT_OK_AND_ASSIGN(auto limited, store->ExpiredJobs(by_count, 2));
  EXPECT_THAT(ids(limited), ::testing::ElementsAre("j-0", "j-1"));
  by_count.keep_jobs = 10;
  ASSERT_OK_AND_ASSIGN(auto none, store->ExpiredJobs(by_count, 100));
  EXPECT_THAT(none, ::testing::IsEmpty());
  // Queued for deletion already: not chosen again.
  ASSERT_OK(store->DeleteJobs({"j-0"}));
  ASSERT_OK_AND_ASSIGN(auto after, store->ExpiredJobs(by_age, 100));
  EXPECT_THAT(ids(after), ::testing::ElementsAre("j-1"));
}

TEST_F(SqliteJobStoreTest, DeletedJobsRowsArePurgedInSmallTransactions) {
  SqliteJobStore::Options options;
  options.purge_batch_rows = 100;
  ASSERT_OK_AND_ASSIGN(auto store, SqliteJobStore::Open(path_, options));
  const absl::Time t0 = absl::FromUnixSeconds(1'700'000'000);
  // Ten chunks of 100 rows: chunks go whole, 100 rows a transaction.
  WriteRunInChunks(*store, MakeJob("j-big", 1000), 100);
  CreateAllRun(*store, MakeJob("j-kept", 3));
  ASSERT_OK(store->SaveJob(Finished(MakeJob("j-big", 1000), t0), {}));
  ASSERT_OK(store->Flush());
  const uint64_t commits_before = store->commits();
  ASSERT_OK(store->DeleteJobs({"j-big", "j-unknown"}));
  // Gone for readers at once.
  EXPECT_THAT(store->LoadJob("j-big"), StatusIs(absl::StatusCode::kNotFound, ::testing::_));
  ASSERT_OK_AND_ASSIGN(bool has, store->HasJob("j-big"));
  EXPECT_FALSE(has);
  // Its rows go 100 a transaction: wait for them (with a deadline).
  // Done when the job's purge mark is gone (after its last rows).
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (CountRows(path_, "SELECT count(*) FROM meta WHERE key LIKE 'purge:%';") > 0 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(5));  // polling the file, not synchronising threads
  }
  EXPECT_EQ(CountRows(path_, "SELECT count(*) FROM meta WHERE key LIKE 'purge:%';"), 0);
  EXPECT_EQ(TaskRows(path_, "j-big"), 0);
  EXPECT_GE(store->commits() - commits_before, 10u);
  EXPECT_EQ(TaskRows(path_, "j-kept"), 3);
  ASSERT_OK_AND_ASSIGN(auto headers, store->ListJobHeaders(10));
  ASSERT_EQ(headers.size(), 1u);
  EXPECT_EQ(headers[0].id, "j-kept");
  ASSERT_OK(store->Flush());
  const StoreHealth h = store->Health();
  EXPECT_EQ(h.jobs_deleted, 1u);
  EXPECT_EQ(h.purge_rows, 0u);
}

TEST_F(SqliteJobStoreTest, APurgeCutShortByAStopGoesOnAfterTheRestart) {
  {
    SqliteJobStore::Options slow = FastRetries();
    slow.purge_batch_rows = 1;  // a chunk a transaction, the group commit's 5 ms apart
    ASSERT_OK_AND_ASSIGN(auto store, SqliteJobStore::Open(path_, slow));
    WriteRunInChunks(*store, MakeJob("j-1", 500), 5);  // 100 chunks: at least 0.5 s to purge
    ASSERT_OK(store->DeleteJobs({"j-1"}));
    ASSERT_OK(store->Flush());  // the delete commits; purging has barely begun
    // Held until the store has stopped, so the purge cannot finish first:
    // with 5 chunks and no lock it did, now and then, on a loaded machine.
    WriteLockHolder lock(path_);
    store.reset();
  }
  EXPECT_GT(TaskRows(path_, "j-1"), 0);
  EXPECT_EQ(CountRows(path_, "SELECT count(*) FROM jobs;"), 0);
  ASSERT_OK_AND_ASSIGN(auto store, SqliteJobStore::Open(path_));
  EXPECT_GT(store->Health().purge_rows, 0u);
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (CountRows(path_, "SELECT count(*) FROM meta WHERE key LIKE 'purge:%';") > 0 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(5));  // polling the file, not synchronising threads
  }
  EXPECT_EQ(CountRows(path_, "SELECT count(*) FROM meta WHERE key LIKE 'purge:%';"), 0);
  EXPECT_EQ(TaskRows(path_, "j-1"), 0);
}

TEST_F(SqliteJobStoreTest, ABacklogPastTheCapIsReportedUntilItCommits) {
  SqliteJobStore::Options options;
  options.max_backlog_rows = 10;
  ASSERT_OK_AND_ASSIGN(auto store, SqliteJobStore::Open(path_, options));
  absl::Notification drained;
  store->SetHealthObserver([&](const StoreHealth& h) {
    if (h.writable && !drained.HasBeenNotified()) drained.Notify();
  });
  EXPECT_FALSE(store->Backlogged());
  CreateAllRun(*store, MakeJob("j-1", 11));
  EXPECT_TRUE(store->Backlogged());  // 11 task rows and the header queued
  ASSERT_OK(store->Flush());
  EXPECT_FALSE(store->Backlogged());
  // The coordinator learns of it through the health observer.
  EXPECT_TRUE(drained.WaitForNotificationWithTimeout(absl::Seconds(30)));
  store->SetHealthObserver(nullptr);
}

void Deal(JobRecord& job, uint32_t index, uint32_t attempt) {
  TaskRecord& t = job.tasks[index];
  t.state = v1::TASK_STATE_ASSIGNED;
  t.current.number = attempt;
  t.current.worker = "w1";
  t.current.assigned_at = absl::FromUnixSeconds(1'700'000'000) + absl::Milliseconds(index);
}

// A task dealt and then finished before its row is written is one row of
// the backlog (and of the file), its newest.
TEST_F(SqliteJobStoreTest, ATaskSavedAgainWhileQueuedIsOneRowOfTheBacklog) {
  ASSERT_OK_AND_ASSIGN(auto store, SqliteJobStore::Open(path_, FastRetries()));
  Outage outage(*store);
  JobRecord job = MakeJob("j-1", 4);
  ASSERT_OK(store->CreateJob(job));
  ASSERT_OK(store->Flush());
  {
    WriteLockHolder lock(path_);
    ASSERT_NO_FATAL_FAILURE(SaveABatchThatFails(*store, outage, job));
    const uint64_t before = store->Health().backlog_rows;
    Deal(job, 1, 1);
    ASSERT_OK(store->SaveJob(job, {1}));
    Succeed(job, 1);
    ASSERT_OK(store->SaveJob(job, {1}));
    Succeed(job, 2);
    ASSERT_OK(store->SaveJob(job, {2, 1}));
    // The job's header and tasks 1 and 2, once each.
    EXPECT_EQ(store->Health().backlog_rows, before + 3);
  }
  ASSERT_TRUE(outage.recovered.WaitForNotificationWithTimeout(absl::Seconds(10)));
  ASSERT_OK(store->Flush());
  EXPECT_EQ(TaskRows(path_, "j-1"), 3);  // tasks 0, 1 and 2, one row each
  ASSERT_OK_AND_ASSIGN(JobRecord loaded, store->LoadJob("j-1"));
  for (uint32_t i : {0u, 1u, 2u}) {
    EXPECT_EQ(static_cast<v1::TaskState>(loaded.tasks[i].state), v1::TASK_STATE_SUCCEEDED) << i;
  }
  EXPECT_EQ(static_cast<v1::TaskState>(loaded.tasks[3].state), v1::TASK_STATE_QUEUED);
}

// A task's row while it is just dealt (ASSIGNED) waits one batch: a result
// that comes first replaces it, so a short task is written once, not twice.
// Deals still in flight a batch later are written then. (The write lock
// holds the writer on the batch it took, so that what comes meanwhile is
// known to land in the next one.)
TEST_F(SqliteJobStoreTest, ADealtRowWaitsOneBatchForItsResult) {
  ASSERT_OK_AND_ASSIGN(auto store, SqliteJobStore::Open(path_, FastRetries()));
  Outage outage(*store);
  JobRecord job = MakeJob("j-1", 10);
  ASSERT_OK(store->CreateJob(job));
  ASSERT_OK(store->Flush());
  {
    WriteLockHolder lock(path_);
    for (uint32_t i = 1; i < 10; ++i) Deal(job, i, 1);
    std::vector<uint32_t> dealt = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    ASSERT_OK(store->SaveJob(job, dealt));
    // The writer takes a batch (task 0's result, the deals left for the
    // next) and is held on it.
    ASSERT_NO_FATAL_FAILURE(SaveABatchThatFails(*store, outage, job));
    // Tasks 1-4 finish, task 5 fails and is dealt again: their deals go
    // unwritten; 6-9 stay in flight.
    for (uint32_t i : {1u, 2u, 3u, 4u}) Succeed(job, i);
    job.tasks[5].state = v1::TASK_STATE_QUEUED;
    job.tasks[5].current.worker = Name();
    ASSERT_OK(store->SaveJob(job, {1, 2, 3, 4, 5}));
    Deal(job, 5, 2);
    ASSERT_OK(store->SaveJob(job, {5}));
    // The batch held (the header, task 0), then the header again, the deals
    // of 6-9, the rows of 1-5 and 5's new deal: the deals of 1-5 are gone
    // (17 when every deal was a row).
    EXPECT_EQ(store->Health().backlog_rows, 13u);
  }
  ASSERT_TRUE(outage.recovered.WaitForNotificationWithTimeout(absl::Seconds(10)));
  // The next batch writes the deals of 6-9, the rows of 1-5 (and holds back
  // task 5's new deal); Flush writes that too.
  ASSERT_OK(store->Flush());
  // 0: its result. 1-4: their results, no deal. 5: the failure, then its
  // second deal. 6-9: their deals.
  EXPECT_EQ(TaskRows(path_, "j-1"), 11);
  ASSERT_OK_AND_ASSIGN(JobRecord loaded, store->LoadJob("j-1"));
  for (uint32_t i = 0; i < 10; ++i) {
    SCOPED_TRACE(i);
    const v1::TaskState want = i < 5 ? v1::TASK_STATE_SUCCEEDED : v1::TASK_STATE_ASSIGNED;
    EXPECT_EQ(static_cast<v1::TaskState>(loaded.tasks[i].state), i == 5 ? v1::TASK_STATE_ASSIGNED : want);
    EXPECT_EQ(loaded.tasks[i].current.number, i == 5 ? 2u : 1u);
  }
}

// Someone waiting for the store (Flush, LoadJob) gets the deals written too:
// nothing is left behind for a read, a restart or a clean stop.
TEST_F(SqliteJobStoreTest, FlushAndStopWriteTheDealsThatWait) {
  JobRecord job = MakeJob("j-1", 4);
  {
    ASSERT_OK_AND_ASSIGN(auto store, SqliteJobStore::Open(path_));
    ASSERT_OK(store->CreateJob(job));
    Deal(job, 0, 1);
    ASSERT_OK(store->SaveJob(job, {0}));
    ASSERT_OK_AND_ASSIGN(JobRecord loaded, store->LoadJob("j-1"));
    EXPECT_EQ(static_cast<v1::TaskState>(loaded.tasks[0].state), v1::TASK_STATE_ASSIGNED);
    Deal(job, 1, 1);
    ASSERT_OK(store->SaveJob(job, {1}));
  }  // stopped: what waits is written
  ASSERT_OK_AND_ASSIGN(auto store, SqliteJobStore::Open(path_));
  ASSERT_OK_AND_ASSIGN(JobRecord loaded, store->LoadJob("j-1"));
  EXPECT_EQ(static_cast<v1::TaskState>(loaded.tasks[1].state), v1::TASK_STATE_ASSIGNED);
  EXPECT_EQ(TaskRows(path_, "j-1"), 2);
}

// A file as version 2 left it: task_chunks WITHOUT ROWID. Opened, that
// table is kept as task_chunks_v2 and read before the chunks written since,
// and deleting the job purges both.
TEST_F(SqliteJobStoreTest, AVersion2FilesChunksAreReadFirstAndPurgedWithTheNewOnes) {
  JobRecord job = MakeJob("j-2", 3);
  for (uint32_t i : {0u, 1u}) {
    job.tasks[i].state = v1::TASK_STATE_SUCCEEDED;
    job.tasks[i].current.number = 1;
    job.tasks[i].current.worker = "w-old";
  }
  {
    const std::string blob = ReferenceChunk({job.tasks[0], job.tasks[1]}, /*from_base=*/true);  // as 2 wrote it
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
    // A version 1 file that a version 2 coordinator opened: the columns it
    // added, version 2, and its task_chunks.
    ASSERT_EQ(sqlite3_exec(db, kVersion1Schema, nullptr, nullptr, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
    ASSERT_EQ(sqlite3_exec(db, R"sql(
      UPDATE meta SET value = '2' WHERE key = 'schema_version';
      ALTER TABLE jobs ADD COLUMN tasks_total INTEGER;
      ALTER TABLE jobs ADD COLUMN backups_cancelled INTEGER NOT NULL DEFAULT 0;
      CREATE TABLE task_chunks (job_id TEXT NOT NULL, seq INTEGER NOT NULL, first_idx INTEGER NOT NULL,
        last_idx INTEGER NOT NULL, rows INTEGER NOT NULL, data BLOB NOT NULL,
        PRIMARY KEY (job_id, seq)) WITHOUT ROWID;
    )sql", nullptr, nullptr, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
    sqlite3_stmt* insert = nullptr;
    ASSERT_EQ(sqlite3_prepare_v2(db, R"sql(
      INSERT INTO jobs VALUES ('j-2', 1, ?1, 2, '', 1, NULL, 2, 0, 0, 0, 0, 3000, 2000, 0, 0, 3, 0);
      )sql", -1, &insert, nullptr), SQLITE_OK);
    const std::string spec = job.spec.SerializeAsString();
    sqlite3_bind_blob(insert, 1, spec.data(), static_cast<int>(spec.size()), SQLITE_TRANSIENT);
    ASSERT_EQ(sqlite3_step(insert), SQLITE_DONE);
    sqlite3_finalize(insert);
    ASSERT_EQ(sqlite3_prepare_v2(db, "INSERT INTO task_chunks VALUES ('j-2', 7, 0, 1, 2, ?1);", -1, &insert, nullptr),
              SQLITE_OK);
    sqlite3_bind_blob(insert, 1, blob.data(), static_cast<int>(blob.size()), SQLITE_TRANSIENT);
    ASSERT_EQ(sqlite3_step(insert), SQLITE_DONE);
    sqlite3_finalize(insert);
    sqlite3_close(db);
  }
  {
    ASSERT_OK_AND_ASSIGN(auto store, SqliteJobStore::Open(path_));
    EXPECT_EQ(CountRows(path_, "SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'schema_version';"), 4);
    EXPECT_EQ(CountRows(path_, "SELECT count(*) FROM task_chunks_v2;"), 1);
    EXPECT_EQ(CountRows(path_, "SELECT count(*) FROM sqlite_master WHERE name = 'task_chunks' AND "
                               "sql NOT LIKE '%WITHOUT ROWID%';"), 1);
    ASSERT_OK_AND_ASSIGN(JobRecord loaded, store->LoadJob("j-2"));
    ASSERT_EQ(loaded.tasks.size(), 3u);
    EXPECT_EQ(loaded.tasks[1].current.worker, "w-old");
    EXPECT_EQ(loaded.tasks[2].state, v1::TASK_STATE_QUEUED);
    // Task 1 again (a newer attempt) and task 2: the new chunk wins.
    job.tasks[1].current.number = 2;
    job.tasks[1].current.worker = "w-new";
    job.tasks[2].state = v1::TASK_STATE_SUCCEEDED;
    job.tasks[2].current.number = 1;
    job.tasks[2].current.worker = "w-new";
    ASSERT_OK(store->SaveJob(job, {1, 2}));
    ASSERT_OK(store->Flush());
    EXPECT_GT(CountRows(path_, "SELECT min(seq) FROM task_chunks;"), 7) << "after every version 2 chunk";
    ASSERT_OK_AND_ASSIGN(loaded, store->LoadJob("j-2"));
    EXPECT_EQ(loaded.tasks[0].current.worker, "w-old");
    EXPECT_EQ(loaded.tasks[1].current.worker, "w-new");
    EXPECT_EQ(loaded.tasks[1].current.number, 2u);
    EXPECT_EQ(loaded.tasks[2].current.worker, "w-new");
    EXPECT_EQ(TaskRows(path_, "j-2"), 4);  // two in the old chunk, two in the new
    ASSERT_OK(store->DeleteJobs({"j-2"}));
    ASSERT_OK(store->Flush());
  }
  // Reopened (the layout is not renamed twice), the purge finishes.
  ASSERT_OK_AND_ASSIGN(auto store, SqliteJobStore::Open(path_));
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (TaskRows(path_, "j-2") > 0 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(5));  // polling the file, not synchronising threads
  }
  EXPECT_EQ(TaskRows(path_, "j-2"), 0);
  EXPECT_EQ(CountRows(path_, "SELECT count(*) FROM task_chunks_v2;"), 0);
}

// A version 3 file: its chunks are of coding 0 (times from a base, a rate
// per row). Opened, it is marked 4 and read as it is; rows written since
// are of coding 1, and a job's rows of both read back together.
TEST_F(SqliteJobStoreTest, AVersion3FilesChunksOfTheOldCodingStillRead) {
  JobRecord job = MakeJob("j-3", 3);
  const absl::Time t0 = absl::FromUnixSeconds(1'800'000'000) + absl::Nanoseconds(3);
  for (uint32_t i : {0u, 1u}) {
    TaskRecord& t = job.tasks[i];
    t.state = v1::TASK_STATE_SUCCEEDED;
    t.current.number = 1;
    t.current.worker = "w-old";
    t.current.assigned_at = t0;
    t.current.started_at = t0 + absl::Microseconds(10 + i);
    t.current.ended_at = t0 + absl::Microseconds(20 + i);
    t.current.result_at = t0 + absl::Microseconds(90);
    t.current.calibrated_rate = 2.5e9f;
  }
  {
    ASSERT_OK_AND_ASSIGN(auto store, SqliteJobStore::Open(path_));
    ASSERT_OK(store->CreateJob(MakeJob("j-3", 3)));  // fresh, as the coordinator creates it
    ASSERT_OK(store->SaveJob(job, {0, 1}));
    ASSERT_OK(store->Flush());
  }
  {
    // What a version 3 coordinator would have written instead.
    const std::string blob = ReferenceChunk({job.tasks[0], job.tasks[1]}, /*from_base=*/true);
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
    sqlite3_stmt* update = nullptr;
    ASSERT_EQ(sqlite3_prepare_v2(db, "UPDATE task_chunks SET data = ?1 WHERE job_id = 'j-3';", -1, &update, nullptr),
              SQLITE_OK);
    sqlite3_bind_blob(update, 1, blob.data(), static_cast<int>(blob.size()), SQLITE_TRANSIENT);
    ASSERT_EQ(sqlite3_step(update), SQLITE_DONE);
    sqlite3_finalize(update);
    ASSERT_EQ(sqlite3_changes(db), 1);
    ASSERT_EQ(sqlite3_exec(db, "UPDATE meta SET value = '3' WHERE key = 'schema_version';", nullptr, nullptr, nullptr),
              SQLITE_OK);
    sqlite3_close(db);
  }
  ASSERT_OK_AND_ASSIGN(auto store, SqliteJobStore::Open(path_));
  EXPECT_EQ(CountRows(path_, "SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'schema_version';"), 4);
  job.tasks[2].state = v1::TASK_STATE_SUCCEEDED;
  job.tasks[2].current.number = 1;
  job.tasks[2].current.worker = "w-new";
  job.tasks[2].current.started_at = t0 + absl::Seconds(1);
  job.tasks[2].current.calibrated_rate = 3.5e9f;
  ASSERT_OK(store->SaveJob(job, {2}));
  ASSERT_OK(store->Flush());
  ASSERT_OK_AND_ASSIGN(JobRecord loaded, store->LoadJob("j-3"));
  ASSERT_EQ(loaded.tasks.size(), 3u);
  for (uint32_t i : {0u, 1u, 2u}) {
    SCOPED_TRACE(i);
    const Attempt& want = job.tasks[i].current;
    const Attempt& got = loaded.tasks[i].current;
    EXPECT_EQ(static_cast<v1::TaskState>(loaded.tasks[i].state), v1::TASK_STATE_SUCCEEDED);
    EXPECT_EQ(got.worker, want.worker);
    EXPECT_EQ(got.assigned_at.time(), want.assigned_at.time());
    EXPECT_EQ(got.started_at.time(), want.started_at.time());
    EXPECT_EQ(got.ended_at.time(), want.ended_at.time());
    EXPECT_EQ(got.result_at.time(), want.result_at.time());
    EXPECT_EQ(got.calibrated_rate, want.calibrated_rate);
  }
}

TEST_F(SqliteJobStoreTest, ADeleteDropsTheJobsQueuedRows) {
  ASSERT_OK_AND_ASSIGN(auto store, SqliteJobStore::Open(path_));
  JobRecord job = MakeJob("j-1", 5);
  ASSERT_OK(store->CreateJob(job));
  ASSERT_OK(store->SaveJob(Finished(job, absl::FromUnixSeconds(1'700'000'000)), {0, 1, 2}));
  ASSERT_OK(store->DeleteJobs({"j-1"}));  // before anything was written
  ASSERT_OK(store->Flush());
  EXPECT_EQ(CountRows(path_, "SELECT count(*) FROM jobs;"), 0);
  EXPECT_EQ(TaskRows(path_, "j-1"), 0);
}

}  // namespace
}  // namespace busyfleet::coordinator
