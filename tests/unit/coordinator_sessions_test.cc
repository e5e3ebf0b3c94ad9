// Unit tests of the Coordinator's sessions: attach, names, heartbeats and
// liveness, drain.
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "busyfleet/proto_time.h"
#include "tests/unit/coordinator_fixture.h"

namespace busyfleet::coordinator {
namespace {

// --- Attach ---

TEST_F(CoordinatorTest, CreateRejectsBadOptions) {
  Coordinator::Options o = Defaults();
  o.store = nullptr;
  EXPECT_THAT(Coordinator::Create(o), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("store")));
  o = Defaults();
  o.worker_timeout = absl::ZeroDuration();
  EXPECT_THAT(Coordinator::Create(o),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("worker-timeout")));
  o = Defaults();
  o.prefetch_per_worker = -1;
  EXPECT_THAT(Coordinator::Create(o), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("prefetch")));
}

// Interned names are kept for the process's life: a worker that connects
// again and again (a flapping link, a peer in a reconnect loop) must not
// add one each time. Until issue 17's ninth session each session's id was
// interned at its hello (200 names more here).
TEST_F(CoordinatorTest, AWorkerConnectingAgainAndAgainInternsNoNewNames) {
  ASSERT_OK_AND_ASSIGN(auto sub, coord_->Submit(Countdown(400)));
  const auto cycle = [&] {
    ASSERT_OK_AND_ASSIGN(FakeWorker w, Attach("flappy", 1));
    const auto as = w.channel->TakeNew();
    ASSERT_THAT(as, Not(IsEmpty()));
    ASSERT_OK(Succeed(w, as[0]));  // one done; the rest in flight when it goes
    coord_->Detach(w.session, absl::UnavailableError("connection reset"));
  };
  cycle();  // its name, host and the like: interned once
  const size_t names = InternedNameCount();
  for (int i = 0; i < 200; ++i) {
    cycle();
    if (HasFatalFailure()) return;
  }
  EXPECT_EQ(InternedNameCount(), names);
  ASSERT_OK_AND_ASSIGN(auto report, coord_->GetReport(sub.job_id(), false));
  EXPECT_EQ(report.tasks_succeeded(), 201u);
}

TEST_F(CoordinatorTest, AttachSendsWelcomeWithDefaultHeartbeatInterval) {
  Coordinator::Options o = Defaults();
  o.worker_timeout = absl::Seconds(10);
  int attached_calls = 0;
  o.on_worker_attached = [&attached_calls] { ++attached_calls; };
  Start(o);
  auto ch = std::make_shared<FakeChannel>();
  ASSERT_OK_AND_ASSIGN(std::string session, coord_->Attach(MakeHello("w1", 2), "peer-1", ch));

  const auto msgs = ch->messages();
  ASSERT_THAT(msgs, SizeIs(1));  // no job queued: no AssignBatch
  ASSERT_TRUE(msgs[0].has_welcome());
  const v1::Welcome& w = msgs[0].welcome();
  EXPECT_EQ(w.session_id(), session);
  EXPECT_FALSE(session.empty());
  EXPECT_EQ(w.name(), "w1");
  EXPECT_EQ(w.heartbeat_interval().seconds(), 3);  // 10s / 3
  EXPECT_EQ(w.heartbeat_interval().nanos(), 333'333'333);
  EXPECT_EQ(w.worker_timeout().seconds(), 10);
  EXPECT_EQ(w.echo_sent_mono_ns(), 777);
  EXPECT_EQ(w.coordinator_unix_ns(), absl::ToUnixNanos(clock_.Now()));
  EXPECT_EQ(attached_calls, 1);

  const auto workers = coord_->ListWorkers(false);
  ASSERT_THAT(workers, SizeIs(1));
  EXPECT_EQ(workers[0].name(), "w1");
  EXPECT_EQ(workers[0].session_id(), session);
  EXPECT_EQ(workers[0].slots(), 2u);
  EXPECT_EQ(workers[0].state(), v1::WORKER_STATE_READY);
  EXPECT_EQ(workers[0].host().hostname(), "w1.host");
  EXPECT_EQ(workers[0].peer(), "peer-1");
}

