#include "coordinator/store/sqlite_job_store.h"

#include <sqlite3.h>

#include <algorithm>
#include <cassert>
#include <tuple>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"
#include "coordinator/core/limits.h"

namespace busyfleet::coordinator {
namespace {

// 2 (issue 17): task rows are written as chunks (task_chunks: one row per
// job per batch of up to 4,096 task rows, their columns packed; see
// task_chunk.h), read in order so a task's newest row wins; a task that was
// never assigned has no row (it is queued, its work is the job's split).
// The tasks table of version 1 (a row for every task) is still read, before
// the chunks, and purged; a version 1 file is marked 2 when opened: a
// coordinator that understands only 1 would take the missing rows for lost
// data, so it refuses the file instead.
// 3 (issue 17): task_chunks is a rowid table (seq the rowid, an index on
// job_id and seq). Version 2 kept it WITHOUT ROWID, keyed by (job_id, seq),
// whose b-tree holds the whole row: every insert compared keys by copying
// whole ~100 KiB blobs out of their overflow pages (~12 % of the
// coordinator's CPU with a file). A version 2 file's table is renamed
// task_chunks_v2 when opened (its rows stay where they are; every seq in it
// is older than any in task_chunks) and read before task_chunks; files made
// since have an empty one, so that reads and purges are one query.
// 4 (issue 17, tenth session): chunks are written in TaskChunk coding 1
// (chained times, a table of rates: about 20 bytes a row, not 33); the
// reader takes both codings, so a version 3 file is marked 4 when opened
// and its chunks stay as they are. A version 3 coordinator would misread
// coding 1's times (it does not know the field), so it refuses the file.
constexpr int kSchemaVersion = 4;

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
  id TEXT PRIMARY KEY,
  seq INTEGER NOT NULL,
  spec BLOB NOT NULL,
  state INTEGER NOT NULL,
  error TEXT NOT NULL,
  submitted_ns INTEGER,
  finished_ns INTEGER,
  succeeded INTEGER NOT NULL, failed INTEGER NOT NULL, cancelled INTEGER NOT NULL,
  retries INTEGER NOT NULL, duplicates INTEGER NOT NULL,
  iterations_total INTEGER NOT NULL, iterations_done INTEGER NOT NULL,
  backups INTEGER NOT NULL, backups_won INTEGER NOT NULL,
  tasks_total INTEGER, backups_cancelled INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS jobs_by_seq ON jobs (seq);
CREATE TABLE IF NOT EXISTS tasks (
  job_id TEXT NOT NULL,
  idx INTEGER NOT NULL,
  iterations INTEGER NOT NULL,
  duration_ns INTEGER NOT NULL,
  state INTEGER NOT NULL,
  attempt INTEGER NOT NULL,
  worker TEXT NOT NULL, host TEXT NOT NULL, slot INTEGER NOT NULL,
  assigned_ns INTEGER, started_ns INTEGER, ended_ns INTEGER, result_ns INTEGER,
  cpu_ns INTEGER NOT NULL, iterations_done INTEGER NOT NULL,
  error TEXT NOT NULL, failures TEXT NOT NULL,
  speculated INTEGER NOT NULL, backup_won INTEGER NOT NULL,
  start_cpu INTEGER NOT NULL DEFAULT -1, end_cpu INTEGER NOT NULL DEFAULT -1,
  migrated INTEGER NOT NULL DEFAULT 0, bound_cpus TEXT NOT NULL DEFAULT '',
  calibrated_rate REAL NOT NULL DEFAULT 0,
  interference BLOB NOT NULL DEFAULT x'',
  PRIMARY KEY (job_id, idx)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS task_chunks (
  seq INTEGER PRIMARY KEY,
  job_id TEXT NOT NULL,
  first_idx INTEGER NOT NULL,
  last_idx INTEGER NOT NULL,
  rows INTEGER NOT NULL,
  data BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS task_chunks_by_job ON task_chunks (job_id, seq);
CREATE TABLE IF NOT EXISTS task_chunks_v2 (
  job_id TEXT NOT NULL,
  seq INTEGER NOT NULL,
  first_idx INTEGER NOT NULL,
  last_idx INTEGER NOT NULL,
  rows INTEGER NOT NULL,
  data BLOB NOT NULL,
  PRIMARY KEY (job_id, seq)) WITHOUT ROWID;
)sql";

// RAII prepared statement.
class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql) { rc_ = sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr); }
  ~Stmt() { sqlite3_finalize(stmt_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  bool ok() const { return rc_ == SQLITE_OK; }
  sqlite3_stmt* get() { return stmt_; }
  void Text(int i, const std::string& s) { sqlite3_bind_text(stmt_, i, s.data(), static_cast<int>(s.size()), SQLITE_TRANSIENT); }
  void Blob(int i, const std::string& s) { sqlite3_bind_blob(stmt_, i, s.data(), static_cast<int>(s.size()), SQLITE_TRANSIENT); }
  void Int(int i, int64_t v) { sqlite3_bind_int64(stmt_, i, v); }
  void Double(int i, double v) { sqlite3_bind_double(stmt_, i, v); }
  void Time(int i, absl::Time t) {
    if (t == absl::InfinitePast()) {
      sqlite3_bind_null(stmt_, i);
    } else {
      sqlite3_bind_int64(stmt_, i, absl::ToUnixNanos(t));
    }
  }
  int64_t ColInt(int i) { return sqlite3_column_int64(stmt_, i); }
  double ColDouble(int i) { return sqlite3_column_double(stmt_, i); }
  std::string ColText(int i) {
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, i));
    return p ? std::string(p, static_cast<size_t>(sqlite3_column_bytes(stmt_, i))) : std::string();
  }
  std::string ColBlob(int i) {
    const auto* p = static_cast<const char*>(sqlite3_column_blob(stmt_, i));
    return p ? std::string(p, static_cast<size_t>(sqlite3_column_bytes(stmt_, i))) : std::string();
  }
  absl::Time ColTime(int i) {
    if (sqlite3_column_type(stmt_, i) == SQLITE_NULL) return absl::InfinitePast();
    return absl::FromUnixNanos(sqlite3_column_int64(stmt_, i));
  }

 private:
  sqlite3_stmt* stmt_ = nullptr;
  int rc_ = SQLITE_OK;
};

