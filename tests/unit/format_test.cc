// The format helpers every renderer shares (coordinator/report/format.h).
#include "coordinator/report/format.h"

#include <cstdint>
#include <limits>
#include <string>

#include "absl/time/time.h"
#include "busyfleet/v1/coordinator.pb.h"
#include "google/protobuf/timestamp.pb.h"
#include "gtest/gtest.h"
#include "tests/testing/proto_time.h"
#include "nlohmann/json.hpp"

namespace busyfleet::report {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

// 2026-11-26T02:33:56Z (`date -u -d @1795660436`).
constexpr int64_t kSubmitSeconds = 1795660436;

using ::busyfleet::testing::Ts;

// --- Numbers ---

TEST(FormatTest, FixedRoundsToTheDecimalsAndAddsTheSuffix) {
  EXPECT_EQ(Fixed(2.3456, 3), "2.346");
  EXPECT_EQ(Fixed(2.3456, 3, " s"), "2.346 s");
  EXPECT_EQ(Fixed(2.5, 0), "2");  // printf rounds half to even
  EXPECT_EQ(Fixed(3.5, 0), "4");
  EXPECT_EQ(Fixed(0, 3), "0.000");
  EXPECT_EQ(Fixed(-1.25, 1), "-1.2");
  EXPECT_EQ(Fixed(-0.0004, 3), "-0.000");
  EXPECT_EQ(Fixed(1e12, 3), "1000000000000.000");
}

TEST(FormatTest, FixedOfNonFiniteIsADashWithoutSuffix) {
  EXPECT_EQ(Fixed(kNaN, 3), "-");
  EXPECT_EQ(Fixed(kInf, 3, " s"), "-");
  EXPECT_EQ(Fixed(-kInf, 2, "x"), "-");
}

TEST(FormatTest, MultipleAndPercent) {
  EXPECT_EQ(Multiple(1.9696), "1.97x");
  EXPECT_EQ(Multiple(0), "0.00x");
  EXPECT_EQ(Multiple(-0.5), "-0.50x");
  EXPECT_EQ(Multiple(kNaN), "-");
  EXPECT_EQ(Multiple(kInf), "-");
  EXPECT_EQ(Percent(0.9848), "98.5%");
  EXPECT_EQ(Percent(1), "100.0%");
  EXPECT_EQ(Percent(1.778), "177.8%");
  EXPECT_EQ(Percent(-0.25), "-25.0%");
  EXPECT_EQ(Percent(kNaN), "-");
  EXPECT_EQ(Percent(-kInf), "-");
}

TEST(FormatTest, ThousandsGroupsDigits) {
  EXPECT_EQ(Thousands(0), "0");
  EXPECT_EQ(Thousands(999), "999");
  EXPECT_EQ(Thousands(1000), "1,000");
  EXPECT_EQ(Thousands(40000000), "40,000,000");
  EXPECT_EQ(Thousands(std::numeric_limits<uint64_t>::max()),
            "18,446,744,073,709,551,615");
}

TEST(FormatTest, HumanCountCases) {
  EXPECT_EQ(HumanCount(0), "0");
  EXPECT_EQ(HumanCount(7), "7");
  EXPECT_EQ(HumanCount(999), "999");
  EXPECT_EQ(HumanCount(999.4), "999");
  EXPECT_EQ(HumanCount(999.6), "1.00k");
  EXPECT_EQ(HumanCount(1000), "1.00k");
  EXPECT_EQ(HumanCount(12500), "12.5k");
  EXPECT_EQ(HumanCount(999949), "999.9k");
  EXPECT_EQ(HumanCount(999960), "1.00M");
  EXPECT_EQ(HumanCount(10000000), "10.0M");
  EXPECT_EQ(HumanCount(200000000), "200.0M");
  EXPECT_EQ(HumanCount(3.41e9), "3.41G");
  EXPECT_EQ(HumanCount(1.5e12), "1.50T");
  EXPECT_EQ(HumanCount(2e18), "2.00E");
  EXPECT_EQ(HumanCount(5e21), "5000.0E");
  EXPECT_EQ(HumanCount(-12500), "-12.5k");
  EXPECT_EQ(HumanCount(-0.2), "0");
  EXPECT_EQ(HumanCount(std::numeric_limits<double>::quiet_NaN()), "-");
  EXPECT_EQ(HumanCount(std::numeric_limits<double>::infinity()), "-");
}

TEST(FormatTest, JsonNumberIsNullWhenNotFinite) {
  EXPECT_EQ(JsonNumber(1.5), nlohmann::json(1.5));
  EXPECT_EQ(JsonNumber(-2), nlohmann::json(-2.0));
  EXPECT_EQ(JsonNumber(0).dump(), "0.0");
  EXPECT_TRUE(JsonNumber(kNaN).is_null());
  EXPECT_TRUE(JsonNumber(kInf).is_null());
  EXPECT_TRUE(JsonNumber(-kInf).is_null());
}

// --- Durations ---

TEST(FormatTest, ShortDurationPicksTheUnit) {
  EXPECT_EQ(ShortDuration(0), "0.0s");
  EXPECT_EQ(ShortDuration(0.44), "0.4s");
  EXPECT_EQ(ShortDuration(59.94), "59.9s");
  EXPECT_EQ(ShortDuration(59.95), "1m00s");  // would print "60.0s"
  EXPECT_EQ(ShortDuration(192), "3m12s");
  EXPECT_EQ(ShortDuration(3599.4), "59m59s");
  EXPECT_EQ(ShortDuration(3599.5), "1h00m");
  EXPECT_EQ(ShortDuration(2 * 3600 + 5 * 60 + 59), "2h05m");
  EXPECT_EQ(ShortDuration(3 * 86400 + 4 * 3600 + 1), "3d04h");
}

TEST(FormatTest, ShortDurationOfNegativeIsZeroAndOfNonFiniteADash) {
  EXPECT_EQ(ShortDuration(-3), "0.0s");
  EXPECT_EQ(ShortDuration(-kInf), "-");
  EXPECT_EQ(ShortDuration(kInf), "-");
  EXPECT_EQ(ShortDuration(kNaN), "-");
}

// --- Text ---

TEST(FormatTest, PrintableReplacesControlCharactersOnly) {
  EXPECT_EQ(Printable("plain text"), "plain text");
  EXPECT_EQ(Printable("a\tb\nc\rd\x1b[31m\x7f"), "a?b?c?d?[31m?");
  EXPECT_EQ(Printable(std::string("nul\0byte", 8)), "nul?byte");
  EXPECT_EQ(Printable("caf\xC3\xA9 \xE6\x97\xA5\xE6\x9C\xAC"),
            "caf\xC3\xA9 \xE6\x97\xA5\xE6\x9C\xAC");  // UTF-8 passes
  EXPECT_EQ(Printable(""), "");
}

TEST(FormatTest, DisplayWidthCountsCodePoints) {
  EXPECT_EQ(DisplayWidth(""), 0u);
  EXPECT_EQ(DisplayWidth("node-a"), 6u);
  EXPECT_EQ(DisplayWidth("caf\xC3\xA9"), 4u);                 // 2-byte é
  EXPECT_EQ(DisplayWidth("\xE6\x97\xA5\xE6\x9C\xAC"), 2u);    // wide: one each
  EXPECT_EQ(DisplayWidth("\xF0\x9F\x98\x80"), 1u);            // 4-byte emoji
  EXPECT_EQ(DisplayWidth("e\xCC\x81"), 2u);                   // combining mark
  EXPECT_EQ(DisplayWidth("\t\x01"), 2u);  // control characters, as Printable
}

TEST(FormatTest, TruncateTextCutsWholeCodePointsWithDots) {
  EXPECT_EQ(TruncateText("short", 5), "short");
  EXPECT_EQ(TruncateText("longer text", 8), "longe...");
  EXPECT_EQ(TruncateText("abcdef", 3), "abc");  // below 4: no dots
  EXPECT_EQ(TruncateText("abcdef", 0), "");
  EXPECT_EQ(TruncateText("\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E\xE3\x81\xA7",
                         3),
            "\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E");
  EXPECT_EQ(TruncateText("\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9", 4),
            "\xC3\xA9...");
}

// --- Times ---

TEST(FormatTest, Rfc3339FormatsUtcWithMicroseconds) {
  EXPECT_EQ(Rfc3339(Ts(kSubmitSeconds, 123456789)),
            "2026-11-26T02:33:56.123456Z");
  EXPECT_EQ(Rfc3339(Ts(kSubmitSeconds, 0)), "2026-11-26T02:33:56.000000Z");
  EXPECT_EQ(Rfc3339(Ts(1, 0)), "1970-01-01T00:00:01.000000Z");
  EXPECT_EQ(Rfc3339(Ts(0, 1000)), "1970-01-01T00:00:00.000001Z");
}

TEST(FormatTest, Rfc3339OfUnsetTimestampIsEmpty) {
  EXPECT_EQ(Rfc3339(google::protobuf::Timestamp()), "");
  EXPECT_EQ(Rfc3339(Ts(0, 0)), "");
  EXPECT_EQ(Rfc3339Seconds(Ts(0, 0)), "");
}

TEST(FormatTest, Rfc3339SecondsCutsTheFraction) {
  EXPECT_EQ(Rfc3339Seconds(Ts(kSubmitSeconds, 999999999)),
            "2026-11-26T02:33:56Z");
  EXPECT_EQ(Rfc3339Seconds(Ts(-1, 0)), "1969-12-31T23:59:59Z");
}

TEST(FormatTest, AgoIsRelativeToNow) {
  const absl::Time now = absl::FromUnixSeconds(kSubmitSeconds);
  EXPECT_EQ(Ago(Ts(kSubmitSeconds - 1, 600000000), now), "0.4s ago");
  EXPECT_EQ(Ago(Ts(kSubmitSeconds - 192, 0), now), "3m12s ago");
  EXPECT_EQ(Ago(Ts(kSubmitSeconds + 5, 0), now), "0.0s ago");  // clock skew
  EXPECT_EQ(Ago(google::protobuf::Timestamp(), now), "-");
}

// --- Reports ---

TEST(FormatTest, TaskCountFallsBackToTheTaskRows) {
  v1::JobReport r;
  EXPECT_EQ(TaskCount(r), 0u);
  r.add_tasks();
  r.add_tasks();
  EXPECT_EQ(TaskCount(r), 2u);
  r.set_tasks_total(40);
  EXPECT_EQ(TaskCount(r), 40u);
}

}  // namespace
}  // namespace busyfleet::report
