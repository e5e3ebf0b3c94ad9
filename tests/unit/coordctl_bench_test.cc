#include "coordinator/ctl/coordctl_bench.h"

#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "coordinator/ctl/bench_noise.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace busyfleet::coordctl {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// Rows from walls per round: rows[m] gets walls[m][r]; speedups paired with
// mode 0 of the same round, as RunBench pairs them.
std::vector<BenchRow> Rows(const std::vector<std::string>& names, const std::vector<uint32_t>& slots,
                           const std::vector<std::vector<double>>& walls) {
  std::vector<BenchRow> rows(names.size());
  for (size_t m = 0; m < names.size(); ++m) {
    rows[m].mode = names[m];
    rows[m].slots = slots[m];
    for (size_t r = 0; r < walls[m].size(); ++r) {
      BenchTrial t;
      t.round = static_cast<uint32_t>(r + 1);
      t.job_id = names[m] + "-" + std::to_string(r);
      t.wall_seconds = walls[m][r];
      t.speedup = walls[0][r] / walls[m][r];
      rows[m].trials.push_back(t);
    }
  }
  rows[0].baseline = true;
  SummarizeRows(rows);
  return rows;
}

TEST(BenchRowsTest, OneSlotThreadsOnANoisyMachineIsWithinNoise) {
  // The demo: serial landed on the slower vCPU in some rounds.
  const auto rows = Rows({"serial", "threads"}, {1, 1},
                         {{4.397, 3.80, 4.10, 3.71, 4.02}, {3.873, 4.05, 3.95, 3.90, 4.20}});
  EXPECT_EQ(rows[1].speedup_verdict, Verdict::kWithinNoise);
  EXPECT_EQ(rows[1].efficiency_verdict, Verdict::kWithinNoise);
  EXPECT_THAT(SpeedupCell(rows[1]), HasSubstr("≈ no difference (within noise) ["));
  EXPECT_THAT(EfficiencyCell(rows[1]), HasSubstr("≈ 100% (within noise) ["));
  EXPECT_EQ(rows[1].job_id, "threads-4");
  EXPECT_DOUBLE_EQ(rows[1].wall_seconds, 3.95);
}

TEST(BenchRowsTest, AClearSpeedupKeepsItsInterval) {
  const auto rows = Rows({"serial", "threads"}, {1, 2}, {{2.0, 2.1, 1.9, 2.0, 2.2}, {1.04, 1.08, 0.99, 1.05, 1.12}});
  EXPECT_EQ(rows[1].speedup_verdict, Verdict::kHigher);
  EXPECT_NEAR(rows[1].speedup, 1.92, 0.03);
  EXPECT_TRUE(rows[1].speedups.ci.Contains(rows[1].speedup));
  EXPECT_DOUBLE_EQ(rows[1].efficiency, rows[1].speedup / 2);
  EXPECT_DOUBLE_EQ(rows[1].efficiency_ci.high, rows[1].speedups.ci.high / 2);
  EXPECT_THAT(SpeedupCell(rows[1]), HasSubstr("x ["));
  EXPECT_THAT(SpeedupCell(rows[1]), Not(HasSubstr("≈")));
}

TEST(BenchRowsTest, AnEfficiencyOverOneHundredPercentIsNeverBare) {
  // One trial: 113% cannot be told from noise, and says so.
  const auto one = Rows({"serial", "fleet"}, {1, 2}, {{4.4}, {1.95}});
  EXPECT_EQ(one[1].efficiency_verdict, Verdict::kSingleTrial);
  EXPECT_THAT(EfficiencyCell(one[1]), HasSubstr("(1 trial, no interval)"));
  // Several trials whose interval reaches 100%: within noise.
  const auto many = Rows({"serial", "fleet"}, {1, 2}, {{4.0, 4.1, 3.9, 4.2, 4.0}, {1.95, 2.1, 1.9, 2.05, 2.0}});
  EXPECT_GT(many[1].efficiency, 1.0);
  EXPECT_EQ(many[1].efficiency_verdict, Verdict::kWithinNoise);
  EXPECT_THAT(EfficiencyCell(many[1]), HasSubstr("≈ 100%"));
}

TEST(BenchRowsTest, TheBaselineIsMarkedNotMeasuredAgainstItself) {
  const auto rows = Rows({"serial", "threads"}, {1, 2}, {{1, 1.1, 0.9}, {0.5, 0.55, 0.45}});
  EXPECT_EQ(SpeedupCell(rows[0]), "1x (baseline)");
  EXPECT_EQ(EfficiencyCell(rows[0]), "-");
}

