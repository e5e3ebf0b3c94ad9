#include "coordinator/core/progress_watchers.h"

#include <algorithm>
#include <optional>
#include <utility>

#include "coordinator/core/limits.h"

namespace busyfleet::coordinator {

ReportOptions ProgressWatchers::FinalReportOptions(bool include_tasks) {
  ReportOptions options;
  options.tasks = include_tasks;
  options.task_limit = limits::kMaxTaskRowsPerReply;
  options.summarize_large = true;
  return options;
}

void ProgressWatchers::Add(uint64_t handle, const JobRecord& job, bool include_tasks, ProgressCallback callback,
                           absl::Duration first_update_delay, absl::Time now, MonoTime mono_now) {
  Watcher& w = watchers_[handle];
  w.job_id = job.id;
  w.include_tasks = include_tasks;
  w.refilled = mono_now;
  if (first_update_delay > absl::ZeroDuration()) {
    w.tokens = options_.burst;
    w.due = mono_now + first_update_delay;
    HoldBack(w);
  } else {
    callback(BuildProgress(job, now));
    w.tokens = std::max(0.0, options_.burst - 1);  // the update just sent counts
  }
  w.callback = std::move(callback);
}

void ProgressWatchers::Notify(const JobRecord& job, absl::Time now, MonoTime mono_now, FactsFn facts,
                              std::optional<v1::JobReport>* final_report) {
  std::optional<v1::JobProgress> progress;
  std::optional<v1::JobReport> finals[2];  // without task rows, with them
  for (auto it = watchers_.begin(); it != watchers_.end();) {
    Watcher& w = it->second;
    if (w.job_id != job.id) {
      ++it;
      continue;
    }
    if (IsTerminal(job.state)) {
      if (!progress) progress = BuildProgress(job, now);
      v1::JobProgress final_progress = *progress;
      std::optional<v1::JobReport>& report = finals[w.include_tasks ? 1 : 0];
      if (!report) report = BuildReport(job, facts(), now, FinalReportOptions(w.include_tasks));
      *final_progress.mutable_report() = *report;
      w.callback(final_progress);
      it = watchers_.erase(it);
      continue;
    }
    if (w.pending) {  // already held back: it goes out with the newest progress when due
      ++it;
      continue;
    }
    if (TakeToken(w, mono_now)) {
      if (!progress) progress = BuildProgress(job, now);
      w.callback(*progress);
    } else {
      HoldBack(w);
    }
    ++it;
  }
  if (final_report != nullptr) {
    if (finals[0]) {
      *final_report = std::move(finals[0]);
    } else if (finals[1]) {
      *final_report = std::move(finals[1]);
    }
  }
}

void ProgressWatchers::HoldBack(Watcher& w) {
  w.pending = true;
  if (w.due < due_) {
    due_ = w.due;
    if (options_.request_check) options_.request_check();
  }
}

bool ProgressWatchers::TakeToken(Watcher& w, MonoTime mono_now) const {
  if (options_.interval <= absl::ZeroDuration()) return true;
  w.tokens = std::min(options_.burst, w.tokens + absl::FDivDuration(mono_now - w.refilled, options_.interval));
  w.refilled = mono_now;
  if (w.tokens >= 1) {
    w.tokens -= 1;
    return true;
  }
  w.due = mono_now + options_.interval * (1 - w.tokens);
  return false;
}

MonoTime ProgressWatchers::SendDue(absl::Time now, MonoTime mono_now, FindJobFn find_job) {
  if (due_ > mono_now) return due_;
  due_ = MonoTime::InfiniteFuture();
  for (auto& [handle, w] : watchers_) {
    if (!w.pending) continue;
    if (w.due > mono_now || !TakeToken(w, mono_now)) {
      due_ = std::min(due_, w.due);
      continue;
    }
    w.pending = false;
    w.due = MonoTime::InfiniteFuture();
    if (const JobRecord* job = find_job(w.job_id)) w.callback(BuildProgress(*job, now));
  }
  return due_;
}

}  // namespace busyfleet::coordinator
