#include "coordinator/ctl/exit_codes.h"

#include "absl/status/status.h"
#include "gtest/gtest.h"

namespace busyfleet::coordctl {
namespace {

TEST(ExitCodeTest, ValuesScriptsDependOn) {
  EXPECT_EQ(kExitOk, 0);
  EXPECT_EQ(kExitFailed, 1);
  EXPECT_EQ(kExitUsage, 2);
  EXPECT_EQ(kExitUnavailable, 3);
}

TEST(ExitCodeForTest, OkIsZero) { EXPECT_EQ(ExitCodeFor(absl::OkStatus()), kExitOk); }

TEST(ExitCodeForTest, UnreachableOrRefusedCredentialsAreThree) {
  EXPECT_EQ(ExitCodeFor(absl::UnavailableError("down")), kExitUnavailable);
  EXPECT_EQ(ExitCodeFor(absl::DeadlineExceededError("slow")), kExitUnavailable);
  EXPECT_EQ(ExitCodeFor(absl::UnauthenticatedError("no token")), kExitUnavailable);
  EXPECT_EQ(ExitCodeFor(absl::PermissionDeniedError("worker token")), kExitUnavailable);
}

TEST(ExitCodeForTest, BadRequestsAreTwo) {
  EXPECT_EQ(ExitCodeFor(absl::InvalidArgumentError("tasks")), kExitUsage);
  EXPECT_EQ(ExitCodeFor(absl::NotFoundError("job")), kExitUsage);
  EXPECT_EQ(ExitCodeFor(absl::FailedPreconditionError("ended")), kExitUsage);
  EXPECT_EQ(ExitCodeFor(absl::AlreadyExistsError("name")), kExitUsage);
  EXPECT_EQ(ExitCodeFor(absl::OutOfRangeError("offset")), kExitUsage);
}

TEST(ExitCodeForTest, AnythingElseIsOne) {
  EXPECT_EQ(ExitCodeFor(absl::ResourceExhaustedError("queue")), kExitFailed);
  EXPECT_EQ(ExitCodeFor(absl::InternalError("bug")), kExitFailed);
  EXPECT_EQ(ExitCodeFor(absl::AbortedError("bench")), kExitFailed);
  EXPECT_EQ(ExitCodeFor(absl::UnknownError("?")), kExitFailed);
}

}  // namespace
}  // namespace busyfleet::coordctl
