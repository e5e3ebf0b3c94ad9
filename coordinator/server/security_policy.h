#ifndef BUSYFLEET_COORDINATOR_SERVER_SECURITY_POLICY_H_
#define BUSYFLEET_COORDINATOR_SERVER_SECURITY_POLICY_H_

// Which listen addresses the daemon may serve with which protection
// (README, "Security"): loopback addresses are safe as they are; any other
// address wants its clients authenticated — tokens, or mutual TLS — or
// --insecure, which serves it with a loud warning. TLS alone authenticates
// only the server and counts as no authentication. Tokens without TLS are
// served with a warning: they cross the network in clear text. Pure: reads
// no file and logs nothing, so unit tests reach every rule.
//
// The HTTP listener follows the same flags: with tokens it wants a viewer
// or client token (or a login session); with mutual TLS it serves HTTPS
// that requires a client certificate from the same CA, so mTLS alone
// protects it as it protects gRPC (a browser then needs that certificate).

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "coordinator/server/daemon_options.h"

namespace busyfleet::coordinator {

struct SecurityDecision {
  // Workers and clients must present tokens: a token file was given. (Once
  // BuildServerOptions has read the files this is its authenticator's
  // enabled(): a token file is never empty, and the roles come in pairs.)
  bool tokens = false;
  // "plaintext", "TLS" (--tls-cert) or "mutual TLS" (and --tls-client-ca).
  std::string transport;
  // Non-empty: the daemon must not start; log this and exit 2. It is
  // reported after the token and TLS files are read (BuildServerOptions),
  // so that their errors come first.
  std::string refusal;
  // Lines to log as warnings: with --insecure an INSECURE line for each
  // listener open to the network without client authentication; a
  // CLEARTEXT line for each one open to the network with tokens but no TLS.
  std::vector<std::string> warnings;
};

// Decides as follows, in this order (the first error wins):
//   --listen or a non-empty --http-listen without a port -> InvalidArgument
//   --token-file with both --worker-token-file and --client-token-file
//     (it would be ignored)                              -> InvalidArgument
//   each listener (--listen, then --http-listen unless empty):
//     loopback host (127.0.0.0/8, ::1, localhost)        -> served
//     a token file and --tls-cert                        -> served
//     a token file without --tls-cert                    -> served, CLEARTEXT warning
//     --tls-cert with --tls-client-ca (mutual TLS)       -> served
//     else (nothing, or TLS alone) with --insecure       -> served, INSECURE warning
//     else                                               -> refusal naming the flags to add (the first)
// (--tls-key or --tls-client-ca without --tls-cert protect nothing; the
// server credentials refuse that half configuration.)
absl::StatusOr<SecurityDecision> DecideSecurity(const DaemonFlags& flags);

}  // namespace busyfleet::coordinator

#endif  // BUSYFLEET_COORDINATOR_SERVER_SECURITY_POLICY_H_
