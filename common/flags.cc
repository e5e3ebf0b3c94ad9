#include "common/flags.h"

#include <signal.h>

#include <cerrno>
#include <cmath>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/strip.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"

namespace busyfleet {

std::string EnvNameForFlag(absl::string_view flag) {
  return absl::StrCat("BUSYFLEET_",
                      absl::AsciiStrToUpper(absl::StrReplaceAll(flag, {{"-", "_"}})));
}

void BindEnvironment(CLI::App& app) {
  for (CLI::Option* opt : app.get_options()) {
    if (opt->get_lnames().empty()) continue;
    const std::string& name = opt->get_lnames().front();
    if (name == "help" || name == "version") continue;
    opt->envname(EnvNameForFlag(name));
  }
}

namespace {

// Abseil's syntax, plus whole or fractional days ("30d", "1.5d"), which
// retention periods want. Empty when `text` is a non-negative duration
// (stored in *out), else what is wrong with it.
std::string ReadDuration(absl::string_view text, absl::Duration* out) {
  bool parsed = absl::ParseDuration(text, out);
  if (absl::string_view number = text; !parsed && absl::ConsumeSuffix(&number, "d")) {
    double days = 0;
    parsed = absl::SimpleAtod(number, &days) && std::isfinite(days) && days < 1e6;
    if (parsed) *out = absl::Hours(24) * days;
  }
  if (!parsed) return absl::StrCat("must be a duration such as 500ms, 2s, 1.5m or 30d; got \"", text, "\"");
  if (*out < absl::ZeroDuration()) return absl::StrCat("must not be negative; got \"", text, "\"");
  return {};
}

}  // namespace

absl::StatusOr<absl::Duration> ParseDurationFlag(absl::string_view field,
                                                 absl::string_view text) {
  absl::Duration d;
  if (std::string error = ReadDuration(text, &d); !error.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(field, " ", error));
  }
  return d;
}

CLI::Validator DurationValidator() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        absl::Duration d;
        return ReadDuration(text, &d);
      },
      "DURATION");
}

void AddLogFlags(CLI::App& app, std::string& format, std::string& level) {
  app.add_option("--log-format", format, "text or json")
      ->capture_default_str()
      ->check(CLI::IsMember({"text", "json"}));
  app.add_option("--log-level", level, "trace, debug, info, warn, error")
      ->capture_default_str()
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "off"}));
}

namespace {
sigset_t TerminationSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  return set;
}
}  // namespace

void BlockTerminationSignals() {
  const sigset_t set = TerminationSignals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

int WaitForTerminationSignal() {
  const sigset_t set = TerminationSignals();
  int sig = 0;
  while (sigwait(&set, &sig) != 0) {
  }
  return sig;
}

int WaitForTerminationSignalUntil(absl::Time deadline) {
  const sigset_t set = TerminationSignals();
  for (;;) {
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) return 0;
    const timespec ts = absl::ToTimespec(left);
    const int sig = sigtimedwait(&set, nullptr, &ts);
    if (sig > 0) return sig;
    if (errno == EAGAIN) return 0;
  }
}

}  // namespace busyfleet
