// The fixture of the Coordinator's unit tests (coordinator_*_test.cc): the
// domain driven without a network. Workers are FakeChannels that record what
// the coordinator sends, and speak through HandleMessage; time is a FakeClock.
#ifndef BUSYFLEET_TESTS_UNIT_COORDINATOR_FIXTURE_H_
#define BUSYFLEET_TESTS_UNIT_COORDINATOR_FIXTURE_H_

#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/base/thread_annotations.h"
#include "busyfleet/assign_range.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "busyfleet/v1/coordinator.pb.h"
#include "busyfleet/v1/types.pb.h"
#include "busyfleet/v1/worker.pb.h"
#include "common/clock.h"
#include "coordinator/core/coordinator.h"
#include "coordinator/store/job_store.h"
#include "tests/testing/specs.h"
#include "tests/testing/status_matchers.h"

namespace busyfleet::coordinator {

// What the coordinator_*_test.cc files use (a test-only header).
using ::busyfleet::testing::Countdown;
using ::busyfleet::testing::StatusIs;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;

inline constexpr int64_t kSecond = 1'000'000'000;

// A worker's stream as the Coordinator sees it: records everything sent to
// it and every Close.
class FakeChannel final : public WorkerChannel {
 public:
  void Send(v1::CoordinatorMessage message) override {
    absl::MutexLock lock(&mu_);
    messages_.push_back(std::move(message));
  }
  void Close(const absl::Status& status) override {
    absl::MutexLock lock(&mu_);
    closes_.push_back(status);
  }

  std::vector<v1::CoordinatorMessage> messages() const {
    absl::MutexLock lock(&mu_);
    return messages_;
  }
  std::vector<absl::Status> closes() const {
    absl::MutexLock lock(&mu_);
    return closes_;
  }
  int Count(v1::CoordinatorMessage::MsgCase c) const {
    absl::MutexLock lock(&mu_);
    return static_cast<int>(std::count_if(messages_.begin(), messages_.end(),
                                          [c](const auto& m) { return m.msg_case() == c; }));
  }
  // Every assignment received, in order, over all AssignBatch messages.
  std::vector<v1::Assignment> assignments() const {
    absl::MutexLock lock(&mu_);
    std::vector<v1::Assignment> out;
    for (const auto& m : messages_) {
      if (!m.has_assign()) continue;
      for (const auto& a : m.assign().assignments()) out.push_back(a);
      // A range stands for its tasks, in order (AssignRange).
      for (const auto& r : m.assign().ranges()) {
        for (uint32_t i = 0; i < r.count(); ++i) SetRangeTask(r, i, out.emplace_back());
      }
    }
    return out;
  }
  // Assignments received since the previous call.
  std::vector<v1::Assignment> TakeNew() {
    std::vector<v1::Assignment> all = assignments();
    absl::MutexLock lock(&mu_);
    std::vector<v1::Assignment> out(all.begin() + static_cast<std::ptrdiff_t>(taken_), all.end());
    taken_ = all.size();
    return out;
  }
  // Every task named in a CancelTasks message.
  std::vector<v1::TaskRef> cancelled() const {
    absl::MutexLock lock(&mu_);
    std::vector<v1::TaskRef> out;
    for (const auto& m : messages_) {
      if (!m.has_cancel()) continue;
      for (const auto& t : m.cancel().tasks()) out.push_back(t);
    }
    return out;
  }
 private:
  mutable absl::Mutex mu_;
  std::vector<v1::CoordinatorMessage> messages_ ABSL_GUARDED_BY(mu_);
  std::vector<absl::Status> closes_ ABSL_GUARDED_BY(mu_);
  size_t taken_ ABSL_GUARDED_BY(mu_) = 0;
};

struct FakeWorker {
  std::string session;
  std::string name;
  std::shared_ptr<FakeChannel> channel;
};

inline v1::Hello MakeHello(const std::string& name, uint32_t slots, const std::string& instance = "") {
  v1::Hello h;
  h.set_name(name);
  h.set_slots(slots);
  h.set_instance_id(instance);
  h.mutable_host()->set_hostname(name + ".host");
  h.mutable_host()->set_logical_cpus(slots);
  h.mutable_host()->set_physical_cores(slots);
  h.set_default_exec(v1::EXEC_MODE_THREAD);
  h.add_exec_modes(v1::EXEC_MODE_THREAD);
  h.add_exec_modes(v1::EXEC_MODE_PROCESS);
  h.set_sent_mono_ns(777);
  return h;
}

inline v1::TaskResult MakeResult(const v1::Assignment& a, v1::TaskState state, int64_t start_mono,
                          int64_t end_mono, const std::string& error = "", uint32_t slot = 0) {
  v1::TaskResult r;
  *r.mutable_task() = a.task();
  r.set_state(state);
  r.set_error(error);
  r.set_slot(slot);
  r.set_start_mono_ns(start_mono);
  r.set_end_mono_ns(end_mono);
  r.set_cpu_ns(end_mono - start_mono);
  r.set_iterations_done(state == v1::TASK_STATE_SUCCEEDED ? a.iterations() : 0);
  return r;
}

inline std::set<uint32_t> Indices(const std::vector<v1::Assignment>& as) {
  std::set<uint32_t> out;
  for (const auto& a : as) out.insert(a.task().task_index());
  return out;
}

class CoordinatorTest : public ::testing::Test {
 protected:
  // CheckLiveness wakes a tenth of the worker timeout after a deadline, so
  // that many sessions' deadlines are handled in one go.
  static constexpr absl::Duration kLivenessSlack = absl::Milliseconds(500);

