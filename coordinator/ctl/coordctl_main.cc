// coordctl: the busyfleet command-line client.

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <thread>
#include <map>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/flags.h"
#include "coordinator/ctl/compare_format.h"
#include "coordinator/ctl/coordctl_bench.h"
#include "coordinator/ctl/coordctl_client.h"
#include "coordinator/core/limits.h"
#include "coordinator/report/report_format.h"
#include "coordinator/ctl/scaling_chart.h"
#include "coordinator/report/timeline.h"

namespace {

namespace v1 = busyfleet::v1;
using busyfleet::coordctl::CoordinatorClient;

constexpr int kExitOk = 0;
constexpr int kExitJobFailed = 1;
constexpr int kExitUsage = 2;

struct Globals {
  std::string coordinator = "127.0.0.1:7070";
  std::string output;  // "", "table" or "json"
  std::string timeout = "10s";
  bool json() const { return output == "json"; }
};

struct SubmitFlags {
  std::string kind = "countdown";
  uint64_t iterations = 10'000'000;
  std::string duration;
  std::string tasks = "4";
  uint64_t total = 0;
  uint32_t max_slots = 0;
  std::vector<std::string> workers;
  std::string selector;
  std::string exec;
  uint32_t max_attempts = 0;
  std::string task_timeout;
  std::string name;
  bool wait = false;
  bool show_tasks = false;
  bool speculate = false;
};

int Fail(const absl::Status& status) {
  std::fprintf(stderr, "coordctl: %s: %s\n", absl::StatusCodeToString(status.code()).c_str(),
               std::string(status.message()).c_str());
  if (status.code() == absl::StatusCode::kUnauthenticated || status.code() == absl::StatusCode::kPermissionDenied) {
    std::fprintf(stderr, "coordctl: check --token-file: the coordinator wants a client token\n");
  } else if (busyfleet::coordctl::ExitCodeFor(status) == 3) {
    std::fprintf(stderr,
                 "coordctl: is a coordinator running and reachable at the --coordinator address (and do the "
                 "--tls-* files match its setup)?\n");
  }
  return busyfleet::coordctl::ExitCodeFor(status);
}

int Usage(const std::string& message) {
  std::fprintf(stderr, "coordctl: %s\n", message.c_str());
  return kExitUsage;
}

// Writes `text` to `path`, or to standard output when `path` is empty or "-".
int WriteOut(const std::string& path, const std::string& text) {
  if (path.empty() || path == "-") {
    std::cout << text << std::flush;
    return kExitOk;
  }
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  out.close();
  if (!out) {
    std::fprintf(stderr, "coordctl: cannot write %s: %s\n", path.c_str(), std::strerror(errno));
    return 1;
  }
  return kExitOk;
}

int TerminalWidth() {
  winsize ws{};
  if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
  return 80;
}

void PrintJson(const nlohmann::json& j) { std::cout << j.dump(2) << std::endl; }

int ExitForJobState(v1::JobState state) {
  return state == v1::JOB_STATE_FAILED || state == v1::JOB_STATE_CANCELLED ? kExitJobFailed : kExitOk;
}

// Task rows a report shows unless --tasks asks for them all: a job larger
// than one reply page is summarised (a million rows help nobody on a terminal).
constexpr uint32_t kDefaultTaskRows = busyfleet::limits::kMaxTaskRowsPerReply;

// Prints the report. A report missing some of its task rows (a large job
// without --tasks, or one page of them) shows none when `page` is false, and
// says how many were left out ("tasks_omitted" in JSON).
void PrintReport(const Globals& g, v1::JobReport report, bool show_tasks, bool page = false) {
  uint32_t omitted = 0;
  if (!page && static_cast<uint32_t>(report.tasks_size()) < report.tasks_total()) {
    omitted = report.tasks_total();
    report.clear_tasks();
  }
  if (g.json()) {
    nlohmann::json j = busyfleet::report::ReportToJson(report);
    if (omitted > 0) j["tasks_omitted"] = omitted;
    if (page) j["tasks_offset"] = report.tasks_offset();
    PrintJson(j);
  } else {
    std::cout << busyfleet::report::RenderReport(report, show_tasks || page) << std::flush;
    if (omitted > 0) {
      std::cout << "(" << omitted << " task rows left out; `coordctl status " << report.id()
                << " --tasks` lists them, --tasks-offset/--tasks-limit a page)" << std::endl;
    }
  }
}

// Follows a job to its end: a progress bar on a terminal, one JSON object
// per update with `json_lines`, then the report.
using ProgressStream = std::function<absl::StatusOr<v1::JobProgress>(
    const std::function<void(const v1::JobProgress&)>& on_progress)>;

int Follow(const Globals& g, const ProgressStream& stream, bool show_tasks, bool json_lines) {
  const bool bar = !g.json() && isatty(STDERR_FILENO) && isatty(STDOUT_FILENO);
  auto final_update = stream(
      [&](const v1::JobProgress& p) {
        if (json_lines && !p.has_report()) {
          std::cout << busyfleet::report::ProgressToJson(p).dump() << std::endl;
        } else if (bar) {
          std::fprintf(stderr, "\r%s\033[K", busyfleet::report::RenderProgressLine(p, TerminalWidth() - 1).c_str());
          std::fflush(stderr);
        }
      });
  if (bar) std::fprintf(stderr, "\n");
  if (!final_update.ok()) return Fail(final_update.status());
  if (json_lines) {
    // JSON Lines throughout: the report is the last line.
    v1::JobReport report = final_update->report();
    nlohmann::json j;
    if (static_cast<uint32_t>(report.tasks_size()) < report.tasks_total()) {
      report.clear_tasks();
      j = busyfleet::report::ReportToJson(report);
      j["tasks_omitted"] = report.tasks_total();
    } else {
      j = busyfleet::report::ReportToJson(report);
    }
    std::cout << j.dump() << std::endl;
  } else {
    PrintReport(g, final_update->report(), show_tasks);
  }
  return ExitForJobState(final_update->report().state());
}

absl::StatusOr<v1::JobSpec> BuildSpec(const SubmitFlags& f, const CLI::App& cmd) {
  v1::JobSpec spec;
  spec.set_name(f.name);
  if (f.kind == "countdown") {
    spec.set_kind(v1::TASK_KIND_COUNTDOWN);
  } else if (f.kind == "spin") {
    spec.set_kind(v1::TASK_KIND_SPIN);
  } else {
    spec.set_kind(v1::TASK_KIND_SLEEP);
  }
  if (spec.kind() == v1::TASK_KIND_COUNTDOWN) {
    if (!f.duration.empty()) return absl::InvalidArgumentError("--duration applies to --kind spin and sleep");
    if (f.total != 0) {
      if (cmd.count("--iterations") > 0) {
        return absl::InvalidArgumentError("give --iterations (per task) or --total, not both");
      }
      spec.set_total(f.total);
    } else {
      spec.set_iterations(f.iterations);
    }
  } else {
    if (cmd.count("--iterations") > 0 || f.total != 0) {
      return absl::InvalidArgumentError("--iterations and --total apply to --kind countdown; use --duration");
    }
    if (f.duration.empty()) return absl::InvalidArgumentError("--duration is required for --kind " + f.kind);
    auto d = busyfleet::ParseDurationFlag("--duration", f.duration);
    if (!d.ok()) return d.status();
    spec.mutable_duration()->set_seconds(absl::ToInt64Seconds(*d));
    spec.mutable_duration()->set_nanos(static_cast<int32_t>(absl::ToInt64Nanoseconds(*d % absl::Seconds(1))));
  }
  if (f.tasks == "auto") {
    spec.set_tasks_auto(true);
  } else {
    uint32_t n = 0;
    if (!absl::SimpleAtoi(f.tasks, &n) || f.tasks.empty() || f.tasks[0] == '-') {
      return absl::InvalidArgumentError("--tasks must be a positive number or \"auto\", got \"" + f.tasks + "\"");
    }
    spec.set_tasks(n);
  }
  spec.set_max_slots(f.max_slots);
  for (const std::string& w : f.workers) {
    for (absl::string_view part : absl::StrSplit(w, ',', absl::SkipWhitespace())) {
      spec.add_workers(std::string(part));
    }
  }
  if (!f.selector.empty()) {
    for (absl::string_view item : absl::StrSplit(f.selector, ',', absl::SkipWhitespace())) {
      std::vector<std::string> kv = absl::StrSplit(item, absl::MaxSplits('=', 1));
      if (kv.size() != 2 || kv[0].empty()) {
        return absl::InvalidArgumentError("--selector entries must look like key=value, got \"" +
                                          std::string(item) + "\"");
      }
      (*spec.mutable_selector())[kv[0]] = kv[1];
    }
  }
  if (f.exec == "thread") spec.set_exec(v1::EXEC_MODE_THREAD);
  if (f.exec == "process") spec.set_exec(v1::EXEC_MODE_PROCESS);
  spec.set_max_attempts(f.max_attempts);
  spec.set_speculate(f.speculate);
  if (!f.task_timeout.empty()) {
    auto d = busyfleet::ParseDurationFlag("--task-timeout", f.task_timeout);
    if (!d.ok()) return d.status();
    spec.mutable_task_timeout()->set_seconds(absl::ToInt64Seconds(*d));
    spec.mutable_task_timeout()->set_nanos(
        static_cast<int32_t>(absl::ToInt64Nanoseconds(*d % absl::Seconds(1))));
  }
  return spec;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"coordctl: submit busy-wait jobs to a busyfleet coordinator and read their reports"};
  app.require_subcommand(1);
  // Global flags may also follow the command: `coordctl workers -o json`.
  app.fallthrough();
  Globals g;
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  app.add_option("--coordinator", g.coordinator, "coordinator address (host:port)")->capture_default_str();
  app.add_option("-o,--output", g.output, "output format: table or json (default: table on a terminal, json otherwise)")
      ->check(CLI::IsMember({"table", "json"}));
  busyfleet::ClientSecurityFlags security_flags;
  security_flags.AddTo(app);
  app.add_option("--timeout", g.timeout, "deadline of each call (not of --wait)")
      ->capture_default_str()
      ->check(busyfleet::DurationValidator());
  busyfleet::BindEnvironment(app);

