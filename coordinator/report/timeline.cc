#include "coordinator/report/timeline.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "busyfleet/v1/types.pb.h"
#include "coordinator/core/enum_names.h"
#include "coordinator/report/format.h"
#include "coordinator/report/svg_util.h"
#include "nlohmann/json.hpp"

namespace busyfleet::report {
namespace {

using coordinator::JobStateName;
using coordinator::TaskKindName;
using coordinator::TaskStateName;
using nlohmann::json;

// Attempts ending later than this (seconds from submission, about 31 years)
// are left out: their microseconds would lose all precision.
constexpr double kMaxSeconds = 1e9;

// SVG layout, pixels.
constexpr int kMinWidth = 320;
constexpr int kMaxWidth = 16384;
constexpr int kMaxRowsLimit = 4096;
constexpr double kRowHeight = 16;
constexpr double kBarHeight = 12;
// Baseline of the legend's first line, and its line height.
constexpr double kLegendTop = 58;
constexpr double kLegendLine = 16;
constexpr double kRightMargin = 16;
// Estimated width of one character of the 11-12 px sans-serif text.
constexpr double kCharWidth = 7;
// Slices narrower than this merge with a neighbour of the same look.
constexpr double kNarrowSlice = 3;
// Error text kept in a tooltip, code points.
constexpr size_t kMaxTooltipError = 200;

// Ordered from the least to the most telling: a rect merging several
// attempts takes the most telling look among them.
enum class Look { kSucceeded = 0, kRunning, kCancelled, kRetried, kFailed };
constexpr size_t kLooks = 5;

struct LookStyle {
  const char* label;  // Legend and merged tooltips.
  const char* fill;   // SVG.
  const char* cname;  // Chrome trace reserved colour name.
};

constexpr std::array<LookStyle, kLooks> kLookStyles = {{
    {"succeeded", "#4caf50", "good"},
    {"running", "#42a5f5", "generic_work"},
    {"cancelled", "#9e9e9e", "grey"},
    {"succeeded after retry", "#f2c037", "yellow"},
    {"failed", "#d9534f", "terrible"},
}};

const LookStyle& StyleOf(Look look) {
  return kLookStyles[static_cast<size_t>(look)];
}

// One attempt to draw, pointing into the report.
struct Slice {
  uint32_t index = 0;
  uint32_t attempt = 0;
  absl::string_view worker;
  absl::string_view host;
  uint32_t slot = 0;
  v1::TaskState state = v1::TASK_STATE_UNSPECIFIED;
  double start = 0;
  double seconds = 0;
  double cpu_seconds = 0;
  uint64_t iterations = 0;
  absl::string_view error;
  bool backup = false;
  const v1::Interference* interference = nullptr;  // measured on the worker
  absl::string_view slow_cause;                    // stragglers (task rows)
  double rate_ratio = 0;  // against its core's calibrated rate; 0: unknown

