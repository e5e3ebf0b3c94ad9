#ifndef BUSYFLEET_COORDINATOR_CTL_COMMANDS_H_
#define BUSYFLEET_COORDINATOR_CTL_COMMANDS_H_

// coordctl's command line: the global flags and one function per
// subcommand, each returning its exit code (exit_codes.h).

#include <functional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "absl/status/statusor.h"
#include "common/rpc/client_security.h"
#include "coordinator/ctl/coordctl_client.h"
#include "coordinator/ctl/exit_codes.h"

namespace busyfleet::coordctl {

// The flags before (or after: the subcommands fall through) the subcommand.
struct GlobalFlags {
  std::string coordinator = "127.0.0.1:7070";
  std::string output;  // "table", "json", or "" (not given: see JsonOutput)
  std::string timeout = "10s";
  ClientSecurityFlags security;
};

// Whether results are printed as JSON: -o json, or no -o and standard
// output is not a terminal.
bool JsonOutput(const GlobalFlags& flags, bool stdout_is_terminal);

// The client the global flags describe. InvalidArgument when a token or TLS
// file cannot be read.
absl::StatusOr<CoordinatorClient::Options> ClientOptions(const GlobalFlags& flags);

// What a subcommand runs with.
struct Session {
  CoordinatorClient& client;
  bool json = false;  // print results as JSON (else tables)
};

// A subcommand: its parser (with the flags it owns) and what runs it once
// the command line has chosen it.
struct Command {
  CLI::App* app = nullptr;
  std::function<ExitCode(const Session&)> run;
};

// Sets up coordctl's command line on `app`: the global flags (into `flags`,
// each also read from its BUSYFLEET_* environment variable), which may also
// follow the subcommand, and every subcommand (submit, status, watch, jobs,
// jobs prune, workers, health, timeline, compare, bench, cancel, delete,
// drain: the --help order), of which the command line must choose one.
std::vector<Command> SetUpCommandLine(CLI::App& app, GlobalFlags& flags);

}  // namespace busyfleet::coordctl

#endif  // BUSYFLEET_COORDINATOR_CTL_COMMANDS_H_
