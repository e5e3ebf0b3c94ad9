// Coordinator: deleting finished jobs (coordctl delete, jobs prune, the
// daemon's retention). Same class and lock as coordinator.cc.

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "coordinator/core/coordinator.h"
#include "coordinator/core/enum_names.h"

namespace busyfleet::coordinator {

void Coordinator::ForgetFinishedLocked(const std::string& id) {
  auto it = jobs_.find(id);
  if (it == jobs_.end()) return;
  auto pos = std::find(finished_order_.begin(), finished_order_.end(), id);
  if (pos != finished_order_.end()) {
    finished_order_.erase(pos);
    finished_rows_ -= std::min<uint64_t>(finished_rows_, it->second->total_tasks());
  }
  dirty_.erase(id);
  dirty_job_ = nullptr;
  dirty_rows_ = nullptr;
  jobs_.erase(it);
}

absl::Status Coordinator::DeleteJob(absl::string_view job_id) {
  const std::string id(job_id);
  {
    absl::MutexLock lock(&mu_);
    if (const JobRecord* job = FindJobLocked(id)) {
      if (!IsTerminal(job->state)) {
        return absl::FailedPreconditionError(absl::StrCat("job ", id, " is ", JobStateName(job->state),
                                                          ": cancel it first (coordctl cancel ", id, ")"));
      }
      ForgetFinishedLocked(id);
      return options_.store->DeleteJobs({id});
    }
  }
  // Not in memory: a finished job (unfinished ones are all held), or none.
  BF_ASSIGN_OR_RETURN(bool known, options_.store->HasJob(id));
  if (!known) return absl::NotFoundError(absl::StrCat("job ", id, " not found"));
  return options_.store->DeleteJobs({id});
}

absl::StatusOr<std::vector<JobRecord>> Coordinator::Prune(const RetentionRule& rule, size_t limit, bool dry_run) {
  // Chosen from what the store has committed, without the lock; a job that
  // finished a moment ago and is not committed yet waits for the next pass.
  BF_ASSIGN_OR_RETURN(std::vector<JobRecord> expired, options_.store->ExpiredJobs(rule, limit));
  if (dry_run || expired.empty()) return expired;
  absl::MutexLock lock(&mu_);
  std::vector<std::string> ids;
  std::vector<JobRecord> removed;
  for (JobRecord& header : expired) {
    // The store said finished; memory is never behind it, but be sure.
    if (const JobRecord* held = FindJobLocked(header.id); held != nullptr && !IsTerminal(held->state)) continue;
    ForgetFinishedLocked(header.id);
    ids.push_back(header.id);
    removed.push_back(std::move(header));
  }
  BF_RETURN_IF_ERROR(options_.store->DeleteJobs(ids));
  return removed;
}

}  // namespace busyfleet::coordinator
