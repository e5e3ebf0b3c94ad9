#ifndef BUSYFLEET_COMMON_PREFAULT_H_
#define BUSYFLEET_COMMON_PREFAULT_H_

#include <cstddef>

namespace busyfleet {

// Maps the whole pages inside [begin, begin + bytes) writable now, so that
// the first touch of large fresh memory pays no page faults (madvise
// MADV_POPULATE_WRITE, Linux 5.14+; the contents are not changed): from this
// thread and, for a range of at least kParallelPrefaultBytes, from up to
// three more threads at once (ParallelFor, in parts of whole pages).
//
// Why: a million-task job's table is 112 MB of fresh pages. Touching them
// one fault at a time took 64-81 ms, while the CPUs that will run the job
// waited; populated on two threads, 34-49 ms (a microbenchmark on the
// 2-vCPU VM, issue 17's closing note).
//
// Returns the bytes populated: 0 when the kernel cannot (older kernels,
// EINVAL) or the range holds no whole page. The memory works the same
// either way; it is then faulted in on first touch.
size_t PrefaultForWrite(void* begin, size_t bytes);

inline constexpr size_t kParallelPrefaultBytes = size_t{8} << 20;

}  // namespace busyfleet

#endif  // BUSYFLEET_COMMON_PREFAULT_H_