TEST_F(CoordinatorTest, OnlyAnAttachDueBeforeThePlannedCheckWakesTheLivenessLoop) {
  // A wake per attach made each of 10,000 attaches scan every session.
  Coordinator::Options o = Defaults();
  int attached_calls = 0;
  o.on_worker_attached = [&attached_calls] { ++attached_calls; };
  Start(o);
  ASSERT_OK(Attach("w1", 1).status());
  EXPECT_EQ(attached_calls, 1) << "the loop sleeps until a worker attaches";
  const MonoTime next = coord_->CheckLiveness();
  EXPECT_EQ(next, clock_.Mono() + o.worker_timeout + kLivenessSlack);
  clock_.Advance(absl::Seconds(1));
  ASSERT_OK(Attach("w2", 1).status());
  EXPECT_EQ(attached_calls, 1) << "w2's deadline is after the check planned for w1";
}

TEST_F(CoordinatorTest, ExplicitHeartbeatIntervalIsSentInWelcome) {
  Coordinator::Options o = Defaults();
  o.heartbeat_interval = absl::Milliseconds(300);
  Start(o);
  ASSERT_OK_AND_ASSIGN(FakeWorker w, Attach("w", 1));
  const v1::Welcome welcome = w.channel->messages()[0].welcome();
  EXPECT_EQ(welcome.heartbeat_interval().seconds(), 0);
  EXPECT_EQ(welcome.heartbeat_interval().nanos(), 300'000'000);
}

TEST_F(CoordinatorTest, AttachSendsQueuedTasksAfterWelcome) {
  ASSERT_OK_AND_ASSIGN(auto sub, coord_->Submit(Countdown(3, 5000)));
  EXPECT_EQ(sub.tasks(), 3u);
  ASSERT_OK_AND_ASSIGN(auto report, coord_->GetReport(sub.job_id(), false));
  EXPECT_EQ(report.state(), v1::JOB_STATE_PENDING);  // no worker yet

  ASSERT_OK_AND_ASSIGN(FakeWorker w, Attach("w", 1));
  const auto msgs = w.channel->messages();
  ASSERT_THAT(msgs, SizeIs(2));
  EXPECT_TRUE(msgs[0].has_welcome());
  ASSERT_TRUE(msgs[1].has_assign());
  // 1 slot + prefetch 2 = 3 tasks in one batch.
  ASSERT_THAT(msgs[1].assign().assignments(), SizeIs(3));
  for (int i = 0; i < 3; ++i) {
    const v1::Assignment& a = msgs[1].assign().assignments(i);
    EXPECT_EQ(a.task().job_id(), sub.job_id());
    EXPECT_EQ(a.task().task_index(), static_cast<uint32_t>(i));
    EXPECT_EQ(a.task().attempt(), 1u);
    EXPECT_EQ(a.kind(), v1::TASK_KIND_COUNTDOWN);
    EXPECT_EQ(a.iterations(), 5000u);
  }
  ASSERT_OK_AND_ASSIGN(report, coord_->GetReport(sub.job_id(), false));
  EXPECT_EQ(report.state(), v1::JOB_STATE_RUNNING);
  EXPECT_EQ(Info("w").assigned(), 3u);
}

TEST_F(CoordinatorTest, AttachRejectsInvalidHello) {
  auto ch = std::make_shared<FakeChannel>();
  EXPECT_THAT(coord_->Attach(MakeHello("", 1), "p", ch),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("hello.name")));
  EXPECT_THAT(coord_->Attach(MakeHello("w", 0), "p", ch),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("hello.slots")));
  EXPECT_THAT(coord_->Attach(MakeHello("w", 4097), "p", ch),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("hello.slots"), HasSubstr("4096"), HasSubstr("4097"))));
  EXPECT_THAT(coord_->Attach(MakeHello(std::string(129, 'x'), 1), "p", ch),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("hello.name")));
  v1::Hello long_machine = MakeHello("w", 1);
  long_machine.mutable_host()->set_machine_id(std::string(129, 'a'));
  EXPECT_THAT(coord_->Attach(long_machine, "p", ch),
              StatusIs(absl::StatusCode::kInvalidArgument, AllOf(HasSubstr("hello.host.machine_id"), HasSubstr("128"))));
  EXPECT_THAT(ch->messages(), IsEmpty());
  EXPECT_THAT(coord_->ListWorkers(true), IsEmpty());
  // The limit itself is accepted.
  EXPECT_OK(coord_->Attach(MakeHello("w", 4096), "p", ch));
}

