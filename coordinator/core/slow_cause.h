#ifndef BUSYFLEET_COORDINATOR_CORE_SLOW_CAUSE_H_
#define BUSYFLEET_COORDINATOR_CORE_SLOW_CAUSE_H_

// Why a slow task was slow, in a few words, from what its worker measured
// (TaskResult.interference). Pure functions; no I/O.

#include <optional>
#include <string>

#include "busyfleet/v1/types.pb.h"

namespace busyfleet::coordinator {

// A figure explains a task's slowness when it accounts for at least this
// share of the task's wall time.
inline constexpr double kCauseMinShare = 0.05;
// Involuntary switches named on their own (nothing else found) from this many.
inline constexpr uint64_t kCauseManySwitches = 10;
// A task below this share of its core's calibrated rate, with nothing else
// to explain it, is flagged as probably sharing its core.
inline constexpr double kCauseSlowRate = 0.6;

// The cause of a straggler that ran `seconds`: the figures of `measured`
// that explain at least kCauseMinShare of its time, largest first
// ("throttled 120 ms (5 of 6 periods)", "steal 31%", "waited 40 ms for a
// CPU (12 involuntary switches)"; the wait is the run-queue wait less the
// throttled time, which a throttled task spends runnable); else many
// involuntary switches ("14 involuntary switches"); else, when
// `rate_ratio` (the task's rate against its worker's calibrated per-core
// rate; nullopt: unknown) is below kCauseSlowRate, "0.55× its core's rate,
// no steal: shared core?"; else "no interference measured". Without
// measurements: "not measured" (with the rate clause when it applies).
std::string StragglerCause(const std::optional<v1::Interference>& measured, double seconds,
                           std::optional<double> rate_ratio);

}  // namespace busyfleet::coordinator

#endif  // BUSYFLEET_COORDINATOR_CORE_SLOW_CAUSE_H_
