#include "common/rpc/tls.h"

#include <fstream>
#include <sstream>

#include <grpcpp/security/server_credentials.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace busyfleet {

absl::StatusOr<std::string> ReadPemFile(absl::string_view flag, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::InvalidArgumentError(absl::StrCat(flag, ": cannot read ", path));
  std::stringstream buffer;
  buffer << in.rdbuf();
  std::string pem = buffer.str();
  if (!absl::StrContains(pem, "-----BEGIN ")) {
    return absl::InvalidArgumentError(absl::StrCat(flag, ": ", path, " is not a PEM file"));
  }
  return pem;
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const std::string& cert, const std::string& key, const std::string& client_ca) {
  if (cert.empty() && key.empty()) {
    if (!client_ca.empty()) {
      return absl::InvalidArgumentError("--tls-client-ca needs --tls-cert and --tls-key");
    }
    return grpc::InsecureServerCredentials();
  }
  if (cert.empty() || key.empty()) {
    return absl::InvalidArgumentError("give both --tls-cert and --tls-key");
  }
  grpc::SslServerCredentialsOptions options(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  grpc::SslServerCredentialsOptions::PemKeyCertPair pair;
  BF_ASSIGN_OR_RETURN(pair.cert_chain, ReadPemFile("--tls-cert", cert));
  BF_ASSIGN_OR_RETURN(pair.private_key, ReadPemFile("--tls-key", key));
  options.pem_key_cert_pairs.push_back(std::move(pair));
  if (!client_ca.empty()) {
    BF_ASSIGN_OR_RETURN(options.pem_root_certs, ReadPemFile("--tls-client-ca", client_ca));
    options.client_certificate_request = GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
  }
  return grpc::SslServerCredentials(options);
}

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> MakeChannelCredentials(
    const std::string& ca, const std::string& cert, const std::string& key) {
  if (ca.empty() && cert.empty() && key.empty()) return grpc::InsecureChannelCredentials();
  if (cert.empty() != key.empty()) return absl::InvalidArgumentError("give both --tls-cert and --tls-key");
  grpc::SslCredentialsOptions options;
  if (!ca.empty()) {
    BF_ASSIGN_OR_RETURN(options.pem_root_certs, ReadPemFile("--tls-ca", ca));
  }
  if (!cert.empty()) {
    BF_ASSIGN_OR_RETURN(options.pem_cert_chain, ReadPemFile("--tls-cert", cert));
    BF_ASSIGN_OR_RETURN(options.pem_private_key, ReadPemFile("--tls-key", key));
  }
  return grpc::SslCredentials(options);
}

}  // namespace busyfleet