TEST(BenchRowsTest, UnstableRowsGetAWarningWithTheirCauses) {
  const auto rows = Rows({"serial", "threads"}, {1, 2}, {{1.0, 1.6, 1.0, 1.5}, {0.5, 0.51, 0.5, 0.52}});
  const std::vector<std::string> none = UnstableRowWarnings(rows, {});
  ASSERT_EQ(none.size(), 1u);
  EXPECT_THAT(none[0], HasSubstr("serial: the 4 trials vary by"));
  EXPECT_THAT(none[0], HasSubstr("seems unstable"));
  const std::vector<std::string> steal = UnstableRowWarnings(rows, {"steal 12.0% on node-1"});
  EXPECT_THAT(steal[0], HasSubstr("Likely: steal 12.0% on node-1"));
}

TEST(BenchRowsTest, WhatTheWorkersMeasuredIsTheFirstLikelyCause) {
  auto rows = Rows({"serial", "threads"}, {1, 2}, {{1.0, 1.6, 1.0, 1.5}, {0.5, 0.51, 0.5, 0.52}});
  rows[0].trials[1].wait_share = 0.34;
  rows[0].trials[3].throttled_share = 0.2;
  rows[0].trials[2].steal_share = 0.01;  // under 2%: not named
  const std::vector<std::string> causes = TrialCauses(rows[0]);
  ASSERT_EQ(causes.size(), 2u);
  EXPECT_THAT(causes[0], HasSubstr("waited for a CPU up to 34%"));
  EXPECT_THAT(causes[1], HasSubstr("throttled up to 20%"));
  const std::vector<std::string> warnings = UnstableRowWarnings(rows, {"steal 3.0% on vm"});
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_THAT(warnings[0], HasSubstr("Likely: its tasks waited for a CPU up to 34%"));
  EXPECT_THAT(warnings[0], HasSubstr("; steal 3.0% on vm"));
}

TEST(BenchJsonTest, EveryTrialAndTheIntervalsAreThere) {
  BenchResult r;
  r.iterations = 1000;
  r.tasks = 4;
  r.repeat = 3;
  r.warmup = 1;
  r.modes = Rows({"serial", "threads"}, {1, 2}, {{1, 1.1, 0.9}, {0.5, 0.55, 0.45}});
  r.warmup_job_ids = {"w1", "w2"};
  const nlohmann::json j = BenchToJson(r);
  EXPECT_EQ(j["schema"], 1);
  EXPECT_EQ(j["kind"], "countdown");
  EXPECT_EQ(j["repeat"], 3);
  EXPECT_DOUBLE_EQ(j["confidence"].get<double>(), 0.95);
  ASSERT_EQ(j["modes"].size(), 2u);
  const nlohmann::json& threads = j["modes"][1];
  ASSERT_EQ(threads["trials"].size(), 3u);
  EXPECT_EQ(threads["trials"][2]["round"], 3);
  EXPECT_DOUBLE_EQ(threads["trials"][1]["speedup"].get<double>(), 2.0);
  for (const char* key : {"median", "min", "max", "mean", "stdev", "cv", "ci_low", "ci_high"}) {
    EXPECT_TRUE(threads["wall"].contains(key)) << key;
  }
  for (const char* key : {"low", "high", "min", "max"}) EXPECT_TRUE(threads["speedup_interval"].contains(key)) << key;
  EXPECT_EQ(threads["speedup_verdict"], "higher");  // every round exactly 2x
  EXPECT_EQ(j["warmup_job_ids"].size(), 2u);
  EXPECT_EQ(j["modes"][0]["baseline"], true);
}

TEST(BenchRenderTest, TheTableExplainsItsIntervals) {
  BenchResult r;
  r.iterations = 500'000'000;
  r.tasks = 4;
  r.repeat = 5;
  r.modes = Rows({"serial", "threads"}, {1, 1}, {{4.397, 3.80, 4.10, 3.71, 4.02}, {3.873, 4.05, 3.95, 3.90, 4.20}});
  r.noise = {"node-1 (worker-1): load 0.10 on 2 CPUs"};
  r.advice = {"stop the hog"};
  const std::string text = RenderBench(r);
  EXPECT_THAT(text, HasSubstr("Noise check before the run:\n  node-1 (worker-1): load 0.10 on 2 CPUs\n  advice: stop the hog"));
  EXPECT_THAT(text, HasSubstr("5 trials per mode (interleaved)"));
  EXPECT_THAT(text, HasSubstr("≈ no difference (within noise)"));
  EXPECT_THAT(text, HasSubstr("distribution-free interval"));
  EXPECT_THAT(text, HasSubstr("SPEEDUP [95% CI]"));
}