  double end() const { return start + seconds; }
};

// The interference marker's colour (SVG).
constexpr const char* kInterferenceFill = "#e65100";

// Share of a task's time that counts as significant interference (the
// straggler cause's kCauseMinShare, coordinator/core/slow_cause.h).
constexpr double kInterferenceShare = 0.05;

// Whether a figure of what the worker measured took at least
// kInterferenceShare of the slice's time: drawn with a marker.
bool Interfered(const Slice& s) {
  if (s.interference == nullptr || s.seconds <= 0) return false;
  const v1::Interference& m = *s.interference;
  const double floor = kInterferenceShare * s.seconds * 1e9;
  return m.steal_share() >= kInterferenceShare || static_cast<double>(m.throttled_ns()) >= floor ||
         static_cast<double>(m.run_queue_wait_ns()) >= floor;
}

// "throttled 0.120 s, steal 3%, waited 0.002 s for a CPU, 4 involuntary
// switches": what was measured, for tooltips.
std::string InterferenceText(const v1::Interference& m) {
  std::vector<std::string> parts;
  if (m.has_throttled_ns()) parts.push_back(absl::StrCat("throttled ", Fixed(static_cast<double>(m.throttled_ns()) / 1e9, 3, " s")));
  if (m.has_steal_share()) parts.push_back(absl::StrCat("steal ", Percent(m.steal_share())));
  if (m.has_run_queue_wait_ns()) {
    parts.push_back(absl::StrCat("waited ", Fixed(static_cast<double>(m.run_queue_wait_ns()) / 1e9, 3, " s"), " for a CPU"));
  }
  if (m.has_involuntary_switches()) parts.push_back(absl::StrCat(m.involuntary_switches(), " involuntary switches"));
  return absl::StrJoin(parts, ", ");
}

Look LookOf(const Slice& s) {
  switch (s.state) {
    case v1::TASK_STATE_SUCCEEDED:
      return s.attempt > 1 ? Look::kRetried : Look::kSucceeded;
    case v1::TASK_STATE_FAILED:
      return Look::kFailed;
    case v1::TASK_STATE_CANCELLED:
      return Look::kCancelled;
    default:
      return Look::kRunning;
  }
}

struct Slices {
  std::vector<Slice> slices;
  int skipped = 0;
  bool from_attempts = true;
};

bool Drawable(const Slice& s) {
  return std::isfinite(s.start) && std::isfinite(s.seconds) && s.start >= 0 &&
         s.seconds >= 0 && s.end() <= kMaxSeconds;
}

Slices CollectSlices(const v1::JobReport& report) {
  Slices out;
  auto keep = [&out](const Slice& s) {
    if (Drawable(s)) {
      out.slices.push_back(s);
    } else {
      ++out.skipped;
    }
  };
  if (report.attempts_size() > 0) {
    out.slices.reserve(report.attempts_size());
    for (const v1::AttemptTiming& a : report.attempts()) {
      Slice s;
      s.index = a.index();
      s.attempt = a.attempt();
      s.worker = a.worker();
      s.host = a.host();
      s.slot = a.slot();
      s.state = a.state();
      s.start = a.start_offset_seconds();
      s.seconds = a.seconds();
      s.cpu_seconds = a.cpu_seconds();
      s.iterations = a.iterations();
      s.error = a.error();
      s.backup = a.backup();
      if (a.has_interference()) s.interference = &a.interference();
      s.rate_ratio = a.rate_ratio();
      keep(s);
    }
    return out;
  }
  out.from_attempts = false;
  std::map<absl::string_view, absl::string_view> hosts;
  for (const v1::WorkerTiming& w : report.workers()) {
    hosts.emplace(w.name(), w.host());
  }
  for (const v1::TaskTiming& t : report.tasks()) {
    // A task that never started has no worker and no slice.
    if (t.worker().empty()) continue;
    Slice s;
    s.index = t.index();
    s.attempt = t.attempt();
    s.worker = t.worker();
    auto host = hosts.find(t.worker());
    if (host != hosts.end()) s.host = host->second;
    s.slot = t.slot();
    s.state = t.state();
    s.start = t.start_offset_seconds();
    s.seconds = t.seconds();
    s.cpu_seconds = t.cpu_seconds();
    s.iterations = t.iterations();
    s.error = t.error();
    if (t.has_interference()) s.interference = &t.interference();
    s.slow_cause = t.slow_cause();
    s.rate_ratio = t.rate_ratio();
    keep(s);
  }
  return out;
}

// Rows: (worker, slot) in order, each with its slices' positions.
using RowKey = std::pair<absl::string_view, uint32_t>;
using Rows = std::map<RowKey, std::vector<size_t>>;
Rows GroupRows(const std::vector<Slice>& slices) {
  Rows rows;
  for (size_t i = 0; i < slices.size(); ++i) {
    rows[{slices[i].worker, slices[i].slot}].push_back(i);
  }
  return rows;
}

std::string SliceName(const Slice& s) {
  std::string name = absl::StrCat("task ", s.index);
  if (s.attempt > 1) absl::StrAppend(&name, " #", s.attempt);
  if (s.backup) absl::StrAppend(&name, " (backup)");
  return name;
}

std::string WorkerLabel(absl::string_view worker, absl::string_view host) {
  if (host.empty()) return std::string(worker);
  return absl::StrCat(worker, " (", host, ")");
}

// --- SVG ---------------------------------------------------------------

std::string HeaderTitle(const v1::JobReport& report) {
  const std::string job =
      report.name().empty()
          ? absl::StrCat("job ", report.id())
          : absl::StrCat(report.name(), " (", report.id(), ")");
  return absl::StrCat(job, "  ", JobStateName(report.state()));
}

std::string HeaderFigures(const v1::JobReport& report, size_t attempts,
                          size_t slots) {
  const v1::JobTiming& t = report.timing();
  return absl::StrCat("wall ", Fixed(t.wall_seconds(), 3, " s"),
                      "  |  makespan ", Fixed(t.makespan_seconds(), 3, " s"),
                      "  |  speedup ", Multiple(t.speedup()),
                      "  |  efficiency ", Percent(t.efficiency()), "  |  ",
                      TaskCount(report), " tasks, ", attempts, " attempts, ",
                      slots, " slots");
}

// A text line cut to fit `width` pixels.
std::string FittedText(double x, double y, absl::string_view attributes,
                       absl::string_view text, double width) {
  const size_t max_chars =
      static_cast<size_t>(std::max(4.0, width / kCharWidth));
  return absl::StrCat(SvgText(x, y, attributes, TruncateText(text, max_chars)),
                      "\n");
}

std::string Header(const v1::JobReport& report, int width, size_t attempts,
                   size_t slots) {
  const double room = width - 16.0;
  return absl::StrCat(FittedText(8, 20, " font-size=\"14\" font-weight=\"bold\"",
                              HeaderTitle(report), room),
                      FittedText(8, 38, " fill=\"#333333\"",
                              HeaderFigures(report, attempts, slots), room));
}

// The legend from baseline `y`, wrapped to `width`; adds its lines to
// `*lines`.
std::string Legend(double y, int width, int* lines) {
  std::string out;
  double x = 8;
  *lines = 1;
  auto item = [&](absl::string_view swatch_attributes,
                  absl::string_view label) {
    const double item_width = 14 + static_cast<double>(label.size()) * 6 + 14;
    if (x > 8 && x + item_width > width - 8) {
      x = 8;
      y += kLegendLine;
      ++*lines;
    }
    absl::StrAppend(&out, SvgRect(x, y - 10, 10, 10, swatch_attributes),
                    SvgText(x + 14, y, " font-size=\"11\"", label), "\n");
    x += item_width;
  };
  for (Look look : {Look::kSucceeded, Look::kRetried, Look::kFailed,
                    Look::kCancelled, Look::kRunning}) {
    item(absl::StrCat(" fill=\"", StyleOf(look).fill, "\""),
         StyleOf(look).label);
  }
  item(" fill=\"#ffffff\" stroke=\"#222222\" stroke-dasharray=\"3,2\"",
       "backup copy (outlined)");
  item(absl::StrCat(" fill=\"", kInterferenceFill, "\""), "interference (top band)");
  return out;
}

// The time axis unit for a span of `seconds`.
struct TimeUnit {
  double per_second;
  const char* name;
};

TimeUnit UnitFor(double seconds) {
  if (seconds < 1) return {1000, "ms"};
  if (seconds < 300) return {1, "s"};
  if (seconds < 7200) return {1.0 / 60, "min"};
  return {1.0 / 3600, "h"};
}

// Consecutive attempts of one row drawn as one rect.
struct Group {
  double x0 = 0;
  double x1 = 0;
  Look look = Look::kSucceeded;
  bool backup = false;
  size_t count = 0;
  std::array<size_t, kLooks> by_look{};
  const Slice* first = nullptr;
  uint32_t min_index = 0;
  uint32_t max_index = 0;
  double start = 0;
  double end = 0;
  size_t interfered = 0;  // members drawn with the interference marker

