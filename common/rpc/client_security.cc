#include "common/rpc/client_security.h"

#include "common/rpc/auth.h"
#include "common/status_macros.h"
#include "common/rpc/tls.h"

namespace busyfleet {

void ClientSecurity::Apply(grpc::ChannelArguments& args) const {
  if (!tls_server_name.empty()) args.SetSslTargetNameOverride(tls_server_name);
}

void ClientSecurity::Apply(grpc::ClientContext& ctx) const {
  if (!token.empty()) ctx.AddMetadata("authorization", BearerValue(token));
}

void ClientSecurityFlags::AddTo(CLI::App& app) {
  app.add_option("--token-file", token_file, "file holding the bearer token to present");
  app.add_option("--tls-ca", tls_ca, "PEM CA certificate to verify the coordinator (enables TLS)");
  app.add_option("--tls-cert", tls_cert, "PEM client certificate, for mutual TLS");
  app.add_option("--tls-key", tls_key, "PEM private key of --tls-cert");
  app.add_option("--tls-server-name", tls_server_name,
                 "name expected in the coordinator's certificate when it differs from the dialled host");
}

absl::StatusOr<ClientSecurity> ClientSecurityFlags::Load() const {
  ClientSecurity s;
  if (!token_file.empty()) {
    BF_ASSIGN_OR_RETURN(s.token, ReadTokenFile("--token-file", token_file));
  }
  BF_ASSIGN_OR_RETURN(s.credentials, MakeChannelCredentials(tls_ca, tls_cert, tls_key));
  s.tls_server_name = tls_server_name;
  return s;
}

}  // namespace busyfleet