// The primary result codes a writer meets, by name (the log and health
// name them; SQLite's own words follow).
std::string CodeName(int rc) {
  switch (rc & 0xff) {
    case SQLITE_BUSY: return "SQLITE_BUSY";
    case SQLITE_LOCKED: return "SQLITE_LOCKED";
    case SQLITE_FULL: return "SQLITE_FULL";
    case SQLITE_IOERR: return "SQLITE_IOERR";
    case SQLITE_READONLY: return "SQLITE_READONLY";
    case SQLITE_CORRUPT: return "SQLITE_CORRUPT";
    case SQLITE_CANTOPEN: return "SQLITE_CANTOPEN";
    case SQLITE_NOMEM: return "SQLITE_NOMEM";
    default: return absl::StrCat("SQLite error ", rc);
  }
}

absl::Status SqlError(sqlite3* db, absl::string_view what) {
  return absl::InternalError(
      absl::StrCat(what, ": ", sqlite3_errmsg(db), " (", CodeName(sqlite3_extended_errcode(db)), ")"));
}

absl::Status Exec(sqlite3* db, const char* sql) {
  char* err = nullptr;
  if (const int rc = sqlite3_exec(db, sql, nullptr, nullptr, &err); rc != SQLITE_OK) {
    absl::Status s = absl::InternalError(
        absl::StrCat(err ? err : "unknown SQLite error", " (", CodeName(sqlite3_extended_errcode(db)), ")"));
    sqlite3_free(err);
    return s;
  }
  return absl::OkStatus();
}

// The jobs table's columns state .. backups_won, backups_cancelled, from
// column `first` on.
void ReadHeaderColumns(Stmt& q, int first, JobRecord* r) {
  r->state = static_cast<v1::JobState>(q.ColInt(first));
  r->error = q.ColText(first + 1);
  r->submitted_at = q.ColTime(first + 2);
  r->finished_at = q.ColTime(first + 3);
  r->succeeded = static_cast<uint32_t>(q.ColInt(first + 4));
  r->failed = static_cast<uint32_t>(q.ColInt(first + 5));
  r->cancelled = static_cast<uint32_t>(q.ColInt(first + 6));
  r->retries = static_cast<uint32_t>(q.ColInt(first + 7));
  r->duplicates = static_cast<uint32_t>(q.ColInt(first + 8));
  r->iterations_total = static_cast<uint64_t>(q.ColInt(first + 9));
  r->iterations_done = static_cast<uint64_t>(q.ColInt(first + 10));
  r->backups = static_cast<uint32_t>(q.ColInt(first + 11));
  r->backups_won = static_cast<uint32_t>(q.ColInt(first + 12));
  r->backups_cancelled = static_cast<uint32_t>(q.ColInt(first + 13));
}

// Runs a bound statement of the open write transaction; on failure rolls
// the batch back.
absl::Status StepOrRollback(sqlite3* db, Stmt& stmt, absl::string_view what) {
  if (sqlite3_step(stmt.get()) == SQLITE_DONE) return absl::OkStatus();
  absl::Status s = SqlError(db, what);
  Exec(db, "ROLLBACK;").IgnoreError();
  return s;
}

}  // namespace

// The writer's two statements, prepared on its first commit.
struct SqliteJobStore::WriteStatements {
  explicit WriteStatements(sqlite3* db)
      : job(db, R"sql(
    INSERT INTO jobs (id, seq, spec, state, error, submitted_ns, finished_ns, succeeded, failed, cancelled,
                      retries, duplicates, iterations_total, iterations_done, backups, backups_won, tasks_total,
                      backups_cancelled)
    VALUES (?1, COALESCE((SELECT seq FROM jobs WHERE id = ?1), (SELECT COALESCE(MAX(seq), 0) + 1 FROM jobs)),
            ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)
    ON CONFLICT (id) DO UPDATE SET spec=?2, state=?3, error=?4, submitted_ns=?5, finished_ns=?6,
      succeeded=?7, failed=?8, cancelled=?9, retries=?10, duplicates=?11, iterations_total=?12,
      iterations_done=?13, backups=?14, backups_won=?15, tasks_total=?16, backups_cancelled=?17;)sql"),
        chunk(db, R"sql(
    INSERT INTO task_chunks (job_id, seq, first_idx, last_idx, rows, data) VALUES (?1, ?2, ?3, ?4, ?5, ?6);)sql") {}
  Stmt job;
  Stmt chunk;
};

