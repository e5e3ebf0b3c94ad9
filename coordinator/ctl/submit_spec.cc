#include "coordinator/ctl/submit_spec.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "busyfleet/proto_time.h"
#include "common/flags.h"
#include "common/status_macros.h"

namespace busyfleet::coordctl {
namespace {

// --kind and what each kind takes: iterations (or a total) for countdown
// and python, a duration for spin and sleep.
absl::Status SetWork(const SubmitFlags& f, v1::JobSpec& spec) {
  if (f.kind == "countdown") {
    spec.set_kind(v1::TASK_KIND_COUNTDOWN);
  } else if (f.kind == "python") {
    spec.set_kind(v1::TASK_KIND_PYTHON);
  } else if (f.kind == "spin") {
    spec.set_kind(v1::TASK_KIND_SPIN);
  } else {
    spec.set_kind(v1::TASK_KIND_SLEEP);
  }
  if (spec.kind() == v1::TASK_KIND_COUNTDOWN || spec.kind() == v1::TASK_KIND_PYTHON) {
    if (!f.duration.empty()) return absl::InvalidArgumentError("--duration applies to --kind spin and sleep");
    if (f.total == 0) {
      spec.set_iterations(f.iterations);
      return absl::OkStatus();
    }
    if (f.iterations_given) return absl::InvalidArgumentError("give --iterations (per task) or --total, not both");
    spec.set_total(f.total);
    return absl::OkStatus();
  }
  if (f.iterations_given || f.total != 0) {
    return absl::InvalidArgumentError("--iterations and --total apply to --kind countdown and python; use --duration");
  }
  if (f.duration.empty()) return absl::InvalidArgumentError("--duration is required for --kind " + f.kind);
  BF_ASSIGN_OR_RETURN(const absl::Duration d, ParseDurationFlag("--duration", f.duration));
  *spec.mutable_duration() = ToProtoDuration(d);
  return absl::OkStatus();
}

absl::Status SetTasks(const std::string& tasks, v1::JobSpec& spec) {
  if (tasks == "auto") {
    spec.set_tasks_auto(true);
    return absl::OkStatus();
  }
  uint32_t n = 0;
  if (!absl::SimpleAtoi(tasks, &n) || tasks.empty() || tasks[0] == '-') {
    return absl::InvalidArgumentError("--tasks must be a positive number or \"auto\", got \"" + tasks + "\"");
  }
  spec.set_tasks(n);
  return absl::OkStatus();
}

// --workers and --selector: where the job may run.
absl::Status SetPlacement(const SubmitFlags& f, v1::JobSpec& spec) {
  for (const std::string& w : f.workers) {
    for (absl::string_view part : absl::StrSplit(w, ',', absl::SkipWhitespace())) {
      spec.add_workers(std::string(part));
    }
  }
  if (f.selector.empty()) return absl::OkStatus();
  for (absl::string_view item : absl::StrSplit(f.selector, ',', absl::SkipWhitespace())) {
    std::vector<std::string> kv = absl::StrSplit(item, absl::MaxSplits('=', 1));
    if (kv.size() != 2 || kv[0].empty()) {
      return absl::InvalidArgumentError("--selector entries must look like key=value, got \"" + std::string(item) +
                                        "\"");
    }
    (*spec.mutable_selector())[kv[0]] = kv[1];
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<v1::JobSpec> BuildSpec(const SubmitFlags& f) {
  v1::JobSpec spec;
  spec.set_name(f.name);
  BF_RETURN_IF_ERROR(SetWork(f, spec));
  BF_RETURN_IF_ERROR(SetTasks(f.tasks, spec));
  spec.set_max_slots(f.max_slots);
  BF_RETURN_IF_ERROR(SetPlacement(f, spec));
  if (f.exec == "thread") spec.set_exec(v1::EXEC_MODE_THREAD);
  if (f.exec == "process") spec.set_exec(v1::EXEC_MODE_PROCESS);
  spec.set_max_attempts(f.max_attempts);
  spec.set_speculate(f.speculate);
  if (!f.task_timeout.empty()) {
    BF_ASSIGN_OR_RETURN(const absl::Duration d, ParseDurationFlag("--task-timeout", f.task_timeout));
    *spec.mutable_task_timeout() = ToProtoDuration(d);
  }
  if (!f.pending_timeout.empty()) {
    BF_ASSIGN_OR_RETURN(const absl::Duration d, ParseDurationFlag("--pending-timeout", f.pending_timeout));
    *spec.mutable_pending_timeout() = ToProtoDuration(d);
  }
  return spec;
}

}  // namespace busyfleet::coordctl
