#include "coordinator/ctl/compare_format.h"

#include <cstdint>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "busyfleet/v1/coordinator.pb.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace busyfleet::coordctl {
namespace {

using nlohmann::json;

v1::JobReport Report(const std::string& id, double wall, double speedup,
                     uint32_t slots) {
  v1::JobReport r;
  r.set_schema(1);
  r.set_id(id);
  r.set_name("run " + id);
  r.set_state(v1::JOB_STATE_SUCCEEDED);
  r.set_tasks_total(8);
  r.set_iterations_total(80000000000ULL);
  v1::JobTiming* t = r.mutable_timing();
  t->set_wall_seconds(wall);
  t->set_makespan_seconds(wall * 0.9);
  t->set_serial_seconds(8);
  t->set_overhead_seconds(wall * 0.1);
  t->set_speedup(speedup);
  t->set_efficiency(slots ? speedup / slots : 0);
  t->set_slots(slots);
  t->set_cpu_seconds(8);
  t->mutable_task_seconds()->set_p50(1);
  t->mutable_task_seconds()->set_p99(1.5);
  t->set_mean_queued_seconds(0.002);
  t->set_mean_dispatch_seconds(0);
  t->set_mean_result_seconds(0.001);
  return r;
}

void AddWorker(v1::JobReport* r, const std::string& name, double per_slot) {
  v1::WorkerTiming* w = r->add_workers();
  w->set_name(name);
  w->set_iterations_per_second(per_slot);
}

std::map<std::string, json> ByKey(const json& rows, const char* key) {
  std::map<std::string, json> out;
  for (const json& row : rows) out[row.at(key).get<std::string>()] = row;
  return out;
}

TEST(CompareFormatTest, JsonHasEveryMetricWithRatioBOverA) {
  const v1::JobReport a = Report("j-a", 4.0, 2.0, 2);
  const v1::JobReport b = Report("j-b", 1.0, 8.0, 8);
  const json j = CompareToJson(a, b);
  EXPECT_EQ(j.at("schema"), 1);
  EXPECT_EQ(j.at("a"),
            (json{{"id", "j-a"}, {"name", "run j-a"}, {"state", "SUCCEEDED"}}));
  EXPECT_EQ(j.at("b").at("id"), "j-b");

  const auto metrics = ByKey(j.at("metrics"), "metric");
  for (const char* key : {"wall_seconds", "makespan_seconds", "serial_seconds",
                          "overhead_seconds", "speedup", "efficiency", "slots",
                          "cpu_seconds", "task_p50_seconds", "task_p99_seconds",
                          "mean_queued_seconds", "mean_dispatch_seconds",
                          "mean_result_seconds", "tasks", "iterations_total",
                          "work_serial_seconds", "work_speedup"}) {
    EXPECT_TRUE(metrics.count(key)) << key;
  }
  EXPECT_EQ(metrics.size(), 17u);
  EXPECT_DOUBLE_EQ(metrics.at("wall_seconds").at("a").get<double>(), 4.0);
  EXPECT_DOUBLE_EQ(metrics.at("wall_seconds").at("b").get<double>(), 1.0);
  EXPECT_DOUBLE_EQ(metrics.at("wall_seconds").at("ratio").get<double>(), 0.25);
  EXPECT_DOUBLE_EQ(metrics.at("speedup").at("ratio").get<double>(), 4.0);
  EXPECT_DOUBLE_EQ(metrics.at("slots").at("ratio").get<double>(), 4.0);
  EXPECT_DOUBLE_EQ(metrics.at("serial_seconds").at("ratio").get<double>(), 1.0);
  // Counts are integers, iterations exact.
  EXPECT_TRUE(metrics.at("slots").at("a").is_number_unsigned());
  EXPECT_EQ(metrics.at("iterations_total").at("b").get<uint64_t>(),
            80000000000ULL);
  // a is 0: no ratio.
  EXPECT_TRUE(metrics.at("mean_dispatch_seconds").at("ratio").is_null());
}

TEST(CompareFormatTest, RatioIsNullWhenAIsZeroOrNotFinite) {
  v1::JobReport a = Report("j-a", 0.0, 0.0, 0);
  a.mutable_timing()->set_speedup(std::numeric_limits<double>::quiet_NaN());
  const v1::JobReport b = Report("j-b", 1.0, 8.0, 8);
  const auto metrics = ByKey(CompareToJson(a, b).at("metrics"), "metric");
  EXPECT_TRUE(metrics.at("wall_seconds").at("ratio").is_null());
  EXPECT_TRUE(metrics.at("slots").at("ratio").is_null());
  EXPECT_TRUE(metrics.at("speedup").at("a").is_null());
  EXPECT_TRUE(metrics.at("speedup").at("ratio").is_null());
  // b is 0, a is not: a real ratio of 0.
  const auto reverse = ByKey(CompareToJson(b, a).at("metrics"), "metric");
  EXPECT_DOUBLE_EQ(reverse.at("wall_seconds").at("ratio").get<double>(), 0.0);
}

TEST(CompareFormatTest, WorkersMatchByNameWithNullForTheMissingSide) {
  v1::JobReport a = Report("j-a", 2, 2, 2);
  v1::JobReport b = Report("j-b", 1, 4, 4);
  AddWorker(&a, "node-1", 100e6);
  AddWorker(&a, "node-2", 200e6);
  AddWorker(&b, "node-2", 150e6);
  AddWorker(&b, "node-3", 90e6);
  const json workers = CompareToJson(a, b).at("workers");
  ASSERT_EQ(workers.size(), 3u);
  const auto by_name = ByKey(workers, "name");
  EXPECT_TRUE(by_name.at("node-1").at("b").is_null());
  EXPECT_TRUE(by_name.at("node-1").at("ratio").is_null());
  EXPECT_TRUE(by_name.at("node-3").at("a").is_null());
  EXPECT_TRUE(by_name.at("node-3").at("ratio").is_null());
  EXPECT_DOUBLE_EQ(by_name.at("node-2").at("ratio").get<double>(), 0.75);
}

TEST(CompareFormatTest, TextShowsAlignedRowsAndRatios) {
  v1::JobReport a = Report("j-a", 2.5, 2, 2);
  v1::JobReport b = Report("j-b", 1.3, 4, 4);
  AddWorker(&a, "node-1", 100e6);
  AddWorker(&b, "node-1", 52e6);
  const std::string text = RenderCompare(a, b);
  const std::vector<std::string> lines = absl::StrSplit(text, '\n');
  EXPECT_EQ(lines[0], "A: j-a (run j-a)  SUCCEEDED");
  EXPECT_EQ(lines[1], "B: j-b (run j-b)  SUCCEEDED");
  std::map<std::string, std::string> row;  // First word -> whole line.
  for (const std::string& line : lines) {
    row[line.substr(0, line.find("  "))] = line;
  }
  EXPECT_TRUE(absl::StrContains(row.at("wall (s)"), "2.500"));
  EXPECT_TRUE(absl::StrContains(row.at("wall (s)"), "1.300"));
  EXPECT_TRUE(absl::EndsWith(row.at("wall (s)"), "0.52x"));
  EXPECT_TRUE(absl::EndsWith(row.at("mean dispatch (s)"), "-"));
  EXPECT_TRUE(absl::StrContains(row.at("efficiency"), "100.0%"));
  EXPECT_TRUE(absl::StrContains(row.at("iterations"), "80.0G"));
  EXPECT_EQ(row.at("node-1"), "node-1       100.0M        52.0M  0.52x");
  // Every metric row is as long as the header (right-aligned columns).
  const size_t width = row.at("METRIC").size();
  EXPECT_EQ(row.at("wall (s)").size(), width);
  EXPECT_EQ(row.at("slots").size(), width);
}

// Repeated runs a side: medians, a bootstrap interval of the ratio, verdict.
TEST(CompareSetsTest, OverlappingRunsAreWithinNoise) {
  const std::vector<v1::JobReport> a = {Report("a1", 4.0, 2, 2), Report("a2", 4.4, 2, 2), Report("a3", 3.8, 2, 2)};
  const std::vector<v1::JobReport> b = {Report("b1", 4.1, 2, 2), Report("b2", 3.9, 2, 2), Report("b3", 4.3, 2, 2)};
  const json j = CompareSetsToJson(a, b);
  EXPECT_EQ(j.at("a").at("ids"), (json{"a1", "a2", "a3"}));
  EXPECT_EQ(j.at("a").at("id"), "a1");
  const auto metrics = ByKey(j.at("metrics"), "metric");
  const json& wall = metrics.at("wall_seconds");
  EXPECT_DOUBLE_EQ(wall.at("a").get<double>(), 4.0);
  EXPECT_DOUBLE_EQ(wall.at("b").get<double>(), 4.1);
  EXPECT_EQ(wall.at("verdict"), "within_noise");
  EXPECT_LE(wall.at("ratio_low").get<double>(), 1.0);
  EXPECT_GE(wall.at("ratio_high").get<double>(), 1.0);
  EXPECT_EQ(wall.at("b_trials").size(), 3u);
  const std::string text = RenderCompareSets(a, b);
  EXPECT_TRUE(absl::StrContains(text, "A: 3 jobs: a1, a2, a3")) << text;
  EXPECT_TRUE(absl::StrContains(text, "≈ within noise")) << text;
}

TEST(CompareSetsTest, SeparatedRunsSayWhichSideIsHigher) {
  const std::vector<v1::JobReport> a = {Report("a1", 4.0, 2, 2), Report("a2", 4.1, 2, 2), Report("a3", 3.9, 2, 2)};
  const std::vector<v1::JobReport> b = {Report("b1", 1.0, 8, 8), Report("b2", 1.1, 8, 8)};
  const auto metrics = ByKey(CompareSetsToJson(a, b).at("metrics"), "metric");
  EXPECT_EQ(metrics.at("wall_seconds").at("verdict"), "lower");
  EXPECT_EQ(metrics.at("speedup").at("verdict"), "higher");
  EXPECT_TRUE(absl::StrContains(RenderCompareSets(a, b), "B lower"));
}

TEST(CompareSetsTest, OneJobASideHasNoInterval) {
  const auto metrics =
      ByKey(CompareSetsToJson({Report("a", 4, 2, 2)}, {Report("b", 1, 8, 8), Report("c", 1, 8, 8)}).at("metrics"),
            "metric");
  EXPECT_EQ(metrics.at("wall_seconds").at("verdict"), "single_trial");
}

}  // namespace
}  // namespace busyfleet::coordctl
