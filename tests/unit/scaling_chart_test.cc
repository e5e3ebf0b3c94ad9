#include "coordinator/ctl/scaling_chart.h"

#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "tests/testing/svg_testing.h"

namespace busyfleet::coordctl {
namespace {

using busyfleet::testing::CountOccurrences;
using busyfleet::testing::IsWellFormedXml;

// A sweep 1..max_slots that scales perfectly up to `cores`, then gains 30%
// per extra slot (hyper-threads).
std::vector<ScalingPoint> Sweep(uint32_t max_slots, uint32_t cores) {
  std::vector<ScalingPoint> points;
  const double serial = 8.0;
  for (uint32_t s = 1; s <= max_slots; ++s) {
    const double speedup = s <= cores ? s : cores + 0.3 * (s - cores);
    points.push_back({s, serial / speedup, speedup, speedup / s});
  }
  return points;
}

TEST(ScalingChartTest, MarksHyperThreadsOnlyPastThePhysicalCores) {
  const std::vector<ScalingPoint> points = Sweep(8, 4);
  struct Case {
    uint32_t cores;
    bool marked;
  };
  for (const Case& c : {Case{4, true}, Case{7, true}, Case{8, false},
                        Case{16, false}, Case{0, false}}) {
    SCOPED_TRACE(c.cores);
    const std::string svg = ScalingSvg(points, {"sweep", c.cores, 8});
    EXPECT_EQ(absl::StrContains(svg, "logical CPUs &gt; physical cores"),
              c.marked);
    EXPECT_EQ(absl::StrContains(svg, "(hyper-threads)"), c.marked);
    EXPECT_TRUE(IsWellFormedXml(svg));
  }
}

TEST(ScalingChartTest, MoreSlotsThanCoresWithoutHyperThreadsIsOversubscription) {
  const std::string svg = ScalingSvg(Sweep(6, 4), {"sweep", 4, 4});
  EXPECT_TRUE(absl::StrContains(svg, "slots &gt; physical cores"));
  EXPECT_TRUE(absl::StrContains(svg, "(oversubscribed)"));
  EXPECT_FALSE(absl::StrContains(svg, "hyper-threads"));
  EXPECT_TRUE(IsWellFormedXml(svg));
}

TEST(ScalingChartTest, DrawsEveryPointTheIdealLineAndAxes) {
  const std::vector<ScalingPoint> points = Sweep(6, 6);
  const std::string svg = ScalingSvg(points, {"four cores", 6, 12});
  EXPECT_TRUE(
      absl::StartsWith(svg, "<svg xmlns=\"http://www.w3.org/2000/svg\""));
  EXPECT_EQ(CountOccurrences(svg, "<circle "), points.size());
  EXPECT_EQ(CountOccurrences(svg, "<polyline "), 1u);
  EXPECT_TRUE(absl::StrContains(svg, "ideal (speedup = slots)"));
  EXPECT_TRUE(absl::StrContains(svg, ">slots<"));
  EXPECT_TRUE(absl::StrContains(svg, ">speedup (x)<"));
  EXPECT_TRUE(absl::StrContains(svg, "physical cores 6, logical CPUs 12"));
  EXPECT_TRUE(absl::StrContains(
      svg, "3 slots: wall 2.667 s, speedup 3.00x, efficiency 100.0%"));
  // Whole-slot ticks on x: 0..6.
  for (const char* tick : {">0<", ">1<", ">6<"}) {
    EXPECT_TRUE(absl::StrContains(svg, tick)) << tick;
  }
  EXPECT_FALSE(absl::StrContains(svg, ">0.5<"));
}

TEST(ScalingChartTest, RepeatedTrialsDrawTheirIntervalAsAWhisker) {
  std::vector<ScalingPoint> points = Sweep(3, 3);
  points[1].speedup_low = 1.8;
  points[1].speedup_high = 2.1;
  const std::string svg = ScalingSvg(points, {"sweep", 3, 3});
  EXPECT_EQ(CountOccurrences(svg, "class=\"ci\""), 1u);  // one trial elsewhere: no whisker
  EXPECT_TRUE(absl::StrContains(svg, "2 slots: wall 4.000 s, speedup 2.00x [1.80x-2.10x], efficiency 100.0%"));
  EXPECT_TRUE(IsWellFormedXml(svg));
}

TEST(ScalingChartTest, EscapesTheTitleAndSkipsUnusablePoints) {
  std::vector<ScalingPoint> points = Sweep(3, 2);
  points.push_back({0, 1, 1, 1});
  points.push_back({9, std::numeric_limits<double>::quiet_NaN(), 2, 0.2});
  const std::string svg = ScalingSvg(points, {"a<b&\"c'", 2, 4});
  EXPECT_TRUE(IsWellFormedXml(svg));
  EXPECT_TRUE(absl::StrContains(svg, "a&lt;b&amp;&quot;c&apos;"));
  EXPECT_EQ(CountOccurrences(svg, "<circle "), 3u);
}

TEST(ScalingChartTest, NoPointsGiveASmallValidChart) {
  const std::string svg = ScalingSvg({}, {"empty", 0, 0});
  EXPECT_TRUE(absl::StrContains(svg, "no measurements"));
  EXPECT_TRUE(IsWellFormedXml(svg));
}

TEST(ScalingChartTest, TableHasOneAlignedRowPerPoint) {
  const std::string table =
      RenderScalingTable({{1, 8.0, 1.0, 1.0},
                          {16, 0.625, 12.8, 0.8},
                          {2, std::numeric_limits<double>::infinity(), 0, 0}});
  const std::vector<std::string> lines =
      absl::StrSplit(table, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_EQ(lines[0], "SLOTS  WALL(s)  SPEEDUP  EFFICIENCY");
  EXPECT_EQ(lines[1], "    1    8.000    1.00x      100.0%");
  EXPECT_EQ(lines[2], "   16    0.625   12.80x       80.0%");
  EXPECT_EQ(lines[3], "    2        -    0.00x        0.0%");
  EXPECT_EQ(RenderScalingTable({}), "No measurements.\n");
}

}  // namespace
}  // namespace busyfleet::coordctl
