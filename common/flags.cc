#include "common/flags.h"

#include <signal.h>

#include <cerrno>

#include "absl/strings/ascii.h"
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

absl::StatusOr<absl::Duration> ParseDurationFlag(absl::string_view field,
                                                 absl::string_view text) {
  absl::Duration d;
  if (!absl::ParseDuration(text, &d)) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, " must be a duration such as 500ms, 2s or 1.5m; got \"", text, "\""));
  }
  if (d < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " must not be negative; got \"", text, "\""));
  }
  return d;
}

CLI::Validator DurationValidator() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        absl::Duration d;
        if (!absl::ParseDuration(text, &d)) {
          return "must be a duration such as 500ms, 2s or 1.5m; got \"" + text + "\"";
        }
        if (d < absl::ZeroDuration()) return "must not be negative; got \"" + text + "\"";
        return {};
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
