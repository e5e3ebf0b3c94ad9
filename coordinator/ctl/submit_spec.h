#ifndef BUSYFLEET_COORDINATOR_CTL_SUBMIT_SPEC_H_
#define BUSYFLEET_COORDINATOR_CTL_SUBMIT_SPEC_H_

// `coordctl submit`'s flags and the JobSpec they describe.

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "busyfleet/v1/coordinator.pb.h"

namespace busyfleet::coordctl {

struct SubmitFlags {
  std::string kind = "countdown";  // countdown, spin, sleep or python (checked by the parser)
  uint64_t iterations = 10'000'000;
  bool iterations_given = false;  // --iterations was on the command line
  std::string duration;
  std::string tasks = "4";
  uint64_t total = 0;
  uint32_t max_slots = 0;
  std::vector<std::string> workers;  // each may hold several, comma-separated
  std::string selector;
  std::string exec;
  uint32_t max_attempts = 0;
  std::string task_timeout;
  std::string pending_timeout;  // empty: wait for a worker that can take the job
  std::string name;
  bool wait = false;
  bool show_tasks = false;
  bool speculate = false;
};

// The job the flags ask for. InvalidArgument, naming the flag, for flags
// that do not go together (--duration with countdown, --iterations or
// --total with spin/sleep, --iterations with --total), a missing
// --duration, a bad duration, --tasks not a number or "auto", or a
// --selector entry that is not key=value. The coordinator checks the
// limits (e.g. --tasks 0).
absl::StatusOr<v1::JobSpec> BuildSpec(const SubmitFlags& flags);

}  // namespace busyfleet::coordctl

#endif  // BUSYFLEET_COORDINATOR_CTL_SUBMIT_SPEC_H_
