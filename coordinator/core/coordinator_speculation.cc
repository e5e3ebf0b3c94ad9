// The Coordinator's speculation (JobSpec.speculate): backup copies of
// stragglers, and what happens when a copy finishes. Same class as
// coordinator.cc, same lock.
#include "coordinator/core/coordinator.h"

#include <algorithm>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "coordinator/core/enum_names.h"
#include "coordinator/core/limits.h"
#include "coordinator/core/worker_messages.h"

namespace busyfleet::coordinator {

MonoTime Coordinator::SpeculateLocked(absl::Time now, MonoTime mono_now) {
  MonoTime next = MonoTime::InfiniteFuture();
  std::map<std::string, v1::CoordinatorMessage> batches;
  for (auto& [id, job] : jobs_) {
    if (!job->spec.speculate() || IsTerminal(job->state)) continue;
    // Until results come in there is no median: look again soon.
    next = std::min(next, mono_now + kSpeculationRecheck);
    if (job->succeeded == 0 || scheduler_.QueuedFor(job->id) > 0) continue;
    next = std::min(next, SpeculateJobLocked(*job, now, mono_now, batches));
  }
  for (auto& [session, message] : batches) sessions_.At(session).channel->Send(std::move(message));
  return next;
}

MonoTime Coordinator::SpeculateJobLocked(JobRecord& job, absl::Time now, MonoTime mono_now,
                                         std::map<std::string, v1::CoordinatorMessage>& batches) {
  MonoTime next = MonoTime::InfiniteFuture();
  const std::optional<absl::Duration> threshold = StragglerThreshold(job);
  if (!threshold) return next;
  for (TaskRecord& t : job.tasks) {
    if (t.state != v1::TASK_STATE_RUNNING || t.speculated || t.backup() != nullptr) continue;
    const MonoTime due = t.current.mono.time() + *threshold;
    if (due > mono_now) {
      next = std::min(next, due);
      continue;
    }
    const Session* primary = sessions_.Find(t.current.session);
    std::optional<std::string> target =
        scheduler_.AssignBackup(TaskKey{job.id, t.index}, primary != nullptr ? primary->id : std::string());
    if (!target) continue;  // no free slot now; the recheck comes back
    Session& s = sessions_.At(*target);
    Attempt& b = t.EmplaceBackup();
    b.number = t.NextAttemptNumber();
    b.session = s.ref;
    b.worker = s.name;
    b.host = s.host.hostname();
    b.assigned_at = now;
    b.mono = mono_now;
    t.speculated = true;
    ++job.backups;
    ++s.assigned;
    ++counters_.dispatched;
    MarkDirtyLocked(job, t.index);
    *batches[*target].mutable_assign()->add_assignments() = MakeAssignment(job, t, b.number);
  }
  return next;
}

void Coordinator::PromoteBackupLocked(JobRecord& job, TaskRecord& t) {
  const bool running = t.TakeOverFromBackup();
  job.SetTaskState(t, running ? v1::TASK_STATE_RUNNING : v1::TASK_STATE_ASSIGNED);
  MarkDirtyLocked(job, t.index);
}

void Coordinator::DropReturnedBackupLocked(Session& session, JobRecord& job, TaskRecord& t) {
  LeaveSessionLocked(session, job.id, t.index, t.backup()->running, /*release=*/true);
  t.DropBackup(v1::TASK_STATE_CANCELLED, absl::StrCat("handed back by draining worker ", session.name),
               clock_->Now());
  MarkDirtyLocked(job, t.index);
}

void Coordinator::HandleBackupResultLocked(Session& session, JobRecord& job, TaskRecord& t,
                                           const v1::TaskResult& result) {
  MarkDirtyLocked(job, t.index);
  LeaveSessionLocked(session, job.id, t.index, t.backup()->running, /*release=*/true);
  const absl::Time now = clock_->Now();
  if (IsTerminal(t.state) || result.state() != v1::TASK_STATE_SUCCEEDED) {
    // A failed or cancelled copy changes nothing: the primary runs on.
    if (IsTerminal(t.state)) {
      t.ResetBackup();
    } else {
      t.DropBackup(result.state() == v1::TASK_STATE_CANCELLED ? v1::TASK_STATE_CANCELLED : v1::TASK_STATE_FAILED,
                   result.error(), now);
    }
    return;
  }
  // The backup finished first: it is the task's result; stop the primary.
  t.ArchiveCurrent(v1::TASK_STATE_CANCELLED,
                   absl::StrCat("stopped: speculation copy (attempt ", t.backup()->number, ") finished first"), now);
  StopLoserLocked(job, t, t.current, t.state == v1::TASK_STATE_RUNNING);
  t.TakeOverFromBackup();
  session.RecordTiming(result, job.spec.kind(), now, t.current);
  t.set_interference(result.has_interference() ? std::optional(result.interference()) : std::nullopt);
  t.current.session.clear();
  t.backup_won = true;
  ++job.backups_won;
  ++session.tasks_done;
  SucceedTaskLocked(job, t);
}

}  // namespace busyfleet::coordinator
