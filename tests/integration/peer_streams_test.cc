// Issue 14, item 4 over real gRPC: caps on sessions and watches, a worker
// that stops reading is disconnected (its task requeued), and a job whose
// tasks all failed with huge errors can still be read with GetJob.
#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/time/clock.h"
#include "busyfleet/v1/coordinator.grpc.pb.h"
#include "busyfleet/v1/worker.grpc.pb.h"
#include "common/rpc/keepalive.h"
#include "coordinator/core/limits.h"
#include "coordinator/server/coordinator_server.h"
#include "tests/testing/specs.h"
#include "tests/testing/status_matchers.h"

namespace busyfleet::coordinator {
namespace {

using ::testing::HasSubstr;
using Stream = grpc::ClientReaderWriter<v1::WorkerMessage, v1::CoordinatorMessage>;

class PeerLimitsTest : public ::testing::Test {
 protected:
  void Start(uint32_t max_sessions, uint32_t max_watches) {
    CoordinatorServer::Options o;
    o.listen = "127.0.0.1:0";
    o.max_sessions = max_sessions;
    o.max_watches = max_watches;
    auto server = CoordinatorServer::Start(o);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(kMaxMessageBytes);
    channel_ = grpc::CreateCustomChannel(server_->address(), grpc::InsecureChannelCredentials(), args);
    workers_ = v1::WorkerService::NewStub(channel_);
    clients_ = v1::CoordinatorService::NewStub(channel_);
  }
  void TearDown() override {
    if (server_) server_->Shutdown(absl::ZeroDuration());
  }
  // Opens an Attach stream and sends a hello; `ctx` must outlive it.
  std::unique_ptr<Stream> Attach(grpc::ClientContext* ctx, const std::string& name, uint32_t slots = 1) {
    std::unique_ptr<Stream> s = workers_->Attach(ctx);
    v1::WorkerMessage hello;
    hello.mutable_hello()->set_name(name);
    hello.mutable_hello()->set_slots(slots);
    s->Write(hello);
    return s;
  }
  // Waits (with a deadline, on the coordinator's state) until `pred` holds.
  template <typename Pred>
  bool WaitFor(Pred pred, absl::Duration timeout = absl::Seconds(20)) {
    const absl::Time deadline = absl::Now() + timeout;
    while (!pred()) {
      if (absl::Now() > deadline) return false;
      absl::SleepFor(absl::Milliseconds(5));  // polling a condition, not a synchronisation
    }
    return true;
  }

