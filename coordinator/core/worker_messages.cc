#include "coordinator/core/worker_messages.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "busyfleet/assign_range.h"
#include "busyfleet/packed_results.h"
#include "busyfleet/proto_time.h"
#include "common/status_macros.h"
#include "coordinator/core/job_splitter.h"
#include "coordinator/core/limits.h"

namespace busyfleet::coordinator {
namespace {


absl::Status ClockField(absl::string_view field, int64_t ns, int64_t lo, int64_t hi) {
  if (ns >= lo && ns < hi) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(field, " must be in [", lo, ", ", hi, "), got ", ns));
}

// Worker clock values feed timing arithmetic: bound them so it cannot overflow.
absl::Status ValidateWorkerClocks(const v1::WorkerMessage& m) {
  constexpr int64_t kMax = limits::kMaxClockNs;
  if (m.has_heartbeat()) {
    const v1::Heartbeat& hb = m.heartbeat();
    BF_RETURN_IF_ERROR(ClockField("heartbeat.sent_mono_ns", hb.sent_mono_ns(), 0, kMax));
    BF_RETURN_IF_ERROR(ClockField("heartbeat.sent_unix_ns", hb.sent_unix_ns(), 0, kMax));
    BF_RETURN_IF_ERROR(ClockField("heartbeat.clock_offset_ns", hb.clock_offset_ns(), -kMax, kMax));
    BF_RETURN_IF_ERROR(ClockField("heartbeat.clock_rtt_ns", hb.clock_rtt_ns(), 0, limits::kMaxRttNs));
    if (hb.has_heartbeat_interval()) {
      BF_RETURN_IF_ERROR(ClockField("heartbeat.heartbeat_interval (ns)",
                                    absl::ToInt64Nanoseconds(ToAbslDuration(hb.heartbeat_interval())), 0, kMax));
    }
  }
  for (const v1::TaskStarted& s : m.updates().started()) {
    BF_RETURN_IF_ERROR(ClockField("started.start_mono_ns", s.start_mono_ns(), 0, kMax));
  }
  for (const v1::TaskResult& r : m.updates().results()) {
    BF_RETURN_IF_ERROR(ClockField("results.start_mono_ns", r.start_mono_ns(), 0, kMax));
    BF_RETURN_IF_ERROR(ClockField("results.end_mono_ns", r.end_mono_ns(), r.start_mono_ns(), kMax));
    BF_RETURN_IF_ERROR(ClockField("results.cpu_ns", r.cpu_ns(), 0, kMax));
  }
  return absl::OkStatus();
}

// Job ids are ours (short); a longer one is not a job, and would be echoed
// back in a cancel.
absl::Status TaskRefs(absl::string_view field, const google::protobuf::RepeatedPtrField<v1::TaskRef>& refs) {
  for (const v1::TaskRef& ref : refs) {
    if (ref.job_id().size() > limits::kMaxNameBytes) {
      return absl::InvalidArgumentError(absl::StrCat(field, ".job_id must be at most ", limits::kMaxNameBytes,
                                                     " bytes, got ", ref.job_id().size()));
    }
  }
  return absl::OkStatus();
}

template <typename Entries>
absl::Status EntryRefs(absl::string_view field, const Entries& entries) {
  for (const auto& e : entries) {
    if (e.task().job_id().size() > limits::kMaxNameBytes) {
      return absl::InvalidArgumentError(absl::StrCat(field, ".task.job_id must be at most ", limits::kMaxNameBytes,
                                                     " bytes, got ", e.task().job_id().size()));
    }
  }
  return absl::OkStatus();
}

}  // namespace

bool TruncateText(std::string& text, size_t max_bytes) {
  if (text.size() <= max_bytes) return false;
  const size_t marker = sizeof(limits::kTruncatedMarker) - 1;
  size_t cut = max_bytes > marker ? max_bytes - marker : 0;
  // Back off to the start of a UTF-8 sequence (never split a character).
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
  text.resize(cut);
  text.append(limits::kTruncatedMarker, max_bytes > marker ? marker : 0);
  return true;
}

int TruncateHelloText(v1::Hello& hello) {
  int cut = TruncateText(*hello.mutable_host()->mutable_cpu_model(), limits::kMaxHostTextBytes) ? 1 : 0;
  if (TruncateText(*hello.mutable_version(), limits::kMaxHostTextBytes)) ++cut;
  if (TruncateText(*hello.mutable_python_version(), limits::kMaxHostTextBytes)) ++cut;
  return cut;
}

