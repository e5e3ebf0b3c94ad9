#ifndef BUSYFLEET_TESTS_TESTING_PROTO_TIME_H_
#define BUSYFLEET_TESTS_TESTING_PROTO_TIME_H_

// Timestamps and Durations written as their two fields, for tests.

#include <cstdint>

#include "google/protobuf/duration.pb.h"
#include "google/protobuf/timestamp.pb.h"

namespace busyfleet::testing {

template <typename Proto>
Proto MakeSecondsNanos(int64_t seconds, int32_t nanos) {
  Proto proto;
  proto.set_seconds(seconds);
  proto.set_nanos(nanos);
  return proto;
}
inline constexpr auto Ts = MakeSecondsNanos<google::protobuf::Timestamp>;
inline constexpr auto Dur = MakeSecondsNanos<google::protobuf::Duration>;

}  // namespace busyfleet::testing

#endif  // BUSYFLEET_TESTS_TESTING_PROTO_TIME_H_