  void Add(const Slice& s, double sx0, double sx1) {
    const Look l = LookOf(s);
    if (Interfered(s)) ++interfered;
    if (count == 0) {
      x0 = sx0;
      x1 = sx1;
      look = l;
      backup = s.backup;
      first = &s;
      min_index = max_index = s.index;
      start = s.start;
      end = s.end();
    } else {
      x1 = std::max(x1, sx1);
      look = std::max(look, l);
      min_index = std::min(min_index, s.index);
      max_index = std::max(max_index, s.index);
      end = std::max(end, s.end());
    }
    ++count;
    ++by_look[static_cast<size_t>(l)];
  }

  // Whether `s`, drawn from sx0 to sx1, merges into this group: it starts
  // less than a pixel after the group's end and either in the group's first
  // pixel, or with the same look when one of them is narrow.
  bool Absorbs(const Slice& s, double sx0, double sx1) const {
    const bool touching = sx0 - x1 < 1;
    const bool same_pixel = sx0 - x0 < 1;
    const bool same_look = LookOf(s) == look && s.backup == backup;
    const bool narrow = sx1 - sx0 < kNarrowSlice || x1 - x0 < kNarrowSlice;
    return touching && (same_pixel || (same_look && narrow));
  }
};

std::string SingleTooltip(const Slice& s) {
  std::string text = absl::StrCat(
      "task ", s.index, " attempt ", s.attempt, s.backup ? " (backup)" : "",
      ": ", TaskStateName(s.state), ", ", Fixed(s.seconds, 3, " s"), " from ",
      Fixed(s.start, 3, " s"), ", CPU ", Fixed(s.cpu_seconds, 3, " s"));
  if (s.iterations > 0) {
    absl::StrAppend(&text, ", ", HumanCount(static_cast<double>(s.iterations)),
                    " iterations");
  }
  absl::StrAppend(&text, ", worker ", WorkerLabel(s.worker, s.host), ", slot ",
                  s.slot);
  if (!s.error.empty()) {
    absl::StrAppend(&text,
                    ", error: ", TruncateText(s.error, kMaxTooltipError));
  }
  if (s.interference != nullptr) absl::StrAppend(&text, "; ", InterferenceText(*s.interference));
  if (s.rate_ratio > 0) absl::StrAppend(&text, absl::StrFormat("; %.2fx its core's calibrated rate", s.rate_ratio));
  if (!s.slow_cause.empty()) absl::StrAppend(&text, "; slow: ", s.slow_cause);
  return text;
}

std::string GroupTooltip(const Group& g) {
  if (g.count == 1) return SingleTooltip(*g.first);
  std::string text =
      absl::StrCat(g.count, " tasks (", g.min_index, " to ", g.max_index, ")",
                   g.backup ? ", backups" : "", ":");
  bool first = true;
  for (size_t l = 0; l < kLooks; ++l) {
    if (g.by_look[l] == 0) continue;
    absl::StrAppend(&text, first ? " " : ", ", g.by_look[l], " ",
                    kLookStyles[l].label);
    first = false;
  }
  absl::StrAppend(&text, "; ", Fixed(g.start, 3, " s"), " to ", Fixed(g.end, 3, " s"),
                  ", worker ", WorkerLabel(g.first->worker, g.first->host),
                  ", slot ", g.first->slot);
  if (g.interfered > 0) absl::StrAppend(&text, "; ", g.interfered, " slowed by interference");
  return text;
}

void AppendRect(const Group& g, double y, std::string* out) {
  const double width = std::max(g.x1 - g.x0, 1.0);
  absl::StrAppend(out, "<rect x=\"", SvgNum(g.x0), "\" y=\"", SvgNum(y),
                  "\" width=\"", SvgNum(width), "\" height=\"",
                  SvgNum(kBarHeight), "\" fill=\"", StyleOf(g.look).fill, "\"");
  if (g.backup) {
    absl::StrAppend(out,
                    " stroke=\"#222222\" stroke-width=\"1\" "
                    "stroke-dasharray=\"3,2\"");
  }
  absl::StrAppend(out, "><title>", XmlEscape(GroupTooltip(g)),
                  "</title></rect>\n");
  // Interference (steal, throttling, run-queue wait over 5% of a task's
  // time): an orange band along the bar's top edge.
  if (g.interfered > 0) {
    absl::StrAppend(out, "<rect x=\"", SvgNum(g.x0), "\" y=\"", SvgNum(y), "\" width=\"", SvgNum(width),
                    "\" height=\"3\" fill=\"", kInterferenceFill, "\" class=\"interference\"/>\n");
  }
}

std::string EmptySvg(const v1::JobReport& report, int width) {
  const double height = 90;
  return absl::StrCat(SvgOpen(width, height), Header(report, width, 0, 0),
                      FittedText(8, 70, " fill=\"#666666\"",
                              "no task has started yet", width - 16.0),
                      "</svg>\n");
}


// --- SVG layout and steps -------------------------------------------------

// A row the chart draws: its key, its slices, its label "<worker>/<slot>".
struct DrawnRow {
  RowKey key;
  const std::vector<size_t>* members = nullptr;
  std::string label;
};

// The first `max_rows` rows in row order.
std::vector<DrawnRow> FirstRows(const Rows& rows, size_t max_rows) {
  std::vector<DrawnRow> out;
  for (auto it = rows.begin(); it != rows.end() && out.size() < max_rows;
       ++it) {
    out.push_back({it->first, &it->second,
                   absl::StrCat(it->first.first, "/", it->first.second)});
  }
  return out;
}

// Seconds the time axis covers: every attempt, drawn row or not, and the
// wall time; 1 when that is nothing.
double TimeSpan(const std::vector<Slice>& slices, const v1::JobReport& report) {
  double span = 0;
  for (const Slice& s : slices) span = std::max(span, s.end());
  const double wall = report.timing().wall_seconds();
  if (std::isfinite(wall) && wall <= kMaxSeconds) span = std::max(span, wall);
  return span > 0 ? span : 1;
}

// Where things go, pixels.
struct Layout {
  int width = 0;
  double span = 1;  // Seconds from the plot's left edge to its right edge.
  double plot_left = 0;
  double plot_right = 0;
  double plot_top = 0;
  double plot_bottom = 0;
  double height = 0;
  size_t max_label_chars = 0;