TEST_F(CoordinatorTest, SameNameGetsSuffix) {
  ASSERT_OK_AND_ASSIGN(FakeWorker a, Attach("w", 1));
  ASSERT_OK_AND_ASSIGN(FakeWorker b, Attach("w", 1));
  ASSERT_OK_AND_ASSIGN(FakeWorker c, Attach("w", 1, "other-instance"));
  EXPECT_EQ(a.name, "w");
  EXPECT_EQ(b.name, "w-2");
  EXPECT_EQ(c.name, "w-3");
  EXPECT_NE(a.session, b.session);
  std::vector<std::string> names;
  for (const auto& w : coord_->ListWorkers(false)) names.push_back(w.name());
  EXPECT_THAT(names, ElementsAre("w", "w-2", "w-3"));
}

TEST_F(CoordinatorTest, ReattachWithSameInstanceReplacesOldSession) {
  ASSERT_OK_AND_ASSIGN(FakeWorker old, Attach("w", 1, "inst-1"));
  ASSERT_OK_AND_ASSIGN(auto sub, coord_->Submit(Countdown(2)));
  ASSERT_THAT(old.channel->TakeNew(), SizeIs(2));

  ASSERT_OK_AND_ASSIGN(FakeWorker fresh, Attach("w", 1, "inst-1"));
  EXPECT_EQ(fresh.name, "w");  // not "w-2": it replaced itself
  EXPECT_NE(fresh.session, old.session);
  const auto workers = coord_->ListWorkers(false);
  ASSERT_THAT(workers, SizeIs(1));
  EXPECT_EQ(workers[0].session_id(), fresh.session);

  // The old session's tasks are run again, on the new session, as attempt 2.
  const auto again = fresh.channel->TakeNew();
  ASSERT_THAT(again, SizeIs(2));
  EXPECT_EQ(Indices(again), (std::set<uint32_t>{0, 1}));
  for (const auto& a : again) {
    EXPECT_EQ(a.task().job_id(), sub.job_id());
    EXPECT_EQ(a.task().attempt(), 2u);
  }
  EXPECT_THAT(coord_->HandleMessage(old.session, v1::WorkerMessage()),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr(old.session)));
  // Nothing new was sent to the old stream after the replacement.
  EXPECT_EQ(old.channel->Count(v1::CoordinatorMessage::kAssign), 1);
}

