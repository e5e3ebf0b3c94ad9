#include "coordinator/core/timing_aggregator.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <map>
#include <set>
#include <tuple>
#include <utility>
#include <vector>

#include <google/protobuf/io/coded_stream.h>

#include "absl/container/flat_hash_map.h"
#include "busyfleet/proto_time.h"
#include "coordinator/core/limits.h"
#include "coordinator/core/slow_cause.h"
#include "common/parallel.h"
#include "common/stats.h"

namespace busyfleet::coordinator {
namespace {

double Seconds(absl::Time from, absl::Time to) { return absl::ToDoubleSeconds(to - from); }

// A sum of nanosecond spans, exact: 2^32 tasks of up to a day each need
// more than 64 bits.
using Nanos = __int128;
double NanosToSeconds(Nanos ns) { return static_cast<double>(ns) / 1e9; }

// Distinct (worker, slot) pairs that ran the job's tasks, at most the spec's
// max_slots (a serial job whose tasks ran one after another on both slots
// of a worker used one slot's worth of parallelism).
uint32_t SlotsUsed(const JobRecord& job, size_t distinct_slots) {
  uint32_t slots = static_cast<uint32_t>(distinct_slots);
  if (job.spec.max_slots() > 0) slots = std::min(slots, job.spec.max_slots());
  return slots;
}

void AddAttempt(const JobRecord& job, uint32_t index, const AttemptRecord& a, absl::Time end_if_open,
                v1::JobReport* r) {
  v1::AttemptTiming* at = r->add_attempts();
  at->set_index(index);
  at->set_attempt(a.attempt);
  at->set_worker(a.worker);
  at->set_host(a.host);
  at->set_slot(a.slot);
  at->set_state(a.state);
  at->set_backup(a.backup);
  at->set_pid(a.pid);
  const absl::Time end = a.ended_at != absl::InfinitePast() ? a.ended_at : end_if_open;
  at->set_start_offset_seconds(Seconds(job.submitted_at, a.started_at));
  at->set_seconds(std::max(0.0, Seconds(a.started_at, end)));
  at->set_cpu_seconds(static_cast<double>(a.cpu_ns) / 1e9);
  at->set_iterations(a.iterations_done);
  at->set_error(a.error);
  if (a.interference) *at->mutable_interference() = *a.interference;
  at->set_calibrated_rate(a.calibrated_rate);
  if (a.calibrated_rate > 0 && at->seconds() > 0 && a.iterations_done > 0) {
    at->set_rate_ratio(static_cast<double>(a.iterations_done) / at->seconds() / a.calibrated_rate);
  }
}

// Rows go in while the reply stays within `budget` bytes (a repeated
// field's row costs its size plus a tag, at most 2 bytes here, and a length
// prefix).
size_t RowBytes(const google::protobuf::Message& row) {
  const size_t n = row.ByteSizeLong();
  return n + 2 + google::protobuf::io::CodedOutputStream::VarintSize64(n);
}
// The reply so far, and room for the omitted-row counters set at the end.
size_t BytesSoFar(const v1::JobReport& r) { return r.ByteSizeLong() + 16; }

void AddAttempts(const JobRecord& job, absl::Time now, uint32_t limit, size_t budget, v1::JobReport* r) {
  const absl::Time open_end = job.finished_at != absl::InfinitePast() ? job.finished_at : now;
  uint32_t omitted = 0;
  size_t used = BytesSoFar(*r);
  for (const TaskRecord& t : job.tasks) {
    const size_t started = t.history().size() + (t.current.started_at != absl::InfinitePast() ? 1 : 0);
    if (static_cast<size_t>(r->attempts_size()) + started > limit || used > budget) {
      omitted += static_cast<uint32_t>(started);
      continue;
    }
    const int before = r->attempts_size();
    for (const AttemptRecord& a : t.history()) AddAttempt(job, t.index, a, open_end, r);
    if (t.current.started_at != absl::InfinitePast()) {
      AttemptRecord last = t.current.ToRecord(t.state, t.backup_won, t.error(), open_end);
      last.ended_at = t.current.ended_at;  // AddAttempt ends an open one at open_end
      if (const v1::Interference* m = t.interference()) last.interference = *m;
      AddAttempt(job, t.index, last, open_end, r);
    }
    size_t task_bytes = 0;
    for (int i = before; i < r->attempts_size(); ++i) task_bytes += RowBytes(r->attempts(i));
    if (used + task_bytes > budget) {  // the task's attempts go together or not at all
      r->mutable_attempts()->DeleteSubrange(before, r->attempts_size() - before);
      omitted += static_cast<uint32_t>(started);
      used = budget + 1;
      continue;
    }
    used += task_bytes;
  }
  r->set_attempts_omitted(omitted);
  std::stable_sort(r->mutable_attempts()->begin(), r->mutable_attempts()->end(),
                   [](const v1::AttemptTiming& a, const v1::AttemptTiming& b) {
                     return a.start_offset_seconds() < b.start_offset_seconds();
                   });
}

void AddHeader(const JobRecord& job, v1::JobReport* r) {
  r->set_schema(kReportSchema);
  r->set_id(job.id);
  r->set_name(job.spec.name());
  r->set_state(job.state);
  r->set_kind(job.spec.kind());
  r->set_error(job.error);
  *r->mutable_spec() = job.spec;
  r->set_tasks_total(static_cast<uint32_t>(job.tasks.size()));
  r->set_tasks_succeeded(job.succeeded);
  r->set_tasks_failed(job.failed);
  r->set_tasks_cancelled(job.cancelled);
  r->set_iterations_total(job.iterations_total);
  r->set_retries(job.retries);
  r->set_duplicates(job.duplicates);
  r->set_backups(job.backups);
  r->set_backups_won(job.backups_won);
  r->set_backups_cancelled(job.backups_cancelled);
  r->set_pending_reason(job.pending_reason);
}

// Interference summed over a worker's measured tasks.
struct InterferenceSums {
  uint32_t tasks = 0;
  double seconds = 0;  // their wall time
  double steal = 0, throttled = 0, wait = 0;
  uint64_t switches = 0;

