#include "worker/cpu_topology.h"

#include <hwloc.h>

#include <algorithm>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace busyfleet::worker {
namespace {

// An hwloc bitmap owned by a unique_ptr.
struct BitmapFree {
  void operator()(hwloc_bitmap_s* b) const { hwloc_bitmap_free(b); }
};
using Bitmap = std::unique_ptr<hwloc_bitmap_s, BitmapFree>;

Bitmap NewBitmap() { return Bitmap(hwloc_bitmap_alloc()); }

std::vector<int> OsIndices(hwloc_const_bitmap_t set) {
  std::vector<int> out;
  int i = -1;
  while ((i = hwloc_bitmap_next(set, i)) != -1) out.push_back(i);
  return out;
}

}  // namespace

struct CpuTopology::Impl {
  hwloc_topology_t topology = nullptr;
  Bitmap usable = NewBitmap();
  ~Impl() {
    if (topology != nullptr) hwloc_topology_destroy(topology);
  }
  // The usable CPUs of `obj`.
  Bitmap UsableOf(hwloc_obj_t obj) const {
    Bitmap set = NewBitmap();
    hwloc_bitmap_and(set.get(), obj->cpuset, usable.get());
    return set;
  }
  // Objects of `type` with at least one usable CPU, in hwloc's logical order.
  std::vector<hwloc_obj_t> UsableObjects(hwloc_obj_type_t type) const {
    std::vector<hwloc_obj_t> out;
    for (hwloc_obj_t o = hwloc_get_next_obj_by_type(topology, type, nullptr); o != nullptr;
         o = hwloc_get_next_obj_by_type(topology, type, o)) {
      if (o->cpuset != nullptr && hwloc_bitmap_intersects(o->cpuset, usable.get())) out.push_back(o);
    }
    return out;
  }
};

std::string BindModeName(BindMode mode) {
  switch (mode) {
    case BindMode::kCores: return "cores";
    case BindMode::kThreads: return "threads";
    case BindMode::kNone: break;
  }
  return "none";
}

CpuTopology::CpuTopology(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
CpuTopology::~CpuTopology() = default;

namespace {

// Initialises and loads; `configure` sets the source before the load.
template <typename Configure>
absl::Status Load(hwloc_topology_t* topology, Configure configure) {
  if (hwloc_topology_init(topology) != 0) return absl::InternalError("hwloc_topology_init failed");
  // Keep the disallowed CPUs in the tree (host_cores counts the whole
  // machine); what is usable is computed from the allowed set.
  hwloc_topology_set_flags(*topology, HWLOC_TOPOLOGY_FLAG_INCLUDE_DISALLOWED);
  if (absl::Status st = configure(*topology); !st.ok()) return st;
  if (hwloc_topology_load(*topology) != 0) return absl::InternalError("hwloc_topology_load failed");
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<CpuTopology>> CpuTopology::Live() {
  auto impl = std::make_unique<Impl>();
  if (absl::Status st = Load(&impl->topology, [](hwloc_topology_t) { return absl::OkStatus(); }); !st.ok()) {
    return st;
  }
  hwloc_bitmap_copy(impl->usable.get(), hwloc_topology_get_allowed_cpuset(impl->topology));
  Bitmap bound = NewBitmap();
  if (hwloc_get_cpubind(impl->topology, bound.get(), HWLOC_CPUBIND_THREAD) == 0 && !hwloc_bitmap_iszero(bound.get())) {
    hwloc_bitmap_and(impl->usable.get(), impl->usable.get(), bound.get());
  }
  return std::unique_ptr<CpuTopology>(new CpuTopology(std::move(impl)));
}

absl::StatusOr<std::unique_ptr<CpuTopology>> CpuTopology::FromXml(const std::string& path) {
  auto impl = std::make_unique<Impl>();
  absl::Status st = Load(&impl->topology, [&path](hwloc_topology_t t) {
    return hwloc_topology_set_xml(t, path.c_str()) == 0
               ? absl::OkStatus()
               : absl::InvalidArgumentError(absl::StrCat("cannot read the hwloc XML topology ", path));
  });
  if (!st.ok()) return st;
  hwloc_bitmap_copy(impl->usable.get(), hwloc_topology_get_allowed_cpuset(impl->topology));
  return std::unique_ptr<CpuTopology>(new CpuTopology(std::move(impl)));
}

TopologySummary CpuTopology::Summary() const {
  TopologySummary s;
  s.packages = static_cast<int>(impl_->UsableObjects(HWLOC_OBJ_PACKAGE).size());
  s.numa_nodes = static_cast<int>(impl_->UsableObjects(HWLOC_OBJ_NUMANODE).size());
  const std::vector<hwloc_obj_t> cores = impl_->UsableObjects(HWLOC_OBJ_CORE);
  s.cores = static_cast<int>(cores.size());
  s.threads = std::max(0, hwloc_bitmap_weight(impl_->usable.get()));
  for (hwloc_obj_t core : cores) {
    s.threads_per_core = std::max(s.threads_per_core, hwloc_bitmap_weight(impl_->UsableOf(core).get()));
  }
  s.host_cores = std::max(0, hwloc_get_nbobjs_by_type(impl_->topology, HWLOC_OBJ_CORE));
  return s;
}

std::vector<std::vector<int>> CpuTopology::Places(BindMode mode, int slots) const {
  if (mode == BindMode::kNone || slots <= 0) return {};
  std::vector<std::vector<int>> per_core;
  for (hwloc_obj_t core : impl_->UsableObjects(HWLOC_OBJ_CORE)) per_core.push_back(OsIndices(impl_->UsableOf(core).get()));
  std::vector<std::vector<int>> places;
  if (mode == BindMode::kCores) {
    for (size_t i = 0; i < per_core.size() && places.size() < static_cast<size_t>(slots); ++i) {
      places.push_back(per_core[i]);
    }
  } else {
    // The first thread of every core, then the second of every core, ...
    for (size_t round = 0; places.size() < static_cast<size_t>(slots); ++round) {
      bool any = false;
      for (const std::vector<int>& threads : per_core) {
        if (round >= threads.size() || places.size() == static_cast<size_t>(slots)) continue;
        places.push_back({threads[round]});
        any = true;
      }
      if (!any) break;
    }
  }
  if (places.size() < static_cast<size_t>(slots)) return {};
  return places;
}

std::string FormatCpuList(const std::vector<int>& cpus) {
  std::string out;
  for (size_t i = 0; i < cpus.size();) {
    size_t j = i;
    while (j + 1 < cpus.size() && cpus[j + 1] == cpus[j] + 1) ++j;
    absl::StrAppend(&out, out.empty() ? "" : ",", cpus[i]);
    if (j > i) absl::StrAppend(&out, "-", cpus[j]);
    i = j + 1;
  }
  return out;
}

}  // namespace busyfleet::worker
