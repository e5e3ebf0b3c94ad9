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

// Checks one group: every per-task column as long as index_delta (the CPU
// columns may also be empty), at most `max_entries` entries, and every
// rebuilt index in [0, 2^32) and clock in [0, max_clock_ns). The error names
// the field and the limit.
absl::Status ValidatePacked(const v1::PackedResults& p, int max_entries, int64_t max_clock_ns);

// Entries in every group of `updates` (for a per-message limit).
int PackedEntries(const v1::TaskUpdates& updates);

// Calls fn(const v1::TaskResult&) for each entry of `p`, in order, reusing
// one message (do not keep a reference). `p` must have passed ValidatePacked.
template <typename Fn>
void ForEachPackedResult(const v1::PackedResults& p, Fn&& fn);

// Moves every packed entry of `updates` back into its `results` (the worker
// keeps a batch that could not be written).
void UnpackInto(v1::TaskUpdates& updates);

namespace packed_internal {
// Sets `r` to entry `i` of `p`; `index` and `start` carry the running sums.
void Decode(const v1::PackedResults& p, int i, int64_t& index, int64_t& start, v1::TaskResult& r);
}  // namespace packed_internal

template <typename Fn>
void ForEachPackedResult(const v1::PackedResults& p, Fn&& fn) {
  v1::TaskResult r;
  r.mutable_task()->set_job_id(p.job_id());
  r.set_state(v1::TASK_STATE_SUCCEEDED);
  r.set_pid(p.pid());
  int64_t index = 0;
  int64_t start = p.base_mono_ns();
  for (int i = 0; i < p.index_delta_size(); ++i) {
    packed_internal::Decode(p, i, index, start, r);
    fn(static_cast<const v1::TaskResult&>(r));
  }
}

}  // namespace busyfleet

#endif  // BUSYFLEET_PACKED_RESULTS_H_
