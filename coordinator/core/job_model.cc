#include "coordinator/core/job_model.h"

#include "coordinator/core/limits.h"

namespace busyfleet::coordinator {

uint32_t JobRecord::max_attempts() const {
  return spec.max_attempts() == 0 ? limits::kDefaultMaxAttempts : spec.max_attempts();
}

void CopyJobHeader(const JobRecord& from, JobRecord* to) {
  to->id = from.id;
  to->spec = from.spec;
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
  to->iterations_total = from.iterations_total;
  to->iterations_done = from.iterations_done;
}

}  // namespace busyfleet::coordinator
