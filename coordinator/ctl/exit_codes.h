#ifndef BUSYFLEET_COORDINATOR_CTL_EXIT_CODES_H_
#define BUSYFLEET_COORDINATOR_CTL_EXIT_CODES_H_

// coordctl's exit codes (README, "Exit codes"; docs/design.md). Scripts test
// these numbers: a value never changes, a new meaning gets a new value.

#include "absl/status/status.h"

namespace busyfleet::coordctl {

enum ExitCode : int {
  // The command did what it was asked; for `health`, the coordinator is
  // SERVING.
  kExitOk = 0,
  // The job failed or was cancelled (`submit --wait`, `watch`, `status`), or
  // the command could not finish: `workers --wait-for` ran out of time, an
  // output file or standard output could not be written, or the
  // coordinator failed the call for a reason not listed under 2 or 3 (e.g.
  // RESOURCE_EXHAUSTED).
  kExitFailed = 1,
  // A usage error (bad or conflicting flags, unknown command) or a request
  // the coordinator refused as bad: INVALID_ARGUMENT, NOT_FOUND (unknown job
  // or worker), FAILED_PRECONDITION (e.g. the job already ended),
  // ALREADY_EXISTS, OUT_OF_RANGE.
  kExitUsage = 2,
  // The coordinator cannot be reached in time (UNAVAILABLE,
  // DEADLINE_EXCEEDED) or refuses our credentials (UNAUTHENTICATED,
  // PERMISSION_DENIED); for `health`, it answers NOT_SERVING.
  kExitUnavailable = 3,
};

// The exit code for the outcome of a call: kExitOk for OK, else as listed
// above.
ExitCode ExitCodeFor(const absl::Status& status);

}  // namespace busyfleet::coordctl

#endif  // BUSYFLEET_COORDINATOR_CTL_EXIT_CODES_H_