  Coordinator::Options Defaults() {
    Coordinator::Options o;
    o.clock = &clock_;
    o.store = &store_;
    o.worker_timeout = absl::Seconds(5);
    o.prefetch_per_worker = 2;
    o.progress_interval = absl::ZeroDuration();  // every change (ProgressIsRateLimited tests the limit)
    return o;
  }

  // (Re)creates the coordinator under test.
  void Start(Coordinator::Options options) {
    coord_.reset();
    auto c = Coordinator::Create(std::move(options));
    ASSERT_TRUE(c.ok()) << c.status();
    coord_ = *std::move(c);
  }
  void SetUp() override { Start(Defaults()); }

  absl::StatusOr<FakeWorker> Attach(const std::string& name, uint32_t slots,
                                    const std::string& instance = "") {
    return AttachHello(MakeHello(name, slots, instance));
  }
  // Attaches with `hello` as is (e.g. listing the attempts it holds).
  absl::StatusOr<FakeWorker> AttachHello(const v1::Hello& hello) {
    FakeWorker w;
    w.channel = std::make_shared<FakeChannel>();
    auto session = coord_->Attach(hello, "ipv4:127.0.0.1:1", w.channel);
    if (!session.ok()) return session.status();
    w.session = *session;
    const auto msgs = w.channel->messages();
    if (msgs.empty() || !msgs.front().has_welcome()) {
      return absl::InternalError("the first message was not a Welcome");
    }
    w.name = msgs.front().welcome().name();
    return w;
  }

