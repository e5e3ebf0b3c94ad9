// Issue 7, target 2: single-task latency through the client API. Runs
// --jobs sequential one-task jobs (countdown, 0 iterations), each submitted
// and then followed with WatchJob until its report arrives, on one channel
// (no new process or connection per job). Prints the submit -> result
// percentiles as one JSON object on stdout, a readable line on stderr.
//   latency_bench --coordinator 127.0.0.1:7070 --jobs 1000 [--token-file F]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "common/rpc/client_security.h"
#include "coordinator/ctl/coordctl_client.h"

namespace {

namespace v1 = busyfleet::v1;

double Percentile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  const size_t i = static_cast<size_t>(q * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"latency_bench: submit -> result latency of sequential one-task jobs"};
  std::string coordinator = "127.0.0.1:7070";
  int jobs = 1000;
  int warmup = 20;
  std::string mode = "run";
  app.add_option("--coordinator", coordinator, "coordinator address")->capture_default_str();
  app.add_option("--jobs", jobs, "measured jobs")->capture_default_str()->check(CLI::Range(1, 1'000'000));
  app.add_option("--warmup", warmup, "jobs run first and not measured")->capture_default_str()->check(CLI::Range(0, 100'000));
  app.add_option("--wait", mode, "how the result is awaited: run (RunJob: submit and follow in one stream), watch (SubmitJob then the "
                 "WatchJob stream) or poll (SubmitJob, then GetJob until done)")
      ->capture_default_str()
      ->check(CLI::IsMember({"run", "watch", "poll"}));
  busyfleet::ClientSecurityFlags security_flags;
  security_flags.AddTo(app);
  CLI11_PARSE(app, argc, argv);

  busyfleet::coordctl::CoordinatorClient::Options options;
  options.address = coordinator;
  auto security = security_flags.Load();
  if (!security.ok()) {
    std::fprintf(stderr, "latency_bench: %s\n", std::string(security.status().message()).c_str());
    return 2;
  }
  options.security = *std::move(security);
  busyfleet::coordctl::CoordinatorClient client(options);

  v1::JobSpec spec;
  spec.set_name("latency");
  spec.set_kind(v1::TASK_KIND_COUNTDOWN);
  spec.set_tasks(1);
  spec.set_iterations(0);

  std::vector<double> ms;
  ms.reserve(static_cast<size_t>(jobs));
  for (int i = 0; i < warmup + jobs; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    std::string job_id;
    v1::JobState state = v1::JOB_STATE_UNSPECIFIED;
    uint32_t done = 0;
    if (mode == "run") {
      auto last = client.Run(spec, /*include_tasks=*/false, absl::Now() + absl::Seconds(30),
                             [](const v1::JobProgress&) {});
      if (!last.ok()) {
        std::fprintf(stderr, "latency_bench: job %d: run: %s\n", i, last.status().ToString().c_str());
        return 1;
      }
      job_id = last->job_id();
      state = last->report().state();
      done = last->report().tasks_total();
    } else {
      auto submitted = client.Submit(spec);
      if (!submitted.ok()) {
        std::fprintf(stderr, "latency_bench: job %d: submit: %s\n", i, submitted.status().ToString().c_str());
        return 1;
      }
      job_id = submitted->job_id();
    }
    if (mode == "watch") {
      auto last = client.Watch(job_id, /*include_tasks=*/false, absl::Now() + absl::Seconds(30),
                               [](const v1::JobProgress&) {});
      if (!last.ok()) {
        std::fprintf(stderr, "latency_bench: job %d: watch: %s\n", i, last.status().ToString().c_str());
        return 1;
      }
      state = last->report().state();
      done = last->report().tasks_total();
    } else if (mode == "poll") {
      const absl::Time deadline = absl::Now() + absl::Seconds(30);
      for (;;) {
        auto report = client.GetJob(job_id, /*include_tasks=*/false);
        if (!report.ok()) {
          std::fprintf(stderr, "latency_bench: job %d: get: %s\n", i, report.status().ToString().c_str());
          return 1;
        }
        if (report->state() == v1::JOB_STATE_SUCCEEDED || report->state() == v1::JOB_STATE_FAILED ||
            report->state() == v1::JOB_STATE_CANCELLED) {
          state = report->state();
          done = report->tasks_total();
          break;
        }
        if (absl::Now() > deadline) {
          std::fprintf(stderr, "latency_bench: job %d did not end within 30 s\n", i);
          return 1;
        }
      }
    }
    const double elapsed = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    if (state != v1::JOB_STATE_SUCCEEDED || done != 1) {
      std::fprintf(stderr, "latency_bench: job %d (%s) ended %s with %u tasks\n", i, job_id.c_str(),
                   v1::JobState_Name(state).c_str(), done);
      return 1;
    }
    if (i >= warmup) ms.push_back(elapsed);
  }
  double sum = 0;
  for (double v : ms) sum += v;
  const double p50 = Percentile(ms, 0.50), p90 = Percentile(ms, 0.90), p99 = Percentile(ms, 0.99),
               max = *std::max_element(ms.begin(), ms.end());
  std::fprintf(stderr, "latency_bench: %d jobs (%s): p50 %.3f ms, p90 %.3f ms, p99 %.3f ms, max %.3f ms\n", jobs,
               mode.c_str(), p50, p90, p99, max);
  std::printf("%s\n", absl::StrFormat("{\"jobs\": %d, \"wait\": \"%s\", \"mean_ms\": %.4f, \"p50_ms\": %.4f, "
                                      "\"p90_ms\": %.4f, \"p99_ms\": %.4f, \"max_ms\": %.4f}",
                                      jobs, mode, sum / static_cast<double>(ms.size()), p50, p90, p99, max)
                          .c_str());
  return 0;
}
