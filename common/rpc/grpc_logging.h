#ifndef BUSYFLEET_COMMON_RPC_GRPC_LOGGING_H_
#define BUSYFLEET_COMMON_RPC_GRPC_LOGGING_H_

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace busyfleet {

// SetupLogging (common/logging.h), and gRPC's own log lines routed through
// the same logger (as "grpc: ...", rate-limited to 10 at once and then one a
// second, so a flood of failed TLS handshakes cannot fill the disk).
absl::Status SetupGrpcLogging(absl::string_view component, absl::string_view format,
                              absl::string_view level = "info");

}  // namespace busyfleet

#endif  // BUSYFLEET_COMMON_RPC_GRPC_LOGGING_H_