absl::StatusOr<std::unique_ptr<SqliteJobStore>> SqliteJobStore::Open(const std::string& path, Options options) {
  sqlite3* db = nullptr;
  auto fail = [&](absl::string_view why) {
    std::string msg = absl::StrCat("database ", path, ": ", why, db ? absl::StrCat(" (", sqlite3_errmsg(db), ")") : "");
    if (db) sqlite3_close_v2(db);  // also frees it while statements are still open
    return absl::FailedPreconditionError(msg);
  };
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                      nullptr) != SQLITE_OK) {
    return fail("cannot open");
  }
  sqlite3_busy_timeout(db, static_cast<int>(absl::ToInt64Milliseconds(options.busy_timeout)));
  // Reading the header fails at once on a file that is not a database.
  if (!Exec(db, "PRAGMA journal_mode=WAL;").ok()) return fail("not an SQLite database, or unreadable");
  if (!Exec(db, "PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=OFF;").ok()) return fail("cannot configure");
  {
    Stmt check(db, "PRAGMA quick_check;");
    if (!check.ok() || sqlite3_step(check.get()) != SQLITE_ROW) return fail("integrity check could not run");
    const std::string result = check.ColText(0);
    if (result != "ok") return fail(absl::StrCat("integrity check failed: ", result));
  }
  // The file's version first: one this coordinator does not know is refused
  // before anything in the file changes (and before the check for foreign
  // tables, which a newer version may have added). "" for a new file.
  std::string version;
  {
    Stmt has_meta(db, "SELECT count(*) FROM sqlite_master WHERE type='table' AND name='meta';");
    if (!has_meta.ok() || sqlite3_step(has_meta.get()) != SQLITE_ROW) return fail("cannot read the schema");
    if (has_meta.ColInt(0) > 0) {
      Stmt read(db, "SELECT value FROM meta WHERE key='schema_version';");
      if (!read.ok()) return fail("cannot read the schema version");
      if (sqlite3_step(read.get()) == SQLITE_ROW) version = read.ColText(0);
    }
    if (!version.empty() && version != "1" && version != "2" && version != "3" &&
        version != std::to_string(kSchemaVersion)) {
      return fail(absl::StrCat("has schema version ", version, "; this coordinator understands 1 to ", kSchemaVersion));
    }
  }
  // A database of someone else's: tables but no busyfleet meta.
  {
    Stmt tables(db, "SELECT count(*) FROM sqlite_master WHERE type='table' AND name NOT IN ('meta','jobs','tasks','task_chunks','task_chunks_v2');");
    if (!tables.ok() || sqlite3_step(tables.get()) != SQLITE_ROW) return fail("cannot read the schema");
    if (tables.ColInt(0) > 0) return fail("is not a busyfleet database (it has other tables)");
  }
  // Version 2's task_chunks (WITHOUT ROWID) becomes task_chunks_v2, a
  // rename of the table alone; kSchema then makes the new one. Decided by the
  // table's layout, not the version, so a crash between the two is mended
  // on the next start.
  {
    Stmt layout(db, "SELECT count(*) FROM sqlite_master WHERE type='table' AND name='task_chunks' AND "
                    "sql LIKE '%WITHOUT ROWID%';");
    if (!layout.ok() || sqlite3_step(layout.get()) != SQLITE_ROW) return fail("cannot read the schema");
    if (layout.ColInt(0) > 0 &&
        !Exec(db, "BEGIN IMMEDIATE; ALTER TABLE task_chunks RENAME TO task_chunks_v2; COMMIT;").ok()) {
      Exec(db, "ROLLBACK;").IgnoreError();
      return fail("cannot keep version 2's task chunks as task_chunks_v2");
    }
  }
  if (!Exec(db, kSchema).ok()) return fail("cannot create the schema");
  // Columns added since version 1 first shipped, added to older files
  // (tasks_total NULL there: counted from the task rows when read; the
  // others take their defaults). Older coordinators ignore them.
  for (const auto& [table, column, declaration] :
       {std::tuple{"jobs", "tasks_total", "INTEGER"},
        std::tuple{"jobs", "backups_cancelled", "INTEGER NOT NULL DEFAULT 0"},
        std::tuple{"tasks", "start_cpu", "INTEGER NOT NULL DEFAULT -1"},
        std::tuple{"tasks", "end_cpu", "INTEGER NOT NULL DEFAULT -1"},
        std::tuple{"tasks", "migrated", "INTEGER NOT NULL DEFAULT 0"},
        std::tuple{"tasks", "bound_cpus", "TEXT NOT NULL DEFAULT ''"},
        std::tuple{"tasks", "calibrated_rate", "REAL NOT NULL DEFAULT 0"},
        // v1.Interference, serialized; empty: not measured.
        std::tuple{"tasks", "interference", "BLOB NOT NULL DEFAULT x''"}}) {
    const std::string probe_sql = absl::StrCat("SELECT ", column, " FROM ", table, " LIMIT 0;");
    Stmt probe(db, probe_sql.c_str());
    if (probe.ok()) continue;
    const std::string add = absl::StrCat("ALTER TABLE ", table, " ADD COLUMN ", column, " ", declaration, ";");
    if (!Exec(db, add.c_str()).ok()) return fail(absl::StrCat("cannot add ", table, ".", column));
  }
  if (!version.empty()) {
    if (version != std::to_string(kSchemaVersion) &&
        !Exec(db, absl::StrCat("UPDATE meta SET value='", kSchemaVersion, "' WHERE key='schema_version';").c_str())
             .ok()) {
      return fail(absl::StrCat("cannot mark the schema version ", kSchemaVersion));
    }
  } else {
    Stmt set(db, "INSERT INTO meta (key, value) VALUES ('schema_version', ?);");
    set.Text(1, std::to_string(kSchemaVersion));
    if (!set.ok() || sqlite3_step(set.get()) != SQLITE_DONE) return fail("cannot write the schema version");
  }
  // Reads get a connection of their own: in WAL mode they then never wait
  // for the writer's transaction (a million-row commit takes seconds), so
  // `coordctl jobs` and reports of old jobs answer while it runs.
  sqlite3* read_db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &read_db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nullptr) != SQLITE_OK ||
      !Exec(read_db, "PRAGMA query_only=1;").ok()) {
    const std::string why = read_db ? sqlite3_errmsg(read_db) : "out of memory";
    if (read_db) sqlite3_close_v2(read_db);
    return fail(absl::StrCat("cannot open a second connection for reads (", why, ")"));
  }
  sqlite3_busy_timeout(read_db, static_cast<int>(absl::ToInt64Milliseconds(options.busy_timeout)));
  // Jobs deleted before a crash or a stop whose rows are not all purged yet.
  uint64_t purge_rows = 0;
  {
    Stmt left(db, "SELECT COALESCE(SUM(CAST(value AS INTEGER)), 0), count(*) FROM meta WHERE key LIKE 'purge:%';");
    if (!left.ok() || sqlite3_step(left.get()) != SQLITE_ROW) return fail("cannot read the jobs to purge");
    purge_rows = static_cast<uint64_t>(left.ColInt(0)) + static_cast<uint64_t>(left.ColInt(1));
  }
  return std::unique_ptr<SqliteJobStore>(new SqliteJobStore(db, read_db, path, options, purge_rows));
}

SqliteJobStore::SqliteJobStore(sqlite3* db, sqlite3* read_db, std::string path, Options options, uint64_t purge_rows)
    : path_(std::move(path)), options_(options), db_(db), read_db_(read_db) {
  {
    absl::MutexLock lock(&mu_);
    purge_rows_ = purge_rows;
    purge_pending_ = purge_rows > 0;
  }
  writer_ = std::thread([this] { WriterLoop(); });
}

SqliteJobStore::~SqliteJobStore() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  writer_.join();
  {
    absl::MutexLock lock(&db_mu_);
    writes_.reset();  // statements are finalised before the connection closes
    sqlite3_close(db_);
  }
  absl::MutexLock lock(&read_mu_);
  sqlite3_close(read_db_);
}

absl::Status SqliteJobStore::Unwritable() const {
  return absl::UnavailableError(absl::StrCat(cause_, "; ", writing_rows_ + pending_.Rows(),
                                             " rows wait to be written (retrying)"));
}

absl::Status SqliteJobStore::CreateJob(const JobRecord& job) {
  absl::MutexLock lock(&mu_);
  if (!writable_) return Unwritable();
  // A task never assigned needs no row (schema version 2): the header's
  // task count and spec say what it is. A new job is one row to write, not
  // a million, and no pass over its table under the coordinator's lock
  // (JobStore::CreateJob: its tasks are all fresh).
  assert(std::all_of(job.tasks.begin(), job.tasks.end(), [](const TaskRecord& t) {
    return t.state == v1::TASK_STATE_QUEUED && t.current.number == 0;
  }) && "CreateJob with a task already assigned: its row comes with SaveJob");
  CopyJobHeader(job, &pending_.headers[job.id]);
  queued_rows_ += 1;
  UpdateBacklogged();
  return absl::OkStatus();
}

