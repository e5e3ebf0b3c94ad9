#ifndef BUSYFLEET_WORKER_CALIBRATION_H_
#define BUSYFLEET_WORKER_CALIBRATION_H_

// Calibration: how fast a kernel runs on each CPU with nothing else on the
// worker, so that a report can say what a job's work should have taken
// (JobTiming.work_serial_seconds) and flag a task that ran slower than its
// core allows. The calling thread is pinned to each CPU in turn; a few short
// runs each, timed on the thread's CPU clock (a run time-sliced with another
// process still measures the core's speed), the fastest kept.

#include <functional>
#include <vector>

#include "absl/time/time.h"
#include "busyfleet/v1/types.pb.h"
#include "common/kernels.h"

namespace busyfleet::worker {

// Runs `n` iterations of a kernel (Countdown, or the Python loop).
using KernelFn = std::function<KernelResult(uint64_t n, const CancelToken& cancel)>;

struct CalibrationOptions {
  // Each measured run's target length, and how many runs per CPU.
  absl::Duration run = absl::Milliseconds(10);
  int runs = 3;
};

// The CPUs to calibrate: the first CPU of each slot when slots are pinned
// (`slot_cpus`), else the CPUs this thread may run on; at most `max_cpus`,
// spread evenly over the list.
std::vector<int> CalibrationCpus(const std::vector<std::vector<int>>& slot_cpus, size_t max_cpus);

// Measures `kernel` on each of `cpus` (a CPU the thread cannot be pinned
// to is skipped; an empty list measures wherever the thread runs, as CPU
// -1 left out of `cpus`). Restores the thread's affinity. Stops early, with
// what it has, when `cancel` fires. The rate is 0 when nothing was measured.
v1::KernelCalibration Calibrate(v1::TaskKind kind, const KernelFn& kernel, const std::vector<int>& cpus,
                                const CancelToken& cancel, const CalibrationOptions& options = {});

// The median of the CPUs' rates (what Calibrate puts in iterations_per_second).
double MedianRate(const v1::KernelCalibration& c);

}  // namespace busyfleet::worker

#endif  // BUSYFLEET_WORKER_CALIBRATION_H_
