#include "coordinator/store/job_store.h"

#include "absl/strings/str_cat.h"
#include "coordinator/core/limits.h"

namespace busyfleet::coordinator {

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

absl::StatusOr<std::vector<JobRecord>> InMemoryJobStore::ListJobHeaders(size_t limit) const {
  absl::MutexLock lock(&mu_);
  std::vector<JobRecord> out;
  for (auto it = order_.rbegin(); it != order_.rend() && out.size() < limit; ++it) {
    CopyJobHeader(jobs_.at(*it), &out.emplace_back());
  }
  return out;
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
