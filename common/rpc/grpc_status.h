#ifndef BUSYFLEET_COMMON_RPC_GRPC_STATUS_H_
#define BUSYFLEET_COMMON_RPC_GRPC_STATUS_H_

// The one mapping between absl::Status (domain) and grpc::Status (wire).

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace busyfleet {

grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);

}  // namespace busyfleet

#endif  // BUSYFLEET_COMMON_RPC_GRPC_STATUS_H_