  void Add(const v1::Interference& m, double task_seconds) {
    ++tasks;
    seconds += task_seconds;
    steal += static_cast<double>(m.steal_ns()) / 1e9;
    throttled += static_cast<double>(m.throttled_ns()) / 1e9;
    wait += static_cast<double>(m.run_queue_wait_ns()) / 1e9;
    switches += m.involuntary_switches();
  }
  void Merge(const InterferenceSums& o) {
    tasks += o.tasks;
    seconds += o.seconds;
    steal += o.steal;
    throttled += o.throttled;
    wait += o.wait;
    switches += o.switches;
  }
};

struct PerWorker {
  std::string host;
  uint32_t tasks = 0;
  uint64_t iterations = 0;
  // Its tasks' run times: summed exactly in nanoseconds (no division a
  // task; 128 bits: 2^32 tasks of a day each overflow 64).
  Nanos busy_ns = 0;
  double busy() const { return NanosToSeconds(busy_ns); }
  std::set<uint32_t> slots;
  // The calibrated rates of its tasks that have one, with how many tasks
  // had each (a few distinct values, however many tasks).
  std::map<double, uint64_t> calibrated_rates;
  uint64_t rated_tasks = 0;
  InterferenceSums interference;

  // Adds the sums of a later part of the table (its host is the later one).
  void Merge(const PerWorker& o) {
    if (o.tasks > 0) host = o.host;
    tasks += o.tasks;
    iterations += o.iterations;
    busy_ns += o.busy_ns;
    slots.insert(o.slots.begin(), o.slots.end());
    for (const auto& [rate, count] : o.calibrated_rates) calibrated_rates[rate] += count;
    rated_tasks += o.rated_tasks;
    interference.Merge(o.interference);
  }
};

// The median of the rates counted, as Quantile(sorted, 0.5) over every
// task's rate would give it.
double MedianRate(const PerWorker& w) {
  const double rank = 0.5 * static_cast<double>(w.rated_tasks - 1);
  const auto lo = static_cast<uint64_t>(rank);
  const uint64_t hi = std::min(lo + 1, w.rated_tasks - 1);
  double lo_value = 0, hi_value = 0;
  uint64_t seen = 0;
  for (const auto& [rate, count] : w.calibrated_rates) {
    if (lo >= seen && lo < seen + count) lo_value = rate;
    if (hi >= seen && hi < seen + count) {
      hi_value = rate;
      break;
    }
    seen += count;
  }
  return lo_value + (hi_value - lo_value) * (rank - static_cast<double>(lo));
}

// A task's rate (iterations / its own seconds) against its core's
// calibrated rate; 0 when either is unknown.
double RateRatio(const TaskRecord& t) {
  const double secs = t.seconds();
  if (t.current.calibrated_rate <= 0 || secs <= 0 || t.current.iterations_done == 0) return 0;
  return static_cast<double>(t.current.iterations_done) / secs / t.current.calibrated_rate;
}

std::optional<double> KnownRatio(double ratio) { return ratio > 0 ? std::optional(ratio) : std::nullopt; }

// The succeeded tasks' run times (what TaskRecord::seconds gives, in ns)
// as SumTasks' one pass over the table counts them: one bucket a
// nanosecond below 512 ns, and above, one a value of the run time's top
// nine bits (256 an octave). A quantile's bucket is known after that pass;
// a bucket under 2^25 ns (33 ms) wide is narrowed to its value by one more
// (16 bits a pass; QuantilesAndStragglers).
class RunTimes {
 public:
  static constexpr int kExactBits = 9;
  static constexpr int kOctaveBits = 8;
  static constexpr size_t kBuckets = (size_t{1} << kExactBits) + (64 - kExactBits) * (size_t{1} << kOctaveBits);

