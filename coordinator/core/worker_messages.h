#ifndef BUSYFLEET_COORDINATOR_CORE_WORKER_MESSAGES_H_
#define BUSYFLEET_COORDINATOR_CORE_WORKER_MESSAGES_H_

// The worker protocol seen from the domain: what a worker may send (checked
// before the Coordinator takes its lock), and the messages it is sent.

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "busyfleet/v1/coordinator.pb.h"
#include "busyfleet/v1/worker.pb.h"
#include "coordinator/core/job_model.h"

namespace busyfleet::coordinator {

// InvalidArgument (naming the field and the limit) for a Hello the
// coordinator cannot take: name, slots, labels, hostname, instance_id,
// held task references.
absl::Status ValidateHello(const v1::Hello& hello);
// InvalidArgument for a message with too many task entries, a task
// reference whose job id is longer than a name, or with worker clock values
// out of range (they feed timing arithmetic, which must not overflow).
absl::Status ValidateWorkerMessage(const v1::WorkerMessage& m);

// Cuts the strings a worker sends that are kept or echoed but not refused
// when long (TaskResult.error, HostInfo.cpu_model, Hello.version) to their
// limits (core/limits.h), at a UTF-8 boundary, with kTruncatedMarker
// appended. Returns how many were cut.
int TruncateHelloText(v1::Hello& hello);
int TruncateWorkerText(v1::WorkerMessage& m);
// `text` cut to at most `max_bytes` (marker included) when longer; true if cut.
bool TruncateText(std::string& text, size_t max_bytes);

// The assignment of `attempt` of the job's task.
v1::Assignment MakeAssignment(const JobRecord& job, const TaskRecord& task, uint32_t attempt);
// Adds the assignments of the job's tasks [first, first + count), each of
// its current attempt, to `batch`: a task extends the batch's last range
// when it is the next task of the same job on the same attempt with the
// same iterations, else it starts a new range. `attempt_of_all`, when not
// 0, is every one of those tasks' attempt (the dealer knows it: none is
// read back from the table).
void AddRunToRanges(const JobRecord& job, uint32_t first, uint32_t count, v1::AssignBatch& batch,
                    uint32_t attempt_of_all = 0);
// Turns the batch's ranges of one task into plain assignments (no smaller
// on the wire, and a lone one may run inline on the worker).
void SingleRangesToAssignments(v1::AssignBatch& batch);
// Tells a worker to stop one attempt of a task.
v1::CoordinatorMessage CancelMessage(const std::string& job_id, uint32_t index, uint32_t attempt);

// The first message of a session: its id and name, the heartbeat interval
// and worker timeout, our wall clock and the hello's echo (clock offsets).
v1::CoordinatorMessage WelcomeMessage(const std::string& session_id, const std::string& name,
                                      const v1::Hello& hello, absl::Duration heartbeat_interval,
                                      absl::Duration worker_timeout, absl::Time now);
// The ack of `hb`; with `interval`, asking for heartbeats that often from now on.
v1::CoordinatorMessage HeartbeatAck(const v1::Heartbeat& hb, absl::Time now,
                                    std::optional<absl::Duration> interval = std::nullopt);
// Adds a request to stop one attempt of a task to `m`'s cancel.
void AddCancel(const std::string& job_id, uint32_t index, uint32_t attempt, v1::CoordinatorMessage& m);

}  // namespace busyfleet::coordinator

#endif  // BUSYFLEET_COORDINATOR_CORE_WORKER_MESSAGES_H_
