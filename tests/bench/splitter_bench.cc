// JobSplitter: validating and splitting a job into tasks, at the sizes the
// scale targets use (issue 7: 100,000 and 1,000,000 tasks).
//   build/release/tests/bench/splitter_bench
#include <benchmark/benchmark.h>

#include "coordinator/core/job_splitter.h"

namespace {

namespace v1 = busyfleet::v1;
using busyfleet::coordinator::SplitJob;
using busyfleet::coordinator::ValidateJobSpec;

v1::JobSpec CountdownSpec(uint32_t tasks, bool total) {
  v1::JobSpec spec;
  spec.set_kind(v1::TASK_KIND_COUNTDOWN);
  spec.set_tasks(tasks);
  if (total) {
    spec.set_total(uint64_t{tasks} * 1000 + 7);
  } else {
    spec.set_iterations(0);
  }
  return spec;
}

void BM_SplitIterations(benchmark::State& state) {
  const v1::JobSpec spec = CountdownSpec(static_cast<uint32_t>(state.range(0)), /*total=*/false);
  for (auto _ : state) {
    auto tasks = SplitJob(spec, 2, 2);
    if (!tasks.ok()) state.SkipWithError("SplitJob failed");
    benchmark::DoNotOptimize(tasks);
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
}

void BM_SplitTotal(benchmark::State& state) {
  const v1::JobSpec spec = CountdownSpec(static_cast<uint32_t>(state.range(0)), /*total=*/true);
  for (auto _ : state) {
    auto tasks = SplitJob(spec, 2, 2);
    if (!tasks.ok()) state.SkipWithError("SplitJob failed");
    benchmark::DoNotOptimize(tasks);
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
}

void BM_ValidateJobSpec(benchmark::State& state) {
  v1::JobSpec spec = CountdownSpec(100'000, false);
  spec.set_name("a benchmark job");
  for (auto _ : state) benchmark::DoNotOptimize(ValidateJobSpec(spec));
}

BENCHMARK(BM_SplitIterations)->Arg(1'000)->Arg(100'000)->Arg(1'000'000)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_SplitTotal)->Arg(100'000)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_ValidateJobSpec);

}  // namespace

BENCHMARK_MAIN();
