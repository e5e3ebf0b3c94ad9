// Unit tests of SessionTable: worker names, the reconnect rule, the gone
// ring, and a session's clock conversion.
#include "coordinator/core/session_table.h"

#include <cmath>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/time/time.h"
#include "busyfleet/v1/worker.pb.h"

namespace busyfleet::coordinator {
namespace {

constexpr int64_t kSecondNs = 1'000'000'000;

using ::testing::ElementsAre;
using ::testing::IsEmpty;

Session Named(const std::string& id, const std::string& name, const std::string& instance = "") {
  Session s;
  s.id = id;
  s.name = name;
  s.instance_id = instance;
  s.slots = 2;
  s.host.set_hostname(name + ".host");
  return s;
}

std::vector<std::string> Names(const std::vector<v1::WorkerInfo>& infos) {
  std::vector<std::string> out;
  for (const v1::WorkerInfo& w : infos) out.push_back(w.name());
  return out;
}

Session FromHelloWithKinds(const std::vector<int>& kinds, const std::string& python_version = "") {
  v1::Hello hello;
  for (const int k : kinds) hello.mutable_kinds()->Add(k);  // raw ints: unknown values too
  hello.set_python_version(python_version);
  return Session::FromHello(hello, "s-1", "w", "peer", nullptr, absl::UnixEpoch(), MonoTime());
}

TEST(SessionTest, HelloWithoutKindsOffersTheCppKinds) {
  const Session s = FromHelloWithKinds({});
  EXPECT_THAT(s.kinds, ElementsAre(v1::TASK_KIND_COUNTDOWN, v1::TASK_KIND_SPIN, v1::TASK_KIND_SLEEP));
  EXPECT_THAT(s.Info().kinds(), ElementsAre(v1::TASK_KIND_COUNTDOWN, v1::TASK_KIND_SPIN, v1::TASK_KIND_SLEEP));
  EXPECT_EQ(s.Info().python_version(), "");
}

TEST(SessionTest, HelloKindsAreKeptOnceAndUnknownOnesDropped) {
  const Session s = FromHelloWithKinds(
      {v1::TASK_KIND_COUNTDOWN, v1::TASK_KIND_PYTHON, v1::TASK_KIND_PYTHON, v1::TASK_KIND_UNSPECIFIED, 99}, "3.11.2");
  EXPECT_THAT(s.kinds, ElementsAre(v1::TASK_KIND_COUNTDOWN, v1::TASK_KIND_PYTHON));
  EXPECT_EQ(s.Info().python_version(), "3.11.2");
}

TEST(SessionTableTest, EachAttachedSessionHasItsOwnRefUntilItIsRetired) {
  SessionTable table(4);
  const SessionRef a = table.Add(Named("s-1", "a")).ref;
  const SessionRef b = table.Add(Named("s-2", "b")).ref;
  EXPECT_FALSE(a.empty());
  EXPECT_FALSE(b.empty());
  EXPECT_FALSE(a == b);
  ASSERT_NE(table.Find(a), nullptr);
  EXPECT_EQ(table.Find(a)->id, "s-1");
  EXPECT_EQ(table.Find(b)->id, "s-2");
  EXPECT_EQ(table.Find(SessionRef()), nullptr);
  table.Retire("s-1");
  EXPECT_EQ(table.Find(a), nullptr);  // an attempt that still named it finds no session
  const SessionRef c = table.Add(Named("s-3", "c")).ref;
  EXPECT_FALSE(c == b);
  EXPECT_EQ(table.Find(c)->id, "s-3");
  EXPECT_EQ(table.Find(b)->id, "s-2");
}

TEST(SessionTableTest, RefsWrapPastTheTopSkippingZero) {
  SessionTable table(4, UINT32_MAX - 1);
  const SessionRef a = table.Add(Named("s-1", "a")).ref;
  const SessionRef b = table.Add(Named("s-2", "b")).ref;
  const SessionRef c = table.Add(Named("s-3", "c")).ref;  // past the top: 0 is "none"
  EXPECT_EQ(a.number(), UINT32_MAX - 1);
  EXPECT_EQ(b.number(), UINT32_MAX);
  EXPECT_EQ(c.number(), 1u);
  EXPECT_EQ(table.Find(c)->id, "s-3");
  EXPECT_EQ(table.Find(a)->id, "s-1");
}

TEST(SessionTableTest, FreeNameIsKept) {
  SessionTable table(4);
  table.Add(Named("s-1", "a"));
  const SessionTable::NameChoice c = table.ChooseName("b", "");
  EXPECT_EQ(c.name, "b");
  EXPECT_THAT(c.stale, IsEmpty());
}

TEST(SessionTableTest, TakenNameGetsTheFirstFreeSuffix) {
  SessionTable table(4);
  table.Add(Named("s-1", "a", "i1"));
  table.Add(Named("s-2", "a-2", "i2"));
  const SessionTable::NameChoice c = table.ChooseName("a", "i3");
  EXPECT_EQ(c.name, "a-3");
  EXPECT_THAT(c.stale, IsEmpty());
}

TEST(SessionTableTest, SameInstanceReconnectingKeepsItsNameAndReplacesItsSession) {
  SessionTable table(4);
  table.Add(Named("s-1", "a", "i1"));
  const SessionTable::NameChoice c = table.ChooseName("a", "i1");
  EXPECT_EQ(c.name, "a");
  EXPECT_EQ(c.stale, "s-1");
}

TEST(SessionTableTest, EmptyInstanceIdNeverCountsAsTheSameWorker) {
  SessionTable table(4);
  table.Add(Named("s-1", "a", ""));
  const SessionTable::NameChoice c = table.ChooseName("a", "");
  EXPECT_EQ(c.name, "a-2");
  EXPECT_THAT(c.stale, IsEmpty());
}

TEST(SessionTableTest, GoneRingKeepsTheNewestUpToItsLimit) {
  SessionTable table(2);
  for (const char* id : {"s-1", "s-2", "s-3"}) {
    Session& s = table.Add(Named(id, std::string("w") + id));
    s.running = 1;
    s.assigned = 1;
    table.Retire(id);
  }
  EXPECT_THAT(table.attached(), IsEmpty());
  EXPECT_EQ(table.gone_count(), 2u);
  const std::vector<v1::WorkerInfo> listed = table.List(/*include_gone=*/true);
  EXPECT_THAT(Names(listed), ElementsAre("ws-3", "ws-2"));  // newest first
  for (const v1::WorkerInfo& w : listed) {
    EXPECT_EQ(w.state(), v1::WORKER_STATE_GONE);
    EXPECT_EQ(w.running() + w.assigned(), 0u);
  }
  EXPECT_THAT(table.List(/*include_gone=*/false), IsEmpty());
  EXPECT_EQ(table.Facts().at("ws-2").host, "ws-2.host");
}

TEST(SessionTableTest, AttachedWorkersAreListedByName) {
  SessionTable table(2);
  table.Add(Named("s-1", "b"));
  table.Add(Named("s-2", "a"));
  EXPECT_THAT(Names(table.List(false)), ElementsAre("a", "b"));
  ASSERT_NE(table.FindByName("b"), nullptr);
  EXPECT_EQ(table.FindByName("b")->id, "s-1");
  EXPECT_EQ(table.FindByName("c"), nullptr);
}

TEST(SessionTableTest, ARetiredSessionsNameIsFreeAgain) {
  SessionTable table(4);
  table.Add(Named("s-1", "a", "i1"));
  table.Retire("s-1");
  EXPECT_EQ(table.FindByName("a"), nullptr);
  const SessionTable::NameChoice c = table.ChooseName("a", "i2");
  EXPECT_EQ(c.name, "a");
  EXPECT_THAT(c.stale, IsEmpty());
}

// The defaults: --worker-timeout 5s, heartbeats every 5s / 3, 1,000 a second.
HeartbeatPacing DefaultPacing() { return HeartbeatPacing{}; }

TEST(HeartbeatPacingTest, AFleetUnderTheCeilingKeepsTheBaseInterval) {
  const HeartbeatPacing p = DefaultPacing();
  EXPECT_EQ(p.Next(p.base_interval, 0), p.base_interval);
  EXPECT_EQ(p.Next(p.base_interval, 1000), p.base_interval);
  EXPECT_EQ(p.Next(p.base_interval, 1666), p.base_interval);  // 1,666 / (5 s / 3) = 999.6 a second
}

TEST(HeartbeatPacingTest, ALargerFleetHeartbeatsLessOftenWithHeadroom) {
  const HeartbeatPacing p = DefaultPacing();
  // 10,000 sessions need 10 s; with 12.5% headroom 11.25 s: 889 a second.
  EXPECT_EQ(p.Next(p.base_interval, 10'000), absl::Milliseconds(11'250));
  EXPECT_EQ(p.Next(p.base_interval, 1667), absl::Milliseconds(1876));  // 1.667 s x 1.125, rounded up
  // Growing within the headroom changes nothing.
  EXPECT_EQ(p.Next(absl::Milliseconds(11'250), 11'000), absl::Milliseconds(11'250));
  EXPECT_EQ(p.Next(absl::Milliseconds(11'250), 11'251), absl::Milliseconds(12'658));
}

TEST(HeartbeatPacingTest, AShrinkingFleetSpeedsUpOnlyPastTheBand) {
  const HeartbeatPacing p = DefaultPacing();
  const absl::Duration at_10k = absl::Milliseconds(11'250);
  EXPECT_EQ(p.Next(at_10k, 7500), at_10k) << "7.5 s x 1.5 is still past 11.25 s";
  EXPECT_EQ(p.Next(at_10k, 7000), absl::Milliseconds(7875));
  EXPECT_EQ(p.Next(at_10k, 10), p.base_interval);
}

TEST(HeartbeatPacingTest, RateZeroMeansNoCeiling) {
  HeartbeatPacing p = DefaultPacing();
  p.max_rate = 0;
  EXPECT_EQ(p.Next(p.base_interval, 1'000'000), p.base_interval);
}

TEST(HeartbeatPacingTest, TheTimeoutGrowsWithTheInterval) {
  const HeartbeatPacing p = DefaultPacing();
  EXPECT_EQ(p.Timeout(p.base_interval), absl::Seconds(5));
  EXPECT_EQ(p.Timeout(absl::Milliseconds(100)), absl::Seconds(5)) << "never below --worker-timeout";
  EXPECT_EQ(p.Timeout(absl::Milliseconds(11'250)), absl::Milliseconds(33'750));  // 3 x the interval
}

v1::Heartbeat PacedHeartbeat(std::optional<absl::Duration> interval) {
  v1::Heartbeat hb;
  if (interval) {
    hb.mutable_heartbeat_interval()->set_seconds(absl::ToInt64Seconds(*interval));
    hb.mutable_heartbeat_interval()->set_nanos(
        static_cast<int32_t>(absl::ToInt64Nanoseconds(*interval % absl::Seconds(1))));
  }
  return hb;
}

TEST(SessionPacingTest, AWorkerWithoutTheFieldIsNeverToldAnotherInterval) {
  Session s;
  s.heartbeat_interval = s.told_interval = absl::Seconds(2);
  EXPECT_FALSE(s.ObserveInterval(PacedHeartbeat(std::nullopt), absl::Seconds(10)));
  EXPECT_EQ(s.told_interval, absl::Seconds(2));
  EXPECT_EQ(s.PacedInterval(), absl::Seconds(2));
}

TEST(SessionPacingTest, APacedWorkerIsToldOnceAndJudgedByTheLongerIntervalUntilItAdopts) {
  Session s;
  s.heartbeat_interval = s.told_interval = absl::Seconds(10);
  // The fleet shrank: told 2 s, but it may still wait 10 s for its next.
  EXPECT_TRUE(s.ObserveInterval(PacedHeartbeat(absl::Seconds(10)), absl::Seconds(2)));
  EXPECT_EQ(s.PacedInterval(), absl::Seconds(10));
  EXPECT_FALSE(s.ObserveInterval(PacedHeartbeat(absl::Seconds(10)), absl::Seconds(2))) << "told already";
  EXPECT_FALSE(s.ObserveInterval(PacedHeartbeat(absl::Seconds(2)), absl::Seconds(2)));
  EXPECT_EQ(s.PacedInterval(), absl::Seconds(2)) << "adopted";
  // A worker claiming more than it was ever told is held to what it was told.
  EXPECT_FALSE(s.ObserveInterval(PacedHeartbeat(absl::Hours(1)), absl::Seconds(2)));
  EXPECT_EQ(s.PacedInterval(), absl::Seconds(2));
}

TEST(SessionTest, HeartbeatSetsBothClockOffsets) {
  Session s;
  v1::Heartbeat hb;
  hb.set_clock_offset_valid(true);
  hb.set_clock_offset_ns(5'000);
  hb.set_sent_unix_ns(1'000'000);
  hb.set_clock_rtt_ns(400);
  s.ObserveClocks(hb, absl::FromUnixNanos(1'000'500));
  EXPECT_TRUE(s.offset_valid);
  EXPECT_EQ(s.ToCoordinatorTime(100), absl::FromUnixNanos(5'100));
  EXPECT_TRUE(s.wall_offset_valid);
  EXPECT_EQ(s.wall_offset_ns, 300);  // 500 behind, less half the round trip
}

TEST(SessionTest, StartTimeIsKeptBetweenAssignmentAndNow) {
  Session s;
  const absl::Time assigned = absl::FromUnixSeconds(100);
  const absl::Time now = absl::FromUnixSeconds(110);
  EXPECT_EQ(s.StartTime(0, assigned, now), now) << "no offset: when we heard of it";
  s.offset_valid = true;
  s.clock_offset_ns = 0;
  EXPECT_EQ(s.StartTime(absl::ToUnixNanos(absl::FromUnixSeconds(105)), assigned, now), absl::FromUnixSeconds(105));
  EXPECT_EQ(s.StartTime(absl::ToUnixNanos(absl::FromUnixSeconds(90)), assigned, now), assigned);
  EXPECT_EQ(s.StartTime(absl::ToUnixNanos(absl::FromUnixSeconds(120)), assigned, now), now);
  // Our wall clock stepped back after the assignment: the assignment bounds it.
  EXPECT_EQ(s.StartTime(absl::ToUnixNanos(absl::FromUnixSeconds(105)), assigned, absl::FromUnixSeconds(50)),
            assigned);
}

TEST(SessionTest, StartMonoIsTheStartsDistanceFromNowKeptBetweenAssignmentAndNow) {
  Session s;
  const absl::Time now = absl::FromUnixSeconds(110);
  const MonoTime assigned = MonoTime::FromNanos(1'000 * kSecondNs);
  const MonoTime mono_now = assigned + absl::Seconds(10);
  EXPECT_EQ(s.StartMono(0, assigned, now, mono_now), mono_now) << "no offset: when we heard of it";
  s.offset_valid = true;
  s.clock_offset_ns = 0;
  // Started 3 s before now on our wall clock: 3 s before now on the monotonic one.
  EXPECT_EQ(s.StartMono(absl::ToUnixNanos(absl::FromUnixSeconds(107)), assigned, now, mono_now),
            mono_now - absl::Seconds(3));
  // A stale offset (our wall clock stepped an hour either way) is caught by the bounds.
  EXPECT_EQ(s.StartMono(absl::ToUnixNanos(absl::FromUnixSeconds(107)), assigned, now + absl::Hours(1), mono_now),
            assigned);
  EXPECT_EQ(s.StartMono(absl::ToUnixNanos(absl::FromUnixSeconds(107)), assigned, now - absl::Hours(1), mono_now),
            mono_now);
}

}  // namespace
}  // namespace busyfleet::coordinator

namespace busyfleet::coordinator {
namespace {

v1::KernelCalibration Calibration(v1::TaskKind kind, double median, std::vector<std::pair<uint32_t, double>> cpus) {
  v1::KernelCalibration c;
  c.set_kind(kind);
  c.set_iterations_per_second(median);
  for (const auto& [cpu, rate] : cpus) {
    v1::CpuRate* r = c.add_cpus();
    r->set_cpu(cpu);
    r->set_iterations_per_second(rate);
  }
  return c;
}

TEST(SessionCalibrationTest, TheRateOfTheCpuATaskStartedOnElseTheMedian) {
  v1::Hello hello;
  *hello.add_calibrations() = Calibration(v1::TASK_KIND_COUNTDOWN, 3e9, {{0, 3.4e9}, {1, 2.4e9}});
  const Session s = Session::FromHello(hello, "s1", "w", "", nullptr, absl::Now(), MonoTime());
  EXPECT_DOUBLE_EQ(s.CalibratedRate(v1::TASK_KIND_COUNTDOWN, 1), 2.4e9);
  EXPECT_DOUBLE_EQ(s.CalibratedRate(v1::TASK_KIND_COUNTDOWN, 7), 3e9);
  EXPECT_DOUBLE_EQ(s.CalibratedRate(v1::TASK_KIND_COUNTDOWN, -1), 3e9);
  EXPECT_DOUBLE_EQ(s.CalibratedRate(v1::TASK_KIND_SPIN, 0), 0);
  ASSERT_EQ(s.Info().calibrations_size(), 1);
}

TEST(SessionCalibrationTest, AHeartbeatsCalibrationReplacesTheKindsOld) {
  Session s;
  v1::Heartbeat hb;
  *hb.add_calibrations() = Calibration(v1::TASK_KIND_COUNTDOWN, 3e9, {});
  s.ObserveCalibrations(hb.calibrations());
  *hb.mutable_calibrations(0) = Calibration(v1::TASK_KIND_COUNTDOWN, 2e9, {});
  s.ObserveCalibrations(hb.calibrations());
  ASSERT_EQ(s.calibrations.size(), 1u);
  EXPECT_DOUBLE_EQ(s.CalibratedRate(v1::TASK_KIND_COUNTDOWN, -1), 2e9);
}

TEST(SessionCalibrationTest, NonsenseFiguresAreDroppedNotTrusted) {
  Session s;
  v1::Heartbeat hb;
  *hb.add_calibrations() = Calibration(v1::TASK_KIND_COUNTDOWN, std::nan(""), {});
  *hb.add_calibrations() = Calibration(v1::TASK_KIND_COUNTDOWN, -5, {});
  *hb.add_calibrations() = Calibration(v1::TASK_KIND_UNSPECIFIED, 1e9, {});
  *hb.add_calibrations() = Calibration(v1::TASK_KIND_SPIN, 1e9, {{0, std::numeric_limits<double>::infinity()}});
  *hb.add_calibrations() = Calibration(static_cast<v1::TaskKind>(99), 1e9, {});
  s.ObserveCalibrations(hb.calibrations());
  EXPECT_TRUE(s.calibrations.empty());
}

TEST(SessionCalibrationTest, HostNoiseIsBoundedAndMadePrintable) {
  Session s;
  v1::HostNoise n;
  n.set_steal_share(7);
  n.set_load1(-1);
  n.set_governor(std::string(200, 'g'));
  for (int i = 0; i < 10; ++i) {
    v1::BusyProcess* p = n.add_busy();
    p->set_name("caf\xc3\xa9");
    p->set_cpus(std::nan(""));
  }
  s.ObserveNoise(n);
  ASSERT_TRUE(s.noise.has_value());
  EXPECT_DOUBLE_EQ(s.noise->steal_share(), 1.0);
  EXPECT_DOUBLE_EQ(s.noise->load1(), 0);
  EXPECT_EQ(s.noise->governor().size(), 64u);
  ASSERT_EQ(s.noise->busy_size(), 3);
  EXPECT_EQ(s.noise->busy(0).name(), "caf??");
  EXPECT_DOUBLE_EQ(s.noise->busy(0).cpus(), 0);
  EXPECT_TRUE(s.Info().has_noise());
}

}  // namespace
}  // namespace busyfleet::coordinator
