#ifndef BUSYFLEET_COORDINATOR_CORE_LIMITS_H_
#define BUSYFLEET_COORDINATOR_CORE_LIMITS_H_

// Bounds on every request field, checked at the edge before anything is
// allocated. Documented in README.md ("Limits"); keep the two in step.

#include <cstdint>

#include "absl/time/time.h"

namespace busyfleet::limits {

inline constexpr uint32_t kMaxTasksPerJob = 1'000'000;
// About 50 minutes of countdown per task at 3.4 G iterations/s.
inline constexpr uint64_t kMaxIterationsPerTask = 10'000'000'000'000ULL;
inline constexpr absl::Duration kMaxTaskDuration = absl::Hours(24);
inline constexpr uint32_t kMaxAttempts = 100;
inline constexpr uint32_t kDefaultMaxAttempts = 3;
inline constexpr uint32_t kMaxSlotsPerJob = 1'000'000;
inline constexpr uint32_t kMaxSlotsPerWorker = 4096;
inline constexpr size_t kMaxNameBytes = 128;
inline constexpr size_t kMaxWorkerNames = 1024;
inline constexpr size_t kMaxLabels = 64;
inline constexpr size_t kMaxLabelBytes = 128;
// Tasks queued or running over all unfinished jobs; more is refused with
// RESOURCE_EXHAUSTED instead of growing memory.
inline constexpr uint64_t kMaxQueuedTasks = 5'000'000;
inline constexpr uint32_t kMaxListJobs = 1000;
// Jobs one PruneJobs call (or one retention pass) removes at most.
inline constexpr uint32_t kMaxPruneJobs = 10000;
// Task rows in one report reply (about 130 bytes each: far below the 16 MiB
// message limit); larger jobs are read in pages.
inline constexpr uint32_t kMaxTaskRowsPerReply = 50'000;
// Entries in one worker message (task updates, returned tasks).
inline constexpr int kMaxUpdatesPerMessage = 100'000;
// Clock readings from workers (monotonic and Unix nanoseconds) must lie in
// [0, kMaxClockNs); offsets within +-kMaxClockNs; round trips below
// kMaxRttNs. Sums and differences of such values cannot overflow int64.
inline constexpr int64_t kMaxClockNs = int64_t{1} << 62;
inline constexpr int64_t kMaxRttNs = int64_t{1} << 40;
inline constexpr uint32_t kDefaultListJobs = 50;

}  // namespace busyfleet::limits

#endif  // BUSYFLEET_COORDINATOR_CORE_LIMITS_H_
