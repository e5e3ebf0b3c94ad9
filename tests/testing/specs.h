#ifndef BUSYFLEET_TESTS_TESTING_SPECS_H_
#define BUSYFLEET_TESTS_TESTING_SPECS_H_

// The one way tests write a JobSpec: a helper for each kind of job, then the
// message's own setters for anything else (set_max_attempts, add_workers, ...).

#include <cstdint>
#include <string>

#include "busyfleet/v1/types.pb.h"

namespace busyfleet::testing {

// A countdown job: `tasks` x `iterations`, named `name` ("" lets the
// coordinator name it after its id).
inline v1::JobSpec Countdown(uint32_t tasks, uint64_t iterations = 1000, const std::string& name = "") {
  v1::JobSpec spec;
  spec.set_name(name);
  spec.set_kind(v1::TASK_KIND_COUNTDOWN);
  spec.set_tasks(tasks);
  spec.set_iterations(iterations);
  return spec;
}

// A countdown job of `total` iterations split over `tasks`.
inline v1::JobSpec CountdownTotal(uint32_t tasks, uint64_t total) {
  v1::JobSpec spec;
  spec.set_kind(v1::TASK_KIND_COUNTDOWN);
  spec.set_tasks(tasks);
  spec.set_total(total);
  return spec;
}

// A job of `tasks` tasks of a timed kind (sleep, spin) that last
// `seconds` + `nanos` each.
inline v1::JobSpec Timed(v1::TaskKind kind, uint32_t tasks, int64_t seconds, int32_t nanos = 0) {
  v1::JobSpec spec;
  spec.set_kind(kind);
  spec.set_tasks(tasks);
  spec.mutable_duration()->set_seconds(seconds);
  spec.mutable_duration()->set_nanos(nanos);
  return spec;
}

}  // namespace busyfleet::testing

#endif  // BUSYFLEET_TESTS_TESTING_SPECS_H_
