#ifndef BUSYFLEET_COMMON_RPC_KEEPALIVE_H_
#define BUSYFLEET_COMMON_RPC_KEEPALIVE_H_

// Settings both ends of the Attach stream must agree on.

#include "absl/time/time.h"

namespace busyfleet {

// Client pings this often on an idle connection; the server permits it.
inline constexpr absl::Duration kKeepaliveTime = absl::Seconds(20);
inline constexpr absl::Duration kKeepaliveTimeout = absl::Seconds(10);
// Largest gRPC message either side accepts.
inline constexpr int kMaxMessageBytes = 16 * 1024 * 1024;

}  // namespace busyfleet

#endif  // BUSYFLEET_COMMON_RPC_KEEPALIVE_H_
