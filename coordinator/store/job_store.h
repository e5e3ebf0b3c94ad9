#ifndef BUSYFLEET_COORDINATOR_STORE_JOB_STORE_H_
#define BUSYFLEET_COORDINATOR_STORE_JOB_STORE_H_

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "coordinator/core/job_model.h"
#include "coordinator/core/metrics.h"

namespace busyfleet::coordinator {

// Which finished jobs retention removes (README, "Operating busyfleet"):
// those that finished before `finished_before` (InfinitePast: none by age),
// and those older than the newest `keep_jobs` finished ones (0: no cap).
// Jobs that have not finished are never removed.
struct RetentionRule {
  absl::Time finished_before = absl::InfinitePast();
  size_t keep_jobs = 0;
  bool empty() const { return finished_before == absl::InfinitePast() && keep_jobs == 0; }
};

// Where jobs, tasks and results are kept. Implementations are thread-safe.
// The coordinator writes through on every change and reads back at start-up
// (to resume unfinished jobs) and for jobs it no longer holds in memory.
class JobStore {
 public:
  virtual ~JobStore() = default;
  // AlreadyExists if the id is taken. The job's tasks are as NewTaskTable
  // made them (none assigned yet): their rows come with SaveJob.
  virtual absl::Status CreateJob(const JobRecord& job) = 0;
  // Saves the job's header (state, error, times, counters) and the given
  // tasks. NotFound for an unknown job.
  virtual absl::Status SaveJob(const JobRecord& job, const std::vector<uint32_t>& changed_tasks) = 0;
  // Whether SaveJob reads `changed_tasks` (false: it keeps only the job's
  // header, and the caller need not list the tasks that changed).
  virtual bool KeepsTaskRows() const { return true; }
  // NotFound for an unknown job.
  virtual absl::StatusOr<JobRecord> LoadJob(absl::string_view id) const = 0;
  // Whether a job with this id was ever created (cheap; for id uniqueness).
  virtual absl::StatusOr<bool> HasJob(absl::string_view id) const = 0;
  // Ids of jobs, newest first, at most `limit`.
  virtual absl::StatusOr<std::vector<std::string>> ListJobIds(size_t limit) const = 0;
  // Job headers (no task rows; `tasks` empty, `task_count` set), newest
  // first, at most `limit`. Reads what is committed without waiting for
  // queued writes: callers merge the jobs they hold in memory.
  virtual absl::StatusOr<std::vector<JobRecord>> ListJobHeaders(size_t limit) const = 0;
  // Every job not in a terminal state.
  virtual absl::StatusOr<std::vector<JobRecord>> LoadUnfinished() const = 0;
  // Headers (as ListJobHeaders) of the finished jobs `rule` removes, oldest
  // first, at most `limit`. Reads what is committed, without waiting.
  virtual absl::StatusOr<std::vector<JobRecord>> ExpiredJobs(const RetentionRule& rule, size_t limit) const = 0;
  // Removes these jobs and their task rows (unknown ids are skipped). The
  // caller only passes finished jobs it no longer holds, so no write for
  // them follows. Like writes, it is queued and returns at once: from then
  // on the jobs are gone for LoadJob and the listings; a durable store
  // deletes a big job's rows over several small transactions.
  virtual absl::Status DeleteJobs(const std::vector<std::string>& ids) = 0;
  // The coordinator no longer holds this finished job in memory (it was
  // saved already). A store that keeps no task rows of its own drops them:
  // the job's header stays for the listings, and LoadJob says it was dropped.
  virtual void TakeEvicted(JobRecord&& job) { (void)job; }
  // Whether it holds a row for each task saved until it writes it (a
  // durable store's write queue): every task in flight is one, so the
  // coordinator keeps fewer tiny tasks in flight (Scheduler::Options).
  virtual bool QueuesTaskRows() const { return false; }
  // Whether writes get through, and the backlog (cheap: no I/O).
  virtual StoreHealth Health() const { return {}; }
  // True while more rows wait to be written than the store lets gather
  // (writes slower than the coordinator changes tasks, or failing): the
  // coordinator then starts no new tasks, so memory stays bounded; the
  // health observer is told when it turns false again. Lock-free: called
  // on the dispatch path.
  virtual bool Backlogged() const { return false; }
  // Called (from the store's own thread, with no lock of the store held;
  // must not call back into the store) whenever a write attempt fails and
  // when the store becomes writable again. nullptr: none. After it returns,
  // the previous observer is no longer running.
  using HealthObserver = std::function<void(const StoreHealth&)>;
  virtual void SetHealthObserver(HealthObserver observer) { (void)observer; }
};

// Keeps everything in memory: for tests and `--db :memory:`.
class InMemoryJobStore : public JobStore {
 public:
  // `copy_task_rows` false (the daemon's `--db :memory:`): task rows are
  // never copied (which halves the memory of a million-task job): LoadJob
  // and LoadUnfinished see jobs the coordinator still holds without their
  // tasks, and a finished job the coordinator lets go of (TakeEvicted) is
  // dropped: its header stays for `coordctl jobs`, LoadJob says NotFound
  // naming the bound, Health().jobs_dropped counts it. So memory is bounded
  // by the coordinator's own bound on finished jobs.
  // True (tests): every saved row is copied, as a durable store would.
  explicit InMemoryJobStore(bool copy_task_rows = true) : copy_task_rows_(copy_task_rows) {}

  absl::Status CreateJob(const JobRecord& job) override;
  absl::Status SaveJob(const JobRecord& job, const std::vector<uint32_t>& changed_tasks) override;
  bool KeepsTaskRows() const override { return copy_task_rows_; }
  absl::StatusOr<JobRecord> LoadJob(absl::string_view id) const override;
  absl::StatusOr<bool> HasJob(absl::string_view id) const override;
  absl::StatusOr<std::vector<std::string>> ListJobIds(size_t limit) const override;
  absl::StatusOr<std::vector<JobRecord>> ListJobHeaders(size_t limit) const override;
  absl::StatusOr<std::vector<JobRecord>> LoadUnfinished() const override;
  absl::StatusOr<std::vector<JobRecord>> ExpiredJobs(const RetentionRule& rule, size_t limit) const override;
  absl::Status DeleteJobs(const std::vector<std::string>& ids) override;
  void TakeEvicted(JobRecord&& job) override;
  StoreHealth Health() const override;

 private:
  struct Kept {
    JobRecord job;
    bool dropped = false;  // TakeEvicted took its rows away
  };
  const bool copy_task_rows_;
  mutable absl::Mutex mu_;
  std::map<std::string, Kept> jobs_ ABSL_GUARDED_BY(mu_);
  // Creation order: ids with a sequence number (a map, so that deleting
  // from the middle is cheap).
  std::map<uint64_t, std::string> order_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, uint64_t> order_of_ ABSL_GUARDED_BY(mu_);
  uint64_t next_order_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t jobs_dropped_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t jobs_deleted_ ABSL_GUARDED_BY(mu_) = 0;
};

// The finished jobs among `newest_first` (headers, newest first) that `rule`
// removes, oldest first, at most `limit`: shared by the stores.
std::vector<JobRecord> SelectExpired(std::vector<JobRecord> newest_first, const RetentionRule& rule, size_t limit);

}  // namespace busyfleet::coordinator

#endif  // BUSYFLEET_COORDINATOR_STORE_JOB_STORE_H_
