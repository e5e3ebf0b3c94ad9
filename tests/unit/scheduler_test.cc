#include "coordinator/core/scheduler.h"

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <deque>
#include <iterator>
#include <map>
#include <numeric>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "busyfleet/v1/types.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace busyfleet::coordinator {
namespace {

using ::busyfleet::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

Scheduler::WorkerSpec Worker(const std::string& session, int slots,
                             std::map<std::string, std::string> labels = {},
                             std::vector<v1::ExecMode> exec_modes = {v1::EXEC_MODE_THREAD,
                                                                     v1::EXEC_MODE_PROCESS}) {
  Scheduler::WorkerSpec w;
  w.session = session;
  w.name = "name-" + session;
  w.slots = slots;
  w.labels = std::move(labels);
  w.exec_modes = std::move(exec_modes);
  return w;
}

std::vector<uint32_t> Range(uint32_t n) {
  std::vector<uint32_t> v(n);
  std::iota(v.begin(), v.end(), 0u);
  return v;
}

std::map<std::string, int> CountBySession(const std::vector<Scheduler::Assignment>& as) {
  std::map<std::string, int> out;
  for (const auto& a : as) ++out[a.session];
  return out;
}

std::map<std::string, int> CountByJob(const std::vector<Scheduler::Assignment>& as) {
  std::map<std::string, int> out;
  for (const auto& a : as) ++out[a.task.job_id];
  return out;
}

std::vector<uint32_t> IndicesOf(const std::vector<Scheduler::Assignment>& as) {
  std::vector<uint32_t> out;
  for (const auto& a : as) out.push_back(a.task.index);
  return out;
}

std::vector<uint32_t> IndicesOf(const std::vector<TaskKey>& ts) {
  std::vector<uint32_t> out;
  for (const auto& t : ts) out.push_back(t.index);
  return out;
}

Scheduler::Options Prefetch(int n) {
  Scheduler::Options o;
  o.prefetch_per_worker = n;
  return o;
}

TEST(SchedulerTest, FreeSlotsAreFilledRoundRobinBeforePrefetch) {
  Scheduler s(Prefetch(2));
  ASSERT_OK(s.AddWorker(Worker("a", 1)));
  ASSERT_OK(s.AddWorker(Worker("b", 1)));
  ASSERT_OK(s.AddJob("job", {}, Range(4), 1));

  const std::vector<Scheduler::Assignment> as = s.Dispatch();
  ASSERT_EQ(as.size(), 4u);
  // The first two picks fill one free slot on each worker.
  EXPECT_NE(as[0].session, as[1].session);
  EXPECT_EQ(CountBySession(as), (std::map<std::string, int>{{"a", 2}, {"b", 2}}));
  EXPECT_THAT(IndicesOf(as), ElementsAre(0, 1, 2, 3));
  EXPECT_EQ(s.QueuedTasks(), 0u);
  EXPECT_EQ(s.InFlight("a"), 2);
  EXPECT_EQ(s.InFlight("b"), 2);
}

TEST(SchedulerTest, SmallJobIsSpreadNotPiledOnOneWorker) {
  Scheduler s(Prefetch(2));
  ASSERT_OK(s.AddWorker(Worker("a", 2)));
  ASSERT_OK(s.AddWorker(Worker("b", 2)));
  ASSERT_OK(s.AddJob("job", {}, Range(2), 1));
  const std::vector<Scheduler::Assignment> as = s.Dispatch();
  EXPECT_EQ(CountBySession(as), (std::map<std::string, int>{{"a", 1}, {"b", 1}}));
}

TEST(SchedulerTest, PrefetchStopsAtSlotsPlusPrefetch) {
  Scheduler s(Prefetch(2));
  ASSERT_OK(s.AddWorker(Worker("a", 1)));
  ASSERT_OK(s.AddWorker(Worker("b", 1)));
  ASSERT_OK(s.AddJob("job", {}, Range(8), 1));

  const std::vector<Scheduler::Assignment> as = s.Dispatch();
  ASSERT_EQ(as.size(), 6u);
  EXPECT_EQ(CountBySession(as), (std::map<std::string, int>{{"a", 3}, {"b", 3}}));
  EXPECT_THAT(IndicesOf(as), ElementsAre(0, 1, 2, 3, 4, 5));
  EXPECT_EQ(s.QueuedTasks(), 2u);
  // Nothing more until a credit is freed.
  EXPECT_THAT(s.Dispatch(), IsEmpty());
  EXPECT_EQ(s.QueuedTasks(), 2u);
}

TEST(SchedulerTest, PrefetchGrowsForTinyTasks) {
  Scheduler s(Prefetch(2));
  ASSERT_OK(s.AddWorker(Worker("a", 2)));
  ASSERT_OK(s.AddJob("job", {}, Range(5000), 1));
  ASSERT_EQ(s.Dispatch().size(), 4u);  // no timing yet: slots + the configured prefetch
  s.ObserveTaskSeconds("job", 1e-6);  // 1 us tasks
  // 5 ms of work per slot = 5,000 tasks per slot: capped at 4,096.
  EXPECT_EQ(s.Dispatch().size(), static_cast<size_t>(2 + Scheduler::kMaxAdaptivePrefetch - 4));
  EXPECT_EQ(s.InFlight("a"), 2 + Scheduler::kMaxAdaptivePrefetch);
}

TEST(SchedulerTest, ReleaseManyFreesTheNamedTasksInFlightThereOnly) {
  Scheduler s(Prefetch(2));
  ASSERT_OK(s.AddWorker(Worker("a", 2)));
  ASSERT_OK(s.AddJob("job", {}, Range(10), 1));
  const auto first = s.Dispatch();
  ASSERT_EQ(first.size(), 4u);
  const std::vector<uint32_t> ran = {first[0].task.index, first[2].task.index, 999};
  EXPECT_EQ(s.ReleaseMany("b", "job", ran), 0u) << "unknown session";
  EXPECT_EQ(s.ReleaseMany("a", "other", ran), 0u) << "unknown job";
  EXPECT_EQ(s.ReleaseMany("a", "job", ran), 2u) << "999 was never in flight";
  EXPECT_EQ(s.InFlight("a"), 2);
  EXPECT_EQ(s.ReleaseMany("a", "job", ran), 0u) << "released already";
  EXPECT_EQ(s.Dispatch().size(), 2u) << "their credit is free again";
  // What is left in flight is the other two and the new two.
  ASSERT_OK(s.Release("a", first[1].task));
  ASSERT_OK(s.Release("a", first[3].task));
  EXPECT_EQ(s.InFlight("a"), 2);
}

// Tasks in flight on a two-slot worker after `seconds` were observed for
// its job, as one run or one by one.
int InFlightAfterObserving(const std::vector<double>& seconds, bool as_run) {
  Scheduler s(Prefetch(2));
  EXPECT_OK(s.AddWorker(Worker("a", 2)));
  EXPECT_OK(s.AddJob("job", {}, Range(5000), 1));
  if (as_run) {
    s.ObserveTaskSeconds("job", seconds);
  } else {
    for (const double x : seconds) s.ObserveTaskSeconds("job", x);
  }
  s.ObserveTaskSeconds("other", seconds);  // an unknown job: ignored
  s.Dispatch();
  return s.InFlight("a");
}

TEST(SchedulerTest, ObservingARunOfSecondsIsObservingThemInOrder) {
  const std::vector<double> seconds = {1e-6, -1, 0.050, std::nan(""), 0.050, 0.050};
  auto in_flight_after = [&](bool as_run) { return InFlightAfterObserving(seconds, as_run); };
  const int one_by_one = in_flight_after(false);
  // The moving average ends at 0.0244 s: neither the first figure's
  // prefetch (1 us tasks) nor the last's (50 ms, none).
  EXPECT_GT(one_by_one, 2);
  EXPECT_LT(one_by_one, 2 + Scheduler::kMaxAdaptivePrefetch);
  EXPECT_EQ(in_flight_after(true), one_by_one);
}

// A packed group's run of thousands: only its last figures count (older
// ones weigh under 4e-20), as one by one.
TEST(SchedulerTest, ALongRunOfSecondsEndsWhereItsLastFiguresPutIt) {
  std::vector<double> seconds(100'000, 0.050);
  for (size_t i = seconds.size() - 12; i < seconds.size(); ++i) seconds[i] = 1e-6 * static_cast<double>(i % 7 + 1);
  auto in_flight_after = [&](bool as_run) { return InFlightAfterObserving(seconds, as_run); };
  const int one_by_one = in_flight_after(false);
  // 0.8^12 of 50 ms is left of the long tasks: 3.4 ms, a few tasks ready,
  // neither none (50 ms) nor the cap (microseconds).
  EXPECT_GT(one_by_one, 2);
  EXPECT_LT(one_by_one, 2 + Scheduler::kMaxAdaptivePrefetch);
  EXPECT_EQ(in_flight_after(true), one_by_one);
}

TEST(SchedulerTest, LongTasksAreNotPrefetched) {
  Scheduler s(Prefetch(2));
  ASSERT_OK(s.AddWorker(Worker("a", 1)));
  ASSERT_OK(s.AddJob("job", {}, Range(4), 1));
  const auto first = s.Dispatch();
  ASSERT_EQ(first.size(), 3u);
  s.ObserveTaskSeconds("job", 0.050);  // 50 ms: one ready per slot while every slot can get one
  ASSERT_OK(s.Release("a", first[0].task));
  EXPECT_THAT(s.Dispatch(), IsEmpty()) << "one task running and one ready cover the single slot";
  ASSERT_OK(s.Release("a", first[1].task));
  // The last task: the only slot gets it ready behind its running one
  // (no other slot could run it; asking for it later idles a round trip).
  EXPECT_EQ(s.Dispatch().size(), 1u);
  EXPECT_EQ(s.InFlight("a"), 2);
  EXPECT_EQ(s.QueuedTasks(), 0u);
  // A 2 ms task on a 3-slot worker: floor(3 x 5 ms / 2 ms) = 7 prefetched.
  ASSERT_OK(s.AddWorker(Worker("b", 3)));
  ASSERT_OK(s.AddJob("mid", {}, Range(100), 2));
  s.ObserveTaskSeconds("mid", 0.002);
  s.Dispatch();
  EXPECT_EQ(s.InFlight("b"), 3 + 7);
}

TEST(PrefetchSizeTest, WithoutARoundTripKeepsThePipelineOnly) {
  // 5 ms per slot: floor(3 x 5 ms / 2 ms) = 7; 50 ms tasks: one per slot
  // while plenty are queued, none at the tail.
  EXPECT_EQ(Scheduler::PrefetchSize(0, 0.002, 3, true), 7);
  EXPECT_EQ(Scheduler::PrefetchSize(0, 0.050, 1, true), 1);
  EXPECT_EQ(Scheduler::PrefetchSize(0, 0.050, 1, false), 0);
}

TEST(PrefetchSizeTest, CoversTheRoundTripWithAMargin) {
  // 20 ms round trip, 5 ms tasks: 5 ms + 2 x 20 ms = 45 ms per slot = 9 tasks.
  EXPECT_EQ(Scheduler::PrefetchSize(0.020, 0.005, 1, true), 9);
  EXPECT_EQ(Scheduler::PrefetchSize(0.020, 0.005, 2, false), 18);
  // The same tasks on a loopback link: one.
  EXPECT_EQ(Scheduler::PrefetchSize(0.0001, 0.005, 1, true), 1);
  // A longer link queues more.
  EXPECT_GT(Scheduler::PrefetchSize(0.100, 0.005, 1, true), Scheduler::PrefetchSize(0.020, 0.005, 1, true));
}

TEST(PrefetchSizeTest, TheTailGetsOnlyTasksShorterThanTheBudget) {
  // 50 ms tasks on a 20 ms link: one per slot while plenty are queued; none
  // at the tail on one slot (a 50 ms wait behind the running task costs
  // more than the 45 ms budget).
  EXPECT_EQ(Scheduler::PrefetchSize(0.020, 0.050, 2, true), 2);
  EXPECT_EQ(Scheduler::PrefetchSize(0.020, 0.050, 1, false), 0);
  // The budget is the worker's (slots x 45 ms): on 2 slots one 50 ms task
  // waits for whichever slot frees first.
  EXPECT_EQ(Scheduler::PrefetchSize(0.020, 0.050, 2, false), 1);
  // 30 ms tasks on that link: floor(2 x 45 ms / 30 ms) = 3 at the tail.
  EXPECT_EQ(Scheduler::PrefetchSize(0.020, 0.030, 2, false), 3);
}

TEST(PrefetchSizeTest, TheCapGrowsWithTheLink) {
  // 1 us tasks: 4,096 per 5 ms of budget; 45 ms on a 20 ms link = 9 x 4,096.
  EXPECT_EQ(Scheduler::PrefetchSize(0, 1e-6, 1, true), Scheduler::kMaxAdaptivePrefetch);
  EXPECT_EQ(Scheduler::PrefetchSize(0.020, 1e-6, 1, true), 9 * Scheduler::kMaxAdaptivePrefetch);
  // A one-second link: kMaxLinkPrefetch.
  EXPECT_EQ(Scheduler::PrefetchSize(1.0, 1e-6, 64, true), Scheduler::kMaxLinkPrefetch);
}

// The caps a store without a row per task in flight gets: 65,536 per 5 ms
// of budget, at most 524,288.
TEST(PrefetchSizeTest, TheCapsAreTheCallersToSet) {
  const int per = Scheduler::kMaxAdaptivePrefetchRowless;
  const int link = Scheduler::kMaxLinkPrefetchRowless;
  // 0.1 us tasks on 4 slots: 200,000 a 5 ms budget, capped.
  EXPECT_EQ(Scheduler::PrefetchSize(0, 1e-7, 4, true, per, link), per);
  EXPECT_EQ(Scheduler::PrefetchSize(0, 1e-7, 4, true), Scheduler::kMaxAdaptivePrefetch);
  // A 5 ms link: 15 ms of budget, 3 x the cap.
  EXPECT_EQ(Scheduler::PrefetchSize(0.005, 1e-7, 4, true, per, link), 3 * per);
  EXPECT_EQ(Scheduler::PrefetchSize(0.020, 1e-7, 4, true, per, link), link);
  // Under the caps the budget decides: 1 us tasks, 5,000 a slot.
  EXPECT_EQ(Scheduler::PrefetchSize(0, 1e-6, 1, true, per, link), 5'000);
  EXPECT_EQ(Scheduler::PrefetchSize(0, 1e-7, 4, false, -3, link), 0) << "a negative cap counts as 0";
}

TEST(SchedulerTest, TheOptionsCapsApply) {
  Scheduler::Options o = Prefetch(2);
  o.max_prefetch = Scheduler::kMaxAdaptivePrefetchRowless;
  o.max_link_prefetch = Scheduler::kMaxLinkPrefetchRowless;
  Scheduler s(o);
  ASSERT_OK(s.AddWorker(Worker("a", 4)));
  ASSERT_OK(s.AddJob("job", {}, Range(100'000), 1));
  ASSERT_EQ(s.Dispatch().size(), 6u);
  s.ObserveTaskSeconds("job", std::vector<double>(60, 1e-8));
  s.Dispatch();
  EXPECT_EQ(s.InFlight("a"), 4 + Scheduler::kMaxAdaptivePrefetchRowless);
}

TEST(PrefetchSizeTest, ToleratesBadInputs) {
  EXPECT_EQ(Scheduler::PrefetchSize(-1.0, 0.002, 3, true), 7) << "a negative round trip counts as 0";
  EXPECT_EQ(Scheduler::PrefetchSize(0, -1.0, 1, false), Scheduler::kMaxAdaptivePrefetch);
  EXPECT_EQ(Scheduler::PrefetchSize(0.020, 0.005, 0, false), 0);
}

TEST(SchedulerTest, AFarWorkerKeepsARoundTripOfWorkQueued) {
  Scheduler s(Prefetch(0));
  ASSERT_OK(s.AddWorker(Worker("near", 1)));
  ASSERT_OK(s.AddWorker(Worker("far", 1)));
  ASSERT_OK(s.SetRoundTrip("near", absl::Microseconds(100)));
  ASSERT_OK(s.SetRoundTrip("far", absl::Milliseconds(20)));
  ASSERT_OK(s.AddJob("job", {}, Range(640), 1));
  ASSERT_EQ(s.Dispatch().size(), 2u) << "no timing yet: the slots only";
  s.ObserveTaskSeconds("job", 0.005);
  s.Dispatch();
  EXPECT_EQ(s.InFlight("near"), 1 + 1);
  EXPECT_EQ(s.InFlight("far"), 1 + 9);
}

TEST(SchedulerTest, RoundTripOfAnUnknownWorkerIsNotFound) {
  Scheduler s(Prefetch(0));
  EXPECT_THAT(s.SetRoundTrip("nobody", absl::Milliseconds(20)),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("nobody")));
}

TEST(SchedulerTest, APredictionOfLongTasksPrefetchesBeforeTheFirstResult) {
  // 50 ms predicted: one ready per slot at once; 1 ms predicted (under the
  // 5 ms pipeline): only the slots, as with no prediction; a negative one
  // is none. The first observed duration takes over from the prediction.
  for (const auto& [predicted, dealt] : {std::pair{0.050, 4}, std::pair{0.001, 2}, std::pair{-1.0, 2}}) {
    SCOPED_TRACE(predicted);
    Scheduler s(Prefetch(0));
    ASSERT_OK(s.AddWorker(Worker("a", 2)));
    ASSERT_OK(s.AddJob("job", {}, Range(10), 1));
    s.PredictTaskSeconds("job", predicted);
    EXPECT_EQ(s.Dispatch().size(), static_cast<size_t>(dealt));
  }
  Scheduler s(Prefetch(0));
  ASSERT_OK(s.AddWorker(Worker("a", 1)));
  ASSERT_OK(s.AddJob("job", {}, Range(100), 1));
  s.PredictTaskSeconds("job", 0.050);
  const std::vector<Scheduler::Assignment> first = s.Dispatch();
  ASSERT_EQ(first.size(), 2u);
  s.ObserveTaskSeconds("job", 0.0001);  // 0.1 ms observed: 5 ms / 0.1 ms = 50 ready
  ASSERT_OK(s.Release("a", first[0].task));
  s.Dispatch();
  EXPECT_EQ(s.InFlight("a"), 1 + 50);
}

// Two one-slot workers, "a" and "b", each 20 ms away.
void AddTwoFarWorkers(Scheduler& s) {
  for (const char* name : {"a", "b"}) {
    ASSERT_OK(s.AddWorker(Worker(name, 1)));
    ASSERT_OK(s.SetRoundTrip(name, absl::Milliseconds(20)));
  }
}

TEST(SchedulerTest, AtTheJobsTailEachSlotGetsItsLastTaskReadyAndNoneGetsTwo) {
  Scheduler s(Prefetch(0));
  AddTwoFarWorkers(s);
  ASSERT_OK(s.AddJob("job", {}, Range(6), 1));
  s.ObserveTaskSeconds("job", 0.050);
  // One in each free slot; then one ready behind each (a 50 ms task is
  // past the 45 ms budget, but a far worker's slot would idle a round trip
  // without it).
  std::vector<Scheduler::Assignment> as = s.Dispatch();
  ASSERT_EQ(as.size(), 4u);
  EXPECT_EQ(s.InFlight("a"), 2);
  EXPECT_EQ(s.InFlight("b"), 2);
  EXPECT_EQ(s.QueuedTasks(), 2u);
  // The tail: 2 queued, one already ready on the other worker. The worker
  // whose task ended gets its last one ready too (2 queued + 0 waiting >=
  // 2 slots); none gets a second.
  const std::string worker = as[0].session;
  const std::string other = worker == "a" ? "b" : "a";
  ASSERT_OK(s.Release(as[0].session, as[0].task));
  std::vector<Scheduler::Assignment> tail = s.Dispatch();
  ASSERT_EQ(tail.size(), 1u);
  EXPECT_EQ(tail[0].session, worker);
  EXPECT_EQ(s.InFlight(worker), 2);
  EXPECT_EQ(s.InFlight(other), 2);
  EXPECT_EQ(s.QueuedTasks(), 1u);
  EXPECT_THAT(s.Dispatch(), IsEmpty()) << "both workers hold one running and one ready";
}

TEST(SchedulerTest, AFarWorkerGetsNoLongTaskPiledWhenNotEverySlotCanGetOne) {
  Scheduler s(Prefetch(0));
  AddTwoFarWorkers(s);
  ASSERT_OK(s.AddJob("job", {}, Range(3), 1));
  std::vector<Scheduler::Assignment> as = s.Dispatch();
  ASSERT_EQ(as.size(), 2u) << "no timing yet: the slots only";
  s.ObserveTaskSeconds("job", 0.050);
  // One task left for two busy slots: readied behind either running task it
  // could wait 50 ms while the other slot idles; it goes to whichever slot
  // frees first.
  EXPECT_THAT(s.Dispatch(), IsEmpty());
  const std::string freed = as[1].session;
  ASSERT_OK(s.Release(as[1].session, as[1].task));
  as = s.Dispatch();
  ASSERT_EQ(as.size(), 1u);
  EXPECT_EQ(as[0].session, freed);
  EXPECT_EQ(s.InFlight("a"), 1);
  EXPECT_EQ(s.InFlight("b"), 1);
}

TEST(SchedulerTest, LongTasksGetOneReadyPerSlotUntilTheJobsEnd) {
  Scheduler s(Prefetch(0));
  ASSERT_OK(s.AddWorker(Worker("a", 1)));
  ASSERT_OK(s.AddWorker(Worker("b", 2)));
  ASSERT_OK(s.AddJob("job", {}, Range(20), 1));
  std::map<std::string, std::deque<TaskKey>> held;
  size_t dealt = 0;
  auto dispatch = [&] {
    const std::vector<Scheduler::Assignment> as = s.Dispatch();
    for (const Scheduler::Assignment& a : as) held[a.session].push_back(a.task);
    dealt += as.size();
    return as.size();
  };
  ASSERT_EQ(dispatch(), 3u) << "no timing yet: the slots only";
  s.ObserveTaskSeconds("job", 0.250);
  // 17 queued >= 3 fleet slots: one more per slot on each worker.
  ASSERT_EQ(dispatch(), 3u);
  EXPECT_EQ(s.InFlight("a"), 2);
  EXPECT_EQ(s.InFlight("b"), 4);
  EXPECT_EQ(s.QueuedTasks(), 14u);
  // Each worker finishes its oldest task in turn: never more than one
  // ready per slot, down to the job's last task.
  while (dealt < 20) {
    for (auto& [w, tasks] : held) {
      ASSERT_FALSE(tasks.empty());
      ASSERT_OK(s.Release(w, tasks.front()));
      tasks.pop_front();
    }
    dispatch();
    EXPECT_LE(s.InFlight("a"), 2);
    EXPECT_LE(s.InFlight("b"), 4);
  }
  EXPECT_EQ(s.QueuedTasks(), 0u);
}

TEST(SchedulerTest, ZeroPrefetchHoldsOnlySlots) {
  Scheduler s(Prefetch(0));
  ASSERT_OK(s.AddWorker(Worker("a", 3)));
  ASSERT_OK(s.AddJob("job", {}, Range(10), 1));
  EXPECT_EQ(s.Dispatch().size(), 3u);
  EXPECT_EQ(s.InFlight("a"), 3);
  EXPECT_EQ(s.QueuedTasks(), 7u);
}

TEST(SchedulerTest, CreditsNeverExceedSlotsPlusPrefetch) {
  constexpr int kPrefetch = 2;
  Scheduler s(Prefetch(kPrefetch));
  const std::map<std::string, int> slots = {{"a", 1}, {"b", 2}, {"c", 3}};
  for (const auto& [session, n] : slots) ASSERT_OK(s.AddWorker(Worker(session, n)));
  ASSERT_OK(s.AddJob("j1", {}, Range(300), 1));
  ASSERT_OK(s.AddJob("j2", {}, Range(300), 2));

  std::map<std::string, std::deque<TaskKey>> in_flight;
  for (int round = 0; round < 200; ++round) {
    for (const auto& a : s.Dispatch()) in_flight[a.session].push_back(a.task);
    for (const auto& [session, n] : slots) {
      SCOPED_TRACE(session);
      ASSERT_LE(s.InFlight(session), n + kPrefetch) << "round " << round;
      ASSERT_EQ(s.InFlight(session), static_cast<int>(in_flight[session].size()));
    }
    // Finish a varying number of tasks on a varying worker.
    const std::string session = round % 3 == 0 ? "a" : round % 3 == 1 ? "b" : "c";
    for (int k = 0; k <= round % 4 && !in_flight[session].empty(); ++k) {
      ASSERT_OK(s.Release(session, in_flight[session].front()));
      in_flight[session].pop_front();
    }
  }
}

TEST(SchedulerTest, ReleaseFreesACreditAndNextDispatchRefillsIt) {
  Scheduler s(Prefetch(1));
  ASSERT_OK(s.AddWorker(Worker("a", 1)));
  ASSERT_OK(s.AddJob("job", {}, Range(5), 1));
  std::vector<Scheduler::Assignment> as = s.Dispatch();
  ASSERT_THAT(IndicesOf(as), ElementsAre(0, 1));
  EXPECT_EQ(s.FreeSlots(), 0);
  EXPECT_THAT(s.Dispatch(), IsEmpty());

  ASSERT_OK(s.Release("a", TaskKey{"job", 0}));
  EXPECT_EQ(s.InFlight("a"), 1);
  as = s.Dispatch();
  ASSERT_EQ(as.size(), 1u);
  EXPECT_EQ(as[0].session, "a");
  EXPECT_EQ(as[0].task, (TaskKey{"job", 2}));
  EXPECT_EQ(s.InFlight("a"), 2);
  EXPECT_EQ(s.QueuedTasks(), 2u);
}

TEST(SchedulerTest, ReleaseOfATaskNotInFlightIsNotFound) {
  Scheduler s(Prefetch(0));
  ASSERT_OK(s.AddWorker(Worker("a", 1)));
  ASSERT_OK(s.AddWorker(Worker("b", 1)));
  ASSERT_OK(s.AddJob("job", {}, Range(1), 1));
  const std::vector<Scheduler::Assignment> as = s.Dispatch();
  ASSERT_EQ(as.size(), 1u);
  const std::string other = as[0].session == "a" ? "b" : "a";
  EXPECT_THAT(s.Release(other, as[0].task), StatusIs(absl::StatusCode::kNotFound, HasSubstr("job")));
  EXPECT_THAT(s.Release("nobody", as[0].task), StatusIs(absl::StatusCode::kNotFound, HasSubstr("nobody")));
  ASSERT_OK(s.Release(as[0].session, as[0].task));
  // A second release of the same task is refused.
  EXPECT_THAT(s.Release(as[0].session, as[0].task), StatusIs(absl::StatusCode::kNotFound, ::testing::_));
}

TEST(SchedulerTest, NoTaskIsAssignedTwiceOverAFullRun) {
  Scheduler s(Prefetch(2));
  const std::map<std::string, int> slots = {{"a", 1}, {"b", 2}, {"c", 4}};
  for (const auto& [session, n] : slots) ASSERT_OK(s.AddWorker(Worker(session, n)));
  constexpr uint32_t kTasks = 97;
  Scheduler::JobConstraints capped;
  capped.max_slots = 3;
  ASSERT_OK(s.AddJob("j1", {}, Range(kTasks), 1));
  ASSERT_OK(s.AddJob("j2", capped, Range(kTasks), 2));

  std::map<std::string, std::vector<int>> assigned = {{"j1", std::vector<int>(kTasks, 0)},
                                                      {"j2", std::vector<int>(kTasks, 0)}};
  std::map<std::string, std::deque<TaskKey>> in_flight;
  size_t done = 0;
  for (int round = 0; round < 10'000 && done < 2 * kTasks; ++round) {
    for (const auto& a : s.Dispatch()) {
      ASSERT_LT(a.task.index, kTasks);
      ++assigned.at(a.task.job_id)[a.task.index];
      in_flight[a.session].push_back(a.task);
    }
    // Each worker finishes its oldest task.
    for (auto& [session, q] : in_flight) {
      if (q.empty()) continue;
      ASSERT_OK(s.Release(session, q.front()));
      q.pop_front();
      ++done;
    }
  }
  ASSERT_EQ(done, 2 * kTasks);
  for (const auto& [job, counts] : assigned) {
    for (uint32_t i = 0; i < kTasks; ++i) EXPECT_EQ(counts[i], 1) << job << "/" << i;
  }
  EXPECT_EQ(s.QueuedTasks(), 0u);
  EXPECT_THAT(s.Dispatch(), IsEmpty());
  for (const auto& [session, n] : slots) EXPECT_EQ(s.InFlight(session), 0) << session;
}

TEST(SchedulerTest, ConcurrentJobsShareTheFleetFairly) {
  Scheduler s(Prefetch(2));
  ASSERT_OK(s.AddWorker(Worker("a", 2)));
  ASSERT_OK(s.AddWorker(Worker("b", 2)));
  ASSERT_OK(s.AddJob("j1", {}, Range(100), 1));
  ASSERT_OK(s.AddJob("j2", {}, Range(100), 2));

  const std::vector<Scheduler::Assignment> as = s.Dispatch();
  ASSERT_EQ(as.size(), 8u);  // 2 workers x (2 slots + 2 prefetch)
  const std::map<std::string, int> by_job = CountByJob(as);
  ASSERT_EQ(by_job.size(), 2u);
  EXPECT_LE(std::abs(by_job.at("j1") - by_job.at("j2")), 1);
  // The four slots themselves are shared, not only the prefetch.
  const std::vector<Scheduler::Assignment> first4(as.begin(), as.begin() + 4);
  EXPECT_EQ(CountByJob(first4), (std::map<std::string, int>{{"j1", 2}, {"j2", 2}}));
}

TEST(SchedulerTest, FairnessWithoutPrefetchSplitsSlotsEvenly) {
  Scheduler s(Prefetch(0));
  for (const char* w : {"a", "b", "c", "d"}) ASSERT_OK(s.AddWorker(Worker(w, 1)));
  ASSERT_OK(s.AddJob("j1", {}, Range(100), 1));
  ASSERT_OK(s.AddJob("j2", {}, Range(100), 2));
  EXPECT_EQ(CountByJob(s.Dispatch()), (std::map<std::string, int>{{"j1", 2}, {"j2", 2}}));
}

TEST(SchedulerTest, NewJobGetsTheNextFreedCredit) {
  Scheduler s(Prefetch(0));
  ASSERT_OK(s.AddWorker(Worker("a", 2)));
  ASSERT_OK(s.AddJob("old", {}, Range(100), 1));
  ASSERT_EQ(s.Dispatch().size(), 2u);
  ASSERT_OK(s.AddJob("new", {}, Range(10), 2));
  EXPECT_THAT(s.Dispatch(), IsEmpty());
  ASSERT_OK(s.Release("a", TaskKey{"old", 0}));
  const std::vector<Scheduler::Assignment> as = s.Dispatch();
  ASSERT_EQ(as.size(), 1u);
  EXPECT_EQ(as[0].task, (TaskKey{"new", 0}));
}

TEST(SchedulerTest, OlderJobWinsATie) {
  Scheduler s(Prefetch(0));
  ASSERT_OK(s.AddWorker(Worker("a", 1)));
  // Added in the opposite order of their seq.
  ASSERT_OK(s.AddJob("younger", {}, Range(3), 20));
  ASSERT_OK(s.AddJob("older", {}, Range(3), 10));
  const std::vector<Scheduler::Assignment> as = s.Dispatch();
  ASSERT_EQ(as.size(), 1u);
  EXPECT_EQ(as[0].task.job_id, "older");
}

TEST(SchedulerTest, MaxSlotsOneRunsTheJobSerially) {
  Scheduler s(Prefetch(2));
  ASSERT_OK(s.AddWorker(Worker("a", 4)));
  ASSERT_OK(s.AddWorker(Worker("b", 4)));
  Scheduler::JobConstraints serial;
  serial.max_slots = 1;
  ASSERT_OK(s.AddJob("job", serial, Range(5), 1));
  for (uint32_t i = 0; i < 5; ++i) {
    SCOPED_TRACE(i);
    const std::vector<Scheduler::Assignment> as = s.Dispatch();
    ASSERT_EQ(as.size(), 1u);
    EXPECT_EQ(as[0].task.index, i);
    EXPECT_THAT(s.Dispatch(), IsEmpty());
    EXPECT_EQ(s.InFlight("a") + s.InFlight("b"), 1);
    ASSERT_OK(s.Release(as[0].session, as[0].task));
  }
  EXPECT_EQ(s.QueuedTasks(), 0u);
}

TEST(SchedulerTest, MaxSlotsCapLeavesRoomForOtherJobs) {
  Scheduler s(Prefetch(0));
  ASSERT_OK(s.AddWorker(Worker("a", 4)));
  Scheduler::JobConstraints capped;
  capped.max_slots = 1;
  ASSERT_OK(s.AddJob("capped", capped, Range(10), 1));
  ASSERT_OK(s.AddJob("free", {}, Range(10), 2));
  EXPECT_EQ(CountByJob(s.Dispatch()), (std::map<std::string, int>{{"capped", 1}, {"free", 3}}));
}

TEST(SchedulerTest, WorkersConstraintPicksNamedWorkersOnly) {
  Scheduler s(Prefetch(2));
  ASSERT_OK(s.AddWorker(Worker("a", 2)));
  ASSERT_OK(s.AddWorker(Worker("b", 2)));
  Scheduler::JobConstraints c;
  c.workers = {"name-b"};
  ASSERT_OK(s.AddJob("job", c, Range(10), 1));
  const std::vector<Scheduler::Assignment> as = s.Dispatch();
  EXPECT_EQ(CountBySession(as), (std::map<std::string, int>{{"b", 4}}));
  EXPECT_EQ(s.InFlight("a"), 0);
}

TEST(SchedulerTest, SelectorMatchesAllLabels) {
  Scheduler s(Prefetch(0));
  ASSERT_OK(s.AddWorker(Worker("a", 1, {{"zone", "eu"}})));
  ASSERT_OK(s.AddWorker(Worker("b", 1, {{"zone", "eu"}, {"gpu", "yes"}})));
  ASSERT_OK(s.AddWorker(Worker("c", 1, {{"zone", "us"}, {"gpu", "yes"}})));
  Scheduler::JobConstraints c;
  c.selector = {{"zone", "eu"}, {"gpu", "yes"}};
  ASSERT_OK(s.AddJob("job", c, Range(10), 1));
  EXPECT_EQ(CountBySession(s.Dispatch()), (std::map<std::string, int>{{"b", 1}}));
}

TEST(SchedulerTest, ExecConstraintNeedsAWorkerWithThatMode) {
  Scheduler s(Prefetch(0));
  ASSERT_OK(s.AddWorker(Worker("threads", 1, {}, {v1::EXEC_MODE_THREAD})));
  ASSERT_OK(s.AddWorker(Worker("procs", 1, {}, {v1::EXEC_MODE_PROCESS})));
  Scheduler::JobConstraints c;
  c.exec = v1::EXEC_MODE_PROCESS;
  ASSERT_OK(s.AddJob("job", c, Range(10), 1));
  EXPECT_EQ(CountBySession(s.Dispatch()), (std::map<std::string, int>{{"procs", 1}}));
}

TEST(SchedulerTest, UnspecifiedExecRunsAnywhere) {
  Scheduler s(Prefetch(0));
  ASSERT_OK(s.AddWorker(Worker("threads", 1, {}, {v1::EXEC_MODE_THREAD})));
  ASSERT_OK(s.AddWorker(Worker("procs", 1, {}, {v1::EXEC_MODE_PROCESS})));
  ASSERT_OK(s.AddJob("job", {}, Range(10), 1));
  EXPECT_EQ(CountBySession(s.Dispatch()), (std::map<std::string, int>{{"procs", 1}, {"threads", 1}}));
}

Scheduler::WorkerSpec WorkerWithKinds(const std::string& session, std::vector<v1::TaskKind> kinds) {
  Scheduler::WorkerSpec w = Worker(session, 1);
  w.kinds = std::move(kinds);
  return w;
}

Scheduler::JobConstraints OfKind(v1::TaskKind kind) {
  Scheduler::JobConstraints c;
  c.kind = kind;
  return c;
}

TEST(SchedulerTest, PythonTasksGoOnlyToWorkersOfferingTheKind) {
  Scheduler s(Prefetch(0));
  ASSERT_OK(s.AddWorker(WorkerWithKinds("plain", {v1::TASK_KIND_COUNTDOWN, v1::TASK_KIND_SPIN})));
  ASSERT_OK(s.AddWorker(WorkerWithKinds("old", {})));  // no kinds in its hello: the C++ kinds
  ASSERT_OK(s.AddWorker(WorkerWithKinds("py", {v1::TASK_KIND_COUNTDOWN, v1::TASK_KIND_PYTHON})));
  ASSERT_OK(s.AddJob("job", OfKind(v1::TASK_KIND_PYTHON), Range(10), 1));
  EXPECT_EQ(CountBySession(s.Dispatch()), (std::map<std::string, int>{{"py", 1}}));
  EXPECT_THAT(s.UnrunnableJobs(), IsEmpty());
}

TEST(SchedulerTest, CountdownStillRunsOnWorkersWithoutKindsInTheirHello) {
  Scheduler s(Prefetch(0));
  ASSERT_OK(s.AddWorker(WorkerWithKinds("old", {})));
  ASSERT_OK(s.AddWorker(WorkerWithKinds("py-only", {v1::TASK_KIND_PYTHON})));
  ASSERT_OK(s.AddJob("job", OfKind(v1::TASK_KIND_COUNTDOWN), Range(10), 1));
  EXPECT_EQ(CountBySession(s.Dispatch()), (std::map<std::string, int>{{"old", 1}}));
}

TEST(SchedulerTest, PythonJobWithoutAPythonWorkerIsUnrunnableWithTheReason) {
  Scheduler s(Prefetch(0));
  ASSERT_OK(s.AddWorker(WorkerWithKinds("plain", {v1::TASK_KIND_COUNTDOWN, v1::TASK_KIND_SPIN, v1::TASK_KIND_SLEEP})));
  ASSERT_OK(s.AddWorker(WorkerWithKinds("old", {})));
  ASSERT_OK(s.AddJob("job", OfKind(v1::TASK_KIND_PYTHON), Range(2), 1));
  EXPECT_THAT(s.Dispatch(), IsEmpty());
  const std::vector<Scheduler::Unrunnable> stuck = s.UnrunnableJobs();
  ASSERT_EQ(stuck.size(), 1u);
  EXPECT_EQ(stuck[0].job_id, "job");
  EXPECT_EQ(stuck[0].reason,
            "no attached worker offers the python kind (workers built without Python, or started with --no-python)");
  // A worker with the kind attaches: the job runs there.
  ASSERT_OK(s.AddWorker(WorkerWithKinds("py", {v1::TASK_KIND_PYTHON})));
  EXPECT_THAT(s.UnrunnableJobs(), IsEmpty());
  EXPECT_EQ(CountBySession(s.Dispatch()), (std::map<std::string, int>{{"py", 1}}));
}

TEST(SchedulerTest, PythonAndAnotherConstraintMetOnlyApartNamesBoth) {
  Scheduler s(Prefetch(0));
  ASSERT_OK(s.AddWorker(WorkerWithKinds("py", {v1::TASK_KIND_PYTHON})));
  Scheduler::WorkerSpec eu = WorkerWithKinds("eu", {v1::TASK_KIND_COUNTDOWN});
  eu.labels = {{"zone", "eu"}};
  ASSERT_OK(s.AddWorker(eu));
  Scheduler::JobConstraints c = OfKind(v1::TASK_KIND_PYTHON);
  c.selector = {{"zone", "eu"}};
  ASSERT_OK(s.AddJob("job", c, Range(2), 1));
  const std::vector<Scheduler::Unrunnable> stuck = s.UnrunnableJobs();
  ASSERT_EQ(stuck.size(), 1u);
  EXPECT_EQ(stuck[0].reason, "no single worker matches all of --kind python, labels zone=eu");
}

TEST(SchedulerTest, UnplaceableJobDoesNotBlockOthers) {
  Scheduler s(Prefetch(0));
  ASSERT_OK(s.AddWorker(Worker("a", 2)));
  Scheduler::JobConstraints nowhere;
  nowhere.workers = {"no-such-worker"};
  ASSERT_OK(s.AddJob("stuck", nowhere, Range(5), 1));
  ASSERT_OK(s.AddJob("ok", {}, Range(5), 2));
  EXPECT_EQ(CountByJob(s.Dispatch()), (std::map<std::string, int>{{"ok", 2}}));
  EXPECT_EQ(s.QueuedTasks(), 8u);
}

TEST(SchedulerTest, DrainingWorkersGetNothing) {
  Scheduler s(Prefetch(2));
  ASSERT_OK(s.AddWorker(Worker("a", 2)));
  ASSERT_OK(s.AddWorker(Worker("b", 2)));
  ASSERT_OK(s.SetDraining("a"));
  ASSERT_OK(s.AddJob("job", {}, Range(20), 1));
  EXPECT_EQ(CountBySession(s.Dispatch()), (std::map<std::string, int>{{"b", 4}}));
  EXPECT_EQ(s.InFlight("a"), 0);
  EXPECT_EQ(s.TotalSlots(), 2);
  EXPECT_EQ(s.FreeSlots(), 0);
}

TEST(SchedulerTest, AllWorkersDrainingDispatchesNothing) {
  Scheduler s(Prefetch(2));
  ASSERT_OK(s.AddWorker(Worker("a", 2)));
  ASSERT_OK(s.SetDraining("a"));
  ASSERT_OK(s.AddJob("job", {}, Range(3), 1));
  EXPECT_THAT(s.Dispatch(), IsEmpty());
  EXPECT_EQ(s.QueuedTasks(), 3u);
  EXPECT_EQ(s.TotalSlots(), 0);
  EXPECT_EQ(s.FreeSlots(), 0);
}

TEST(SchedulerTest, DeadWorkerTasksAreRequeuedAtTheFront) {
  Scheduler s(Prefetch(0));
  ASSERT_OK(s.AddWorker(Worker("a", 2)));
  ASSERT_OK(s.AddWorker(Worker("b", 2)));
  ASSERT_OK(s.AddJob("job", {}, Range(10), 1));
  const std::vector<Scheduler::Assignment> first = s.Dispatch();
  ASSERT_EQ(first.size(), 4u);
  std::vector<uint32_t> on_a;
  for (const auto& a : first) {
    if (a.session == "a") on_a.push_back(a.task.index);
  }
  ASSERT_EQ(on_a.size(), 2u);
  EXPECT_EQ(s.QueuedTasks(), 6u);

  ASSERT_OK_AND_ASSIGN(std::vector<TaskKey> returned, s.RemoveWorker("a"));
  EXPECT_THAT(IndicesOf(returned), UnorderedElementsAre(on_a[0], on_a[1]));
  for (const TaskKey& t : returned) EXPECT_EQ(t.job_id, "job");
  EXPECT_EQ(s.QueuedTasks(), 8u);
  EXPECT_EQ(s.InFlight("a"), 0);
  EXPECT_EQ(s.TotalSlots(), 2);

  // A fresh worker gets exactly those tasks back, lowest index first.
  ASSERT_OK(s.AddWorker(Worker("c", 2)));
  const std::vector<Scheduler::Assignment> again = s.Dispatch();
  ASSERT_EQ(again.size(), 2u);
  EXPECT_EQ(again[0].session, "c");
  EXPECT_EQ(again[1].session, "c");
  EXPECT_THAT(IndicesOf(again), ElementsAre(std::min(on_a[0], on_a[1]), std::max(on_a[0], on_a[1])));
  EXPECT_EQ(s.QueuedTasks(), 6u);
}

TEST(SchedulerTest, RemovedWorkerTasksOfSeveralJobsGoBackToTheirJobs) {
  Scheduler s(Prefetch(0));
  ASSERT_OK(s.AddWorker(Worker("a", 4)));
  ASSERT_OK(s.AddJob("j1", {}, {5, 6, 7}, 1));
  ASSERT_OK(s.AddJob("j2", {}, {8, 9, 10}, 2));
  ASSERT_EQ(s.Dispatch().size(), 4u);  // j1: 5, 6; j2: 8, 9
  ASSERT_OK_AND_ASSIGN(std::vector<TaskKey> returned, s.RemoveWorker("a"));
  EXPECT_THAT(returned, UnorderedElementsAre(TaskKey{"j1", 5}, TaskKey{"j1", 6}, TaskKey{"j2", 8},
                                             TaskKey{"j2", 9}));
  EXPECT_EQ(s.QueuedTasks(), 6u);
  ASSERT_OK(s.AddWorker(Worker("b", 6)));
  std::vector<TaskKey> order;
  for (const auto& a : s.Dispatch()) order.push_back(a.task);
  ASSERT_EQ(order.size(), 6u);
  std::vector<uint32_t> j1, j2;
  for (const TaskKey& t : order) (t.job_id == "j1" ? j1 : j2).push_back(t.index);
  EXPECT_THAT(j1, ElementsAre(5, 6, 7));
  EXPECT_THAT(j2, ElementsAre(8, 9, 10));
}

TEST(SchedulerTest, RemoveJobReturnsInFlightAndDropsQueued) {
  Scheduler s(Prefetch(1));
  ASSERT_OK(s.AddWorker(Worker("a", 1)));
  ASSERT_OK(s.AddWorker(Worker("b", 1)));
  ASSERT_OK(s.AddJob("gone", {}, Range(10), 1));
  ASSERT_OK(s.AddJob("stays", {}, Range(10), 2));
  const std::vector<Scheduler::Assignment> as = s.Dispatch();
  ASSERT_EQ(as.size(), 4u);
  std::vector<std::pair<std::string, uint32_t>> gone_in_flight;
  for (const auto& a : as) {
    if (a.task.job_id == "gone") gone_in_flight.emplace_back(a.session, a.task.index);
  }
  ASSERT_EQ(gone_in_flight.size(), 2u);
  EXPECT_EQ(s.QueuedTasks(), 16u);

  const std::vector<Scheduler::Assignment> removed = s.RemoveJob("gone");
  std::vector<std::pair<std::string, uint32_t>> got;
  for (const auto& a : removed) {
    EXPECT_EQ(a.task.job_id, "gone");
    got.emplace_back(a.session, a.task.index);
  }
  EXPECT_THAT(got, UnorderedElementsAre(gone_in_flight[0], gone_in_flight[1]));
  // Only the other job's queued tasks remain; the freed credits go to it.
  EXPECT_EQ(s.QueuedTasks(), 8u);
  EXPECT_EQ(s.InFlight("a") + s.InFlight("b"), 2);
  const std::vector<Scheduler::Assignment> next = s.Dispatch();
  EXPECT_EQ(CountByJob(next), (std::map<std::string, int>{{"stays", 2}}));
  // Removing it again, or an unknown job, returns nothing.
  EXPECT_THAT(s.RemoveJob("gone"), IsEmpty());
  EXPECT_THAT(s.RemoveJob("never"), IsEmpty());
  // The removed job's tasks are no longer in flight anywhere.
  EXPECT_THAT(s.Release(gone_in_flight[0].first, TaskKey{"gone", gone_in_flight[0].second}),
              StatusIs(absl::StatusCode::kNotFound, ::testing::_));
}

TEST(SchedulerTest, RequeuePutsATaskAtTheFront) {
  Scheduler s(Prefetch(0));
  ASSERT_OK(s.AddWorker(Worker("a", 1)));
  ASSERT_OK(s.AddJob("job", {}, Range(3), 1));
  std::vector<Scheduler::Assignment> as = s.Dispatch();
  ASSERT_EQ(as.size(), 1u);
  ASSERT_EQ(as[0].task.index, 0u);
  ASSERT_OK(s.Release("a", as[0].task));
  ASSERT_OK(s.Requeue(as[0].task));
  EXPECT_EQ(s.QueuedTasks(), 3u);
  as = s.Dispatch();
  ASSERT_EQ(as.size(), 1u);
  EXPECT_EQ(as[0].task, (TaskKey{"job", 0}));
  EXPECT_THAT(s.Requeue(TaskKey{"unknown", 0}), StatusIs(absl::StatusCode::kNotFound, HasSubstr("unknown")));
}

TEST(SchedulerTest, SlotAndQueueCounters) {
  Scheduler s(Prefetch(2));
  EXPECT_EQ(s.TotalSlots(), 0);
  EXPECT_EQ(s.FreeSlots(), 0);
  EXPECT_EQ(s.QueuedTasks(), 0u);
  EXPECT_THAT(s.Dispatch(), IsEmpty());

  ASSERT_OK(s.AddWorker(Worker("a", 2)));
  ASSERT_OK(s.AddWorker(Worker("b", 3)));
  EXPECT_EQ(s.TotalSlots(), 5);
  EXPECT_EQ(s.FreeSlots(), 5);

  ASSERT_OK(s.AddJob("job", {}, Range(4), 1));
  EXPECT_EQ(s.QueuedTasks(), 4u);
  EXPECT_EQ(s.Dispatch().size(), 4u);
  EXPECT_EQ(s.QueuedTasks(), 0u);
  EXPECT_EQ(s.TotalSlots(), 5);
  EXPECT_EQ(s.FreeSlots(), 1);

  // Prefetched tasks beyond the slots do not make free slots negative.
  ASSERT_OK(s.AddJob("more", {}, Range(20), 2));
  s.Dispatch();
  EXPECT_EQ(s.InFlight("a"), 4);
  EXPECT_EQ(s.InFlight("b"), 5);
  EXPECT_EQ(s.FreeSlots(), 0);
  EXPECT_EQ(s.QueuedTasks(), 15u);
  EXPECT_EQ(s.InFlight("unknown"), 0);
}

TEST(SchedulerTest, RegistrationErrors) {
  Scheduler s(Prefetch(2));
  EXPECT_THAT(s.AddWorker(Worker("zero", 0)), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("slots")));
  ASSERT_OK(s.AddWorker(Worker("a", 1)));
  EXPECT_THAT(s.AddWorker(Worker("a", 2)), StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr("a")));
  EXPECT_EQ(s.TotalSlots(), 1);
  EXPECT_THAT(s.RemoveWorker("x"), StatusIs(absl::StatusCode::kNotFound, HasSubstr("x")));
  EXPECT_THAT(s.SetDraining("x"), StatusIs(absl::StatusCode::kNotFound, HasSubstr("x")));
  ASSERT_OK(s.AddJob("job", {}, Range(2), 1));
  EXPECT_THAT(s.AddJob("job", {}, Range(5), 2), StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr("job")));
  EXPECT_EQ(s.QueuedTasks(), 2u);
}

TEST(SchedulerTest, AdoptedTaskTakesCreditUntilReleased) {
  Scheduler s(Prefetch(0));
  ASSERT_OK(s.AddWorker(Worker("a", 1)));
  ASSERT_OK(s.AddJob("job", {}, {1}, 1));  // task 0 is held elsewhere, in no queue
  ASSERT_OK(s.Adopt("a", TaskKey{"job", 0}));
  EXPECT_EQ(s.InFlight("a"), 1);
  EXPECT_THAT(s.Dispatch(), IsEmpty());  // its one slot is taken
  EXPECT_THAT(s.Adopt("a", TaskKey{"job", 0}), StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr("in flight")));
  EXPECT_THAT(s.Adopt("nobody", TaskKey{"job", 0}), StatusIs(absl::StatusCode::kNotFound, HasSubstr("nobody")));
  EXPECT_THAT(s.Adopt("a", TaskKey{"other", 0}), StatusIs(absl::StatusCode::kNotFound, HasSubstr("other")));
  ASSERT_OK(s.Release("a", TaskKey{"job", 0}));
  const auto as = s.Dispatch();
  ASSERT_EQ(as.size(), 1u);
  EXPECT_EQ(as[0].task.index, 1u);
}

}  // namespace
}  // namespace busyfleet::coordinator

