#ifndef BUSYFLEET_COORDINATOR_REPORT_TIMELINE_H_
#define BUSYFLEET_COORDINATOR_REPORT_TIMELINE_H_

// A job's timeline as `coordctl timeline` and the status page show it: Chrome
// trace JSON (Perfetto, chrome://tracing) and an SVG Gantt chart.
// Pure functions of the generated report: no I/O, no gRPC, thread-safe.
//
// Both draw one row per worker slot and one slice per task attempt, taken
// from report.attempts (GetJobRequest.include_attempts); when that is empty,
// one per started task from report.tasks (its final attempt; workers' hosts
// from report.workers). Times are seconds from the job's submission, already
// on the coordinator's clock. An attempt whose start or duration is negative,
// not finite, or whose end lies beyond 1e9 s is left out (counted in the
// Chrome JSON's otherData.skipped). Rows are ordered by worker name, then
// slot.
//
// Colours by state: SUCCEEDED on its first attempt, SUCCEEDED on a later one
// ("retried"), FAILED, CANCELLED; any other state counts as running.

#include <string>

#include "busyfleet/v1/coordinator.pb.h"

namespace busyfleet::report {

// Chrome trace JSON, object form:
//   {"traceEvents":[...], "displayTimeUnit":"ms", "otherData":{...}}.
// Per worker, pid = 1 + its rank by name (pid 0 is the kernel's idle task to
// Perfetto) with a "M" process_name event "<worker> (<host>)" (just the name
// when the host is unknown) and a process_sort_index; per slot, tid = slot + 1
// (tid 0 is special to Perfetto too) with "M" thread_name "slot <slot>" and a
// thread_sort_index. One "X" event per attempt: ts and dur in microseconds
// from submission, name "task <index>" + " #<attempt>" when attempt > 1
// + " (backup)" for a speculation copy, cat = the state name
// ("SUCCEEDED"...), cname "good" (succeeded first time), "yellow"
// (succeeded after a retry), "terrible" (failed), "grey" (cancelled),
// "generic_work" (running), args {task, attempt, state, iterations,
// cpu_seconds, seconds, worker, host, slot, backup, error (only when
// non-empty)}. otherData: {schema: 1, id, name, state, kind, submitted_at
// (RFC 3339, "" when unset), wall_seconds, makespan_seconds, speedup,
// efficiency, slots, tasks, attempts (events written), skipped, source
// ("attempts" or "tasks")}; non-finite numbers are null. Text that is not
// valid UTF-8 is replaced (U+FFFD), never an exception.
std::string TimelineChromeJson(const v1::JobReport& report);

struct TimelineSvgOptions {
  // Width of the whole chart in pixels; clamped to [320, 16384].
  int width = 960;
  // Worker slots drawn at most (the first ones in row order); clamped to
  // [1, 4096]. The rest are summed up in a "+K more slots" note.
  int max_rows = 256;
};

// A Gantt chart as a standalone SVG document: it starts with
// `<svg xmlns="http://www.w3.org/2000/svg"` (no XML declaration, no ids, no
// style sheet, no external references, so several can be inlined in one HTML
// page) and has width, height and viewBox set. It holds a header (job name
// and id, state; wall, makespan, speedup, efficiency, counts), a legend, a
// label column ("<worker>/<slot>", long names cut with "...", the full name in
// a <title>), a time axis from the submission with 1-2-5 ticks in ms, s, min
// or h, and one <rect> per attempt with a <title> tooltip ("task 3 attempt 2:
// FAILED, 1.234 s from 0.500 s, worker w (host), slot 0, error: ..."),
// filled by state; backup copies are outlined dashed.
// Bounded size: on a row, an attempt that would be drawn less than 1 px after
// the previous rect's end merges into it when it has the same look (state
// colour and backup outline) and either is narrower than 3 px, or whatever
// its look when it starts less than 1 px after the rect's start (the merged
// rect takes the most telling colour: failed, retried, cancelled, running,
// succeeded); its tooltip then reads "N tasks (...)" with the counts by
// state. So a row holds at most one rect per pixel of width, and the chart
// at most max_rows x width of them. All text is XML-escaped (XmlEscape).
// No attempt to draw: a small valid SVG with the header and "no task has
// started yet".
std::string TimelineSvg(const v1::JobReport& report,
                        const TimelineSvgOptions& options = {});

}  // namespace busyfleet::report

#endif  // BUSYFLEET_COORDINATOR_REPORT_TIMELINE_H_
