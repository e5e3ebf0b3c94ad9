// The worker against a fake coordinator over real gRPC (issue 17): ranges
// run as runs come back packed only to a coordinator that reads columns,
// one TaskResult a task to one older than the field; a range past the
// limit is ignored.
#include <memory>
#include <set>
#include <string>
#include <utility>

#include <grpcpp/grpcpp.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "busyfleet/packed_results.h"
#include "busyfleet/v1/worker.grpc.pb.h"
#include "worker/executor.h"
#include "worker/worker_client.h"

namespace busyfleet::worker {
namespace {

constexpr uint32_t kTasks = 500;
constexpr absl::Duration kDeadline = absl::Seconds(30);

// Welcomes one worker, hands it a range of tiny tasks (and one range too
// long to take), and records the results that come back.
class FakeCoordinator final : public v1::WorkerService::Service {
 public:
  FakeCoordinator(bool accepts_packed, bool accepts_constants)
      : accepts_packed_(accepts_packed), accepts_constants_(accepts_constants) {}

  grpc::Status Attach(grpc::ServerContext*,
                      grpc::ServerReaderWriter<v1::CoordinatorMessage, v1::WorkerMessage>* stream) override {
    v1::WorkerMessage in;
    if (!stream->Read(&in) || !in.has_hello()) return grpc::Status(grpc::INVALID_ARGUMENT, "no hello");
    {
      absl::MutexLock lock(&mu_);
      accepts_ranges_ = in.hello().accepts_ranges();
    }
    v1::CoordinatorMessage welcome;
    welcome.mutable_welcome()->set_session_id("s-1");
    welcome.mutable_welcome()->set_name(in.hello().name());
    welcome.mutable_welcome()->mutable_heartbeat_interval()->set_seconds(1);
    welcome.mutable_welcome()->set_accepts_packed_results(accepts_packed_);
    welcome.mutable_welcome()->set_accepts_packed_constants(accepts_constants_);
    if (!stream->Write(welcome)) return grpc::Status::OK;
    v1::CoordinatorMessage assign;
    for (const auto& [job, count] : {std::pair<const char*, uint32_t>{"too-long", Executor::kMaxRangeTasks + 1},
                                     {"job", kTasks}}) {
      v1::AssignRange& r = *assign.mutable_assign()->add_ranges();
      r.set_job_id(job);
      r.set_first_index(0);
      r.set_count(count);
      r.set_attempt(1);
      r.set_kind(v1::TASK_KIND_COUNTDOWN);
      r.set_iterations(100);
    }
    if (!stream->Write(assign)) return grpc::Status::OK;
    while (stream->Read(&in)) {  // until the worker goes
      if (!in.has_updates()) continue;
      absl::MutexLock lock(&mu_);
      for (const v1::TaskResult& r : in.updates().results()) Record(r, /*packed=*/false);
      for (const v1::PackedResults& p : in.updates().packed()) {
        EXPECT_TRUE(ValidatePacked(p, 100'000, int64_t{1} << 62).ok());
        if (p.has_attempt_all() || p.has_slot_all() || p.has_iterations_done_all() || p.cpu_is_wall() ||
            p.has_cpu_plus1_all()) {
          ++with_constants_;
        }
        ForEachPackedResult(p, [this](const v1::TaskResult& r) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
          Record(r, /*packed=*/true);
        });
      }
    }
    return grpc::Status::OK;
  }

  bool WaitForResults(size_t n) {
    absl::MutexLock lock(&mu_);
    auto enough = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return indices_.size() >= n; };
    return mu_.AwaitWithDeadline(absl::Condition(&enough), absl::Now() + kDeadline);
  }
  struct Seen {
    bool accepts_ranges = false;
    size_t packed = 0;
    size_t unpacked = 0;
    size_t results = 0;
    size_t with_constants = 0;  // groups
    std::set<uint32_t> indices;
    std::set<std::string> jobs;
  };
  Seen seen() {
    absl::MutexLock lock(&mu_);
    return Seen{accepts_ranges_, packed_, unpacked_, packed_ + unpacked_, with_constants_, indices_, jobs_};
  }

 private:
  void Record(const v1::TaskResult& r, bool packed) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    EXPECT_EQ(r.state(), v1::TASK_STATE_SUCCEEDED);
    EXPECT_EQ(r.iterations_done(), 100u);
    (packed ? packed_ : unpacked_) += 1;
    indices_.insert(r.task().task_index());
    jobs_.insert(r.task().job_id());
  }

  const bool accepts_packed_;
  const bool accepts_constants_;
  absl::Mutex mu_;
  bool accepts_ranges_ ABSL_GUARDED_BY(mu_) = false;
  size_t packed_ ABSL_GUARDED_BY(mu_) = 0;
  size_t unpacked_ ABSL_GUARDED_BY(mu_) = 0;
  size_t with_constants_ ABSL_GUARDED_BY(mu_) = 0;
  std::set<uint32_t> indices_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> jobs_ ABSL_GUARDED_BY(mu_);
};

// What the coordinator reads: TaskResults only; packed groups in full
// columns; packed groups with constant columns too.
enum class Reads { kResults, kColumns, kConstants };
class WorkerWireTest : public ::testing::TestWithParam<Reads> {};

TEST_P(WorkerWireTest, ARangesResultsComeBackInTheFormTheCoordinatorReads) {
  const bool accepts_packed = GetParam() != Reads::kResults;
  const bool accepts_constants = GetParam() == Reads::kConstants;
  FakeCoordinator fake(accepts_packed, accepts_constants);
  int port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&fake);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);
  ASSERT_GT(port, 0);
  WorkerClient::Options o;
  o.coordinator = "127.0.0.1:" + std::to_string(port);
  o.name = "w";
  o.slots = 2;
  auto client = WorkerClient::Start(o);
  ASSERT_TRUE(client.ok()) << client.status();
  ASSERT_TRUE(fake.WaitForResults(kTasks));
  ASSERT_TRUE((*client)->attached());
  const FakeCoordinator::Seen seen = fake.seen();
  EXPECT_TRUE(seen.accepts_ranges);
  EXPECT_EQ(seen.results, kTasks) << "each task once";
  EXPECT_EQ(seen.indices.size(), kTasks);
  EXPECT_EQ(seen.jobs, std::set<std::string>{"job"}) << "the range past the limit is ignored";
  if (accepts_packed) {
    EXPECT_GT(seen.packed, 0u);
    if (accepts_constants) {
      EXPECT_GT(seen.with_constants, 0u) << "a run's attempt, slot and CPU go once";
    } else {
      EXPECT_EQ(seen.with_constants, 0u) << "a coordinator that reads no constants gets full columns";
    }
  } else {
    EXPECT_EQ(seen.packed, 0u) << "an older coordinator gets one TaskResult a task";
  }
  // Everything ran is reported: the ignored range never ran.
  EXPECT_EQ((*client)->tasks_finished(), kTasks);
  (*client)->Stop();
  server->Shutdown(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
}

INSTANTIATE_TEST_SUITE_P(Coordinators, WorkerWireTest,
                         ::testing::Values(Reads::kResults, Reads::kColumns, Reads::kConstants),
                         [](const ::testing::TestParamInfo<Reads>& info) {
                           switch (info.param) {
                             case Reads::kResults: return std::string("OlderThanColumns");
                             case Reads::kColumns: return std::string("ReadsColumns");
                             case Reads::kConstants: return std::string("ReadsConstantColumns");
                           }
                           return std::string("Unknown");
                         });

}  // namespace
}  // namespace busyfleet::worker
