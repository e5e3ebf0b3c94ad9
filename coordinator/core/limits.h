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

// --- What a peer may make the coordinator hold (issue 14, item 4) ---
// A worker's TaskResult.error is kept to this many bytes (longer: cut at a
// UTF-8 boundary, kTruncatedMarker appended); so is a TaskStarted or
// TaskResult's task reference's job id refused beyond kMaxNameBytes.
inline constexpr size_t kMaxErrorBytes = 1024;
// An error status's message (it may echo a peer's value) is cut to this
// many bytes before it is sent or logged.
inline constexpr size_t kMaxStatusMessageBytes = 1024;
// HostInfo.cpu_model and Hello.version are cut to this many bytes.
inline constexpr size_t kMaxHostTextBytes = 256;
inline constexpr char kTruncatedMarker[] = "...[truncated]";
// A job's error names at most this many distinct failure messages of the
// task that failed it (with counts), not every attempt's.
inline constexpr size_t kMaxDistinctErrors = 5;
// Messages waiting to be written to one worker stream; a worker that stops
// reading past this is disconnected (its tasks are requeued, as for a lost
// worker).
inline constexpr size_t kMaxQueuedMessagesPerStream = 4096;
inline constexpr size_t kMaxQueuedBytesPerStream = size_t{64} << 20;
// A worker stream being closed (refused, ended by the coordinator) with a
// write still outstanding ends once that write is done, so the worker reads
// why; a write still stuck this long after (the worker stopped reading) is
// cancelled and the session's place freed.
inline constexpr absl::Duration kStuckWriteGrace = absl::Seconds(5);
// A watch whose write has been stuck this long is closed at its next update.
inline constexpr absl::Duration kMaxWatchWriteStall = absl::Seconds(30);
// Default caps on concurrent peers (daemon flags --max-sessions, --max-watches).
inline constexpr uint32_t kDefaultMaxSessions = 10'000;
inline constexpr uint32_t kDefaultMaxWatches = 1'000;
// A reply is built to at most this many bytes, well under the 16 MiB message
// limit: task and attempt rows beyond it are left out and counted
// (JobReport.task_rows_omitted, attempts_omitted), workers beyond it in
// ListWorkers too (ListWorkersResponse.workers_omitted).
inline constexpr size_t kMaxReplyBytes = size_t{12} << 20;
// A worker's calibrations (Hello, Heartbeat): kinds kept, CPUs per kind (a
// calibration with more, or with a rate that is not a positive finite number
// below kMaxCalibratedRate, is dropped); its HostNoise: busy processes kept,
// bytes of a process name or governor.
inline constexpr size_t kMaxCalibratedKinds = 8;
inline constexpr int kMaxCalibratedCpus = 4096;
inline constexpr double kMaxCalibratedRate = 1e13;
inline constexpr int kMaxBusyProcesses = 3;
inline constexpr size_t kMaxNoiseTextBytes = 64;

}  // namespace busyfleet::limits

#endif  // BUSYFLEET_COORDINATOR_CORE_LIMITS_H_