absl::Status SqliteJobStore::SaveJob(const JobRecord& job, const std::vector<uint32_t>& changed_tasks) {
  // Also while the store cannot write: the rows wait in the backlog.
  absl::MutexLock lock(&mu_);
  auto [header, added] = pending_.headers.try_emplace(job.id);
  // The spec (a protobuf) is copied once per batch, not on every change.
  if (added) {
    CopyJobHeader(job, &header->second);
  } else {
    CopyJobProgress(job, &header->second);
  }
  // Rows in memory: a task whose row is still queued has it replaced.
  queued_rows_ += 1;
  if (!changed_tasks.empty()) {
    // The job's logs, made when a row first goes in (most saves carry
    // only results, no deal).
    TaskRowLog* rows = nullptr;
    DealtRowLog* dealt = nullptr;
    if (auto it = pending_.dealt.find(job.id); it != pending_.dealt.end()) dealt = &it->second;
    auto aged_it = pending_.aged.find(job.id);
    DealtRowLog* aged = aged_it == pending_.aged.end() ? nullptr : &aged_it->second;
    auto drop = [&](DealtRowLog* log, uint32_t i) {
      if (log != nullptr && log->Drop(i) && queued_rows_ > 0) --queued_rows_;
    };
    for (const uint32_t i : changed_tasks) {
      if (i >= job.tasks.size()) continue;
      const TaskRecord& t = job.tasks[i];
      // A newer row of the task replaces (or drops) the one it has waiting.
      drop(aged, i);
      if (DealtRow::Fits(t) && (dealt == nullptr || dealt->StaysIndexedWith(i))) {
        if (dealt == nullptr) dealt = &pending_.dealt[job.id];
        if (dealt->Add(t)) ++queued_rows_;
        continue;
      }
      drop(dealt, i);
      if (rows == nullptr) rows = &pending_.tasks[job.id];
      if (rows->Add(t)) ++queued_rows_;
    }
  }
  UpdateBacklogged();
  return absl::OkStatus();
}

bool SqliteJobStore::UpdateBacklogged() {
  const bool now = writing_rows_ + queued_rows_ > options_.max_backlog_rows;
  return backlogged_.exchange(now, std::memory_order_relaxed) && !now;
}

uint64_t SqliteJobStore::Pending::Rows() const {
  uint64_t rows = headers.size() + deletes.size();
  for (const auto& [id, changed] : tasks) rows += changed.live();
  for (const auto* logs : {&dealt, &aged}) {
    for (const auto& [id, changed] : *logs) rows += changed.live();
  }
  return rows;
}

bool SqliteJobStore::TakeBatch(Pending* batch, bool committed, bool* purge) {
  absl::MutexLock lock(&mu_);
  // Group commit: let a few milliseconds of changes gather into one
  // transaction (a busy coordinator changes thousands of rows a second;
  // a transaction each would cost the dispatch path its CPU). After a
  // commit this thread naps first rather than waiting for the next
  // change, so a busy coordinator never wakes it on its dispatch path.
  auto stop = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_ || flush_waiters_ > 0; };
  if (committed) mu_.AwaitWithTimeout(absl::Condition(&stop), kGroupCommitDelay);
  if (pending_.empty() && !purge_pending_) {
    // Idle: the first change wakes it, then the rest gather.
    auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return stopping_ || !pending_.empty() || purge_pending_;
    };
    mu_.Await(absl::Condition(&ready));
    if (pending_.empty() && stopping_) return false;
    mu_.AwaitWithTimeout(absl::Condition(&stop), kGroupCommitDelay);
  }
  // Stopping: what is queued is written; purging goes on at the next start.
  if (pending_.empty() && stopping_) return false;
  std::swap(*batch, pending_);
  // This window's dealt rows wait for the next batch (Pending), unless
  // someone waits for everything (Flush, LoadJob) or the store stops.
  if (!stopping_ && flush_waiters_ == 0) {
    pending_.aged.swap(batch->dealt);
  }
  // A transaction that only purges deleted jobs' rows writes nothing anyone
  // waits for: Flush does not wait for it (or it could wait out a whole
  // million-row purge).
  writing_ = !batch->empty();
  writing_rows_ = batch->Rows();
  // Backlogged stays as it is until this batch commits (Committed turns it
  // off and tells the observer).
  queued_rows_ = 0;
  for (const auto& [id, rows] : pending_.aged) queued_rows_ += rows.live();
  for (const auto& [id, header] : batch->headers) writing_ids_.insert(id);
  for (const auto& [id, tasks] : batch->tasks) writing_ids_.insert(id);
  for (const auto& [id, tasks] : batch->dealt) writing_ids_.insert(id);
  for (const auto& [id, tasks] : batch->aged) writing_ids_.insert(id);
  for (const std::string& id : batch->deletes) writing_ids_.insert(id);
  *purge = purge_pending_;
  return true;
}

bool SqliteJobStore::WaitToRetry(absl::Duration backoff) {
  absl::MutexLock lock(&mu_);
  auto stop = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_; };
  mu_.AwaitWithTimeout(absl::Condition(&stop), backoff);
  return !stopping_;
}

void SqliteJobStore::WriterLoop() {
  bool committed = false;  // the last round wrote something
  for (;;) {
    Pending batch;
    bool purge = false;
    if (!TakeBatch(&batch, committed, &purge)) return;
    if (batch.empty() && !purge) {
      // Only dealt rows were queued: they wait for the next batch.
      committed = true;
      continue;
    }
    // The same batch until it commits: dropping it would lose results
    // already reported, and committing later batches first could leave a
    // job's header newer than its rows.
    absl::Duration backoff = options_.retry_initial;
    for (;;) {
      absl::Status status;
      CommitEffects effects;
      {
        absl::MutexLock db_lock(&db_mu_);
        status = Commit(batch, purge, &effects);
      }
      Committed(status, effects);
      if (status.ok()) break;
      // Stopping while the store cannot write: the batch is lost, as in a
      // crash (its tasks run again after the restart).
      if (!WaitToRetry(backoff)) return;
      backoff = std::min(backoff * 2, options_.retry_max);
    }
    committed = true;
  }
}

