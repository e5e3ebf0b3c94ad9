#ifndef BUSYFLEET_COMMON_FLAGS_H_
#define BUSYFLEET_COMMON_FLAGS_H_

// Command-line helpers shared by the three binaries.

#include <string>

#include <CLI/CLI.hpp>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace busyfleet {

// Lets every long option --foo-bar of `app` (not of its subcommands) also
// be set by the environment variable BUSYFLEET_FOO_BAR. A flag given on the
// command line wins over the environment. Call after adding the options.
void BindEnvironment(CLI::App& app);

// The environment variable name for a flag: "worker-timeout" ->
// "BUSYFLEET_WORKER_TIMEOUT".
std::string EnvNameForFlag(absl::string_view flag);

// Parses an Abseil duration ("500ms", "2s", "1.5m", "1h30m") or a number of
// days ("30d", "1.5d"). InvalidArgument names `field` and the accepted
// syntax; negative durations are rejected.
absl::StatusOr<absl::Duration> ParseDurationFlag(absl::string_view field,
                                                 absl::string_view text);

// A CLI11 validator accepting what ParseDurationFlag accepts.
CLI::Validator DurationValidator();

// The daemons' --log-format (text or json) and --log-level (trace, debug,
// info, warn, error, off), showing the defaults `format` and `level` hold.
void AddLogFlags(CLI::App& app, std::string& format, std::string& level);

// Blocks SIGTERM and SIGINT in the calling thread, and so in every thread it
// starts afterwards. Call first thing in main.
void BlockTerminationSignals();

// Waits for SIGTERM or SIGINT (blocked by BlockTerminationSignals) and
// returns the signal number.
int WaitForTerminationSignal();

// Like WaitForTerminationSignal, but gives up at `deadline` and returns 0.
int WaitForTerminationSignalUntil(absl::Time deadline);

}  // namespace busyfleet

#endif  // BUSYFLEET_COMMON_FLAGS_H_