  void Add(int64_t ns) {
    ++count_;
    min_ns_ = std::min(min_ns_, ns);
    max_ns_ = std::max(max_ns_, ns);
    sum_ns_ += ns;
    if (ns < 0) {
      negative_ = true;  // clocks that disagree: QuantilesAndStragglers selects from the whole range
      return;
    }
    if (counts_.empty()) counts_.assign(kBuckets, 0);
    ++counts_[Bucket(static_cast<uint64_t>(ns))];
  }

  uint64_t count() const { return count_; }
  int64_t min_ns() const { return min_ns_; }
  int64_t max_ns() const { return max_ns_; }
  double sum() const { return NanosToSeconds(sum_ns_); }
  bool negative() const { return negative_; }
  const std::vector<uint32_t>& counts() const { return counts_; }

  // Adds the run times another pass counted.
  void Merge(const RunTimes& o) {
    count_ += o.count_;
    min_ns_ = std::min(min_ns_, o.min_ns_);
    max_ns_ = std::max(max_ns_, o.max_ns_);
    sum_ns_ += o.sum_ns_;
    negative_ = negative_ || o.negative_;
    if (o.counts_.empty()) return;
    if (counts_.empty()) counts_.assign(kBuckets, 0);
    for (size_t b = 0; b < kBuckets; ++b) counts_[b] += o.counts_[b];
  }

  static size_t Bucket(uint64_t ns) {
    const int width = std::bit_width(ns);
    if (width <= kExactBits) return static_cast<size_t>(ns);
    return (size_t{1} << kExactBits) + static_cast<size_t>(width - kExactBits - 1) * (size_t{1} << kOctaveBits) +
           static_cast<size_t>((ns >> (width - kExactBits)) & ((uint64_t{1} << kOctaveBits) - 1));
  }
  // Bucket b holds [base, base + 2^bits).
  static std::pair<uint64_t, int> Range(size_t b) {
    if (b < (size_t{1} << kExactBits)) return {b, 0};
    const size_t j = b - (size_t{1} << kExactBits);
    const int bits = static_cast<int>(j >> kOctaveBits) + 1;
    const uint64_t top = (uint64_t{1} << kOctaveBits) + (j & ((size_t{1} << kOctaveBits) - 1));
    return {top << bits, bits};
  }

 private:
  uint64_t count_ = 0;
  int64_t min_ns_ = INT64_MAX;
  int64_t max_ns_ = INT64_MIN;
  Nanos sum_ns_ = 0;
  bool negative_ = false;
  std::vector<uint32_t> counts_;  // by Bucket; a job holds far fewer than 2^32 tasks
};

// Sums over the tasks whose final attempt has timing.
struct TaskTotals {
  absl::Time first_start = absl::InfiniteFuture();
  absl::Time last_end = absl::InfinitePast();
  // Summed exactly in nanoseconds; in seconds through the accessors.
  Nanos serial_ns = 0, cpu_ns = 0, queued_ns = 0, dispatch_ns = 0, result_ns = 0;
  // Queued time of a job without a submission time (absl's seconds).
  double queued_unsubmitted = 0;
  int phase_count = 0;
  // (worker name id, slot) pairs: Name ids, no string per task.
  std::set<std::pair<uint32_t, uint32_t>> slots_used;
  std::map<std::string, PerWorker> per_worker;
  // The work-based serial time: iterations / calibrated rate, summed over
  // succeeded tasks; invalid once one of them has no calibrated rate.
  double work_serial = 0;
  bool work_serial_valid = true;
  uint32_t slow_tasks = 0;
  RunTimes runs;  // the succeeded tasks'

  // Adds the sums of a later part of the table.
  void Merge(const TaskTotals& o) {
    first_start = std::min(first_start, o.first_start);
    last_end = std::max(last_end, o.last_end);
    serial_ns += o.serial_ns;
    cpu_ns += o.cpu_ns;
    queued_ns += o.queued_ns;
    dispatch_ns += o.dispatch_ns;
    result_ns += o.result_ns;
    queued_unsubmitted += o.queued_unsubmitted;
    phase_count += o.phase_count;
    slots_used.insert(o.slots_used.begin(), o.slots_used.end());
    for (const auto& [name, w] : o.per_worker) per_worker[name].Merge(w);
    work_serial += o.work_serial;
    work_serial_valid = work_serial_valid && o.work_serial_valid;
    slow_tasks += o.slow_tasks;
    runs.Merge(o.runs);
  }

