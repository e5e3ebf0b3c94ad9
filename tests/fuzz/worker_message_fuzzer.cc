// libFuzzer target: what an attached worker can send the Coordinator.
//
// Input: a serialized v1::WorkerMessage. Each input gets a fresh Coordinator
// (InMemoryJobStore, FakeClock) with one small speculative job submitted and
// two workers attached: "fuzz-a" (2 slots, holds tasks 0 and 1, attempt 1)
// and "fuzz-b" (3 slots, holds tasks 2 and 3, one slot free for a backup).
// A TaskRef (or a PackedResults group) whose job_id is "job" is rewritten to
// the job's real (random) id so inputs can name the job's tasks.
//
//  - A hello attaches a third worker with it (Hello validation; a hello
//    named "fuzz-a" with instance_id "ia" replaces worker A's session), then
//    is sent again as a message (refused: hello only comes once).
//  - Anything else is sent by worker A (clock offset unknown), then by
//    worker B (which has sent a heartbeat with a valid offset first), then,
//    after a liveness check (speculation may assign backups), by worker A
//    again (duplicates, stale attempts, results of backups).
// Then the read side (report, listings), and both workers detach (their
// tasks are requeued or fail the job). Any crash or sanitizer report, or a
// status the header does not document, aborts.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "busyfleet/v1/coordinator.pb.h"
#include "busyfleet/v1/types.pb.h"
#include "busyfleet/v1/worker.pb.h"
#include "common/clock.h"
#include "coordinator/core/coordinator.h"
#include "coordinator/store/job_store.h"
#include "google/protobuf/stubs/logging.h"

namespace busyfleet::coordinator {
namespace {

constexpr char kJobPlaceholder[] = "job";

// Drops everything: the fuzzer looks at the Coordinator's own behaviour.
class NullChannel final : public WorkerChannel {
 public:
  void Send(v1::CoordinatorMessage) override {}
  void Close(const absl::Status&) override {}
};

[[noreturn]] void Fail(const char* what, const absl::Status& status) {
  std::fprintf(stderr, "worker_message_fuzzer: %s: %s\n", what, status.ToString().c_str());
  std::abort();
}

template <typename T>
T Check(absl::StatusOr<T> v, const char* what) {
  if (!v.ok()) Fail(what, v.status());
  return *std::move(v);
}

// HandleMessage on a known session: OK, or InvalidArgument for a malformed message.
void CheckHandled(const absl::Status& s, const char* what) {
  if (!s.ok() && s.code() != absl::StatusCode::kInvalidArgument) Fail(what, s);
}

void RewriteJobId(v1::TaskRef* ref, const std::string& job_id) {
  if (ref->job_id() == kJobPlaceholder) ref->set_job_id(job_id);
}

v1::Hello MakeHello(const std::string& name, uint32_t slots, const std::string& instance) {
  v1::Hello h;
  h.set_name(name);
  h.set_slots(slots);
  h.set_instance_id(instance);
  h.mutable_host()->set_hostname(name + ".host");
  h.set_default_exec(v1::EXEC_MODE_THREAD);
  h.add_exec_modes(v1::EXEC_MODE_THREAD);
  return h;
}

void Run(v1::WorkerMessage message) {
  FakeClock clock;
  InMemoryJobStore store;
  Coordinator::Options options;
  options.worker_timeout = absl::Seconds(10);
  options.prefetch_per_worker = 0;
  options.clock = &clock;
  options.store = &store;
  std::unique_ptr<Coordinator> coordinator = Check(Coordinator::Create(options), "Create");

  v1::JobSpec spec;
  spec.set_name("fuzz-job");
  spec.set_kind(v1::TASK_KIND_COUNTDOWN);
  spec.set_tasks(4);
  spec.set_iterations(1000);
  spec.set_max_attempts(2);
  spec.set_speculate(true);
  const std::string job_id = Check(coordinator->Submit(spec), "Submit").job_id();

  auto channel = std::make_shared<NullChannel>();
  const std::string a = Check(coordinator->Attach(MakeHello("fuzz-a", 2, "ia"), "fuzz", channel), "Attach a");
  const std::string b = Check(coordinator->Attach(MakeHello("fuzz-b", 3, "ib"), "fuzz", channel), "Attach b");
  clock.Advance(absl::Seconds(1));

  // (mutable_updates() would set the oneof: look first.)
  if (message.has_updates()) {
    for (v1::TaskStarted& s : *message.mutable_updates()->mutable_started()) {
      RewriteJobId(s.mutable_task(), job_id);
    }
    for (v1::TaskResult& r : *message.mutable_updates()->mutable_results()) {
      RewriteJobId(r.mutable_task(), job_id);
    }
    for (v1::PackedResults& p : *message.mutable_updates()->mutable_packed()) {
      if (p.job_id() == kJobPlaceholder) p.set_job_id(job_id);
    }
  }
  if (message.has_drain()) {
    for (v1::TaskRef& ref : *message.mutable_drain()->mutable_returned()) RewriteJobId(&ref, job_id);
  }

  if (message.has_hello()) {
    absl::StatusOr<std::string> c = coordinator->Attach(message.hello(), "fuzz", channel);
    if (c.ok()) {
      const absl::Status s = coordinator->HandleMessage(*c, message);
      if (s.code() != absl::StatusCode::kInvalidArgument) Fail("second hello", s);
      coordinator->Detach(*c, absl::OkStatus());
    } else if (c.status().code() != absl::StatusCode::kInvalidArgument) {
      Fail("Attach", c.status());
    }
  } else {
    v1::WorkerMessage heartbeat;
    v1::Heartbeat* hb = heartbeat.mutable_heartbeat();
    hb->set_seq(1);
    hb->set_sent_mono_ns(clock.MonoNanos());
    // Worker B's monotonic clock is the FakeClock's.
    hb->set_clock_offset_ns(absl::ToUnixNanos(clock.Now()) - clock.MonoNanos());
    hb->set_clock_offset_valid(true);
    hb->set_sent_unix_ns(absl::ToUnixNanos(clock.Now()));
    CheckHandled(coordinator->HandleMessage(b, heartbeat), "heartbeat b");
    clock.Advance(absl::Seconds(1));
    CheckHandled(coordinator->HandleMessage(a, message), "HandleMessage a");
    CheckHandled(coordinator->HandleMessage(b, message), "HandleMessage b");
    clock.Advance(absl::Seconds(2));
    coordinator->CheckLiveness();
    CheckHandled(coordinator->HandleMessage(a, message), "HandleMessage a again");
  }
  clock.Advance(absl::Seconds(1));
  coordinator->CheckLiveness();
  Check(coordinator->GetReport(job_id, /*include_tasks=*/true), "GetReport");
  coordinator->ListWorkers(/*include_gone=*/true);
  Check(coordinator->ListJobs(0), "ListJobs");
  coordinator->Detach(a, absl::UnavailableError("fuzz: worker a gone"));
  coordinator->Detach(b, absl::OkStatus());
  Check(coordinator->GetReport(job_id, /*include_tasks=*/true), "GetReport after detach");
  coordinator->Shutdown();
}

}  // namespace
}  // namespace busyfleet::coordinator

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // Parsing rejects invalid UTF-8 in strings with an ERROR log line; quiet.
  google::protobuf::SetLogHandler(nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  busyfleet::v1::WorkerMessage message;
  if (!message.ParseFromArray(data, static_cast<int>(size))) return 0;
  busyfleet::coordinator::Run(std::move(message));
  return 0;
}
