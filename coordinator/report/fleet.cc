#include "coordinator/report/fleet.h"

#include <algorithm>
#include <map>
#include <utility>

#include "absl/strings/str_cat.h"

namespace busyfleet::report {
namespace {

std::string Plural(uint64_t n, const char* one, const char* many) { return absl::StrCat(n, " ", n == 1 ? one : many); }

}  // namespace

std::string MachineKey(const v1::WorkerInfo& worker) {
  if (!worker.host().machine_id().empty()) return worker.host().machine_id();
  return absl::StrCat("host:", worker.host().hostname());
}

FleetSize CountFleet(const std::vector<v1::WorkerInfo>& workers) {
  FleetSize fleet;
  std::map<std::string, std::pair<uint32_t, uint32_t>> machines;  // key -> (physical, logical)
  for (const v1::WorkerInfo& w : workers) {
    ++fleet.workers;
    fleet.slots += w.slots();
    auto& [physical, logical] = machines[MachineKey(w)];
    physical = std::max(physical, w.host().physical_cores());
    logical = std::max(logical, w.host().logical_cpus());
  }
  fleet.machines = static_cast<uint32_t>(machines.size());
  for (const auto& [key, cpus] : machines) {
    fleet.physical_cores += cpus.first;
    fleet.logical_cpus += cpus.second;
  }
  return fleet;
}

std::string FleetLine(const FleetSize& fleet) {
  return absl::StrCat(Plural(fleet.workers, "worker", "workers"), " on ",
                      Plural(fleet.machines, "machine", "machines"), ": ", Plural(fleet.slots, "slot", "slots"),
                      ", ", Plural(fleet.physical_cores, "physical core", "physical cores"), ", ",
                      Plural(fleet.logical_cpus, "logical CPU", "logical CPUs"));
}

}  // namespace busyfleet::report
