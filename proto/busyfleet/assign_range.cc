#include "busyfleet/assign_range.h"

namespace busyfleet {

void SetRangeTask(const v1::AssignRange& r, uint32_t i, v1::Assignment& a) {
  v1::TaskRef& ref = *a.mutable_task();
  if (ref.job_id() != r.job_id()) ref.set_job_id(r.job_id());
  ref.set_task_index(r.first_index() + i);
  ref.set_attempt(r.attempt());
  a.set_kind(r.kind());
  a.set_iterations(r.iterations());
  if (r.has_duration()) {
    *a.mutable_duration() = r.duration();
  } else {
    a.clear_duration();
  }
  a.set_exec(r.exec());
  if (r.has_timeout()) {
    *a.mutable_timeout() = r.timeout();
  } else {
    a.clear_timeout();
  }
}

}  // namespace busyfleet
