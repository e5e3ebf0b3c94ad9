#ifndef BUSYFLEET_COORDINATOR_CORE_ENUM_NAMES_H_
#define BUSYFLEET_COORDINATOR_CORE_ENUM_NAMES_H_

// Enum names as users see them, in JSON, tables, log lines, error messages
// and metric labels (docs/design.md, "JSON contract"): the one place a
// wire enum's prefix is stripped.
//   JOB_STATE_SUCCEEDED -> "SUCCEEDED", TASK_STATE_RUNNING -> "RUNNING",
//   WORKER_STATE_READY -> "READY" (states upper-case);
//   TASK_KIND_COUNTDOWN -> "countdown", EXEC_MODE_THREAD -> "thread"
//   (lower-case).
// Unspecified or unknown values give "UNSPECIFIED" (states) or
// "unspecified". Header-only, so every layer can use it without linking
// another.

#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/strip.h"
#include "absl/strings/string_view.h"
#include "busyfleet/v1/types.pb.h"

namespace busyfleet::coordinator {

// `full` without `prefix` ("UNSPECIFIED" when it lacks the prefix or is
// nothing more), lower-cased when `lower`.
inline std::string EnumDisplayName(const std::string& full, absl::string_view prefix, bool lower) {
  absl::string_view name = full;
  if (!absl::ConsumePrefix(&name, prefix) || name.empty()) name = "UNSPECIFIED";
  std::string out(name);
  if (lower) absl::AsciiStrToLower(&out);
  return out;
}

inline std::string JobStateName(v1::JobState state) {
  return EnumDisplayName(v1::JobState_Name(state), "JOB_STATE_", /*lower=*/false);
}
inline std::string TaskStateName(v1::TaskState state) {
  return EnumDisplayName(v1::TaskState_Name(state), "TASK_STATE_", /*lower=*/false);
}
inline std::string WorkerStateName(v1::WorkerState state) {
  return EnumDisplayName(v1::WorkerState_Name(state), "WORKER_STATE_", /*lower=*/false);
}
inline std::string TaskKindName(v1::TaskKind kind) {
  return EnumDisplayName(v1::TaskKind_Name(kind), "TASK_KIND_", /*lower=*/true);
}
inline std::string ExecModeName(v1::ExecMode mode) {
  return EnumDisplayName(v1::ExecMode_Name(mode), "EXEC_MODE_", /*lower=*/true);
}

}  // namespace busyfleet::coordinator

#endif  // BUSYFLEET_COORDINATOR_CORE_ENUM_NAMES_H_
