#include "busyfleet/packed_results.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "busyfleet/proto_time.h"

namespace busyfleet {
namespace {

// Clocks the packer takes (the coordinator's own bound is the same).
constexpr int64_t kClockLimit = int64_t{1} << 62;
// An index step beyond this cannot land in [0, 2^32) from [0, 2^32).
constexpr int64_t kMaxIndexStep = int64_t{1} << 33;
// slot_bound_cpus: one entry per slot, each a CPU list.
constexpr int kMaxSlotEntries = 4096;
constexpr size_t kMaxCpuListBytes = 1024;

int64_t WallNanos(const google::protobuf::Timestamp& ts) {
  if (IsUnset(ts)) return 0;
  return absl::ToUnixNanos(ToAbslTime(ts));
}

absl::Status Column(absl::string_view name, int size, int n, bool may_be_empty) {
  if (size == n || (may_be_empty && size == 0)) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat("packed.", name, " must have one entry per task (", n,
                                                 may_be_empty ? ", or none" : "", "), got ", size));
}

}  // namespace

bool Packable(const v1::TaskResult& r) {
  if (r.state() != v1::TASK_STATE_SUCCEEDED || !r.error().empty() || r.permanent() || r.has_interference() ||
      r.migrated()) {
    return false;
  }
  if (r.start_mono_ns() < 0 || r.start_mono_ns() >= kClockLimit) return false;
  if (r.end_mono_ns() < r.start_mono_ns() || r.end_mono_ns() >= kClockLimit) return false;
  if (r.cpu_ns() < 0 || r.cpu_ns() >= kClockLimit) return false;
  if (r.has_start_cpu() && r.start_cpu() == UINT32_MAX) return false;
  if (r.has_end_cpu() && r.end_cpu() == UINT32_MAX) return false;
  const int64_t wall = WallNanos(r.start_wall());
  return wall >= 0 && wall < kClockLimit;
}

ResultPacker::ResultPacker(v1::TaskUpdates* updates, const std::vector<std::string>& slot_bound_cpus)
    : updates_(updates), slot_bound_cpus_(slot_bound_cpus) {
  for (const std::string& s : slot_bound_cpus_) pinned_ = pinned_ || !s.empty();
}

ResultPacker::Group* ResultPacker::GroupFor(const v1::TaskResult& r) {
  if (!Packable(r)) return nullptr;
  const std::string& pinned_to = pinned_ && r.slot() < slot_bound_cpus_.size() ? slot_bound_cpus_[r.slot()] : "";
  if (r.bound_cpus() != pinned_to) return nullptr;
  for (auto it = groups_.rbegin(); it != groups_.rend(); ++it) {
    if (it->packed->pid() == r.pid() && it->packed->job_id() == r.task().job_id()) return &*it;
  }
  Group& g = groups_.emplace_back();
  g.packed = updates_->add_packed();
  g.packed->set_job_id(r.task().job_id());
  g.packed->set_pid(r.pid());
  g.packed->set_base_mono_ns(r.start_mono_ns());
  g.packed->set_base_unix_ns(WallNanos(r.start_wall()));
  if (pinned_) {
    for (const std::string& s : slot_bound_cpus_) g.packed->add_slot_bound_cpus(s);
  }
  g.last_start = r.start_mono_ns();
  return &g;
}

void ResultPacker::Append(Group& g, const v1::TaskResult& r) {
  v1::PackedResults& p = *g.packed;
  const int n = p.index_delta_size();
  p.add_index_delta(static_cast<int64_t>(r.task().task_index()) - g.last_index);
  g.last_index = r.task().task_index();
  p.add_attempt(r.task().attempt());
  p.add_slot(r.slot());
  p.add_start_delta_ns(r.start_mono_ns() - g.last_start);
  g.last_start = r.start_mono_ns();
  p.add_wall_ns(static_cast<uint64_t>(r.end_mono_ns() - r.start_mono_ns()));
  p.add_cpu_ns(static_cast<uint64_t>(r.cpu_ns()));
  p.add_iterations_done(r.iterations_done());
  // The CPU columns start when the first entry knows a CPU; earlier entries
  // get 0 (unknown).
  if (r.has_start_cpu() && !g.any_start_cpu) {
    g.any_start_cpu = true;
    for (int i = 0; i < n; ++i) p.add_start_cpu_plus1(0);
  }
  if (r.has_end_cpu() && !g.any_end_cpu) {
    g.any_end_cpu = true;
    for (int i = 0; i < n; ++i) p.add_end_cpu_plus1(0);
  }
  if (g.any_start_cpu) p.add_start_cpu_plus1(r.has_start_cpu() ? r.start_cpu() + 1 : 0);
  if (g.any_end_cpu) p.add_end_cpu_plus1(r.has_end_cpu() ? r.end_cpu() + 1 : 0);
}