TEST_F(CoordinatorTest, SilentWorkerIsDeclaredDeadAndItsTasksRequeued) {
  ASSERT_OK_AND_ASSIGN(FakeWorker quiet, Attach("quiet", 1));
  ASSERT_OK_AND_ASSIGN(FakeWorker chatty, Attach("chatty", 1));
  const MonoTime t0 = clock_.Mono();
  ASSERT_OK_AND_ASSIGN(auto sub, coord_->Submit(Countdown(2)));
  const auto for_quiet = quiet.channel->TakeNew();
  ASSERT_THAT(for_quiet, SizeIs(1));
  ASSERT_THAT(chatty.channel->TakeNew(), SizeIs(1));

  clock_.Advance(absl::Seconds(3));
  ASSERT_OK(Heartbeat(chatty, 1));
  EXPECT_EQ(coord_->CheckLiveness(), t0 + absl::Seconds(5) + kLivenessSlack);  // quiet is due first
  EXPECT_THAT(coord_->ListWorkers(false), SizeIs(2));

  clock_.Advance(absl::Seconds(2) + absl::Milliseconds(500));  // quiet: 5.5s, chatty: 2.5s
  EXPECT_EQ(coord_->CheckLiveness(), t0 + absl::Seconds(8) + kLivenessSlack);
  const auto live = coord_->ListWorkers(false);
  ASSERT_THAT(live, SizeIs(1));
  EXPECT_EQ(live[0].name(), "chatty");
  const auto closes = quiet.channel->closes();
  ASSERT_THAT(closes, SizeIs(1));
  EXPECT_EQ(closes[0].code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(chatty.channel->closes(), IsEmpty());
  EXPECT_EQ(Info("quiet", true).state(), v1::WORKER_STATE_GONE);

  const auto moved = chatty.channel->TakeNew();
  ASSERT_THAT(moved, SizeIs(1));
  EXPECT_EQ(moved[0].task().task_index(), for_quiet[0].task().task_index());
  EXPECT_EQ(moved[0].task().attempt(), 2u);
  ASSERT_OK_AND_ASSIGN(auto report, coord_->GetReport(sub.job_id(), true));
  EXPECT_EQ(report.retries(), 1u);
  EXPECT_THAT(report.tasks(static_cast<int>(moved[0].task().task_index())).error(),
              HasSubstr("lost with worker quiet"));
  // The dead session can no longer speak.
  EXPECT_THAT(Heartbeat(quiet, 9), StatusIs(absl::StatusCode::kNotFound, HasSubstr(quiet.session)));
}

TEST_F(CoordinatorTest, WorkerThatHeartbeatsStaysAttached) {
  ASSERT_OK_AND_ASSIGN(FakeWorker w, Attach("w", 1));
  for (int i = 0; i < 10; ++i) {
    clock_.Advance(absl::Seconds(4));
    ASSERT_OK(Heartbeat(w, static_cast<uint64_t>(i)));
    EXPECT_EQ(coord_->CheckLiveness(), clock_.Mono() + absl::Seconds(5) + kLivenessSlack);
  }
  EXPECT_THAT(coord_->ListWorkers(false), SizeIs(1));
  EXPECT_THAT(w.channel->closes(), IsEmpty());
}

TEST_F(CoordinatorTest, CheckLivenessReturnsNextDeadline) {
  EXPECT_EQ(coord_->CheckLiveness(), MonoTime::InfiniteFuture());
  const MonoTime t0 = clock_.Mono();
  ASSERT_OK_AND_ASSIGN(FakeWorker w, Attach("w", 1));
  EXPECT_EQ(coord_->CheckLiveness(), t0 + absl::Seconds(5) + kLivenessSlack);
  clock_.Advance(absl::Seconds(1));
  ASSERT_OK(Heartbeat(w, 1));
  EXPECT_EQ(coord_->CheckLiveness(), t0 + absl::Seconds(6) + kLivenessSlack);
  // Any message counts as a sign of life, not only heartbeats.
  clock_.Advance(absl::Seconds(2));
  v1::WorkerMessage empty_updates;
  empty_updates.mutable_updates();
  ASSERT_OK(Send(w, empty_updates));
  EXPECT_EQ(coord_->CheckLiveness(), t0 + absl::Seconds(8) + kLivenessSlack);
  // Exactly at the deadline: dead.
  clock_.Advance(absl::Seconds(5));
  EXPECT_EQ(coord_->CheckLiveness(), MonoTime::InfiniteFuture());
  EXPECT_THAT(coord_->ListWorkers(false), IsEmpty());
  EXPECT_THAT(w.channel->closes(), SizeIs(1));
}

// A heartbeat from a worker that follows pacing: it reports its interval.
v1::WorkerMessage PacedHeartbeat(uint64_t seq, absl::Duration interval) {
  v1::WorkerMessage m;
  m.mutable_heartbeat()->set_seq(seq);
  m.mutable_heartbeat()->set_no_ack(true);
  m.mutable_heartbeat()->mutable_heartbeat_interval()->set_seconds(absl::ToInt64Seconds(interval));
  m.mutable_heartbeat()->mutable_heartbeat_interval()->set_nanos(
      static_cast<int32_t>(absl::ToInt64Nanoseconds(interval % absl::Seconds(1))));
  return m;
}

absl::Duration WelcomeInterval(const FakeWorker& w) {
  return ToAbslDuration(w.channel->messages().front().welcome().heartbeat_interval());
}

// Heartbeats every second, dead after 3 s, at most 2 heartbeats a second:
// a third worker makes the fleet pass the ceiling.
Coordinator::Options PacedOptions(Coordinator::Options o) {
  o.worker_timeout = absl::Seconds(3);
  o.heartbeat_interval = absl::Seconds(1);
  o.max_heartbeat_rate = 2;
  return o;
}

TEST_F(CoordinatorTest, AFleetPastTheHeartbeatCeilingIsAskedForSlowerHeartbeats) {
  Start(PacedOptions(Defaults()));
  ASSERT_OK_AND_ASSIGN(FakeWorker w1, Attach("w1", 1));
  ASSERT_OK_AND_ASSIGN(FakeWorker w2, Attach("w2", 1));
  EXPECT_EQ(WelcomeInterval(w2), absl::Seconds(1)) << "2 workers x 1/s: at the ceiling";
  ASSERT_OK_AND_ASSIGN(FakeWorker w3, Attach("w3", 1));
  // 3 workers need 1.5 s; with 12.5% headroom 1.6875 s, rounded up to a ms.
  const absl::Duration paced = absl::Milliseconds(1688);
  EXPECT_EQ(WelcomeInterval(w3), paced);
  EXPECT_EQ(ToAbslDuration(w3.channel->messages().front().welcome().worker_timeout()), absl::Milliseconds(5064));

  // w1 learns it from the ack of its next heartbeat, even one sent with no_ack.
  ASSERT_OK(Send(w1, PacedHeartbeat(1, absl::Seconds(1))));
  v1::CoordinatorMessage last = w1.channel->messages().back();
  ASSERT_TRUE(last.has_heartbeat_ack());
  EXPECT_EQ(ToAbslDuration(last.heartbeat_ack().heartbeat_interval()), paced);
  // Once told, no more acks for a no_ack heartbeat.
  ASSERT_OK(Send(w1, PacedHeartbeat(2, paced)));
  EXPECT_EQ(w1.channel->Count(v1::CoordinatorMessage::kHeartbeatAck), 1);
  // A worker older than the field is never told (it would ignore it).
  ASSERT_OK(Heartbeat(w2, 1));
  last = w2.channel->messages().back();
  ASSERT_TRUE(last.has_heartbeat_ack());
  EXPECT_FALSE(last.heartbeat_ack().has_heartbeat_interval());
}

TEST_F(CoordinatorTest, APacedFleetsTimeoutGrowsWithItsInterval) {
  Start(PacedOptions(Defaults()));
  const MonoTime t0 = clock_.Mono();
  for (const char* name : {"w1", "w2", "w3"}) ASSERT_OK(Attach(name, 1).status());
  // 3 s x 1.688 s / 1 s: silent workers are dead after 5.064 s, not 3 s.
  const absl::Duration timeout = absl::Milliseconds(5064);
  EXPECT_EQ(coord_->CheckLiveness(), t0 + timeout + timeout / 10);
  clock_.Advance(absl::Seconds(4));
  coord_->CheckLiveness();
  EXPECT_THAT(coord_->ListWorkers(false), SizeIs(3)) << "past the base timeout, within the paced one";
  clock_.Advance(timeout - absl::Seconds(4));
  coord_->CheckLiveness();
  EXPECT_THAT(coord_->ListWorkers(false), IsEmpty());
}

TEST_F(CoordinatorTest, NoHeartbeatCeilingKeepsTheBaseIntervalForAnyFleet) {
  Coordinator::Options o = PacedOptions(Defaults());
  o.max_heartbeat_rate = 0;
  Start(o);
  for (int i = 0; i < 5; ++i) {
    ASSERT_OK_AND_ASSIGN(FakeWorker w, Attach(absl::StrCat("w", i), 1));
    EXPECT_EQ(WelcomeInterval(w), absl::Seconds(1));
  }
  o.max_heartbeat_rate = -1;
  EXPECT_THAT(Coordinator::Create(o),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("max-heartbeat-rate")));
}

