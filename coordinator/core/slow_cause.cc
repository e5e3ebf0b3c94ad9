#include "coordinator/core/slow_cause.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace busyfleet::coordinator {
namespace {

std::string Millis(double seconds) {
  if (seconds >= 1) return absl::StrFormat("%.1f s", seconds);
  const double ms = seconds * 1e3;
  return ms < 10 ? absl::StrFormat("%.1f ms", ms) : absl::StrFormat("%.0f ms", ms);
}

// (seconds it explains, phrase) for each figure over kCauseMinShare.
std::vector<std::pair<double, std::string>> Clauses(const v1::Interference& m, double seconds) {
  std::vector<std::pair<double, std::string>> out;
  // A nanosecond's slack: 5 ms of a 0.1 s task is 5%, whatever the rounding.
  const double floor = kCauseMinShare * seconds - 1e-9;
  // Cgroup-wide and summed over CPUs: the task lost at most its own time.
  const double throttled = std::min(static_cast<double>(m.throttled_ns()) / 1e9, seconds);
  if (m.has_throttled_ns()) {
    if (throttled > 0 && throttled >= floor) {
      std::string phrase = absl::StrCat("throttled ", Millis(throttled));
      if (m.periods() > 0) absl::StrAppend(&phrase, " (", m.throttled_periods(), " of ", m.periods(), " periods)");
      out.emplace_back(throttled, std::move(phrase));
    }
  }
  if (m.has_steal_share() && m.steal_share() > 0 && m.steal_share() >= kCauseMinShare - 1e-12) {
    out.emplace_back(m.steal_share() * seconds, absl::StrFormat("steal %.0f%%", m.steal_share() * 100));
  }
  if (m.has_run_queue_wait_ns()) {
    // A task of a throttled cgroup stays runnable: its run-queue wait
    // includes the throttled time, named above on its own.
    const double wait = std::max(0.0, static_cast<double>(m.run_queue_wait_ns()) / 1e9 - throttled);
    if (wait > 0 && wait >= floor) {
      std::string phrase = absl::StrCat("waited ", Millis(wait), " for a CPU");
      if (m.involuntary_switches() > 0) absl::StrAppend(&phrase, " (", m.involuntary_switches(), " involuntary switches)");
      out.emplace_back(wait, std::move(phrase));
    }
  }
  std::stable_sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  return out;
}

std::string RateClause(double ratio, const std::optional<v1::Interference>& measured) {
  const char* steal = !measured || !measured->has_steal_share() ? "steal unknown" : "no steal";
  return absl::StrFormat("%.2g× its core's rate, %s: shared core?", ratio, steal);
}

}  // namespace

std::string StragglerCause(const std::optional<v1::Interference>& measured, double seconds,
                           std::optional<double> rate_ratio) {
  const bool slow_rate = rate_ratio && *rate_ratio < kCauseSlowRate;
  if (!measured) return slow_rate ? absl::StrCat(RateClause(*rate_ratio, measured), " (not measured)") : "not measured";
  const auto clauses = Clauses(*measured, seconds);
  if (!clauses.empty()) {
    return absl::StrJoin(clauses, ", ", [](std::string* out, const auto& c) { out->append(c.second); });
  }
  if (measured->involuntary_switches() >= kCauseManySwitches) {
    return absl::StrCat(measured->involuntary_switches(), " involuntary switches");
  }
  if (slow_rate) return RateClause(*rate_ratio, measured);
  return "no interference measured";
}

}  // namespace busyfleet::coordinator