void SqliteJobStore::Committed(const absl::Status& status, const CommitEffects& effects) {
  StoreHealth health;
  bool tell = false;
  {
    absl::MutexLock lock(&mu_);
    if (status.ok()) {
      jobs_deleted_ += effects.jobs_deleted;
      purge_rows_ += effects.purge_rows_added;
      purge_rows_ -= std::min(purge_rows_, effects.rows_purged);
      purge_pending_ = effects.purge_left || effects.jobs_deleted > 0;
      if (!purge_pending_) purge_rows_ = 0;
      writing_ = false;
      writing_ids_.clear();
      writing_rows_ = 0;
      ++commits_;
      // The coordinator waits for this to start tasks again.
      tell = UpdateBacklogged() || !writable_;
      writable_ = true;
      cause_.clear();
    } else {
      ++write_failures_;
      if (writable_) unwritable_since_ = absl::Now();
      writable_ = false;
      cause_ = absl::StrCat("database ", path_, " cannot be written: ", status.message());
      tell = true;
    }
  }
  if (!tell) return;
  health = Health();
  absl::MutexLock lock(&observer_mu_);
  if (observer_) observer_(health);
}

StoreHealth SqliteJobStore::Health() const {
  absl::MutexLock lock(&mu_);
  StoreHealth h;
  h.writable = writable_;
  h.cause = cause_;
  h.backlog_rows = writing_rows_ + pending_.Rows();
  h.commits = commits_;
  h.write_failures = write_failures_;
  h.unwritable_since_unix_ns = writable_ ? 0 : absl::ToUnixNanos(unwritable_since_);
  h.jobs_deleted = jobs_deleted_;
  h.purge_rows = purge_rows_;
  return h;
}

void SqliteJobStore::SetHealthObserver(HealthObserver observer) {
  absl::MutexLock lock(&observer_mu_);
  observer_ = std::move(observer);
}

absl::Status SqliteJobStore::Commit(const Pending& batch, bool purge, CommitEffects* effects) {
  absl::Status status = CommitOnce(batch, purge, effects);
  // A failed step or COMMIT (SQLITE_BUSY, SQLITE_FULL) can leave the
  // transaction open: roll it back so the retry starts clean.
  if (!status.ok() && sqlite3_get_autocommit(db_) == 0) Exec(db_, "ROLLBACK;").IgnoreError();
  return status;
}

absl::Status SqliteJobStore::CommitOnce(const Pending& batch, bool purge, CommitEffects* effects) {
  if (auto s = Exec(db_, "BEGIN IMMEDIATE;"); !s.ok()) return s;
  // Prepared once: parsing the two statements cost more than a small batch.
  if (writes_ == nullptr) {
    auto writes = std::make_unique<WriteStatements>(db_);
    if (!writes->job.ok() || !writes->chunk.ok()) {
      Exec(db_, "ROLLBACK;").IgnoreError();
      return SqlError(db_, "prepare");
    }
    // Chunks after those already in the file (this transaction holds the
    // write lock: no other writer can add one meanwhile).
    Stmt seq(db_, "SELECT MAX((SELECT COALESCE(MAX(seq), 0) FROM task_chunks), "
                  "(SELECT COALESCE(MAX(seq), 0) FROM task_chunks_v2)) + 1;");
    if (!seq.ok() || sqlite3_step(seq.get()) != SQLITE_ROW) {
      absl::Status s = SqlError(db_, "reading the last task chunk");
      Exec(db_, "ROLLBACK;").IgnoreError();
      return s;
    }
    next_chunk_seq_ = std::max(next_chunk_seq_, seq.ColInt(0));
    writes_ = std::move(writes);
  }
  BF_RETURN_IF_ERROR(WriteHeaders(batch));
  BF_RETURN_IF_ERROR(WriteChangedTasks(batch));
  sqlite3_reset(writes_->job.get());
  sqlite3_reset(writes_->chunk.get());
  BF_RETURN_IF_ERROR(DeleteQueued(batch, effects));
  // The rows of jobs deleted in this very batch start going at once too; as
  // many as the batch writes, so that purging keeps pace with a busy
  // coordinator's writes.
  if (purge || effects->jobs_deleted > 0) {
    const int64_t budget = std::max<int64_t>(options_.purge_batch_rows, static_cast<int64_t>(batch.Rows()));
    BF_RETURN_IF_ERROR(PurgeSome(budget, effects));
  }
  return Exec(db_, "COMMIT;");
}

absl::Status SqliteJobStore::DeleteQueued(const Pending& batch, CommitEffects* effects) {
  if (batch.deletes.empty()) return absl::OkStatus();
  Stmt count(db_, "SELECT COALESCE(tasks_total, (SELECT count(*) FROM tasks WHERE job_id = ?1)) FROM jobs WHERE id = ?1;");
  Stmt header(db_, "DELETE FROM jobs WHERE id = ?;");
  Stmt mark(db_, "INSERT OR REPLACE INTO meta (key, value) VALUES ('purge:' || ?, ?);");
  if (!count.ok() || !header.ok() || !mark.ok()) return SqlError(db_, "deleting a job");
  for (const std::string& id : batch.deletes) {
    sqlite3_reset(count.get());
    count.Text(1, id);
    const int rc = sqlite3_step(count.get());
    if (rc == SQLITE_DONE) continue;  // deleted already
    if (rc != SQLITE_ROW) return SqlError(db_, "deleting a job");
    const int64_t rows = count.ColInt(0);
    sqlite3_reset(header.get());
    header.Text(1, id);
    BF_RETURN_IF_ERROR(StepOrRollback(db_, header, "deleting a job"));
    sqlite3_reset(mark.get());
    mark.Text(1, id);
    mark.Text(2, std::to_string(rows));
    BF_RETURN_IF_ERROR(StepOrRollback(db_, mark, "deleting a job"));
    ++effects->jobs_deleted;
    effects->purge_rows_added += static_cast<uint64_t>(rows);
  }
  return absl::OkStatus();
}

