#ifndef BUSYFLEET_COMMON_PARALLEL_H_
#define BUSYFLEET_COMMON_PARALLEL_H_

#include <cstddef>
#include <functional>

namespace busyfleet {

// Runs fn(part, begin, end) over [0, n) split into contiguous parts in
// order, each of at least `min_part` items (so n < 2 * min_part is one
// part, on this thread): part 0 on this thread, the others on helper
// threads, one a CPU (at most kMaxParallelParts), all joined before it
// returns. A helper thread that cannot be had runs its part here instead.
// The parts are the same for the same n and min_part on the same machine.
//
// Why: a job's table passes (a new job's records reset, a report's sums)
// run between jobs, while the workers and the other CPU wait; a 100,000-task
// table's pass took about 1.8 ms on one CPU of the 2-vCPU VM.
void ParallelFor(size_t n, size_t min_part, const std::function<void(size_t part, size_t begin, size_t end)>& fn);

// The number of parts ParallelFor(n, min_part, ...) makes.
size_t ParallelParts(size_t n, size_t min_part);

inline constexpr size_t kMaxParallelParts = 4;

}  // namespace busyfleet

#endif  // BUSYFLEET_COMMON_PARALLEL_H_