  SubmitFlags sf;
  CLI::App* submit = app.add_subcommand("submit", "submit a job");
  submit->add_option("--kind", sf.kind, "countdown, spin or sleep")
      ->capture_default_str()
      ->check(CLI::IsMember({"countdown", "spin", "sleep"}));
  submit->add_option("--iterations", sf.iterations, "countdown iterations per task")
      ->check(CLI::NonNegativeNumber)->capture_default_str();
  submit->add_option("--duration", sf.duration, "spin/sleep time per task (500ms, 2s, 1.5m)")
      ->check(busyfleet::DurationValidator());
  submit->add_option("--tasks", sf.tasks, "number of tasks, or auto (one per free slot)")->capture_default_str();
  submit->add_option("--total", sf.total, "total countdown iterations, split into --tasks near-equal parts")
      ->check(CLI::NonNegativeNumber);
  submit->add_option("--max-slots", sf.max_slots, "cap on tasks in flight at once (1: serial baseline)")
      ->check(CLI::NonNegativeNumber);
  submit->add_option("--workers", sf.workers, "run only on these workers (name,name,...)")->delimiter(',');
  submit->add_option("--selector", sf.selector, "run only on workers with these labels (k=v,...)");
  submit->add_option("--exec", sf.exec, "thread or process (default: each worker's own)")
      ->check(CLI::IsMember({"thread", "process"}));
  submit->add_option("--max-attempts", sf.max_attempts, "attempts per task before the job fails (default 3)")
      ->check(CLI::NonNegativeNumber);
  submit->add_option("--task-timeout", sf.task_timeout, "fail an attempt running longer than this")
      ->check(busyfleet::DurationValidator());
  submit->add_option("--name", sf.name, "job name (default: the job id)");
  submit->add_flag("--speculate", sf.speculate,
                   "run a backup copy of a task that takes over 1.5x the median; keep the first to finish");
  submit->add_flag("--wait", sf.wait, "follow the job with a progress bar and print its report");
  submit->add_flag("--show-tasks", sf.show_tasks, "with --wait: list every task in the table");

