#ifndef BUSYFLEET_COMMON_NET_H_
#define BUSYFLEET_COMMON_NET_H_

#include <cstdint>
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

// Raises this process's soft limit on open files (RLIMIT_NOFILE) to its
// hard limit, as Nomad and Consul do: every attached worker is a socket,
// and distributions start daemons with a soft limit of 1,024. Returns the
// soft limit now in force.
uint64_t RaiseOpenFileLimit();

}  // namespace busyfleet

#endif  // BUSYFLEET_COMMON_NET_H_
