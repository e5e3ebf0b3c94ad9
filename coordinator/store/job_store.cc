#include "coordinator/store/job_store.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "coordinator/core/enum_names.h"
#include "coordinator/core/limits.h"

namespace busyfleet::coordinator {

std::vector<JobRecord> SelectExpired(std::vector<JobRecord> newest_first, const RetentionRule& rule, size_t limit) {
  std::vector<JobRecord> out;
  size_t finished = 0;
  for (JobRecord& job : newest_first) {
    if (!IsTerminal(job.state)) continue;
    ++finished;
    const bool too_old = job.finished_at < rule.finished_before;
    const bool too_many = rule.keep_jobs > 0 && finished > rule.keep_jobs;
    if (too_old || too_many) out.push_back(std::move(job));
  }
  std::reverse(out.begin(), out.end());
  if (out.size() > limit) out.resize(limit);
  return out;
}

absl::Status InMemoryJobStore::CreateJob(const JobRecord& job) {
  absl::MutexLock lock(&mu_);
  if (jobs_.contains(job.id)) return absl::AlreadyExistsError(absl::StrCat("job ", job.id, " already exists"));
  if (copy_task_rows_) {
    jobs_[job.id].job = job;
  } else {
    CopyJobHeader(job, &jobs_[job.id].job);
  }
  order_[next_order_] = job.id;
  order_of_[job.id] = next_order_++;
  return absl::OkStatus();
}

absl::Status InMemoryJobStore::SaveJob(const JobRecord& job,
                                       const std::vector<uint32_t>& changed_tasks) {
  absl::MutexLock lock(&mu_);
  auto it = jobs_.find(job.id);
  if (it == jobs_.end()) return absl::NotFoundError(absl::StrCat("job ", job.id, " not found"));
  JobRecord& stored = it->second.job;
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
  if (it == jobs_.end() || it->second.dropped) return;
  // Nothing to read the rows back from: the job is dropped, its header
  // (with its task count) kept for the listings.
  it->second.job.task_count = job.total_tasks();
  it->second.dropped = true;
  ++jobs_dropped_;
}

absl::StatusOr<JobRecord> InMemoryJobStore::LoadJob(absl::string_view id) const {
  absl::MutexLock lock(&mu_);
  auto it = jobs_.find(std::string(id));
  if (it == jobs_.end()) return absl::NotFoundError(absl::StrCat("job ", id, " not found"));
  if (it->second.dropped) {
    const JobRecord& job = it->second.job;
    return absl::NotFoundError(absl::StrCat(
        "job ", id, " (", JobStateName(job.state), ", ", job.task_count,
        " tasks) was dropped from memory: with --db :memory: only the newest finished jobs are kept "
        "(--keep-finished-jobs, --keep-finished-tasks); run the coordinator with a --db file to keep every "
        "report"));
  }
  return it->second.job;
}

absl::StatusOr<bool> InMemoryJobStore::HasJob(absl::string_view id) const {
  absl::MutexLock lock(&mu_);
  return jobs_.contains(std::string(id));
}

absl::StatusOr<std::vector<std::string>> InMemoryJobStore::ListJobIds(size_t limit) const {
  absl::MutexLock lock(&mu_);
  std::vector<std::string> ids;
  for (auto it = order_.rbegin(); it != order_.rend() && ids.size() < limit; ++it) ids.push_back(it->second);
  return ids;
}

absl::StatusOr<std::vector<JobRecord>> InMemoryJobStore::ListJobHeaders(size_t limit) const {
  absl::MutexLock lock(&mu_);
  std::vector<JobRecord> out;
  for (auto it = order_.rbegin(); it != order_.rend() && out.size() < limit; ++it) {
    const JobRecord& job = jobs_.at(it->second).job;
    CopyJobHeader(job, &out.emplace_back());
  }
  return out;
}

absl::StatusOr<std::vector<JobRecord>> InMemoryJobStore::LoadUnfinished() const {
  absl::MutexLock lock(&mu_);
  std::vector<JobRecord> out;
  for (const auto& [order, id] : order_) {
    const JobRecord& job = jobs_.at(id).job;
    if (!IsTerminal(job.state)) out.push_back(job);
  }
  return out;
}

absl::StatusOr<std::vector<JobRecord>> InMemoryJobStore::ExpiredJobs(const RetentionRule& rule, size_t limit) const {
  if (rule.empty()) return std::vector<JobRecord>();
  BF_ASSIGN_OR_RETURN(std::vector<JobRecord> headers, ListJobHeaders(SIZE_MAX));
  return SelectExpired(std::move(headers), rule, limit);
}

absl::Status InMemoryJobStore::DeleteJobs(const std::vector<std::string>& ids) {
  absl::MutexLock lock(&mu_);
  for (const std::string& id : ids) {
    if (jobs_.erase(id) == 0) continue;
    order_.erase(order_of_.at(id));
    order_of_.erase(id);
    ++jobs_deleted_;
  }
  return absl::OkStatus();
}

StoreHealth InMemoryJobStore::Health() const {
  absl::MutexLock lock(&mu_);
  StoreHealth h;
  h.jobs_dropped = jobs_dropped_;
  h.jobs_deleted = jobs_deleted_;
  return h;
}

}  // namespace busyfleet::coordinator
