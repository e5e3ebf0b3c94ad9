#include "coordinator/ctl/output.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "coordinator/report/report_format.h"

namespace busyfleet::coordctl {

void PrintResult(bool json, absl::FunctionRef<nlohmann::json()> json_value,
                 absl::FunctionRef<std::string()> table) {
  if (json) {
    std::cout << json_value().dump(2) << std::endl;
  } else {
    std::cout << table() << std::flush;
  }
}

ExitCode Fail(const absl::Status& status) {
  std::fprintf(stderr, "coordctl: %s: %s\n", absl::StatusCodeToString(status.code()).c_str(),
               std::string(status.message()).c_str());
  const ExitCode code = ExitCodeFor(status);
  if (status.code() == absl::StatusCode::kUnauthenticated || status.code() == absl::StatusCode::kPermissionDenied) {
    std::fprintf(stderr, "coordctl: check --token-file: the coordinator wants a client token\n");
  } else if (code == kExitUnavailable) {
    std::fprintf(stderr,
                 "coordctl: is a coordinator running and reachable at the --coordinator address (and do the "
                 "--tls-* files match its setup)?\n");
  }
  return code;
}

ExitCode Usage(absl::string_view message) {
  std::fprintf(stderr, "coordctl: %s\n", std::string(message).c_str());
  return kExitUsage;
}

ExitCode WriteOut(const std::string& path, const std::string& text) {
  if (path.empty() || path == "-") {
    std::cout << text << std::flush;
    return kExitOk;
  }
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  out.close();
  if (!out) {
    std::fprintf(stderr, "coordctl: cannot write %s: %s\n", path.c_str(), std::strerror(errno));
    return kExitFailed;
  }
  return kExitOk;
}

ExitCode ExitForJobState(v1::JobState state) {
  return state == v1::JOB_STATE_FAILED || state == v1::JOB_STATE_CANCELLED ? kExitFailed : kExitOk;
}

namespace {

// Rows a report left out: all of them when it lacks some and is not a page.
uint32_t OmittedRows(const v1::JobReport& report, bool page) {
  return !page && static_cast<uint32_t>(report.tasks_size()) < report.tasks_total() ? report.tasks_total() : 0;
}

int TerminalWidth() {
  winsize ws{};
  if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
  return 80;
}

}  // namespace

nlohmann::json ReportJson(v1::JobReport report, bool page) {
  const uint32_t omitted = OmittedRows(report, page);
  if (omitted > 0) report.clear_tasks();
  nlohmann::json j = report::ReportToJson(report);
  if (omitted > 0) j["tasks_omitted"] = omitted;
  if (page) j["tasks_offset"] = report.tasks_offset();
  return j;
}

void PrintReport(bool json, const v1::JobReport& report, bool show_tasks, bool page) {
  PrintResult(
      json, [&] { return ReportJson(report, page); },
      [&] {
        const uint32_t omitted = OmittedRows(report, page);
        if (omitted == 0) return report::RenderReport(report, show_tasks || page);
        v1::JobReport summary = report;
        summary.clear_tasks();
        return absl::StrCat(report::RenderReport(summary, show_tasks), "(", omitted,
                            " task rows left out; `coordctl status ", report.id(),
                            " --tasks` lists them, --tasks-offset/--tasks-limit a page)\n");
      });
}

namespace {

// Says on standard error, once per change, why the job's queued tasks wait
// (no attached worker can take them), and when they can run again.
void PrintPendingReason(const v1::JobProgress& p, bool bar, std::string& printed) {
  if (p.pending_reason() == printed) return;
  if (bar) std::fprintf(stderr, "\r\033[K");
  if (!p.pending_reason().empty()) {
    std::fprintf(stderr, "coordctl: job %s is pending: %s\n", p.job_id().c_str(), p.pending_reason().c_str());
  } else {
    std::fprintf(stderr, "coordctl: job %s: a worker can take its tasks now\n", p.job_id().c_str());
  }
  std::fflush(stderr);
  printed = p.pending_reason();
}

}  // namespace

ExitCode Follow(bool json, const ProgressStream& stream, bool show_tasks, bool json_lines) {
  const bool bar = !json && isatty(STDERR_FILENO) && isatty(STDOUT_FILENO);
  std::string reason;  // the pending reason last printed
  absl::StatusOr<v1::JobProgress> final_update = stream([&](const v1::JobProgress& p) {
    if (!p.has_report()) PrintPendingReason(p, bar, reason);
    if (json_lines && !p.has_report()) {
      std::cout << report::ProgressToJson(p).dump() << std::endl;
    } else if (bar) {
      std::fprintf(stderr, "\r%s\033[K", report::RenderProgressLine(p, TerminalWidth() - 1).c_str());
      std::fflush(stderr);
    }
  });
  if (bar) std::fprintf(stderr, "\n");
  if (!final_update.ok()) return Fail(final_update.status());
  if (json_lines) {
    std::cout << ReportJson(final_update->report()).dump() << std::endl;  // JSON Lines: the report last
  } else {
    PrintReport(json, final_update->report(), show_tasks);
  }
  return ExitForJobState(final_update->report().state());
}

}  // namespace busyfleet::coordctl
