#include "worker/calibration.h"

#include <pthread.h>
#include <sched.h>
#include <time.h>

#include <algorithm>

#include "absl/time/clock.h"
#include "common/stats.h"

namespace busyfleet::worker {
namespace {

// The CPUs the calling thread may run on.
std::vector<int> AllowedCpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  std::vector<int> cpus;
  if (pthread_getaffinity_np(pthread_self(), sizeof(set), &set) != 0) return cpus;
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (CPU_ISSET(cpu, &set)) cpus.push_back(cpu);
  }
  return cpus;
}

bool PinTo(int cpu) {
  if (cpu < 0 || cpu >= CPU_SETSIZE) return false;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  return pthread_setaffinity_np(pthread_self(), sizeof(set), &set) == 0;
}

double ThreadCpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

// Iterations per second of CPU time of one run of `n`; 0 when cancelled.
// CPU time, not wall time: a run that shares its CPU with another process
// is time-sliced (half the wall rate) but runs at the core's speed while it
// is on it, which is what the calibration is for.
double TimedRun(const KernelFn& kernel, uint64_t n, const CancelToken& cancel) {
  const double start = ThreadCpuSeconds();
  const KernelResult r = kernel(n, cancel);
  const double seconds = ThreadCpuSeconds() - start;
  if (r.outcome != KernelOutcome::kCompleted || seconds <= 0) return 0;
  return static_cast<double>(n) / seconds;
}

// The fastest of options.runs runs of about options.run each, after sizing
// the run on the spot (growing from 2^16 iterations until one takes 2 ms).
double MeasureHere(const KernelFn& kernel, const CancelToken& cancel, const CalibrationOptions& options) {
  uint64_t n = uint64_t{1} << 16;
  double rate = 0;
  for (int i = 0; i < 30 && !cancel.cancelled(); ++i, n *= 4) {
    rate = TimedRun(kernel, n, cancel);
    if (rate > 0 && static_cast<double>(n) / rate >= 0.002) break;
  }
  if (rate <= 0) return 0;
  const auto sized = static_cast<uint64_t>(std::max(1.0, rate * absl::ToDoubleSeconds(options.run)));
  double best = 0;
  for (int i = 0; i < options.runs && !cancel.cancelled(); ++i) best = std::max(best, TimedRun(kernel, sized, cancel));
  return best;
}

}  // namespace

std::vector<int> CalibrationCpus(const std::vector<std::vector<int>>& slot_cpus, size_t max_cpus) {
  std::vector<int> cpus;
  for (const std::vector<int>& slot : slot_cpus) {
    if (!slot.empty() && std::find(cpus.begin(), cpus.end(), slot.front()) == cpus.end()) cpus.push_back(slot.front());
  }
  if (cpus.empty()) cpus = AllowedCpus();
  if (max_cpus == 0 || cpus.size() <= max_cpus) return cpus;
  std::vector<int> spread;
  for (size_t i = 0; i < max_cpus; ++i) spread.push_back(cpus[i * cpus.size() / max_cpus]);
  return spread;
}

double MedianRate(const v1::KernelCalibration& c) {
  std::vector<double> rates;
  for (const v1::CpuRate& r : c.cpus()) rates.push_back(r.iterations_per_second());
  return Summarize(rates).p50;
}

v1::KernelCalibration Calibrate(v1::TaskKind kind, const KernelFn& kernel, const std::vector<int>& cpus,
                                const CancelToken& cancel, const CalibrationOptions& options) {
  v1::KernelCalibration c;
  c.set_kind(kind);
  c.set_measured_unix_ns(absl::ToUnixNanos(absl::Now()));
  const std::vector<int> before = AllowedCpus();
  for (int cpu : cpus) {
    if (cancel.cancelled()) break;
    if (!PinTo(cpu)) continue;
    const double rate = MeasureHere(kernel, cancel, options);
    if (rate <= 0) continue;
    v1::CpuRate* r = c.add_cpus();
    r->set_cpu(static_cast<uint32_t>(cpu));
    r->set_iterations_per_second(rate);
  }
  if (cpus.empty()) {
    c.set_iterations_per_second(MeasureHere(kernel, cancel, options));
  } else {
    cpu_set_t set;
    CPU_ZERO(&set);
    for (int cpu : before) CPU_SET(cpu, &set);
    if (!before.empty()) pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
    c.set_iterations_per_second(MedianRate(c));
  }
  return c;
}

}  // namespace busyfleet::worker
