#include "coordinator/core/job_splitter.h"

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "coordinator/core/limits.h"
#include "google/protobuf/util/time_util.h"

namespace busyfleet::coordinator {
namespace {

using google::protobuf::util::TimeUtil;

// Length of the UTF-8 sequence starting at `s[i]`, 0 when invalid; its
// code point in `*code_point`.
size_t Utf8SequenceLength(absl::string_view s, size_t i, uint32_t* code_point) {
  const auto c = static_cast<unsigned char>(s[i]);
  size_t len = 0;
  uint32_t cp = 0;
  *code_point = c;
  if (c < 0x80) return 1;
  if ((c & 0xE0) == 0xC0) { len = 2; cp = c & 0x1F; }
  else if ((c & 0xF0) == 0xE0) { len = 3; cp = c & 0x0F; }
  else if ((c & 0xF8) == 0xF0) { len = 4; cp = c & 0x07; }
  else return 0;
  if (i + len > s.size()) return 0;
  for (size_t k = 1; k < len; ++k) {
    const auto cc = static_cast<unsigned char>(s[i + k]);
    if ((cc & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (cc & 0x3F);
  }
  // Overlong forms, surrogates and beyond U+10FFFF are invalid.
  if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000)) return 0;
  if (cp >= 0xD800 && cp <= 0xDFFF) return 0;
  if (cp > 0x10FFFF) return 0;
  *code_point = cp;
  return len;
}

absl::StatusOr<absl::Duration> DurationField(absl::string_view field,
                                             const google::protobuf::Duration& d) {
  if (d.seconds() < 0 || d.nanos() < 0 || d.nanos() > 999'999'999) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " must be between 0s and ", absl::FormatDuration(limits::kMaxTaskDuration),
                     ", got ", TimeUtil::ToString(d)));
  }
  const absl::Duration out = absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
  if (out > limits::kMaxTaskDuration) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " must be between 0s and ", absl::FormatDuration(limits::kMaxTaskDuration),
                     ", got ", absl::FormatDuration(out)));
  }
  return out;
}

}  // namespace

absl::Status ValidateName(absl::string_view field, absl::string_view name, bool allow_empty) {
  if (name.empty()) {
    if (allow_empty) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrCat(field, " must not be empty"));
  }
  if (name.size() > limits::kMaxNameBytes) {
    return absl::InvalidArgumentError(absl::StrCat(field, " must be at most ", limits::kMaxNameBytes,
                                                   " bytes, got ", name.size()));
  }
  for (size_t i = 0; i < name.size();) {
    uint32_t cp = 0;
    const size_t len = Utf8SequenceLength(name, i, &cp);
    if (len == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, " must be valid UTF-8 (bad byte at offset ", i, ")"));
    }
    // C0 controls, DEL and the C1 controls U+0080..U+009F.
    if (cp < 0x20 || (cp >= 0x7F && cp <= 0x9F)) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, " must be printable (control character at offset ", i, ")"));
    }
    i += len;
  }
  return absl::OkStatus();
}

