#include "coordinator/report/fleet.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace busyfleet::report {
namespace {

v1::WorkerInfo Worker(const std::string& name, const std::string& host, const std::string& machine, uint32_t slots,
                      uint32_t physical, uint32_t logical) {
  v1::WorkerInfo w;
  w.set_name(name);
  w.set_slots(slots);
  w.mutable_host()->set_hostname(host);
  w.mutable_host()->set_machine_id(machine);
  w.mutable_host()->set_physical_cores(physical);
  w.mutable_host()->set_logical_cpus(logical);
  return w;
}

// What the compose demo's workers reported on a 2-core VM: each container
// has its own host name (its id) and the kernel's boot id.
constexpr char kBoot[] = "8c1f6a6e-3d1b-4e55-9b8a-2f0c3e7d4a91";

TEST(FleetTest, ContainersOnOneKernelAreOneMachine) {
  const FleetSize fleet = CountFleet({Worker("w1", "3f2a9c1d0b4e", kBoot, 1, 2, 2),
                                      Worker("w2", "77ab01c9e2f3", kBoot, 1, 2, 2),
                                      Worker("w3", "c0ffee123456", kBoot, 1, 2, 2)});
  EXPECT_EQ(fleet.workers, 3u);
  EXPECT_EQ(fleet.machines, 1u);
  EXPECT_EQ(fleet.slots, 3u);
  EXPECT_EQ(fleet.physical_cores, 2u);
  EXPECT_EQ(fleet.logical_cpus, 2u);
  EXPECT_EQ(FleetLine(fleet), "3 workers on 1 machine: 3 slots, 2 physical cores, 2 logical CPUs");
}

TEST(FleetTest, DistinctMachinesAddUp) {
  const FleetSize fleet = CountFleet({Worker("a", "node1", "boot-1", 4, 4, 8), Worker("b", "node2", "boot-2", 2, 2, 2)});
  EXPECT_EQ(fleet.machines, 2u);
  EXPECT_EQ(fleet.physical_cores, 6u);
  EXPECT_EQ(fleet.logical_cpus, 10u);
}

TEST(FleetTest, WorkersWithoutAMachineIdAreKnownByHostName) {
  // Older workers send no machine id: two on one host name are one machine.
  const FleetSize fleet =
      CountFleet({Worker("a", "node1", "", 1, 4, 8), Worker("a-2", "node1", "", 1, 4, 8), Worker("b", "node2", "", 1, 2, 4)});
  EXPECT_EQ(fleet.machines, 2u);
  EXPECT_EQ(fleet.physical_cores, 6u);
  EXPECT_EQ(MachineKey(Worker("a", "node1", "", 1, 4, 8)), "host:node1");
  EXPECT_EQ(MachineKey(Worker("a", "node1", "boot-1", 1, 4, 8)), "boot-1");
}

TEST(FleetTest, AMachineCountsTheLargestFiguresItsWorkersReport) {
  // A worker that could not read the topology reports 0 cores.
  const FleetSize fleet = CountFleet({Worker("a", "h", "m", 1, 0, 0), Worker("b", "h", "m", 1, 4, 8)});
  EXPECT_EQ(fleet.machines, 1u);
  EXPECT_EQ(fleet.physical_cores, 4u);
  EXPECT_EQ(fleet.logical_cpus, 8u);
}

TEST(FleetTest, EmptyAndSingularWording) {
  EXPECT_EQ(FleetLine(CountFleet({})), "0 workers on 0 machines: 0 slots, 0 physical cores, 0 logical CPUs");
  EXPECT_EQ(FleetLine(CountFleet({Worker("a", "h", "m", 1, 1, 1)})),
            "1 worker on 1 machine: 1 slot, 1 physical core, 1 logical CPU");
}

}  // namespace
}  // namespace busyfleet::report
