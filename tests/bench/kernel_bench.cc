// The countdown kernel against the bare loop compiled alone: iterations per
// second per core. Run: build/release/tests/bench/kernel_bench
#include <benchmark/benchmark.h>

#include "common/kernels.h"

namespace {

constexpr uint64_t kIterations = 200'000'000;

void BM_BareLoop(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(busyfleet::BareCountdown(kIterations));
  state.counters["it/s"] = benchmark::Counter(static_cast<double>(kIterations) * state.iterations(),
                                              benchmark::Counter::kIsRate);
}

void BM_CountdownKernel(benchmark::State& state) {
  busyfleet::CancelToken cancel;
  for (auto _ : state) benchmark::DoNotOptimize(busyfleet::Countdown(kIterations, cancel).iterations_done);
  state.counters["it/s"] = benchmark::Counter(static_cast<double>(kIterations) * state.iterations(),
                                              benchmark::Counter::kIsRate);
}

BENCHMARK(BM_BareLoop)->Unit(benchmark::kMillisecond)->Repetitions(5)->ReportAggregatesOnly(true);
BENCHMARK(BM_CountdownKernel)->Unit(benchmark::kMillisecond)->Repetitions(5)->ReportAggregatesOnly(true);

}  // namespace

BENCHMARK_MAIN();
