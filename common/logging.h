#ifndef BUSYFLEET_COMMON_LOGGING_H_
#define BUSYFLEET_COMMON_LOGGING_H_

#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

// Lets spdlog/fmt format absl::string_view (a distinct type in this Abseil).
template <>
struct fmt::formatter<absl::string_view> : fmt::formatter<fmt::string_view> {
  template <typename FormatContext>
  auto format(absl::string_view s, FormatContext& ctx) const {
    return fmt::formatter<fmt::string_view>::format(fmt::string_view(s.data(), s.size()), ctx);
  }
};

namespace busyfleet {

// Sets up the default spdlog logger for a binary, writing to stderr. (The
// binaries that use gRPC call common/rpc/grpc_logging.h's SetupGrpcLogging
// instead, which also routes gRPC's own log lines here.)
// `format` is "text" (human-readable, the default) or "json" (one object per
// line: time, level, component, message). `level` is an spdlog level name
// (trace, debug, info, warn, error). InvalidArgument names the bad value.
absl::Status SetupLogging(absl::string_view component, absl::string_view format,
                          absl::string_view level = "info");

// Structured fields for the log lines written by this thread while it
// lives, e.g. `LogFields f({{"job_id", id}, {"worker", name}});`. With
// --log-format json they become keys of each line's object (after time,
// level, component, message); text lines are unchanged (their messages
// name the ids already). Nest freely; keys should be plain identifiers.
class LogFields {
 public:
  LogFields(std::initializer_list<std::pair<absl::string_view, std::string>> fields);
  ~LogFields();
  LogFields(const LogFields&) = delete;
  LogFields& operator=(const LogFields&) = delete;

 private:
  size_t added_ = 0;
};

// Escapes `text` for inclusion in a JSON string (without the quotes).
std::string JsonEscape(absl::string_view text);

// Lets a log line through at most `burst` times at once and then once per
// `interval`, counting what it held back — so a flood of failed logins
// cannot fill the disk. Thread-safe.
class LogRateLimiter {
 public:
  LogRateLimiter(int burst, absl::Duration interval) : burst_(burst), interval_(interval), tokens_(burst) {}
  // True when the caller may log now; `*suppressed` gets the number of lines
  // held back since the last one that went through.
  bool Allow(uint64_t* suppressed);

 private:
  const int burst_;
  const absl::Duration interval_;
  absl::Mutex mu_;
  double tokens_ ABSL_GUARDED_BY(mu_);
  absl::Time last_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  uint64_t suppressed_ ABSL_GUARDED_BY(mu_) = 0;
};


}  // namespace busyfleet

#endif  // BUSYFLEET_COMMON_LOGGING_H_
