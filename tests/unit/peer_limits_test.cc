// Issue 14, item 4: every string a worker sends is bounded, a job's error
// is a summary, and a report never outgrows the message limit.
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/rpc/keepalive.h"
#include "coordinator/core/job_model.h"
#include "coordinator/core/limits.h"
#include "coordinator/server/prometheus_text.h"
#include "coordinator/core/metrics.h"
#include "coordinator/core/timing_aggregator.h"
#include "coordinator/core/worker_messages.h"
#include "coordinator/server/coordinator_service.h"
#include "tests/testing/status_matchers.h"

namespace busyfleet::coordinator {
namespace {

using ::testing::EndsWith;
using ::testing::HasSubstr;
using ::testing::SizeIs;
using ::busyfleet::testing::StatusIs;

TEST(TruncateTextTest, ShortTextIsKept) {
  std::string s = "boom";
  EXPECT_FALSE(TruncateText(s, 10));
  EXPECT_EQ(s, "boom");
}

TEST(TruncateTextTest, LongTextIsCutToTheLimitWithTheMarker) {
  std::string s(5000, 'x');
  EXPECT_TRUE(TruncateText(s, limits::kMaxErrorBytes));
  EXPECT_EQ(s.size(), limits::kMaxErrorBytes);
  EXPECT_THAT(s, EndsWith(limits::kTruncatedMarker));
}

TEST(TruncateTextTest, NeverSplitsAUtf8Character) {
  // "é" is two bytes: a cut at an odd offset would split one.
  std::string s;
  for (int i = 0; i < 100; ++i) s += "\xC3\xA9";
  const size_t marker = sizeof(limits::kTruncatedMarker) - 1;
  EXPECT_TRUE(TruncateText(s, marker + 7));
  EXPECT_EQ(s.size(), marker + 6);
  EXPECT_EQ(s.substr(0, 6), "\xC3\xA9\xC3\xA9\xC3\xA9");
}

TEST(WorkerTextTest, ResultErrorsAreCutAndCounted) {
  v1::WorkerMessage m;
  m.mutable_updates()->add_results()->set_error(std::string(1 << 20, 'e'));
  m.mutable_updates()->add_results()->set_error("short");
  EXPECT_EQ(TruncateWorkerText(m), 1);
  EXPECT_EQ(m.updates().results(0).error().size(), limits::kMaxErrorBytes);
  EXPECT_EQ(m.updates().results(1).error(), "short");
}

TEST(WorkerTextTest, CpuModelAndVersionAreCut) {
  v1::Hello hello;
  hello.mutable_host()->set_cpu_model(std::string(10'000, 'c'));
  hello.set_version(std::string(10'000, 'v'));
  EXPECT_EQ(TruncateHelloText(hello), 2);
  EXPECT_EQ(hello.host().cpu_model().size(), limits::kMaxHostTextBytes);
  EXPECT_EQ(hello.version().size(), limits::kMaxHostTextBytes);
}

TEST(WorkerTextTest, LongJobIdsInTaskReferencesAreRefused) {
  const std::string long_id(limits::kMaxNameBytes + 1, 'j');
  v1::WorkerMessage result;
  result.mutable_updates()->add_results()->mutable_task()->set_job_id(long_id);
  EXPECT_THAT(ValidateWorkerMessage(result),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("results.task.job_id must be at most 128")));
  v1::WorkerMessage started;
  started.mutable_updates()->add_started()->mutable_task()->set_job_id(long_id);
  EXPECT_THAT(ValidateWorkerMessage(started), StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
  v1::WorkerMessage drain;
  drain.mutable_drain()->add_returned()->set_job_id(long_id);
  EXPECT_THAT(ValidateWorkerMessage(drain), StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));

  v1::Hello hello;
  hello.set_name("w1");
  hello.set_slots(1);
  hello.add_held()->set_job_id(long_id);
  EXPECT_THAT(ValidateHello(hello),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("hello.held.job_id must be at most 128")));
}

TEST(SummarizeFailuresTest, RepeatedErrorsAreCountedOnce) {
  std::vector<std::string> failures;
  for (int i = 1; i <= 100; ++i) failures.push_back(absl::StrCat("attempt ", i, " on worker w1: boom"));
  failures.push_back("attempt 101 on worker w2: bang");
  EXPECT_EQ(SummarizeFailures(failures, 5), "on worker w1: boom (x100); on worker w2: bang");
}

TEST(SummarizeFailuresTest, AtMostKDistinctErrorsAreNamed) {
  std::vector<std::string> failures;
  for (int i = 0; i < 100; ++i) failures.push_back(absl::StrCat("attempt ", i, " on worker w", i, ": ") +
                                                   std::string(limits::kMaxErrorBytes, 'x'));
  const std::string s = SummarizeFailures(failures, limits::kMaxDistinctErrors);
  EXPECT_THAT(s, EndsWith("; and 95 more distinct errors"));
  EXPECT_LT(s.size(), (limits::kMaxErrorBytes + 64) * limits::kMaxDistinctErrors);
}

// Every task failed with a maximum-length error: before the reply budget,
// 50,000 rows of ~1.2 KiB made a 60 MiB reply, over the 16 MiB message
// limit, so GetJob failed for the job forever.
JobRecord JobOfLongErrors(uint32_t tasks) {
  JobRecord job;
  job.id = "j-1";
  job.state = v1::JOB_STATE_FAILED;
  job.submitted_at = absl::FromUnixSeconds(1'700'000'000);
  job.tasks.resize(tasks);
  const std::string worker(limits::kMaxNameBytes, 'w');
  for (uint32_t i = 0; i < tasks; ++i) {
    TaskRecord& t = job.tasks[i];
    t.index = i;
    t.state = v1::TASK_STATE_FAILED;
    t.current.number = 3;
    t.current.worker = worker;
    t.current.host = worker;
    t.current.started_at = job.submitted_at + absl::Seconds(1);
    t.current.ended_at = job.submitted_at + absl::Seconds(2);
    t.set_error(absl::StrCat("attempt 3 on worker ", worker, ": ", std::string(limits::kMaxErrorBytes, 'e')));
    for (uint32_t a = 1; a < 3; ++a) {
      t.mutable_history().push_back(t.current.ToRecord(v1::TASK_STATE_FAILED, false, t.error(), t.current.ended_at));
    }
  }
  job.failed = tasks;
  return job;
}

TEST(ReportBudgetTest, TaskRowsStopAtTheReplyBudgetAndTheRestAreCounted) {
  const uint32_t tasks = limits::kMaxTaskRowsPerReply;
  const JobRecord job = JobOfLongErrors(tasks);
  ReportOptions options;
  options.task_limit = limits::kMaxTaskRowsPerReply;
  const v1::JobReport r = BuildReport(job, {}, job.submitted_at + absl::Seconds(3), options);
  EXPECT_LE(r.ByteSizeLong(), limits::kMaxReplyBytes);
  EXPECT_LT(r.ByteSizeLong(), static_cast<size_t>(kMaxMessageBytes));
  EXPECT_GT(r.task_rows_omitted(), 0u);
  EXPECT_EQ(r.tasks_size() + r.task_rows_omitted(), tasks) << "every row of the page is sent or counted";
  EXPECT_EQ(r.tasks(r.tasks_size() - 1).index(), static_cast<uint32_t>(r.tasks_size() - 1)) << "rows in order";
}

TEST(ReportBudgetTest, AttemptRowsStopAtTheReplyBudgetAndTheRestAreCounted) {
  const JobRecord job = JobOfLongErrors(10'000);
  ReportOptions options;
  options.tasks = false;
  options.attempts = true;
  const v1::JobReport r = BuildReport(job, {}, job.submitted_at + absl::Seconds(3), options);
  EXPECT_LE(r.ByteSizeLong(), limits::kMaxReplyBytes);
  EXPECT_GT(r.attempts_omitted(), 0u);
  EXPECT_EQ(r.attempts_size() + r.attempts_omitted(), 3u * 10'000) << "a task's attempts are all in or all out";
}

TEST(ReportBudgetTest, SmallReportsAreWhole) {
  const JobRecord job = JobOfLongErrors(100);
  ReportOptions options;
  options.attempts = true;
  const v1::JobReport r = BuildReport(job, {}, job.submitted_at + absl::Seconds(3), options);
  EXPECT_THAT(r.tasks(), SizeIs(100));
  EXPECT_THAT(r.attempts(), SizeIs(300));
  EXPECT_EQ(r.task_rows_omitted(), 0u);
  EXPECT_EQ(r.attempts_omitted(), 0u);
}

TEST(PeerTallyTest, SnapshotAndPrometheusText) {
  PeerTally tally;
  tally.Add(PeerTally::kSessionsRefused);
  tally.Add(PeerTally::kStringsTruncated, 3);
  tally.AddClientRefusal(static_cast<int>(absl::StatusCode::kInvalidArgument));
  tally.AddClientRefusal(static_cast<int>(absl::StatusCode::kInvalidArgument));
  tally.AddClientRefusal(0);  // OK is no refusal
  const PeerCounters c = tally.Snapshot();
  EXPECT_EQ(c.sessions_refused, 1u);
  EXPECT_EQ(c.strings_truncated, 3u);
  EXPECT_THAT(c.client_refusals, ::testing::ElementsAre(::testing::Pair("invalid_argument", 2u)));
  MetricsSnapshot m;
  m.peers = c;
  const std::string text = PrometheusText(m);
  EXPECT_THAT(text, HasSubstr("busyfleet_peer_refusals_total{reason=\"sessions_limit\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("busyfleet_worker_strings_truncated_total 3\n"));
  EXPECT_THAT(text, HasSubstr("busyfleet_client_refusals_total{code=\"invalid_argument\"} 2\n"));
}

TEST(PeerAdmissionTest, RefusesPastTheCapNamingTheLimitAndTheFlag) {
  PeerTally tally;
  PeerAdmission admission(/*max_sessions=*/2, /*max_watches=*/1, &tally);
  ASSERT_OK(admission.AdmitSession());
  ASSERT_OK(admission.AdmitSession());
  EXPECT_THAT(admission.AdmitSession(),
              StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("the limit is 2 (--max-sessions)")));
  admission.ReleaseSession();
  EXPECT_OK(admission.AdmitSession()) << "a released place is free again";
  ASSERT_OK(admission.AdmitWatch());
  EXPECT_THAT(admission.AdmitWatch(),
              StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("the limit is 1 (--max-watches)")));
  EXPECT_EQ(tally.Snapshot().sessions_refused, 1u);
  EXPECT_EQ(tally.Snapshot().watches_refused, 1u);
}

}  // namespace
}  // namespace busyfleet::coordinator
