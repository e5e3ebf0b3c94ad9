#ifndef BUSYFLEET_PACKED_RESULTS_H_
#define BUSYFLEET_PACKED_RESULTS_H_

// The wire's column form of plain task results (v1::PackedResults, issue 17):
// what a worker packs, what the coordinator reads back. In the message
// library so both ends code them the same way.
//
// A packed entry reads back as the TaskResult it stands for, field for field,
// but for start_wall: it is rebuilt from the group's base (the first entry's
// wall start plus the monotonic time since), so it is off by however far the
// worker's wall clock moved against its monotonic clock within one batch.

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "busyfleet/v1/worker.pb.h"

namespace busyfleet {

// Whether `r` can be packed: SUCCEEDED, no error, not permanent, no
// interference, not migrated, and its clocks within [0, 2^62).
bool Packable(const v1::TaskResult& r);

// Adds results to a TaskUpdates: packable ones as column entries (grouped by
// job and process), the others as TaskResults. `slot_bound_cpus` is what each
// slot is pinned to ("" or empty: not pinned); a result whose bound_cpus
// differs from its slot's entry goes as a TaskResult.
class ResultPacker {
 public:
  ResultPacker(v1::TaskUpdates* updates, const std::vector<std::string>& slot_bound_cpus);
  void Add(const v1::TaskResult& r);
  void Add(v1::TaskResult&& r);

 private:
  struct Group {
    v1::PackedResults* packed;
    int64_t last_index = 0;
    int64_t last_start = 0;
    bool any_start_cpu = false;
    bool any_end_cpu = false;
  };
  // The group for `r`, or null when it cannot be packed.
  Group* GroupFor(const v1::TaskResult& r);
  void Append(Group& g, const v1::TaskResult& r);

  v1::TaskUpdates* updates_;
  const std::vector<std::string>& slot_bound_cpus_;
  bool pinned_ = false;
  std::vector<Group> groups_;
};

// Checks one group: every per-task column as long as index_delta, or
// empty with its constant set (never both; the CPU columns may also be
// empty without one), at most `max_entries` entries, and every rebuilt
// index in [0, 2^32) and clock in [0, max_clock_ns). The error names the
// field and the limit.
absl::Status ValidatePacked(const v1::PackedResults& p, int max_entries, int64_t max_clock_ns);

// Entries in every group of `updates` (for a per-message limit).
int PackedEntries(const v1::TaskUpdates& updates);

// One packed entry as plain values (what the coordinator reads, without a
// TaskResult message per entry).
struct PackedEntry {
  uint32_t index = 0;
  uint32_t attempt = 0;
  uint32_t slot = 0;
  int64_t start_mono_ns = 0;
  int64_t end_mono_ns = 0;
  int64_t cpu_ns = 0;
  uint64_t iterations_done = 0;
  // The CPU at start and at end plus one; 0: unknown.
  uint32_t start_cpu_plus1 = 0;
  uint32_t end_cpu_plus1 = 0;
};

// Calls fn(const PackedEntry&) for each entry of `p`, in order. The group
// gives the rest: job_id, pid, the slot's bound_cpus (BoundCpusOf) and the
// wall start (base_unix_ns + start_mono_ns - base_mono_ns when base_unix_ns
// is set). `p` must have passed ValidatePacked.
template <typename Fn>
void ForEachPackedEntry(const v1::PackedResults& p, Fn&& fn);

// What the entries of `slot` were pinned to ("" when not pinned).
const std::string& BoundCpusOf(const v1::PackedResults& p, uint32_t slot);

// Sets the per-entry fields of `r` to entry `e` of `p`; the group's job_id,
// state (SUCCEEDED) and pid are the caller's to set (once, for a message
// reused across entries).
void SetPackedResult(const v1::PackedResults& p, const PackedEntry& e, v1::TaskResult& r);

// Calls fn(const v1::TaskResult&) for each entry of `p`, in order, reusing
// one message (do not keep a reference). `p` must have passed ValidatePacked.
template <typename Fn>
void ForEachPackedResult(const v1::PackedResults& p, Fn&& fn);

// Moves every packed entry of `updates` back into its `results` (the worker
// keeps a batch that could not be written).
void UnpackInto(v1::TaskUpdates& updates);

// A packed column as a writer builds it: one value (its constant, e.g.
// iterations_done_all) until an entry differs; from then on a column in
// full, the entries before it written out. The writer sets the constant
// from all() once the group is complete.
template <typename T>
class ConstantOrColumn {
 public:
  // Entry `n` (0-based, in order) is `v`; `append` adds one value to the
  // column.
  template <typename Append>
  void Add(int n, T v, Append&& append) {
    if (n == 0) {
      value_ = v;
      constant_ = true;
    } else if (!constant_) {
      append(v);
    } else if (v != value_) {
      for (int i = 0; i < n; ++i) append(value_);
      constant_ = false;
      append(v);
    }
  }
  // The constant, if there were entries and every one was it; else null.
  const T* all() const { return constant_ ? &value_ : nullptr; }

 private:
  T value_{};
  bool constant_ = false;
};

// Writes out `p`'s constant columns (attempt_all and the rest) as full
// columns, for a coordinator that does not read them; the entries read
// back the same.
void ExpandConstants(v1::PackedResults& p);

template <typename Fn>
void ForEachPackedEntry(const v1::PackedResults& p, Fn&& fn) {
  const int n = p.index_delta_size();
  // A column in full, else its constant (or, for the CPUs, unknown).
  const bool attempts = !p.has_attempt_all();
  const bool slots = !p.has_slot_all();
  const bool iterations = !p.has_iterations_done_all();
  const bool start_cpus = p.start_cpu_plus1_size() == n;
  const bool end_cpus = p.end_cpu_plus1_size() == n;
  const uint32_t cpu_all = p.cpu_plus1_all();
  PackedEntry e;
  e.attempt = p.attempt_all();
  e.slot = p.slot_all();
  e.iterations_done = p.iterations_done_all();
  int64_t index = 0;
  int64_t start = p.base_mono_ns();
  for (int i = 0; i < n; ++i) {
    index += p.index_delta(i);
    start += p.start_delta_ns(i);
    e.index = static_cast<uint32_t>(index);
    if (attempts) e.attempt = p.attempt(i);
    if (slots) e.slot = p.slot(i);
    e.start_mono_ns = start;
    const uint64_t wall = p.wall_ns(i);
    e.end_mono_ns = start + static_cast<int64_t>(wall);
    e.cpu_ns = static_cast<int64_t>(p.cpu_is_wall() ? wall : p.cpu_ns(i));
    if (iterations) e.iterations_done = p.iterations_done(i);
    e.start_cpu_plus1 = start_cpus ? p.start_cpu_plus1(i) : cpu_all;
    e.end_cpu_plus1 = end_cpus ? p.end_cpu_plus1(i) : cpu_all;
    fn(static_cast<const PackedEntry&>(e));
  }
}

template <typename Fn>
void ForEachPackedResult(const v1::PackedResults& p, Fn&& fn) {
  v1::TaskResult r;
  r.mutable_task()->set_job_id(p.job_id());
  r.set_state(v1::TASK_STATE_SUCCEEDED);
  r.set_pid(p.pid());
  ForEachPackedEntry(p, [&](const PackedEntry& e) {
    SetPackedResult(p, e, r);
    fn(static_cast<const v1::TaskResult&>(r));
  });
}

}  // namespace busyfleet

#endif  // BUSYFLEET_PACKED_RESULTS_H_
