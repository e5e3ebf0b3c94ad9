#include "coordinator/server/security_policy.h"

#include "absl/strings/str_cat.h"
#include "common/net.h"
#include "common/status_macros.h"

namespace busyfleet::coordinator {
namespace {

struct Listener {
  absl::string_view flag;
  const std::string& address;
};

// What anyone who can reach the listener's port can do without protection.
absl::string_view Exposed(const Listener& l) {
  return l.flag == "--listen" ? "run jobs on your workers and read every report" : "read every report and worker";
}

constexpr absl::string_view kAddAuth =
    "Add tokens (--worker-token-file and --client-token-file, or --token-file) or mutual TLS (--tls-client-ca)";

std::string Refusal(const Listener& l, bool tls) {
  if (tls) {
    return absl::StrCat("refusing to listen on ", l.address, " (", l.flag,
                        ") with TLS alone: TLS without client certificates authenticates only the server, so "
                        "anyone who can reach this port could ",
                        Exposed(l), ". ", kAddAuth, ", or pass --insecure to do it anyway.");
  }
  return absl::StrCat("refusing to listen on ", l.address, " (", l.flag,
                      ") without authentication: only loopback addresses are safe without it. ", kAddAuth,
                      " with TLS (--tls-cert, --tls-key), or pass --insecure to do it anyway.");
}

std::string InsecureWarning(const Listener& l, bool tls) {
  return absl::StrCat("INSECURE: serving ", l.address, " (", l.flag, ") with ",
                      tls ? "TLS but no client authentication" : "no authentication",
                      "; anyone who can reach this port can ", Exposed(l));
}

std::string CleartextWarning(const Listener& l) {
  return absl::StrCat("CLEARTEXT: tokens cross the network unencrypted on ", l.address, " (", l.flag,
                      "); anyone on the path can read and reuse them. Add --tls-cert and --tls-key.");
}

}  // namespace

absl::StatusOr<SecurityDecision> DecideSecurity(const DaemonFlags& flags) {
  std::vector<Listener> listeners = {{"--listen", flags.listen}};
  if (!flags.http_listen.empty()) listeners.push_back({"--http-listen", flags.http_listen});
  std::vector<std::string> hosts;
  for (const Listener& l : listeners) {
    BF_ASSIGN_OR_RETURN(std::string host, HostOfAddress(l.flag, l.address));
    hosts.push_back(std::move(host));
  }
  if (!flags.token_file.empty() && !flags.worker_token_file.empty() && !flags.client_token_file.empty()) {
    return absl::InvalidArgumentError(
        "--token-file would be ignored: --worker-token-file and --client-token-file are both given");
  }
  SecurityDecision decision;
  decision.tokens =
      !flags.token_file.empty() || !flags.worker_token_file.empty() || !flags.client_token_file.empty();
  const bool tls = !flags.tls_cert.empty();
  const bool mutual_tls = tls && !flags.tls_client_ca.empty();
  decision.transport = tls ? (mutual_tls ? "mutual TLS" : "TLS") : "plaintext";
  const bool clients_authenticated = decision.tokens || mutual_tls;
  for (size_t i = 0; i < listeners.size(); ++i) {
    const Listener& l = listeners[i];
    if (IsLoopbackHost(hosts[i])) continue;
    if (clients_authenticated) {
      if (decision.tokens && !tls) decision.warnings.push_back(CleartextWarning(l));
      continue;
    }
    if (!flags.insecure) {
      decision.refusal = Refusal(l, tls);
      break;
    }
    decision.warnings.push_back(InsecureWarning(l, tls));
  }
  return decision;
}

}  // namespace busyfleet::coordinator
