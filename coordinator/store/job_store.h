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

// Where jobs, tasks and results are kept. Implementations are thread-safe.
// The coordinator writes through on every change and reads back at start-up
// (to resume unfinished jobs) and for jobs it no longer holds in memory.
class JobStore {
 public:
  virtual ~JobStore() = default;
  // AlreadyExists if the id is taken.
  virtual absl::Status CreateJob(const JobRecord& job) = 0;
  // Saves the job's header (state, error, times, counters) and the given
  // tasks. NotFound for an unknown job.
  virtual absl::Status SaveJob(const JobRecord& job, const std::vector<uint32_t>& changed_tasks) = 0;
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
  // The coordinator no longer holds this finished job in memory (it was
  // saved already): a store that keeps no task rows of its own may take them.
  virtual void TakeEvicted(JobRecord&& job) { (void)job; }
  // Whether writes get through, and the backlog (cheap: no I/O).
  virtual StoreHealth Health() const { return {}; }
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
  // `copy_task_rows` false (the daemon's `--db :memory:`): task rows are not
  // copied while the coordinator holds the job (which halves the memory of a
  // million-task job), only taken over when it is evicted; so LoadJob and
  // LoadUnfinished see jobs the coordinator still holds without their tasks.
  // True (tests): every saved row is copied, as a durable store would.
  explicit InMemoryJobStore(bool copy_task_rows = true) : copy_task_rows_(copy_task_rows) {}

  absl::Status CreateJob(const JobRecord& job) override;
  absl::Status SaveJob(const JobRecord& job, const std::vector<uint32_t>& changed_tasks) override;
  absl::StatusOr<JobRecord> LoadJob(absl::string_view id) const override;
  absl::StatusOr<bool> HasJob(absl::string_view id) const override;
  absl::StatusOr<std::vector<std::string>> ListJobIds(size_t limit) const override;
  absl::StatusOr<std::vector<JobRecord>> ListJobHeaders(size_t limit) const override;
  absl::StatusOr<std::vector<JobRecord>> LoadUnfinished() const override;
  void TakeEvicted(JobRecord&& job) override;

 private:
  const bool copy_task_rows_;
  mutable absl::Mutex mu_;
  std::map<std::string, JobRecord> jobs_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> order_ ABSL_GUARDED_BY(mu_);  // creation order
};

}  // namespace busyfleet::coordinator

#endif  // BUSYFLEET_COORDINATOR_STORE_JOB_STORE_H_
