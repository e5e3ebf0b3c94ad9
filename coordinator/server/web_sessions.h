#ifndef BUSYFLEET_COORDINATOR_SERVER_WEB_SESSIONS_H_
#define BUSYFLEET_COORDINATOR_SERVER_WEB_SESSIONS_H_

// The status page's logins (README, "Security"): a server-side table of
// session ids, each with the role its token had and when it expires, and a
// per-address limit on failed logins. Thread-safe; no sockets, no logging.
// Time is the injected clock's monotonic time, so a wall-clock step neither
// ends nor prolongs a session.

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/rpc/auth.h"

namespace busyfleet::coordinator {

// 32 random bytes from the kernel's CSPRNG (getrandom(2)) as 64 lowercase
// hex digits. Internal if the kernel gives none.
absl::StatusOr<std::string> RandomSessionId();

class SessionStore {
 public:
  struct Options {
    absl::Duration ttl = absl::Hours(12);
    // Beyond this many live sessions the oldest is dropped.
    int max_sessions = 1000;
    const Clock* clock = nullptr;  // nullptr: the real clock
  };
  explicit SessionStore(Options options);

  // A new session for `role`; its id is the cookie's value. Internal if no
  // random id could be made.
  absl::StatusOr<std::string> Create(Role role);
  // The session's role, or nullopt for an unknown or expired id (an expired
  // one is forgotten).
  std::optional<Role> Lookup(absl::string_view id);
  // Forgets the session (logout); an unknown id is fine.
  void Remove(absl::string_view id);
  // Live sessions (tests, metrics).
  int size() const;

 private:
  struct Session {
    Role role;
    MonoTime created;
    MonoTime expires;
  };
  void DropExpiredLocked(MonoTime now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Options options_;
  const Clock* const clock_;
  mutable absl::Mutex mu_;
  std::map<std::string, Session, std::less<>> sessions_ ABSL_GUARDED_BY(mu_);
};

// Failed logins per source address: a token bucket of `burst` failures
// that refills one every `refill`. While an address's bucket is empty every
// login from it is refused before its token is looked at.
class LoginLimiter {
 public:
  struct Options {
    int burst = 5;
    absl::Duration refill = absl::Seconds(12);  // 5 a minute
    // Addresses remembered; beyond it, full buckets are forgotten first,
    // then the longest untouched.
    int max_addresses = 10000;
    const Clock* clock = nullptr;  // nullptr: the real clock
  };
  explicit LoginLimiter(Options options);

  // True when `address` may try a login now; otherwise `*retry_after` says
  // how long until it may.
  bool Allow(absl::string_view address, absl::Duration* retry_after);
  // A login from `address` failed: it costs one token.
  void Failed(absl::string_view address);

 private:
  struct Bucket {
    double tokens;
    MonoTime updated;
  };
  // The bucket refilled up to `now`.
  Bucket& RefilledLocked(absl::string_view address, MonoTime now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ForgetSomeLocked(MonoTime now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Options options_;
  const Clock* const clock_;
  absl::Mutex mu_;
  std::map<std::string, Bucket, std::less<>> buckets_ ABSL_GUARDED_BY(mu_);
};

}  // namespace busyfleet::coordinator

#endif  // BUSYFLEET_COORDINATOR_SERVER_WEB_SESSIONS_H_