  std::string job_id;
  bool show_tasks = false;
  CLI::App* status = app.add_subcommand("status", "print a job's report");
  status->add_option("JOB", job_id, "job id")->required();
  status->add_flag("--show-tasks", show_tasks, "list every task in the table");
  bool all_tasks = false;
  uint32_t tasks_offset = 0, tasks_limit = 0;
  status->add_flag("--tasks", all_tasks,
                   "every task row, however large the job (by default jobs over 50,000 tasks are summarised)");
  auto* offset_opt = status->add_option("--tasks-offset", tasks_offset, "one page of task rows: from this index")
                         ->check(CLI::NonNegativeNumber);
  auto* limit_opt = status->add_option("--tasks-limit", tasks_limit, "one page of task rows: at most this many")
                        ->check(CLI::Range(1u, kDefaultTaskRows));

  CLI::App* watch = app.add_subcommand("watch", "follow a job until it ends");
  watch->add_option("JOB", job_id, "job id")->required();
  watch->add_flag("--show-tasks", show_tasks, "list every task in the table");

  uint32_t limit = 0;
  CLI::App* jobs = app.add_subcommand("jobs", "list recent jobs, newest first");
  jobs->add_option("--limit", limit, "how many (default 50)")
      ->check(CLI::NonNegativeNumber);