int TruncateWorkerText(v1::WorkerMessage& m) {
  if (!m.has_updates()) return 0;
  int cut = 0;
  for (v1::TaskResult& r : *m.mutable_updates()->mutable_results()) {
    if (TruncateText(*r.mutable_error(), limits::kMaxErrorBytes)) ++cut;
  }
  return cut;
}

absl::Status ValidateHello(const v1::Hello& hello) {
  BF_RETURN_IF_ERROR(ValidateName("hello.name", hello.name(), /*allow_empty=*/false));
  if (hello.slots() < 1 || hello.slots() > limits::kMaxSlotsPerWorker) {
    return absl::InvalidArgumentError(absl::StrCat("hello.slots must be between 1 and ",
                                                   limits::kMaxSlotsPerWorker, ", got ", hello.slots()));
  }
  if (hello.labels_size() > static_cast<int>(limits::kMaxLabels)) {
    return absl::InvalidArgumentError(absl::StrCat("hello.labels must have at most ", limits::kMaxLabels,
                                                   " entries, got ", hello.labels_size()));
  }
  for (const auto& [k, v] : hello.labels()) {
    BF_RETURN_IF_ERROR(ValidateName("label key", k, false));
    BF_RETURN_IF_ERROR(ValidateName("label value", v, true));
  }
  BF_RETURN_IF_ERROR(ValidateName("hello.host.hostname", hello.host().hostname(), true));
  // Fleet totals count cores once per machine id: it must stay a short name.
  BF_RETURN_IF_ERROR(ValidateName("hello.host.machine_id", hello.host().machine_id(), true));
  if (hello.instance_id().size() > limits::kMaxNameBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("hello.instance_id must be at most ", limits::kMaxNameBytes, " bytes"));
  }
  if (hello.held_size() > limits::kMaxUpdatesPerMessage) {
    return absl::InvalidArgumentError(absl::StrCat("hello.held must have at most ", limits::kMaxUpdatesPerMessage,
                                                   " entries, got ", hello.held_size()));
  }
  return TaskRefs("hello.held", hello.held());
}

absl::Status ValidateWorkerMessage(const v1::WorkerMessage& m) {
  const int updates = m.updates().started_size() + m.updates().results_size() + PackedEntries(m.updates());
  if (updates > limits::kMaxUpdatesPerMessage || m.drain().returned_size() > limits::kMaxUpdatesPerMessage) {
    return absl::InvalidArgumentError(absl::StrCat("a worker message may carry at most ",
                                                   limits::kMaxUpdatesPerMessage, " task entries, got ",
                                                   std::max(updates, m.drain().returned_size())));
  }
  BF_RETURN_IF_ERROR(EntryRefs("started", m.updates().started()));
  BF_RETURN_IF_ERROR(EntryRefs("results", m.updates().results()));
  for (const v1::PackedResults& p : m.updates().packed()) {
    if (p.job_id().size() > limits::kMaxNameBytes) {
      return absl::InvalidArgumentError(absl::StrCat("packed.job_id must be at most ", limits::kMaxNameBytes,
                                                     " bytes, got ", p.job_id().size()));
    }
    BF_RETURN_IF_ERROR(ValidatePacked(p, limits::kMaxUpdatesPerMessage, limits::kMaxClockNs));
  }
  BF_RETURN_IF_ERROR(TaskRefs("drain.returned", m.drain().returned()));
  return ValidateWorkerClocks(m);
}

v1::Assignment MakeAssignment(const JobRecord& job, const TaskRecord& task, uint32_t attempt) {
  v1::Assignment a;
  a.mutable_task()->set_job_id(job.id);
  a.mutable_task()->set_task_index(task.index);
  a.mutable_task()->set_attempt(attempt);
  a.set_kind(job.spec.kind());
  a.set_iterations(job.task_iterations(task.index));
  if (!KindTakesIterations(job.spec.kind())) {
    *a.mutable_duration() = ToProtoDuration(job.task_duration());
  }
  a.set_exec(job.spec.exec());
  if (job.spec.has_task_timeout()) *a.mutable_timeout() = job.spec.task_timeout();
  return a;
}

