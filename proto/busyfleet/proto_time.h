#ifndef BUSYFLEET_PROTO_TIME_H_
#define BUSYFLEET_PROTO_TIME_H_

// Conversions between the wire's time types (google.protobuf.Timestamp and
// Duration) and Abseil's, in the message library itself so that every layer
// that reads messages converts their times the same way.

#include <cstdint>

#include "absl/time/time.h"
#include "google/protobuf/duration.pb.h"
#include "google/protobuf/timestamp.pb.h"

namespace busyfleet {

// Durations on the wire stay within protobuf's own range (about 10,000 years).
inline constexpr int64_t kMaxProtoDurationSeconds = 315'576'000'000;

// True for the all-zero Timestamp, which the wire uses for "not set".
bool IsUnset(const google::protobuf::Timestamp& ts);
// The Timestamp as an absl::Time (an unset one is the Unix epoch: check
// IsUnset first where that matters).
absl::Time ToAbslTime(const google::protobuf::Timestamp& ts);
// `t` as a Timestamp; an infinite time gives the unset Timestamp. Times
// before 1970 keep non-negative nanos, as the Timestamp type requires.
google::protobuf::Timestamp ToProtoTimestamp(absl::Time t);
// Seconds as a double: Duration{2, 500000000} -> 2.5.
double ToDoubleSeconds(const google::protobuf::Duration& d);
absl::Duration ToAbslDuration(const google::protobuf::Duration& d);
// `d` as a Duration, clamped to +-kMaxProtoDurationSeconds (infinite
// durations too); seconds and nanos share their sign.
google::protobuf::Duration ToProtoDuration(absl::Duration d);

}  // namespace busyfleet

#endif  // BUSYFLEET_PROTO_TIME_H_
