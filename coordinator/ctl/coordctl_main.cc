// coordctl: the busyfleet command-line client. The subcommands are in
// commands.cc, the exit codes in exit_codes.h.

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <vector>

#include <CLI/CLI.hpp>

#include "coordinator/ctl/commands.h"
#include "coordinator/ctl/coordctl_client.h"
#include "coordinator/ctl/exit_codes.h"
#include "coordinator/ctl/output.h"

namespace {

// Ends the process once a command has run, without tearing gRPC down (its
// threads and channel: 1.3-2.2 ms of a one-task `submit --wait`'s 11-12
// here; the kernel closes the connection). What the command printed is
// flushed first, and output that could not be written (a full disk) fails
// the command, as an output file that could not be written does; it used
// to be lost with exit code 0.
[[noreturn]] void Leave(int code) {
  std::cout.flush();
  errno = 0;
  const bool flushed = std::fflush(stdout) == 0;
  // The reason is known when this last flush failed; a write that failed
  // earlier (output past stdio's buffer) left only the stream's error flag.
  const int reason = flushed ? 0 : errno;
  if (!flushed || std::ferror(stdout) || !std::cout.good()) {
    std::fprintf(stderr, "coordctl: cannot write the output%s%s\n", reason != 0 ? ": " : "",
                 reason != 0 ? std::strerror(reason) : "");
    if (code == busyfleet::coordctl::kExitOk) code = busyfleet::coordctl::kExitFailed;
  }
  std::fflush(stderr);
  _exit(code);
}

}  // namespace

int main(int argc, char** argv) {
  namespace ctl = busyfleet::coordctl;
  CLI::App app{"coordctl: submit busy-wait jobs to a busyfleet coordinator and read their reports"};
  ctl::GlobalFlags flags;
  const std::vector<ctl::Command> commands = ctl::SetUpCommandLine(app, flags);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? ctl::kExitOk : ctl::kExitUsage;
  }
  absl::StatusOr<ctl::CoordinatorClient::Options> options = ctl::ClientOptions(flags);
  if (!options.ok()) return ctl::Usage(options.status().message());
  ctl::CoordinatorClient client(*std::move(options));
  const ctl::Session session{client, ctl::JsonOutput(flags, isatty(STDOUT_FILENO))};
  for (const ctl::Command& command : commands) {
    if (*command.app) Leave(command.run(session));
  }
  return ctl::Usage("no command given; see coordctl --help");
}