void ResultPacker::Add(const v1::TaskResult& r) {
  if (Group* g = GroupFor(r)) {
    Append(*g, r);
  } else {
    *updates_->add_results() = r;
  }
}

void ResultPacker::Add(v1::TaskResult&& r) {
  if (Group* g = GroupFor(r)) {
    Append(*g, r);
  } else {
    *updates_->add_results() = std::move(r);
  }
}

absl::Status ValidatePacked(const v1::PackedResults& p, int max_entries, int64_t max_clock_ns) {
  const int n = p.index_delta_size();
  if (n > max_entries) {
    return absl::InvalidArgumentError(
        absl::StrCat("packed.index_delta may have at most ", max_entries, " entries, got ", n));
  }
  // Each per-task column, and its constant when it has one (set: the
  // column is empty); the CPU columns may be empty without it.
  struct ColumnRule {
    const char* name;
    int size;
    const char* constant_name;  // nullptr: no constant
    bool constant;
    bool optional;
  };
  const ColumnRule columns[] = {
      {"attempt", p.attempt_size(), "attempt_all", p.has_attempt_all(), false},
      {"slot", p.slot_size(), "slot_all", p.has_slot_all(), false},
      {"start_delta_ns", p.start_delta_ns_size(), nullptr, false, false},
      {"wall_ns", p.wall_ns_size(), nullptr, false, false},
      {"cpu_ns", p.cpu_ns_size(), "cpu_is_wall", p.cpu_is_wall(), false},
      {"iterations_done", p.iterations_done_size(), "iterations_done_all", p.has_iterations_done_all(), false},
      {"start_cpu_plus1", p.start_cpu_plus1_size(), "cpu_plus1_all", p.has_cpu_plus1_all(), true},
      {"end_cpu_plus1", p.end_cpu_plus1_size(), "cpu_plus1_all", p.has_cpu_plus1_all(), true},
  };
  for (const ColumnRule& c : columns) {
    if (c.constant && c.size != 0) {
      return absl::InvalidArgumentError(absl::StrCat("packed.", c.name, " must be empty when packed.",
                                                     c.constant_name, " is set, got ", c.size));
    }
  }
  for (const ColumnRule& c : columns) {
    if (absl::Status s = Column(c.name, c.size, n, c.constant || c.optional); !s.ok()) return s;
  }
  if (p.slot_bound_cpus_size() > kMaxSlotEntries) {
    return absl::InvalidArgumentError(absl::StrCat("packed.slot_bound_cpus may have at most ", kMaxSlotEntries,
                                                   " entries, got ", p.slot_bound_cpus_size()));
  }
  for (const std::string& s : p.slot_bound_cpus()) {
    if (s.size() > kMaxCpuListBytes) {
      return absl::InvalidArgumentError(absl::StrCat("packed.slot_bound_cpus entries must be at most ",
                                                     kMaxCpuListBytes, " bytes, got ", s.size()));
    }
  }
  if (p.base_mono_ns() < 0 || p.base_mono_ns() >= max_clock_ns) {
    return absl::InvalidArgumentError(
        absl::StrCat("packed.base_mono_ns must be in [0, ", max_clock_ns, "), got ", p.base_mono_ns()));
  }
  if (p.base_unix_ns() < 0 || p.base_unix_ns() >= max_clock_ns) {
    return absl::InvalidArgumentError(
        absl::StrCat("packed.base_unix_ns must be in [0, ", max_clock_ns, "), got ", p.base_unix_ns()));
  }
  int64_t index = 0;
  int64_t start = p.base_mono_ns();
  for (int i = 0; i < n; ++i) {
    const int64_t step = p.index_delta(i);
    if (step <= -kMaxIndexStep || step >= kMaxIndexStep || index + step < 0 || index + step > UINT32_MAX) {
      return absl::InvalidArgumentError(absl::StrCat("packed.index_delta[", i, "] takes the task index out of [0, ",
                                                     UINT32_MAX, "]: ", index, " + ", step));
    }
    index += step;
    const int64_t delta = p.start_delta_ns(i);
    if (delta <= -max_clock_ns || delta >= max_clock_ns || start + delta < 0 || start + delta >= max_clock_ns) {
      return absl::InvalidArgumentError(absl::StrCat("packed.start_delta_ns[", i, "] takes the start out of [0, ",
                                                     max_clock_ns, "): ", start, " + ", delta));
    }
    start += delta;
    if (p.wall_ns(i) >= static_cast<uint64_t>(max_clock_ns - start)) {
      return absl::InvalidArgumentError(absl::StrCat("packed.wall_ns[", i, "] takes the end past ", max_clock_ns,
                                                     ": ", start, " + ", p.wall_ns(i)));
    }
    if (!p.cpu_is_wall() && p.cpu_ns(i) >= static_cast<uint64_t>(max_clock_ns)) {
      return absl::InvalidArgumentError(
          absl::StrCat("packed.cpu_ns[", i, "] must be below ", max_clock_ns, ", got ", p.cpu_ns(i)));
    }
  }
  return absl::OkStatus();
}

