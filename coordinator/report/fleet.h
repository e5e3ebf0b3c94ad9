#ifndef BUSYFLEET_COORDINATOR_REPORT_FLEET_H_
#define BUSYFLEET_COORDINATOR_REPORT_FLEET_H_

// The fleet's size in machines and cores. Several workers on one machine
// (processes, or containers on one kernel) share its cores, so each machine
// is counted once: workers with the same HostInfo.machine_id are one machine
// (a worker that sends none is known by its host name instead). Pure.

#include <cstdint>
#include <string>
#include <vector>

#include "busyfleet/v1/coordinator.pb.h"

namespace busyfleet::report {

struct FleetSize {
  uint32_t workers = 0;
  uint32_t machines = 0;
  uint64_t slots = 0;
  // Summed over machines, each machine's the largest any of its workers
  // reported (workers in cgroup-limited containers see the same kernel
  // topology, so they agree).
  uint64_t physical_cores = 0;
  uint64_t logical_cpus = 0;
};

// The key that identifies a worker's machine: its machine id, else "host:"
// and its host name.
std::string MachineKey(const v1::WorkerInfo& worker);

FleetSize CountFleet(const std::vector<v1::WorkerInfo>& workers);

// "3 workers on 1 machine: 3 slots, 2 physical cores, 2 logical CPUs".
std::string FleetLine(const FleetSize& fleet);

}  // namespace busyfleet::report

#endif  // BUSYFLEET_COORDINATOR_REPORT_FLEET_H_
