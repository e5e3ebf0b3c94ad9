#include "coordinator/report/format.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace busyfleet::report {
namespace {

// The range of google.protobuf.Duration, about 10,000 years either way.
bool ContinuesUtf8(char c) {
  return (static_cast<unsigned char>(c) & 0xC0) == 0x80;
}

}  // namespace

std::string Fixed(double value, int decimals, absl::string_view suffix) {
  if (!std::isfinite(value)) return "-";
  return absl::StrCat(absl::StrFormat("%.*f", decimals, value), suffix);
}

std::string Multiple(double ratio) { return Fixed(ratio, 2, "x"); }

std::string Percent(double fraction) { return Fixed(fraction * 100.0, 1, "%"); }

std::string Thousands(uint64_t value) {
  const std::string digits = absl::StrCat(value);
  std::string out;
  out.reserve(digits.size() + digits.size() / 3);
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out.push_back(',');
    out.push_back(digits[i]);
  }
  return out;
}

std::string HumanCount(double value) {
  if (!std::isfinite(value)) return "-";
  if (value < 0) {
    std::string magnitude = HumanCount(-value);
    return magnitude == "0" ? magnitude : absl::StrCat("-", magnitude);
  }
  if (value < 999.5) return absl::StrFormat("%.0f", value);
  static constexpr char kSuffixes[] = "kMGTPE";
  double scaled = value;
  for (int i = 0; kSuffixes[i] != '\0'; ++i) {
    scaled /= 1000.0;
    const bool last = kSuffixes[i + 1] == '\0';
    // Promote when rounding would print four integer digits ("1000.0k").
    if (scaled < 9.995) return absl::StrFormat("%.2f%c", scaled, kSuffixes[i]);
    if (scaled < 999.95 || last) {
      return absl::StrFormat("%.1f%c", scaled, kSuffixes[i]);
    }
  }
  return "-";  // Not reached: the last suffix always returns.
}

nlohmann::json JsonNumber(double value) {
  if (!std::isfinite(value)) return nlohmann::json(nullptr);
  return nlohmann::json(value);
}

std::string ShortDuration(double seconds) {
  if (!std::isfinite(seconds)) return "-";
  if (seconds < 0) seconds = 0;
  if (seconds < 59.95) return absl::StrFormat("%.1fs", seconds);
  const int64_t s = static_cast<int64_t>(std::llround(seconds));
  if (s < 3600) return absl::StrFormat("%dm%02ds", s / 60, s % 60);
  if (s < 86400) return absl::StrFormat("%dh%02dm", s / 3600, (s % 3600) / 60);
  return absl::StrFormat("%dd%02dh", s / 86400, (s % 86400) / 3600);
}

std::string Printable(absl::string_view text) {
  std::string out(text);
  for (char& c : out) {
    const unsigned char u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) c = '?';
  }
  return out;
}

size_t DisplayWidth(absl::string_view text) {
  return static_cast<size_t>(
      std::count_if(text.begin(), text.end(),
                    [](char c) { return !ContinuesUtf8(c); }));
}

std::string TruncateText(absl::string_view text, size_t max_chars) {
  if (DisplayWidth(text) <= max_chars) return std::string(text);
  const bool dots = max_chars >= 4;
  const size_t keep = dots ? max_chars - 3 : max_chars;
  size_t n = 0;
  size_t end = 0;
  for (; end < text.size(); ++end) {
    if (!ContinuesUtf8(text[end])) {
      if (n == keep) break;
      ++n;
    }
  }
  std::string out(text.substr(0, end));
  if (dots) out += "...";
  return out;
}

std::string Rfc3339(const google::protobuf::Timestamp& ts) {
  if (IsUnset(ts)) return "";
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E6SZ", ToAbslTime(ts),
                          absl::UTCTimeZone());
}

std::string Rfc3339Seconds(const google::protobuf::Timestamp& ts) {
  if (IsUnset(ts)) return "";
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", ToAbslTime(ts),
                          absl::UTCTimeZone());
}

std::string Ago(const google::protobuf::Timestamp& ts, absl::Time now) {
  if (IsUnset(ts)) return "-";
  return absl::StrCat(
      ShortDuration(absl::ToDoubleSeconds(now - ToAbslTime(ts))), " ago");
}

uint32_t TaskCount(const v1::JobReport& report) {
  if (report.tasks_total() > 0) return report.tasks_total();
  return static_cast<uint32_t>(report.tasks_size());
}

}  // namespace busyfleet::report
