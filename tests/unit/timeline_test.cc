#include "coordinator/report/timeline.h"

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <map>
#include <set>
#include <string>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "busyfleet/v1/coordinator.pb.h"
#include "busyfleet/v1/types.pb.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/testing/svg_testing.h"

namespace busyfleet::report {
namespace {

using busyfleet::testing::CountOccurrences;
using busyfleet::testing::IsWellFormedXml;
using nlohmann::json;

v1::AttemptTiming* AddAttempt(v1::JobReport* r, uint32_t index,
                              uint32_t attempt, const std::string& worker,
                              uint32_t slot, v1::TaskState state, double start,
                              double seconds) {
  v1::AttemptTiming* a = r->add_attempts();
  a->set_index(index);
  a->set_attempt(attempt);
  a->set_worker(worker);
  a->set_host("host-" + worker);
  a->set_slot(slot);
  a->set_state(state);
  a->set_start_offset_seconds(start);
  a->set_seconds(seconds);
  a->set_cpu_seconds(seconds * 0.9);
  a->set_iterations(1000000);
  return a;
}

// Two workers (added out of name order), five attempts: a plain success, a
// failure retried elsewhere, a cancelled task, a running backup copy.
v1::JobReport SmallReport() {
  v1::JobReport r;
  r.set_schema(1);
  r.set_id("j-0007");
  r.set_name("small");
  r.set_state(v1::JOB_STATE_RUNNING);
  r.set_kind(v1::TASK_KIND_COUNTDOWN);
  r.set_tasks_total(4);
  r.mutable_timing()->set_wall_seconds(2.5);
  r.mutable_timing()->set_speedup(1.5);
  r.mutable_timing()->set_efficiency(0.75);
  AddAttempt(&r, 0, 1, "node-b", 0, v1::TASK_STATE_SUCCEEDED, 0.010, 1.0);
  AddAttempt(&r, 1, 1, "node-a", 1, v1::TASK_STATE_FAILED, 0.020, 0.25)
      ->set_error("worker lost");
  AddAttempt(&r, 1, 2, "node-b", 1, v1::TASK_STATE_SUCCEEDED, 0.500, 1.5);
  AddAttempt(&r, 2, 1, "node-a", 0, v1::TASK_STATE_CANCELLED, 0.030, 0.75);
  AddAttempt(&r, 3, 1, "node-a", 1, v1::TASK_STATE_RUNNING, 1.250, 0.5)
      ->set_backup(true);
  return r;
}

// What the Chrome trace should say about an attempt, worked out here.
struct Expected {
  int pid;
  int tid;
  std::string cname;
};

std::string ExpectedCname(const v1::AttemptTiming& a) {
  switch (a.state()) {
    case v1::TASK_STATE_SUCCEEDED:
      return a.attempt() == 1 ? "good" : "yellow";
    case v1::TASK_STATE_FAILED:
      return "terrible";
    case v1::TASK_STATE_CANCELLED:
      return "grey";
    default:
      return "generic_work";
  }
}

std::vector<json> EventsOfPhase(const json& trace, const std::string& ph) {
  std::vector<json> out;
  for (const json& e : trace.at("traceEvents")) {
    if (e.at("ph") == ph) out.push_back(e);
  }
  return out;
}

TEST(TimelineChromeTest, OneCompleteEventPerAttemptWithTimesRowsAndColours) {
  const v1::JobReport r = SmallReport();
  const json trace = json::parse(TimelineChromeJson(r));
  EXPECT_EQ(trace.at("displayTimeUnit"), "ms");

  const std::vector<json> complete = EventsOfPhase(trace, "X");
  ASSERT_EQ(complete.size(), static_cast<size_t>(r.attempts_size()));
  // Workers by name: node-a is pid 1, node-b pid 2; tid is slot + 1.
  const std::map<std::string, int> pid_of = {{"node-a", 1}, {"node-b", 2}};
  for (int i = 0; i < r.attempts_size(); ++i) {
    const v1::AttemptTiming& a = r.attempts(i);
    const json& e = complete[static_cast<size_t>(i)];
    SCOPED_TRACE(e.dump());
    EXPECT_EQ(e.at("args").at("task"), a.index());
    EXPECT_EQ(e.at("args").at("attempt"), a.attempt());
    EXPECT_NEAR(e.at("ts").get<double>(), a.start_offset_seconds() * 1e6, 1e-6);
    EXPECT_NEAR(e.at("dur").get<double>(), a.seconds() * 1e6, 1e-6);
    EXPECT_EQ(e.at("pid"), pid_of.at(a.worker()));
    EXPECT_EQ(e.at("tid"), a.slot() + 1);
    EXPECT_EQ(e.at("cname"), ExpectedCname(a));
    EXPECT_EQ(e.at("args").at("worker"), a.worker());
    EXPECT_EQ(e.at("args").at("host"), a.host());
    EXPECT_EQ(e.at("args").at("iterations"), a.iterations());
    EXPECT_NEAR(e.at("args").at("cpu_seconds").get<double>(), a.cpu_seconds(),
                1e-12);
    EXPECT_EQ(e.at("args").at("backup"), a.backup());
    EXPECT_EQ(e.at("args").contains("error"), !a.error().empty());
  }
  EXPECT_EQ(complete[1].at("args").at("error"), "worker lost");
  EXPECT_EQ(complete[1].at("cat"), "FAILED");
  EXPECT_EQ(complete[4].at("name"), "task 3 (backup)");

  // Metadata: one process per worker, one thread per slot used.
  std::map<int, std::string> process_names;
  std::set<std::pair<int, int>> threads;
  for (const json& m : EventsOfPhase(trace, "M")) {
    if (m.at("name") == "process_name") {
      process_names[m.at("pid").get<int>()] = m.at("args").at("name");
    } else if (m.at("name") == "thread_name") {
      const int tid = m.at("tid").get<int>();
      EXPECT_EQ(m.at("args").at("name"), absl::StrCat("slot ", tid - 1));
      threads.insert({m.at("pid").get<int>(), tid});
    }
  }
  EXPECT_EQ(process_names,
            (std::map<int, std::string>{{1, "node-a (host-node-a)"},
                                        {2, "node-b (host-node-b)"}}));
  EXPECT_EQ(threads,
            (std::set<std::pair<int, int>>{{1, 1}, {1, 2}, {2, 1}, {2, 2}}));

  const json& other = trace.at("otherData");
  EXPECT_EQ(other.at("id"), "j-0007");
  EXPECT_EQ(other.at("name"), "small");
  EXPECT_EQ(other.at("state"), "RUNNING");
  EXPECT_EQ(other.at("attempts"), 5);
  EXPECT_EQ(other.at("skipped"), 0);
  EXPECT_EQ(other.at("source"), "attempts");
}

TEST(TimelineChromeTest, RetriedTaskShowsBothAttempts) {
  const json trace = json::parse(TimelineChromeJson(SmallReport()));
  std::map<std::string, std::string> task1;  // name -> cname
  for (const json& e : EventsOfPhase(trace, "X")) {
    if (e.at("args").at("task") == 1) task1[e.at("name")] = e.at("cname");
  }
  EXPECT_EQ(task1, (std::map<std::string, std::string>{
                       {"task 1", "terrible"}, {"task 1 #2", "yellow"}}));
}

TEST(TimelineChromeTest, FallsBackToTaskRowsWithoutAttempts) {
  v1::JobReport r;
  r.set_id("j-1");
  v1::WorkerTiming* w = r.add_workers();
  w->set_name("solo");
  w->set_host("box");
  for (uint32_t i = 0; i < 3; ++i) {
    v1::TaskTiming* t = r.add_tasks();
    t->set_index(i);
    t->set_attempt(1);
    t->set_state(v1::TASK_STATE_SUCCEEDED);
    t->set_worker(i == 2 ? "" : "solo");  // Task 2 never started.
    t->set_slot(i);
    t->set_start_offset_seconds(0.5 * i);
    t->set_seconds(0.25);
  }
  const json trace = json::parse(TimelineChromeJson(r));
  const std::vector<json> complete = EventsOfPhase(trace, "X");
  ASSERT_EQ(complete.size(), 2u);
  EXPECT_NEAR(complete[1].at("ts").get<double>(), 500000, 1e-6);
  EXPECT_EQ(complete[1].at("tid"), 2);
  EXPECT_EQ(complete[1].at("args").at("host"), "box");
  EXPECT_EQ(trace.at("otherData").at("source"), "tasks");
}

TEST(TimelineChromeTest, SkipsImpossibleTimesAndSurvivesBadUtf8) {
  v1::JobReport r = SmallReport();
  const double nan = std::numeric_limits<double>::quiet_NaN();
  AddAttempt(&r, 9, 1, "node-a", 0, v1::TASK_STATE_FAILED, nan, 1);
  AddAttempt(&r, 10, 1, "node-a", 0, v1::TASK_STATE_FAILED, -1, 1);
  AddAttempt(&r, 11, 1, "node-a", 0, v1::TASK_STATE_FAILED, 1, -0.5);
  AddAttempt(&r, 12, 1, "node-a", 0, v1::TASK_STATE_FAILED, 1,
             std::numeric_limits<double>::infinity());
  AddAttempt(&r, 13, 1, "bad\xff\xfe", 0, v1::TASK_STATE_SUCCEEDED, 1, 1);
  r.mutable_timing()->set_speedup(nan);
  std::string text;
  ASSERT_NO_THROW(text = TimelineChromeJson(r));
  const json trace = json::parse(text);
  EXPECT_EQ(EventsOfPhase(trace, "X").size(), 6u);
  EXPECT_EQ(trace.at("otherData").at("skipped"), 4);
  EXPECT_TRUE(trace.at("otherData").at("speedup").is_null());
}

TEST(TimelineChromeTest, InterferenceGoesInArgsAndColoursASlowedSuccess) {
  v1::JobReport r = SmallReport();
  // Task 0 (1 s) throttled 300 ms; task 1's second attempt barely touched.
  r.mutable_attempts(0)->mutable_interference()->set_throttled_ns(300'000'000);
  r.mutable_attempts(0)->mutable_interference()->set_steal_share(0);
  r.mutable_attempts(2)->mutable_interference()->set_run_queue_wait_ns(1'000'000);
  const json trace = json::parse(TimelineChromeJson(r));
  std::map<std::pair<int, int>, json> by_task;
  for (const json& e : EventsOfPhase(trace, "X")) {
    by_task[{e.at("args").at("task").get<int>(), e.at("args").at("attempt").get<int>()}] = e;
  }
  const json& slowed = by_task.at({0, 1});
  EXPECT_EQ(slowed.at("cname"), "bad");
  EXPECT_EQ(slowed.at("args").at("interference"), "throttled 0.300 s, steal 0.0%");
  const json& quiet = by_task.at({1, 2});
  EXPECT_EQ(quiet.at("cname"), "yellow") << "1 ms of 1.5 s is no interference";
  EXPECT_EQ(quiet.at("args").at("interference"), "waited 0.001 s for a CPU");
  EXPECT_FALSE(by_task.at({2, 1}).at("args").contains("interference"));
}

TEST(TimelineChromeTest, TaskRowsCarryTheirSlowCause) {
  v1::JobReport r;
  r.set_id("j-1");
  v1::TaskTiming* t = r.add_tasks();
  t->set_worker("solo");
  t->set_state(v1::TASK_STATE_SUCCEEDED);
  t->set_seconds(1);
  t->set_slow_cause("steal 31%");
  t->mutable_interference()->set_steal_share(0.31);
  const json trace = json::parse(TimelineChromeJson(r));
  const std::vector<json> complete = EventsOfPhase(trace, "X");
  ASSERT_EQ(complete.size(), 1u);
  EXPECT_EQ(complete[0].at("args").at("slow_cause"), "steal 31%");
  EXPECT_EQ(complete[0].at("cname"), "bad");
}

// --- SVG ---------------------------------------------------------------

TEST(TimelineSvgTest, SmallJobIsWellFormedWithOneRectPerAttempt) {
  const v1::JobReport r = SmallReport();
  const std::string svg = TimelineSvg(r);
  EXPECT_TRUE(
      absl::StartsWith(svg, "<svg xmlns=\"http://www.w3.org/2000/svg\""));
  EXPECT_FALSE(absl::StrContains(svg, "<?xml"));
  EXPECT_TRUE(IsWellFormedXml(svg));
  // Attempt rects are the ones whose tooltip starts with "task ".
  EXPECT_EQ(CountOccurrences(svg, "><title>task "),
            static_cast<size_t>(r.attempts_size()));
  EXPECT_EQ(CountOccurrences(svg, " tasks ("), 0u);  // Nothing merged.
  for (const v1::AttemptTiming& a : r.attempts()) {
    EXPECT_TRUE(absl::StrContains(
        svg, absl::StrCat("task ", a.index(), " attempt ", a.attempt())))
        << a.ShortDebugString();
  }
  EXPECT_TRUE(absl::StrContains(svg, "FAILED"));
  EXPECT_TRUE(absl::StrContains(svg, "error: worker lost"));
  EXPECT_TRUE(absl::StrContains(svg, "stroke-dasharray"));  // The backup.
  EXPECT_TRUE(absl::StrContains(svg, "small (j-0007)"));
  EXPECT_TRUE(absl::StrContains(svg, "speedup 1.50x"));
  EXPECT_TRUE(absl::StrContains(svg, "efficiency 75.0%"));
  EXPECT_TRUE(absl::StrContains(svg, "time since submission (s)"));
  EXPECT_TRUE(absl::StrContains(svg, ">node-a/0<"));
  EXPECT_TRUE(absl::StrContains(svg, ">node-b/1<"));
}

TEST(TimelineSvgTest, InterferenceIsABandOnTheBarAndInItsTooltip) {
  v1::JobReport r = SmallReport();
  EXPECT_EQ(CountOccurrences(TimelineSvg(r), "class=\"interference\""), 0u);
  r.mutable_attempts(0)->mutable_interference()->set_throttled_ns(300'000'000);
  const std::string svg = TimelineSvg(r);
  EXPECT_TRUE(IsWellFormedXml(svg));
  EXPECT_EQ(CountOccurrences(svg, "class=\"interference\""), 1u);
  EXPECT_TRUE(absl::StrContains(svg, "throttled 0.300 s"));
  EXPECT_TRUE(absl::StrContains(svg, "interference (top band)"));  // the legend
}

TEST(TimelineSvgTest, WellFormedCheckCanFail) {
  EXPECT_FALSE(IsWellFormedXml("<svg><rect></svg>"));
  EXPECT_FALSE(IsWellFormedXml("<svg><text>a<b</text></svg>"));
}

TEST(TimelineSvgTest, EscapesHostileNames) {
  v1::JobReport r = SmallReport();
  r.set_name("<script>alert(1)</script>");
  const std::string hostile = "a<b&\"c'";
  AddAttempt(&r, 7, 1, hostile, 0, v1::TASK_STATE_FAILED, 0.1, 0.2)
      ->set_error("bad </title> & \x01 control \xc3");
  for (v1::AttemptTiming& a : *r.mutable_attempts()) a.set_host(hostile);
  const std::string svg = TimelineSvg(r);
  EXPECT_TRUE(IsWellFormedXml(svg));
  EXPECT_FALSE(absl::StrContains(svg, hostile));
  EXPECT_FALSE(absl::StrContains(svg, "<script>"));
  EXPECT_TRUE(absl::StrContains(svg, "a&lt;b&amp;&quot;c&apos;"));
}

TEST(TimelineSvgTest, UnicodeNamesPassThrough) {
  v1::JobReport r = SmallReport();
  AddAttempt(&r, 8, 1, "nœud-δ-節点", 0, v1::TASK_STATE_SUCCEEDED, 0.1, 0.2);
  const std::string svg = TimelineSvg(r);
  EXPECT_TRUE(IsWellFormedXml(svg));
  EXPECT_TRUE(absl::StrContains(svg, "nœud-δ-節点/0"));
}

TEST(TimelineSvgTest, HundredThousandAttemptsMergeIntoABoundedChart) {
  v1::JobReport r;
  r.set_id("j-big");
  r.set_state(v1::JOB_STATE_SUCCEEDED);
  constexpr int kSlots = 32;
  constexpr int kPerSlot = 100000 / kSlots;
  constexpr double kSeconds = 0.01;
  uint32_t index = 0;
  for (int slot = 0; slot < kSlots; ++slot) {
    for (int k = 0; k < kPerSlot; ++k) {
      // Every 500th attempt fails: a handful of red marks per row.
      const v1::TaskState state =
          (index % 500 == 0) ? v1::TASK_STATE_FAILED : v1::TASK_STATE_SUCCEEDED;
      AddAttempt(&r, index++, 1, absl::StrCat("w", slot / 8), slot % 8, state,
                 k * kSeconds, kSeconds * 0.99);
    }
  }
  ASSERT_EQ(r.attempts_size(), kSlots * kPerSlot);
  TimelineSvgOptions options;
  options.width = 960;
  const std::string svg = TimelineSvg(r, options);
  EXPECT_LT(svg.size(), 2u << 20) << "bytes: " << svg.size();
  const size_t rects = CountOccurrences(svg, "<rect ");
  EXPECT_LE(rects, static_cast<size_t>(kSlots * options.width));
  EXPECT_GT(CountOccurrences(svg, " tasks ("), 0u);
  // Every attempt is accounted for: single tooltips plus merged counts.
  size_t accounted = CountOccurrences(svg, "><title>task ");
  for (size_t at = svg.find("><title>"); at != std::string::npos;
       at = svg.find("><title>", at + 1)) {
    const size_t start = at + 8;
    if (svg.compare(start, 5, "task ") == 0) continue;
    const size_t space = svg.find(' ', start);
    if (svg.compare(space, 8, " tasks (") != 0) continue;
    accounted += std::stoul(svg.substr(start, space - start));
  }
  EXPECT_EQ(accounted, static_cast<size_t>(r.attempts_size()));
  EXPECT_TRUE(absl::StrContains(svg, "failed"));
  EXPECT_TRUE(IsWellFormedXml(svg));
}

TEST(TimelineSvgTest, AlternatingColoursInOnePixelStillMerge) {
  // 20,000 alternating failed/succeeded slivers on one slot: without the
  // same-pixel rule every one would be a rect.
  v1::JobReport r;
  for (uint32_t i = 0; i < 20000; ++i) {
    AddAttempt(&r, i, 1, "w", 0,
               i % 2 ? v1::TASK_STATE_FAILED : v1::TASK_STATE_SUCCEEDED,
               i * 0.001, 0.001);
  }
  const std::string svg = TimelineSvg(r);
  EXPECT_LE(CountOccurrences(svg, "<title>"), 960u + 2);
  EXPECT_TRUE(IsWellFormedXml(svg));
}

TEST(TimelineSvgTest, CapsRowsWithANote) {
  v1::JobReport r;
  for (uint32_t slot = 0; slot < 300; ++slot) {
    AddAttempt(&r, slot, 1, "wide", slot, v1::TASK_STATE_SUCCEEDED, 0, 1);
  }
  TimelineSvgOptions options;
  options.max_rows = 256;
  const std::string svg = TimelineSvg(r, options);
  EXPECT_TRUE(absl::StrContains(svg, "+44 more slots"));
  EXPECT_EQ(CountOccurrences(svg, "><title>task "), 256u);
  EXPECT_TRUE(IsWellFormedXml(svg));
}

TEST(TimelineSvgTest, EmptyReportSaysNoTaskStarted) {
  v1::JobReport r;
  r.set_id("j-empty");
  r.set_state(v1::JOB_STATE_PENDING);
  const std::string svg = TimelineSvg(r);
  EXPECT_TRUE(absl::StrContains(svg, "no task has started yet"));
  EXPECT_TRUE(absl::StrContains(svg, "job j-empty"));
  EXPECT_EQ(CountOccurrences(svg, "<title>"), 0u);
  EXPECT_TRUE(IsWellFormedXml(svg));
  EXPECT_LT(svg.size(), 2000u);
}

TEST(TimelineSvgTest, AxisUnitFollowsTheSpan) {
  v1::JobReport r;
  AddAttempt(&r, 0, 1, "w", 0, v1::TASK_STATE_SUCCEEDED, 0.001, 0.2);
  EXPECT_TRUE(absl::StrContains(TimelineSvg(r), "time since submission (ms)"));
  r.mutable_attempts(0)->set_seconds(3000);
  EXPECT_TRUE(absl::StrContains(TimelineSvg(r), "time since submission (min)"));
}

}  // namespace
}  // namespace busyfleet::report
