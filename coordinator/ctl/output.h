#ifndef BUSYFLEET_COORDINATOR_CTL_OUTPUT_H_
#define BUSYFLEET_COORDINATOR_CTL_OUTPUT_H_

// How coordctl prints: results on standard output (JSON with -o json, else
// the table), errors and progress on standard error.

#include <functional>
#include <string>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "busyfleet/v1/coordinator.pb.h"
#include "coordinator/ctl/exit_codes.h"
#include "nlohmann/json.hpp"

namespace busyfleet::coordctl {

// The one place a result is printed: `json()` indented by two with `json`,
// else `table()` as it is (it ends in a newline). Only the one needed is
// built.
void PrintResult(bool json, absl::FunctionRef<nlohmann::json()> json_value,
                 absl::FunctionRef<std::string()> table);

// Prints a failed call ("coordctl: CODE: message" and a hint for exit 3)
// to standard error; returns ExitCodeFor(status).
ExitCode Fail(const absl::Status& status);

// Prints "coordctl: <message>" to standard error; returns kExitUsage.
ExitCode Usage(absl::string_view message);

// Writes `text` to `path`, or to standard output when `path` is empty or
// "-". kExitFailed (with a message) when the file cannot be written.
ExitCode WriteOut(const std::string& path, const std::string& text);

// kExitFailed for a job that FAILED or was CANCELLED, else kExitOk.
ExitCode ExitForJobState(v1::JobState state);

// A report as JSON. A report missing some of its task rows shows none of
// them unless it is a `page` of rows, and says how many it left out
// ("tasks_omitted"); a page says where it starts ("tasks_offset").
nlohmann::json ReportJson(v1::JobReport report, bool page = false);

// Prints a report (PrintResult): as ReportJson, or the table (with every
// task row when `show_tasks` or `page`, and a line saying how many rows a
// large job's report left out).
void PrintReport(bool json, const v1::JobReport& report, bool show_tasks, bool page = false);

// A call that streams a job's progress to its callback until the job ends,
// and returns the last update (the one carrying the report).
using ProgressStream = std::function<absl::StatusOr<v1::JobProgress>(
    const std::function<void(const v1::JobProgress&)>& on_progress)>;

// Follows a job to its end: a progress bar on a terminal (table output to
// one), or one JSON object per update and then the report as the last line
// with `json_lines`; else the report (PrintReport). Returns the exit code
// for the job's end (ExitForJobState) or the failed call (Fail).
ExitCode Follow(bool json, const ProgressStream& stream, bool show_tasks, bool json_lines);

}  // namespace busyfleet::coordctl

#endif  // BUSYFLEET_COORDINATOR_CTL_OUTPUT_H_