absl::Status ValidateJobSpec(const v1::JobSpec& spec) {
  BF_RETURN_IF_ERROR(ValidateName("name", spec.name(), /*allow_empty=*/true));
  if (!v1::TaskKind_IsValid(spec.kind()) || spec.kind() == v1::TASK_KIND_UNSPECIFIED) {
    return absl::InvalidArgumentError(
        absl::StrCat("kind must be countdown, spin, sleep or python, got ", static_cast<int>(spec.kind())));
  }
  if (!v1::ExecMode_IsValid(spec.exec())) {
    return absl::InvalidArgumentError(
        absl::StrCat("exec must be thread or process, got ", static_cast<int>(spec.exec())));
  }
  if (spec.tasks_auto()) {
    if (spec.tasks() != 0) {
      return absl::InvalidArgumentError("tasks must be 0 when tasks_auto is set");
    }
  } else if (spec.tasks() < 1 || spec.tasks() > limits::kMaxTasksPerJob) {
    return absl::InvalidArgumentError(absl::StrCat("tasks must be between 1 and ",
                                                   limits::kMaxTasksPerJob, ", got ", spec.tasks()));
  }
  if (KindTakesIterations(spec.kind())) {
    if (spec.has_duration()) {
      return absl::InvalidArgumentError("duration applies to kinds spin and sleep, not countdown or python");
    }
    if (spec.total() != 0 && spec.iterations() != 0) {
      return absl::InvalidArgumentError("give either iterations (per task) or total, not both");
    }
    if (spec.total() == 0 && spec.iterations() > limits::kMaxIterationsPerTask) {
      return absl::InvalidArgumentError(absl::StrCat("iterations must be between 0 and ",
                                                     limits::kMaxIterationsPerTask, ", got ",
                                                     spec.iterations()));
    }
    if (spec.total() != 0 && !spec.tasks_auto()) {
      if (spec.total() < spec.tasks()) {
        return absl::InvalidArgumentError(absl::StrCat("total must be at least tasks (", spec.tasks(),
                                                       "), got ", spec.total()));
      }
      // Largest part is ceil(total / tasks).
      const uint64_t largest = spec.total() / spec.tasks() + (spec.total() % spec.tasks() != 0);
      if (largest > limits::kMaxIterationsPerTask) {
        return absl::InvalidArgumentError(absl::StrCat(
            "total / tasks must be at most ", limits::kMaxIterationsPerTask,
            " iterations per task, got ", largest));
      }
    }
  } else {
    if (spec.iterations() != 0 || spec.total() != 0) {
      return absl::InvalidArgumentError(
          "iterations and total apply to kinds countdown and python; spin and sleep take duration");
    }
    if (!spec.has_duration()) {
      return absl::InvalidArgumentError("duration is required for kinds spin and sleep");
    }
    BF_RETURN_IF_ERROR(DurationField("duration", spec.duration()).status());
  }
  if (spec.max_slots() > limits::kMaxSlotsPerJob) {
    return absl::InvalidArgumentError(absl::StrCat("max_slots must be between 0 (no cap) and ",
                                                   limits::kMaxSlotsPerJob, ", got ", spec.max_slots()));
  }
  if (spec.max_attempts() > limits::kMaxAttempts) {
    return absl::InvalidArgumentError(absl::StrCat("max_attempts must be between 1 and ",
                                                   limits::kMaxAttempts, ", got ", spec.max_attempts()));
  }
  if (spec.has_task_timeout()) BF_RETURN_IF_ERROR(DurationField("task_timeout", spec.task_timeout()).status());
  if (spec.has_pending_timeout()) {
    BF_RETURN_IF_ERROR(DurationField("pending_timeout", spec.pending_timeout()).status());
  }
  if (static_cast<size_t>(spec.workers_size()) > limits::kMaxWorkerNames) {
    return absl::InvalidArgumentError(absl::StrCat("workers must list at most ", limits::kMaxWorkerNames,
                                                   " names, got ", spec.workers_size()));
  }
  for (const std::string& w : spec.workers()) BF_RETURN_IF_ERROR(ValidateName("workers[]", w, false));
  if (spec.selector_size() > static_cast<int>(limits::kMaxLabels)) {
    return absl::InvalidArgumentError(absl::StrCat("selector must have at most ", limits::kMaxLabels,
                                                   " entries, got ", spec.selector_size()));
  }
  for (const auto& [k, v] : spec.selector()) {
    BF_RETURN_IF_ERROR(ValidateName("selector key", k, false));
    BF_RETURN_IF_ERROR(ValidateName("selector value", v, true));
  }
  return absl::OkStatus();
}

absl::Duration TaskDuration(const v1::JobSpec& spec) {
  if (KindTakesIterations(spec.kind())) return absl::ZeroDuration();
  return absl::Seconds(spec.duration().seconds()) + absl::Nanoseconds(spec.duration().nanos());
}

JobPlan PlanFor(const v1::JobSpec& spec, uint32_t tasks) {
  JobPlan plan;
  plan.tasks = tasks;
  plan.duration = TaskDuration(spec);
  plan.takes_iterations = KindTakesIterations(spec.kind());
  plan.iterations = spec.iterations();
  plan.from_total = spec.total() != 0;
  plan.base = tasks == 0 ? 0 : spec.total() / tasks;
  plan.remainder = tasks == 0 ? 0 : spec.total() % tasks;
  return plan;
}

absl::StatusOr<JobPlan> PlanJob(const v1::JobSpec& spec, int free_slots, int total_slots) {
  BF_RETURN_IF_ERROR(ValidateJobSpec(spec));
  uint64_t n = spec.tasks();
  if (spec.tasks_auto()) {
    n = static_cast<uint64_t>(free_slots > 0 ? free_slots : total_slots);
    if (n == 0) {
      return absl::FailedPreconditionError("tasks auto needs at least one attached worker");
    }
    if (spec.max_slots() != 0 && n > spec.max_slots()) n = spec.max_slots();
    if (spec.total() != 0 && spec.total() < n) n = spec.total();
    if (n > limits::kMaxTasksPerJob) n = limits::kMaxTasksPerJob;
  }
  const JobPlan plan = PlanFor(spec, static_cast<uint32_t>(n));
  if (plan.from_total && plan.base + (plan.remainder != 0) > limits::kMaxIterationsPerTask) {
    return absl::InvalidArgumentError(absl::StrCat("total / tasks must be at most ",
                                                   limits::kMaxIterationsPerTask, " iterations per task"));
  }
  return plan;
}

absl::StatusOr<std::vector<TaskSpec>> SplitJob(const v1::JobSpec& spec, int free_slots,
                                               int total_slots) {
  BF_ASSIGN_OR_RETURN(const JobPlan plan, PlanJob(spec, free_slots, total_slots));
  std::vector<TaskSpec> tasks(plan.tasks);
  for (uint32_t i = 0; i < plan.tasks; ++i) tasks[i] = plan.Task(i);
  return tasks;
}

}  // namespace busyfleet::coordinator