int PackedEntries(const v1::TaskUpdates& updates) {
  int64_t n = 0;
  for (const v1::PackedResults& p : updates.packed()) n += p.index_delta_size();
  return n > INT32_MAX ? INT32_MAX : static_cast<int>(n);
}

void SetPackedResult(const v1::PackedResults& p, const PackedEntry& e, v1::TaskResult& r) {
  v1::TaskRef& ref = *r.mutable_task();
  ref.set_task_index(e.index);
  ref.set_attempt(e.attempt);
  r.set_slot(e.slot);
  r.set_start_mono_ns(e.start_mono_ns);
  r.set_end_mono_ns(e.end_mono_ns);
  r.set_cpu_ns(e.cpu_ns);
  r.set_iterations_done(e.iterations_done);
  if (p.base_unix_ns() != 0) {
    *r.mutable_start_wall() =
        ToProtoTimestamp(absl::FromUnixNanos(p.base_unix_ns() + (e.start_mono_ns - p.base_mono_ns())));
  } else {
    r.clear_start_wall();
  }
  if (e.start_cpu_plus1 != 0) {
    r.set_start_cpu(e.start_cpu_plus1 - 1);
  } else {
    r.clear_start_cpu();
  }
  if (e.end_cpu_plus1 != 0) {
    r.set_end_cpu(e.end_cpu_plus1 - 1);
  } else {
    r.clear_end_cpu();
  }
  const std::string& bound = BoundCpusOf(p, e.slot);
  if (!bound.empty()) {
    r.set_bound_cpus(bound);
  } else {
    r.clear_bound_cpus();
  }
}

void ExpandConstants(v1::PackedResults& p) {
  const int n = p.index_delta_size();
  if (p.has_attempt_all()) {
    for (int i = 0; i < n; ++i) p.add_attempt(p.attempt_all());
    p.clear_attempt_all();
  }
  if (p.has_slot_all()) {
    for (int i = 0; i < n; ++i) p.add_slot(p.slot_all());
    p.clear_slot_all();
  }
  if (p.has_iterations_done_all()) {
    for (int i = 0; i < n; ++i) p.add_iterations_done(p.iterations_done_all());
    p.clear_iterations_done_all();
  }
  if (p.cpu_is_wall()) {
    for (int i = 0; i < n; ++i) p.add_cpu_ns(p.wall_ns(i));
    p.clear_cpu_is_wall();
  }
  if (p.has_cpu_plus1_all()) {
    if (p.cpu_plus1_all() != 0) {  // 0: unknown, which empty columns say already
      for (int i = 0; i < n; ++i) {
        p.add_start_cpu_plus1(p.cpu_plus1_all());
        p.add_end_cpu_plus1(p.cpu_plus1_all());
      }
    }
    p.clear_cpu_plus1_all();
  }
}

const std::string& BoundCpusOf(const v1::PackedResults& p, uint32_t slot) {
  static const std::string* const kNone = new std::string();
  return slot < static_cast<uint32_t>(p.slot_bound_cpus_size()) ? p.slot_bound_cpus(static_cast<int>(slot)) : *kNone;
}

void UnpackInto(v1::TaskUpdates& updates) {
  for (const v1::PackedResults& p : updates.packed()) {
    ForEachPackedResult(p, [&](const v1::TaskResult& r) { *updates.add_results() = r; });
  }
  updates.clear_packed();
}

}  // namespace busyfleet