  double plot_width() const { return plot_right - plot_left; }
  double XOf(double seconds) const {
    return std::clamp(plot_left + seconds / span * plot_width(), plot_left,
                      plot_right);
  }
  double RowY(size_t row) const {
    return plot_top + static_cast<double>(row) * kRowHeight;
  }
};

// The label column as wide as the longest drawn label, within a third of the
// width; the plot under the legend's `legend_lines`, one row per drawn row;
// room for a note when rows are hidden.
Layout MakeLayout(int width, double span, const std::vector<DrawnRow>& rows,
                  int legend_lines, bool rows_hidden) {
  size_t label_chars = 0;
  for (const DrawnRow& row : rows) {
    label_chars = std::max(label_chars, DisplayWidth(row.label));
  }
  const double label_width = std::clamp(
      static_cast<double>(label_chars) * kCharWidth + 16, 72.0, width / 3.0);
  Layout l;
  l.width = width;
  l.span = span;
  l.max_label_chars = static_cast<size_t>((label_width - 16) / kCharWidth);
  l.plot_left = label_width;
  l.plot_right = width - kRightMargin;
  l.plot_top = kLegendTop + (legend_lines - 1) * kLegendLine + 10;
  l.plot_bottom = l.RowY(rows.size());
  l.height = l.plot_bottom + 44 + (rows_hidden ? 18 : 0);
  return l;
}

// A light band behind every other worker's rows.
std::string WorkerBands(const std::vector<DrawnRow>& rows, const Layout& l) {
  std::string out;
  size_t worker_rank = 0;
  for (size_t i = 0; i < rows.size();) {
    const absl::string_view worker = rows[i].key.first;
    const size_t first_row = i;
    while (i < rows.size() && rows[i].key.first == worker) ++i;
    if (worker_rank++ % 2 == 1) {
      absl::StrAppend(&out,
                      SvgRect(0, l.RowY(first_row), l.width,
                              static_cast<double>(i - first_row) * kRowHeight,
                              " fill=\"#f3f3f3\""),
                      "\n");
    }
  }
  return out;
}

// Time axis: grid lines, ticks and labels in a unit fit for the span.
std::string TimeAxis(const Layout& l) {
  const TimeUnit unit = UnitFor(l.span);
  const double span_in_unit = l.span * unit.per_second;
  const double step = NiceStep(
      span_in_unit, std::max(2, static_cast<int>(l.plot_width() / 90)));
  std::string out = absl::StrCat(SvgLine(l.plot_left, l.plot_bottom,
                                         l.plot_right, l.plot_bottom,
                                         " stroke=\"#333333\""),
                                 "\n");
  for (int k = 0;; ++k) {
    const double value = k * step;
    if (value > span_in_unit * (1 + 1e-9)) break;
    const double x = l.XOf(value / unit.per_second);
    absl::StrAppend(
        &out,
        SvgLine(x, l.plot_top, x, l.plot_bottom + 4, " stroke=\"#dddddd\""),
        SvgText(x, l.plot_bottom + 16,
                " font-size=\"11\" text-anchor=\"middle\"",
                TickLabel(value, step)),
        "\n");
  }
  absl::StrAppend(
      &out,
      SvgText(l.plot_left + l.plot_width() / 2, l.plot_bottom + 34,
              " font-size=\"11\" text-anchor=\"middle\"",
              absl::StrCat("time since submission (", unit.name, ")")),
      "\n");
  return out;
}

// The row's label (cut to the label column), the full name in a <title>.
std::string RowLabel(const DrawnRow& row, double y, const Layout& l,
                     const std::vector<Slice>& slices) {
  const Slice& first = slices[row.members->front()];
  return absl::StrCat(
      "<text x=\"8\" y=\"", SvgNum(y + kBarHeight), "\" font-size=\"11\">",
      XmlEscape(TruncateText(row.label, l.max_label_chars)), "<title>",
      XmlEscape(absl::StrCat("worker ", WorkerLabel(row.key.first, first.host),
                             ", slot ", row.key.second)),
      "</title></text>\n");
}

// The row's attempts in start order, merged where they would crowd a pixel
// (Group::Absorbs).
std::string RowBars(const std::vector<size_t>& members, double y,
                    const Layout& l, const std::vector<Slice>& slices) {
  std::vector<size_t> order = members;
  std::sort(order.begin(), order.end(), [&slices](size_t a, size_t b) {
    if (slices[a].start != slices[b].start) {
      return slices[a].start < slices[b].start;
    }
    return slices[a].index < slices[b].index;
  });
  const double bar_y = y + (kRowHeight - kBarHeight) / 2;
  std::string out;
  Group group;
  for (size_t i : order) {
    const Slice& s = slices[i];
    const double sx0 = l.XOf(s.start);
    const double sx1 = l.XOf(s.end());
    if (group.count > 0 && !group.Absorbs(s, sx0, sx1)) {
      AppendRect(group, bar_y, &out);
      group = Group();
    }
    group.Add(s, sx0, sx1);
  }
  if (group.count > 0) AppendRect(group, bar_y, &out);
  return out;
}

// --- Chrome trace steps ----------------------------------------------------

// pid per worker: 1 + its rank by name (pid 0 is special to Perfetto).
std::map<absl::string_view, int> WorkerPids(const std::vector<Slice>& slices) {
  std::map<absl::string_view, int> pids;
  for (const Slice& s : slices) pids.emplace(s.worker, 0);
  int next_pid = 1;
  for (auto& entry : pids) entry.second = next_pid++;
  return pids;
}

// A "M" (metadata) event.
json MetadataEvent(const char* name, int pid, int64_t tid, json args) {
  return {{"ph", "M"},
          {"name", name},
          {"pid", pid},
          {"tid", tid},
          {"args", std::move(args)}};
}

// Names and sort order of the processes (workers; the first non-empty host
// names the process) and threads (slots).
json MetadataEvents(const std::vector<Slice>& slices, const Rows& rows,
                    const std::map<absl::string_view, int>& pids) {
  std::map<absl::string_view, absl::string_view> hosts;
  for (const Slice& s : slices) {
    absl::string_view& host = hosts[s.worker];
    if (host.empty()) host = s.host;
  }
  json events = json::array();
  for (const auto& [worker, pid] : pids) {
    events.push_back(MetadataEvent(
        "process_name", pid, 0,
        {{"name", WorkerLabel(worker, hosts[worker])}}));
    events.push_back(
        MetadataEvent("process_sort_index", pid, 0, {{"sort_index", pid}}));
  }
  for (const auto& entry : rows) {
    const RowKey& key = entry.first;
    const int pid = pids.at(key.first);
    const int64_t tid = static_cast<int64_t>(key.second) + 1;
    events.push_back(MetadataEvent("thread_name", pid, tid,
                                   {{"name", absl::StrCat("slot ", key.second)}}));
    events.push_back(
        MetadataEvent("thread_sort_index", pid, tid, {{"sort_index", tid}}));
  }
  return events;
}

// One "X" (complete) event per attempt.
json AttemptEvent(const Slice& s, int pid) {
  json args = {{"task", s.index},
               {"attempt", s.attempt},
               {"state", TaskStateName(s.state)},
               {"iterations", s.iterations},
               {"cpu_seconds", JsonNumber(s.cpu_seconds)},
               {"seconds", s.seconds},
               {"worker", std::string(s.worker)},
               {"host", std::string(s.host)},
               {"slot", s.slot},
               {"backup", s.backup}};
  if (!s.error.empty()) args["error"] = std::string(s.error);
  if (s.interference != nullptr) args["interference"] = InterferenceText(*s.interference);
  if (!s.slow_cause.empty()) args["slow_cause"] = std::string(s.slow_cause);
  if (s.rate_ratio > 0) args["rate_ratio"] = JsonNumber(s.rate_ratio);
  // Significant interference: Chrome's reserved "bad" colour instead of the state's.
  const bool interfered = Interfered(s) && LookOf(s) == Look::kSucceeded;
  return {{"ph", "X"},
          {"name", SliceName(s)},
          {"cat", TaskStateName(s.state)},
          {"pid", pid},
          {"tid", static_cast<int64_t>(s.slot) + 1},
          {"ts", s.start * 1e6},
          {"dur", s.seconds * 1e6},
          {"cname", interfered ? "bad" : StyleOf(LookOf(s)).cname},
          {"args", std::move(args)}};
}

// The job's figures, and what was drawn from where.
json OtherData(const v1::JobReport& report, const Slices& collected) {
  const v1::JobTiming& t = report.timing();
  return {{"schema", 1},
          {"id", report.id()},
          {"name", report.name()},
          {"state", JobStateName(report.state())},
          {"kind", TaskKindName(report.kind())},
          {"submitted_at", Rfc3339(t.submitted_at())},
          {"wall_seconds", JsonNumber(t.wall_seconds())},
          {"makespan_seconds", JsonNumber(t.makespan_seconds())},
          {"speedup", JsonNumber(t.speedup())},
          {"efficiency", JsonNumber(t.efficiency())},
          {"slots", t.slots()},
          {"tasks", TaskCount(report)},
          {"attempts", collected.slices.size()},
          {"skipped", collected.skipped},
          {"source", collected.from_attempts ? "attempts" : "tasks"}};
}

}  // namespace

std::string TimelineChromeJson(const v1::JobReport& report) {
  const Slices collected = CollectSlices(report);
  const std::vector<Slice>& slices = collected.slices;
  const std::map<absl::string_view, int> pids = WorkerPids(slices);
  json events = MetadataEvents(slices, GroupRows(slices), pids);
  for (const Slice& s : slices) {
    events.push_back(AttemptEvent(s, pids.at(s.worker)));
  }
  json trace = {{"traceEvents", std::move(events)},
                {"displayTimeUnit", "ms"},
                {"otherData", OtherData(report, collected)}};
  return trace.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string TimelineSvg(const v1::JobReport& report,
                        const TimelineSvgOptions& options) {
  const int width = std::clamp(options.width, kMinWidth, kMaxWidth);
  const size_t max_rows =
      static_cast<size_t>(std::clamp(options.max_rows, 1, kMaxRowsLimit));
  const Slices collected = CollectSlices(report);
  const std::vector<Slice>& slices = collected.slices;
  if (slices.empty()) return EmptySvg(report, width);

  const Rows rows = GroupRows(slices);
  const std::vector<DrawnRow> drawn = FirstRows(rows, max_rows);
  const size_t hidden_rows = rows.size() - drawn.size();
  int legend_lines = 0;
  const std::string legend = Legend(kLegendTop, width, &legend_lines);
  const Layout l = MakeLayout(width, TimeSpan(slices, report), drawn,
                              legend_lines, hidden_rows > 0);

  std::string out = absl::StrCat(
      SvgOpen(width, l.height), Header(report, width, slices.size(), rows.size()),
      legend, WorkerBands(drawn, l), TimeAxis(l));
  for (size_t row = 0; row < drawn.size(); ++row) {
    const double y = l.RowY(row);
    absl::StrAppend(&out, RowLabel(drawn[row], y, l, slices),
                    RowBars(*drawn[row].members, y, l, slices));
  }
  if (hidden_rows > 0) {
    absl::StrAppend(
        &out, FittedText(8, l.plot_bottom + 54, " fill=\"#666666\"",
                         absl::StrCat("+", hidden_rows,
                                      " more slots not drawn (limit ", max_rows,
                                      ")"),
                         width - 16.0));
  }
  absl::StrAppend(&out, "</svg>\n");
  return out;
}

}  // namespace busyfleet::report
