// The Coordinator's jobs that cannot run: queued tasks no attached worker
// can take get a pending_reason (in reports and progress), and a job pending
// past its JobSpec.pending_timeout fails with that reason. Same class as
// coordinator.cc, same lock.
#include <algorithm>
#include <map>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "coordinator/core/coordinator.h"

namespace busyfleet::coordinator {

MonoTime Coordinator::UpdatePendingLocked() {
  std::map<std::string, std::string> reasons;
  for (Scheduler::Unrunnable& u : scheduler_.UnrunnableJobs()) reasons[u.job_id] = std::move(u.reason);
  const MonoTime now = clock_->Mono();
  MonoTime next = MonoTime::InfiniteFuture();
  for (auto& [id, job] : jobs_) {
    if (IsTerminal(job->state)) continue;
    auto it = reasons.find(id);
    std::string reason = it == reasons.end() ? std::string() : std::move(it->second);
    if (reason != job->pending_reason) {
      const bool started_waiting = job->pending_reason.empty();
      job->pending_reason = std::move(reason);
      if (started_waiting) job->pending_since = now;
      MarkDirtyLocked(*job, UINT32_MAX);  // its watchers hear of it
      if (started_waiting && job->spec.has_pending_timeout() && options_.request_check) options_.request_check();
    }
    if (job->pending_reason.empty() || !job->spec.has_pending_timeout()) continue;
    const google::protobuf::Duration& d = job->spec.pending_timeout();
    const absl::Duration timeout = absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
    if (timeout <= absl::ZeroDuration()) continue;  // zero: wait, visibly
    const MonoTime due = job->pending_since + timeout;
    if (due > now) {
      next = std::min(next, due);
      continue;
    }
    FinishJobLocked(*job, v1::JOB_STATE_FAILED,
                    absl::StrCat("no worker could take its tasks for ", absl::FormatDuration(timeout),
                                 " (pending timeout): ", job->pending_reason));
  }
  return next;
}

}  // namespace busyfleet::coordinator
