// Scheduler: the cost of one assignment. Each round dispatches what credit
// allows, then releases every assigned task (its result came back), the way
// the coordinator drives it, until the job's queue is empty.
//   build/release/tests/bench/scheduler_bench
#include <cstdint>
#include <numeric>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

#include "absl/strings/str_cat.h"
#include "coordinator/core/scheduler.h"

namespace {

using busyfleet::coordinator::Scheduler;

// Adds `workers` workers of `slots` slots and one job of `tasks` queued tasks.
void Setup(Scheduler& s, int workers, int slots, uint32_t tasks, const std::string& job) {
  for (int i = 0; i < workers; ++i) {
    Scheduler::WorkerSpec w;
    w.session = absl::StrCat("session-", i);
    w.name = absl::StrCat("worker-", i);
    w.slots = slots;
    w.exec_modes = {busyfleet::v1::EXEC_MODE_THREAD};
    if (!s.AddWorker(std::move(w)).ok()) std::abort();
  }
  std::vector<uint32_t> queued(tasks);
  std::iota(queued.begin(), queued.end(), 0);
  if (!s.AddJob(job, {}, queued, 1).ok()) std::abort();
}

// args: workers, slots per worker, tasks.
void BM_DispatchRelease(benchmark::State& state) {
  const int workers = static_cast<int>(state.range(0));
  const int slots = static_cast<int>(state.range(1));
  const auto tasks = static_cast<uint32_t>(state.range(2));
  int64_t assigned = 0;
  for (auto _ : state) {
    state.PauseTiming();
    Scheduler s(Scheduler::Options{});
    Setup(s, workers, slots, tasks, "job-1");
    state.ResumeTiming();
    while (s.QueuedTasks() > 0) {
      std::vector<Scheduler::Assignment> batch = s.Dispatch();
      if (batch.empty()) {
        state.SkipWithError("Dispatch assigned nothing with tasks queued");
        break;
      }
      assigned += static_cast<int64_t>(batch.size());
      for (const Scheduler::Assignment& a : batch) {
        if (!s.Release(a.session, a.task).ok()) std::abort();
      }
    }
  }
  state.SetItemsProcessed(assigned);
}

// One task completes, one is dispatched: the steady state of a long job
// (the case the coordinator hits once per result).
void BM_DispatchOneAfterRelease(benchmark::State& state) {
  const int workers = static_cast<int>(state.range(0));
  Scheduler s(Scheduler::Options{});
  Setup(s, workers, 1, 5'000'000, "job-1");
  std::vector<Scheduler::Assignment> in_flight = s.Dispatch();
  size_t next = 0;
  for (auto _ : state) {
    const Scheduler::Assignment done = in_flight[next];
    if (!s.Release(done.session, done.task).ok()) std::abort();
    std::vector<Scheduler::Assignment> more = s.Dispatch();
    if (more.size() != 1) {
      state.SkipWithError("expected exactly one assignment");
      break;
    }
    in_flight[next] = std::move(more[0]);
    next = (next + 1) % in_flight.size();
    if (s.QueuedTasks() == 0) {
      state.SkipWithError("queue ran out; raise the task count");
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());
}

BENCHMARK(BM_DispatchRelease)
    ->Args({2, 1, 100'000})
    ->Args({10, 4, 100'000})
    ->Args({1000, 1, 100'000})
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_DispatchOneAfterRelease)->Arg(2)->Arg(100)->Arg(1000)->Iterations(1'000'000);

}  // namespace

BENCHMARK_MAIN();
