#include "coordinator/server/web_sessions.h"

#include <set>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace busyfleet::coordinator {
namespace {

using ::testing::Eq;
using ::testing::Optional;

TEST(RandomSessionIdTest, Is256BitsOfHexAndNeverRepeats) {
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    ASSERT_OK_AND_ASSIGN(std::string id, RandomSessionId());
    ASSERT_EQ(id.size(), 64u);
    EXPECT_EQ(id.find_first_not_of("0123456789abcdef"), std::string::npos) << id;
    EXPECT_TRUE(seen.insert(id).second) << "repeated " << id;
  }
}

class SessionStoreTest : public ::testing::Test {
 protected:
  SessionStore Store(int max_sessions = 1000) {
    return SessionStore({.ttl = absl::Hours(12), .max_sessions = max_sessions, .clock = &clock_});
  }
  FakeClock clock_;
};

TEST_F(SessionStoreTest, ASessionKeepsItsRoleUntilItExpires) {
  SessionStore store = Store();
  ASSERT_OK_AND_ASSIGN(std::string viewer, store.Create(Role::kViewer));
  ASSERT_OK_AND_ASSIGN(std::string client, store.Create(Role::kClient));
  EXPECT_NE(viewer, client);
  clock_.Advance(absl::Hours(12) - absl::Seconds(1));
  EXPECT_THAT(store.Lookup(viewer), Optional(Eq(Role::kViewer)));
  EXPECT_THAT(store.Lookup(client), Optional(Eq(Role::kClient)));
  clock_.Advance(absl::Seconds(1));
  EXPECT_EQ(store.Lookup(viewer), std::nullopt);
  EXPECT_EQ(store.Lookup(client), std::nullopt);
  EXPECT_EQ(store.size(), 0);
}

TEST_F(SessionStoreTest, AWallClockStepNeitherEndsNorProlongsASession) {
  SessionStore store = Store();
  ASSERT_OK_AND_ASSIGN(std::string id, store.Create(Role::kViewer));
  clock_.StepWall(absl::Hours(24));
  EXPECT_THAT(store.Lookup(id), Optional(Eq(Role::kViewer)));
  clock_.StepWall(-absl::Hours(48));
  clock_.Advance(absl::Hours(12));
  EXPECT_EQ(store.Lookup(id), std::nullopt);
}

TEST_F(SessionStoreTest, UnknownIdsAndLoggedOutSessionsGiveNothing) {
  SessionStore store = Store();
  ASSERT_OK_AND_ASSIGN(std::string id, store.Create(Role::kClient));
  EXPECT_EQ(store.Lookup(""), std::nullopt);
  EXPECT_EQ(store.Lookup(id.substr(1)), std::nullopt);
  store.Remove(id);
  store.Remove(id);  // twice is fine
  EXPECT_EQ(store.Lookup(id), std::nullopt);
}

TEST_F(SessionStoreTest, BeyondTheCapTheOldestSessionIsDropped) {
  SessionStore store = Store(/*max_sessions=*/3);
  std::vector<std::string> ids;
  for (int i = 0; i < 4; ++i) {
    ASSERT_OK_AND_ASSIGN(std::string id, store.Create(Role::kViewer));
    ids.push_back(id);
    clock_.Advance(absl::Seconds(1));
  }
  EXPECT_EQ(store.size(), 3);
  EXPECT_EQ(store.Lookup(ids[0]), std::nullopt);
  for (int i = 1; i < 4; ++i) EXPECT_TRUE(store.Lookup(ids[i]).has_value()) << i;
}

TEST_F(SessionStoreTest, ExpiredSessionsAreForgottenBeforeTheCapDropsALiveOne) {
  SessionStore store = Store(/*max_sessions=*/2);
  ASSERT_OK_AND_ASSIGN(std::string old, store.Create(Role::kViewer));
  clock_.Advance(absl::Hours(6));
  ASSERT_OK_AND_ASSIGN(std::string live, store.Create(Role::kViewer));
  clock_.Advance(absl::Hours(6));  // `old` expires now
  ASSERT_OK_AND_ASSIGN(std::string fresh, store.Create(Role::kViewer));
  EXPECT_TRUE(store.Lookup(live).has_value());
  EXPECT_TRUE(store.Lookup(fresh).has_value());
}

class LoginLimiterTest : public ::testing::Test {
 protected:
  LoginLimiter Limiter(int max_addresses = 100) {
    return LoginLimiter(
        {.burst = 3, .refill = absl::Seconds(10), .max_addresses = max_addresses, .clock = &clock_});
  }
  FakeClock clock_;
  absl::Duration retry_after_ = absl::ZeroDuration();
};

TEST_F(LoginLimiterTest, AnAddressMayFailBurstTimesThenWaitsForARefill) {
  LoginLimiter limiter = Limiter();
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(limiter.Allow("10.0.0.1", &retry_after_)) << i;
    limiter.Failed("10.0.0.1");
  }
  EXPECT_FALSE(limiter.Allow("10.0.0.1", &retry_after_));
  EXPECT_EQ(retry_after_, absl::Seconds(10));
  clock_.Advance(absl::Seconds(4));
  EXPECT_FALSE(limiter.Allow("10.0.0.1", &retry_after_));
  EXPECT_EQ(retry_after_, absl::Seconds(6));
  clock_.Advance(absl::Seconds(6));
  EXPECT_TRUE(limiter.Allow("10.0.0.1", &retry_after_));
  limiter.Failed("10.0.0.1");
  EXPECT_FALSE(limiter.Allow("10.0.0.1", &retry_after_));
}

TEST_F(LoginLimiterTest, AddressesHaveBucketsOfTheirOwn) {
  LoginLimiter limiter = Limiter();
  for (int i = 0; i < 3; ++i) limiter.Failed("10.0.0.1");
  EXPECT_FALSE(limiter.Allow("10.0.0.1", &retry_after_));
  EXPECT_TRUE(limiter.Allow("10.0.0.2", &retry_after_));
}

TEST_F(LoginLimiterTest, SuccessfulLoginsCostNothing) {
  LoginLimiter limiter = Limiter();
  for (int i = 0; i < 100; ++i) EXPECT_TRUE(limiter.Allow("10.0.0.1", &retry_after_));
}

TEST_F(LoginLimiterTest, ForgettingAddressesNeverForgetsAnEmptyBucketWhileFullOnesRemain) {
  LoginLimiter limiter = Limiter(/*max_addresses=*/2);
  for (int i = 0; i < 3; ++i) limiter.Failed("10.0.0.1");
  EXPECT_TRUE(limiter.Allow("10.0.0.2", &retry_after_));  // full
  EXPECT_TRUE(limiter.Allow("10.0.0.3", &retry_after_));  // forgets .2, not .1
  EXPECT_FALSE(limiter.Allow("10.0.0.1", &retry_after_));
}

}  // namespace
}  // namespace busyfleet::coordinator
