#include "coordinator/server/web_sessions.h"

#include <sys/random.h>

#include <algorithm>
#include <cerrno>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace busyfleet::coordinator {

absl::StatusOr<std::string> RandomSessionId() {
  unsigned char bytes[32];
  size_t got = 0;
  while (got < sizeof(bytes)) {
    const ssize_t n = getrandom(bytes + got, sizeof(bytes) - got, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return absl::InternalError(absl::StrCat("getrandom failed (errno ", errno, ")"));
    got += static_cast<size_t>(n);
  }
  return absl::BytesToHexString(absl::string_view(reinterpret_cast<const char*>(bytes), sizeof(bytes)));
}

SessionStore::SessionStore(Options options)
    : options_(options), clock_(options.clock != nullptr ? options.clock : Clock::Real()) {}

absl::StatusOr<std::string> SessionStore::Create(Role role) {
  absl::StatusOr<std::string> id = RandomSessionId();
  if (!id.ok()) return id.status();
  const MonoTime now = clock_->Mono();
  absl::MutexLock lock(&mu_);
  DropExpiredLocked(now);
  while (!sessions_.empty() && static_cast<int>(sessions_.size()) >= options_.max_sessions) {
    auto oldest = std::min_element(sessions_.begin(), sessions_.end(), [](const auto& a, const auto& b) {
      return a.second.created < b.second.created;
    });
    sessions_.erase(oldest);
  }
  sessions_[*id] = Session{role, now, now + options_.ttl};
  return id;
}

std::optional<Role> SessionStore::Lookup(absl::string_view id) {
  const MonoTime now = clock_->Mono();
  absl::MutexLock lock(&mu_);
  auto it = sessions_.find(id);
  if (it == sessions_.end()) return std::nullopt;
  if (it->second.expires <= now) {
    sessions_.erase(it);
    return std::nullopt;
  }
  return it->second.role;
}

void SessionStore::Remove(absl::string_view id) {
  absl::MutexLock lock(&mu_);
  auto it = sessions_.find(id);
  if (it != sessions_.end()) sessions_.erase(it);
}

int SessionStore::size() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(sessions_.size());
}

void SessionStore::DropExpiredLocked(MonoTime now) {
  for (auto it = sessions_.begin(); it != sessions_.end();) {
    it = it->second.expires <= now ? sessions_.erase(it) : std::next(it);
  }
}

LoginLimiter::LoginLimiter(Options options)
    : options_(options), clock_(options.clock != nullptr ? options.clock : Clock::Real()) {}

bool LoginLimiter::Allow(absl::string_view address, absl::Duration* retry_after) {
  const MonoTime now = clock_->Mono();
  absl::MutexLock lock(&mu_);
  Bucket& b = RefilledLocked(address, now);
  if (b.tokens >= 1) return true;
  *retry_after = (1 - b.tokens) * options_.refill;
  return false;
}

void LoginLimiter::Failed(absl::string_view address) {
  const MonoTime now = clock_->Mono();
  absl::MutexLock lock(&mu_);
  Bucket& b = RefilledLocked(address, now);
  b.tokens = std::max(0.0, b.tokens - 1);
}

LoginLimiter::Bucket& LoginLimiter::RefilledLocked(absl::string_view address, MonoTime now) {
  auto it = buckets_.find(address);
  if (it == buckets_.end()) {
    if (static_cast<int>(buckets_.size()) >= options_.max_addresses) ForgetSomeLocked(now);
    it = buckets_.emplace(std::string(address), Bucket{static_cast<double>(options_.burst), now}).first;
  }
  Bucket& b = it->second;
  b.tokens = std::min<double>(options_.burst, b.tokens + absl::FDivDuration(now - b.updated, options_.refill));
  b.updated = now;
  return b;
}

void LoginLimiter::ForgetSomeLocked(MonoTime now) {
  // A bucket that has refilled is the same as no bucket.
  for (auto it = buckets_.begin(); it != buckets_.end();) {
    const double tokens = it->second.tokens + absl::FDivDuration(now - it->second.updated, options_.refill);
    it = tokens >= options_.burst ? buckets_.erase(it) : std::next(it);
  }
  if (static_cast<int>(buckets_.size()) < options_.max_addresses) return;
  auto stalest = std::min_element(buckets_.begin(), buckets_.end(), [](const auto& a, const auto& b) {
    return a.second.updated < b.second.updated;
  });
  buckets_.erase(stalest);
}

}  // namespace busyfleet::coordinator
