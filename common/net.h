#ifndef BUSYFLEET_COMMON_NET_H_
#define BUSYFLEET_COMMON_NET_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace busyfleet {

// The host part of "host:port", "[v6]:port" or a unix: target. InvalidArgument
// naming `field` when there is no port.
absl::StatusOr<std::string> HostOfAddress(absl::string_view field, absl::string_view address);

// Whether `host` can only be reached from this machine: 127.0.0.0/8,
// ::1 or "localhost".
bool IsLoopbackHost(absl::string_view host);

}  // namespace busyfleet

#endif  // BUSYFLEET_COMMON_NET_H_