  std::unique_ptr<CoordinatorServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::WorkerService::Stub> workers_;
  std::unique_ptr<v1::CoordinatorService::Stub> clients_;
};

TEST_F(PeerLimitsTest, SessionsPastTheCapAreRefusedNamingTheLimit) {
  Start(/*max_sessions=*/1, /*max_watches=*/10);
  grpc::ClientContext ctx1, ctx2;
  auto first = Attach(&ctx1, "w1");
  v1::CoordinatorMessage welcome;
  ASSERT_TRUE(first->Read(&welcome));
  EXPECT_TRUE(welcome.has_welcome());
  auto second = Attach(&ctx2, "w2");
  v1::CoordinatorMessage m;
  EXPECT_FALSE(second->Read(&m));
  const grpc::Status st = second->Finish();
  EXPECT_EQ(st.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(st.error_message(), HasSubstr("the limit is 1 (--max-sessions)"));
  EXPECT_EQ(server_->coordinator().Metrics().peers.sessions_refused, 1u);
  ctx1.TryCancel();
}

TEST_F(PeerLimitsTest, WatchesPastTheCapAreRefusedNamingTheLimit) {
  Start(/*max_sessions=*/10, /*max_watches=*/1);
  ASSERT_OK_AND_ASSIGN(v1::SubmitJobResponse job, server_->coordinator().Submit(testing::Countdown(1)));
  v1::WatchJobRequest req;
  req.set_job_id(job.job_id());
  grpc::ClientContext ctx1, ctx2;
  auto first = clients_->WatchJob(&ctx1, req);
  v1::JobProgress p;
  ASSERT_TRUE(first->Read(&p));  // the first is admitted (no worker: the job waits)
  auto second = clients_->WatchJob(&ctx2, req);
  EXPECT_FALSE(second->Read(&p));
  const grpc::Status st = second->Finish();
  EXPECT_EQ(st.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(st.error_message(), HasSubstr("the limit is 1 (--max-watches)"));
  const PeerCounters peers = server_->coordinator().Metrics().peers;
  EXPECT_EQ(peers.watches_refused, 1u);
  EXPECT_EQ(peers.client_refusals.at("resource_exhausted"), 1u);
  ctx1.TryCancel();
}

TEST_F(PeerLimitsTest, WorkerThatStopsReadingIsDisconnectedAndItsTaskRequeued) {
  Start(10, 10);
  grpc::ClientContext ctx;
  auto rogue = Attach(&ctx, "rogue");
  ASSERT_TRUE(WaitFor([&] { return server_->coordinator().ListWorkers(false).size() == 1; }));
  ASSERT_OK_AND_ASSIGN(v1::SubmitJobResponse job, server_->coordinator().Submit(testing::Countdown(1)));
  ASSERT_TRUE(WaitFor([&] {
    auto r = server_->coordinator().GetReport(job.job_id(), true);
    return r.ok() && r->tasks(0).state() == v1::TASK_STATE_ASSIGNED;
  }));
  // Heartbeats that each want an ack, never reading one: the acks pile up
  // in the coordinator until the stream's queue is full.
  v1::WorkerMessage hb;
  hb.mutable_heartbeat()->set_seq(1);
  while (server_->coordinator().Metrics().peers.slow_readers == 0) {
    if (!rogue->Write(hb)) break;  // the stream was closed
  }
  ASSERT_TRUE(WaitFor([&] { return server_->coordinator().ListWorkers(false).empty(); }));
  EXPECT_EQ(server_->coordinator().Metrics().peers.slow_readers, 1u);
  ASSERT_OK_AND_ASSIGN(v1::JobReport r, server_->coordinator().GetReport(job.job_id(), true));
  EXPECT_EQ(r.tasks(0).state(), v1::TASK_STATE_QUEUED) << "requeued like a lost worker's";
  ctx.TryCancel();
}

// Attaches a worker and has it refused while the coordinator's write to it
// is stuck: acks to heartbeats nobody reads fill the stream's flow-control
// window, then an invalid message. The stream is ordered: every ack is
// queued before the refusal. Fewer acks than the queue's limit: not cut as
// a slow reader. A refusal drops the acks not yet written, so the window
// must be full before the coordinator reads the invalid message: it is
// 1 KiB (about 20 acks; without bandwidth probes it stays so), and the
// coordinator reads 3,072 messages before that one. With gRPC's 64 KiB
// (about 1,400 acks) the reader overtook the writer in 10 of 40 runs with
// both CPUs busy.
std::unique_ptr<Stream> AttachAndRefuseWithAWriteStuck(const std::string& address, grpc::ClientContext* ctx) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  args.SetInt(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, 1024);
  auto workers = v1::WorkerService::NewStub(
      grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args));
  std::unique_ptr<Stream> s = workers->Attach(ctx);
  v1::WorkerMessage m;
  m.mutable_hello()->set_name("w");
  m.mutable_hello()->set_slots(1);
  EXPECT_TRUE(s->Write(m));
  for (uint64_t i = 0; i < 3 * limits::kMaxQueuedMessagesPerStream / 4; ++i) {
    m.mutable_heartbeat()->set_seq((uint64_t{1} << 62) + i);
    m.mutable_heartbeat()->set_sent_mono_ns(int64_t{1} << 61);
    EXPECT_TRUE(s->Write(m));
  }
  m.mutable_heartbeat()->set_sent_mono_ns(-1);
  EXPECT_TRUE(s->Write(m));
  return s;
}

// A worker refused for an invalid message must learn why, even when the
// coordinator is writing to it at that moment: the stream ends with the
// refusal once the outstanding write is done, not cancelled (the hostile
// peers soak saw CANCELLED once where the coordinator counted a refusal).
TEST_F(PeerLimitsTest, WorkerRefusedWhileAWriteIsOutstandingLearnsWhy) {
  Start(10, 10);
  grpc::ClientContext ctx;
  auto w = AttachAndRefuseWithAWriteStuck(server_->address(), &ctx);
  ASSERT_TRUE(WaitFor([&] { return server_->coordinator().Metrics().peers.workers_refused == 1; }));
  v1::CoordinatorMessage in;
  while (w->Read(&in)) {
  }
  const grpc::Status st = w->Finish();
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << st.error_message();
  EXPECT_THAT(st.error_message(), HasSubstr("heartbeat.sent_mono_ns must be in [0, "));
  EXPECT_EQ(server_->coordinator().Metrics().peers.slow_readers, 0u);
}

// ... and one that never reads again still gives its place back: the stuck
// write is cancelled after limits::kStuckWriteGrace.
TEST_F(PeerLimitsTest, RefusedWorkerThatNeverReadsFreesItsPlace) {
  Start(/*max_sessions=*/1, /*max_watches=*/10);
  grpc::ClientContext ctx;
  auto w = AttachAndRefuseWithAWriteStuck(server_->address(), &ctx);
  ASSERT_TRUE(WaitFor([&] { return server_->coordinator().Metrics().peers.workers_refused == 1; }));
  const absl::Time refused = absl::Now();
  // The only place comes back: a second worker is welcomed.
  bool welcomed = false;
  const absl::Time deadline = refused + limits::kStuckWriteGrace + absl::Seconds(20);
  while (!welcomed && absl::Now() < deadline) {
    grpc::ClientContext ctx2;
    auto second = Attach(&ctx2, "second");
    v1::CoordinatorMessage m;
    welcomed = second->Read(&m) && m.has_welcome();
    if (welcomed) ctx2.TryCancel();
    second->Finish();
    if (!welcomed) absl::SleepFor(absl::Milliseconds(50));  // polling a condition, not a synchronisation
  }
  ASSERT_TRUE(welcomed) << "the refused stream still holds the only session place";
  EXPECT_GE(absl::Now() - refused, limits::kStuckWriteGrace - absl::Milliseconds(100))
      << "its write was stuck: the grace applies";
  EXPECT_EQ(server_->coordinator().Metrics().peers.slow_readers, 0u);
  ctx.TryCancel();
}

// Fails every assignment it gets with an error of `error_bytes` until the
// job ends; a heartbeat after each batch of results (its ack comes back
// once they are handled) tells when to look at the job again.
void FailEverything(Stream* s, Coordinator& coordinator, const std::string& job_id, size_t error_bytes) {
  const std::string error(error_bytes, 'e');
  v1::CoordinatorMessage in;
  while (s->Read(&in)) {
    if (in.has_assign()) {
      // 100 results a message: each stays under the 16 MiB message limit.
      v1::WorkerMessage out;
      for (const v1::Assignment& a : in.assign().assignments()) {
        v1::TaskResult* r = out.mutable_updates()->add_results();
        *r->mutable_task() = a.task();
        r->set_state(v1::TASK_STATE_FAILED);
        r->set_error(error);
        if (out.updates().results_size() == 100) {
          s->Write(out);
          out.Clear();
        }
      }
      if (out.has_updates()) s->Write(out);
      v1::WorkerMessage hb;
      hb.mutable_heartbeat()->set_seq(1);
      s->Write(hb);
    } else if (in.has_heartbeat_ack()) {
      auto report = coordinator.GetReport(job_id, false);
      if (report.ok() && report->state() == v1::JOB_STATE_FAILED) return;
    }
  }
}

TEST_F(PeerLimitsTest, JobWhoseTasksAllFailedWithHugeErrorsCanStillBeRead) {
  Start(10, 10);
  // Each task fails once (max_attempts 2: every row keeps its error) and
  // one fails twice, failing the job. Unbounded, 2,000 rows of 64 KiB made
  // a 128 MiB report: GetJob failed for this job forever.
  constexpr uint32_t kTasks = 2000;
  v1::JobSpec spec = testing::Countdown(kTasks);
  spec.set_max_attempts(2);
  grpc::ClientContext ctx;
  auto rogue = Attach(&ctx, "rogue", limits::kMaxSlotsPerWorker);
  ASSERT_TRUE(WaitFor([&] { return server_->coordinator().ListWorkers(false).size() == 1; }));
  ASSERT_OK_AND_ASSIGN(v1::SubmitJobResponse job, server_->coordinator().Submit(spec));
  FailEverything(rogue.get(), server_->coordinator(), job.job_id(), 64 << 10);

  grpc::ClientContext get_ctx;
  v1::GetJobRequest req;
  req.set_job_id(job.job_id());
  v1::JobReport report;
  const grpc::Status st = clients_->GetJob(&get_ctx, req, &report);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(report.state(), v1::JOB_STATE_FAILED);
  EXPECT_LE(report.ByteSizeLong(), limits::kMaxReplyBytes);
  EXPECT_EQ(report.tasks_size() + report.task_rows_omitted(), kTasks);
  EXPECT_LE(report.error().size(), 4 * limits::kMaxErrorBytes) << report.error().size();
  for (const v1::TaskTiming& t : report.tasks()) {
    ASSERT_LE(t.error().size(), limits::kMaxErrorBytes + 256) << "task " << t.index();
  }
  EXPECT_GE(server_->coordinator().Metrics().peers.strings_truncated, kTasks);
  ctx.TryCancel();
}

// A worker that cancels its stream while the coordinator is reading from it
// must still free its session place: the reactor has to finish the call
// after OnCancel, or gRPC never calls OnDone and the server's Shutdown
// waits for that call forever (a CI run hung 300 s in TearDown).
TEST_F(PeerLimitsTest, StreamsCancelledMidReadAreFinishedAndFreeTheirPlace) {
  Start(/*max_sessions=*/1, /*max_watches=*/10);
  // Heartbeats each want an ack: the coordinator is reading and writing
  // when the cancel lands.
  v1::WorkerMessage hb;
  hb.mutable_heartbeat()->set_seq(1);
  for (int round = 0; round < 60; ++round) {
    // With one place, this attach is admitted only once the last stream's
    // reactor is done: wait for it (a refusal means not yet).
    std::unique_ptr<grpc::ClientContext> ctx;
    std::unique_ptr<Stream> s;
    const absl::Time deadline = absl::Now() + absl::Seconds(10);
    bool welcomed = false;
    while (!welcomed && absl::Now() < deadline) {
      ctx = std::make_unique<grpc::ClientContext>();
      s = Attach(ctx.get(), "w" + std::to_string(round));
      v1::CoordinatorMessage m;
      welcomed = s->Read(&m) && m.has_welcome();
      if (!welcomed) {
        s->Finish();
        absl::SleepFor(absl::Milliseconds(5));  // polling a condition, not a synchronisation
      }
    }
    if (!welcomed) {
      // The place is still held: the server cannot be shut down either.
      // Leak it so the failure is reported instead of a hung TearDown.
      (void)server_.release();
      FAIL() << "round " << round << ": the cancelled stream before it still holds the only session place";
    }
    for (int i = 0; i < 50 + round; ++i) {
      if (!s->Write(hb)) break;
    }
    ctx->TryCancel();
  }
}

}  // namespace
}  // namespace busyfleet::coordinator
