#include "coordinator/job_store.h"

#include "absl/strings/str_cat.h"
#include "coordinator/limits.h"

namespace busyfleet::coordinator {

uint32_t JobRecord::max_attempts() const {
  return spec.max_attempts() == 0 ? limits::kDefaultMaxAttempts : spec.max_attempts();
}

void CopyJobHeader(const JobRecord& from, JobRecord* to) {
  to->id = from.id;
  to->spec = from.spec;
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
  to->iterations_total = from.iterations_total;
  to->iterations_done = from.iterations_done;
}

absl::Status InMemoryJobStore::CreateJob(const JobRecord& job) {
  absl::MutexLock lock(&mu_);
  if (jobs_.contains(job.id)) return absl::AlreadyExistsError(absl::StrCat("job ", job.id, " already exists"));
  if (copy_task_rows_) {
    jobs_.emplace(job.id, job);
  } else {
    CopyJobHeader(job, &jobs_[job.id]);
  }
  order_.push_back(job.id);
  return absl::OkStatus();
}

absl::Status InMemoryJobStore::SaveJob(const JobRecord& job,
                                       const std::vector<uint32_t>& changed_tasks) {
  absl::MutexLock lock(&mu_);
  auto it = jobs_.find(job.id);
  if (it == jobs_.end()) return absl::NotFoundError(absl::StrCat("job ", job.id, " not found"));
  JobRecord& stored = it->second;
  CopyJobProgress(job, &stored);
  if (!copy_task_rows_) return absl::OkStatus();
  for (const uint32_t i : changed_tasks) {
    if (i < stored.tasks.size() && i < job.tasks.size()) stored.tasks[i] = job.tasks[i];
  }
  return absl::OkStatus();
}

void InMemoryJobStore::TakeEvicted(JobRecord&& job) {
  if (copy_task_rows_) return;
  absl::MutexLock lock(&mu_);
  auto it = jobs_.find(job.id);
  if (it != jobs_.end()) it->second = std::move(job);
}

absl::StatusOr<JobRecord> InMemoryJobStore::LoadJob(absl::string_view id) const {
  absl::MutexLock lock(&mu_);
  auto it = jobs_.find(std::string(id));
  if (it == jobs_.end()) return absl::NotFoundError(absl::StrCat("job ", id, " not found"));
  return it->second;
}

absl::StatusOr<bool> InMemoryJobStore::HasJob(absl::string_view id) const {
  absl::MutexLock lock(&mu_);
  return jobs_.contains(std::string(id));
}

absl::StatusOr<std::vector<std::string>> InMemoryJobStore::ListJobIds(size_t limit) const {
  absl::MutexLock lock(&mu_);
  std::vector<std::string> ids;
  for (auto it = order_.rbegin(); it != order_.rend() && ids.size() < limit; ++it) ids.push_back(*it);
  return ids;
}

absl::StatusOr<std::vector<JobRecord>> InMemoryJobStore::LoadUnfinished() const {
  absl::MutexLock lock(&mu_);
  std::vector<JobRecord> out;
  for (const std::string& id : order_) {
    const JobRecord& job = jobs_.at(id);
    if (!IsTerminal(job.state)) out.push_back(job);
  }
  return out;
}

}  // namespace busyfleet::coordinator
