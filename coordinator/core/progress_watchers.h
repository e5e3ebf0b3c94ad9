#ifndef BUSYFLEET_COORDINATOR_CORE_PROGRESS_WATCHERS_H_
#define BUSYFLEET_COORDINATOR_CORE_PROGRESS_WATCHERS_H_

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>

#include "absl/functional/function_ref.h"
#include "absl/time/time.h"
#include "busyfleet/v1/coordinator.pb.h"
#include "common/clock.h"
#include "coordinator/core/job_model.h"
#include "coordinator/core/timing_aggregator.h"

namespace busyfleet::coordinator {

// Called with each progress update of a watched job; the update with a
// terminal state carries the report and is the last. Called with the
// Coordinator's lock held: must not block or call back into it.
using ProgressCallback = std::function<void(const v1::JobProgress&)>;

// Who watches which job's progress, and when each may get its next update.
//
// Rate limit per watcher (a token bucket): bursts of up to `burst` updates
// go at once, then one per `interval`; a change that finds the bucket empty
// is held back and goes out, as the newest progress, when a token is due
// (SendDue). The final update (the job ended, with its report) always goes
// at once and ends the watch. Zero interval: every change goes at once.
//
// Two clocks: the bucket and the due times run on the monotonic clock
// (`mono_now`), so a wall-clock step neither floods a watcher nor holds its
// updates back; the wall clock (`now`) only goes into the updates.
//
// Plain data, no lock: the Coordinator calls it with its own lock held.
class ProgressWatchers {
 public:
  struct Options {
    absl::Duration interval = absl::Milliseconds(100);
    double burst = 20;
    // Called when a held-back update is due sooner than any other (the
    // liveness loop should wake up for SendDue then).
    std::function<void()> request_check;
  };
  // Host and slots by worker name, for a final report; asked for only then.
  using FactsFn = absl::FunctionRef<std::map<std::string, WorkerFacts>()>;
  using FindJobFn = absl::FunctionRef<const JobRecord*(const std::string&)>;

  explicit ProgressWatchers(Options options) : options_(std::move(options)) {}

  // What a watcher's final report holds.
  static ReportOptions FinalReportOptions(bool include_tasks);

  uint64_t NewHandle() { return next_handle_++; }
  // Watches the live `job`: its first update goes at once (and takes a
  // token), or is held back for `first_update_delay`.
  void Add(uint64_t handle, const JobRecord& job, bool include_tasks, ProgressCallback callback,
           absl::Duration first_update_delay, absl::Time now, MonoTime mono_now);
  void Remove(uint64_t handle) { watchers_.erase(handle); }

  // The job changed: its watchers get its progress (or have it held back);
  // when the job has ended, its final update and the watch ends. Each kind
  // of final report (with task rows or without) is built once, however many
  // watch; one of them (the one without, if built) is moved into
  // `final_report` when that is not null, so the caller need not build it
  // again (a million-task job's report takes a pass over every task).
  void Notify(const JobRecord& job, absl::Time now, MonoTime mono_now, FactsFn facts,
              std::optional<v1::JobReport>* final_report = nullptr);
  // Sends the held-back updates that are due; returns when the next is
  // (InfiniteFuture: none held back).
  MonoTime SendDue(absl::Time now, MonoTime mono_now, FindJobFn find_job);

  // Watches in place (tests).
  size_t size() const { return watchers_.size(); }

 private:
  struct Watcher {
    std::string job_id;
    bool include_tasks = false;
    ProgressCallback callback;
    double tokens = 0;  // updates it may get at once (token bucket)
    MonoTime refilled;
    bool pending = false;  // a change not yet sent (rate limit)
    MonoTime due = MonoTime::InfiniteFuture();  // when the pending one may go
  };

  // Marks the watcher's update held back until w.due, and asks for a check
  // if that is sooner than anything else due.
  void HoldBack(Watcher& w);
  // Refills the watcher's bucket to `now`; true (taking a token) when it may
  // get an update now, else sets when it may.
  bool TakeToken(Watcher& w, MonoTime mono_now) const;

  const Options options_;
  uint64_t next_handle_ = 1;
  std::map<uint64_t, Watcher> watchers_;
  // When the earliest held-back update is due.
  MonoTime due_ = MonoTime::InfiniteFuture();
};

}  // namespace busyfleet::coordinator

#endif  // BUSYFLEET_COORDINATOR_CORE_PROGRESS_WATCHERS_H_
