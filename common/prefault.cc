#include "common/prefault.h"

#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>

#include "common/parallel.h"

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
  // Parts of at least half the threshold (so one part below it), counted
  // in pages.
  std::atomic<bool> ok = true;
  ParallelFor(total / page, kParallelPrefaultBytes / 2 / page, [first, &ok](size_t, size_t from, size_t to) {
    if (!Populate(first + from * page, first + to * page)) ok = false;
  });
  return ok ? total : 0;
}

}  // namespace busyfleet
