#include "coordinator/ctl/commands.h"

#include <cstdio>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "busyfleet/proto_time.h"
#include "absl/time/clock.h"
#include "common/flags.h"
#include "common/status_macros.h"
#include "coordinator/core/limits.h"
#include "coordinator/ctl/compare_format.h"
#include "coordinator/ctl/coordctl_bench.h"
#include "coordinator/ctl/output.h"
#include "coordinator/ctl/scaling_chart.h"
#include "coordinator/ctl/submit_spec.h"
#include "coordinator/report/report_format.h"
#include "coordinator/report/timeline.h"

namespace busyfleet::coordctl {
namespace {

using nlohmann::json;

// Task rows a report shows unless --tasks asks for them all: a job larger
// than one reply page is summarised (a million rows help nobody on a terminal).
constexpr uint32_t kDefaultTaskRows = limits::kMaxTaskRowsPerReply;

// Follows a job until it ends, however long that takes (--timeout bounds
// each call, not a wait).
absl::Time FollowDeadline() { return absl::Now() + absl::Hours(24 * 365); }

// Each Add* below registers a subcommand's flags into a shared_ptr that the
// returned Command's run function holds, so they live as long as it does.

// --- submit ---

ExitCode RunSubmit(const Session& s, const SubmitFlags& f) {
  absl::StatusOr<v1::JobSpec> spec = BuildSpec(f);
  if (!spec.ok()) return Usage(spec.status().message());
  if (!f.wait) {
    absl::StatusOr<v1::SubmitJobResponse> resp = s.client.Submit(*spec);
    if (!resp.ok()) return Fail(resp.status());
    PrintResult(
        s.json, [&] { return json{{"id", resp->job_id()}, {"tasks", resp->tasks()}}; },
        [&] { return resp->job_id() + "\n"; });
    return kExitOk;
  }
  // Submit and follow in one call (RunJob): a round trip sooner than
  // SubmitJob + WatchJob.
  bool named = false;
  const ProgressStream run = [&](const std::function<void(const v1::JobProgress&)>& on_progress) {
    return s.client.Run(*spec, /*include_tasks=*/true, FollowDeadline(), [&](const v1::JobProgress& p) {
      if (!named && !s.json) std::fprintf(stderr, "job %s: %u tasks\n", p.job_id().c_str(), p.tasks_total());
      named = true;
      on_progress(p);
    });
  };
  return Follow(s.json, run, f.show_tasks, /*json_lines=*/false);
}

Command AddSubmit(CLI::App& app) {
  auto f = std::make_shared<SubmitFlags>();
  CLI::App* cmd = app.add_subcommand("submit", "submit a job");
  cmd->add_option("--kind", f->kind,
                  "countdown (C++ loop), spin, sleep, or python (the chapter's loop in the worker's embedded CPython)")
      ->capture_default_str()
      ->check(CLI::IsMember({"countdown", "spin", "sleep", "python"}));
  cmd->add_option("--iterations", f->iterations, "countdown/python iterations per task")
      ->check(CLI::NonNegativeNumber)->capture_default_str();
  cmd->add_option("--duration", f->duration, "spin/sleep time per task (500ms, 2s, 1.5m)")
      ->check(DurationValidator());
  cmd->add_option("--tasks", f->tasks, "number of tasks, or auto (one per free slot)")->capture_default_str();
  cmd->add_option("--total", f->total, "total countdown/python iterations, split into --tasks near-equal parts")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--max-slots", f->max_slots, "cap on tasks in flight at once (1: serial baseline)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--workers", f->workers, "run only on these workers (name,name,...)")->delimiter(',');
  cmd->add_option("--selector", f->selector, "run only on workers with these labels (k=v,...)");
  cmd->add_option("--exec", f->exec, "thread or process (default: each worker's own)")
      ->check(CLI::IsMember({"thread", "process"}));
  cmd->add_option("--max-attempts", f->max_attempts, "attempts per task before the job fails (default 3)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--task-timeout", f->task_timeout, "fail an attempt running longer than this")
      ->check(DurationValidator());
  cmd->add_option("--pending-timeout", f->pending_timeout,
                  "fail the job when no attached worker can take its tasks for this long (default: wait)")
      ->check(DurationValidator());
  cmd->add_option("--name", f->name, "job name (default: the job id)");
  cmd->add_flag("--speculate", f->speculate,
                "run a backup copy of a task that takes over 1.5x the median; keep the first to finish");
  cmd->add_flag("--wait", f->wait, "follow the job with a progress bar and print its report");
  cmd->add_flag("--show-tasks", f->show_tasks, "with --wait: list every task in the table");
  return {cmd, [f, cmd](const Session& s) {
            f->iterations_given = cmd->count("--iterations") > 0;
            return RunSubmit(s, *f);
          }};
}

// --- status, watch ---

struct StatusFlags {
  std::string job;
  bool show_tasks = false;
  bool all_tasks = false;  // --tasks
  uint32_t tasks_offset = 0;
  uint32_t tasks_limit = 0;
  bool page = false;  // --tasks-offset or --tasks-limit given
};

ExitCode RunStatus(const Session& s, const StatusFlags& f) {
  if (f.page && f.all_tasks) return Usage("--tasks lists every row; --tasks-offset/--tasks-limit one page: not both");
  absl::StatusOr<v1::JobReport> report =
      f.all_tasks ? s.client.GetJobWithAllTasks(f.job)
                  : s.client.GetJob(f.job, /*include_tasks=*/true, false, f.tasks_offset,
                                    f.page ? (f.tasks_limit == 0 ? kDefaultTaskRows : f.tasks_limit) : 0);
  if (!report.ok()) return Fail(report.status());
  PrintReport(s.json, *report, f.show_tasks || f.all_tasks, f.page);
  return ExitForJobState(report->state());
}

Command AddStatus(CLI::App& app) {
  auto f = std::make_shared<StatusFlags>();
  CLI::App* cmd = app.add_subcommand("status", "print a job's report");
  cmd->add_option("JOB", f->job, "job id")->required();
  cmd->add_flag("--show-tasks", f->show_tasks, "list every task in the table");
  cmd->add_flag("--tasks", f->all_tasks,
                "every task row, however large the job (by default jobs over 50,000 tasks are summarised)");
  CLI::Option* offset = cmd->add_option("--tasks-offset", f->tasks_offset, "one page of task rows: from this index")
                            ->check(CLI::NonNegativeNumber);
  CLI::Option* limit = cmd->add_option("--tasks-limit", f->tasks_limit, "one page of task rows: at most this many")
                           ->check(CLI::Range(1u, kDefaultTaskRows));
  return {cmd, [f, offset, limit](const Session& s) {
            f->page = offset->count() > 0 || limit->count() > 0;
            return RunStatus(s, *f);
          }};
}

struct WatchFlags {
  std::string job;
  bool show_tasks = false;
};

ExitCode RunWatch(const Session& s, const WatchFlags& f) {
  const ProgressStream watch = [&](const std::function<void(const v1::JobProgress&)>& on_progress) {
    return s.client.Watch(f.job, /*include_tasks=*/true, FollowDeadline(), on_progress);
  };
  return Follow(s.json, watch, f.show_tasks, /*json_lines=*/s.json);
}

Command AddWatch(CLI::App& app) {
  auto f = std::make_shared<WatchFlags>();
  CLI::App* cmd = app.add_subcommand("watch", "follow a job until it ends");
  cmd->add_option("JOB", f->job, "job id")->required();
  cmd->add_flag("--show-tasks", f->show_tasks, "list every task in the table");
  return {cmd, [f](const Session& s) { return RunWatch(s, *f); }};
}

// --- jobs, workers, health ---

ExitCode RunJobs(const Session& s, uint32_t limit) {
  absl::StatusOr<std::vector<v1::JobSummary>> list = s.client.ListJobs(limit);
  if (!list.ok()) return Fail(list.status());
  PrintResult(
      s.json, [&] { return report::JobsToJson(*list); }, [&] { return report::RenderJobs(*list); });
  return kExitOk;
}

Command AddJobs(CLI::App& app) {
  auto limit = std::make_shared<uint32_t>();
  CLI::App* cmd = app.add_subcommand("jobs", "list recent jobs, newest first (jobs prune: remove old ones)");
  cmd->require_subcommand(0, 1);
  cmd->add_option("--limit", *limit, "how many (default 50)")
      ->check(CLI::NonNegativeNumber);
  return {cmd, [limit](const Session& s) { return RunJobs(s, *limit); }};
}

struct PruneFlags {
  std::string older_than;
  uint32_t keep = 0;
  bool dry_run = false;
};

ExitCode RunPrune(const Session& s, const PruneFlags& f) {
  if (f.older_than.empty() && f.keep == 0) return Usage("jobs prune: give --older-than or --keep (or both)");
  v1::PruneJobsRequest req;
  if (!f.older_than.empty()) {
    absl::StatusOr<absl::Duration> age = ParseDurationFlag("--older-than", f.older_than);
    if (!age.ok()) return Usage(age.status().message());
    *req.mutable_older_than() = ToProtoDuration(*age);
  }
  req.set_keep(f.keep);
  req.set_dry_run(f.dry_run);
  absl::StatusOr<v1::PruneJobsResponse> pruned = s.client.Prune(req);
  if (!pruned.ok()) return Fail(pruned.status());
  const std::vector<v1::JobSummary> jobs(pruned->jobs().begin(), pruned->jobs().end());
  PrintResult(
      s.json,
      [&] { return json{{"dry_run", f.dry_run}, {"jobs", report::JobsToJson(jobs)}, {"more", pruned->more()}}; },
      [&] {
        std::string out = jobs.empty() ? "" : report::RenderJobs(jobs);
        absl::StrAppend(&out, f.dry_run ? "would remove " : "removed ", jobs.size(), " finished jobs",
                        pruned->more() ? " (more match: run it again)" : "", "\n");
        return out;
      });
  return kExitOk;
}

// `jobs prune`, a subcommand of `jobs`.
Command AddJobsPrune(CLI::App& jobs) {
  auto f = std::make_shared<PruneFlags>();
  CLI::App* cmd = jobs.add_subcommand("prune", "remove finished jobs and their reports, oldest first");
  cmd->add_option("--older-than", f->older_than, "jobs that finished longer ago than this (e.g. 30d, 12h)")
      ->check(DurationValidator());
  cmd->add_option("--keep", f->keep, "keep the newest N finished jobs, remove older ones")
      ->check(CLI::PositiveNumber);
  cmd->add_flag("--dry-run", f->dry_run, "only list what would be removed");
  return {cmd, [f](const Session& s) { return RunPrune(s, *f); }};
}

struct WorkersFlags {
  bool include_gone = false;
  uint32_t wait_for = 0;
  std::string wait_timeout = "60s";
};

ExitCode RunWorkers(const Session& s, const WorkersFlags& f) {
  if (f.wait_for > 0) {
    const absl::Time deadline = absl::Now() + *ParseDurationFlag("--wait-timeout", f.wait_timeout);
    absl::StatusOr<uint32_t> ready = s.client.WaitForReadyWorkers(f.wait_for, deadline);
    if (!ready.ok()) return Fail(ready.status());
    if (*ready < f.wait_for) {
      std::fprintf(stderr, "coordctl: %ld of %u workers ready after %s\n", static_cast<long>(*ready), f.wait_for,
                   f.wait_timeout.c_str());
      return kExitFailed;
    }
  }
  absl::StatusOr<std::vector<v1::WorkerInfo>> list = s.client.ListWorkers(f.include_gone);
  if (!list.ok()) return Fail(list.status());
  PrintResult(
      s.json, [&] { return report::WorkersToJson(*list); },
      [&] { return report::RenderWorkers(*list, absl::Now()); });
  return kExitOk;
}

Command AddWorkers(CLI::App& app) {
  auto f = std::make_shared<WorkersFlags>();
  CLI::App* cmd = app.add_subcommand("workers", "list attached workers");
  cmd->add_flag("--all", f->include_gone, "also workers that left recently");
  cmd->add_option("--wait-for", f->wait_for, "first wait until this many workers are ready")
      ->check(CLI::Range(0u, 100000u));
  cmd->add_option("--wait-timeout", f->wait_timeout, "give up waiting after this long (exit 1)")
      ->capture_default_str()
      ->check(DurationValidator());
  return {cmd, [f](const Session& s) { return RunWorkers(s, *f); }};
}

ExitCode RunHealth(const Session& s) {
  absl::StatusOr<bool> healthy = s.client.Healthy();
  if (!healthy.ok()) return Fail(healthy.status());
  const std::string status = *healthy ? "SERVING" : "NOT_SERVING";
  // The reasons, when the coordinator can give them (an older one cannot).
  const absl::StatusOr<v1::HealthReport> reasons = s.client.GetHealth();
  PrintResult(
      s.json,
      [&] {
        json out{{"status", status}};
        if (reasons.ok()) {
          const v1::StoreStatus& st = reasons->store();
          out["store"] = json{{"writable", st.writable()},
                              {"cause", st.cause()},
                              {"backlog_rows", st.backlog_rows()},
                              {"commits", st.commits()},
                              {"write_failures", st.write_failures()},
                              {"jobs_deleted", st.jobs_deleted()},
                              {"jobs_dropped", st.jobs_dropped()},
                              {"purge_rows", st.purge_rows()},
                              {"unwritable_since", st.has_unwritable_since()
                                                       ? report::Rfc3339(st.unwritable_since())
                                                       : std::string()}};
        }
        return out;
      },
      [&] {
        std::string out = status + "\n";
        if (reasons.ok() && !reasons->store().writable()) {
          absl::StrAppend(&out, "store: ", reasons->store().cause(), "\n", "backlog: ",
                          reasons->store().backlog_rows(), " rows wait to be written (",
                          reasons->store().write_failures(), " failed attempts)\n");
        }
        return out;
      });
  return *healthy ? kExitOk : kExitUnavailable;
}

Command AddHealth(CLI::App& app) {
  return {app.add_subcommand("health", "check that the coordinator is serving (exit 0) or not (exit 3)"), RunHealth};
}

// --- timeline, compare ---

struct TimelineFlags {
  std::string job;
  std::string format = "chrome";
  std::string out_path;
};

ExitCode RunTimeline(const Session& s, const TimelineFlags& f) {
  absl::StatusOr<v1::JobReport> report = s.client.GetJob(f.job, /*include_tasks=*/true, /*include_attempts=*/true);
  if (!report.ok()) return Fail(report.status());
  return WriteOut(f.out_path, f.format == "svg" ? report::TimelineSvg(*report) + "\n"
                                                : report::TimelineChromeJson(*report) + "\n");
}

Command AddTimeline(CLI::App& app) {
  auto f = std::make_shared<TimelineFlags>();
  CLI::App* cmd = app.add_subcommand("timeline", "a job's timeline: Chrome trace JSON (Perfetto) or SVG");
  cmd->add_option("JOB", f->job, "job id")->required();
  cmd->add_option("--format", f->format, "chrome (trace JSON for Perfetto / chrome://tracing) or svg")
      ->capture_default_str()
      ->check(CLI::IsMember({"chrome", "svg"}));
  cmd->add_option("--out", f->out_path, "write to this file instead of standard output");
  return {cmd, [f](const Session& s) { return RunTimeline(s, *f); }};
}

struct CompareFlags {
  std::string job_a;
  std::string job_b;
};

// The reports of a comma-separated list of job ids.
absl::StatusOr<std::vector<v1::JobReport>> GetJobs(const Session& s, const std::string& list) {
  std::vector<v1::JobReport> reports;
  for (absl::string_view id : absl::StrSplit(list, ',', absl::SkipWhitespace())) {
    absl::StatusOr<v1::JobReport> r = s.client.GetJob(std::string(absl::StripAsciiWhitespace(id)), false);
    if (!r.ok()) return r.status();
    reports.push_back(*std::move(r));
  }
  if (reports.empty()) return absl::InvalidArgumentError("compare: a side names no job id");
  return reports;
}

ExitCode RunCompare(const Session& s, const CompareFlags& f) {
  if (absl::StrContains(f.job_a, ',') || absl::StrContains(f.job_b, ',')) {
    absl::StatusOr<std::vector<v1::JobReport>> a = GetJobs(s, f.job_a);
    if (!a.ok()) return Fail(a.status());
    absl::StatusOr<std::vector<v1::JobReport>> b = GetJobs(s, f.job_b);
    if (!b.ok()) return Fail(b.status());
    PrintResult(
        s.json, [&] { return CompareSetsToJson(*a, *b); }, [&] { return RenderCompareSets(*a, *b); });
    return kExitOk;
  }
  absl::StatusOr<v1::JobReport> a = s.client.GetJob(f.job_a, /*include_tasks=*/false);
  if (!a.ok()) return Fail(a.status());
  absl::StatusOr<v1::JobReport> b = s.client.GetJob(f.job_b, /*include_tasks=*/false);
  if (!b.ok()) return Fail(b.status());
  PrintResult(
      s.json, [&] { return CompareToJson(*a, *b); }, [&] { return RenderCompare(*a, *b); });
  return kExitOk;
}

Command AddCompare(CLI::App& app) {
  auto f = std::make_shared<CompareFlags>();
  CLI::App* cmd = app.add_subcommand(
      "compare", "two job reports side by side, with ratios B/A; repeated runs: JOB_A1,JOB_A2,... JOB_B1,...");
  cmd->add_option("JOB_A", f->job_a, "first job id, or a comma-separated list of repeated runs")->required();
  cmd->add_option("JOB_B", f->job_b, "second job id, or a comma-separated list")->required();
  return {cmd, [f](const Session& s) { return RunCompare(s, *f); }};
}

// --- bench ---

struct BenchFlags {
  BenchOptions options;
  std::string kind = "countdown";
  std::string svg_path;
};

// Draws the --sweep scaling curve to `path`.
ExitCode WriteScalingSvg(const std::string& path, const BenchResult& result) {
  std::vector<ScalingPoint> points;
  for (const BenchRow& row : result.sweep) {
    points.push_back({row.slots, row.wall_seconds, row.speedup, row.efficiency, row.speedups.ci.low,
                      row.speedups.ci.high});
  }
  ScalingChartInfo info;
  info.title = absl::StrCat("busyfleet: ", result.tasks, " x ", report::HumanCount(static_cast<double>(result.iterations)),
                            " ", report::TaskKindName(result.kind), " iterations on ", result.fleet_workers,
                            " worker(s)");
  info.physical_cores = result.fleet_physical_cores;
  info.logical_cpus = result.fleet_logical_cpus;
  return WriteOut(path, ScalingSvg(points, info) + "\n");
}

ExitCode RunBenchCommand(const Session& s, const BenchFlags& f) {
  if (!f.svg_path.empty() && !f.options.sweep) return Usage("--svg draws the --sweep curve: add --sweep");
  BenchOptions options = f.options;
  options.kind = f.kind == "python" ? v1::TASK_KIND_PYTHON : v1::TASK_KIND_COUNTDOWN;
  if (!s.json) options.on_job = [](const std::string& what) { std::fprintf(stderr, "bench: running %s\n", what.c_str()); };
  absl::StatusOr<BenchResult> result = RunBench(s.client, options);
  if (!result.ok()) return Fail(result.status());
  if (!f.svg_path.empty()) {
    if (ExitCode rc = WriteScalingSvg(f.svg_path, *result); rc != kExitOk) return rc;
  }
  PrintResult(
      s.json, [&] { return BenchToJson(*result); },
      [&] {
        return RenderBench(*result) +
               (f.svg_path.empty() ? "" : absl::StrCat("scaling curve written to ", f.svg_path, "\n"));
      });
  return kExitOk;
}

Command AddBench(CLI::App& app) {
  auto f = std::make_shared<BenchFlags>();
  CLI::App* cmd = app.add_subcommand("bench", "the chapter's experiment: serial, threads, processes, fleet");
  cmd->add_option("--kind", f->kind, "countdown (the C++ loop) or python (the chapter's loop in CPython)")
      ->capture_default_str()
      ->check(CLI::IsMember({"countdown", "python"}));
  cmd->add_option("--iterations", f->options.iterations,
                  "iterations per task (default: 500000000 countdown, 10000000 python)")
      ->check(CLI::Range(uint64_t{1}, uint64_t{10'000'000'000'000ULL}));
  cmd->add_option("--tasks", f->options.tasks, "tasks per job (default: the fleet's slots, at least 4)")
      ->check(CLI::Range(1u, 1'000'000u));
  cmd->add_option("--repeat", f->options.repeat,
                  "counted trials of every mode, interleaved (serial, threads, processes, fleet, serial, ...)")
      ->capture_default_str()
      ->check(CLI::Range(1u, 1000u));
  cmd->add_option("--warmup", f->options.warmup, "uncounted rounds of every mode before the trials")
      ->capture_default_str()
      ->check(CLI::Range(0u, 100u));
  cmd->add_option("--confidence", f->options.confidence, "confidence of the intervals")
      ->capture_default_str()
      ->check(CLI::Range(0.5, 0.9999));
  cmd->add_option("--worker", f->options.worker,
                  "worker for the serial/threads/processes runs (default: the one with most slots)");
  cmd->add_flag("--sweep", f->options.sweep, "also run the fleet on 1, 2, ... slots: the scaling curve");
  cmd->add_option("--svg", f->svg_path, "with --sweep: draw the scaling curve to this SVG file");
  return {cmd, [f](const Session& s) { return RunBenchCommand(s, *f); }};
}

// --- cancel, drain ---

// Prints what a job or worker has become: {"<key>": who, "state": state},
// or "who state".
ExitCode PrintNewState(const Session& s, const std::string& key, const std::string& who, const std::string& state) {
  PrintResult(
      s.json, [&] { return json{{key, who}, {"state", state}}; }, [&] { return who + " " + state + "\n"; });
  return kExitOk;
}

ExitCode RunCancel(const Session& s, const std::string& job) {
  absl::StatusOr<v1::JobState> state = s.client.Cancel(job);
  if (!state.ok()) return Fail(state.status());
  return PrintNewState(s, "id", job, report::JobStateName(*state));
}

ExitCode RunDelete(const Session& s, const std::vector<std::string>& ids) {
  ExitCode code = kExitOk;
  std::vector<std::string> deleted;
  for (const std::string& id : ids) {
    if (absl::Status st = s.client.Delete(id); !st.ok()) {
      const ExitCode failed = Fail(st);
      if (code == kExitOk) code = failed;
      continue;
    }
    deleted.push_back(id);
  }
  PrintResult(
      s.json, [&] { return json{{"deleted", deleted}}; },
      [&] { return deleted.empty() ? std::string() : absl::StrCat(absl::StrJoin(deleted, "\n"), " deleted\n"); });
  return code;
}

Command AddDelete(CLI::App& app) {
  auto ids = std::make_shared<std::vector<std::string>>();
  CLI::App* cmd = app.add_subcommand("delete", "remove finished jobs and their reports");
  cmd->add_option("JOB", *ids, "job ids")->required();
  return {cmd, [ids](const Session& s) { return RunDelete(s, *ids); }};
}

ExitCode RunDrain(const Session& s, const std::string& worker) {
  absl::StatusOr<v1::WorkerState> state = s.client.Drain(worker);
  if (!state.ok()) return Fail(state.status());
  return PrintNewState(s, "name", worker, report::WorkerStateName(*state));
}

// A subcommand of one required argument (a job id, a worker name).
Command AddOneArgument(CLI::App& app, const std::string& name, const std::string& description,
                       const std::string& argument, const std::string& argument_description,
                       ExitCode (*run)(const Session&, const std::string&)) {
  auto value = std::make_shared<std::string>();
  CLI::App* cmd = app.add_subcommand(name, description);
  cmd->add_option(argument, *value, argument_description)->required();
  return {cmd, [value, run](const Session& s) { return run(s, *value); }};
}

void AddGlobalFlags(CLI::App& app, GlobalFlags& flags) {
  app.add_option("--coordinator", flags.coordinator, "coordinator address (host:port)")->capture_default_str();
  app.add_option("-o,--output", flags.output,
                 "output format: table or json (default: table on a terminal, json otherwise)")
      ->check(CLI::IsMember({"table", "json"}));
  flags.security.AddTo(app);
  app.add_option("--timeout", flags.timeout, "deadline of each call (not of --wait)")
      ->capture_default_str()
      ->check(DurationValidator());
  BindEnvironment(app);
}

}  // namespace

bool JsonOutput(const GlobalFlags& flags, bool stdout_is_terminal) {
  return flags.output.empty() ? !stdout_is_terminal : flags.output == "json";
}

absl::StatusOr<CoordinatorClient::Options> ClientOptions(const GlobalFlags& flags) {
  CoordinatorClient::Options options;
  options.address = flags.coordinator;
  BF_ASSIGN_OR_RETURN(options.timeout, ParseDurationFlag("--timeout", flags.timeout));
  BF_ASSIGN_OR_RETURN(options.security, flags.security.Load());
  return options;
}

std::vector<Command> SetUpCommandLine(CLI::App& app, GlobalFlags& flags) {
  app.require_subcommand(1);
  // Global flags may also follow the command: `coordctl workers -o json`.
  app.fallthrough();
  // For every option, the subcommands' too (they copy it when added).
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  AddGlobalFlags(app, flags);
  std::vector<Command> commands{AddSubmit(app), AddStatus(app), AddWatch(app)};
  const Command jobs = AddJobs(app);
  commands.push_back(AddJobsPrune(*jobs.app));  // before `jobs`: both are parsed for `jobs prune`
  commands.push_back(jobs);
  for (Command c : {AddWorkers(app), AddHealth(app), AddTimeline(app), AddCompare(app), AddBench(app),
                    AddOneArgument(app, "cancel", "cancel a job", "JOB", "job id", RunCancel), AddDelete(app),
                    AddOneArgument(app, "drain", "stop giving tasks to a worker; running ones finish", "WORKER",
                                   "worker name", RunDrain)}) {
    commands.push_back(std::move(c));
  }
  return commands;
}

}  // namespace busyfleet::coordctl
