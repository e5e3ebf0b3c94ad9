#include "coordinator/server/prometheus_text.h"

#include <algorithm>
#include <limits>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace busyfleet::coordinator {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(HistogramTest, CountsAreCumulativeWithTheOverflowOnlyInCount) {
  Histogram h({0.1, 1, 10});
  for (double v : {0.05, 0.1, 0.5, 2.0, 20.0, 30.0}) h.Add(v);
  h.Add(std::numeric_limits<double>::quiet_NaN());  // ignored
  EXPECT_THAT(h.cumulative(), ElementsAre(2u, 3u, 4u));  // 0.1 falls in le="0.1"
  EXPECT_EQ(h.count(), 6u);
  EXPECT_DOUBLE_EQ(h.sum(), 0.05 + 0.1 + 0.5 + 2.0 + 20.0 + 30.0);
}

// The value of the sample line `name` (with labels), or -1 when missing.
double Sample(const std::string& text, const std::string& name) {
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (absl::StartsWith(line, name + " ")) return std::stod(std::string(line.substr(name.size() + 1)));
  }
  return -1;
}

TEST(PrometheusTextTest, EverySeriesIsPresentWithItsTypeAndValue) {
  MetricsSnapshot m;
  m.workers[v1::WORKER_STATE_READY] = 3;
  m.slots = 6;
  m.running = 2;
  m.queue_depth = 40;
  m.jobs[v1::JOB_STATE_RUNNING] = 1;
  m.jobs[v1::JOB_STATE_SUCCEEDED] = 4;
  m.jobs_submitted = 5;
  m.counters.dispatched = 12;
  m.counters.succeeded = 10;
  m.counters.attempts_failed = 1;
  m.counters.retried = 1;
  m.counters.task_seconds.Add(0.003);
  m.counters.task_seconds.Add(7200);  // beyond the last bound: only in +Inf
  const std::string text = PrometheusText(m);

  EXPECT_EQ(Sample(text, "busyfleet_workers{state=\"ready\"}"), 3);
  EXPECT_EQ(Sample(text, "busyfleet_workers{state=\"draining\"}"), 0) << "absent states are zero, not missing";
  EXPECT_EQ(Sample(text, "busyfleet_workers{state=\"gone\"}"), 0);
  EXPECT_EQ(Sample(text, "busyfleet_slots"), 6);
  EXPECT_EQ(Sample(text, "busyfleet_tasks_running"), 2);
  EXPECT_EQ(Sample(text, "busyfleet_queue_depth"), 40);
  EXPECT_EQ(Sample(text, "busyfleet_jobs{state=\"running\"}"), 1);
  EXPECT_EQ(Sample(text, "busyfleet_jobs{state=\"failed\"}"), 0);
  EXPECT_EQ(Sample(text, "busyfleet_jobs_submitted_total"), 5);
  EXPECT_EQ(Sample(text, "busyfleet_tasks_total{state=\"dispatched\"}"), 12);
  EXPECT_EQ(Sample(text, "busyfleet_tasks_total{state=\"succeeded\"}"), 10);
  EXPECT_EQ(Sample(text, "busyfleet_tasks_total{state=\"failed\"}"), 1);
  EXPECT_EQ(Sample(text, "busyfleet_tasks_total{state=\"retried\"}"), 1);
  EXPECT_EQ(Sample(text, "busyfleet_task_duration_seconds_bucket{le=\"0.001\"}"), 0);
  EXPECT_EQ(Sample(text, "busyfleet_task_duration_seconds_bucket{le=\"0.005\"}"), 1);
  EXPECT_EQ(Sample(text, "busyfleet_task_duration_seconds_bucket{le=\"3600\"}"), 1);
  EXPECT_EQ(Sample(text, "busyfleet_task_duration_seconds_bucket{le=\"+Inf\"}"), 2);
  EXPECT_EQ(Sample(text, "busyfleet_task_duration_seconds_count"), 2);
  EXPECT_DOUBLE_EQ(Sample(text, "busyfleet_task_duration_seconds_sum"), 7200.003);
  EXPECT_THAT(text, HasSubstr("# TYPE busyfleet_task_duration_seconds histogram\n"));
  EXPECT_THAT(text, HasSubstr("# TYPE busyfleet_tasks_total counter\n"));
  EXPECT_THAT(text, HasSubstr("# TYPE busyfleet_workers gauge\n"));
  EXPECT_THAT(text, HasSubstr("# TYPE busyfleet_store_commits_total counter\n"));
  EXPECT_TRUE(absl::EndsWith(text, "\n"));
}

// The exporter rebuilds prometheus-cpp's histogram from the snapshot's: an
// observation on a bound counts in that bound's bucket (le is <=), the same
// bounds in the same order, the overflow only in +Inf.
TEST(PrometheusTextTest, HistogramBucketsMatchTheSnapshotsBounds) {
  MetricsSnapshot m;
  for (double v : {0.005, 0.005, 0.3, 60.0}) m.counters.task_seconds.Add(v);
  const std::string text = PrometheusText(m);
  const std::vector<double>& bounds = m.counters.task_seconds.bounds();
  const std::vector<uint64_t> cumulative = m.counters.task_seconds.cumulative();
  for (const char* le : {"0.001", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10",
                         "30", "60", "300", "3600"}) {
    const size_t i = static_cast<size_t>(std::find(bounds.begin(), bounds.end(), std::stod(le)) - bounds.begin());
    ASSERT_LT(i, bounds.size()) << le;
    EXPECT_EQ(Sample(text, absl::StrCat("busyfleet_task_duration_seconds_bucket{le=\"", le, "\"}")),
              static_cast<double>(cumulative[i]))
        << "le=" << le;
  }
  EXPECT_EQ(Sample(text, "busyfleet_task_duration_seconds_bucket{le=\"0.005\"}"), 2);
  EXPECT_EQ(Sample(text, "busyfleet_task_duration_seconds_bucket{le=\"60\"}"), 4);
  EXPECT_EQ(Sample(text, "busyfleet_task_duration_seconds_bucket{le=\"+Inf\"}"), 4);
}

// Counters are the snapshot's totals, large ones exactly (no float
// formatting surprises below 2^53).
TEST(PrometheusTextTest, CountersAreTheSnapshotsTotals) {
  MetricsSnapshot m;
  m.counters.dispatched = 123456789012;
  m.store.commits = 7;
  m.store.writable = false;
  const std::string text = PrometheusText(m);
  EXPECT_EQ(Sample(text, "busyfleet_tasks_total{state=\"dispatched\"}"), 123456789012.0);
  EXPECT_EQ(Sample(text, "busyfleet_store_commits_total"), 7);
  EXPECT_EQ(Sample(text, "busyfleet_store_writable"), 0);
  EXPECT_EQ(Sample(text, "busyfleet_store_write_failures_total"), 0);
}

}  // namespace
}  // namespace busyfleet::coordinator
