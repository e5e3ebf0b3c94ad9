// A job's report without its task rows (GetJob with omit_tasks), as the
// JSON of docs/design.md: how the benchmark accounts for the tasks of a job too
// large for `coordctl status` to list.
//   job_summary --coordinator 127.0.0.1:7070 JOB [--token-file F]
#include <cstdio>
#include <iostream>
#include <string>

#include <CLI/CLI.hpp>

#include "absl/time/time.h"
#include "common/rpc/client_security.h"
#include "coordinator/ctl/coordctl_client.h"
#include "coordinator/report/report_format.h"

int main(int argc, char** argv) {
  CLI::App app{"job_summary: a job's report without its task rows, as JSON"};
  std::string coordinator = "127.0.0.1:7070";
  std::string job;
  app.add_option("--coordinator", coordinator, "coordinator address")->capture_default_str();
  app.add_option("JOB", job, "job id")->required();
  busyfleet::ClientSecurityFlags security_flags;
  security_flags.AddTo(app);
  CLI11_PARSE(app, argc, argv);
  busyfleet::coordctl::CoordinatorClient::Options options;
  options.address = coordinator;
  options.timeout = absl::Seconds(60);
  auto security = security_flags.Load();
  if (!security.ok()) {
    std::fprintf(stderr, "job_summary: %s\n", std::string(security.status().message()).c_str());
    return 2;
  }
  options.security = *std::move(security);
  busyfleet::coordctl::CoordinatorClient client(options);
  auto report = client.GetJob(job, /*include_tasks=*/false);
  if (!report.ok()) {
    std::fprintf(stderr, "job_summary: %s\n", report.status().ToString().c_str());
    return busyfleet::coordctl::ExitCodeFor(report.status());
  }
  std::cout << busyfleet::report::ReportToJson(*report).dump() << std::endl;
  return 0;
}
