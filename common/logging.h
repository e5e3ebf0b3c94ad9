#ifndef BUSYFLEET_COMMON_LOGGING_H_
#define BUSYFLEET_COMMON_LOGGING_H_

#include <string>

#include <fmt/format.h>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

// Lets spdlog/fmt format absl::string_view (a distinct type in this Abseil).
template <>
struct fmt::formatter<absl::string_view> : fmt::formatter<fmt::string_view> {
  template <typename FormatContext>
  auto format(absl::string_view s, FormatContext& ctx) const {
    return fmt::formatter<fmt::string_view>::format(fmt::string_view(s.data(), s.size()), ctx);
  }
};

namespace busyfleet {

// Sets up the default spdlog logger for a binary, writing to stderr.
// `format` is "text" (human-readable, the default) or "json" (one object per
// line: time, level, component, message). `level` is an spdlog level name
// (trace, debug, info, warn, error). InvalidArgument names the bad value.
absl::Status SetupLogging(absl::string_view component, absl::string_view format,
                          absl::string_view level = "info");

// Escapes `text` for inclusion in a JSON string (without the quotes).
std::string JsonEscape(absl::string_view text);

}  // namespace busyfleet

#endif  // BUSYFLEET_COMMON_LOGGING_H_
