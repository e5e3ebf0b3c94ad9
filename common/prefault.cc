#include "common/prefault.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <system_error>
#include <thread>
#include <vector>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23  // Linux 5.14; older headers lack it
#endif

namespace busyfleet {
namespace {

// Populates [begin, end) (page-aligned); whether the kernel did.
bool Populate(uintptr_t begin, uintptr_t end) {
  return end <= begin || madvise(reinterpret_cast<void*>(begin), end - begin, MADV_POPULATE_WRITE) == 0;
}

}  // namespace

size_t PrefaultForWrite(void* begin, size_t bytes) {
  static const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const uintptr_t b = reinterpret_cast<uintptr_t>(begin);
  if (begin == nullptr || bytes == 0 || b > UINTPTR_MAX - bytes) return 0;
  // Whole pages only: the partial ones at either end may be other
  // allocations' (populating them would be harmless, but not ours to do).
  const uintptr_t first = (b + page - 1) / page * page;
  const uintptr_t last = (b + bytes) / page * page;
  if (last <= first) return 0;
  const uintptr_t total = last - first;
  const unsigned cpus = std::max(1u, std::thread::hardware_concurrency());
  // One part a CPU (at most four), each of at least half the threshold.
  const uintptr_t parts = total < kParallelPrefaultBytes
                              ? 1
                              : std::min<uintptr_t>(std::min(cpus, 4u), total / (kParallelPrefaultBytes / 2));
  const uintptr_t step = (total / parts + page - 1) / page * page;
  std::atomic<bool> ok = true;
  std::vector<std::thread> helpers;
  for (uintptr_t i = 1; i < parts; ++i) {
    const uintptr_t from = first + i * step;
    const uintptr_t to = std::min(last, from + step);
    if (from >= to) break;
    try {
      helpers.emplace_back([from, to, &ok] {
        if (!Populate(from, to)) ok = false;
      });
    } catch (const std::system_error&) {  // no thread to be had: this one does it
      if (!Populate(from, to)) ok = false;
    }
  }
  if (!Populate(first, std::min(last, first + step))) ok = false;
  for (std::thread& t : helpers) t.join();
  return ok ? total : 0;
}

}  // namespace busyfleet