TEST_F(CoordinatorTest, HeartbeatIsAnsweredWithAck) {
  ASSERT_OK_AND_ASSIGN(FakeWorker w, Attach("w", 1));
  clock_.Advance(absl::Milliseconds(1500));
  ASSERT_OK(Heartbeat(w, 42, 123'456'789));
  const auto msgs = w.channel->messages();
  ASSERT_THAT(msgs, SizeIs(2));
  ASSERT_TRUE(msgs[1].has_heartbeat_ack());
  EXPECT_EQ(msgs[1].heartbeat_ack().seq(), 42u);
  EXPECT_EQ(msgs[1].heartbeat_ack().echo_sent_mono_ns(), 123'456'789);
  EXPECT_EQ(msgs[1].heartbeat_ack().coordinator_unix_ns(), absl::ToUnixNanos(clock_.Now()));
  const v1::WorkerInfo info = Info("w");
  EXPECT_EQ(info.last_heartbeat().seconds(), absl::ToUnixSeconds(clock_.Now()));
  EXPECT_EQ(info.last_heartbeat().nanos(), 500'000'000);
  EXPECT_FALSE(info.has_clock_offset());

  // A worker whose wall clock is 7 s behind ours, with a 2 ms round trip.
  v1::WorkerMessage m;
  m.mutable_heartbeat()->set_seq(43);
  m.mutable_heartbeat()->set_sent_unix_ns(absl::ToUnixNanos(clock_.Now()) - 7 * kSecond - 1'000'000);
  m.mutable_heartbeat()->set_clock_rtt_ns(2'000'000);
  ASSERT_OK(Send(w, m));
  EXPECT_EQ(Info("w").clock_offset().seconds(), 7);
  EXPECT_EQ(Info("w").clock_offset().nanos(), 0);
}

