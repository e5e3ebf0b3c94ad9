#ifndef BUSYFLEET_COMMON_RPC_TLS_H_
#define BUSYFLEET_COMMON_RPC_TLS_H_

// TLS and mutual TLS credentials from PEM files.

#include <memory>
#include <string>

#include <grpcpp/security/credentials.h>
#include <grpcpp/security/server_credentials.h>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace busyfleet {

// Reads a whole PEM file. InvalidArgument naming `flag` and the path when it
// cannot be read or holds no PEM block.
absl::StatusOr<std::string> ReadPemFile(absl::string_view flag, const std::string& path);

// Server side: insecure when cert and key are both empty; TLS with them;
// mutual TLS (client certificates required and verified against `client_ca`)
// when client_ca is set too. InvalidArgument for half a configuration.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const std::string& cert, const std::string& key, const std::string& client_ca);

// Client side: insecure when all three are empty; TLS verifying the server
// against `ca` (the system roots when empty); with cert and key, a client
// certificate for mutual TLS.
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> MakeChannelCredentials(
    const std::string& ca, const std::string& cert, const std::string& key);

}  // namespace busyfleet

#endif  // BUSYFLEET_COMMON_RPC_TLS_H_
