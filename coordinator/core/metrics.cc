#include "coordinator/core/metrics.h"

#include <algorithm>
#include <cmath>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace busyfleet::coordinator {

Histogram::Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)), counts_(bounds_.size(), 0) {}

Histogram Histogram::TaskSeconds() {
  return Histogram({0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600});
}

void Histogram::Add(double value) {
  if (std::isnan(value)) return;
  auto it = std::lower_bound(bounds_.begin(), bounds_.end(), value);
  if (it != bounds_.end()) ++counts_[static_cast<size_t>(it - bounds_.begin())];
  sum_ += value;
  ++count_;
}

std::vector<uint64_t> Histogram::cumulative() const {
  std::vector<uint64_t> out(counts_.size());
  uint64_t running = 0;
  for (size_t i = 0; i < counts_.size(); ++i) out[i] = running += counts_[i];
  return out;
}

void PeerTally::AddClientRefusal(int code) {
  if (code > 0 && code < static_cast<int>(client_.size())) {
    client_[static_cast<size_t>(code)].fetch_add(1, std::memory_order_relaxed);
  }
}

PeerCounters PeerTally::Snapshot() const {
  auto get = [this](Kind k) { return counts_[k].load(std::memory_order_relaxed); };
  PeerCounters c;
  c.sessions_refused = get(kSessionsRefused);
  c.watches_refused = get(kWatchesRefused);
  c.slow_readers = get(kSlowReaders);
  c.stalled_watches = get(kStalledWatches);
  c.workers_refused = get(kWorkersRefused);
  c.strings_truncated = get(kStringsTruncated);
  for (size_t code = 1; code < client_.size(); ++code) {
    const uint64_t n = client_[code].load(std::memory_order_relaxed);
    if (n == 0) continue;
    std::string name = absl::StatusCodeToString(static_cast<absl::StatusCode>(code));
    absl::AsciiStrToLower(&name);
    c.client_refusals[name] = n;
  }
  return c;
}


}  // namespace busyfleet::coordinator
