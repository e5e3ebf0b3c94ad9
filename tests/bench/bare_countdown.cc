// The chapter's loop compiled alone, nothing else in the program: the
// reference the countdown kernel is held to. Prints iterations per second.
//   build/release/tests/bare_countdown [iterations] [repetitions]
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

int main(int argc, char** argv) {
  const uint64_t n = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 2'000'000'000ULL;
  const int reps = argc > 2 ? std::atoi(argv[2]) : 5;
  double best = 0;
  for (int r = 0; r < reps; ++r) {
    uint64_t i = n;
    const auto t0 = std::chrono::steady_clock::now();
    while (i > 0) {
      --i;
      asm volatile("" : "+r"(i));
    }
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::max(best, static_cast<double>(n) / s);
  }
  std::printf("bare loop: %.3f G iterations/s (best of %d x %llu)\n", best / 1e9, reps,
              static_cast<unsigned long long>(n));
  return 0;
}