absl::Status SqliteJobStore::PurgeSome(int64_t budget, CommitEffects* effects) {
  Stmt next(db_, "SELECT key, substr(key, 7) FROM meta WHERE key LIKE 'purge:%' LIMIT 1;");
  Stmt rows(db_, R"sql(DELETE FROM tasks WHERE job_id = ?1 AND idx IN
                         (SELECT idx FROM tasks WHERE job_id = ?1 ORDER BY idx LIMIT ?2);)sql");
  // Chunks go whole, oldest first, each counting its rows.
  // Each with the table it is in (v2: task_chunks_v2, which holds only
  // older ones), so that it is deleted there alone.
  Stmt chunk_list(db_, R"sql(SELECT seq, rows, v2 FROM
                                (SELECT seq, rows, 1 AS v2 FROM task_chunks_v2 WHERE job_id = ?1
                                 UNION ALL SELECT seq, rows, 0 AS v2 FROM task_chunks WHERE job_id = ?1)
                              ORDER BY seq LIMIT ?2;)sql");
  Stmt chunk_delete(db_, R"sql(DELETE FROM task_chunks WHERE job_id = ?1 AND seq = ?2;)sql");
  Stmt chunk_delete_v2(db_, R"sql(DELETE FROM task_chunks_v2 WHERE job_id = ?1 AND seq = ?2;)sql");
  Stmt done(db_, "DELETE FROM meta WHERE key = ?;");
  if (!next.ok() || !rows.ok() || !done.ok() || !chunk_list.ok() || !chunk_delete.ok() || !chunk_delete_v2.ok()) {
    return SqlError(db_, "purging deleted jobs");
  }
  while (budget > 0) {
    sqlite3_reset(next.get());
    const int rc = sqlite3_step(next.get());
    if (rc == SQLITE_DONE) return absl::OkStatus();  // nothing left
    if (rc != SQLITE_ROW) return SqlError(db_, "purging deleted jobs");
    const std::string key = next.ColText(0);
    sqlite3_reset(rows.get());
    rows.Text(1, next.ColText(1));
    rows.Int(2, budget);
    BF_RETURN_IF_ERROR(StepOrRollback(db_, rows, "purging deleted jobs"));
    int64_t removed = sqlite3_changes(db_);
    budget -= removed;
    if (budget > 0) {
      const std::string job_id = next.ColText(1);
      std::vector<std::pair<int64_t, bool>> seqs;  // (seq, in task_chunks_v2)
      sqlite3_reset(chunk_list.get());
      chunk_list.Text(1, job_id);
      chunk_list.Int(2, budget);
      int rc_list = SQLITE_DONE;
      while (budget > 0 && (rc_list = sqlite3_step(chunk_list.get())) == SQLITE_ROW) {
        seqs.emplace_back(chunk_list.ColInt(0), chunk_list.ColInt(2) != 0);
        const int64_t chunk_rows = std::max<int64_t>(chunk_list.ColInt(1), 1);
        removed += chunk_rows;
        budget -= chunk_rows;
      }
      if (rc_list != SQLITE_ROW && rc_list != SQLITE_DONE) {
        absl::Status s = SqlError(db_, "purging deleted jobs");
        Exec(db_, "ROLLBACK;").IgnoreError();
        return s;
      }
      sqlite3_reset(chunk_list.get());
      for (const auto& [seq, v2] : seqs) {
        Stmt& del = v2 ? chunk_delete_v2 : chunk_delete;
        sqlite3_reset(del.get());
        del.Text(1, job_id);
        del.Int(2, seq);
        BF_RETURN_IF_ERROR(StepOrRollback(db_, del, "purging deleted jobs"));
      }
    }
    effects->rows_purged += static_cast<uint64_t>(removed);
    if (removed > 0 && budget <= 0) break;  // perhaps more of this job
    sqlite3_reset(done.get());
    done.Text(1, key);
    BF_RETURN_IF_ERROR(StepOrRollback(db_, done, "purging deleted jobs"));
    --budget;  // so that a run of empty jobs ends too
  }
  effects->purge_left = true;
  return absl::OkStatus();
}

absl::Status SqliteJobStore::WriteHeaders(const Pending& batch) {
  Stmt& job = writes_->job;
  for (const auto& [id, j] : batch.headers) {
    sqlite3_reset(job.get());
    job.Text(1, id);
    job.Blob(2, j.spec.SerializeAsString());
    job.Int(3, j.state);
    job.Text(4, j.error);
    job.Time(5, j.submitted_at);
    job.Time(6, j.finished_at);
    job.Int(7, j.succeeded);
    job.Int(8, j.failed);
    job.Int(9, j.cancelled);
    job.Int(10, j.retries);
    job.Int(11, j.duplicates);
    job.Int(12, static_cast<int64_t>(j.iterations_total));
    job.Int(13, static_cast<int64_t>(j.iterations_done));
    job.Int(14, j.backups);
    job.Int(15, j.backups_won);
    job.Int(16, j.total_tasks());
    job.Int(17, j.backups_cancelled);
    BF_RETURN_IF_ERROR(StepOrRollback(db_, job, "saving a job"));
  }
  return absl::OkStatus();
}

namespace {
const TaskRow& AsTaskRow(const TaskRow& row) { return row; }
TaskRow AsTaskRow(const DealtRow& row) { return TaskRow(row); }
}  // namespace

absl::Status SqliteJobStore::WriteChangedTasks(const Pending& batch) {
  Stmt& chunk = writes_->chunk;
  TaskChunkWriter writer;
  auto write = [&](const std::string& job_id) {
    const size_t rows = writer.rows();
    const uint32_t first = writer.first_index();
    const uint32_t last = writer.last_index();
    sqlite3_reset(chunk.get());
    chunk.Text(1, job_id);
    chunk.Int(2, next_chunk_seq_++);
    chunk.Int(3, first);
    chunk.Int(4, last);
    chunk.Int(5, static_cast<int64_t>(rows));
    chunk.Blob(6, writer.Take());
    return StepOrRollback(db_, chunk, "saving tasks");
  };
  auto write_logs = [&](const auto& logs) {
    for (const auto& job_rows : logs) {
      const std::string& job_id = job_rows.first;  // named: a lambda below uses them
      const auto& rows = job_rows.second;
      // Each task once, its newest row (the last saved), in index order.
      BF_RETURN_IF_ERROR(ForEachNewestRow(rows, [&](uint32_t p) {
        writer.Add(AsTaskRow(rows[p]));
        return writer.rows() == kChunkRows ? write(job_id) : absl::OkStatus();
      }));
      if (writer.rows() > 0) BF_RETURN_IF_ERROR(write(job_id));
    }
    return absl::OkStatus();
  };
  // The window before's dealt rows, then the changed rows, then (taken
  // whole) this window's dealt rows: each task's rows in the order saved,
  // so its newest gets the highest seq (Pending).
  BF_RETURN_IF_ERROR(write_logs(batch.aged));
  BF_RETURN_IF_ERROR(write_logs(batch.tasks));
  return write_logs(batch.dealt);
}

