// The Coordinator's restart recovery: tasks in flight when it stopped are
// held for their worker through a grace period and claimed back when it
// attaches again (docs/design.md, "Restart recovery"). Same class as
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

absl::Status Coordinator::Recover() {
  BF_ASSIGN_OR_RETURN(std::vector<JobRecord> unfinished, options_.store->LoadUnfinished());
  absl::MutexLock lock(&mu_);
  const MonoTime until = clock_->Mono() + options_.worker_timeout;
  for (JobRecord& job : unfinished) {
    std::vector<uint32_t> queued;
    job.running = 0;
    for (TaskRecord& t : job.tasks) {
      if (IsTerminal(t.state)) continue;
      ++unfinished_tasks_;
      t.current.session.clear();
      const bool in_flight = t.state == v1::TASK_STATE_ASSIGNED || t.state == v1::TASK_STATE_RUNNING;
      if (in_flight && !t.current.worker.empty() && t.current.number != 0) {
        // Its worker probably runs it still: held for it until the grace ends.
        if (t.state == v1::TASK_STATE_RUNNING) ++job.running;
        held_[t.current.worker].push_back(HeldAttempt{TaskKey{job.id, t.index}, t.current.number, until});
        continue;
      }
      t.state = v1::TASK_STATE_QUEUED;
      queued.push_back(t.index);
    }
    job.seq = ++job_seq_;
    BF_RETURN_IF_ERROR(scheduler_.AddJob(job.id, Scheduler::JobConstraints::Of(job.spec), queued, job.seq));
    const std::string id = job.id;
    jobs_[id] = std::make_unique<JobRecord>(std::move(job));
  }
  CheckInvariantsLocked();
  return absl::OkStatus();
}

void Coordinator::HoldSessionLocked(const std::string& session_id) {
  Session* s = sessions_.Find(session_id);
  if (s == nullptr) return;
  const std::string name = s->name;
  const SessionRef ref = s->ref;
  const MonoTime until = clock_->Mono() + options_.worker_timeout;
  auto tasks = scheduler_.RemoveWorker(session_id);  // queues them again: taken back out below
  if (tasks.ok()) {
    for (const TaskKey& key : *tasks) {
      JobRecord* job = FindJobLocked(key.job_id);
      if (job == nullptr || key.index >= job->tasks.size()) continue;
      TaskRecord& t = job->tasks[key.index];
      scheduler_.Dequeue(key);
      if (t.backup() && t.backup()->session == ref) {
        t.DropBackup(v1::TASK_STATE_CANCELLED, absl::StrCat("backup dropped: worker ", name, " reconnected"),
                     clock_->Now());
        MarkDirtyLocked(*job, t.index);
        continue;
      }
      if (t.current.session != ref || IsTerminal(t.state)) continue;
      t.current.session.clear();
      held_[name].push_back(HeldAttempt{key, t.current.number, until});
    }
  }
  sessions_.Retire(session_id);
}

TaskRecord* Coordinator::StillHeldLocked(const HeldAttempt& h, JobRecord** job) {
  JobRecord* j = FindJobLocked(h.key.job_id);
  if (j == nullptr || h.key.index >= j->tasks.size()) return nullptr;
  TaskRecord& t = j->tasks[h.key.index];
  if (IsTerminal(t.state) || t.current.number != h.attempt || !t.current.session.empty()) return nullptr;
  if (t.state != v1::TASK_STATE_ASSIGNED && t.state != v1::TASK_STATE_RUNNING) return nullptr;
  *job = j;
  return &t;
}

void Coordinator::ClaimHeldLocked(Session& session, const google::protobuf::RepeatedPtrField<v1::TaskRef>& held) {
  std::vector<HeldAttempt> mine;
  if (auto it = held_.find(session.name); it != held_.end()) {
    mine = std::move(it->second);
    held_.erase(it);
  }
  absl::flat_hash_map<TaskKey, size_t> by_key;  // into `mine`; a worker may hold 100,000
  by_key.reserve(mine.size());
  for (size_t i = 0; i < mine.size(); ++i) by_key.emplace(mine[i].key, i);
  std::vector<bool> claimed(mine.size(), false);
  v1::CoordinatorMessage cancels;
  for (const v1::TaskRef& ref : held) {
    auto it = by_key.find(TaskKey{ref.job_id(), ref.task_index()});
    JobRecord* job = nullptr;
    TaskRecord* t = nullptr;
    if (it != by_key.end() && !claimed[it->second] && mine[it->second].attempt == ref.attempt()) {
      t = StillHeldLocked(mine[it->second], &job);
    }
    if (t == nullptr) {
      // Not ours to run (any more): stop it there. A result it already has
      // still comes in, and is recorded as a duplicate.
      *cancels.mutable_cancel()->add_tasks() = ref;
      continue;
    }
    claimed[it->second] = true;
    t->current.session = session.ref;
    t->current.worker = session.name;
    ++(t->state == v1::TASK_STATE_RUNNING ? session.running : session.assigned);
    (void)scheduler_.Adopt(session.id, it->first);
  }
  if (cancels.cancel().tasks_size() > 0) session.channel->Send(std::move(cancels));
  // The worker is back without these: it lost them (it restarted too).
  for (size_t i = 0; i < mine.size(); ++i) {
    if (!claimed[i]) ReleaseHeldLocked(mine[i], session.name, "the worker came back without it");
  }
}

void Coordinator::ReleaseHeldLocked(const HeldAttempt& h, const std::string& worker, absl::string_view why) {
  JobRecord* job = nullptr;
  TaskRecord* t = StillHeldLocked(h, &job);
  if (t == nullptr) return;
  EndAttemptLocked(*job, *t, AttemptEnd::kGaveUp,
                   absl::StrCat("attempt ", h.attempt, " held for worker ", worker,
                                " after a coordinator restart was not claimed: ", why),
                   Queued::kNo);
}

MonoTime Coordinator::ExpireHeldLocked(MonoTime now) {
  MonoTime next = MonoTime::InfiniteFuture();
  for (auto it = held_.begin(); it != held_.end();) {
    std::vector<HeldAttempt> expired;
    std::vector<HeldAttempt> kept;
    for (HeldAttempt& h : it->second) {
      if (h.until > now) {
        next = std::min(next, h.until);
        kept.push_back(std::move(h));
      } else {
        expired.push_back(std::move(h));
      }
    }
    const std::string worker = it->first;
    if (kept.empty()) {
      it = held_.erase(it);
    } else {
      it->second = std::move(kept);
      ++it;
    }
    for (const HeldAttempt& h : expired) {
      ReleaseHeldLocked(h, worker,
                        absl::StrCat("no worker of that name attached within ",
                                     absl::FormatDuration(options_.worker_timeout)));
    }
  }
  return next;
}

}  // namespace busyfleet::coordinator
