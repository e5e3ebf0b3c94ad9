#include "coordinator/report/report_format.h"

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "busyfleet/v1/coordinator.pb.h"
#include "busyfleet/v1/types.pb.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace busyfleet::report {
namespace {

using nlohmann::json;

// 2026-11-26T02:33:56Z, computed independently of the code under test.
int64_t SubmitSeconds() {
  return absl::ToUnixSeconds(absl::FromCivil(
      absl::CivilSecond(2026, 11, 26, 2, 33, 56), absl::UTCTimeZone()));
}

google::protobuf::Timestamp Ts(int64_t seconds, int32_t nanos) {
  google::protobuf::Timestamp ts;
  ts.set_seconds(seconds);
  ts.set_nanos(nanos);
  return ts;
}

void AddTask(v1::JobReport* report, uint32_t index, const std::string& worker,
             uint32_t slot, double start, double seconds) {
  v1::TaskTiming* t = report->add_tasks();
  t->set_index(index);
  t->set_worker(worker);
  t->set_slot(slot);
  t->set_attempt(1);
  t->set_state(v1::TASK_STATE_SUCCEEDED);
  t->set_iterations(10000000);
  t->set_start_offset_seconds(start);
  t->set_seconds(seconds);
  t->set_cpu_seconds(seconds - 0.01);
}

// The chapter's job: 4 countdown tasks of 10,000,000 on two 1-slot workers.
v1::JobReport FourTaskReport() {
  v1::JobReport r;
  r.set_schema(1);
  r.set_id("j-0001");
  r.set_name("chapter");
  r.set_state(v1::JOB_STATE_SUCCEEDED);
  r.set_kind(v1::TASK_KIND_COUNTDOWN);
  r.set_tasks_total(4);
  r.set_tasks_succeeded(4);
  r.set_retries(1);
  r.set_iterations_total(40000000);

  v1::JobSpec* spec = r.mutable_spec();
  spec->set_kind(v1::TASK_KIND_COUNTDOWN);
  spec->set_tasks(4);
  spec->set_iterations(10000000);
  spec->set_max_slots(2);
  spec->set_max_attempts(3);
  spec->set_exec(v1::EXEC_MODE_THREAD);
  spec->mutable_duration()->set_seconds(2);
  spec->mutable_duration()->set_nanos(500000000);

  v1::JobTiming* t = r.mutable_timing();
  *t->mutable_submitted_at() = Ts(SubmitSeconds(), 123456000);
  *t->mutable_started_at() = Ts(SubmitSeconds() + 1, 0);
  *t->mutable_finished_at() = Ts(SubmitSeconds() + 3, 500000000);
  t->set_wall_seconds(2.345);
  t->set_makespan_seconds(2.301);
  t->set_serial_seconds(4.532);
  t->set_overhead_seconds(0.044);
  t->set_speedup(1.9696);
  t->set_efficiency(0.9848);
  t->set_slots(2);
  t->mutable_task_seconds()->set_min(1.12);
  t->mutable_task_seconds()->set_p50(1.135);
  t->mutable_task_seconds()->set_p90(1.6);
  t->mutable_task_seconds()->set_p99(1.78);
  t->mutable_task_seconds()->set_max(1.8);
  t->set_mean_queued_seconds(0.001);
  t->set_mean_dispatch_seconds(0.002);
  t->set_mean_result_seconds(0.003);
  t->set_cpu_seconds(4.49);

  v1::WorkerTiming* a = r.add_workers();
  a->set_name("node-a");
  a->set_host("host-a");
  a->set_slots(1);
  a->set_slots_used(1);
  a->set_tasks(2);
  a->set_iterations(20000000);
  a->set_busy_seconds(2.25);
  a->set_utilization(0.978);
  a->set_iterations_per_second(8890000);
  v1::WorkerTiming* b = r.add_workers();
  b->set_name("node-b");
  b->set_host("host-b");
  b->set_slots(1);
  b->set_slots_used(1);
  b->set_tasks(2);
  b->set_iterations(20000000);
  b->set_busy_seconds(2.94);
  b->set_utilization(0.5);
  b->set_iterations_per_second(3410000000.0);

  AddTask(&r, 0, "node-a", 0, 0.0, 1.12);
  AddTask(&r, 1, "node-b", 0, 0.001, 1.13);
  AddTask(&r, 2, "node-a", 0, 1.121, 1.14);
  AddTask(&r, 3, "node-b", 0, 1.132, 1.8);
  r.mutable_tasks(3)->set_attempt(2);
  r.mutable_tasks(1)->set_queued_seconds(0.25);
  r.add_stragglers(3);
  return r;
}

// The key lists of docs/design.md's "JSON contract", spelled out again
// here so that a rename in the code fails this test.
TEST(ReportFormatTest, ReportJsonHasEveryContractKey) {
  const json j = ReportToJson(FourTaskReport());
  for (const char* key : {"schema", "id", "name", "state", "kind", "error",
                          "timing", "workers", "tasks", "stragglers"}) {
    EXPECT_TRUE(j.contains(key)) << key;
  }
  const json& timing = j.at("timing");
  for (const char* key :
       {"submitted_at", "started_at", "finished_at", "wall_seconds",
        "makespan_seconds", "serial_seconds", "overhead_seconds", "speedup",
        "efficiency", "slots", "task_seconds"}) {
    EXPECT_TRUE(timing.contains(key)) << key;
  }
  for (const char* key : {"min", "p50", "p90", "p99", "max"}) {
    EXPECT_TRUE(timing.at("task_seconds").contains(key)) << key;
    EXPECT_TRUE(timing.at("task_seconds").at(key).is_number()) << key;
  }
  for (const char* key :
       {"name", "host", "slots", "tasks", "iterations", "busy_seconds",
        "utilization", "iterations_per_second"}) {
    EXPECT_TRUE(j.at("workers").at(0).contains(key)) << key;
  }
  for (const char* key :
       {"index", "worker", "slot", "attempt", "state", "iterations",
        "start_offset_seconds", "seconds", "cpu_seconds"}) {
    EXPECT_TRUE(j.at("tasks").at(0).contains(key)) << key;
  }
}

TEST(ReportFormatTest, ReportJsonHasTopLevelContractKeys) {
  const json j = ReportToJson(FourTaskReport());
  ASSERT_TRUE(j.is_object());
  ASSERT_TRUE(j.at("schema").is_number_unsigned());
  EXPECT_EQ(j.at("schema").get<int>(), 1);
  EXPECT_EQ(j.at("id"), "j-0001");
  EXPECT_EQ(j.at("name"), "chapter");
  EXPECT_EQ(j.at("state"), "SUCCEEDED");
  EXPECT_EQ(j.at("kind"), "countdown");
  ASSERT_TRUE(j.at("error").is_string());
  EXPECT_EQ(j.at("error"), "");
  ASSERT_TRUE(j.at("timing").is_object());
  ASSERT_TRUE(j.at("workers").is_array());
  ASSERT_TRUE(j.at("tasks").is_array());
  ASSERT_TRUE(j.at("stragglers").is_array());
  EXPECT_EQ(j.at("workers").size(), 2u);
  EXPECT_EQ(j.at("tasks").size(), 4u);
  ASSERT_EQ(j.at("stragglers").size(), 1u);
  ASSERT_TRUE(j.at("stragglers")[0].is_number_unsigned());
  EXPECT_EQ(j.at("stragglers")[0].get<int>(), 3);
}

TEST(ReportFormatTest, ReportJsonTasksSayWhereTheyRanWhenKnown) {
  v1::JobReport report = FourTaskReport();
  v1::TaskTiming* t = report.mutable_tasks(3);
  t->set_start_cpu(2);
  t->set_end_cpu(3);
  t->set_migrated(true);
  t->set_bound_cpus("2-3");
  const json tasks = ReportToJson(report).at("tasks");
  EXPECT_EQ(tasks.at(3).at("start_cpu").get<int>(), 2);
  EXPECT_EQ(tasks.at(3).at("end_cpu").get<int>(), 3);
  EXPECT_EQ(tasks.at(3).at("migrated"), true);
  EXPECT_EQ(tasks.at(3).at("bound_cpus"), "2-3");
  for (const char* key : {"start_cpu", "end_cpu", "migrated", "bound_cpus"}) {
    EXPECT_FALSE(tasks.at(0).contains(key)) << key << ": unknown (a stored job, an older worker) is absent";
  }
}

TEST(ReportFormatTest, ReportJsonTimingMatchesContract) {
  const json t = ReportToJson(FourTaskReport()).at("timing");
  EXPECT_EQ(t.at("submitted_at"), "2026-11-26T02:33:56.123456Z");
  EXPECT_EQ(t.at("started_at"), "2026-11-26T02:33:57.000000Z");
  EXPECT_EQ(t.at("finished_at"), "2026-11-26T02:33:59.500000Z");
  for (const char* key : {"wall_seconds", "makespan_seconds", "serial_seconds",
                          "overhead_seconds", "speedup", "efficiency"}) {
    ASSERT_TRUE(t.contains(key)) << key;
    EXPECT_TRUE(t.at(key).is_number_float()) << key;
  }
  EXPECT_DOUBLE_EQ(t.at("wall_seconds").get<double>(), 2.345);
  EXPECT_DOUBLE_EQ(t.at("makespan_seconds").get<double>(), 2.301);
  EXPECT_DOUBLE_EQ(t.at("serial_seconds").get<double>(), 4.532);
  EXPECT_DOUBLE_EQ(t.at("overhead_seconds").get<double>(), 0.044);
  EXPECT_DOUBLE_EQ(t.at("speedup").get<double>(), 1.9696);
  EXPECT_DOUBLE_EQ(t.at("efficiency").get<double>(), 0.9848);
  ASSERT_TRUE(t.at("slots").is_number_integer());
  EXPECT_EQ(t.at("slots").get<int>(), 2);
  const json& s = t.at("task_seconds");
  ASSERT_TRUE(s.is_object());
  EXPECT_EQ(s.size(), 5u);
  EXPECT_DOUBLE_EQ(s.at("min").get<double>(), 1.12);
  EXPECT_DOUBLE_EQ(s.at("p50").get<double>(), 1.135);
  EXPECT_DOUBLE_EQ(s.at("p90").get<double>(), 1.6);
  EXPECT_DOUBLE_EQ(s.at("p99").get<double>(), 1.78);
  EXPECT_DOUBLE_EQ(s.at("max").get<double>(), 1.8);
}

TEST(ReportFormatTest, ReportJsonWorkersMatchContract) {
  const json w = ReportToJson(FourTaskReport()).at("workers").at(1);
  EXPECT_EQ(w.at("name"), "node-b");
  EXPECT_EQ(w.at("host"), "host-b");
  ASSERT_TRUE(w.at("slots").is_number_unsigned());
  EXPECT_EQ(w.at("slots").get<int>(), 1);
  EXPECT_EQ(w.at("tasks").get<int>(), 2);
  ASSERT_TRUE(w.at("iterations").is_number_unsigned());
  EXPECT_EQ(w.at("iterations").get<uint64_t>(), 20000000u);
  EXPECT_DOUBLE_EQ(w.at("busy_seconds").get<double>(), 2.94);
  EXPECT_DOUBLE_EQ(w.at("utilization").get<double>(), 0.5);
  EXPECT_DOUBLE_EQ(w.at("iterations_per_second").get<double>(), 3.41e9);
  EXPECT_EQ(w.at("slots_used").get<int>(), 1);
}

TEST(ReportFormatTest, ReportJsonTasksMatchContract) {
  const json tasks = ReportToJson(FourTaskReport()).at("tasks");
  const json& t = tasks.at(3);
  ASSERT_TRUE(t.at("index").is_number_unsigned());
  EXPECT_EQ(t.at("index").get<int>(), 3);
  EXPECT_EQ(t.at("worker"), "node-b");
  EXPECT_EQ(t.at("slot").get<int>(), 0);
  EXPECT_EQ(t.at("attempt").get<int>(), 2);
  EXPECT_EQ(tasks.at(0).at("attempt").get<int>(), 1);
  EXPECT_EQ(t.at("state"), "SUCCEEDED");
  EXPECT_EQ(t.at("iterations").get<uint64_t>(), 10000000u);
  EXPECT_DOUBLE_EQ(t.at("start_offset_seconds").get<double>(), 1.132);
  EXPECT_DOUBLE_EQ(t.at("seconds").get<double>(), 1.8);
  EXPECT_DOUBLE_EQ(t.at("cpu_seconds").get<double>(), 1.79);
  EXPECT_FALSE(t.contains("error"));
  EXPECT_DOUBLE_EQ(tasks.at(1).at("phases").at("queued_seconds").get<double>(),
                   0.25);
  EXPECT_DOUBLE_EQ(
      tasks.at(1).at("phases").at("dispatch_seconds").get<double>(), 0.0);
}

TEST(ReportFormatTest, ReportJsonCarriesInterferenceAndSlowCause) {
  v1::JobReport report = FourTaskReport();
  v1::TaskTiming* t = report.mutable_tasks(3);
  t->mutable_interference()->set_throttled_ns(120'000'000);
  t->mutable_interference()->set_throttled_periods(5);
  t->mutable_interference()->set_periods(6);
  t->mutable_interference()->set_steal_share(0.25);
  t->set_slow_cause("throttled 120 ms (5 of 6 periods)");
  v1::WorkerTiming* w = report.mutable_workers(1);
  w->set_tasks_measured(2);
  w->set_throttled_seconds(0.12);
  w->set_steal_share(0.1);
  const json j = ReportToJson(report);
  const json& m = j.at("tasks").at(3).at("interference");
  EXPECT_DOUBLE_EQ(m.at("throttled_seconds").get<double>(), 0.12);
  EXPECT_EQ(m.at("throttled_periods").get<int>(), 5);
  EXPECT_EQ(m.at("periods").get<int>(), 6);
  EXPECT_DOUBLE_EQ(m.at("steal_share").get<double>(), 0.25);
  EXPECT_FALSE(m.contains("run_queue_wait_seconds")) << "not measured: absent";
  EXPECT_EQ(j.at("tasks").at(3).at("slow_cause"), "throttled 120 ms (5 of 6 periods)");
  EXPECT_FALSE(j.at("tasks").at(0).contains("interference"));
  EXPECT_FALSE(j.at("tasks").at(0).contains("slow_cause"));
  const json& wj = j.at("workers").at(1);
  for (const char* key : {"steal_share", "throttled_seconds", "throttled_share", "run_queue_wait_seconds",
                          "involuntary_switches", "tasks_measured"}) {
    EXPECT_TRUE(wj.contains(key)) << key;
  }
  EXPECT_DOUBLE_EQ(wj.at("throttled_seconds").get<double>(), 0.12);
  EXPECT_EQ(wj.at("tasks_measured").get<int>(), 2);
}

TEST(ReportFormatTest, TextReportShowsCausesAndWorkerInterference) {
  v1::JobReport report = FourTaskReport();
  report.mutable_tasks(3)->set_slow_cause("steal 31%");
  report.mutable_workers(1)->set_tasks_measured(2);
  report.mutable_workers(1)->set_steal_share(0.31);
  report.mutable_workers(1)->set_throttled_seconds(0.5);
  const std::string text = RenderReport(report, /*show_tasks=*/false);
  EXPECT_NE(text.find("  task 3: steal 31%\n"), std::string::npos) << text;
  EXPECT_NE(text.find("STEAL"), std::string::npos) << text;
  EXPECT_NE(text.find("THROTTLED(s)"), std::string::npos) << text;
  EXPECT_NE(text.find("0.500"), std::string::npos) << text;
  EXPECT_EQ(RenderReport(FourTaskReport(), false).find("STEAL"), std::string::npos)
      << "no worker measured: no interference columns";
}

TEST(ReportFormatTest, ReportJsonTaskErrorOnlyWhenSet) {
  v1::JobReport r = FourTaskReport();
  r.mutable_tasks(2)->set_state(v1::TASK_STATE_FAILED);
  r.mutable_tasks(2)->set_error("worker node-a gone");
  const json j = ReportToJson(r);
  EXPECT_EQ(j.at("tasks")[2].at("state"), "FAILED");
  EXPECT_EQ(j.at("tasks")[2].at("error"), "worker node-a gone");
  EXPECT_FALSE(j.at("tasks")[1].contains("error"));
}

TEST(ReportFormatTest, PendingReasonInJsonTableAndProgress) {
  v1::JobReport r = FourTaskReport();
  r.set_pending_reason("no attached worker matches --workers nosuch");
  EXPECT_EQ(ReportToJson(r).at("pending_reason"), "no attached worker matches --workers nosuch");
  EXPECT_TRUE(absl::StrContains(RenderReport(r, false),
                                 "Pending:      no attached worker matches --workers nosuch\n"));
  EXPECT_FALSE(absl::StrContains(RenderReport(FourTaskReport(), false), "Pending:"));
  v1::JobProgress p;
  p.set_pending_reason("no worker attached");
  EXPECT_EQ(ProgressToJson(p).at("pending_reason"), "no worker attached");
}

TEST(ReportFormatTest, ReportJsonExtraFields) {
  const json j = ReportToJson(FourTaskReport());
  EXPECT_DOUBLE_EQ(j.at("timing").at("cpu_seconds").get<double>(), 4.49);
  EXPECT_DOUBLE_EQ(
      j.at("timing").at("phases").at("queued_seconds").get<double>(), 0.001);
  EXPECT_DOUBLE_EQ(
      j.at("timing").at("phases").at("dispatch_seconds").get<double>(), 0.002);
  EXPECT_DOUBLE_EQ(
      j.at("timing").at("phases").at("result_seconds").get<double>(), 0.003);
  EXPECT_EQ(j.at("counts"), json({{"total", 4},
                                  {"succeeded", 4},
                                  {"failed", 0},
                                  {"cancelled", 0},
                                  {"retries", 1},
                                  {"duplicates", 0},
                                  {"backups", 0},
                                  {"backups_won", 0},
                                  {"backups_cancelled", 0}}));
  EXPECT_EQ(j.at("pending_reason"), "");
  ASSERT_TRUE(j.at("iterations_total").is_number_unsigned());
  EXPECT_EQ(j.at("iterations_total").get<uint64_t>(), 40000000u);
  const json& spec = j.at("spec");
  EXPECT_EQ(spec.at("tasks").get<int>(), 4);
  EXPECT_EQ(spec.at("iterations").get<uint64_t>(), 10000000u);
  EXPECT_DOUBLE_EQ(spec.at("duration_seconds").get<double>(), 2.5);
  EXPECT_EQ(spec.at("max_slots").get<int>(), 2);
  EXPECT_EQ(spec.at("max_attempts").get<int>(), 3);
  EXPECT_EQ(spec.at("exec"), "thread");
}

TEST(ReportFormatTest, ReportJsonKeepsUint64Integral) {
  v1::JobReport r = FourTaskReport();
  const uint64_t huge = std::numeric_limits<uint64_t>::max() - 1;
  r.set_iterations_total(huge);
  r.mutable_workers(0)->set_iterations(huge);
  r.mutable_tasks(0)->set_iterations(huge);
  // Through text too, as a script would read it.
  const json j = json::parse(ReportToJson(r).dump());
  EXPECT_TRUE(j.at("iterations_total").is_number_unsigned());
  EXPECT_EQ(j.at("iterations_total").get<uint64_t>(), huge);
  EXPECT_EQ(j.at("workers")[0].at("iterations").get<uint64_t>(), huge);
  EXPECT_EQ(j.at("tasks")[0].at("iterations").get<uint64_t>(), huge);
}

TEST(ReportFormatTest, ReportJsonNonFiniteNumbersAreNull) {
  v1::JobReport r = FourTaskReport();
  r.mutable_timing()->set_speedup(std::numeric_limits<double>::infinity());
  const json j = ReportToJson(r);
  EXPECT_TRUE(j.at("timing").at("speedup").is_null());
  EXPECT_NO_THROW({
    const json parsed = json::parse(j.dump());
    EXPECT_EQ(parsed.dump(), j.dump());
  });
}

TEST(ReportFormatTest, ReportJsonOfEmptyReportKeepsShape) {
  const json j = ReportToJson(v1::JobReport());
  EXPECT_EQ(j.at("schema").get<int>(), 0);
  EXPECT_EQ(j.at("state"), "UNSPECIFIED");
  EXPECT_EQ(j.at("kind"), "unspecified");
  EXPECT_EQ(j.at("timing").at("submitted_at"), "");
  EXPECT_EQ(j.at("timing").at("started_at"), "");
  EXPECT_EQ(j.at("timing").at("finished_at"), "");
  EXPECT_TRUE(j.at("workers").is_array());
  EXPECT_TRUE(j.at("workers").empty());
  EXPECT_TRUE(j.at("tasks").is_array());
  EXPECT_TRUE(j.at("stragglers").is_array());
  EXPECT_TRUE(j.at("timing").at("task_seconds").at("p50").is_number());
  EXPECT_EQ(j.at("spec").at("exec"), "unspecified");
}

TEST(ReportFormatTest, EnumNames) {
  EXPECT_EQ(JobStateName(v1::JOB_STATE_SUCCEEDED), "SUCCEEDED");
  EXPECT_EQ(JobStateName(v1::JOB_STATE_CANCELLED), "CANCELLED");
  EXPECT_EQ(JobStateName(v1::JOB_STATE_UNSPECIFIED), "UNSPECIFIED");
  EXPECT_EQ(JobStateName(static_cast<v1::JobState>(99)), "UNSPECIFIED");
  EXPECT_EQ(TaskStateName(v1::TASK_STATE_RUNNING), "RUNNING");
  EXPECT_EQ(TaskStateName(v1::TASK_STATE_QUEUED), "QUEUED");
  EXPECT_EQ(WorkerStateName(v1::WORKER_STATE_READY), "READY");
  EXPECT_EQ(WorkerStateName(v1::WORKER_STATE_DRAINING), "DRAINING");
  EXPECT_EQ(TaskKindName(v1::TASK_KIND_COUNTDOWN), "countdown");
  EXPECT_EQ(TaskKindName(v1::TASK_KIND_SLEEP), "sleep");
  EXPECT_EQ(TaskKindName(v1::TASK_KIND_UNSPECIFIED), "unspecified");
  EXPECT_EQ(TaskKindName(static_cast<v1::TaskKind>(42)), "unspecified");
  EXPECT_EQ(ExecModeName(v1::EXEC_MODE_THREAD), "thread");
  EXPECT_EQ(ExecModeName(v1::EXEC_MODE_PROCESS), "process");
  EXPECT_EQ(ExecModeName(v1::EXEC_MODE_UNSPECIFIED), "unspecified");
}

v1::WorkerInfo MakeWorker() {
  v1::WorkerInfo w;
  w.set_name("node-a");
  w.set_session_id("s-1");
  w.mutable_host()->set_hostname("host-a");
  w.mutable_host()->set_logical_cpus(8);
  w.mutable_host()->set_physical_cores(4);
  w.mutable_host()->set_affinity_cpus(6);
  w.mutable_host()->set_cgroup_cpu_quota(2.5);
  w.mutable_host()->set_cpu_model("Example CPU @ 3.0GHz");
  w.set_slots(2);
  w.set_state(v1::WORKER_STATE_READY);
  w.set_running(2);
  w.set_assigned(1);
  *w.mutable_last_heartbeat() = Ts(SubmitSeconds(), 100000000);
  *w.mutable_attached_at() = Ts(SubmitSeconds() - 60, 0);
  (*w.mutable_labels())["zone"] = "eu";
  (*w.mutable_labels())["gpu"] = "no";
  w.set_peer("ipv4:10.0.0.2:51234");
  w.mutable_clock_offset()->set_nanos(-2500000);
  w.set_tasks_done(17);
  w.mutable_host()->set_packages(1);
  w.mutable_host()->set_numa_nodes(1);
  w.mutable_host()->set_usable_cores(3);
  w.mutable_host()->set_usable_threads(6);
  w.mutable_host()->set_threads_per_core(2);
  w.mutable_host()->set_bind("cores");
  return w;
}

TEST(ReportFormatTest, WorkersJsonKeys) {
  const json j = WorkersToJson({MakeWorker()});
  ASSERT_TRUE(j.is_array());
  ASSERT_EQ(j.size(), 1u);
  const json& w = j.at(0);
  EXPECT_EQ(w.at("name"), "node-a");
  EXPECT_EQ(w.at("host"), "host-a");
  EXPECT_EQ(w.at("slots").get<int>(), 2);
  EXPECT_EQ(w.at("logical_cpus").get<int>(), 8);
  EXPECT_EQ(w.at("physical_cores").get<int>(), 4);
  EXPECT_EQ(w.at("state"), "READY");
  EXPECT_EQ(w.at("running").get<int>(), 2);
  EXPECT_EQ(w.at("last_heartbeat"), "2026-11-26T02:33:56.100000Z");
  EXPECT_EQ(w.at("affinity_cpus").get<int>(), 6);
  EXPECT_DOUBLE_EQ(w.at("cgroup_cpu_quota").get<double>(), 2.5);
  EXPECT_EQ(w.at("cpu_model"), "Example CPU @ 3.0GHz");
  EXPECT_EQ(w.at("assigned").get<int>(), 1);
  EXPECT_EQ(w.at("labels"), json({{"gpu", "no"}, {"zone", "eu"}}));
  EXPECT_EQ(w.at("attached_at"), "2026-11-26T02:32:56.000000Z");
  EXPECT_EQ(w.at("tasks_done").get<uint64_t>(), 17u);
  EXPECT_DOUBLE_EQ(w.at("clock_offset_seconds").get<double>(), -0.0025);
  EXPECT_EQ(w.at("packages").get<int>(), 1);
  EXPECT_EQ(w.at("numa_nodes").get<int>(), 1);
  EXPECT_EQ(w.at("usable_cores").get<int>(), 3);
  EXPECT_EQ(w.at("usable_threads").get<int>(), 6);
  EXPECT_EQ(w.at("threads_per_core").get<int>(), 2);
  EXPECT_EQ(w.at("bind"), "cores");
  // A WorkerInfo without kinds (an older coordinator): the C++ kinds.
  EXPECT_EQ(w.at("kinds"), json({"countdown", "spin", "sleep"}));
  EXPECT_EQ(w.at("python_version"), "");
  v1::WorkerInfo py = MakeWorker();
  for (v1::TaskKind k : {v1::TASK_KIND_COUNTDOWN, v1::TASK_KIND_PYTHON}) py.add_kinds(k);
  py.set_python_version("3.11.2");
  EXPECT_EQ(WorkersToJson({py})[0].at("kinds"), json({"countdown", "python"}));
  EXPECT_EQ(WorkersToJson({py})[0].at("python_version"), "3.11.2");
  EXPECT_TRUE(WorkersToJson({}).is_array());
  EXPECT_TRUE(WorkersToJson({}).empty());
  EXPECT_TRUE(WorkersToJson({v1::WorkerInfo()})[0].at("labels").is_object());
}

v1::JobSummary MakeSummary() {
  v1::JobSummary s;
  s.set_id("j-0002");
  s.set_name("sweep");
  s.set_state(v1::JOB_STATE_RUNNING);
  s.set_tasks(4);
  s.set_tasks_done(3);
  *s.mutable_submitted_at() = Ts(SubmitSeconds(), 987654321);
  s.set_wall_seconds(1.5);
  s.set_kind(v1::TASK_KIND_SPIN);
  return s;
}

TEST(ReportFormatTest, JobsJsonKeys) {
  const json j = JobsToJson({MakeSummary()});
  ASSERT_TRUE(j.is_array());
  ASSERT_EQ(j.size(), 1u);
  EXPECT_EQ(j.at(0), json({{"id", "j-0002"},
                           {"name", "sweep"},
                           {"state", "RUNNING"},
                           {"tasks", 4},
                           {"submitted_at", "2026-11-26T02:33:56.987654Z"},
                           {"wall_seconds", 1.5},
                           {"kind", "spin"},
                           {"tasks_done", 3}}));
}

v1::JobProgress MakeProgress() {
  v1::JobProgress p;
  p.set_job_id("j-0003");
  p.set_state(v1::JOB_STATE_RUNNING);
  p.set_tasks_total(40);
  p.set_tasks_done(12);
  p.set_tasks_running(4);
  p.set_iterations_total(400000000);
  p.set_iterations_done(120000000);
  p.set_elapsed_seconds(1.8);
  p.set_iterations_per_second(3.41e9);
  p.set_eta_seconds(4.2);
  return p;
}

TEST(ReportFormatTest, ProgressJsonKeys) {
  const json j = ProgressToJson(MakeProgress());
  EXPECT_EQ(j.at("id"), "j-0003");
  EXPECT_EQ(j.at("state"), "RUNNING");
  EXPECT_EQ(j.at("tasks_total").get<int>(), 40);
  EXPECT_EQ(j.at("tasks_done").get<int>(), 12);
  EXPECT_EQ(j.at("tasks_running").get<int>(), 4);
  EXPECT_EQ(j.at("tasks_failed").get<int>(), 0);
  EXPECT_EQ(j.at("iterations_total").get<uint64_t>(), 400000000u);
  EXPECT_EQ(j.at("iterations_done").get<uint64_t>(), 120000000u);
  EXPECT_DOUBLE_EQ(j.at("elapsed_seconds").get<double>(), 1.8);
  EXPECT_DOUBLE_EQ(j.at("iterations_per_second").get<double>(), 3.41e9);
  EXPECT_DOUBLE_EQ(j.at("eta_seconds").get<double>(), 4.2);
}

TEST(ReportFormatTest, ProgressJsonNegativeEtaIsNull) {
  v1::JobProgress p = MakeProgress();
  p.set_eta_seconds(-1);
  const json j = ProgressToJson(p);
  ASSERT_TRUE(j.contains("eta_seconds"));
  EXPECT_TRUE(j.at("eta_seconds").is_null());
  p.set_eta_seconds(0);
  EXPECT_DOUBLE_EQ(ProgressToJson(p).at("eta_seconds").get<double>(), 0.0);
}

TEST(ReportFormatTest, RenderReportHeader) {
  const std::string text = RenderReport(FourTaskReport(), false);
  EXPECT_TRUE(absl::StrContains(text, "Job:          j-0001  (chapter)\n"))
      << text;
  EXPECT_TRUE(absl::StrContains(text, "State:        SUCCEEDED\n")) << text;
  EXPECT_TRUE(
      absl::StrContains(text, "Kind:         countdown  (exec thread)\n"))
      << text;
  EXPECT_TRUE(absl::StrContains(
      text, "Tasks:        4 x 10,000,000 iterations (40,000,000 in all)\n"))
      << text;
  EXPECT_TRUE(absl::StrContains(text, "Wall:         2.345s\n")) << text;
  EXPECT_TRUE(absl::StrContains(text, "Makespan:     2.301s\n")) << text;
  EXPECT_TRUE(absl::StrContains(text, "Serial-equiv: 4.532s\n")) << text;
  EXPECT_TRUE(absl::StrContains(text, "Overhead:     0.044s\n")) << text;
  EXPECT_TRUE(absl::StrContains(text, "Speedup:      1.97x  (Serial-equiv / Makespan)\n")) << text;
  EXPECT_FALSE(absl::StrContains(text, "Work-serial")) << text;  // no calibration: no claim
  EXPECT_TRUE(absl::StrContains(text, "Efficiency:   98.5%\n")) << text;
  EXPECT_TRUE(absl::StrContains(text, "Slots:        2\n")) << text;
  EXPECT_TRUE(absl::StrContains(
      text,
      "Task seconds: min 1.120  p50 1.135  p90 1.600  p99 1.780  max 1.800\n"))
      << text;
  EXPECT_FALSE(absl::StrContains(text, "Error:")) << text;
  EXPECT_FALSE(absl::StrContains(text, "\x1b")) << text;
}

// Like every other renderer (and null in the JSON), a figure that is not
// finite prints as "-", never "nan" or "inf".
TEST(ReportFormatTest, RenderReportShowsNonFiniteFiguresAsDashes) {
  v1::JobReport r = FourTaskReport();
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  r.mutable_timing()->set_wall_seconds(nan);
  r.mutable_timing()->set_speedup(inf);
  r.mutable_timing()->set_efficiency(nan);
  r.mutable_timing()->mutable_task_seconds()->set_min(-inf);
  r.mutable_workers(0)->set_busy_seconds(nan);
  r.mutable_workers(0)->set_utilization(inf);
  r.mutable_tasks(0)->set_seconds(nan);
  const std::string text = RenderReport(r, true);
  for (const char* expected :
       {"Wall:         -\n", "Speedup:      -  (Serial-equiv", "Efficiency:   -\n",
        "Task seconds: min -  p50 1.135"}) {
    EXPECT_TRUE(absl::StrContains(text, expected)) << expected << "\n" << text;
  }
  for (const char* unexpected : {"nan", "inf"}) {
    EXPECT_FALSE(absl::StrContains(text, unexpected)) << text;
  }
}

TEST(ReportFormatTest, RenderReportWorkerTableIsAligned) {
  const std::string text = RenderReport(FourTaskReport(), false);
  EXPECT_TRUE(absl::StrContains(
      text,
      "WORKER  HOST    SLOTS  TASKS  ITERATIONS  BUSY(s)   UTIL  IT/S/SLOT  VS-CALIB\n"
      "node-a  host-a      1      2       20.0M    2.250  97.8%      8.89M         -\n"
      "node-b  host-b      1      2       20.0M    2.940  50.0%      3.41G         -\n"))
      << text;
  EXPECT_TRUE(absl::StrContains(text, "Stragglers (> 1.5x median): 3\n"))
      << text;
}

TEST(ReportFormatTest, RenderReportNamesTheCalibratedBaseline) {
  v1::JobReport r = FourTaskReport();
  r.mutable_timing()->set_work_serial_seconds(4.0);
  r.mutable_timing()->set_work_speedup(1.74);
  r.mutable_timing()->set_work_efficiency(0.87);
  r.mutable_timing()->set_slow_tasks(1);
  r.mutable_workers(1)->set_rate_ratio(0.52);
  const std::string text = RenderReport(r, false);
  EXPECT_TRUE(absl::StrContains(
      text, "Work-serial:  4.000s  (the iterations at the workers' calibrated per-core rates)\n")) << text;
  EXPECT_TRUE(absl::StrContains(text, "Work speedup: 1.74x  (Work-serial / Makespan), efficiency 87.0%\n")) << text;
  EXPECT_TRUE(absl::StrContains(text, "Slow tasks:   1 ran below 0.6x their core's calibrated rate\n")) << text;
  EXPECT_TRUE(absl::StrContains(text, "3.41G     0.52x\n")) << text;
  const nlohmann::json j = ReportToJson(r);
  EXPECT_DOUBLE_EQ(j["timing"]["work_serial_seconds"].get<double>(), 4.0);
  EXPECT_DOUBLE_EQ(j["timing"]["work_speedup"].get<double>(), 1.74);
  EXPECT_EQ(j["timing"]["slow_tasks"], 1);
  EXPECT_DOUBLE_EQ(j["workers"][1]["rate_ratio"].get<double>(), 0.52);
}

TEST(ReportFormatTest, RenderReportShowsTaskTableForSmallJobs) {
  const std::string text = RenderReport(FourTaskReport(), false);
  EXPECT_TRUE(absl::StrContains(
      text,
      "TASK  WORKER  SLOT  ATTEMPT  STATE      START(s)  SECONDS  CPU(s)\n"
      "   0  node-a     0        1  SUCCEEDED     0.000    1.120   1.110\n"))
      << text;
  EXPECT_TRUE(absl::StrContains(
      text,
      "   3  node-b     0        2  SUCCEEDED     1.132    1.800   1.790\n"))
      << text;
}

TEST(ReportFormatTest, RenderReportHidesTaskTableForLargeJobsUnlessAsked) {
  v1::JobReport r = FourTaskReport();
  for (uint32_t i = 4; i < 17; ++i) AddTask(&r, i, "node-a", 0, 2.0, 1.0);
  r.set_tasks_total(17);
  const std::string hidden = RenderReport(r, false);
  EXPECT_FALSE(absl::StrContains(hidden, "START(s)")) << hidden;
  EXPECT_TRUE(absl::StrContains(hidden, "(17 per-task rows not shown)"))
      << hidden;
  const std::string shown = RenderReport(r, true);
  EXPECT_TRUE(absl::StrContains(shown, "START(s)")) << shown;
  EXPECT_TRUE(absl::StrContains(shown, "\n  16  node-a")) << shown;
}

TEST(ReportFormatTest, RenderReportListsAtMostTwentyStragglers) {
  v1::JobReport r = FourTaskReport();
  r.clear_stragglers();
  for (uint32_t i = 100; i < 125; ++i) r.add_stragglers(i);
  const std::string text = RenderReport(r, false);
  EXPECT_TRUE(absl::StrContains(
      text,
      "Stragglers (> 1.5x median): 100, 101, 102, 103, 104, 105, 106, 107, "
      "108, 109, 110, 111, 112, 113, 114, 115, 116, 117, 118, 119, ... and 5 "
      "more\n"))
      << text;
}

TEST(ReportFormatTest, RenderReportShowsErrorsAndNoStragglers) {
  v1::JobReport r = FourTaskReport();
  r.set_state(v1::JOB_STATE_FAILED);
  r.set_error("task 2 failed 3 attempts");
  r.mutable_tasks(2)->set_state(v1::TASK_STATE_FAILED);
  r.mutable_tasks(2)->set_error("timeout");
  r.clear_stragglers();
  const std::string text = RenderReport(r, false);
  EXPECT_TRUE(absl::StrContains(text, "State:        FAILED\n")) << text;
  EXPECT_TRUE(
      absl::StrContains(text, "Error:        task 2 failed 3 attempts\n"))
      << text;
  EXPECT_TRUE(absl::StrContains(text, "Stragglers: none\n")) << text;
  EXPECT_TRUE(absl::StrContains(text, "CPU(s)  ERROR\n")) << text;
  EXPECT_TRUE(absl::StrContains(text, "FAILED  ")) << text;
  EXPECT_TRUE(absl::StrContains(text, "timeout\n")) << text;
}

TEST(ReportFormatTest, RenderWorkersTable) {
  v1::WorkerInfo b = MakeWorker();
  b.set_name("node-bravo");
  b.mutable_host()->set_hostname("h");
  b.set_state(v1::WORKER_STATE_DRAINING);
  b.set_running(0);
  b.mutable_host()->clear_bind();  // an older worker: no binding reported
  b.set_python_version("3.11.2");  // offers the python kind
  *b.mutable_last_heartbeat() = Ts(SubmitSeconds() - 192, 500000000);
  v1::WorkerInfo c = MakeWorker();
  c.set_name("node-c");
  c.clear_last_heartbeat();
  const absl::Time now =
      absl::FromUnixSeconds(SubmitSeconds()) + absl::Milliseconds(500);
  EXPECT_EQ(
      RenderWorkers({MakeWorker(), b, c}, now),
      "NAME        HOST    SLOTS  CPUS  CORES  BIND   STATE     RUNNING  "
      "LAST-HEARTBEAT  PYTHON\n"
      "node-a      host-a      2     8      4  cores  READY           2  0.4s ago        -\n"
      "node-bravo  h           2     8      4  -      DRAINING        0  3m12s ago       3.11.2\n"
      "node-c      host-a      2     8      4  cores  READY           2  -               -\n"
      // node-a and node-c send no machine id and share a host name: one
      // machine, its cores counted once.
      "3 workers on 2 machines: 6 slots, 8 physical cores, 16 logical CPUs\n");
  EXPECT_EQ(RenderWorkers({}, now), "No workers.\n");
}

TEST(ReportFormatTest, RenderJobsTable) {
  v1::JobSummary pending;
  pending.set_id("j-0004");
  pending.set_state(v1::JOB_STATE_PENDING);
  pending.set_tasks(8);
  EXPECT_EQ(RenderJobs({MakeSummary(), pending}),
            "ID      NAME   STATE    TASKS  SUBMITTED             WALL(s)\n"
            "j-0002  sweep  RUNNING    3/4  2026-11-26T02:33:56Z    1.500\n"
            "j-0004  -      PENDING    0/8  -                           -\n");
  EXPECT_EQ(RenderJobs({}), "No jobs.\n");
}

TEST(ReportFormatTest, ProgressLineAtFullWidth) {
  EXPECT_EQ(RenderProgressLine(MakeProgress(), 120),
            "[#########.....................]  12/40 tasks  30%  3.41G it/s  "
            "ETA 4.2s  RUNNING");
  v1::JobProgress p = MakeProgress();
  p.set_eta_seconds(-1);
  p.set_tasks_failed(2);
  EXPECT_EQ(RenderProgressLine(p, 120),
            "[#########.....................]  12/40 tasks  2 failed  30%  "
            "3.41G it/s  RUNNING");
}

TEST(ReportFormatTest, ProgressLineBarShrinksFirst) {
  // The parts take 47 columns; the bar needs 4 more for "[", "]" and the two
  // spaces, and at least 4 inside.
  EXPECT_EQ(RenderProgressLine(MakeProgress(), 68),
            "[#####............]  12/40 tasks  30%  3.41G it/s  ETA 4.2s  "
            "RUNNING");
  EXPECT_EQ(RenderProgressLine(MakeProgress(), 55),
            "[#...]  12/40 tasks  30%  3.41G it/s  ETA 4.2s  RUNNING");
  EXPECT_EQ(RenderProgressLine(MakeProgress(), 54),
            "12/40 tasks  30%  3.41G it/s  ETA 4.2s  RUNNING");
  EXPECT_EQ(RenderProgressLine(MakeProgress(), 47),
            "12/40 tasks  30%  3.41G it/s  ETA 4.2s  RUNNING");
  EXPECT_EQ(RenderProgressLine(MakeProgress(), 46),
            "12/40 tasks  30%  ETA 4.2s  RUNNING");
  EXPECT_EQ(RenderProgressLine(MakeProgress(), 34),
            "12/40 tasks  30%  RUNNING");
  EXPECT_EQ(RenderProgressLine(MakeProgress(), 20), "12/40 tasks  30%  RU");
  EXPECT_EQ(RenderProgressLine(MakeProgress(), 0), "");
}

TEST(ReportFormatTest, ProgressLineNeverExceedsWidth) {
  v1::JobProgress big = MakeProgress();
  big.set_tasks_total(4000000000u);
  big.set_tasks_done(3999999999u);
  big.set_tasks_failed(123456);
  big.set_iterations_total(std::numeric_limits<uint64_t>::max());
  big.set_iterations_done(std::numeric_limits<uint64_t>::max() / 2);
  big.set_iterations_per_second(9.9e30);
  big.set_eta_seconds(1e9);
  big.set_state(v1::JOB_STATE_CANCELLED);
  v1::JobProgress empty;
  v1::JobProgress done = MakeProgress();
  done.set_tasks_done(40);
  done.set_iterations_done(400000000);
  done.set_state(v1::JOB_STATE_SUCCEEDED);
  for (const v1::JobProgress& p : {MakeProgress(), big, empty, done}) {
    for (int width = 1; width <= 200; ++width) {
      const std::string line = RenderProgressLine(p, width);
      EXPECT_LE(line.size(), static_cast<size_t>(width)) << line;
      EXPECT_FALSE(line.empty()) << width;
      EXPECT_EQ(line.find_first_of("\r\n"), std::string::npos) << line;
    }
  }
  EXPECT_TRUE(absl::StartsWith(RenderProgressLine(done, 120),
                               "[##############################]  40/40 tasks  "
                               "100%"));
}

}  // namespace
}  // namespace busyfleet::report
