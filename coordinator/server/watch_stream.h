#ifndef BUSYFLEET_COORDINATOR_SERVER_WATCH_STREAM_H_
#define BUSYFLEET_COORDINATOR_SERVER_WATCH_STREAM_H_

// The WatchJob/RunJob reactor's bookkeeping, apart from gRPC so that the
// orders its callbacks can come in are tested (watch_stream_test.cc). A
// RunJobs session keeps one per job (its final write does not end the
// session's call: the session reads the next request instead).

#include <optional>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "busyfleet/v1/coordinator.pb.h"
#include "common/clock.h"

namespace busyfleet::coordinator {

// At most one write outstanding; only the newest pending update is kept
// (a plain update never replaces a pending final one, which carries the
// report); the final update ends the call with it. Whatever the order of
// write completions and cancellation, exactly one Step says to end the call
// (`write` of a final update, or `finish_cancelled`), so the reactor always
// calls Finish and gRPC calls its OnDone. Thread-safe.
class WatchStream {
 public:
  struct Step {
    // Write this (it stays valid until the next OnWriteDone); a final update
    // (has_report) is written together with the OK status.
    const v1::JobProgress* write = nullptr;
    // End the call with CANCELLED.
    bool finish_cancelled = false;
    // The outstanding write has been stuck for longer than allowed (told
    // once): the reader is not reading; the reactor cancels the call.
    bool stalled = false;
  };

  // The watch is registered: updates may be written from now on.
  Step Start() {
    absl::MutexLock lock(&mu_);
    started_ = true;
    return NextLocked();
  }
  // `max_stall`: how long a write may stay outstanding before the step
  // says `stalled`.
  Step OnProgress(const v1::JobProgress& progress, absl::Duration max_stall = absl::InfiniteDuration()) {
    absl::MutexLock lock(&mu_);
    if (!pending_ || !pending_->has_report()) pending_ = progress;
    Step step = started_ ? NextLocked() : Step{};
    if (writing_ && !stall_reported_ && step.write == nullptr && MonoNow() - write_started_ >= max_stall) {
      stall_reported_ = true;
      step.stalled = true;
    }
    return step;
  }
  // A write completed; `ok` false: the stream is broken.
  Step OnWriteDone(bool ok) {
    absl::MutexLock lock(&mu_);
    writing_ = false;
    // A cancel that came while the write was outstanding may be followed
    // by a write that still completed (ok): the call must end here all the same.
    if (!ok || cancelled_) return FinishCancelledLocked();
    return NextLocked();
  }
  Step OnCancel() {
    absl::MutexLock lock(&mu_);
    cancelled_ = true;
    if (writing_) return Step{};  // OnWriteDone ends the call
    return FinishCancelledLocked();
  }

 private:
  Step FinishCancelledLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    Step step;
    step.finish_cancelled = !finished_;
    finished_ = true;
    return step;
  }
  Step NextLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (writing_ || finished_ || cancelled_ || !pending_) return Step{};
    current_ = std::move(pending_);
    pending_.reset();
    writing_ = true;
    write_started_ = MonoNow();
    if (current_->has_report()) finished_ = true;  // the final write ends the call
    return Step{&*current_, false};
  }

  absl::Mutex mu_;
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  bool stall_reported_ ABSL_GUARDED_BY(mu_) = false;
  MonoTime write_started_ ABSL_GUARDED_BY(mu_);
  std::optional<v1::JobProgress> current_ ABSL_GUARDED_BY(mu_);
  std::optional<v1::JobProgress> pending_ ABSL_GUARDED_BY(mu_);
};

}  // namespace busyfleet::coordinator

#endif  // BUSYFLEET_COORDINATOR_SERVER_WATCH_STREAM_H_
