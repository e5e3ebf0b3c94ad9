#include "coordinator/ctl/submit_spec.h"

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace busyfleet::coordctl {
namespace {

using ::busyfleet::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;
using ::testing::UnorderedElementsAre;

TEST(BuildSpecTest, DefaultsAreFourCountdownTasks) {
  ASSERT_OK_AND_ASSIGN(v1::JobSpec spec, BuildSpec(SubmitFlags{}));
  EXPECT_EQ(spec.kind(), v1::TASK_KIND_COUNTDOWN);
  EXPECT_EQ(spec.iterations(), 10'000'000u);
  EXPECT_EQ(spec.tasks(), 4u);
  EXPECT_FALSE(spec.tasks_auto());
  EXPECT_EQ(spec.exec(), v1::EXEC_MODE_UNSPECIFIED);
  EXPECT_FALSE(spec.has_task_timeout());
}

TEST(BuildSpecTest, TotalInsteadOfIterations) {
  SubmitFlags f;
  f.total = 1000;
  ASSERT_OK_AND_ASSIGN(v1::JobSpec spec, BuildSpec(f));
  EXPECT_EQ(spec.total(), 1000u);
  EXPECT_EQ(spec.iterations(), 0u);
  f.iterations_given = true;
  EXPECT_THAT(BuildSpec(f), StatusIs(absl::StatusCode::kInvalidArgument,
                                     "give --iterations (per task) or --total, not both"));
}

TEST(BuildSpecTest, CountdownTakesNoDuration) {
  SubmitFlags f;
  f.duration = "1s";
  EXPECT_THAT(BuildSpec(f), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--duration")));
}

TEST(BuildSpecTest, SpinAndSleepTakeADuration) {
  SubmitFlags f;
  f.kind = "sleep";
  EXPECT_THAT(BuildSpec(f), StatusIs(absl::StatusCode::kInvalidArgument, "--duration is required for --kind sleep"));
  f.duration = "1.5s";
  ASSERT_OK_AND_ASSIGN(v1::JobSpec spec, BuildSpec(f));
  EXPECT_EQ(spec.kind(), v1::TASK_KIND_SLEEP);
  EXPECT_EQ(spec.duration().seconds(), 1);
  EXPECT_EQ(spec.duration().nanos(), 500'000'000);
  f.kind = "spin";
  ASSERT_OK_AND_ASSIGN(spec, BuildSpec(f));
  EXPECT_EQ(spec.kind(), v1::TASK_KIND_SPIN);
  f.duration = "-1s";
  EXPECT_THAT(BuildSpec(f), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--duration")));
}

TEST(BuildSpecTest, PythonTakesIterationsLikeCountdown) {
  SubmitFlags f;  // the chapter's job: --kind python --iterations 10000000 --tasks 4
  f.kind = "python";
  f.iterations = 10'000'000;
  f.iterations_given = true;
  ASSERT_OK_AND_ASSIGN(v1::JobSpec spec, BuildSpec(f));
  EXPECT_EQ(spec.kind(), v1::TASK_KIND_PYTHON);
  EXPECT_EQ(spec.iterations(), 10'000'000u);
  EXPECT_EQ(spec.tasks(), 4u);
  EXPECT_FALSE(spec.has_duration());
  f.iterations_given = false;
  f.total = 40'000'000;
  ASSERT_OK_AND_ASSIGN(spec, BuildSpec(f));
  EXPECT_EQ(spec.total(), 40'000'000u);
  f.duration = "1s";
  EXPECT_THAT(BuildSpec(f), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--duration applies to")));
}

TEST(BuildSpecTest, SpinTakesNoIterationsOrTotal) {
  SubmitFlags f;
  f.kind = "spin";
  f.duration = "1s";
  f.iterations_given = true;
  EXPECT_THAT(BuildSpec(f), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("use --duration")));
  f.iterations_given = false;
  f.total = 5;
  EXPECT_THAT(BuildSpec(f), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("use --duration")));
}

TEST(BuildSpecTest, TasksIsANumberOrAuto) {
  SubmitFlags f;
  f.tasks = "auto";
  ASSERT_OK_AND_ASSIGN(v1::JobSpec spec, BuildSpec(f));
  EXPECT_TRUE(spec.tasks_auto());
  f.tasks = "0";  // the coordinator checks the limits
  ASSERT_OK_AND_ASSIGN(spec, BuildSpec(f));
  EXPECT_EQ(spec.tasks(), 0u);
  for (const char* bad : {"", "-1", "many", "4x"}) {
    f.tasks = bad;
    EXPECT_THAT(BuildSpec(f), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--tasks"))) << bad;
  }
}

TEST(BuildSpecTest, WorkersAndSelector) {
  SubmitFlags f;
  f.workers = {"a,b", "c"};
  f.selector = "zone=x,disk=ssd=fast";
  ASSERT_OK_AND_ASSIGN(v1::JobSpec spec, BuildSpec(f));
  EXPECT_THAT(spec.workers(), ElementsAre("a", "b", "c"));
  EXPECT_THAT(spec.selector(), UnorderedElementsAre(Pair("zone", "x"), Pair("disk", "ssd=fast")));
  f.selector = "zone";
  EXPECT_THAT(BuildSpec(f), StatusIs(absl::StatusCode::kInvalidArgument,
                                     "--selector entries must look like key=value, got \"zone\""));
}

TEST(BuildSpecTest, TheRestIsCopied) {
  SubmitFlags f;
  f.name = "chapter";
  f.max_slots = 1;
  f.exec = "process";
  f.max_attempts = 5;
  f.speculate = true;
  f.task_timeout = "250ms";
  ASSERT_OK_AND_ASSIGN(v1::JobSpec spec, BuildSpec(f));
  EXPECT_EQ(spec.name(), "chapter");
  EXPECT_EQ(spec.max_slots(), 1u);
  EXPECT_EQ(spec.exec(), v1::EXEC_MODE_PROCESS);
  EXPECT_EQ(spec.max_attempts(), 5u);
  EXPECT_TRUE(spec.speculate());
  EXPECT_EQ(spec.task_timeout().nanos(), 250'000'000);
  f.exec = "thread";
  f.task_timeout = "soon";
  EXPECT_THAT(BuildSpec(f), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--task-timeout")));
}

}  // namespace
}  // namespace busyfleet::coordctl
