#ifndef BUSYFLEET_WORKER_HOST_MONITOR_H_
#define BUSYFLEET_WORKER_HOST_MONITOR_H_

// The worker's view of its host for honest measurements: the kernels'
// calibration (worker/calibration.h: at start, and again after the worker
// has been idle a while, one CPU at a time) and the host's background load
// (worker/host_noise.h, every few seconds). The worker client puts both in
// its hello and heartbeats. Thread-safe.

#include <functional>
#include <optional>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "busyfleet/v1/types.pb.h"
#include "worker/calibration.h"
#include "worker/host_noise.h"

namespace busyfleet::worker {

class HostMonitor {
 public:
  struct Kernel {
    v1::TaskKind kind;
    KernelFn run;
  };
  struct Options {
    std::vector<Kernel> kernels;  // empty: the C++ countdown only
    // Where the slots run (Executor::Options::slot_cpus); empty: floating.
    std::vector<std::vector<int>> slot_cpus;
    // CPUs calibrated at most (spread over the usable ones).
    size_t max_cpus = 16;
    CalibrationOptions calibration;
    // How often the host's load is sampled (and the idle check made): the
    // figures a bench's noise check reads cover the last second.
    absl::Duration tick = absl::Seconds(1);
    // Recalibrate once the worker has been idle this long and the last
    // calibration is older than recalibrate_age.
    absl::Duration idle_before_recalibration = absl::Seconds(30);
    absl::Duration recalibrate_age = absl::Minutes(5);
  };

  explicit HostMonitor(Options options);
  ~HostMonitor();

  // Calibrates every kernel on every CPU now, on the calling thread.
  void CalibrateNow();
  // Starts the background sampling; `idle` says whether no task is queued
  // or running (called from the monitor's thread).
  void Start(std::function<bool()> idle);
  // Stops and joins the thread; idempotent.
  void Stop();

  // The latest calibration of each kernel.
  std::vector<v1::KernelCalibration> Calibrations() const;
  // Calibrations made since the last call (for a heartbeat), and the
  // latest noise sample if not taken yet.
  std::vector<v1::KernelCalibration> TakeNewCalibrations();
  std::optional<v1::HostNoise> TakeNewNoise();

 private:
  void Loop(std::function<bool()> idle);
  // One CPU of the next recalibration, when the worker has idled enough.
  void RecalibrateStep(absl::Duration idle_for);
  void Publish(std::vector<v1::KernelCalibration> fresh);

  const Options options_;
  const std::vector<int> cpus_;
  NoiseSampler sampler_;  // the monitor's thread only
  mutable absl::Mutex mu_;
  std::vector<v1::KernelCalibration> calibrations_ ABSL_GUARDED_BY(mu_);
  std::vector<v1::KernelCalibration> new_calibrations_ ABSL_GUARDED_BY(mu_);
  std::optional<v1::HostNoise> new_noise_ ABSL_GUARDED_BY(mu_);
  absl::Time calibrated_at_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  // The recalibration in progress: the next CPU, and what it has so far.
  size_t next_cpu_ = 0;
  std::vector<v1::KernelCalibration> partial_;
  CancelToken never_;
  std::thread thread_;
};

}  // namespace busyfleet::worker

#endif  // BUSYFLEET_WORKER_HOST_MONITOR_H_