  bool include_gone = false;
  CLI::App* workers = app.add_subcommand("workers", "list attached workers");
  workers->add_flag("--all", include_gone, "also workers that left recently");
  uint32_t wait_for = 0;
  std::string wait_timeout = "60s";
  workers->add_option("--wait-for", wait_for, "first wait until this many workers are ready")
      ->check(CLI::Range(0u, 100000u));
  workers->add_option("--wait-timeout", wait_timeout, "give up waiting after this long (exit 1)")
      ->capture_default_str()
      ->check(busyfleet::DurationValidator());

  app.add_subcommand("health", "check that the coordinator is serving (exit 0) or not (exit 3)");

  std::string format = "chrome";
  std::string out_path;
  CLI::App* timeline = app.add_subcommand("timeline", "a job's timeline: Chrome trace JSON (Perfetto) or SVG");
  timeline->add_option("JOB", job_id, "job id")->required();
  timeline->add_option("--format", format, "chrome (trace JSON for Perfetto / chrome://tracing) or svg")
      ->capture_default_str()
      ->check(CLI::IsMember({"chrome", "svg"}));
  timeline->add_option("--out", out_path, "write to this file instead of standard output");

  std::string job_b;
  CLI::App* compare = app.add_subcommand("compare", "two job reports side by side, with ratios B/A");
  compare->add_option("JOB_A", job_id, "first job id")->required();
  compare->add_option("JOB_B", job_b, "second job id")->required();

  busyfleet::coordctl::BenchOptions bench_options;
  std::string svg_path;
  CLI::App* bench = app.add_subcommand("bench", "the chapter's experiment: serial, threads, processes, fleet");
  bench->add_option("--iterations", bench_options.iterations, "countdown iterations per task")
      ->capture_default_str()
      ->check(CLI::Range(uint64_t{1}, uint64_t{10'000'000'000'000ULL}));
  bench->add_option("--tasks", bench_options.tasks, "tasks per job (default: the fleet's slots, at least 4)")
      ->check(CLI::Range(1u, 1'000'000u));
  bench->add_option("--worker", bench_options.worker,
                    "worker for the serial/threads/processes runs (default: the one with most slots)");
  bench->add_flag("--sweep", bench_options.sweep, "also run the fleet on 1, 2, ... slots: the scaling curve");
  bench->add_option("--svg", svg_path, "with --sweep: draw the scaling curve to this SVG file");

  CLI::App* cancel = app.add_subcommand("cancel", "cancel a job");
  cancel->add_option("JOB", job_id, "job id")->required();

