// Issue 7 target 2 (issue 17: p50 <= 0.3 ms, p99 <= 1 ms): single-task
// latency through the client API. Runs --jobs sequential one-task jobs
// (countdown, 0 iterations), each submitted and followed until its report
// arrives, on one channel (no new process or connection per job). Before
// each job it times one loopback gRPC round trip on the same channel
// (grpc.health.v1 Check: the floor a job's latency is measured against).
// Prints the submit -> result percentiles and the round trip's as one JSON
// object on stdout, a readable line on stderr.
//   latency_bench --coordinator 127.0.0.1:7070 --jobs 1000 [--token-file F]
// --tasks N makes every job N empty tasks instead of one: with --wait run,
// a job's time is then submit -> report of a big job from a client already
// connected (issue 17 target 1 without a client process's start-up).
// --breakdown asks for the task rows and splits each job's time by the
// report's own timestamps (one clock: client, coordinator and worker on one
// host), which shows where the time goes; the rows cost a little.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "common/rpc/client_security.h"
#include "coordinator/ctl/coordctl_client.h"

namespace {

namespace v1 = busyfleet::v1;
using busyfleet::coordctl::CoordinatorClient;

double Percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t i = static_cast<size_t>(q * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

double Ms(absl::Duration d) { return absl::ToDoubleMilliseconds(d); }

absl::Time FromProto(const google::protobuf::Timestamp& t) {
  return absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos());
}

struct Options {
  int jobs = 1000;
  int warmup = 20;
  int tasks = 1;
  std::string mode = "run";
  bool breakdown = false;
};

// One job: its final report, or why it failed.
struct Outcome {
  std::string job_id;
  v1::JobReport report;
};

absl::StatusOr<Outcome> RunOne(CoordinatorClient& client, CoordinatorClient::RunSession* session,
                               const v1::JobSpec& spec, const Options& o) {
  Outcome out;
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  if (session != nullptr) {
    auto last = session->Run(spec, o.breakdown, [](const v1::JobProgress&) {});
    if (!last.ok()) return last.status();
    out.job_id = last->job_id();
    out.report = last->report();
    return out;
  }
  if (o.mode == "run") {
    auto last = client.Run(spec, o.breakdown, deadline, [](const v1::JobProgress&) {});
    if (!last.ok()) return last.status();
    out.job_id = last->job_id();
    out.report = last->report();
    return out;
  }
  auto submitted = client.Submit(spec);
  if (!submitted.ok()) return submitted.status();
  out.job_id = submitted->job_id();
  if (o.mode == "watch") {
    auto last = client.Watch(out.job_id, o.breakdown, deadline, [](const v1::JobProgress&) {});
    if (!last.ok()) return last.status();
    out.report = last->report();
    return out;
  }
  for (;;) {  // poll
    auto report = client.GetJob(out.job_id, o.breakdown);
    if (!report.ok()) return report.status();
    if (report->state() == v1::JOB_STATE_SUCCEEDED || report->state() == v1::JOB_STATE_FAILED ||
        report->state() == v1::JOB_STATE_CANCELLED) {
      out.report = *std::move(report);
      return out;
    }
    if (absl::Now() > deadline) return absl::DeadlineExceededError("the job did not end within 30 s");
  }
}

// Phases of one job by the report's timestamps, in ms, in order: client ->
// submitted (request in), submitted -> assigned (queued), assigned ->
// result received (worker round trip and run), result -> finished,
// finished -> client has the report (notify, write, response out). The
// worker phase splits into assigned -> started on the worker (the
// assignment's way there and the hand-over to a slot), the run, and ended
// -> result received (the hand-over to the stream and the way back).
using Phases = std::map<std::string, std::vector<double>>;
const char* const kPhaseNames[] = {"request", "queued", "worker", "finish", "response",
                                   "worker.to",  "worker.run", "worker.back"};

void AddPhases(absl::Time t0, absl::Time t1, const v1::JobReport& r, Phases* phases) {
  if (r.tasks_size() != 1) return;
  const v1::TaskTiming& t = r.tasks(0);
  const absl::Time submitted = FromProto(r.timing().submitted_at());
  const absl::Time finished = FromProto(r.timing().finished_at());
  const absl::Time assigned = submitted + absl::Seconds(t.queued_seconds());
  // The task's end on the coordinator's clock, plus the result's way back.
  const absl::Time result = submitted + absl::Seconds(t.start_offset_seconds() + t.seconds() + t.result_seconds());
  const absl::Time started = submitted + absl::Seconds(t.start_offset_seconds());
  const double v[] = {Ms(submitted - t0),     Ms(assigned - submitted), Ms(result - assigned),
                      Ms(finished - result),  Ms(t1 - finished),        Ms(started - assigned),
                      t.seconds() * 1e3,      t.result_seconds() * 1e3};
  for (size_t i = 0; i < std::size(kPhaseNames); ++i) (*phases)[kPhaseNames[i]].push_back(v[i]);
}

std::string PhaseLine(const Phases& phases) {
  std::vector<std::string> parts;
  for (const char* name : kPhaseNames) {
    auto it = phases.find(name);
    if (it == phases.end()) continue;
    parts.push_back(absl::StrFormat("%s p50 %.3f p99 %.3f", name, Percentile(it->second, 0.5),
                                    Percentile(it->second, 0.99)));
  }
  return absl::StrJoin(parts, ", ");
}

// The jobs' and round trips' latencies (ms), measured ones only.
struct Samples {
  std::vector<double> jobs;
  std::vector<double> rtt;
  Phases phases;
};

// Runs warm-up and measured jobs; false (having said why) on a failure.
bool Measure(CoordinatorClient& client, const Options& o, Samples* s) {
  v1::JobSpec spec;
  spec.set_name("latency");
  spec.set_kind(v1::TASK_KIND_COUNTDOWN);
  spec.set_tasks(static_cast<uint32_t>(o.tasks));
  spec.set_iterations(0);
  // One stream for every job (its deadline: the whole run's).
  std::unique_ptr<CoordinatorClient::RunSession> session;
  if (o.mode == "session") session = client.OpenRunSession(absl::Now() + absl::Hours(24));
  for (int i = 0; i < o.warmup + o.jobs; ++i) {
    const auto p0 = std::chrono::steady_clock::now();
    if (auto healthy = client.Healthy(); !healthy.ok()) {
      std::fprintf(stderr, "latency_bench: health check: %s\n", healthy.status().ToString().c_str());
      return false;
    }
    const auto p1 = std::chrono::steady_clock::now();
    const absl::Time wall0 = absl::Now();
    auto outcome = RunOne(client, session.get(), spec, o);
    const auto t1 = std::chrono::steady_clock::now();
    const absl::Time wall1 = absl::Now();
    if (!outcome.ok()) {
      std::fprintf(stderr, "latency_bench: job %d (%s): %s\n", i, o.mode.c_str(), outcome.status().ToString().c_str());
      return false;
    }
    const v1::JobReport& r = outcome->report;
    const uint32_t want = static_cast<uint32_t>(o.tasks);
    if (r.state() != v1::JOB_STATE_SUCCEEDED || r.tasks_total() != want || r.tasks_succeeded() != want) {
      std::fprintf(stderr, "latency_bench: job %d (%s) ended %s with %u of %u tasks succeeded\n", i,
                   outcome->job_id.c_str(), v1::JobState_Name(r.state()).c_str(), r.tasks_succeeded(),
                   r.tasks_total());
      return false;
    }
    if (i < o.warmup) continue;
    s->rtt.push_back(std::chrono::duration<double, std::milli>(p1 - p0).count());
    s->jobs.push_back(std::chrono::duration<double, std::milli>(t1 - p1).count());
    if (o.breakdown) AddPhases(wall0, wall1, r, &s->phases);
  }
  if (session != nullptr) {
    if (absl::Status st = session->Close(); !st.ok()) {
      std::fprintf(stderr, "latency_bench: closing the run session: %s\n", st.ToString().c_str());
      return false;
    }
  }
  return true;
}

void Print(const Options& o, const Samples& s) {
  const std::vector<double>& ms = s.jobs;
  double sum = 0;
  for (double v : ms) sum += v;
  const double p50 = Percentile(ms, 0.50), p90 = Percentile(ms, 0.90), p99 = Percentile(ms, 0.99),
               max = *std::max_element(ms.begin(), ms.end());
  const double rtt50 = Percentile(s.rtt, 0.50), rtt99 = Percentile(s.rtt, 0.99);
  std::fprintf(stderr,
               "latency_bench: %d jobs (%s): p50 %.3f ms, p90 %.3f ms, p99 %.3f ms, max %.3f ms; "
               "gRPC round trip p50 %.3f ms, p99 %.3f ms\n",
               o.jobs, o.mode.c_str(), p50, p90, p99, max, rtt50, rtt99);
  if (o.breakdown) std::fprintf(stderr, "latency_bench: phases (ms): %s\n", PhaseLine(s.phases).c_str());
  // tasks_per_s: a job's tasks over its median time.
  std::printf("%s\n", absl::StrFormat("{\"jobs\": %d, \"wait\": \"%s\", \"tasks\": %d, \"mean_ms\": %.4f, "
                                      "\"p50_ms\": %.4f, \"p90_ms\": %.4f, \"p99_ms\": %.4f, \"max_ms\": %.4f, "
                                      "\"rtt_p50_ms\": %.4f, \"rtt_p99_ms\": %.4f, \"tasks_per_s\": %.1f}",
                                      o.jobs, o.mode, o.tasks, sum / static_cast<double>(ms.size()), p50, p90, p99,
                                      max, rtt50, rtt99, p50 > 0 ? o.tasks / (p50 / 1e3) : 0.0)
                          .c_str());
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"latency_bench: submit -> result latency of sequential jobs (one task each unless --tasks)"};
  std::string coordinator = "127.0.0.1:7070";
  Options o;
  app.add_option("--coordinator", coordinator, "coordinator address")->capture_default_str();
  app.add_option("--jobs", o.jobs, "measured jobs")->capture_default_str()->check(CLI::Range(1, 1'000'000));
  app.add_option("--warmup", o.warmup, "jobs run first and not measured")->capture_default_str()->check(CLI::Range(0, 100'000));
  app.add_option("--wait", o.mode, "how the result is awaited: run (RunJob: submit and follow in one stream), session "
                 "(RunJobs: every job on one long-lived stream), watch (SubmitJob then the WatchJob stream) or poll "
                 "(SubmitJob, then GetJob until done)")
      ->capture_default_str()
      ->check(CLI::IsMember({"run", "session", "watch", "poll"}));
  app.add_option("--tasks", o.tasks, "empty tasks per job")->capture_default_str()->check(CLI::Range(1, 1'000'000));
  app.add_flag("--breakdown", o.breakdown, "ask for the task rows and print where each job's time went (stderr)");
  busyfleet::ClientSecurityFlags security_flags;
  security_flags.AddTo(app);
  CLI11_PARSE(app, argc, argv);

  CoordinatorClient::Options options;
  options.address = coordinator;
  auto security = security_flags.Load();
  if (!security.ok()) {
    std::fprintf(stderr, "latency_bench: %s\n", std::string(security.status().message()).c_str());
    return 2;
  }
  options.security = *std::move(security);
  CoordinatorClient client(options);
  Samples samples;
  if (!Measure(client, o, &samples)) return 1;
  Print(o, samples);
  return 0;
}