TEST(BenchRenderTest, ThePythonKindRunsTheChaptersTenMillionAndSaysWhyThreadsDoNotScale) {
  EXPECT_EQ(DefaultBenchIterations(v1::TASK_KIND_PYTHON), 10'000'000u);
  EXPECT_EQ(DefaultBenchIterations(v1::TASK_KIND_COUNTDOWN), 500'000'000u);
  BenchResult r;
  r.kind = v1::TASK_KIND_PYTHON;
  r.iterations = 10'000'000;
  r.tasks = 4;
  r.repeat = 5;
  r.modes = Rows({"serial", "threads", "processes"}, {1, 2, 2},
                 {{1.40, 1.45, 1.38, 1.42, 1.50}, {1.50, 1.70, 1.45, 1.60, 1.55}, {0.74, 0.76, 0.73, 0.78, 0.80}});
  const std::string text = RenderBench(r);
  EXPECT_THAT(text, HasSubstr("10.0M python iterations"));
  EXPECT_THAT(text, HasSubstr("share one interpreter lock (the GIL)"));
  EXPECT_THAT(text, Not(HasSubstr("threads scale too")));
  EXPECT_EQ(r.modes[1].speedup_verdict, Verdict::kLower);   // the GIL, and switching costs
  EXPECT_EQ(r.modes[2].speedup_verdict, Verdict::kHigher);  // processes run at once
  EXPECT_EQ(BenchToJson(r)["kind"], "python");
}

v1::WorkerInfo Worker(const std::string& name, const std::string& host) {
  v1::WorkerInfo w;
  w.set_name(name);
  w.mutable_host()->set_hostname(host);
  w.mutable_host()->set_machine_id(host + "-id");
  w.set_slots(2);
  return w;
}

TEST(NoiseCheckTest, AQuietCalibratedMachineNeedsNoAdvice) {
  v1::WorkerInfo w = Worker("worker-1", "node-1");
  v1::HostNoise* n = w.mutable_noise();
  n->set_load1(0.1);
  n->set_online_cpus(2);
  v1::KernelCalibration* c = w.add_calibrations();
  c->set_kind(v1::TASK_KIND_COUNTDOWN);
  c->set_iterations_per_second(3.4e9);
  for (double rate : {3.4e9, 3.3e9}) c->add_cpus()->set_iterations_per_second(rate);
  const NoiseCheck check = CheckNoise({w}, v1::TASK_KIND_COUNTDOWN);
  ASSERT_EQ(check.lines.size(), 1u);
  EXPECT_THAT(check.lines[0], HasSubstr("node-1 (worker-1): load 0.10 on 2 CPUs, steal 0.0%"));
  EXPECT_THAT(check.lines[0], HasSubstr("governor n/a; calibrated 3.40G it/s per core"));
  EXPECT_TRUE(check.advice.empty());
  EXPECT_TRUE(check.causes.empty());
}

TEST(NoiseCheckTest, StealOtherLoadGovernorAndUnevenCpusEachGetAdvice) {
  v1::WorkerInfo w = Worker("worker-1", "node-1");
  v1::HostNoise* n = w.mutable_noise();
  n->set_load1(3.5);
  n->set_online_cpus(2);
  n->set_steal_share(0.31);
  n->set_other_busy_cpus(0.9);
  n->set_governor("powersave");
  v1::BusyProcess* p = n->add_busy();
  p->set_name("hog");
  p->set_pid(42);
  p->set_cpus(0.85);
  v1::KernelCalibration* c = w.add_calibrations();
  c->set_kind(v1::TASK_KIND_COUNTDOWN);
  c->set_iterations_per_second(3.0e9);
  for (double rate : {3.6e9, 2.2e9}) c->add_cpus()->set_iterations_per_second(rate);
  const NoiseCheck check = CheckNoise({w, Worker("worker-2", "node-1")}, v1::TASK_KIND_COUNTDOWN);
  ASSERT_EQ(check.lines.size(), 1u);  // one machine
  EXPECT_THAT(check.lines[0], HasSubstr("(worker-1, worker-2)"));
  const std::string advice = ::testing::PrintToString(check.advice);
  EXPECT_THAT(advice, HasSubstr("hog (pid 42) 0.85"));
  EXPECT_THAT(advice, HasSubstr("node-1's 2 CPUs: 0.90 busy with other processes, and the bench adds up to 4"));
  EXPECT_THAT(advice, Not(HasSubstr("oversubscribed")));  // load 3.5 is under 2 x 2 CPUs
  EXPECT_THAT(advice, HasSubstr("31.0%"));
  EXPECT_THAT(advice, HasSubstr("'powersave'"));
  EXPECT_THAT(advice, HasSubstr("1.64x"));
  EXPECT_EQ(check.causes.size(), 5u);
  // A lagging load average alone (the workers' own tasks of a minute ago) is no advice.
  n->set_other_busy_cpus(0.1);
  n->clear_busy();
  n->set_steal_share(0);
  n->set_governor("");
  w.clear_calibrations();
  EXPECT_TRUE(CheckNoise({w}, v1::TASK_KIND_COUNTDOWN).advice.empty());
}

TEST(NoiseCheckTest, AWorkerWithoutFiguresSaysSo) {
  const NoiseCheck check = CheckNoise({Worker("old", "node-9")}, v1::TASK_KIND_COUNTDOWN);
  ASSERT_EQ(check.lines.size(), 1u);
  EXPECT_THAT(check.lines[0], HasSubstr("no load figures yet; not calibrated"));
}

}  // namespace
}  // namespace busyfleet::coordctl
