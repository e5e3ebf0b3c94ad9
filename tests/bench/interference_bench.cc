// What the interference probe costs a task attempt (worker/interference.h):
// Begin + End around nothing, in thread mode (schedstat, rusage, /proc/stat,
// cpu.stat) and in process mode (no thread figures).
#include <benchmark/benchmark.h>
#include <unistd.h>

#include "busyfleet/v1/worker.pb.h"
#include "worker/interference.h"

namespace {

using busyfleet::worker::Interference;

void BM_ProbeThreadMode(benchmark::State& state) {
  busyfleet::v1::TaskResult r;
  r.set_start_cpu(0);
  r.set_end_cpu(0);
  r.set_start_mono_ns(1);
  r.set_end_mono_ns(1'000'001);
  for (auto _ : state) {
    const Interference::Probe begin = Interference::Begin(/*thread=*/true);
    Interference::End(begin, &r);
    benchmark::DoNotOptimize(r);
  }
}
BENCHMARK(BM_ProbeThreadMode);

void BM_ProbeProcessModeParentSide(benchmark::State& state) {
  busyfleet::v1::TaskResult r;
  r.set_start_mono_ns(1);
  r.set_end_mono_ns(1'000'001);
  for (auto _ : state) {
    const Interference::Probe begin = Interference::Begin(/*thread=*/false);
    Interference::End(begin, &r, Interference::ChildRunDelay(getpid()), nullptr);
    benchmark::DoNotOptimize(r);
  }
}
BENCHMARK(BM_ProbeProcessModeParentSide);

}  // namespace

BENCHMARK_MAIN();
