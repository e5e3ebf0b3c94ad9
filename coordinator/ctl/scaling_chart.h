#ifndef BUSYFLEET_COORDINATOR_CTL_SCALING_CHART_H_
#define BUSYFLEET_COORDINATOR_CTL_SCALING_CHART_H_

// The scaling curve of `coordctl bench --sweep`: the same work on 1, 2, ...
// slots, as a text table and an SVG chart (`--svg FILE`).
// Pure functions: no I/O, no gRPC, thread-safe.

#include <cstdint>
#include <string>
#include <vector>

namespace busyfleet::coordctl {

// One run of the sweep.
struct ScalingPoint {
  uint32_t slots = 0;
  double wall_seconds = 0;
  // Against the serial run: serial wall / this wall.
  double speedup = 0;
  // speedup / slots.
  double efficiency = 0;
  // The speedup's interval over repeated trials (bench --repeat); drawn as
  // a whisker when low < high (both 0: one trial, none drawn).
  double speedup_low = 0;
  double speedup_high = 0;
};

struct ScalingChartInfo {
  // Shown above the chart (e.g. "4 x 10,000,000 countdown, 3 workers").
  std::string title;
  // Of the fleet; 0 when unknown. Where the slots exceed the physical cores,
  // the extra slots run on hyper-threads.
  uint32_t physical_cores = 0;
  uint32_t logical_cpus = 0;
};

// A standalone SVG document (starts with `<svg xmlns=...`, no XML
// declaration, no ids or style sheet, so it can be inlined in HTML), 640 x 420
// px: the title and a line "physical cores P, logical CPUs L" (the known
// ones), speedup (y) against slots (x) on axes from 0 with 1-2-5 ticks
// (whole slots on x) and labels, the ideal line y = x (dashed, grey), the
// measured speedups as a polyline in slot order with a point per run whose
// <title> gives slots, wall, speedup and efficiency (and the interval), a
// vertical whisker over each point's speedup interval, a legend, and — only
// when 0 < physical_cores < the largest slots — a dashed vertical marker at
// x = physical_cores with the region beyond shaded and labelled "logical
// CPUs > physical cores" / "(hyper-threads)". Points with slots 0 or a
// non-finite or negative speedup or wall are left out; with none left, a
// small valid SVG saying "no measurements". All text is XML-escaped.
std::string ScalingSvg(const std::vector<ScalingPoint>& points,
                       const ScalingChartInfo& info);

// Plain text, ending in a newline: a table SLOTS WALL(s) SPEEDUP EFFICIENCY,
// one row per point in the given order ("4  1.234  3.85x  96.3%"; "-" for a
// non-finite figure). "No measurements.\n" when `points` is empty.
std::string RenderScalingTable(const std::vector<ScalingPoint>& points);

}  // namespace busyfleet::coordctl

#endif  // BUSYFLEET_COORDINATOR_CTL_SCALING_CHART_H_
