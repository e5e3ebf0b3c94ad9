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
using report::SvgNum;
using report::SvgOpen;
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

std::string Text(double x, double y, const std::string& attributes,
                 const std::string& text) {
  return absl::StrCat("<text x=\"", SvgNum(x), "\" y=\"", SvgNum(y), "\"",
                      attributes, ">", XmlEscape(text), "</text>\n");
}

std::string Line(double x1, double y1, double x2, double y2,
                 const std::string& attributes) {
  return absl::StrCat("<line x1=\"", SvgNum(x1), "\" y1=\"", SvgNum(y1),
                      "\" x2=\"", SvgNum(x2), "\" y2=\"", SvgNum(y2), "\"",
                      attributes, "/>\n");
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

}  // namespace

std::string ScalingSvg(const std::vector<ScalingPoint>& points,
                       const ScalingChartInfo& info) {
  std::vector<ScalingPoint> usable;
  for (const ScalingPoint& p : points) {
    if (Usable(p)) usable.push_back(p);
  }
  if (usable.empty()) {
    return absl::StrCat(SvgOpen(kWidth, 80), Headings(info),
                        Text(8, 64, " fill=\"#666666\"", "no measurements"),
                        "</svg>\n");
  }
  std::stable_sort(usable.begin(), usable.end(),
                   [](const ScalingPoint& a, const ScalingPoint& b) {
                     return a.slots < b.slots;
                   });

  const double max_slots = usable.back().slots;
  double max_speedup = 0;
  for (const ScalingPoint& p : usable) {
    max_speedup = std::max(max_speedup, p.speedup);
  }
  const double x_step = std::max(1.0, NiceStep(max_slots, 10));
  const double x_max = max_slots;
  const double y_step = NiceStep(std::max(max_slots, max_speedup), 6);
  const double y_max =
      std::ceil(std::max(max_slots, max_speedup) / y_step - 1e-9) * y_step;
  auto x_of = [&](double slots) {
    return kPlotLeft + slots / x_max * (kPlotRight - kPlotLeft);
  };
  auto y_of = [&](double speedup) {
    return kPlotBottom - speedup / y_max * (kPlotBottom - kPlotTop);
  };

  std::string out = SvgOpen(kWidth, kHeight);
  absl::StrAppend(&out, Headings(info));

  // Beyond the physical cores: shaded, marked and labelled.
  if (info.physical_cores > 0 && info.physical_cores < max_slots) {
    const double x = x_of(info.physical_cores);
    absl::StrAppend(&out, "<rect x=\"", SvgNum(x), "\" y=\"", SvgNum(kPlotTop),
                    "\" width=\"", SvgNum(kPlotRight - x), "\" height=\"",
                    SvgNum(kPlotBottom - kPlotTop), "\" fill=\"#fff3e0\"/>\n",
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
    absl::StrAppend(&out,
                    Text(text_x, kPlotTop + 52, attributes,
                         smt ? "logical CPUs > physical cores" : "slots > physical cores"),
                    Text(text_x, kPlotTop + 66, attributes, smt ? "(hyper-threads)" : "(oversubscribed)"));
  }

  // Grid, ticks and labels.
  for (int k = 0;; ++k) {
    const double v = k * x_step;
    if (v > x_max + 1e-9) break;
    const double x = x_of(v);
    absl::StrAppend(
        &out, Line(x, kPlotTop, x, kPlotBottom + 4, " stroke=\"#e0e0e0\""),
        Text(x, kPlotBottom + 18, " font-size=\"11\" text-anchor=\"middle\"",
             TickLabel(v, x_step)));
  }
  for (int k = 0;; ++k) {
    const double v = k * y_step;
    if (v > y_max + 1e-9) break;
    const double y = y_of(v);
    absl::StrAppend(
        &out, Line(kPlotLeft - 4, y, kPlotRight, y, " stroke=\"#e0e0e0\""),
        Text(kPlotLeft - 8, y + 4, " font-size=\"11\" text-anchor=\"end\"",
             TickLabel(v, y_step)));
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

  // Ideal: speedup = slots.
  absl::StrAppend(&out, Line(x_of(0), y_of(0), x_of(x_max), y_of(x_max),
                             " stroke=\"#757575\" stroke-width=\"1.5\" "
                             "stroke-dasharray=\"5,4\""));

  // Measured.
  std::vector<std::string> coordinates;
  for (const ScalingPoint& p : usable) {
    coordinates.push_back(
        absl::StrCat(SvgNum(x_of(p.slots)), ",", SvgNum(y_of(p.speedup))));
  }
  absl::StrAppend(&out, "<polyline points=\"", absl::StrJoin(coordinates, " "),
                  "\" fill=\"none\" stroke=\"", kMeasuredColour,
                  "\" stroke-width=\"2\"/>\n");
  for (const ScalingPoint& p : usable) {
    absl::StrAppend(
        &out, "<circle cx=\"", SvgNum(x_of(p.slots)), "\" cy=\"",
        SvgNum(y_of(p.speedup)), "\" r=\"4\" fill=\"", kMeasuredColour,
        "\"><title>",
        XmlEscape(absl::StrCat(p.slots, p.slots == 1 ? " slot" : " slots",
                               ": wall ", Fixed(p.wall_seconds, 3),
                               " s, speedup ", Multiple(p.speedup),
                               ", efficiency ", Percent(p.efficiency))),
        "</title></circle>\n");
  }

  // Legend, top left: above the ideal line, where no point goes.
  const double lx = kPlotLeft + 12;
  const double ly = kPlotTop + 16;
  absl::StrAppend(
      &out,
      Line(
          lx, ly - 4, lx + 24, ly - 4,
          absl::StrCat(" stroke=\"", kMeasuredColour, "\" stroke-width=\"2\"")),
      Text(lx + 30, ly, " font-size=\"11\"", "measured"),
      Line(lx, ly + 12, lx + 24, ly + 12,
           " stroke=\"#757575\" stroke-width=\"1.5\" stroke-dasharray=\"5,4\""),
      Text(lx + 30, ly + 16, " font-size=\"11\"", "ideal (speedup = slots)"),
      "</svg>\n");
  return out;
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
