// coordctl: the busyfleet command-line client. The subcommands are in
// commands.cc, the exit codes in exit_codes.h.

#include <unistd.h>

#include <vector>

#include <CLI/CLI.hpp>

#include "coordinator/ctl/commands.h"
#include "coordinator/ctl/coordctl_client.h"
#include "coordinator/ctl/exit_codes.h"
#include "coordinator/ctl/output.h"

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
    if (*command.app) return command.run(session);
  }
  return ctl::Usage("no command given; see coordctl --help");
}
