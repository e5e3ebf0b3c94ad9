#ifndef BUSYFLEET_COORDINATOR_REPORT_FORMAT_H_
#define BUSYFLEET_COORDINATOR_REPORT_FORMAT_H_

// The format helpers every renderer shares (report_format, timeline, text
// tables, coordctl compare and scaling chart, the daemon's status page):
// numbers, seconds, percentages, text for terminals, and the conversions
// between protobuf and Abseil times. One place per rule: a figure that is
// not finite prints as "-" in text and as null in JSON, everywhere.
// Pure functions: no I/O, thread-safe.

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "busyfleet/proto_time.h"
#include "busyfleet/v1/coordinator.pb.h"
#include "google/protobuf/duration.pb.h"
#include "google/protobuf/timestamp.pb.h"
#include "nlohmann/json.hpp"

namespace busyfleet::report {

// --- Numbers ---------------------------------------------------------------

// `value` rounded to `decimals` decimals, then `suffix`:
// Fixed(2.3456, 3) -> "2.346", Fixed(2.3456, 3, " s") -> "2.346 s".
// "-" (without the suffix) when `value` is not finite.
std::string Fixed(double value, int decimals, absl::string_view suffix = "");

// A ratio with two decimals and an "x": 1.9696 -> "1.97x"; "-" when not
// finite.
std::string Multiple(double ratio);

// A fraction as a percentage with one decimal: 0.9848 -> "98.5%"; "-" when
// not finite.
std::string Percent(double fraction);

// Digits in groups of three: 40000000 -> "40,000,000".
std::string Thousands(uint64_t value);

// A number scaled for people: below 1000 rounded to an integer, above it
// with a suffix (k, M, G, T, P, E), two decimals under 10 and one from 10:
// 0 -> "0", 999 -> "999", 12500 -> "12.5k", 200000000 -> "200.0M",
// 3.41e9 -> "3.41G", 999960 -> "1.00M". Negative numbers keep their sign;
// non-finite gives "-".
std::string HumanCount(double value);

// A JSON number, or null for NaN and infinities (which JSON cannot hold).
nlohmann::json JsonNumber(double value);

// --- Durations -------------------------------------------------------------

// Seconds for people: "0.4s", "59.9s", "3m12s", "2h05m", "3d04h" (seconds
// under 59.95 with one decimal, then rounded to whole seconds). Negative
// seconds show as "0.0s"; non-finite gives "-".
std::string ShortDuration(double seconds);

// --- Text ------------------------------------------------------------------

// Free text from the wire made safe for a terminal: every control character
// (below 0x20, and 0x7f) becomes '?'. Other bytes, UTF-8 included, pass.
std::string Printable(absl::string_view text);

// Terminal columns of UTF-8 text, counted as one per code point (a byte that
// does not continue a UTF-8 sequence). East Asian wide characters count one
// too, as do combining marks: the tables stay aligned for the names we see.
size_t DisplayWidth(absl::string_view text);

// `text` cut to at most `max_chars` code points (a sequence is never split);
// a cut text ends in "..." within the limit. `max_chars` below 4 cuts
// without dots.
std::string TruncateText(absl::string_view text, size_t max_chars);

// --- Times -----------------------------------------------------------------

// The wire's time types as Abseil's (proto/busyfleet/proto_time.h).
using busyfleet::IsUnset;
using busyfleet::ToAbslDuration;
using busyfleet::ToAbslTime;
using busyfleet::ToDoubleSeconds;
using busyfleet::ToProtoDuration;
using busyfleet::ToProtoTimestamp;

// RFC 3339 in UTC with microseconds, always six fraction digits so that the
// strings sort as the times do: "2026-11-26T02:33:56.123456Z".
// "" for an unset (all-zero) Timestamp.
std::string Rfc3339(const google::protobuf::Timestamp& ts);

// RFC 3339 in UTC to the whole second (the fraction cut, not rounded):
// "2026-11-26T02:33:56Z"; "" for an unset Timestamp.
std::string Rfc3339Seconds(const google::protobuf::Timestamp& ts);

// How long before `now` the time `ts` was: ShortDuration(now - ts) + " ago"
// ("0.4s ago", "3m12s ago"; a time after `now` shows as "0.0s ago"); "-" when
// `ts` is unset.
std::string Ago(const google::protobuf::Timestamp& ts, absl::Time now);

// --- Reports ---------------------------------------------------------------

// The job's task count: tasks_total, or the task rows when that is 0 (a
// report from before the field existed).
uint32_t TaskCount(const v1::JobReport& report);

}  // namespace busyfleet::report

#endif  // BUSYFLEET_COORDINATOR_REPORT_FORMAT_H_
