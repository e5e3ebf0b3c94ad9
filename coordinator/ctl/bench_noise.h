#ifndef BUSYFLEET_COORDINATOR_CTL_BENCH_NOISE_H_
#define BUSYFLEET_COORDINATOR_CTL_BENCH_NOISE_H_

// The noise check `coordctl bench` prints before it runs, as pyperf does:
// per machine, what its workers report of their host (load, steal, other
// busy processes, the frequency governor: v1::HostNoise) and how evenly its
// CPUs ran when the worker calibrated them; advice when any of it will make
// the figures noisy. Pure functions of the worker listing.

#include <string>
#include <vector>

#include "busyfleet/v1/coordinator.pb.h"

namespace busyfleet::coordctl {

struct NoiseCheck {
  std::vector<std::string> lines;   // one per machine
  std::vector<std::string> advice;  // what to do about it
  std::vector<std::string> causes;  // short, for the unstable-row warning
};

// Thresholds of the advice.
inline constexpr double kNoisyStealShare = 0.02;
inline constexpr double kNoisyOtherCpus = 0.25;
inline constexpr double kUnevenCpuRates = 1.15;

NoiseCheck CheckNoise(const std::vector<v1::WorkerInfo>& workers, v1::TaskKind kind);

}  // namespace busyfleet::coordctl

#endif  // BUSYFLEET_COORDINATOR_CTL_BENCH_NOISE_H_
