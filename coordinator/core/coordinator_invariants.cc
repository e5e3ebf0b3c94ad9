// The Coordinator's in-flight invariants (coordinator.h), checked after
// every operation in debug builds.
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

void Coordinator::CheckInvariantsLocked() const {
#ifndef NDEBUG
  for (const auto& [id, s] : sessions_.attached()) {
    assert(static_cast<uint32_t>(scheduler_.InFlight(id)) == s.assigned + s.running &&
           "the scheduler's credit for a session is not its attempts in flight");
  }
  // The recount is O(tasks of live jobs): done while they are few enough
  // that a debug build of a large job is not slowed to a crawl.
  constexpr uint64_t kMaxRecountedTasks = 20'000;
  if (unfinished_tasks_ > kMaxRecountedTasks) return;
  std::map<std::string, std::pair<uint32_t, uint32_t>> in_flight;  // session -> (assigned, running)
  auto count = [&](SessionRef ref, bool running) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const Session* session = sessions_.Find(ref);
    assert(session != nullptr && "an attempt in flight on a session that is gone");
    if (session == nullptr) return;
    auto& [assigned, run] = in_flight[session->id];
    ++(running ? run : assigned);
  };
  uint64_t unfinished = 0;
  for (const auto& [id, job] : jobs_) {
    if (IsTerminal(job->state)) {
      assert(job->running == 0 && "an ended job with tasks running");
      continue;
    }
    uint32_t running = 0;
    for (const TaskRecord& t : job->tasks) {
      if (!IsTerminal(t.state)) ++unfinished;
      if (t.state == v1::TASK_STATE_RUNNING) ++running;
      if ((t.state == v1::TASK_STATE_RUNNING || t.state == v1::TASK_STATE_ASSIGNED) &&
          !t.current.session.empty()) {  // empty: held (checked below)
        count(t.current.session, t.state == v1::TASK_STATE_RUNNING);
      }
      if (t.backup() != nullptr) count(t.backup()->session, t.backup()->running);
    }
    assert(job->running == running && "job.running is not the number of its RUNNING tasks");
  }
  assert(unfinished == unfinished_tasks_ && "unfinished_tasks_ is not the number of unfinished tasks");
  size_t held = 0;
  for (const auto& [name, list] : held_) held += list.size();
  for (const auto& [id, job] : jobs_) {
    for (const TaskRecord& t : job->tasks) {
      if ((t.state == v1::TASK_STATE_RUNNING || t.state == v1::TASK_STATE_ASSIGNED) && t.current.session.empty()) {
        assert(held > 0 && "a task in flight on no session and not held");
        --held;
      }
    }
  }
  for (const auto& [id, s] : sessions_.attached()) {
    const auto& [assigned, running] = in_flight[id];
    assert(s.assigned == assigned && "session.assigned is not the number of its ASSIGNED attempts");
    assert(s.running == running && "session.running is not the number of its RUNNING attempts");
  }
#endif
}

}  // namespace busyfleet::coordinator
