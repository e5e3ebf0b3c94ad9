#ifndef BUSYFLEET_COMMON_RPC_CLIENT_SECURITY_H_
#define BUSYFLEET_COMMON_RPC_CLIENT_SECURITY_H_

// The token and TLS flags shared by the two clients (worker, coordctl).

#include <memory>
#include <string>

#include <CLI/CLI.hpp>
#include <grpcpp/grpcpp.h>

#include "absl/status/statusor.h"

namespace busyfleet {

// What a client needs to reach a secured coordinator.
struct ClientSecurity {
  std::string token;  // empty: send none
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  // Expected name in the server's certificate when it differs from the
  // dialled host (an IP address, a tunnel); empty: the dialled host.
  std::string tls_server_name;

  // Applies tls_server_name to channel arguments.
  void Apply(grpc::ChannelArguments& args) const;
  // Adds the token to a call.
  void Apply(grpc::ClientContext& ctx) const;
};

struct ClientSecurityFlags {
  std::string token_file;
  std::string tls_ca;
  std::string tls_cert;
  std::string tls_key;
  std::string tls_server_name;

  // --token-file, --tls-ca, --tls-cert, --tls-key, --tls-server-name.
  void AddTo(CLI::App& app);
  // Reads the files. InvalidArgument naming the flag and path on failure.
  absl::StatusOr<ClientSecurity> Load() const;
};

}  // namespace busyfleet

#endif  // BUSYFLEET_COMMON_RPC_CLIENT_SECURITY_H_