void AddRunToRanges(const JobRecord& job, uint32_t first, uint32_t count, v1::AssignBatch& batch,
                    uint32_t attempt_of_all) {
  // The job's id is compared once for the run, not once a task; its plan
  // is worked out once (JobRecord::task_iterations works it out a call).
  const JobPlan plan = PlanFor(job.spec, job.total_tasks());
  constexpr uint32_t kMax = limits::kMaxUpdatesPerMessage;
  v1::AssignRange* last = nullptr;
  if (batch.ranges_size() > 0 && batch.ranges(batch.ranges_size() - 1).job_id() == job.id) {
    last = batch.mutable_ranges(batch.ranges_size() - 1);
  }
  for (uint32_t done = 0; done < count;) {
    const uint32_t index = first + done;
    const uint32_t attempt = attempt_of_all != 0 ? attempt_of_all : job.tasks[index].current.number;
    const uint64_t iterations = plan.Iterations(index);
    // The tasks from here with that attempt and work: one range, or the
    // rest of the last one (protobuf's setters once a stretch, not a task).
    uint32_t same = plan.SameWorkRun(index, count - done);
    if (attempt_of_all == 0) {
      for (uint32_t k = 1; k < same; ++k) {
        if (job.tasks[index + k].current.number != attempt) {
          same = k;
          break;
        }
      }
    }
    for (uint32_t taken = 0; taken < same;) {
      const bool extends = last != nullptr && last->attempt() == attempt && last->iterations() == iterations &&
                           static_cast<uint64_t>(last->first_index()) + last->count() == index + taken &&
                           last->count() < kMax;
      if (!extends) {
        last = batch.add_ranges();
        last->set_job_id(job.id);
        last->set_first_index(index + taken);
        last->set_count(0);
        last->set_attempt(attempt);
        last->set_kind(job.spec.kind());
        last->set_iterations(iterations);
        if (!KindTakesIterations(job.spec.kind())) *last->mutable_duration() = ToProtoDuration(job.task_duration());
        last->set_exec(job.spec.exec());
        if (job.spec.has_task_timeout()) *last->mutable_timeout() = job.spec.task_timeout();
      }
      const uint32_t take = std::min(same - taken, kMax - last->count());
      last->set_count(last->count() + take);
      taken += take;
    }
    done += same;
  }
}

void SingleRangesToAssignments(v1::AssignBatch& batch) {
  auto* ranges = batch.mutable_ranges();
  int kept = 0;
  for (int i = 0; i < ranges->size(); ++i) {
    v1::AssignRange& r = *ranges->Mutable(i);
    if (r.count() != 1) {
      if (kept != i) ranges->SwapElements(kept, i);
      ++kept;
      continue;
    }
    SetRangeTask(r, 0, *batch.add_assignments());
  }
  ranges->DeleteSubrange(kept, ranges->size() - kept);
}

v1::CoordinatorMessage CancelMessage(const std::string& job_id, uint32_t index, uint32_t attempt) {
  v1::CoordinatorMessage m;
  AddCancel(job_id, index, attempt, m);
  return m;
}

void AddCancel(const std::string& job_id, uint32_t index, uint32_t attempt, v1::CoordinatorMessage& m) {
  v1::TaskRef* ref = m.mutable_cancel()->add_tasks();
  ref->set_job_id(job_id);
  ref->set_task_index(index);
  ref->set_attempt(attempt);
}

v1::CoordinatorMessage WelcomeMessage(const std::string& session_id, const std::string& name,
                                      const v1::Hello& hello, absl::Duration heartbeat_interval,
                                      absl::Duration worker_timeout, absl::Time now) {
  v1::CoordinatorMessage welcome;
  v1::Welcome* w = welcome.mutable_welcome();
  w->set_session_id(session_id);
  w->set_name(name);
  *w->mutable_heartbeat_interval() = ToProtoDuration(heartbeat_interval);
  *w->mutable_worker_timeout() = ToProtoDuration(worker_timeout);
  w->set_coordinator_unix_ns(absl::ToUnixNanos(now));
  w->set_echo_sent_mono_ns(hello.sent_mono_ns());
  w->set_accepts_packed_results(true);
  w->set_accepts_packed_constants(true);
  return welcome;
}

v1::CoordinatorMessage HeartbeatAck(const v1::Heartbeat& hb, absl::Time now, std::optional<absl::Duration> interval) {
  v1::CoordinatorMessage ack;
  ack.mutable_heartbeat_ack()->set_seq(hb.seq());
  ack.mutable_heartbeat_ack()->set_echo_sent_mono_ns(hb.sent_mono_ns());
  ack.mutable_heartbeat_ack()->set_coordinator_unix_ns(absl::ToUnixNanos(now));
  if (interval) *ack.mutable_heartbeat_ack()->mutable_heartbeat_interval() = ToProtoDuration(*interval);
  return ack;
}

}  // namespace busyfleet::coordinator