  absl::Status Send(const FakeWorker& w, v1::WorkerMessage m) {
    return coord_->HandleMessage(w.session, m);
  }
  absl::Status Result(const FakeWorker& w, const v1::TaskResult& r) {
    v1::WorkerMessage m;
    *m.mutable_updates()->add_results() = r;
    return Send(w, m);
  }
  absl::Status Succeed(const FakeWorker& w, const v1::Assignment& a, int64_t start = kSecond,
                       int64_t end = 2 * kSecond) {
    return Result(w, MakeResult(a, v1::TASK_STATE_SUCCEEDED, start, end));
  }
  absl::Status Fail(const FakeWorker& w, const v1::Assignment& a, const std::string& error) {
    return Result(w, MakeResult(a, v1::TASK_STATE_FAILED, kSecond, 2 * kSecond, error));
  }
  absl::Status Started(const FakeWorker& w, const v1::Assignment& a, uint32_t slot,
                       int64_t start_mono) {
    v1::WorkerMessage m;
    v1::TaskStarted* s = m.mutable_updates()->add_started();
    *s->mutable_task() = a.task();
    s->set_slot(slot);
    s->set_start_mono_ns(start_mono);
    return Send(w, m);
  }
  absl::Status Heartbeat(const FakeWorker& w, uint64_t seq, int64_t sent_mono = 0,
                         bool offset_valid = false, int64_t offset_ns = 0) {
    v1::WorkerMessage m;
    v1::Heartbeat* hb = m.mutable_heartbeat();
    hb->set_seq(seq);
    hb->set_sent_mono_ns(sent_mono);
    hb->set_clock_offset_valid(offset_valid);
    hb->set_clock_offset_ns(offset_ns);
    return Send(w, m);
  }
  absl::Status Return(const FakeWorker& w, const std::vector<v1::Assignment>& as) {
    v1::WorkerMessage m;
    m.mutable_drain();
    for (const auto& a : as) *m.mutable_drain()->add_returned() = a.task();
    return Send(w, m);
  }

  v1::WorkerInfo Info(const std::string& name, bool include_gone = false) {
    for (const auto& w : coord_->ListWorkers(include_gone)) {
      if (w.name() == name) return w;
    }
    ADD_FAILURE() << "no worker named " << name;
    return {};
  }

  FakeClock clock_;
  InMemoryJobStore store_;
  std::unique_ptr<Coordinator> coord_;

  // A speculation scenario: two workers with one slot each and a 3-task
  // speculative job. Tasks 0 and 1 start at once; task 0 finishes after 1 s
  // (the median) and task 2 follows on its slot for 0.2 s, so the slow task
  // has run 1.2 s and its backup is due at 1.5 s. Call with prefetch 0.
  struct Straggler {
    FakeWorker a, b;
    std::string job;
    v1::Assignment first_a, slow, third;
  };
  void RunToStraggler(Straggler& s) {
    ASSERT_OK_AND_ASSIGN(s.a, Attach("a", 1));
    ASSERT_OK_AND_ASSIGN(s.b, Attach("b", 1));
    v1::JobSpec spec = Countdown(3);
    spec.set_speculate(true);
    ASSERT_OK_AND_ASSIGN(auto sub, coord_->Submit(spec));
    s.job = sub.job_id();
    auto on_a = s.a.channel->TakeNew();
    auto on_b = s.b.channel->TakeNew();
    ASSERT_THAT(on_a, ::testing::SizeIs(1));
    ASSERT_THAT(on_b, ::testing::SizeIs(1));
    s.first_a = on_a[0];
    s.slow = on_b[0];
    ASSERT_OK(Started(s.a, s.first_a, 0, kSecond));
    ASSERT_OK(Started(s.b, s.slow, 0, kSecond));
    clock_.Advance(absl::Seconds(1));
    ASSERT_OK(Succeed(s.a, s.first_a, kSecond, 2 * kSecond));  // 1 s: the median
    auto next = s.a.channel->TakeNew();
    ASSERT_THAT(next, ::testing::SizeIs(1));
    s.third = next[0];
    ASSERT_OK(Started(s.a, s.third, 0, 2 * kSecond));
    clock_.Advance(absl::Milliseconds(200));
    ASSERT_OK(Succeed(s.a, s.third, 2 * kSecond, 2 * kSecond + kSecond / 5));
    ASSERT_THAT(s.a.channel->TakeNew(), ::testing::IsEmpty());
  }
};

}  // namespace busyfleet::coordinator

#endif  // BUSYFLEET_TESTS_UNIT_COORDINATOR_FIXTURE_H_
