#include "coordinator/ctl/compare_format.h"

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/trials.h"
#include "coordinator/report/format.h"
#include "coordinator/report/report_format.h"
#include "coordinator/report/text_table.h"

namespace busyfleet::coordctl {

using report::Fixed;
using report::HumanCount;
using report::JobStateName;
using report::JsonNumber;
using report::Multiple;
using report::Percent;
using report::RenderTextTable;
using report::TaskCount;
namespace {

using nlohmann::json;

enum class Kind { kSeconds, kSpeedup, kFraction, kCount, kLargeCount };

struct Metric {
  const char* key;
  const char* label;  // In the text table.
  Kind kind;
  double (*get)(const v1::JobReport&);
};

const std::vector<Metric>& Metrics() {
  static const std::vector<Metric>* const kMetrics = new std::vector<Metric>{
      {"wall_seconds", "wall (s)", Kind::kSeconds,
       [](const v1::JobReport& r) { return r.timing().wall_seconds(); }},
      {"makespan_seconds", "makespan (s)", Kind::kSeconds,
       [](const v1::JobReport& r) { return r.timing().makespan_seconds(); }},
      {"serial_seconds", "serial-equiv (s)", Kind::kSeconds,
       [](const v1::JobReport& r) { return r.timing().serial_seconds(); }},
      {"overhead_seconds", "overhead (s)", Kind::kSeconds,
       [](const v1::JobReport& r) { return r.timing().overhead_seconds(); }},
      {"speedup", "speedup", Kind::kSpeedup,
       [](const v1::JobReport& r) { return r.timing().speedup(); }},
      {"efficiency", "efficiency", Kind::kFraction,
       [](const v1::JobReport& r) { return r.timing().efficiency(); }},
      {"slots", "slots", Kind::kCount,
       [](const v1::JobReport& r) {
         return static_cast<double>(r.timing().slots());
       }},
      {"cpu_seconds", "CPU (s)", Kind::kSeconds,
       [](const v1::JobReport& r) { return r.timing().cpu_seconds(); }},
      {"task_p50_seconds", "task p50 (s)", Kind::kSeconds,
       [](const v1::JobReport& r) { return r.timing().task_seconds().p50(); }},
      {"task_p99_seconds", "task p99 (s)", Kind::kSeconds,
       [](const v1::JobReport& r) { return r.timing().task_seconds().p99(); }},
      {"mean_queued_seconds", "mean queued (s)", Kind::kSeconds,
       [](const v1::JobReport& r) { return r.timing().mean_queued_seconds(); }},
      {"mean_dispatch_seconds", "mean dispatch (s)", Kind::kSeconds,
       [](const v1::JobReport& r) {
         return r.timing().mean_dispatch_seconds();
       }},
      {"mean_result_seconds", "mean result (s)", Kind::kSeconds,
       [](const v1::JobReport& r) { return r.timing().mean_result_seconds(); }},
      {"tasks", "tasks", Kind::kCount,
       [](const v1::JobReport& r) {
         return static_cast<double>(TaskCount(r));
       }},
      {"iterations_total", "iterations", Kind::kLargeCount,
       [](const v1::JobReport& r) {
         return static_cast<double>(r.iterations_total());
       }},
      {"work_serial_seconds", "work-serial (s)", Kind::kSeconds,
       [](const v1::JobReport& r) { return r.timing().work_serial_seconds(); }},
      {"work_speedup", "work speedup", Kind::kSpeedup,
       [](const v1::JobReport& r) { return r.timing().work_speedup(); }},
  };
  return *kMetrics;
}

// Counts stay integral in JSON; uint64 iterations read exactly.
json MetricValue(const Metric& m, const v1::JobReport& r) {
  if (m.kind == Kind::kLargeCount) return json(r.iterations_total());
  if (m.kind == Kind::kCount) return json(static_cast<uint64_t>(m.get(r)));
  return JsonNumber(m.get(r));
}

std::optional<double> Ratio(std::optional<double> a, std::optional<double> b) {
  if (!a || !b || *a == 0) return std::nullopt;
  const double ratio = *b / *a;
  if (!std::isfinite(ratio)) return std::nullopt;
  return ratio;
}

std::optional<double> Finite(double value) {
  if (!std::isfinite(value)) return std::nullopt;
  return value;
}

json OptJson(std::optional<double> value) {
  return value ? json(*value) : json(nullptr);
}

std::string RatioText(std::optional<double> ratio) {
  return ratio ? Multiple(*ratio) : "-";
}

std::string ValueText(Kind kind, std::optional<double> value) {
  if (!value) return "-";
  switch (kind) {
    case Kind::kSeconds:
      return Fixed(*value, 3);
    case Kind::kSpeedup:
      return Multiple(*value);
    case Kind::kFraction:
      return Percent(*value);
    case Kind::kCount:
      return Fixed(*value, 0);
    case Kind::kLargeCount:
      return HumanCount(*value);
  }
  return "-";
}

json Identity(const v1::JobReport& r) {
  return {
      {"id", r.id()}, {"name", r.name()}, {"state", JobStateName(r.state())}};
}

std::string IdentityLine(const char* side, const v1::JobReport& r) {
  std::string line = absl::StrCat(side, ": ", r.id());
  if (!r.name().empty()) absl::StrAppend(&line, " (", r.name(), ")");
  absl::StrAppend(&line, "  ", JobStateName(r.state()), "\n");
  return line;
}

// Iterations per second per slot of each worker named in either report.
struct WorkerRow {
  std::optional<double> a;
  std::optional<double> b;
};

std::map<std::string, WorkerRow> WorkerRows(const v1::JobReport& a,
                                            const v1::JobReport& b) {
  std::map<std::string, WorkerRow> rows;
  for (const v1::WorkerTiming& w : a.workers()) {
    WorkerRow& row = rows[w.name()];
    if (!row.a) row.a = Finite(w.iterations_per_second());
  }
  for (const v1::WorkerTiming& w : b.workers()) {
    WorkerRow& row = rows[w.name()];
    if (!row.b) row.b = Finite(w.iterations_per_second());
  }
  return rows;
}

// One metric over each side's jobs.
struct SetRow {
  std::vector<double> a;
  std::vector<double> b;
  TrialStats sa;
  TrialStats sb;
  std::optional<double> ratio;  // median(b) / median(a)
  Interval ci;
  Verdict verdict = Verdict::kSingleTrial;
};

std::vector<double> Values(const std::vector<v1::JobReport>& side, double (*get)(const v1::JobReport&)) {
  std::vector<double> values;
  for (const v1::JobReport& r : side) {
    if (std::optional<double> v = Finite(get(r))) values.push_back(*v);
  }
  return values;
}

SetRow MetricOverSets(const Metric& m, const std::vector<v1::JobReport>& a, const std::vector<v1::JobReport>& b) {
  SetRow row;
  row.a = Values(a, m.get);
  row.b = Values(b, m.get);
  row.sa = SummarizeTrials(row.a);
  row.sb = SummarizeTrials(row.b);
  if (!row.a.empty() && !row.b.empty()) row.ratio = Ratio(row.sa.median, row.sb.median);
  if (row.ratio) {
    row.ci = BootstrapMedianRatio(row.b, row.a);
    row.verdict = Judge(row.ci, 1.0, std::min(row.a.size(), row.b.size()));
  }
  return row;
}

json SideIdentity(const std::vector<v1::JobReport>& side) {
  json ids = json::array();
  for (const v1::JobReport& r : side) ids.push_back(r.id());
  json identity = Identity(side.front());
  identity["ids"] = std::move(ids);
  return identity;
}

std::string SideLine(const char* side, const std::vector<v1::JobReport>& jobs) {
  std::vector<std::string> ids;
  for (const v1::JobReport& r : jobs) ids.push_back(r.id());
  std::string line = absl::StrCat(side, ": ", jobs.size(), jobs.size() == 1 ? " job: " : " jobs: ",
                                  absl::StrJoin(ids, ", "));
  if (!jobs.front().name().empty()) absl::StrAppend(&line, " (", jobs.front().name(), ")");
  return line + "\n";
}

// "≈ within noise", "higher", "lower", "1 job a side: no interval".
std::string VerdictText(const SetRow& row) {
  if (!row.ratio) return "-";
  switch (row.verdict) {
    case Verdict::kWithinNoise:
      return "≈ within noise";
    case Verdict::kHigher:
      return "B higher";
    case Verdict::kLower:
      return "B lower";
    case Verdict::kSingleTrial:
      break;
  }
  return "no interval (1 job)";
}

}  // namespace

nlohmann::json CompareSetsToJson(const std::vector<v1::JobReport>& a, const std::vector<v1::JobReport>& b) {
  json metrics = json::array();
  for (const Metric& m : Metrics()) {
    const SetRow row = MetricOverSets(m, a, b);
    metrics.push_back({{"metric", m.key},
                       {"a", row.a.empty() ? json(nullptr) : json(row.sa.median)},
                       {"b", row.b.empty() ? json(nullptr) : json(row.sb.median)},
                       {"ratio", OptJson(row.ratio)},
                       {"ratio_low", row.ratio ? json(row.ci.low) : json(nullptr)},
                       {"ratio_high", row.ratio ? json(row.ci.high) : json(nullptr)},
                       {"verdict", row.ratio ? json(VerdictName(row.verdict)) : json(nullptr)},
                       {"a_trials", row.a},
                       {"b_trials", row.b}});
  }
  return {{"schema", 1},
          {"a", SideIdentity(a)},
          {"b", SideIdentity(b)},
          {"confidence", kConfidence},
          {"metrics", std::move(metrics)},
          {"workers", json::array()}};
}

std::string RenderCompareSets(const std::vector<v1::JobReport>& a, const std::vector<v1::JobReport>& b) {
  std::string out = absl::StrCat(SideLine("A", a), SideLine("B", b));
  std::vector<std::vector<std::string>> rows;
  for (const Metric& m : Metrics()) {
    const SetRow row = MetricOverSets(m, a, b);
    auto side = [&](const TrialStats& s, bool empty) {
      if (empty) return std::string("-");
      std::string text = ValueText(m.kind, s.median);
      if (s.n > 1) absl::StrAppend(&text, " [", ValueText(m.kind, s.min), "-", ValueText(m.kind, s.max), "]");
      return text;
    };
    std::string ratio = RatioText(row.ratio);
    if (row.ratio && row.verdict != Verdict::kSingleTrial) {
      absl::StrAppend(&ratio, absl::StrFormat(" [%.2f-%.2f]", row.ci.low, row.ci.high));
    }
    rows.push_back({m.label, side(row.sa, row.a.empty()), side(row.sb, row.b.empty()), ratio, VerdictText(row)});
  }
  absl::StrAppend(&out, "\n",
                  RenderTextTable({{"METRIC", false},
                                   {"A median [min-max]", true},
                                   {"B median [min-max]", true},
                                   {"B/A [95% CI]", true},
                                   {"VERDICT", false}},
                                  rows));
  absl::StrAppend(&out,
                  "\nB/A: median(B) / median(A); [95% CI]: bootstrap interval, each side resampled. \"≈ within "
                  "noise\": the\ninterval holds 1x: these jobs cannot tell A and B apart.\n");
  return out;
}

nlohmann::json CompareToJson(const v1::JobReport& a, const v1::JobReport& b) {
  json metrics = json::array();
  for (const Metric& m : Metrics()) {
    metrics.push_back(
        {{"metric", m.key},
         {"a", MetricValue(m, a)},
         {"b", MetricValue(m, b)},
         {"ratio", OptJson(Ratio(Finite(m.get(a)), Finite(m.get(b))))}});
  }
  json workers = json::array();
  for (const auto& [name, row] : WorkerRows(a, b)) {
    workers.push_back({{"name", name},
                       {"a", OptJson(row.a)},
                       {"b", OptJson(row.b)},
                       {"ratio", OptJson(Ratio(row.a, row.b))}});
  }
  return {{"schema", 1},
          {"a", Identity(a)},
          {"b", Identity(b)},
          {"metrics", std::move(metrics)},
          {"workers", std::move(workers)}};
}

std::string RenderCompare(const v1::JobReport& a, const v1::JobReport& b) {
  std::string out = absl::StrCat(IdentityLine("A", a), IdentityLine("B", b));

  std::vector<std::vector<std::string>> rows;
  for (const Metric& m : Metrics()) {
    const std::optional<double> va = Finite(m.get(a));
    const std::optional<double> vb = Finite(m.get(b));
    rows.push_back({m.label, ValueText(m.kind, va), ValueText(m.kind, vb),
                    RatioText(Ratio(va, vb))});
  }
  absl::StrAppend(
      &out, "\n",
      RenderTextTable(
          {{"METRIC", false}, {"A", true}, {"B", true}, {"B/A", true}}, rows));

  const auto workers = WorkerRows(a, b);
  if (!workers.empty()) {
    rows.clear();
    for (const auto& [name, row] : workers) {
      rows.push_back({name, row.a ? HumanCount(*row.a) : "-",
                      row.b ? HumanCount(*row.b) : "-",
                      RatioText(Ratio(row.a, row.b))});
    }
    absl::StrAppend(&out, "\n",
                    RenderTextTable({{"WORKER", false},
                                     {"A IT/S/SLOT", true},
                                     {"B IT/S/SLOT", true},
                                     {"B/A", true}},
                                    rows));
  }
  return out;
}

}  // namespace busyfleet::coordctl