TEST_F(CoordinatorTest, MalformedOrMisaddressedMessagesAreRejected) {
  ASSERT_OK_AND_ASSIGN(FakeWorker w, Attach("w", 1));
  EXPECT_THAT(Send(w, v1::WorkerMessage()), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("empty")));
  v1::WorkerMessage hello;
  *hello.mutable_hello() = MakeHello("w", 1);
  EXPECT_THAT(Send(w, hello), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("hello")));
  v1::WorkerMessage hb;
  hb.mutable_heartbeat();
  EXPECT_THAT(coord_->HandleMessage("s-nope", hb),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("s-nope")));
  // Results for unknown jobs or out-of-range tasks are ignored.
  v1::Assignment ghost;
  ghost.mutable_task()->set_job_id("j-ghost");
  ghost.mutable_task()->set_attempt(1);
  EXPECT_OK(Succeed(w, ghost));
  ASSERT_OK_AND_ASSIGN(auto sub, coord_->Submit(Countdown(1)));
  v1::Assignment out_of_range = w.channel->TakeNew().at(0);
  out_of_range.mutable_task()->set_task_index(5);
  EXPECT_OK(Succeed(w, out_of_range));
  EXPECT_OK(Started(w, out_of_range, 0, 0));
  ASSERT_OK_AND_ASSIGN(auto report, coord_->GetReport(sub.job_id(), false));
  EXPECT_EQ(report.state(), v1::JOB_STATE_RUNNING);
  EXPECT_EQ(report.tasks_succeeded(), 0u);
}

// --- Drain ---

