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
  decision.transport = flags.tls_cert.empty() ? "plaintext" : (flags.tls_client_ca.empty() ? "TLS" : "mutual TLS");
  const bool secured = decision.tokens || !flags.tls_cert.empty();
  for (size_t i = 0; i < listeners.size(); ++i) {
    const Listener& l = listeners[i];
    if (IsLoopbackHost(hosts[i]) || secured) continue;
    if (!flags.insecure) {
      decision.refusal = absl::StrCat("refusing to listen on ", l.address, " (", l.flag,
                                      ") without authentication: only loopback addresses are safe without a "
                                      "token or TLS. Pass --insecure to do it anyway.");
      break;
    }
    decision.warnings.push_back(absl::StrCat("INSECURE: serving ", l.address, " (", l.flag,
                                             ") with no authentication; anyone who can reach this port can ",
                                             Exposed(l)));
  }
  return decision;
}

}  // namespace busyfleet::coordinator