absl::Status SqliteJobStore::Flush() const {
  absl::MutexLock lock(&mu_);
  ++flush_waiters_;  // no group-commit delay while someone waits
  auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return (pending_.empty() && !writing_) || !writable_; };
  mu_.Await(absl::Condition(&idle));
  --flush_waiters_;
  if (!writable_) return Unwritable();
  return absl::OkStatus();
}

uint64_t SqliteJobStore::commits() const {
  absl::MutexLock lock(&mu_);
  return commits_;
}

absl::StatusOr<JobRecord> SqliteJobStore::LoadJobLocked(const std::string& id) const {
  Stmt job(read_db_, R"sql(SELECT spec, state, error, submitted_ns, finished_ns, succeeded, failed, cancelled,
                             retries, duplicates, iterations_total, iterations_done, backups, backups_won,
                             backups_cancelled, COALESCE(tasks_total, (SELECT count(*) FROM tasks WHERE job_id = ?1))
                      FROM jobs WHERE id = ?1;)sql");
  if (!job.ok()) return SqlError(read_db_, "loading a job");
  job.Text(1, id);
  const int rc = sqlite3_step(job.get());
  if (rc == SQLITE_DONE) return absl::NotFoundError(absl::StrCat("job ", id, " not found"));
  if (rc != SQLITE_ROW) return SqlError(read_db_, "loading a job");
  JobRecord r;
  r.id = id;
  if (!r.spec.ParseFromString(job.ColBlob(0))) {
    return absl::DataLossError(absl::StrCat("database ", path_, ": job ", id, " has an unreadable spec"));
  }
  ReadHeaderColumns(job, 1, &r);
  // Every task starts queued, as submitted; the rows say what became of
  // those that were ever assigned (schema version 2 writes no other).
  const int64_t total = job.ColInt(15);
  if (total < 0 || total > static_cast<int64_t>(limits::kMaxTasksPerJob)) {
    return absl::DataLossError(absl::StrCat("database ", path_, ": job ", id, " has ", total, " tasks (at most ",
                                            limits::kMaxTasksPerJob, ")"));
  }
  NewTaskTable(r.tasks, static_cast<uint32_t>(total));

  Stmt tasks(read_db_, R"sql(SELECT idx, iterations, duration_ns, state, attempt, worker, host, slot, assigned_ns,
      started_ns, ended_ns, result_ns, cpu_ns, iterations_done, error, failures, speculated, backup_won,
      start_cpu, end_cpu, migrated, bound_cpus, calibrated_rate, interference
      FROM tasks WHERE job_id = ? ORDER BY idx;)sql");
  if (!tasks.ok()) return SqlError(read_db_, "loading tasks");
  tasks.Text(1, id);
  while (sqlite3_step(tasks.get()) == SQLITE_ROW) {
    TaskRecord t;
    t.index = static_cast<uint32_t>(tasks.ColInt(0));
    // Columns 1 and 2, its iterations and duration, are the job's split
    // (JobRecord::task_iterations, task_duration).
    t.state = static_cast<v1::TaskState>(tasks.ColInt(3));
    t.current.number = static_cast<uint32_t>(tasks.ColInt(4));
    t.current.worker = tasks.ColText(5);
    t.current.host = tasks.ColText(6);
    t.current.slot = static_cast<uint32_t>(tasks.ColInt(7));
    t.current.assigned_at = tasks.ColTime(8);
    t.current.started_at = tasks.ColTime(9);
    t.current.ended_at = tasks.ColTime(10);
    t.current.result_at = tasks.ColTime(11);
    t.current.cpu_ns = tasks.ColInt(12);
    t.current.iterations_done = static_cast<uint64_t>(tasks.ColInt(13));
    t.set_error(tasks.ColText(14));
    const std::string failures = tasks.ColText(15);
    if (!failures.empty()) t.mutable_failures() = absl::StrSplit(failures, '\n');
    t.speculated = tasks.ColInt(16) != 0;
    t.backup_won = tasks.ColInt(17) != 0;
    t.current.start_cpu = static_cast<int>(tasks.ColInt(18));
    t.current.end_cpu = static_cast<int>(tasks.ColInt(19));
    t.current.migrated = tasks.ColInt(20) != 0;
    t.current.bound_cpus = tasks.ColText(21);
    t.current.calibrated_rate = tasks.ColDouble(22);
    if (const std::string blob = tasks.ColBlob(23); !blob.empty()) {
      v1::Interference m;
      if (m.ParseFromString(blob)) t.set_interference(std::move(m));  // unreadable: not measured
    }
    if (t.index >= r.tasks.size()) {
      return absl::DataLossError(absl::StrCat("database ", path_, ": job ", id, " has a row for task ", t.index,
                                              " of ", r.tasks.size()));
    }
    r.tasks[t.index] = std::move(t);
  }
  // Then the chunks, oldest first: each is newer than any version 1 row,
  // and those of version 2 (task_chunks_v2) are older than any since.
  const std::string where = absl::StrCat("database ", path_, ": job ", id);
  for (const char* sql : {"SELECT data FROM task_chunks_v2 WHERE job_id = ? ORDER BY seq;",
                          "SELECT data FROM task_chunks WHERE job_id = ? ORDER BY seq;"}) {
    Stmt chunks(read_db_, sql);
    if (!chunks.ok()) return SqlError(read_db_, "loading tasks");
    chunks.Text(1, id);
    int rc_chunk;
    while ((rc_chunk = sqlite3_step(chunks.get())) == SQLITE_ROW) {
      BF_RETURN_IF_ERROR(ApplyTaskChunk(chunks.ColBlob(0), where, r.tasks));
    }
    if (rc_chunk != SQLITE_DONE) return SqlError(read_db_, "loading tasks");
  }
  for (const TaskRecord& t : r.tasks) {
    if (t.state == v1::TASK_STATE_RUNNING) ++r.running;
  }
  return r;
}

absl::StatusOr<JobRecord> SqliteJobStore::LoadJob(absl::string_view id) const {
  const std::string key(id);
  {
    // Only this job's rows need to be committed first (waiting for the
    // whole queue could take forever on a busy coordinator).
    absl::MutexLock lock(&mu_);
    ++flush_waiters_;
    auto settled = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return (!pending_.Contains(key) && !writing_ids_.contains(key)) || !writable_;
    };
    mu_.Await(absl::Condition(&settled));
    --flush_waiters_;
    if (pending_.Contains(key) || writing_ids_.contains(key)) return Unwritable();
  }
  absl::MutexLock lock(&read_mu_);
  return LoadJobLocked(std::string(id));
}

