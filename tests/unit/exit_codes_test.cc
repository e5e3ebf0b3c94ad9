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

TEST(ExitCodeForTest, MapsEveryStatusCode) {
  const struct {
    absl::StatusCode code;
    ExitCode exit;
  } cases[] = {
      {absl::StatusCode::kOk, kExitOk},
      // Unreachable in time, or our credentials refused.
      {absl::StatusCode::kUnavailable, kExitUnavailable},
      {absl::StatusCode::kDeadlineExceeded, kExitUnavailable},
      {absl::StatusCode::kUnauthenticated, kExitUnavailable},
      {absl::StatusCode::kPermissionDenied, kExitUnavailable},
      // A bad request.
      {absl::StatusCode::kInvalidArgument, kExitUsage},
      {absl::StatusCode::kNotFound, kExitUsage},
      {absl::StatusCode::kFailedPrecondition, kExitUsage},
      {absl::StatusCode::kAlreadyExists, kExitUsage},
      {absl::StatusCode::kOutOfRange, kExitUsage},
      // Anything else.
      {absl::StatusCode::kResourceExhausted, kExitFailed},
      {absl::StatusCode::kInternal, kExitFailed},
      {absl::StatusCode::kAborted, kExitFailed},
      {absl::StatusCode::kUnknown, kExitFailed},
      {absl::StatusCode::kCancelled, kExitFailed},
      {absl::StatusCode::kUnimplemented, kExitFailed},
      {absl::StatusCode::kDataLoss, kExitFailed},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(ExitCodeFor(absl::Status(c.code, "x")), c.exit) << absl::StatusCodeToString(c.code);
  }
}

}  // namespace
}  // namespace busyfleet::coordctl