  double serial() const { return NanosToSeconds(serial_ns); }
  double cpu() const { return NanosToSeconds(cpu_ns); }
  double queued_sum() const { return queued_unsubmitted + NanosToSeconds(queued_ns); }
  double dispatch_sum() const { return NanosToSeconds(dispatch_ns); }
  double result_sum() const { return NanosToSeconds(result_ns); }
};

void AddWork(const TaskRecord& t, TaskTotals& s) {
  if (t.current.calibrated_rate <= 0) {
    s.work_serial_valid = false;
    return;
  }
  // 0 / rate adds nothing: no division for a task that did no iterations.
  if (t.current.iterations_done > 0) {
    s.work_serial += static_cast<double>(t.current.iterations_done) / t.current.calibrated_rate;
  }
  const double ratio = RateRatio(t);
  if (ratio > 0 && ratio < kSlowRateRatio) ++s.slow_tasks;
}

// SumTasks over tasks [begin, end) of the table.
TaskTotals SumTaskRange(const JobRecord& job, size_t begin, size_t end) {
  TaskTotals s;
  int64_t first_ns = INT64_MAX;
  int64_t last_ns = INT64_MIN;
  const bool submitted = job.submitted_at != absl::InfinitePast();
  const int64_t submitted_ns = submitted ? absl::ToUnixNanos(job.submitted_at) : 0;
  // Runs of tasks share a worker, a slot and a rate: each map and set is
  // looked up once per run, not once per task (a million-task report),
  // and a worker's place is kept while another worker's run goes by
  // (tasks taken one at a time alternate between workers in the table).
  struct Cursor {
    PerWorker* w = nullptr;
    uint32_t host_id = UINT32_MAX;
    uint32_t last_slot = UINT32_MAX;
    uint64_t* rate_count = nullptr;
    double last_rate = 0;
  };
  absl::flat_hash_map<uint32_t, Cursor> cursors;
  Cursor* c = nullptr;
  uint32_t w_id = 0;
  for (size_t i = begin; i < end; ++i) {
    const TaskRecord& t = job.tasks[i];
    if (!t.has_timing()) continue;
    const Attempt& a = t.current;
    first_ns = std::min(first_ns, a.started_at.unix_ns());
    last_ns = std::max(last_ns, a.ended_at.unix_ns());
    const int64_t ran_ns = a.ended_at.unix_ns() - a.started_at.unix_ns();  // what t.seconds() divides
    s.cpu_ns += a.cpu_ns;
    if (c == nullptr || a.worker.id() != w_id) {
      w_id = a.worker.id();
      c = &cursors[w_id];
      if (c->w == nullptr) c->w = &s.per_worker[a.worker];
    }
    PerWorker* w = c->w;
    if (a.host.id() != c->host_id) {
      w->host = a.host;  // the last task's host
      c->host_id = a.host.id();
    }
    if (a.slot != c->last_slot) {
      s.slots_used.insert(std::pair<uint32_t, uint32_t>(a.worker.id(), a.slot));
      w->slots.insert(a.slot);
      c->last_slot = a.slot;
    }
    w->tasks += 1;
    w->iterations += a.iterations_done;
    w->busy_ns += ran_ns;
    if (a.calibrated_rate > 0) {
      if (c->rate_count == nullptr || a.calibrated_rate != c->last_rate) {
        c->rate_count = &w->calibrated_rates[a.calibrated_rate];
        c->last_rate = a.calibrated_rate;
      }
      ++*c->rate_count;
      ++w->rated_tasks;
    }
    if (const v1::Interference* m = t.interference()) w->interference.Add(*m, t.seconds());
    if (t.state == v1::TASK_STATE_SUCCEEDED) {
      s.serial_ns += ran_ns;
      s.runs.Add(ran_ns);
      AddWork(t, s);
      if (a.assigned_at.is_set() && a.result_at.is_set()) {
        if (submitted) {
          s.queued_ns += std::max<int64_t>(0, a.assigned_at.unix_ns() - submitted_ns);
        } else {
          s.queued_unsubmitted += std::max(0.0, Seconds(job.submitted_at, a.assigned_at));
        }
        s.dispatch_ns += std::max<int64_t>(0, a.started_at.unix_ns() - a.assigned_at.unix_ns());
        s.result_ns += std::max<int64_t>(0, a.result_at.unix_ns() - a.ended_at.unix_ns());
        ++s.phase_count;
      }
    }
  }
  if (first_ns != INT64_MAX) {
    s.first_start = absl::FromUnixNanos(first_ns);
    s.last_end = absl::FromUnixNanos(last_ns);
  }
  return s;
}

// The table's sums in one pass; a large table's in parts on more than one
// CPU (the job has ended: its workers and the other CPU wait for the
// report), added in table order.
TaskTotals SumTasks(const JobRecord& job) {
  const size_t n = job.tasks.size();
  std::vector<TaskTotals> parts(ParallelParts(n, kParallelTaskRecords));
  ParallelFor(n, kParallelTaskRecords, [&](size_t part, size_t begin, size_t end) {
    parts[part] = SumTaskRange(job, begin, end);
  });
  for (size_t p = 1; p < parts.size(); ++p) parts[0].Merge(parts[p]);
  return std::move(parts[0]);
}

// The run time, in ns, and the index of each succeeded task with timing
// (what TaskRecord::seconds gives in seconds), in table order.
template <typename F>
void ForEachRunNs(const JobRecord& job, F&& f) {
  for (const TaskRecord& t : job.tasks) {
    if (t.state != v1::TASK_STATE_SUCCEEDED || !t.has_timing()) continue;
    f(t.current.ended_at.unix_ns() - t.current.started_at.unix_ns(), t.index);
  }
}

double StragglerThresholdOf(double p50) { return std::max(kStragglerFactor * p50, p50 + kStragglerFloorSeconds); }

// The succeeded tasks' run times summarized as Summarize over their
// seconds would (the same quantiles; sum and mean, which the report does
// not use, in table order), and the tasks over the straggler threshold
// (AddStragglers), read from the table in place: a radix select of each
// quantile's two ranks inside the bucket SumTasks' pass found for it, the
// ranks sharing each pass, and the stragglers gathered in its last pass
// (any task over the threshold the median's bucket already bounds).
// Nothing copies the run times. Passes over a million tasks: none more
// when every quantile's bucket is one nanosecond wide (run times under
// 512 ns) and no task can straggle, else one for run times under 33 ms.
Summary QuantilesAndStragglers(const JobRecord& job, const RunTimes& runs,
                               std::vector<std::pair<double, uint32_t>>* slow) {
  Summary s;
  s.count = runs.count();
  if (s.count == 0) return s;
  s.sum = runs.sum();
  const auto seconds = [](int64_t ns) { return absl::ToDoubleSeconds(absl::Nanoseconds(ns)); };
  // Each quantile lies between the run times of two ranks.
  const auto ranks_of = [&](double q) {
    const double rank = q * static_cast<double>(s.count - 1);
    const auto lo = static_cast<uint64_t>(std::floor(rank));
    return std::tuple(lo, std::min<uint64_t>(lo + 1, s.count - 1), rank - static_cast<double>(lo));
  };
  constexpr double kQuantiles[] = {0.50, 0.90, 0.99};
  std::set<uint64_t> ranks;
  for (double q : kQuantiles) {
    const auto [lo, hi, frac] = ranks_of(q);
    ranks.insert(lo);
    ranks.insert(hi);
  }
  // Keys are run times from `origin`: 0, or the shortest when a clock ran
  // backwards (then the select starts from the whole range).
  const int64_t origin = runs.negative() ? runs.min_ns() : 0;
  struct Pick {
    uint64_t rank;
    uint64_t k;         // its rank among the keys in [base, base + 2^bits)
    uint64_t base = 0;
    int bits = 0;       // 0: found (the key is base)
    size_t group = 0;   // its range's place in `groups`
  };
  std::vector<Pick> picks;
  if (runs.negative()) {
    const int bits = std::bit_width(static_cast<uint64_t>(runs.max_ns()) - static_cast<uint64_t>(origin));
    for (uint64_t rank : ranks) picks.push_back(Pick{rank, rank, 0, bits});
  } else {
    const std::vector<uint32_t>& counts = runs.counts();
    uint64_t below = 0;
    size_t b = 0;
    for (uint64_t rank : ranks) {  // ascending
      while (below + counts[b] <= rank) below += counts[b++];
      const auto [base, bits] = RunTimes::Range(b);
      picks.push_back(Pick{rank, rank - below, base, bits});
    }
  }
  const uint64_t median_rank = std::get<0>(ranks_of(0.5));
  const auto pick_of = [&picks](uint64_t rank) -> Pick& {
    return *std::find_if(picks.begin(), picks.end(), [rank](const Pick& p) { return p.rank == rank; });
  };
  bool gathered = false;  // `slow` holds every task over the threshold, and maybe some under
  struct Group {
    uint64_t base;
    int bits;
    int shift;
    std::vector<uint64_t> counts;
  };
  std::vector<Group> groups;
  while (std::any_of(picks.begin(), picks.end(), [](const Pick& p) { return p.bits > 0; })) {
    groups.clear();
    bool last = true;
    for (Pick& p : picks) {
      if (p.bits == 0) continue;
      auto at = std::find_if(groups.begin(), groups.end(), [&p](const Group& g) { return g.base == p.base; });
      if (at == groups.end()) {
        const int digit_bits = std::min(16, p.bits);
        groups.push_back(Group{p.base, p.bits, p.bits - digit_bits, std::vector<uint64_t>(size_t{1} << digit_bits)});
        at = groups.end() - 1;
        last = last && at->shift == 0;
      }
      p.group = static_cast<size_t>(at - groups.begin());
    }
    // The median is at least its range's base, and the threshold grows with it.
    const double at_least = StragglerThresholdOf(seconds(origin + static_cast<int64_t>(pick_of(median_rank).base)));
    const bool gather = last && slow != nullptr;
    ForEachRunNs(job, [&](int64_t ns, uint32_t index) {
      const uint64_t key = static_cast<uint64_t>(ns) - static_cast<uint64_t>(origin);
      for (Group& g : groups) {
        const uint64_t offset = key - g.base;
        if (key >= g.base && (g.bits >= 64 || offset >> g.bits == 0)) {
          ++g.counts[offset >> g.shift];
          break;
        }
      }
      if (gather) {
        const double secs = static_cast<double>(ns) / 1e9;
        if (secs > at_least) slow->emplace_back(secs, index);
      }
    });
    gathered = gathered || gather;
    for (Pick& p : picks) {
      if (p.bits == 0) continue;
      const Group& g = groups[p.group];
      uint64_t digit = 0;
      while (p.k >= g.counts[digit]) p.k -= g.counts[digit++];
      p.base += digit << g.shift;
      p.bits = g.shift;
    }
  }
  const auto quantile = [&](double q) {
    const auto [lo, hi, frac] = ranks_of(q);
    const double at_lo = seconds(origin + static_cast<int64_t>(pick_of(lo).base));
    return at_lo + (seconds(origin + static_cast<int64_t>(pick_of(hi).base)) - at_lo) * frac;
  };
  s.min = seconds(runs.min_ns());
  s.max = seconds(runs.max_ns());
  s.p50 = quantile(kQuantiles[0]);
  s.p90 = quantile(kQuantiles[1]);
  s.p99 = quantile(kQuantiles[2]);
  s.mean = s.sum / static_cast<double>(s.count);
  if (slow != nullptr) {
    const double threshold = StragglerThresholdOf(s.p50);
    // The longest as the tasks' own seconds are compared (TaskRecord::seconds).
    if (!gathered && static_cast<double>(runs.max_ns()) / 1e9 > threshold) {
      ForEachRunNs(job, [&](int64_t ns, uint32_t index) {
        const double secs = static_cast<double>(ns) / 1e9;
        if (secs > threshold) slow->emplace_back(secs, index);
      });
    } else if (gathered) {
      std::erase_if(*slow, [threshold](const std::pair<double, uint32_t>& t) { return !(t.first > threshold); });
    }
  }
  return s;
}

// Fills the job's timing; returns its makespan.
double AddTiming(const JobRecord& job, const TaskTotals& s, const Summary& summary, absl::Time now,
                 v1::JobTiming* timing) {
  *timing->mutable_submitted_at() = ToProtoTimestamp(job.submitted_at);
  if (s.first_start != absl::InfiniteFuture()) *timing->mutable_started_at() = ToProtoTimestamp(s.first_start);
  if (job.finished_at != absl::InfinitePast()) *timing->mutable_finished_at() = ToProtoTimestamp(job.finished_at);
  const absl::Time wall_end = job.finished_at != absl::InfinitePast() ? job.finished_at : now;
  const double wall = std::max(0.0, Seconds(job.submitted_at, wall_end));
  const double makespan = s.first_start < s.last_end ? Seconds(s.first_start, s.last_end) : 0;
  timing->set_wall_seconds(wall);
  timing->set_makespan_seconds(makespan);
  timing->set_serial_seconds(s.serial());
  timing->set_overhead_seconds(std::max(0.0, wall - makespan));
  timing->set_cpu_seconds(s.cpu());
  const double speedup = makespan > 0 ? s.serial() / makespan : 0;
  timing->set_speedup(speedup);
  const uint32_t slots = SlotsUsed(job, s.slots_used.size());
  timing->set_slots(slots);
  timing->set_efficiency(slots == 0 ? 0 : speedup / static_cast<double>(slots));
  if (s.work_serial_valid && s.work_serial > 0 && makespan > 0) {
    timing->set_work_serial_seconds(s.work_serial);
    timing->set_work_speedup(s.work_serial / makespan);
    timing->set_work_efficiency(slots == 0 ? 0 : s.work_serial / makespan / static_cast<double>(slots));
  }
  timing->set_slow_tasks(s.slow_tasks);
  v1::TaskDurationStats* ts = timing->mutable_task_seconds();
  ts->set_min(summary.min);
  ts->set_p50(summary.p50);
  ts->set_p90(summary.p90);
  ts->set_p99(summary.p99);
  ts->set_max(summary.max);
  if (s.phase_count > 0) {
    timing->set_mean_queued_seconds(s.queued_sum() / s.phase_count);
    timing->set_mean_dispatch_seconds(s.dispatch_sum() / s.phase_count);
    timing->set_mean_result_seconds(s.result_sum() / s.phase_count);
  }
  return makespan;
}

void AddWorkerInterference(const InterferenceSums& m, v1::WorkerTiming* wt) {
  wt->set_tasks_measured(m.tasks);
  if (m.tasks == 0) return;
  wt->set_steal_share(m.seconds > 0 ? std::min(1.0, m.steal / m.seconds) : 0);
  wt->set_throttled_seconds(m.throttled);
  wt->set_throttled_share(m.seconds > 0 ? std::min(1.0, m.throttled / m.seconds) : 0);
  wt->set_run_queue_wait_seconds(m.wait);
  wt->set_involuntary_switches(m.switches);
}

void AddWorkers(const TaskTotals& s, const std::map<std::string, WorkerFacts>& workers, double makespan,
                v1::JobReport* r) {
  for (const auto& [name, w] : s.per_worker) {
    v1::WorkerTiming* wt = r->add_workers();
    wt->set_name(name);
    auto facts = workers.find(name);
    wt->set_host(facts != workers.end() && !facts->second.host.empty() ? facts->second.host : w.host);
    wt->set_slots(facts != workers.end() ? facts->second.slots : static_cast<uint32_t>(w.slots.size()));
    wt->set_slots_used(static_cast<uint32_t>(w.slots.size()));
    wt->set_tasks(w.tasks);
    wt->set_iterations(w.iterations);
    const double busy = w.busy();
    wt->set_busy_seconds(busy);
    const double capacity = static_cast<double>(w.slots.size()) * makespan;
    wt->set_utilization(capacity > 0 ? busy / capacity : 0);
    wt->set_iterations_per_second(busy > 0 ? static_cast<double>(w.iterations) / busy : 0);
    if (w.rated_tasks > 0) {
      const double rate = MedianRate(w);
      wt->set_calibrated_rate(rate);
      wt->set_rate_ratio(wt->iterations_per_second() / rate);
    }
    AddWorkerInterference(w.interference, wt);
  }
}

// Tasks over kStragglerFactor x the median (and at least a millisecond over
// it: microsecond tasks jitter by more than half their length without
// straggling), as QuantilesAndStragglers gathers them; the slowest
// kMaxStragglersListed, in index order.
void AddStragglers(std::vector<std::pair<double, uint32_t>> slow, v1::JobReport* r) {
  r->set_stragglers_total(static_cast<uint32_t>(slow.size()));
  if (slow.size() > kMaxStragglersListed) {
    std::nth_element(slow.begin(), slow.begin() + kMaxStragglersListed, slow.end(), std::greater<>());
    slow.resize(kMaxStragglersListed);
  }
  std::sort(slow.begin(), slow.end(), [](const auto& a, const auto& b) { return a.second < b.second; });
  for (const auto& [seconds, index] : slow) r->add_stragglers(index);
}

// `straggler`: the row gets its slow_cause.
void AddTaskRow(const JobRecord& job, const TaskRecord& t, bool straggler, v1::TaskTiming* tt) {
  const Attempt& a = t.current;
  tt->set_index(t.index);
  tt->set_worker(a.worker);
  tt->set_slot(a.slot);
  tt->set_attempt(a.number);
  tt->set_state(t.state);
  tt->set_iterations(job.task_iterations(t.index));
  tt->set_error(t.error());
  tt->set_speculated(t.speculated);
  tt->set_backup_won(t.backup_won);
  tt->set_pid(a.pid);
  if (a.start_cpu >= 0) tt->set_start_cpu(static_cast<uint32_t>(a.start_cpu));
  if (a.end_cpu >= 0) tt->set_end_cpu(static_cast<uint32_t>(a.end_cpu));
  tt->set_migrated(a.migrated);
  tt->set_bound_cpus(a.bound_cpus);
  const v1::Interference* measured = t.interference();
  if (measured != nullptr) *tt->mutable_interference() = *measured;
  if (straggler) {
    tt->set_slow_cause(StragglerCause(measured ? std::optional(*measured) : std::nullopt, t.seconds(),
                                      KnownRatio(RateRatio(t))));
  }
  if (!t.has_timing()) return;
  tt->set_start_offset_seconds(Seconds(job.submitted_at, a.started_at));
  tt->set_seconds(t.seconds());
  tt->set_cpu_seconds(static_cast<double>(a.cpu_ns) / 1e9);
  tt->set_calibrated_rate(a.calibrated_rate);
  tt->set_rate_ratio(RateRatio(t));
  if (a.assigned_at != absl::InfinitePast()) {
    tt->set_queued_seconds(std::max(0.0, Seconds(job.submitted_at, a.assigned_at)));
    tt->set_dispatch_seconds(std::max(0.0, Seconds(a.assigned_at, a.started_at)));
  }
  if (a.result_at != absl::InfinitePast()) {
    tt->set_result_seconds(std::max(0.0, Seconds(a.ended_at, a.result_at)));
  }
}

// Rows [task_offset, task_offset + task_limit) while they fit `budget`;
// the rest of the page is counted in task_rows_omitted.
void AddTaskRows(const JobRecord& job, const ReportOptions& options, v1::JobReport* r) {
  const size_t first = std::min<size_t>(options.task_offset, job.tasks.size());
  const size_t last = first + std::min<size_t>(options.task_limit, job.tasks.size() - first);
  r->set_tasks_offset(static_cast<uint32_t>(first));
  r->mutable_tasks()->Reserve(static_cast<int>(last - first));
  size_t used = BytesSoFar(*r);
  for (size_t i = first; i < last; ++i) {
    v1::TaskTiming* tt = r->add_tasks();
    const uint32_t index = job.tasks[i].index;
    AddTaskRow(job, job.tasks[i], std::binary_search(r->stragglers().begin(), r->stragglers().end(), index), tt);
    used += RowBytes(*tt);
    if (used > options.max_bytes) {
      r->mutable_tasks()->RemoveLast();
      r->set_task_rows_omitted(static_cast<uint32_t>(last - i));
      return;
    }
  }
}

}  // namespace

v1::JobReport BuildReport(const JobRecord& job, const std::map<std::string, WorkerFacts>& workers,
                          absl::Time now, const ReportOptions& options) {
  v1::JobReport r;
  AddHeader(job, &r);
  const TaskTotals totals = SumTasks(job);
  std::vector<std::pair<double, uint32_t>> slow;
  const Summary summary = QuantilesAndStragglers(job, totals.runs, &slow);
  const double makespan = AddTiming(job, totals, summary, now, r.mutable_timing());
  AddWorkers(totals, workers, makespan, &r);
  AddStragglers(std::move(slow), &r);
  if (options.tasks && !(options.summarize_large && job.tasks.size() > options.task_limit)) {
    AddTaskRows(job, options, &r);
  }
  if (options.attempts) AddAttempts(job, now, options.attempt_limit, options.max_bytes, &r);
  return r;
}

std::optional<absl::Duration> StragglerThreshold(const JobRecord& job) {
  std::vector<double> done;
  done.reserve(job.succeeded);
  for (const TaskRecord& t : job.tasks) {
    if (t.state == v1::TASK_STATE_SUCCEEDED && t.has_timing()) done.push_back(t.seconds());
  }
  if (done.empty()) return std::nullopt;
  std::nth_element(done.begin(), done.begin() + static_cast<std::ptrdiff_t>(done.size() / 2), done.end());
  return absl::Seconds(kStragglerFactor * done[done.size() / 2]);
}

v1::JobSummary BuildSummary(const JobRecord& job, absl::Time now) {
  v1::JobSummary s;
  s.set_id(job.id);
  s.set_name(job.spec.name());
  s.set_state(job.state);
  s.set_kind(job.spec.kind());
  s.set_tasks(job.total_tasks());
  s.set_tasks_done(job.done());
  *s.mutable_submitted_at() = ToProtoTimestamp(job.submitted_at);
  const absl::Time end = job.finished_at != absl::InfinitePast() ? job.finished_at : now;
  s.set_wall_seconds(std::max(0.0, absl::ToDoubleSeconds(end - job.submitted_at)));
  return s;
}

v1::JobProgress BuildProgress(const JobRecord& job, absl::Time now) {
  v1::JobProgress p;
  p.set_job_id(job.id);
  p.set_state(job.state);
  p.set_tasks_total(static_cast<uint32_t>(job.tasks.size()));
  p.set_tasks_done(job.done());
  p.set_tasks_running(job.running);
  p.set_tasks_failed(job.failed);
  p.set_iterations_total(job.iterations_total);
  p.set_iterations_done(job.iterations_done);
  const absl::Time end = job.finished_at != absl::InfinitePast() ? job.finished_at : now;
  const double elapsed = std::max(0.0, Seconds(job.submitted_at, end));
  p.set_elapsed_seconds(elapsed);
  p.set_iterations_per_second(elapsed > 0 ? static_cast<double>(job.iterations_done) / elapsed : 0);
  double eta = -1;
  if (IsTerminal(job.state)) {
    eta = 0;
  } else if (job.done() > 0 && elapsed > 0) {
    // By tasks when iterations say nothing (spin, sleep, empty countdowns).
    const double fraction =
        job.iterations_total > 0
            ? static_cast<double>(job.iterations_done) / static_cast<double>(job.iterations_total)
            : static_cast<double>(job.done()) / static_cast<double>(job.tasks.size());
    if (fraction > 0) eta = elapsed * (1 - fraction) / fraction;
  }
  p.set_eta_seconds(eta);
  p.set_pending_reason(job.pending_reason);
  return p;
}

}  // namespace busyfleet::coordinator