absl::StatusOr<bool> SqliteJobStore::HasJob(absl::string_view id) const {
  {
    absl::MutexLock lock(&mu_);
    if (pending_.deletes.contains(std::string(id))) return false;
    if (pending_.headers.contains(std::string(id)) || writing_ids_.contains(std::string(id))) return true;
  }
  absl::MutexLock lock(&read_mu_);
  Stmt q(read_db_, "SELECT 1 FROM jobs WHERE id = ?;");
  if (!q.ok()) return SqlError(read_db_, "looking up a job");
  q.Text(1, std::string(id));
  return sqlite3_step(q.get()) == SQLITE_ROW;
}

absl::StatusOr<std::vector<std::string>> SqliteJobStore::ListJobIds(size_t limit) const {
  if (auto s = Flush(); !s.ok()) return s;
  absl::MutexLock lock(&read_mu_);
  Stmt q(read_db_, "SELECT id FROM jobs ORDER BY seq DESC LIMIT ?;");
  if (!q.ok()) return SqlError(read_db_, "listing jobs");
  q.Int(1, static_cast<int64_t>(limit));
  std::vector<std::string> ids;
  while (sqlite3_step(q.get()) == SQLITE_ROW) ids.push_back(q.ColText(0));
  return ids;
}

namespace {

// Job headers as ListJobHeaders gives them: the SELECT's columns (after
// "SELECT "), and the rows of a query that selects them.
// tasks_total is NULL in rows written before the column existed.
constexpr const char* kHeaderColumns = R"sql(id, spec, state, error, submitted_ns, finished_ns, succeeded, failed,
    cancelled, retries, duplicates, iterations_total, iterations_done, backups, backups_won, backups_cancelled,
    COALESCE(tasks_total, (SELECT count(*) FROM tasks WHERE job_id = jobs.id)))sql";

absl::StatusOr<std::vector<JobRecord>> ReadHeaders(sqlite3* db, Stmt& q, const std::string& path) {
  std::vector<JobRecord> out;
  int rc;
  while ((rc = sqlite3_step(q.get())) == SQLITE_ROW) {
    JobRecord& r = out.emplace_back();
    r.id = q.ColText(0);
    if (!r.spec.ParseFromString(q.ColBlob(1))) {
      return absl::DataLossError(absl::StrCat("database ", path, ": job ", r.id, " has an unreadable spec"));
    }
    ReadHeaderColumns(q, 2, &r);
    r.task_count = static_cast<uint32_t>(q.ColInt(16));
  }
  if (rc != SQLITE_DONE) return SqlError(db, absl::StrCat("database ", path, ": listing jobs"));
  return out;
}

}  // namespace

absl::StatusOr<std::vector<JobRecord>> SqliteJobStore::ListJobHeaders(size_t limit) const {
  absl::MutexLock lock(&read_mu_);
  const std::string sql = absl::StrCat("SELECT ", kHeaderColumns, " FROM jobs ORDER BY seq DESC LIMIT ?;");
  Stmt q(read_db_, sql.c_str());
  if (!q.ok()) return SqlError(read_db_, absl::StrCat("database ", path_, ": listing jobs"));
  q.Int(1, static_cast<int64_t>(limit));
  return ReadHeaders(read_db_, q, path_);
}

absl::StatusOr<std::vector<JobRecord>> SqliteJobStore::ExpiredJobs(const RetentionRule& rule, size_t limit) const {
  if (rule.empty()) return std::vector<JobRecord>();
  std::set<std::string> deleting;
  {
    absl::MutexLock lock(&mu_);
    deleting = pending_.deletes;
    deleting.insert(writing_ids_.begin(), writing_ids_.end());
  }
  // Finished jobs older than the cutoff, or older than the keep_jobs-th
  // newest finished job; oldest first. A few more than `limit`, for those
  // whose delete is queued already.
  const std::string sql = absl::StrCat("SELECT ", kHeaderColumns, R"sql( FROM jobs
      WHERE state IN (?1, ?2, ?3) AND (finished_ns < ?4 OR (?5 > 0 AND seq < (
        SELECT seq FROM jobs WHERE state IN (?1, ?2, ?3) ORDER BY seq DESC LIMIT 1 OFFSET ?5 - 1)))
      ORDER BY seq LIMIT ?6;)sql");
  absl::MutexLock lock(&read_mu_);
  Stmt q(read_db_, sql.c_str());
  if (!q.ok()) return SqlError(read_db_, absl::StrCat("database ", path_, ": finding expired jobs"));
  q.Int(1, v1::JOB_STATE_SUCCEEDED);
  q.Int(2, v1::JOB_STATE_FAILED);
  q.Int(3, v1::JOB_STATE_CANCELLED);
  q.Int(4, rule.finished_before == absl::InfinitePast() ? INT64_MIN : absl::ToUnixNanos(rule.finished_before));
  q.Int(5, static_cast<int64_t>(rule.keep_jobs));
  q.Int(6, static_cast<int64_t>(limit + deleting.size()));
  BF_ASSIGN_OR_RETURN(std::vector<JobRecord> out, ReadHeaders(read_db_, q, path_));
  std::erase_if(out, [&](const JobRecord& j) { return deleting.contains(j.id); });
  if (out.size() > limit) out.resize(limit);
  return out;
}

absl::Status SqliteJobStore::DeleteJobs(const std::vector<std::string>& ids) {
  absl::MutexLock lock(&mu_);
  for (const std::string& id : ids) {
    pending_.headers.erase(id);
    pending_.tasks.erase(id);
    pending_.dealt.erase(id);
    pending_.aged.erase(id);
    pending_.deletes.insert(id);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<JobRecord>> SqliteJobStore::LoadUnfinished() const {
  if (auto s = Flush(); !s.ok()) return s;
  absl::MutexLock lock(&read_mu_);
  Stmt q(read_db_, "SELECT id FROM jobs WHERE state NOT IN (?, ?, ?) ORDER BY seq;");
  if (!q.ok()) return SqlError(read_db_, "listing unfinished jobs");
  q.Int(1, v1::JOB_STATE_SUCCEEDED);
  q.Int(2, v1::JOB_STATE_FAILED);
  q.Int(3, v1::JOB_STATE_CANCELLED);
  std::vector<std::string> ids;
  while (sqlite3_step(q.get()) == SQLITE_ROW) ids.push_back(q.ColText(0));
  std::vector<JobRecord> out;
  for (const std::string& id : ids) {
    auto job = LoadJobLocked(id);
    if (!job.ok()) return job.status();
    out.push_back(*std::move(job));
  }
  return out;
}

}  // namespace busyfleet::coordinator
