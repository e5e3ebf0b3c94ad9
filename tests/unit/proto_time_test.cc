#include "busyfleet/proto_time.h"

#include <cstdint>

#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "tests/testing/proto_time.h"

namespace busyfleet {
namespace {

// 2026-11-26T02:33:56Z (`date -u -d @1795660436`).
constexpr int64_t kSubmitSeconds = 1795660436;

using ::busyfleet::testing::Dur;
using ::busyfleet::testing::Ts;

TEST(ProtoTimeTest, TimestampRoundTripsThroughAbsl) {
  const absl::Time t = absl::FromUnixSeconds(kSubmitSeconds) +
                       absl::Nanoseconds(123456789);
  const google::protobuf::Timestamp ts = ToProtoTimestamp(t);
  EXPECT_EQ(ts.seconds(), kSubmitSeconds);
  EXPECT_EQ(ts.nanos(), 123456789);
  EXPECT_EQ(ToAbslTime(ts), t);
  EXPECT_FALSE(IsUnset(ts));
}

TEST(ProtoTimeTest, TimestampsBefore1970KeepNanosPositive) {
  const google::protobuf::Timestamp ts =
      ToProtoTimestamp(absl::UnixEpoch() - absl::Milliseconds(1500));
  EXPECT_EQ(ts.seconds(), -2);
  EXPECT_EQ(ts.nanos(), 500000000);
  EXPECT_EQ(ToAbslTime(ts), absl::UnixEpoch() - absl::Milliseconds(1500));
}

TEST(ProtoTimeTest, UnsetAndInfiniteTimestamps) {
  EXPECT_TRUE(IsUnset(google::protobuf::Timestamp()));
  EXPECT_FALSE(IsUnset(Ts(0, 1)));
  EXPECT_FALSE(IsUnset(Ts(-1, 0)));
  EXPECT_EQ(ToAbslTime(google::protobuf::Timestamp()), absl::UnixEpoch());
  EXPECT_TRUE(IsUnset(ToProtoTimestamp(absl::InfinitePast())));
  EXPECT_TRUE(IsUnset(ToProtoTimestamp(absl::InfiniteFuture())));
}

TEST(ProtoTimeTest, DurationsConvertBothWays) {
  EXPECT_DOUBLE_EQ(ToDoubleSeconds(Dur(2, 500000000)), 2.5);
  EXPECT_DOUBLE_EQ(ToDoubleSeconds(Dur(0, 0)), 0);
  EXPECT_DOUBLE_EQ(ToDoubleSeconds(Dur(-1, -250000000)), -1.25);
  EXPECT_EQ(ToAbslDuration(Dur(2, 500000000)), absl::Milliseconds(2500));
  EXPECT_EQ(ToAbslDuration(Dur(-1, -250000000)), absl::Milliseconds(-1250));

  const google::protobuf::Duration d = ToProtoDuration(absl::Milliseconds(2500));
  EXPECT_EQ(d.seconds(), 2);
  EXPECT_EQ(d.nanos(), 500000000);
  const google::protobuf::Duration n =
      ToProtoDuration(absl::Milliseconds(-1250));
  EXPECT_EQ(n.seconds(), -1);  // same sign for seconds and nanos
  EXPECT_EQ(n.nanos(), -250000000);
  const google::protobuf::Duration z = ToProtoDuration(absl::ZeroDuration());
  EXPECT_EQ(z.seconds(), 0);
  EXPECT_EQ(z.nanos(), 0);
}

TEST(ProtoTimeTest, InfiniteDurationsClampToTheProtoRange) {
  const google::protobuf::Duration up = ToProtoDuration(absl::InfiniteDuration());
  EXPECT_EQ(up.seconds(), 315576000000);
  EXPECT_EQ(up.nanos(), 0);
  const google::protobuf::Duration down =
      ToProtoDuration(-absl::InfiniteDuration());
  EXPECT_EQ(down.seconds(), -315576000000);
  EXPECT_EQ(down.nanos(), 0);
}

}  // namespace
}  // namespace busyfleet
