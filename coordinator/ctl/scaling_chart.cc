#include "coordinator/ctl/scaling_chart.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "coordinator/report/format.h"
#include "coordinator/report/svg_util.h"
#include "coordinator/report/text_table.h"

namespace busyfleet::coordctl {

using report::Fixed;
using report::Multiple;
using report::NiceStep;
using report::Percent;
using report::RenderTextTable;
using report::SvgLine;
using report::SvgNum;
using report::SvgOpen;
using report::SvgRect;
using report::SvgText;
using report::TableColumn;
using report::TickLabel;
using report::TruncateText;
using report::XmlEscape;
namespace {

// Layout, pixels.
constexpr int kWidth = 640;
constexpr int kHeight = 420;
constexpr double kPlotLeft = 60;
constexpr double kPlotRight = kWidth - 24;
constexpr double kPlotTop = 60;
constexpr double kPlotBottom = kHeight - 56;
constexpr double kCharWidth = 6.5;
constexpr char kMeasuredColour[] = "#1565c0";
// Width of the marker's longer line at 11 px, estimated.
constexpr double kMarkerTextWidth = 176;

bool Usable(const ScalingPoint& p) {
  return p.slots > 0 && std::isfinite(p.speedup) && p.speedup >= 0 &&
         std::isfinite(p.wall_seconds) && p.wall_seconds >= 0;
}

// A text line with the text escaped.
std::string Text(double x, double y, absl::string_view attributes,
                 absl::string_view text) {
  return absl::StrCat(SvgText(x, y, attributes, text), "\n");
}

std::string Line(double x1, double y1, double x2, double y2,
                 absl::string_view attributes) {
  return absl::StrCat(SvgLine(x1, y1, x2, y2, attributes), "\n");
}

std::string Headings(const ScalingChartInfo& info) {
  const size_t max_chars = static_cast<size_t>((kWidth - 16) / kCharWidth);
  std::string out =
      Text(8, 22, " font-size=\"14\" font-weight=\"bold\"",
           TruncateText(info.title.empty() ? std::string("Speedup by slots")
                                           : info.title,
                        max_chars));
  std::vector<std::string> host;
  if (info.physical_cores > 0) {
    host.push_back(absl::StrCat("physical cores ", info.physical_cores));
  }
  if (info.logical_cpus > 0) {
    host.push_back(absl::StrCat("logical CPUs ", info.logical_cpus));
  }
  if (!host.empty()) {
    absl::StrAppend(
        &out, Text(8, 40, " fill=\"#333333\"", absl::StrJoin(host, ", ")));
  }
  return out;
}

// The usable points in slot order (stable: runs of equal slots keep theirs).
std::vector<ScalingPoint> UsablePoints(const std::vector<ScalingPoint>& points) {
  std::vector<ScalingPoint> usable;
  for (const ScalingPoint& p : points) {
    if (Usable(p)) usable.push_back(p);
  }
  std::stable_sort(usable.begin(), usable.end(),
                   [](const ScalingPoint& a, const ScalingPoint& b) {
                     return a.slots < b.slots;
                   });
  return usable;
}

// Both axes from 0: x to the most slots, in whole-slot steps; y to the larger
// of the most slots (the ideal line's end) and the best speedup, rounded up
// to a step.
struct Axes {
  double x_step = 1;
  double x_max = 1;
  double y_step = 1;
  double y_max = 1;

