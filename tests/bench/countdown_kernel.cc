// The worker's countdown kernel (cancel and deadline checks included), timed
// the same way as bare_countdown.cc. Prints iterations per second.
//   build/release/tests/bench/countdown_kernel [iterations] [repetitions]
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "common/kernels.h"

int main(int argc, char** argv) {
  const uint64_t n = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 2'000'000'000ULL;
  const int reps = argc > 2 ? std::atoi(argv[2]) : 5;
  busyfleet::CancelToken cancel;
  double best = 0;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    const busyfleet::KernelResult k = busyfleet::Countdown(n, cancel);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (k.iterations_done != n) return 1;
    best = std::max(best, static_cast<double>(n) / s);
  }
  std::printf("countdown kernel: %.3f G iterations/s (best of %d x %llu)\n", best / 1e9, reps,
              static_cast<unsigned long long>(n));
  return 0;
}