  std::string worker_name;
  CLI::App* drain = app.add_subcommand("drain", "stop giving tasks to a worker; running ones finish");
  drain->add_option("WORKER", worker_name, "worker name")->required();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? kExitOk : kExitUsage;
  }
  if (g.output.empty()) g.output = isatty(STDOUT_FILENO) ? "table" : "json";

  CoordinatorClient::Options options;
  options.address = g.coordinator;
  options.timeout = *busyfleet::ParseDurationFlag("--timeout", g.timeout);
  auto security = security_flags.Load();
  if (!security.ok()) return Usage(std::string(security.status().message()));
  options.security = *std::move(security);
  CoordinatorClient client(options);

  if (*submit) {
    auto spec = BuildSpec(sf, *submit);
    if (!spec.ok()) return Usage(std::string(spec.status().message()));
    if (!sf.wait) {
      auto resp = client.Submit(*spec);
      if (!resp.ok()) return Fail(resp.status());
      if (g.json()) {
        PrintJson({{"id", resp->job_id()}, {"tasks", resp->tasks()}});
      } else {
        std::cout << resp->job_id() << std::endl;
      }
      return kExitOk;
    }
    // Submit and follow in one call (RunJob): a round trip sooner than
    // SubmitJob + WatchJob.
    bool named = false;
    const ProgressStream run = [&](const std::function<void(const v1::JobProgress&)>& on_progress) {
      return client.Run(*spec, /*include_tasks=*/true, absl::Now() + absl::Hours(24 * 365),
                        [&](const v1::JobProgress& p) {
                          if (!named && !g.json()) {
                            std::fprintf(stderr, "job %s: %u tasks\n", p.job_id().c_str(), p.tasks_total());
                          }
                          named = true;
                          on_progress(p);
                        });
    };
    return Follow(g, run, sf.show_tasks, /*json_lines=*/false);
  }
  if (*status) {
    const bool page = offset_opt->count() > 0 || limit_opt->count() > 0;
    if (page && all_tasks) return Usage("--tasks lists every row; --tasks-offset/--tasks-limit one page: not both");
    auto report = all_tasks ? client.GetJobWithAllTasks(job_id)
                            : client.GetJob(job_id, /*include_tasks=*/true, false, tasks_offset,
                                            page ? (tasks_limit == 0 ? kDefaultTaskRows : tasks_limit) : 0);
    if (!report.ok()) return Fail(report.status());
    const v1::JobState state = report->state();
    PrintReport(g, *std::move(report), show_tasks || all_tasks, page);
    return ExitForJobState(state);
  }
  if (*watch) {
    const ProgressStream watch_stream = [&](const std::function<void(const v1::JobProgress&)>& on_progress) {
      return client.Watch(job_id, /*include_tasks=*/true, absl::Now() + absl::Hours(24 * 365), on_progress);
    };
    return Follow(g, watch_stream, show_tasks, /*json_lines=*/g.json());
  }
  if (*jobs) {
    auto list = client.ListJobs(limit);
    if (!list.ok()) return Fail(list.status());
    if (g.json()) {
      PrintJson(busyfleet::report::JobsToJson(*list));
    } else {
      std::cout << busyfleet::report::RenderJobs(*list) << std::flush;
    }
    return kExitOk;
  }
  if (*workers) {
    if (wait_for > 0) {
      const absl::Time deadline = absl::Now() + *busyfleet::ParseDurationFlag("--wait-timeout", wait_timeout);
      while (true) {
        auto list = client.ListWorkers(false);
        if (!list.ok() && busyfleet::coordctl::ExitCodeFor(list.status()) != 3) return Fail(list.status());
        const auto ready = list.ok() ? std::count_if(list->begin(), list->end(), [](const v1::WorkerInfo& w) {
          return w.state() == v1::WORKER_STATE_READY;
        }) : 0;
        if (ready >= static_cast<long>(wait_for)) break;
        if (absl::Now() >= deadline) {
          std::fprintf(stderr, "coordctl: %ld of %u workers ready after %s\n", static_cast<long>(ready), wait_for,
                       wait_timeout.c_str());
          return kExitJobFailed;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
      }
    }
    auto list = client.ListWorkers(include_gone);
    if (!list.ok()) return Fail(list.status());
    if (g.json()) {
      PrintJson(busyfleet::report::WorkersToJson(*list));
    } else {
      std::cout << busyfleet::report::RenderWorkers(*list, absl::Now()) << std::flush;
    }
    return kExitOk;
  }
  if (*cancel) {
    auto state = client.Cancel(job_id);
    if (!state.ok()) return Fail(state.status());
    if (g.json()) {
      PrintJson({{"id", job_id}, {"state", busyfleet::report::JobStateName(*state)}});
    } else {
      std::cout << job_id << " " << busyfleet::report::JobStateName(*state) << std::endl;
    }
    return kExitOk;
  }
  if (*drain) {
    auto state = client.Drain(worker_name);
    if (!state.ok()) return Fail(state.status());
    if (g.json()) {
      PrintJson({{"name", worker_name}, {"state", busyfleet::report::WorkerStateName(*state)}});
    } else {
      std::cout << worker_name << " " << busyfleet::report::WorkerStateName(*state) << std::endl;
    }
    return kExitOk;
  }
  if (app.got_subcommand("health")) {
    auto healthy = client.Healthy();
    if (!healthy.ok()) return Fail(healthy.status());
    if (g.json()) {
      PrintJson({{"status", *healthy ? "SERVING" : "NOT_SERVING"}});
    } else {
      std::cout << (*healthy ? "SERVING" : "NOT_SERVING") << std::endl;
    }
    return *healthy ? kExitOk : 3;
  }
  if (*timeline) {
    auto report = client.GetJob(job_id, /*include_tasks=*/true, /*include_attempts=*/true);
    if (!report.ok()) return Fail(report.status());
    return WriteOut(out_path, format == "svg" ? busyfleet::report::TimelineSvg(*report) + "\n"
                                              : busyfleet::report::TimelineChromeJson(*report) + "\n");
  }
  if (*compare) {
    auto a = client.GetJob(job_id, /*include_tasks=*/false);
    if (!a.ok()) return Fail(a.status());
    auto b = client.GetJob(job_b, /*include_tasks=*/false);
    if (!b.ok()) return Fail(b.status());
    if (g.json()) {
      PrintJson(busyfleet::coordctl::CompareToJson(*a, *b));
    } else {
      std::cout << busyfleet::coordctl::RenderCompare(*a, *b) << std::flush;
    }
    return kExitOk;
  }
  if (*bench) {
    if (!svg_path.empty() && !bench_options.sweep) return Usage("--svg draws the --sweep curve: add --sweep");
    if (!g.json()) {
      bench_options.on_job = [](const std::string& what) { std::fprintf(stderr, "bench: running %s\n", what.c_str()); };
    }
    auto result = busyfleet::coordctl::RunBench(client, bench_options);
    if (!result.ok()) return Fail(result.status());
    if (!svg_path.empty()) {
      std::vector<busyfleet::coordctl::ScalingPoint> points;
      for (const auto& row : result->sweep) {
        points.push_back({row.slots, row.wall_seconds, row.speedup, row.efficiency});
      }
      busyfleet::coordctl::ScalingChartInfo info;
      info.title = absl::StrCat("busyfleet: ", result->tasks, " x ",
                                busyfleet::report::HumanCount(static_cast<double>(result->iterations)),
                                " countdown iterations on ", result->fleet_workers, " worker(s)");
      info.physical_cores = result->fleet_physical_cores;
      info.logical_cpus = result->fleet_logical_cpus;
      if (int rc = WriteOut(svg_path, busyfleet::coordctl::ScalingSvg(points, info) + "\n"); rc != kExitOk) return rc;
    }
    if (g.json()) {
      PrintJson(busyfleet::coordctl::BenchToJson(*result));
    } else {
      std::cout << busyfleet::coordctl::RenderBench(*result) << std::flush;
      if (!svg_path.empty()) std::cout << "scaling curve written to " << svg_path << std::endl;
    }
    return kExitOk;
  }
  return Usage("no command given; see coordctl --help");
}
