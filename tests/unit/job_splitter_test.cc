#include "coordinator/core/job_splitter.h"

#include <cstdint>
#include <functional>
#include <limits>
#include <numeric>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "busyfleet/v1/types.pb.h"
#include "coordinator/core/limits.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/specs.h"

namespace busyfleet::coordinator {
namespace {

using ::busyfleet::testing::Countdown;
using ::busyfleet::testing::CountdownTotal;
using ::busyfleet::testing::StatusIs;
using ::busyfleet::testing::Timed;
using ::testing::HasSubstr;

std::vector<uint64_t> Iterations(const std::vector<TaskSpec>& tasks) {
  std::vector<uint64_t> out;
  for (const TaskSpec& t : tasks) out.push_back(t.iterations);
  return out;
}

std::vector<uint32_t> Indices(const std::vector<TaskSpec>& tasks) {
  std::vector<uint32_t> out;
  for (const TaskSpec& t : tasks) out.push_back(t.index);
  return out;
}

// ---------------------------------------------------------------- SplitJob

TEST(SplitJobTest, OneTask) {
  ASSERT_OK_AND_ASSIGN(std::vector<TaskSpec> tasks, SplitJob(Countdown(1, 1'000), 0, 0));
  ASSERT_EQ(tasks.size(), 1u);
  EXPECT_EQ(tasks[0].index, 0u);
  EXPECT_EQ(tasks[0].iterations, 1'000u);
}

TEST(SplitJobTest, ChaptersFourTimesTenMillion) {
  ASSERT_OK_AND_ASSIGN(std::vector<TaskSpec> tasks, SplitJob(Countdown(4, 10'000'000), 8, 8));
  EXPECT_EQ(Indices(tasks), (std::vector<uint32_t>{0, 1, 2, 3}));
  EXPECT_EQ(Iterations(tasks),
            (std::vector<uint64_t>{10'000'000, 10'000'000, 10'000'000, 10'000'000}));
}

TEST(SplitJobTest, TotalWithRemainderGoesToTheFirstTasks) {
  ASSERT_OK_AND_ASSIGN(std::vector<TaskSpec> tasks, SplitJob(CountdownTotal(3, 10), 0, 0));
  EXPECT_EQ(Indices(tasks), (std::vector<uint32_t>{0, 1, 2}));
  EXPECT_EQ(Iterations(tasks), (std::vector<uint64_t>{4, 3, 3}));
  const std::vector<uint64_t> its = Iterations(tasks);
  EXPECT_EQ(std::accumulate(its.begin(), its.end(), uint64_t{0}), 10u);
}

TEST(SplitJobTest, TotalSplitsEvenlyWithoutRemainder) {
  ASSERT_OK_AND_ASSIGN(std::vector<TaskSpec> tasks, SplitJob(CountdownTotal(4, 40'000'000), 0, 0));
  EXPECT_EQ(Iterations(tasks),
            (std::vector<uint64_t>{10'000'000, 10'000'000, 10'000'000, 10'000'000}));
}

TEST(SplitJobTest, LargeTotalSumsToTotal) {
  const uint64_t total = 1'000'000'007;
  ASSERT_OK_AND_ASSIGN(std::vector<TaskSpec> tasks, SplitJob(CountdownTotal(7, total), 0, 0));
  ASSERT_EQ(tasks.size(), 7u);
  const std::vector<uint64_t> its = Iterations(tasks);
  EXPECT_EQ(std::accumulate(its.begin(), its.end(), uint64_t{0}), total);
  // 1'000'000'007 = 7 * 142'857'143 + 6: six parts one larger.
  for (int i = 0; i < 6; ++i) EXPECT_EQ(its[i], 142'857'144u) << i;
  EXPECT_EQ(its[6], 142'857'143u);
}

TEST(SplitJobTest, TasksAutoUsesFreeSlots) {
  v1::JobSpec spec = Countdown(0, 1'000);
  spec.set_tasks_auto(true);
  ASSERT_OK_AND_ASSIGN(std::vector<TaskSpec> tasks, SplitJob(spec, /*free_slots=*/3, /*total_slots=*/8));
  EXPECT_EQ(Indices(tasks), (std::vector<uint32_t>{0, 1, 2}));
  EXPECT_EQ(Iterations(tasks), (std::vector<uint64_t>{1'000, 1'000, 1'000}));
}

TEST(SplitJobTest, TasksAutoFallsBackToTotalSlotsWhenNoneFree) {
  v1::JobSpec spec = Countdown(0, 1'000);
  spec.set_tasks_auto(true);
  ASSERT_OK_AND_ASSIGN(std::vector<TaskSpec> tasks, SplitJob(spec, /*free_slots=*/0, /*total_slots=*/8));
  EXPECT_EQ(tasks.size(), 8u);
}

TEST(SplitJobTest, TasksAutoWithoutSlotsIsFailedPrecondition) {
  v1::JobSpec spec = Countdown(0, 1'000);
  spec.set_tasks_auto(true);
  EXPECT_THAT(SplitJob(spec, 0, 0), StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("worker")));
}

TEST(SplitJobTest, TasksAutoWithTotalSplitsOverFreeSlots) {
  v1::JobSpec spec = CountdownTotal(0, 11);
  spec.set_tasks_auto(true);
  ASSERT_OK_AND_ASSIGN(std::vector<TaskSpec> tasks, SplitJob(spec, 4, 4));
  EXPECT_EQ(Iterations(tasks), (std::vector<uint64_t>{3, 3, 3, 2}));
}

TEST(SplitJobTest, TasksAutoIsCappedByMaxSlots) {
  v1::JobSpec spec = Countdown(0, 1'000);
  spec.set_tasks_auto(true);
  spec.set_max_slots(2);
  ASSERT_OK_AND_ASSIGN(std::vector<TaskSpec> tasks, SplitJob(spec, 6, 6));
  EXPECT_EQ(tasks.size(), 2u);
}

TEST(SplitJobTest, SpinTasksGetTheDuration) {
  ASSERT_OK_AND_ASSIGN(std::vector<TaskSpec> tasks,
                       SplitJob(Timed(v1::TASK_KIND_SPIN, 3, 2, 500'000'000), 0, 0));
  ASSERT_EQ(tasks.size(), 3u);
  for (const TaskSpec& t : tasks) {
    EXPECT_EQ(t.duration, absl::Milliseconds(2'500));
    EXPECT_EQ(t.iterations, 0u);
  }
  EXPECT_EQ(Indices(tasks), (std::vector<uint32_t>{0, 1, 2}));
}

TEST(SplitJobTest, SleepTasksGetTheDuration) {
  ASSERT_OK_AND_ASSIGN(std::vector<TaskSpec> tasks, SplitJob(Timed(v1::TASK_KIND_SLEEP, 2, 1), 0, 0));
  ASSERT_EQ(tasks.size(), 2u);
  for (const TaskSpec& t : tasks) EXPECT_EQ(t.duration, absl::Seconds(1));
}

TEST(SplitJobTest, PythonTasksTakeIterationsLikeCountdown) {
  v1::JobSpec spec = CountdownTotal(3, 10);
  spec.set_kind(v1::TASK_KIND_PYTHON);
  ASSERT_OK_AND_ASSIGN(std::vector<TaskSpec> tasks, SplitJob(spec, 0, 0));
  EXPECT_EQ(Iterations(tasks), (std::vector<uint64_t>{4, 3, 3}));
  spec = Countdown(2, 1'000);
  spec.set_kind(v1::TASK_KIND_PYTHON);
  ASSERT_OK_AND_ASSIGN(tasks, SplitJob(spec, 0, 0));
  EXPECT_EQ(Iterations(tasks), (std::vector<uint64_t>{1'000, 1'000}));
  spec.mutable_duration()->set_seconds(1);
  EXPECT_THAT(ValidateJobSpec(spec), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("duration applies")));
}

TEST(SplitJobTest, InvalidSpecIsRejected) {
  EXPECT_THAT(SplitJob(Countdown(0, 1), 4, 4), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("tasks")));
}

// ---------------------------------------------------------- ValidateJobSpec

TEST(ValidateJobSpecTest, AcceptsValidSpecs) {
  EXPECT_OK(ValidateJobSpec(Countdown(4, 10'000'000)));
  EXPECT_OK(ValidateJobSpec(Countdown(limits::kMaxTasksPerJob, 1)));
  EXPECT_OK(ValidateJobSpec(Countdown(1, limits::kMaxIterationsPerTask)));
  EXPECT_OK(ValidateJobSpec(Countdown(1, 0)));
  EXPECT_OK(ValidateJobSpec(CountdownTotal(3, 10)));
  EXPECT_OK(ValidateJobSpec(CountdownTotal(3, 3)));
  EXPECT_OK(ValidateJobSpec(CountdownTotal(1, limits::kMaxIterationsPerTask)));
  EXPECT_OK(ValidateJobSpec(Timed(v1::TASK_KIND_SPIN, 2, 1)));
  EXPECT_OK(ValidateJobSpec(Timed(v1::TASK_KIND_SLEEP, 2, 0, 500'000'000)));
  EXPECT_OK(ValidateJobSpec(Timed(v1::TASK_KIND_SLEEP, 1, 24 * 3600)));
  v1::JobSpec named = Countdown(1, 1);
  named.set_name(std::string(limits::kMaxNameBytes, 'a'));
  EXPECT_OK(ValidateJobSpec(named));
  v1::JobSpec utf8 = Countdown(1, 1);
  utf8.set_name("d\xc3\xa9mo \xe2\x9c\x93 \xf0\x9f\x9a\x80");  // "démo ✓ 🚀"
  EXPECT_OK(ValidateJobSpec(utf8));
  v1::JobSpec attempts = Countdown(1, 1);
  attempts.set_max_attempts(limits::kMaxAttempts);
  EXPECT_OK(ValidateJobSpec(attempts));
  v1::JobSpec selected = Countdown(1, 1);
  (*selected.mutable_selector())["zone"] = "a";
  selected.add_workers("node-1");
  selected.set_exec(v1::EXEC_MODE_PROCESS);
  EXPECT_OK(ValidateJobSpec(selected));
}

struct BadSpecCase {
  std::string label;
  std::function<v1::JobSpec()> make;
  // Every substring must appear in the message (the field, often the limit).
  std::vector<std::string> message_has;
};

class ValidateJobSpecRejectsTest : public ::testing::TestWithParam<BadSpecCase> {};

TEST_P(ValidateJobSpecRejectsTest, InvalidArgumentNamingTheField) {
  const BadSpecCase& c = GetParam();
  const absl::Status status = ValidateJobSpec(c.make());
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  for (const std::string& s : c.message_has) {
    EXPECT_THAT(status, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(s)));
  }
}

INSTANTIATE_TEST_SUITE_P(
    BadSpecs, ValidateJobSpecRejectsTest,
    ::testing::Values(
        BadSpecCase{"KindUnspecified",
                    [] {
                      v1::JobSpec s = Countdown(1, 1);
                      s.set_kind(v1::TASK_KIND_UNSPECIFIED);
                      return s;
                    },
                    {"kind"}},
        BadSpecCase{"KindOutOfRange",
                    [] {
                      v1::JobSpec s = Countdown(1, 1);
                      s.set_kind(static_cast<v1::TaskKind>(42));
                      return s;
                    },
                    {"kind", "42"}},
        BadSpecCase{"TasksZero", [] { return Countdown(0, 1); }, {"tasks", "1000000", "got 0"}},
        BadSpecCase{"TasksOverLimit", [] { return Countdown(limits::kMaxTasksPerJob + 1, 1); },
                    {"tasks", "1000000", "1000001"}},
        BadSpecCase{"TasksWithTasksAuto",
                    [] {
                      v1::JobSpec s = Countdown(4, 1);
                      s.set_tasks_auto(true);
                      return s;
                    },
                    {"tasks"}},
        BadSpecCase{"IterationsOverLimit",
                    [] { return Countdown(1, limits::kMaxIterationsPerTask + 1); },
                    {"iterations", "10000000000000", "10000000000001"}},
        BadSpecCase{"IterationsAndTotal",
                    [] {
                      v1::JobSpec s = Countdown(2, 5);
                      s.set_total(10);
                      return s;
                    },
                    {"iterations", "total"}},
        BadSpecCase{"TotalLessThanTasks", [] { return CountdownTotal(5, 4); }, {"total", "5", "4"}},
        BadSpecCase{"TotalPerTaskOverLimit",
                    [] { return CountdownTotal(2, std::numeric_limits<uint64_t>::max()); },
                    {"total", "10000000000000"}},
        BadSpecCase{"TotalPerTaskJustOverLimit",
                    [] { return CountdownTotal(2, 2 * limits::kMaxIterationsPerTask + 1); },
                    {"total", "10000000000000", "10000000000001"}},
        BadSpecCase{"SpinWithoutDuration",
                    [] {
                      v1::JobSpec s;
                      s.set_kind(v1::TASK_KIND_SPIN);
                      s.set_tasks(1);
                      return s;
                    },
                    {"duration"}},
        BadSpecCase{"SleepWithoutDuration",
                    [] {
                      v1::JobSpec s;
                      s.set_kind(v1::TASK_KIND_SLEEP);
                      s.set_tasks(1);
                      return s;
                    },
                    {"duration"}},
        BadSpecCase{"NegativeDuration", [] { return Timed(v1::TASK_KIND_SPIN, 1, -1); },
                    {"duration", "-1s"}},
        BadSpecCase{"NegativeNanosDuration", [] { return Timed(v1::TASK_KIND_SLEEP, 1, 0, -5); },
                    {"duration"}},
        BadSpecCase{"DurationOverLimit", [] { return Timed(v1::TASK_KIND_SLEEP, 1, 24 * 3600 + 1); },
                    {"duration", "24h"}},
        BadSpecCase{"HugeDuration",
                    [] { return Timed(v1::TASK_KIND_SLEEP, 1, std::numeric_limits<int64_t>::max()); },
                    {"duration", "24h"}},
        BadSpecCase{"DurationForCountdown",
                    [] {
                      v1::JobSpec s = Countdown(1, 1);
                      s.mutable_duration()->set_seconds(1);
                      return s;
                    },
                    {"duration", "countdown"}},
        BadSpecCase{"IterationsForSpin",
                    [] {
                      v1::JobSpec s = Timed(v1::TASK_KIND_SPIN, 1, 1);
                      s.set_iterations(5);
                      return s;
                    },
                    {"iterations"}},
        BadSpecCase{"MaxAttemptsOverLimit",
                    [] {
                      v1::JobSpec s = Countdown(1, 1);
                      s.set_max_attempts(limits::kMaxAttempts + 1);
                      return s;
                    },
                    {"max_attempts", "100", "101"}},
        BadSpecCase{"MaxSlotsOverLimit",
                    [] {
                      v1::JobSpec s = Countdown(1, 1);
                      s.set_max_slots(limits::kMaxSlotsPerJob + 1);
                      return s;
                    },
                    {"max_slots", "1000001"}},
        BadSpecCase{"NegativeTaskTimeout",
                    [] {
                      v1::JobSpec s = Countdown(1, 1);
                      s.mutable_task_timeout()->set_seconds(-1);
                      return s;
                    },
                    {"task_timeout"}},
        BadSpecCase{"ExecOutOfRange",
                    [] {
                      v1::JobSpec s = Countdown(1, 1);
                      s.set_exec(static_cast<v1::ExecMode>(9));
                      return s;
                    },
                    {"exec"}},
        BadSpecCase{"NameTooLong",
                    [] {
                      v1::JobSpec s = Countdown(1, 1);
                      s.set_name(std::string(limits::kMaxNameBytes + 1, 'a'));
                      return s;
                    },
                    {"name", "128", "129"}},
        BadSpecCase{"NameInvalidUtf8",
                    [] {
                      v1::JobSpec s = Countdown(1, 1);
                      s.set_name("bad\xff");
                      return s;
                    },
                    {"name", "UTF-8"}},
        BadSpecCase{"NameTruncatedUtf8",
                    [] {
                      v1::JobSpec s = Countdown(1, 1);
                      s.set_name("x\xe2\x9c");
                      return s;
                    },
                    {"name", "UTF-8"}},
        BadSpecCase{"NameOverlongUtf8",
                    [] {
                      v1::JobSpec s = Countdown(1, 1);
                      s.set_name("\xc0\xaf");
                      return s;
                    },
                    {"name", "UTF-8"}},
        BadSpecCase{"NameSurrogateUtf8",
                    [] {
                      v1::JobSpec s = Countdown(1, 1);
                      s.set_name("\xed\xa0\x80");
                      return s;
                    },
                    {"name", "UTF-8"}},
        BadSpecCase{"NameControlChar",
                    [] {
                      v1::JobSpec s = Countdown(1, 1);
                      s.set_name("line\nbreak");
                      return s;
                    },
                    {"name", "printable"}},
        BadSpecCase{"NameDelete",
                    [] {
                      v1::JobSpec s = Countdown(1, 1);
                      s.set_name("del\x7f");
                      return s;
                    },
                    {"name", "printable"}},
        BadSpecCase{"WorkerNameEmpty",
                    [] {
                      v1::JobSpec s = Countdown(1, 1);
                      s.add_workers("");
                      return s;
                    },
                    {"workers"}},
        BadSpecCase{"SelectorEmptyKey",
                    [] {
                      v1::JobSpec s = Countdown(1, 1);
                      (*s.mutable_selector())[""] = "v";
                      return s;
                    },
                    {"selector key"}},
        BadSpecCase{"SelectorValueControlChar",
                    [] {
                      v1::JobSpec s = Countdown(1, 1);
                      (*s.mutable_selector())["zone"] = "a\tb";
                      return s;
                    },
                    {"selector value"}}),
    [](const ::testing::TestParamInfo<BadSpecCase>& info) { return info.param.label; });

// ------------------------------------------------------------ ValidateName

TEST(ValidateNameTest, EmptyAllowedOnlyWhenAsked) {
  EXPECT_OK(ValidateName("label", "", /*allow_empty=*/true));
  EXPECT_THAT(ValidateName("label", "", /*allow_empty=*/false),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("label")));
}

TEST(ValidateNameTest, LengthLimitIsInBytes) {
  // 64 two-byte characters = 128 bytes: at the limit.
  std::string at_limit;
  for (int i = 0; i < 64; ++i) at_limit += "\xc3\xa9";
  EXPECT_OK(ValidateName("name", at_limit, false));
  EXPECT_THAT(ValidateName("name", at_limit + "a", false),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("129")));
}

TEST(ValidateNameTest, RejectsC1ControlCharacters) {
  EXPECT_THAT(ValidateName("name", "a\xc2\x85z", false),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("name")));
}

// A run of tasks with the same work (AddRunToRanges) ends at most where a
// total's remainder does.
TEST(JobPlanTest, SameWorkRunEndsWhereATotalsRemainderDoes) {
  const JobPlan split = PlanFor(CountdownTotal(10, 10 * 500 + 3), 10);  // tasks 0-2: 501, 3-9: 500
  EXPECT_EQ(split.SameWorkRun(0, 10), 3u);
  EXPECT_EQ(split.SameWorkRun(1, 1), 1u);
  EXPECT_EQ(split.SameWorkRun(2, 8), 1u);
  EXPECT_EQ(split.SameWorkRun(3, 7), 7u);
  const JobPlan even = PlanFor(Countdown(10, 500), 10);
  EXPECT_EQ(even.SameWorkRun(0, 10), 10u);
  for (uint32_t i = 0; i < 10; ++i) {
    for (uint32_t limit = 1; i + limit <= 10; ++limit) {
      uint32_t same = 1;
      while (same < limit && split.Iterations(i + same) == split.Iterations(i)) ++same;
      EXPECT_EQ(split.SameWorkRun(i, limit), same) << "task " << i << ", limit " << limit;
    }
  }
}

}  // namespace
}  // namespace busyfleet::coordinator
