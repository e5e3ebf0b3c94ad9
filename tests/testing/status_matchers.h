#ifndef BUSYFLEET_TESTS_TESTING_STATUS_MATCHERS_H_
#define BUSYFLEET_TESTS_TESTING_STATUS_MATCHERS_H_

// Abseil 20220623 ships no status matchers; these are ours.

#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace busyfleet::testing {

inline const absl::Status& GetStatus(const absl::Status& s) { return s; }
template <typename T>
const absl::Status& GetStatus(const absl::StatusOr<T>& s) {
  return s.status();
}

// EXPECT_THAT(status_or_statusor, StatusIs(absl::StatusCode::kNotFound, HasSubstr("job")))
MATCHER_P2(StatusIs, code, message_matcher, "") {
  const absl::Status& s = ::busyfleet::testing::GetStatus(arg);
  *result_listener << "status is " << s;
  return s.code() == code &&
         ::testing::ExplainMatchResult(message_matcher, std::string(s.message()), result_listener);
}

}  // namespace busyfleet::testing

#define BF_TESTING_CONCAT_INNER_(a, b) a##b
#define BF_TESTING_CONCAT_(a, b) BF_TESTING_CONCAT_INNER_(a, b)

#define ASSERT_OK(expr) ASSERT_TRUE(::busyfleet::testing::GetStatus(expr).ok()) \
    << ::busyfleet::testing::GetStatus(expr)
#define EXPECT_OK(expr) EXPECT_TRUE(::busyfleet::testing::GetStatus(expr).ok()) \
    << ::busyfleet::testing::GetStatus(expr)

// ASSERT_OK_AND_ASSIGN(auto x, FunctionReturningStatusOr());
#define ASSERT_OK_AND_ASSIGN(lhs, expr) \
  ASSERT_OK_AND_ASSIGN_IMPL_(BF_TESTING_CONCAT_(bf_statusor_, __LINE__), lhs, expr)
#define ASSERT_OK_AND_ASSIGN_IMPL_(var, lhs, expr)   \
  auto var = (expr);                                 \
  ASSERT_TRUE(var.ok()) << var.status();             \
  lhs = std::move(var).value()

#endif  // BUSYFLEET_TESTS_TESTING_STATUS_MATCHERS_H_
