#include "common/parallel.h"

#include <algorithm>
#include <system_error>
#include <thread>
#include <vector>

namespace busyfleet {

size_t ParallelParts(size_t n, size_t min_part) {
  static const size_t cpus = std::max<size_t>(1, std::thread::hardware_concurrency());
  const size_t by_size = n / std::max<size_t>(min_part, 1);
  return std::max<size_t>(1, std::min({cpus, kMaxParallelParts, by_size}));
}

void ParallelFor(size_t n, size_t min_part, const std::function<void(size_t, size_t, size_t)>& fn) {
  const size_t parts = ParallelParts(n, min_part);
  const size_t step = (n + parts - 1) / parts;
  std::vector<std::thread> helpers;
  std::vector<size_t> inline_parts;  // no thread to be had: run here
  for (size_t p = 1; p < parts; ++p) {
    const size_t begin = p * step;
    const size_t end = std::min(n, begin + step);
    if (begin >= end) break;
    try {
      helpers.emplace_back([&fn, p, begin, end] { fn(p, begin, end); });
    } catch (const std::system_error&) {
      inline_parts.push_back(p);
    }
  }
  fn(0, 0, std::min(n, step));
  for (const size_t p : inline_parts) fn(p, p * step, std::min(n, p * step + step));
  for (std::thread& t : helpers) t.join();
}

}  // namespace busyfleet