namespace busyfleet::coordinator {
namespace {

std::vector<std::tuple<std::string, std::string, uint32_t, uint32_t>> Runs(const std::vector<Scheduler::Run>& runs) {
  std::vector<std::tuple<std::string, std::string, uint32_t, uint32_t>> out;
  for (const Scheduler::Run& r : runs) out.emplace_back(r.session, r.job_id, r.first, r.count);
  return out;
}

TEST(SchedulerRunsTest, ConsecutiveTasksForOneWorkerComeAsOneRun) {
  Scheduler s(Prefetch(8));
  ASSERT_OK(s.AddWorker(Worker("a", 2)));
  ASSERT_OK(s.AddJob("job", {}, Range(100), 1));
  // Two free slots, then eight prefetched: tasks 0-9 in one run.
  EXPECT_THAT(Runs(s.DispatchRuns()), ElementsAre(std::make_tuple("a", "job", 0u, 10u)));
  EXPECT_EQ(s.InFlight("a"), 10);
  // Task 3 comes back and goes to the queue's front: it starts a run of its
  // own; the next tasks follow in another.
  ASSERT_OK(s.Release("a", "job", 3));
  ASSERT_OK(s.Requeue(TaskKey{"job", 3}));
  ASSERT_OK(s.Release("a", "job", 4));
  EXPECT_THAT(Runs(s.DispatchRuns()),
              ElementsAre(std::make_tuple("a", "job", 3u, 1u), std::make_tuple("a", "job", 10u, 1u)));
  EXPECT_EQ(s.InFlight("a"), 10);
}

TEST(SchedulerRunsTest, RunsAndSingleAssignmentsNameTheSameTasks) {
  for (bool runs : {false, true}) {
    Scheduler s(Prefetch(5));
    ASSERT_OK(s.AddWorker(Worker("a", 1)));
    ASSERT_OK(s.AddWorker(Worker("b", 3)));
    ASSERT_OK(s.AddJob("x", {}, Range(7), 1));
    ASSERT_OK(s.AddJob("y", {}, Range(30), 2));
    std::multiset<std::tuple<std::string, std::string, uint32_t>> tasks;
    if (runs) {
      for (const Scheduler::Run& r : s.DispatchRuns()) {
        ASSERT_GT(r.count, 0u);
        for (uint32_t i = 0; i < r.count; ++i) tasks.emplace(r.session, r.job_id, r.first + i);
      }
    } else {
      for (const Scheduler::Assignment& a : s.Dispatch()) tasks.emplace(a.session, a.task.job_id, a.task.index);
    }
    // Every in-flight task once, as the credits allow: 1 + 5 and 3 + 5.
    std::set<std::tuple<std::string, uint32_t>> distinct;
    for (const auto& [session, job, index] : tasks) distinct.emplace(job, index);
    EXPECT_EQ(distinct.size(), tasks.size()) << "runs=" << runs;
    EXPECT_EQ(tasks.size(), 14u) << "runs=" << runs;
    EXPECT_EQ(s.InFlight("a"), 6) << "runs=" << runs;
    EXPECT_EQ(s.InFlight("b"), 8) << "runs=" << runs;
    for (const auto& [session, job, index] : tasks) EXPECT_OK(s.Release(session, job, index));
    EXPECT_EQ(s.InFlight("a") + s.InFlight("b"), 0) << "runs=" << runs;
    EXPECT_THAT(s.Release("a", "x", 0), StatusIs(absl::StatusCode::kNotFound, HasSubstr("x/0"))) << "released twice";
  }
}

TEST(SchedulerRunsTest, RemovingAJobFreesItsTasksOnEveryWorkerAndNoOthers) {
  Scheduler s(Prefetch(2));
  ASSERT_OK(s.AddWorker(Worker("a", 1)));
  ASSERT_OK(s.AddWorker(Worker("b", 1)));
  ASSERT_OK(s.AddJob("x", {}, Range(3), 1));
  ASSERT_OK(s.AddJob("y", {}, Range(3), 2));
  s.DispatchRuns();
  const int before = s.InFlight("a") + s.InFlight("b");
  std::vector<Scheduler::Assignment> freed = s.RemoveJob("x");
  for (const Scheduler::Assignment& a : freed) EXPECT_EQ(a.task.job_id, "x");
  EXPECT_EQ(s.InFlight("a") + s.InFlight("b"), before - static_cast<int>(freed.size()));
  EXPECT_EQ(freed.size(), 3u);
  // y's tasks are still in flight and come back with their worker.
  absl::StatusOr<std::vector<TaskKey>> back = s.RemoveWorker("a");
  ASSERT_OK(back.status());
  for (const TaskKey& t : *back) EXPECT_EQ(t.job_id, "y");
}

// Release and the in-flight sets remember the job they found last. A job
// removed, with a task in flight, and scheduled again under its id is the
// new one: its cap counts its own tasks, and its task goes in a new set.
TEST(SchedulerTest, AJobScheduledAgainUnderItsIdIsTheNewOne) {
  Scheduler s(Prefetch(0));
  ASSERT_OK(s.AddWorker(Worker("a", 2)));
  Scheduler::JobConstraints serial;
  serial.max_slots = 1;
  for (int round = 0; round < 3; ++round) {
    SCOPED_TRACE(round);
    ASSERT_OK(s.AddJob("x", serial, Range(3), 1));
    std::vector<Scheduler::Assignment> as = s.Dispatch();
    ASSERT_EQ(as.size(), 1u);
    ASSERT_OK(s.Release("a", as[0].task));
    s.ObserveTaskSeconds("x", 0.5);
    as = s.Dispatch();  // the cap of one counts the released task out
    ASSERT_EQ(as.size(), 1u);
    EXPECT_EQ(as[0].task.index, 1u);
    EXPECT_THAT(s.RemoveJob("x"), ElementsAre(::testing::Field(&Scheduler::Assignment::task, TaskKey{"x", 1})));
    EXPECT_EQ(s.InFlight("a"), 0);
    EXPECT_THAT(s.Release("a", TaskKey{"x", 1}), StatusIs(absl::StatusCode::kNotFound, HasSubstr("not in flight")));
  }
}

// Release remembers the last session's worker: a worker removed and
// attached again under the same session id is the new one (a stale
// pointer is a heap-use-after-free under ASan).
TEST(SchedulerTest, AWorkerAttachedAgainUnderItsSessionIsTheNewOne) {
  Scheduler s(Prefetch(0));
  ASSERT_OK(s.AddJob("x", {}, Range(10), 1));
  for (uint32_t round = 0; round < 3; ++round) {
    SCOPED_TRACE(round);
    ASSERT_OK(s.AddWorker(Worker("a", 1)));
    std::vector<Scheduler::Assignment> as = s.Dispatch();
    ASSERT_EQ(as.size(), 1u);
    ASSERT_OK(s.Release("a", as[0].task));  // remembered
    as = s.Dispatch();
    ASSERT_EQ(as.size(), 1u);
    ASSERT_OK_AND_ASSIGN(std::vector<TaskKey> returned, s.RemoveWorker("a"));
    EXPECT_THAT(returned, ElementsAre(as[0].task));
    EXPECT_THAT(s.Release("a", as[0].task), StatusIs(absl::StatusCode::kNotFound, HasSubstr("not in flight")));
  }
}

}  // namespace
}  // namespace busyfleet::coordinator

