#include "coordinator/core/job_model.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "coordinator/core/limits.h"

namespace busyfleet::coordinator {

AttemptRecord Attempt::ToRecord(v1::TaskState state, bool backup, std::string error, absl::Time now) const {
  AttemptRecord a;
  a.attempt = number;
  a.state = state;
  a.backup = backup;
  a.slot = slot;
  a.pid = pid;
  a.worker = worker;
  a.host = host;
  a.started_at = started_at;
  a.ended_at = ended_at != absl::InfinitePast() ? ended_at : std::max(now, started_at);
  a.cpu_ns = cpu_ns;
  a.iterations_done = iterations_done;
  a.error = std::move(error);
  a.interference = interference;
  a.calibrated_rate = calibrated_rate;
  return a;
}

void Attempt::ClearResult() {
  started_at = absl::InfinitePast();
  ended_at = absl::InfinitePast();
  result_at = absl::InfinitePast();
  cpu_ns = 0;
  iterations_done = 0;
  pid = 0;
  start_cpu = -1;
  end_cpu = -1;
  migrated = false;
  bound_cpus.clear();
  calibrated_rate = 0;
  interference.reset();
}

void TaskRecord::ArchiveCurrent(v1::TaskState ended_as, std::string why, absl::Time now) {
  if (current.started_at != absl::InfinitePast()) {
    history.push_back(current.ToRecord(ended_as, /*backup=*/false, std::move(why), now));
  }
  current.ClearResult();
}

bool TaskRecord::TakeOverFromBackup() {
  const bool running = backup->running;
  current = *std::move(backup);
  current.running = false;
  backup.reset();
  return running;
}

void TaskRecord::DropBackup(v1::TaskState ended_as, std::string why, absl::Time now) {
  if (backup && backup->started_at != absl::InfinitePast()) {
    history.push_back(backup->ToRecord(ended_as, /*backup=*/true, std::move(why), now));
  }
  backup.reset();
}

std::string SummarizeFailures(const std::vector<std::string>& failures, size_t max_distinct) {
  // "attempt N " differs on every line; the rest (worker and error) is what
  // repeats.
  std::vector<std::pair<absl::string_view, size_t>> distinct;
  for (absl::string_view f : failures) {
    if (absl::ConsumePrefix(&f, "attempt ")) {
      const size_t space = f.find(' ');
      f = space == absl::string_view::npos ? f : f.substr(space + 1);
    }
    auto it = std::find_if(distinct.begin(), distinct.end(), [&](const auto& d) { return d.first == f; });
    if (it != distinct.end()) {
      ++it->second;
    } else {
      distinct.emplace_back(f, 1);
    }
  }
  std::string out;
  for (size_t i = 0; i < distinct.size() && i < max_distinct; ++i) {
    absl::StrAppend(&out, i == 0 ? "" : "; ", distinct[i].first);
    if (distinct[i].second > 1) absl::StrAppend(&out, " (x", distinct[i].second, ")");
  }
  if (distinct.size() > max_distinct) {
    absl::StrAppend(&out, "; and ", distinct.size() - max_distinct, " more distinct errors");
  }
  return out;
}

uint32_t JobRecord::max_attempts() const {
  return spec.max_attempts() == 0 ? limits::kDefaultMaxAttempts : spec.max_attempts();
}

AfterFailedAttempt EndFailedAttempt(JobRecord& job, TaskRecord& t, const std::string& why, bool counted,
                                    bool permanent, absl::Time now, CoordinatorCounters& counters,
                                    std::string* job_error) {
  if (counted || permanent) {
    t.failures.push_back(why);
    ++counters.attempts_failed;
  }
  t.error = why;
  if (permanent) {
    *job_error = absl::StrCat("task ", t.index, " failed and cannot be retried: ", why);
    return AfterFailedAttempt::kFailTask;
  }
  if (counted && t.failures.size() >= job.max_attempts()) {
    *job_error = absl::StrCat("task ", t.index, " failed ", t.failures.size(), " of ", job.max_attempts(),
                              " attempts: ", SummarizeFailures(t.failures, limits::kMaxDistinctErrors));
    return AfterFailedAttempt::kFailTask;
  }
  if (counted) {
    ++job.retries;
    ++counters.retried;
  }
  t.ArchiveCurrent(counted ? v1::TASK_STATE_FAILED : v1::TASK_STATE_CANCELLED, why, now);
  return t.backup ? AfterFailedAttempt::kPromoteBackup : AfterFailedAttempt::kQueue;
}

void CopyJobHeader(const JobRecord& from, JobRecord* to) {
  to->id = from.id;
  to->spec = from.spec;
  to->task_count = from.total_tasks();
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
  to->backups_cancelled = from.backups_cancelled;
  to->pending_reason = from.pending_reason;
  to->iterations_total = from.iterations_total;
  to->iterations_done = from.iterations_done;
}

}  // namespace busyfleet::coordinator