  double XOf(double slots) const {
    return kPlotLeft + slots / x_max * (kPlotRight - kPlotLeft);
  }
  double YOf(double speedup) const {
    return kPlotBottom - speedup / y_max * (kPlotBottom - kPlotTop);
  }
};

// `usable` is not empty and in slot order.
Axes AxesFor(const std::vector<ScalingPoint>& usable) {
  const double max_slots = usable.back().slots;
  double max_speedup = 0;
  for (const ScalingPoint& p : usable) {
    max_speedup = std::max({max_speedup, p.speedup, std::isfinite(p.speedup_high) ? p.speedup_high : 0.0});
  }
  Axes a;
  a.x_step = std::max(1.0, NiceStep(max_slots, 10));
  a.x_max = max_slots;
  a.y_step = NiceStep(std::max(max_slots, max_speedup), 6);
  a.y_max =
      std::ceil(std::max(max_slots, max_speedup) / a.y_step - 1e-9) * a.y_step;
  return a;
}

// Beyond the physical cores: shaded, marked and labelled. Only when
// 0 < physical cores < the most slots.
std::string PhysicalCoresMarker(const ScalingChartInfo& info, const Axes& a) {
  if (info.physical_cores == 0 || info.physical_cores >= a.x_max) return "";
  const double x = a.XOf(info.physical_cores);
  std::string out = absl::StrCat(
      SvgRect(x, kPlotTop, kPlotRight - x, kPlotBottom - kPlotTop,
              " fill=\"#fff3e0\""),
      "\n",
      Line(x, kPlotTop, x, kPlotBottom,
           " stroke=\"#e65100\" stroke-width=\"1.5\" "
           "stroke-dasharray=\"6,4\""));
  // Two lines near the top, under the legend, where the ideal line (at
  // speedup = physical cores here) leaves room: right of the marker when
  // the shaded region is wide enough, left of it otherwise.
  const bool room_right = kPlotRight - x >= kMarkerTextWidth;
  const std::string attributes =
      room_right ? " font-size=\"11\" fill=\"#e65100\""
                 : " font-size=\"11\" fill=\"#e65100\" text-anchor=\"end\"";
  const double text_x = room_right ? x + 6 : x - 6;
  // Past the physical cores the extra slots share cores: hyper-threads
  // when the machines have more logical CPUs, plain oversubscription when not.
  const bool smt = info.logical_cpus > info.physical_cores;
  absl::StrAppend(
      &out,
      Text(text_x, kPlotTop + 52, attributes,
           smt ? "logical CPUs > physical cores" : "slots > physical cores"),
      Text(text_x, kPlotTop + 66, attributes,
           smt ? "(hyper-threads)" : "(oversubscribed)"));
  return out;
}

// Grid lines with tick labels on both axes, the axes and their titles.
std::string GridAndAxes(const Axes& a) {
  std::string out;
  for (int k = 0;; ++k) {
    const double v = k * a.x_step;
    if (v > a.x_max + 1e-9) break;
    const double x = a.XOf(v);
    absl::StrAppend(
        &out, Line(x, kPlotTop, x, kPlotBottom + 4, " stroke=\"#e0e0e0\""),
        Text(x, kPlotBottom + 18, " font-size=\"11\" text-anchor=\"middle\"",
             TickLabel(v, a.x_step)));
  }
  for (int k = 0;; ++k) {
    const double v = k * a.y_step;
    if (v > a.y_max + 1e-9) break;
    const double y = a.YOf(v);
    absl::StrAppend(
        &out, Line(kPlotLeft - 4, y, kPlotRight, y, " stroke=\"#e0e0e0\""),
        Text(kPlotLeft - 8, y + 4, " font-size=\"11\" text-anchor=\"end\"",
             TickLabel(v, a.y_step)));
  }
  absl::StrAppend(
      &out,
      Line(kPlotLeft, kPlotBottom, kPlotRight, kPlotBottom,
           " stroke=\"#333333\""),
      Line(kPlotLeft, kPlotTop, kPlotLeft, kPlotBottom, " stroke=\"#333333\""),
      Text((kPlotLeft + kPlotRight) / 2, kPlotBottom + 38,
           " text-anchor=\"middle\"", "slots"),
      absl::StrCat("<text x=\"0\" y=\"0\" text-anchor=\"middle\" "
                   "transform=\"translate(18 ",
                   SvgNum((kPlotTop + kPlotBottom) / 2),
                   ") rotate(-90)\">speedup (x)</text>\n"));
  return out;
}

bool HasInterval(const ScalingPoint& p) {
  return std::isfinite(p.speedup_low) && std::isfinite(p.speedup_high) && p.speedup_low >= 0 &&
         p.speedup_low < p.speedup_high;
}

// The ideal line (speedup = slots), then the measured speedups as a polyline
// with a point per run and its figures in a <title>.
std::string Curves(const std::vector<ScalingPoint>& usable, const Axes& a) {
  std::string out = Line(a.XOf(0), a.YOf(0), a.XOf(a.x_max), a.YOf(a.x_max),
                         " stroke=\"#757575\" stroke-width=\"1.5\" "
                         "stroke-dasharray=\"5,4\"");
  std::vector<std::string> coordinates;
  for (const ScalingPoint& p : usable) {
    coordinates.push_back(
        absl::StrCat(SvgNum(a.XOf(p.slots)), ",", SvgNum(a.YOf(p.speedup))));
  }
  absl::StrAppend(&out, "<polyline points=\"", absl::StrJoin(coordinates, " "),
                  "\" fill=\"none\" stroke=\"", kMeasuredColour,
                  "\" stroke-width=\"2\"/>\n");
  for (const ScalingPoint& p : usable) {
    if (HasInterval(p)) {
      absl::StrAppend(&out, Line(a.XOf(p.slots), a.YOf(p.speedup_low), a.XOf(p.slots), a.YOf(p.speedup_high),
                                 absl::StrCat(" stroke=\"", kMeasuredColour, "\" stroke-width=\"1.5\" class=\"ci\"")));
    }
    const std::string interval =
        HasInterval(p) ? absl::StrCat(" [", Multiple(p.speedup_low), "-", Multiple(p.speedup_high), "]") : "";
    absl::StrAppend(
        &out, "<circle cx=\"", SvgNum(a.XOf(p.slots)), "\" cy=\"",
        SvgNum(a.YOf(p.speedup)), "\" r=\"4\" fill=\"", kMeasuredColour,
        "\"><title>",
        XmlEscape(absl::StrCat(p.slots, p.slots == 1 ? " slot" : " slots",
                               ": wall ", Fixed(p.wall_seconds, 3),
                               " s, speedup ", Multiple(p.speedup), interval,
                               ", efficiency ", Percent(p.efficiency))),
        "</title></circle>\n");
  }
  return out;
}

// Legend, top left: above the ideal line, where no point goes.
std::string Legend() {
  const double lx = kPlotLeft + 12;
  const double ly = kPlotTop + 16;
  return absl::StrCat(
      Line(
          lx, ly - 4, lx + 24, ly - 4,
          absl::StrCat(" stroke=\"", kMeasuredColour, "\" stroke-width=\"2\"")),
      Text(lx + 30, ly, " font-size=\"11\"", "measured"),
      Line(lx, ly + 12, lx + 24, ly + 12,
           " stroke=\"#757575\" stroke-width=\"1.5\" stroke-dasharray=\"5,4\""),
      Text(lx + 30, ly + 16, " font-size=\"11\"", "ideal (speedup = slots)"));
}

}  // namespace

std::string ScalingSvg(const std::vector<ScalingPoint>& points,
                       const ScalingChartInfo& info) {
  const std::vector<ScalingPoint> usable = UsablePoints(points);
  if (usable.empty()) {
    return absl::StrCat(SvgOpen(kWidth, 80), Headings(info),
                        Text(8, 64, " fill=\"#666666\"", "no measurements"),
                        "</svg>\n");
  }
  const Axes axes = AxesFor(usable);
  return absl::StrCat(SvgOpen(kWidth, kHeight), Headings(info),
                      PhysicalCoresMarker(info, axes), GridAndAxes(axes),
                      Curves(usable, axes), Legend(), "</svg>\n");
}

std::string RenderScalingTable(const std::vector<ScalingPoint>& points) {
  if (points.empty()) return "No measurements.\n";
  const std::vector<TableColumn> columns = {{"SLOTS", true},
                                            {"WALL(s)", true},
                                            {"SPEEDUP", true},
                                            {"EFFICIENCY", true}};
  std::vector<std::vector<std::string>> rows;
  rows.reserve(points.size());
  for (const ScalingPoint& p : points) {
    rows.push_back({absl::StrCat(p.slots), Fixed(p.wall_seconds, 3),
                    Multiple(p.speedup), Percent(p.efficiency)});
  }
  return RenderTextTable(columns, rows);
}

}  // namespace busyfleet::coordctl