namespace busyfleet::coordinator {
namespace {

std::vector<uint32_t> Drain(IndexQueue q) {
  std::vector<uint32_t> out;
  while (!q.empty()) {
    out.push_back(q.front());
    q.pop_front();
  }
  return out;
}

TEST(IndexQueueTest, KeepsOrderThroughPushFrontEraseAndPop) {
  IndexQueue q;
  q.AssignRange(6);
  EXPECT_EQ(q.size(), 6u);
  EXPECT_TRUE(q.Erase(3));   // the middle of a run: split
  EXPECT_FALSE(q.Erase(3));  // gone
  EXPECT_FALSE(q.Erase(6));  // never there
  EXPECT_TRUE(q.Erase(0));   // a run's first
  EXPECT_TRUE(q.Erase(5));   // a run's last
  q.pop_front();             // 1
  q.push_front(0);           // joins the front run (0, 2)
  q.push_front(9);           // a run of its own
  EXPECT_EQ(q.size(), 4u);
  EXPECT_THAT(Drain(q), ElementsAre(9, 0, 2, 4));
}

TEST(IndexQueueTest, AssignKeepsAnyOrderAndRepeats) {
  IndexQueue q;
  q.Assign({7, 8, 9, 2, 3, 3, 0});
  EXPECT_EQ(q.size(), 7u);
  EXPECT_THAT(Drain(q), ElementsAre(7, 8, 9, 2, 3, 3, 0));
  q.AssignRange(0);
  EXPECT_TRUE(q.empty());
}

TEST(IndexQueueTest, TheLastIndexesDoNotWrap) {
  IndexQueue q;
  q.Assign({UINT32_MAX - 1, UINT32_MAX, 0});
  EXPECT_THAT(Drain(q), ElementsAre(UINT32_MAX - 1, UINT32_MAX, 0));
  q.Assign({0});
  q.push_front(UINT32_MAX);
  EXPECT_THAT(Drain(q), ElementsAre(UINT32_MAX, 0));
}

std::vector<uint32_t> Indices(const IndexSet& set) {
  std::vector<uint32_t> out;
  set.AppendTo(out);
  return out;
}

TEST(IndexSetTest, RunsJoinAndSplitAsIndicesComeAndGo) {
  IndexSet s;
  for (uint32_t i : {4u, 5u, 6u, 10u, 11u}) EXPECT_TRUE(s.Insert(i));
  EXPECT_EQ(s.runs(), 2u);
  EXPECT_FALSE(s.Insert(5));   // already in
  EXPECT_TRUE(s.Insert(8));    // between the runs, joining neither
  EXPECT_EQ(s.runs(), 3u);
  EXPECT_TRUE(s.Insert(7));    // joins 4-6 and 8
  EXPECT_TRUE(s.Insert(9));    // and 10-11: one run
  EXPECT_EQ(s.runs(), 1u);
  EXPECT_TRUE(s.Insert(3));    // before the first
  EXPECT_TRUE(s.Erase(7));     // the middle: split
  EXPECT_FALSE(s.Erase(7));
  EXPECT_FALSE(s.Erase(2));    // before every run
  EXPECT_FALSE(s.Erase(12));   // after
  EXPECT_TRUE(s.Erase(3));     // the front
  EXPECT_TRUE(s.Erase(11));    // a run's last
  EXPECT_EQ(s.size(), 6u);
  EXPECT_THAT(Indices(s), ElementsAre(4, 5, 6, 8, 9, 10));
  EXPECT_TRUE(s.Contains(8));
  EXPECT_FALSE(s.Contains(7));
  EXPECT_FALSE(s.Contains(0));
}

TEST(IndexSetTest, TheLastIndexesDoNotWrap) {
  IndexSet s;
  EXPECT_TRUE(s.Insert(UINT32_MAX));
  EXPECT_TRUE(s.Insert(0));
  EXPECT_TRUE(s.Insert(UINT32_MAX - 1));
  EXPECT_FALSE(s.Insert(UINT32_MAX));
  EXPECT_THAT(Indices(s), ElementsAre(0u, UINT32_MAX - 1, UINT32_MAX));
  EXPECT_TRUE(s.Erase(UINT32_MAX));
  EXPECT_FALSE(s.Contains(UINT32_MAX));
  EXPECT_TRUE(s.Contains(UINT32_MAX - 1));
}

// Against std::set: random inserts, erases and lookups, in runs and
// scattered, over a small range so that they collide.
TEST(IndexSetTest, AgreesWithAnOrderedSetOnRandomOperations) {
  std::srand(17);
  IndexSet s;
  std::set<uint32_t> want;
  for (int step = 0; step < 200'000; ++step) {
    const uint32_t i = static_cast<uint32_t>(std::rand() % 300);
    switch (std::rand() % 4) {
      case 0:
        ASSERT_EQ(s.Insert(i), want.insert(i).second) << "insert " << i << " at step " << step;
        break;
      case 1: {  // a dealt run
        const uint32_t n = static_cast<uint32_t>(std::rand() % 8);
        for (uint32_t k = i; k < i + n; ++k) ASSERT_EQ(s.Insert(k), want.insert(k).second) << step;
        break;
      }
      case 2:
        ASSERT_EQ(s.Erase(i), want.erase(i) == 1) << "erase " << i << " at step " << step;
        break;
      default:
        ASSERT_EQ(s.Contains(i), want.count(i) == 1) << "contains " << i << " at step " << step;
    }
    ASSERT_EQ(s.size(), want.size());
    if (step % 1000 == 0) {
      ASSERT_EQ(Indices(s), std::vector<uint32_t>(want.begin(), want.end())) << step;
      size_t runs = 0;  // maximal runs: neighbours always joined
      for (auto it = want.begin(); it != want.end(); ++it) {
        if (it == want.begin() || *std::prev(it) + 1 != *it) ++runs;
      }
      ASSERT_EQ(s.runs(), runs) << step;
    }
  }
  ASSERT_EQ(Indices(s), std::vector<uint32_t>(want.begin(), want.end()));
}

TEST(SchedulerTest, ANewJobOfAMillionTasksDealsThemInOrder) {
  Scheduler s(Prefetch(0));
  ASSERT_OK(s.AddWorker(Worker("a", 4)));
  ASSERT_OK(s.AddNewJob("big", {}, 1'000'000, 1));
  EXPECT_EQ(s.QueuedFor("big"), 1'000'000u);
  EXPECT_THAT(Runs(s.DispatchRuns()), ElementsAre(std::make_tuple("a", "big", 0u, 4u)));
  EXPECT_EQ(s.QueuedTasks(), 999'996u);
  EXPECT_TRUE(s.Dequeue(TaskKey{"big", 999'999}));
  EXPECT_FALSE(s.Dequeue(TaskKey{"big", 2})) << "in flight, not queued";
  EXPECT_EQ(s.QueuedFor("big"), 999'995u);
}

}  // namespace
}  // namespace busyfleet::coordinator
