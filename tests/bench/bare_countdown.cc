// The chapter's loop compiled alone, nothing else in the program: the
// reference the countdown kernel is held to.
//
//   bare_countdown [iterations] [repetitions]
//       prints the best iterations per second of one core;
//   bare_countdown --split TASKS ITERATIONS THREADS
//       the bare run of a job split the same way: THREADS threads pull the
//       TASKS tasks of ITERATIONS each on demand (as the fleet's slots do)
//       and exit; time it from outside (/usr/bin/time). Prints the wall time
//       it measured itself too.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

namespace {

void Countdown(uint64_t n) {
  while (n > 0) {
    --n;
    asm volatile("" : "+r"(n));
  }
}

int Split(uint64_t tasks, uint64_t iterations, int threads) {
  std::atomic<uint64_t> next{0};
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&] {
      while (next.fetch_add(1, std::memory_order_relaxed) < tasks) Countdown(iterations);
    });
  }
  for (std::thread& t : pool) t.join();
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("bare split: %llu tasks x %llu iterations on %d threads: %.6f s\n",
              static_cast<unsigned long long>(tasks), static_cast<unsigned long long>(iterations), threads, s);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::strcmp(argv[1], "--split") == 0) {
    if (argc != 5) {
      std::fprintf(stderr, "usage: bare_countdown --split TASKS ITERATIONS THREADS\n");
      return 2;
    }
    const int threads = std::atoi(argv[4]);
    if (threads < 1 || threads > 1024) {
      std::fprintf(stderr, "bare_countdown: THREADS must be 1..1024, got %s\n", argv[4]);
      return 2;
    }
    return Split(std::strtoull(argv[2], nullptr, 10), std::strtoull(argv[3], nullptr, 10), threads);
  }
  const uint64_t n = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 2'000'000'000ULL;
  const int reps = argc > 2 ? std::atoi(argv[2]) : 5;
  double best = 0;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    Countdown(n);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::max(best, static_cast<double>(n) / s);
  }
  std::printf("bare loop: %.3f G iterations/s (best of %d x %llu)\n", best / 1e9, reps,
              static_cast<unsigned long long>(n));
  return 0;
}
