#include "worker/host_monitor.h"

#include <algorithm>
#include <utility>

#include "absl/time/clock.h"
#include "common/clock.h"

namespace busyfleet::worker {
namespace {

std::vector<HostMonitor::Kernel> KernelsOrCountdown(std::vector<HostMonitor::Kernel> kernels) {
  if (kernels.empty()) {
    kernels.push_back({v1::TASK_KIND_COUNTDOWN, [](uint64_t n, const CancelToken& cancel) {
                         return Countdown(n, cancel);
                       }});
  }
  return kernels;
}

HostMonitor::Options WithKernels(HostMonitor::Options options) {
  options.kernels = KernelsOrCountdown(std::move(options.kernels));
  return options;
}

}  // namespace

HostMonitor::HostMonitor(Options options)
    : options_(WithKernels(std::move(options))), cpus_(CalibrationCpus(options_.slot_cpus, options_.max_cpus)) {}

HostMonitor::~HostMonitor() { Stop(); }

void HostMonitor::CalibrateNow() {
  std::vector<v1::KernelCalibration> fresh;
  for (const Kernel& k : options_.kernels) {
    fresh.push_back(Calibrate(k.kind, k.run, cpus_, never_, options_.calibration));
  }
  Publish(std::move(fresh));
}

void HostMonitor::Publish(std::vector<v1::KernelCalibration> fresh) {
  absl::MutexLock lock(&mu_);
  for (const v1::KernelCalibration& c : fresh) {
    if (c.iterations_per_second() <= 0) continue;
    new_calibrations_.push_back(c);
    bool replaced = false;
    for (v1::KernelCalibration& mine : calibrations_) {
      if (mine.kind() == c.kind()) {
        mine = c;
        replaced = true;
      }
    }
    if (!replaced) calibrations_.push_back(c);
  }
  calibrated_at_ = absl::Now();
}

void HostMonitor::Start(std::function<bool()> idle) {
  thread_ = std::thread([this, idle = std::move(idle)] { Loop(idle); });
}

void HostMonitor::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

void HostMonitor::Loop(std::function<bool()> idle) {
  MonoTime idle_since = MonoNow();
  sampler_.Sample(idle_since - MonoTime());  // the baseline: the first figures come a second later
  absl::Duration wait = std::min(absl::Seconds(1), options_.tick);
  for (;;) {
    {
      absl::MutexLock lock(&mu_);
      auto stopping = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_; };
      if (mu_.AwaitWithTimeout(absl::Condition(&stopping), wait)) return;
    }
    wait = options_.tick;
    const MonoTime now = MonoNow();
    if (std::optional<v1::HostNoise> noise = sampler_.Sample(now - MonoTime())) {
      absl::MutexLock lock(&mu_);
      new_noise_ = *std::move(noise);
    }
    if (!idle()) {
      idle_since = now;
      next_cpu_ = 0;  // a recalibration interrupted by work starts over
      partial_.clear();
      continue;
    }
    RecalibrateStep(now - idle_since);
  }
}

void HostMonitor::RecalibrateStep(absl::Duration idle_for) {
  if (idle_for < options_.idle_before_recalibration || cpus_.empty()) return;
  if (next_cpu_ == 0) {
    absl::MutexLock lock(&mu_);
    if (absl::Now() - calibrated_at_ < options_.recalibrate_age) return;
  }
  const std::vector<int> one = {cpus_[next_cpu_]};
  partial_.resize(options_.kernels.size());
  for (size_t k = 0; k < options_.kernels.size(); ++k) {
    const v1::KernelCalibration c =
        Calibrate(options_.kernels[k].kind, options_.kernels[k].run, one, never_, options_.calibration);
    partial_[k].set_kind(c.kind());
    partial_[k].set_measured_unix_ns(c.measured_unix_ns());
    for (const v1::CpuRate& r : c.cpus()) *partial_[k].add_cpus() = r;
  }
  if (++next_cpu_ < cpus_.size()) return;
  for (v1::KernelCalibration& c : partial_) c.set_iterations_per_second(MedianRate(c));
  Publish(std::move(partial_));
  partial_.clear();
  next_cpu_ = 0;
}

std::vector<v1::KernelCalibration> HostMonitor::Calibrations() const {
  absl::MutexLock lock(&mu_);
  return calibrations_;
}

std::vector<v1::KernelCalibration> HostMonitor::TakeNewCalibrations() {
  absl::MutexLock lock(&mu_);
  return std::exchange(new_calibrations_, {});
}

std::optional<v1::HostNoise> HostMonitor::TakeNewNoise() {
  absl::MutexLock lock(&mu_);
  return std::exchange(new_noise_, std::nullopt);
}

}  // namespace busyfleet::worker
