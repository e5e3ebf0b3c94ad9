#ifndef BUSYFLEET_COMMON_RPC_AUTH_H_
#define BUSYFLEET_COMMON_RPC_AUTH_H_

// Bearer tokens: reading token files, and the one check every busyfleet
// service runs before doing anything.

#include <cstdint>
#include <map>
#include <string>

#include <grpcpp/support/string_ref.h>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/logging.h"

namespace busyfleet {

// What a call needs. A worker token may only attach as a worker; a viewer
// token may only read (get, watch and list jobs, list workers, health, the
// HTTP status page and /metrics); a client token may do all a viewer may,
// and submit, cancel and drain. Every call that is not explicitly read-only
// checks kClient.
enum class Role { kWorker, kClient, kViewer };

// "worker", "client" or "viewer" (log lines).
absl::string_view RoleName(Role role);

// Reads a token file: its content with surrounding white space removed.
// InvalidArgument naming `flag` and the path when it cannot be read or is
// empty — never a silent fallback to no authentication.
absl::StatusOr<std::string> ReadTokenFile(absl::string_view flag, const std::string& path);

// Compares in time that depends only on the lengths, not on where the
// strings differ.
bool ConstantTimeEquals(absl::string_view a, absl::string_view b);

// The "authorization" metadata value for a token.
std::string BearerValue(absl::string_view token);

// Checks the bearer token of a call against the configured tokens. With no
// tokens configured every call passes. Thread-safe.
class TokenAuthenticator {
 public:
  // Both tokens must be given (they may be equal), or neither. A viewer
  // token is optional, and only allowed beside them (InvalidArgument).
  static absl::StatusOr<TokenAuthenticator> Create(std::string worker_token, std::string client_token,
                                                   std::string viewer_token = "");
  TokenAuthenticator() = default;

  bool enabled() const { return !worker_token_.empty(); }

  // OK, Unauthenticated (no or unknown token) or PermissionDenied (a valid
  // token of the other role). Messages never contain the token.
  absl::Status Check(Role role, const std::multimap<grpc::string_ref, grpc::string_ref>& metadata) const;
  // The same for one authorization value ("Bearer <token>"; nullptr: none
  // was sent), e.g. an HTTP Authorization header.
  absl::Status CheckAuthorization(Role role, const absl::string_view* value) const;
  // The same for a bare token (e.g. typed into the status page's login
  // form).
  absl::Status CheckToken(Role role, absl::string_view token) const;

 private:
  std::string worker_token_;
  std::string client_token_;
  std::string viewer_token_;  // empty: no viewer role
};

}  // namespace busyfleet

#endif  // BUSYFLEET_COMMON_RPC_AUTH_H_