TEST_F(CoordinatorTest, DrainStopsAssignmentsAndReturnedTasksAreRequeued) {
  ASSERT_OK_AND_ASSIGN(FakeWorker a, Attach("a", 1));
  ASSERT_OK_AND_ASSIGN(FakeWorker b, Attach("b", 1));
  v1::JobSpec spec = Countdown(2);
  spec.set_max_attempts(1);  // a returned task must not use up an attempt
  ASSERT_OK_AND_ASSIGN(auto sub, coord_->Submit(spec));
  const auto for_a = a.channel->TakeNew();
  const auto for_b = b.channel->TakeNew();
  ASSERT_THAT(for_a, SizeIs(1));
  ASSERT_THAT(for_b, SizeIs(1));

  ASSERT_OK_AND_ASSIGN(v1::WorkerState st, coord_->Drain("a"));
  EXPECT_EQ(st, v1::WORKER_STATE_DRAINING);
  EXPECT_EQ(a.channel->Count(v1::CoordinatorMessage::kDrain), 1);
  EXPECT_EQ(b.channel->Count(v1::CoordinatorMessage::kDrain), 0);
  EXPECT_EQ(Info("a").state(), v1::WORKER_STATE_DRAINING);
  EXPECT_EQ(Info("b").state(), v1::WORKER_STATE_READY);

  // New work goes to b only.
  ASSERT_OK_AND_ASSIGN(auto sub2, coord_->Submit(Countdown(1)));
  EXPECT_THAT(a.channel->TakeNew(), IsEmpty());
  const auto for_b2 = b.channel->TakeNew();
  ASSERT_THAT(for_b2, SizeIs(1));
  EXPECT_EQ(for_b2[0].task().job_id(), sub2.job_id());

  // a hands back the task it had not started: it goes to b, no failure counted.
  ASSERT_OK(Return(a, for_a));
  EXPECT_THAT(a.channel->TakeNew(), IsEmpty());
  const auto moved = b.channel->TakeNew();
  ASSERT_THAT(moved, SizeIs(1));
  EXPECT_EQ(moved[0].task().job_id(), sub.job_id());
  EXPECT_EQ(moved[0].task().task_index(), for_a[0].task().task_index());
  EXPECT_EQ(moved[0].task().attempt(), 2u);
  EXPECT_EQ(Info("a").assigned(), 0u);

  ASSERT_OK(Succeed(b, for_b[0]));
  ASSERT_OK(Succeed(b, moved[0]));
  ASSERT_OK_AND_ASSIGN(auto report, coord_->GetReport(sub.job_id(), true));
  EXPECT_EQ(report.state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(report.retries(), 0u);
  EXPECT_EQ(report.tasks_failed(), 0u);

  // Draining again is harmless; unknown names are NotFound.
  ASSERT_OK_AND_ASSIGN(st, coord_->Drain("a"));
  EXPECT_EQ(st, v1::WORKER_STATE_DRAINING);
  EXPECT_THAT(coord_->Drain("nobody"), StatusIs(absl::StatusCode::kNotFound, HasSubstr("nobody")));
}

TEST_F(CoordinatorTest, DrainNoticeFromWorkerMarksItDraining) {
  ASSERT_OK_AND_ASSIGN(FakeWorker a, Attach("a", 1));
  ASSERT_OK(Return(a, {}));  // the worker drains on its own (SIGTERM)
  EXPECT_EQ(Info("a").state(), v1::WORKER_STATE_DRAINING);
  ASSERT_OK(coord_->Submit(Countdown(1)));
  EXPECT_THAT(a.channel->assignments(), IsEmpty());
  ASSERT_OK_AND_ASSIGN(FakeWorker b, Attach("b", 1));
  EXPECT_THAT(b.channel->assignments(), SizeIs(1));
}

TEST_F(CoordinatorTest, DrainingWorkerFinishesItsRunningTasks) {
  ASSERT_OK_AND_ASSIGN(FakeWorker a, Attach("a", 2));
  ASSERT_OK_AND_ASSIGN(auto sub, coord_->Submit(Countdown(1)));
  const v1::Assignment x = a.channel->TakeNew().at(0);
  ASSERT_OK(Started(a, x, 0, kSecond));
  ASSERT_OK(coord_->Drain("a"));
  ASSERT_OK(coord_->Submit(Countdown(3)));  // a has free credit but is draining
  EXPECT_THAT(a.channel->TakeNew(), IsEmpty());
  ASSERT_OK(Succeed(a, x));
  EXPECT_THAT(a.channel->TakeNew(), IsEmpty());
  ASSERT_OK_AND_ASSIGN(auto report, coord_->GetReport(sub.job_id(), false));
  EXPECT_EQ(report.state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(Info("a").state(), v1::WORKER_STATE_DRAINING);
  EXPECT_EQ(Info("a").running(), 0u);
  // tasks auto counts only ready workers' slots.
  ASSERT_OK_AND_ASSIGN(FakeWorker b, Attach("b", 3));
  v1::JobSpec spec;
  spec.set_kind(v1::TASK_KIND_COUNTDOWN);
  spec.set_tasks_auto(true);
  ASSERT_OK_AND_ASSIGN(auto auto_job, coord_->Submit(spec));
  EXPECT_EQ(auto_job.tasks(), 3u);  // b's slots are all busy with the 3-task job: fleet size
}

}  // namespace
}  // namespace busyfleet::coordinator
