// TimingAggregator: a job's report and its progress, on jobs of 10,000 and
// 100,000 finished tasks over two workers.
//   build/release/tests/bench/aggregator_bench
#include <map>
#include <string>

#include <benchmark/benchmark.h>

#include "absl/time/time.h"
#include "coordinator/core/timing_aggregator.h"

namespace {

namespace v1 = busyfleet::v1;
using busyfleet::coordinator::BuildProgress;
using busyfleet::coordinator::BuildReport;
using busyfleet::coordinator::JobRecord;
using busyfleet::coordinator::TaskRecord;
using busyfleet::coordinator::WorkerFacts;

const absl::Time kT0 = absl::FromUnixSeconds(1'700'000'000);

// `n` succeeded tasks alternating between two one-slot workers, each 1 ms
// plus a little jitter (so percentiles and stragglers have work to do).
JobRecord FinishedJob(uint32_t n) {
  JobRecord job;
  job.id = "job-1";
  job.spec.set_kind(v1::TASK_KIND_COUNTDOWN);
  job.spec.set_tasks(n);
  job.spec.set_iterations(1000);
  job.state = v1::JOB_STATE_SUCCEEDED;
  job.submitted_at = kT0;
  job.tasks.resize(n);
  absl::Time clock[2] = {kT0 + absl::Microseconds(200), kT0 + absl::Microseconds(250)};
  for (uint32_t i = 0; i < n; ++i) {
    TaskRecord& t = job.tasks[i];
    const int w = static_cast<int>(i % 2);
    t.index = i;
    t.state = v1::TASK_STATE_SUCCEEDED;
    t.current.number = 1;
    t.current.worker = w == 0 ? "worker-a" : "worker-b";
    t.current.host = "host";
    t.current.slot = 0;
    t.current.assigned_at = clock[w];
    t.current.started_at = clock[w] + absl::Microseconds(10);
    t.current.ended_at = t.current.started_at + absl::Microseconds(1000 + (i * 7919) % 600);
    t.current.result_at = t.current.ended_at + absl::Microseconds(30);
    t.current.cpu_ns = absl::ToInt64Nanoseconds(t.current.ended_at - t.current.started_at);
    t.current.iterations_done = job.task_iterations(i);
    clock[w] = t.current.ended_at;
  }
  job.succeeded = n;
  job.iterations_total = uint64_t{n} * 1000;
  job.iterations_done = job.iterations_total;
  job.finished_at = std::max(clock[0], clock[1]) + absl::Microseconds(30);
  return job;
}

const std::map<std::string, WorkerFacts>& Workers() {
  static const auto* w = new std::map<std::string, WorkerFacts>{{"worker-a", {"host", 1}}, {"worker-b", {"host", 1}}};
  return *w;
}

void BM_BuildReport(benchmark::State& state) {
  const JobRecord job = FinishedJob(static_cast<uint32_t>(state.range(0)));
  const bool include_tasks = state.range(1) != 0;
  for (auto _ : state) {
    v1::JobReport r = BuildReport(job, Workers(), job.finished_at, include_tasks);
    benchmark::DoNotOptimize(r);
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
  state.SetLabel(include_tasks ? "with task rows" : "summary only");
}

// The O(1) progress update (sent on every Watch tick).
void BM_BuildProgress(benchmark::State& state) {
  const JobRecord job = FinishedJob(static_cast<uint32_t>(state.range(0)));
  for (auto _ : state) {
    v1::JobProgress p = BuildProgress(job, job.finished_at);
    benchmark::DoNotOptimize(p);
  }
}

// A report's serialised size (what GetJob / Watch puts on the wire).
void BM_ReportSerialize(benchmark::State& state) {
  const JobRecord job = FinishedJob(static_cast<uint32_t>(state.range(0)));
  const v1::JobReport r = BuildReport(job, Workers(), job.finished_at, /*include_tasks=*/true);
  std::string out;
  for (auto _ : state) {
    out.clear();
    r.SerializeToString(&out);
    benchmark::DoNotOptimize(out);
  }
  state.counters["bytes"] = static_cast<double>(out.size());
}

BENCHMARK(BM_BuildReport)
    ->Args({1, 1})  // a one-task job's final report: on the latency path
    ->Args({10'000, 0})
    ->Args({10'000, 1})
    ->Args({100'000, 0})
    ->Args({100'000, 1})
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_BuildProgress)->Arg(10'000)->Arg(100'000);
BENCHMARK(BM_ReportSerialize)->Arg(1)->Arg(10'000)->Arg(100'000)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
