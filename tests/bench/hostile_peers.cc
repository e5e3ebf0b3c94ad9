// Issue 14, item 7: hostile peers against a running coordinator, for a
// bounded time, on loopback. Driven by hostile_soak.py (which starts the
// coordinator and real workers, runs the real job and reads the metrics).
//
//  - --rogue-workers threads, each opening worker sessions one after the
//    other, each doing one random misbehaviour: results for tasks it was
//    never given (other sessions' tasks, stale attempts), huge strings,
//    floods of heartbeats it never reads the acks of, streams that never
//    read, invalid messages;
//  - --rogue-clients threads sending invalid and oversized requests, and
//    opening and dropping watches;
//  - one well-behaved client submitting a one-task job every 100 ms and
//    timing SubmitJob.
// Every status a rogue sees is counted by code; prints one JSON object.
//   hostile_peers --coordinator 127.0.0.1:7070 --job J-ID --tasks 100 --seconds 60
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "busyfleet/v1/coordinator.grpc.pb.h"
#include "busyfleet/v1/worker.grpc.pb.h"

namespace {

namespace v1 = busyfleet::v1;
using Stream = grpc::ClientReaderWriter<v1::WorkerMessage, v1::CoordinatorMessage>;

struct Config {
  std::string coordinator;
  std::string job;
  uint32_t tasks = 1;
  double seconds = 60;
  int rogue_workers = 8;
  int rogue_clients = 4;
};

// What the rogues saw, by category (what the coordinator should have counted).
class Tally {
 public:
  void Add(const std::string& key, uint64_t n = 1) {
    absl::MutexLock lock(&mu_);
    counts_[key] += n;
  }
  void Latency(double ms) {
    absl::MutexLock lock(&mu_);
    latencies_ms_.push_back(ms);
  }
  std::string Json() {
    absl::MutexLock lock(&mu_);
    std::vector<std::string> parts;
    for (const auto& [k, v] : counts_) parts.push_back(absl::StrCat("\"", k, "\": ", v));
    std::sort(latencies_ms_.begin(), latencies_ms_.end());
    auto pct = [&](double q) {
      return latencies_ms_.empty() ? 0.0 : latencies_ms_[static_cast<size_t>(q * (latencies_ms_.size() - 1))];
    };
    parts.push_back(absl::StrCat("\"submits\": ", latencies_ms_.size()));
    parts.push_back(absl::StrCat("\"submit_p50_ms\": ", pct(0.5)));
    parts.push_back(absl::StrCat("\"submit_p99_ms\": ", pct(0.99)));
    parts.push_back(absl::StrCat("\"submit_max_ms\": ", latencies_ms_.empty() ? 0.0 : latencies_ms_.back()));
    return absl::StrCat("{", absl::StrJoin(parts, ", "), "}");
  }

 private:
  absl::Mutex mu_;
  std::map<std::string, uint64_t> counts_ ABSL_GUARDED_BY(mu_);
  std::vector<double> latencies_ms_ ABSL_GUARDED_BY(mu_);
};

std::string CodeName(grpc::StatusCode code) {
  static const char* const kNames[] = {"ok", "cancelled", "unknown", "invalid_argument", "deadline_exceeded",
                                       "not_found", "already_exists", "permission_denied", "resource_exhausted",
                                       "failed_precondition", "aborted", "out_of_range", "unimplemented",
                                       "internal", "unavailable", "data_loss", "unauthenticated"};
  const int i = static_cast<int>(code);
  return i >= 0 && i < 17 ? kNames[i] : "other";
}

v1::WorkerMessage Hello(const std::string& name, std::mt19937_64& rng, bool huge) {
  v1::WorkerMessage m;
  v1::Hello* h = m.mutable_hello();
  h->set_name(name);
  h->set_slots(1 + static_cast<uint32_t>(rng() % 4));
  h->mutable_host()->set_hostname("rogue-host");
  if (huge) h->mutable_host()->set_cpu_model(std::string(100 << 10, 'c'));
  return m;
}

v1::WorkerMessage Heartbeat(uint64_t seq) {
  v1::WorkerMessage m;
  m.mutable_heartbeat()->set_seq(seq);
  return m;
}

// Results for tasks this session was never given: other sessions' tasks,
// stale or future attempts, indexes past the job, some claiming success.
v1::WorkerMessage ForeignResults(const Config& c, std::mt19937_64& rng, bool huge) {
  v1::WorkerMessage m;
  for (int i = 0; i < 50; ++i) {
    v1::TaskResult* r = m.mutable_updates()->add_results();
    r->mutable_task()->set_job_id(rng() % 8 == 0 ? "j-nosuchjob" : c.job);
    r->mutable_task()->set_task_index(static_cast<uint32_t>(rng() % (c.tasks + 5)));
    r->mutable_task()->set_attempt(static_cast<uint32_t>(rng() % 4));
    r->set_state(rng() % 2 == 0 ? v1::TASK_STATE_SUCCEEDED : v1::TASK_STATE_FAILED);
    r->set_start_mono_ns(1);
    r->set_end_mono_ns(2);
    if (huge) r->set_error(std::string(100 << 10, 'e'));  // 50 x 100 KiB: under the 16 MiB message limit
  }
  return m;
}

// An invalid message, after a valid hello (or instead of it).
v1::WorkerMessage Invalid(std::mt19937_64& rng) {
  v1::WorkerMessage m;
  switch (rng() % 3) {
    case 0:
      m.mutable_heartbeat()->set_sent_mono_ns(-1);
      break;
    case 1:
      m.mutable_updates()->add_results()->mutable_task()->set_job_id(std::string(4096, 'j'));
      break;
    default:
      m.mutable_drain()->add_returned()->set_job_id(std::string(4096, 'j'));
      break;
  }
  return m;
}

// Reads until the stream ends; the status tells who ended it.
grpc::Status Drain(Stream* s) {
  v1::CoordinatorMessage in;
  while (s->Read(&in)) {
  }
  return s->Finish();
}

// Whether the coordinator still lists a worker named `name`.
bool Listed(v1::CoordinatorService::Stub* clients, const std::string& name) {
  grpc::ClientContext ctx;
  v1::ListWorkersRequest req;
  v1::ListWorkersResponse resp;
  if (!clients->ListWorkers(&ctx, req, &resp).ok()) return true;
  return std::any_of(resp.workers().begin(), resp.workers().end(),
                     [&](const v1::WorkerInfo& w) { return w.name() == name; });
}

// Heartbeats wanting acks, never reading one, until the coordinator cuts
// the session: a write fails, or its name leaves the worker list (the sync
// API often learns of a cut late). Gives up at `give_up_at` (well before the
// call's deadline, so a failed write is always the coordinator's doing).
void NeverRead(Stream* s, v1::CoordinatorService::Stub* clients, const std::string& name, absl::Time give_up_at,
               Tally& tally) {
  for (uint64_t seq = 0;; ++seq) {
    if (seq % 1000 == 999) {
      if (!Listed(clients, name)) break;
      if (absl::Now() > give_up_at) {
        tally.Add("worker_never_read_gave_up");
        return;
      }
    }
    if (!s->Write(Heartbeat(seq))) break;
  }
  tally.Add("worker_never_read_cut");
}

// One session with one misbehaviour; records what the coordinator answered.
// Ends at `deadline` at the latest.
void RogueSession(const Config& c, v1::WorkerService::Stub* stub, v1::CoordinatorService::Stub* clients,
                  const std::string& name, absl::Time deadline, std::mt19937_64& rng, Tally& tally) {
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(deadline));
  std::unique_ptr<Stream> s = stub->Attach(&ctx);
  const int kind = static_cast<int>(rng() % 6);
  if (kind == 0) {  // the first message is not a hello, or the hello is invalid
    v1::WorkerMessage bad = rng() % 2 == 0 ? Heartbeat(1) : Hello(std::string(1024, 'n'), rng, false);
    s->Write(bad);
    tally.Add("worker_sent_invalid");
    const grpc::Status st = Drain(s.get());
    tally.Add("worker_status_" + CodeName(st.error_code()));
    return;
  }
  s->Write(Hello(name, rng, kind == 2));
  v1::CoordinatorMessage in;
  if (!s->Read(&in)) {  // refused at attach (the session cap)
    tally.Add("worker_status_" + CodeName(s->Finish().error_code()));
    return;
  }
  if (kind == 2) tally.Add("worker_sent_huge_cpu_model");
  if (kind == 1 || kind == 2) tally.Add("worker_never_read_sessions");
  switch (kind) {
    case 1:  // never reads: heartbeats wanting acks until the coordinator gives up on it
    case 2:
      NeverRead(s.get(), clients, name, deadline - absl::Seconds(10), tally);
      break;
    case 3:  // results for other sessions' tasks, with huge errors half the time
    case 4: {
      for (int round = 0; round < 20; ++round) s->Write(ForeignResults(c, rng, kind == 4));
      tally.Add("worker_foreign_results", 20 * 50);
      if (kind == 4) tally.Add("worker_sent_huge_errors", 20 * 50);
      break;
    }
    default: {  // a valid session that turns invalid
      s->Write(Invalid(rng));
      tally.Add("worker_sent_invalid");
      tally.Add("worker_status_" + CodeName(Drain(s.get()).error_code()));
      return;
    }
  }
  ctx.TryCancel();
  s->Finish();
}

void RogueWorker(const Config& c, int id, absl::Time end, Tally& tally) {
  auto channel = grpc::CreateChannel(c.coordinator, grpc::InsecureChannelCredentials());
  auto stub = v1::WorkerService::NewStub(channel);
  auto clients = v1::CoordinatorService::NewStub(channel);
  std::mt19937_64 rng(static_cast<uint64_t>(id) * 7919 + 1);
  for (int k = 0; absl::Now() < end; ++k) {
    // A stream that never reads runs until the coordinator cuts it (a few
    // seconds) or gives up after 30 s; the deadline is a backstop.
    RogueSession(c, stub.get(), clients.get(), absl::StrCat("rogue-", id, "-", k), absl::Now() + absl::Seconds(40),
                 rng, tally);
    tally.Add("worker_sessions");
  }
}

// One invalid, oversized or dropped call; counts the code it got.
void RogueCall(const Config& c, v1::CoordinatorService::Stub* stub, absl::Time deadline, std::mt19937_64& rng,
               Tally& tally) {
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(deadline));
  grpc::Status st;
  std::string what;
  switch (rng() % 6) {
    case 0: {
      v1::SubmitJobRequest req;
      req.mutable_spec()->set_kind(v1::TASK_KIND_COUNTDOWN);  // no tasks: invalid
      v1::SubmitJobResponse resp;
      st = stub->SubmitJob(&ctx, req, &resp);
      break;
    }
    case 1: {
      v1::SubmitJobRequest req;
      req.mutable_spec()->set_kind(v1::TASK_KIND_COUNTDOWN);
      req.mutable_spec()->set_tasks(1);
      req.mutable_spec()->set_name(std::string(1 << 20, 'n'));  // a 1 MiB name
      v1::SubmitJobResponse resp;
      st = stub->SubmitJob(&ctx, req, &resp);
      break;
    }
    case 2: {
      v1::GetJobRequest req;
      req.set_job_id(rng() % 2 == 0 ? "j-nosuchjob" : std::string(1 << 20, 'j'));
      v1::JobReport resp;
      st = stub->GetJob(&ctx, req, &resp);
      break;
    }
    case 3: {  // over the 16 MiB message limit: refused by gRPC before any handler
      v1::GetJobRequest req;
      req.set_job_id(std::string(17 << 20, 'j'));
      v1::JobReport resp;
      st = stub->GetJob(&ctx, req, &resp);
      tally.Add(absl::StrCat("client_transport_", CodeName(st.error_code())));
      return;
    }
    default: {  // open a watch of the real job and drop it after its first update
      v1::WatchJobRequest req;
      req.set_job_id(c.job);
      req.set_omit_tasks(rng() % 2 == 0);
      auto reader = stub->WatchJob(&ctx, req);
      v1::JobProgress p;
      if (reader->Read(&p)) {
        tally.Add("client_watches_dropped");
        ctx.TryCancel();
        reader->Finish();
        return;
      }
      st = reader->Finish();
      break;
    }
  }
  tally.Add("client_status_" + CodeName(st.error_code()));
}

void RogueClient(const Config& c, int id, absl::Time end, Tally& tally) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(16 << 20);
  auto stub = v1::CoordinatorService::NewStub(
      grpc::CreateCustomChannel(c.coordinator, grpc::InsecureChannelCredentials(), args));
  std::mt19937_64 rng(static_cast<uint64_t>(id) * 104729 + 3);
  while (absl::Now() < end) RogueCall(c, stub.get(), end + absl::Seconds(5), rng, tally);
}

// The well-behaved client: a one-task job every 100 ms, each SubmitJob timed.
void GoodClient(const Config& c, absl::Time end, Tally& tally) {
  auto stub = v1::CoordinatorService::NewStub(grpc::CreateChannel(c.coordinator, grpc::InsecureChannelCredentials()));
  while (absl::Now() < end) {
    grpc::ClientContext ctx;
    v1::SubmitJobRequest req;
    req.mutable_spec()->set_kind(v1::TASK_KIND_COUNTDOWN);
    req.mutable_spec()->set_tasks(1);
    req.mutable_spec()->set_name("good");
    v1::SubmitJobResponse resp;
    const absl::Time t0 = absl::Now();
    const grpc::Status st = stub->SubmitJob(&ctx, req, &resp);
    tally.Latency(absl::ToDoubleMilliseconds(absl::Now() - t0));
    if (!st.ok()) tally.Add("good_client_status_" + CodeName(st.error_code()));
    absl::SleepFor(absl::Milliseconds(100));  // the client's pace, not a synchronisation
  }
}

}  // namespace

int main(int argc, char** argv) {
  Config c;
  CLI::App app{"hostile_peers: rogue workers and clients against a coordinator, for a bounded time"};
  app.add_option("--coordinator", c.coordinator, "host:port")->required();
  app.add_option("--job", c.job, "the real job's id (rogues send results for its tasks)")->required();
  app.add_option("--tasks", c.tasks, "the real job's task count")->capture_default_str();
  app.add_option("--seconds", c.seconds, "how long the rogues run")->capture_default_str()->check(CLI::Range(1.0, 3600.0));
  app.add_option("--rogue-workers", c.rogue_workers, "rogue worker threads")->capture_default_str();
  app.add_option("--rogue-clients", c.rogue_clients, "rogue client threads")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  Tally tally;
  const absl::Time end = absl::Now() + absl::Seconds(c.seconds);
  std::vector<std::thread> threads;
  for (int i = 0; i < c.rogue_workers; ++i) threads.emplace_back([&, i] { RogueWorker(c, i, end, tally); });
  for (int i = 0; i < c.rogue_clients; ++i) threads.emplace_back([&, i] { RogueClient(c, i, end, tally); });
  threads.emplace_back([&] { GoodClient(c, end, tally); });
  for (std::thread& t : threads) t.join();
  std::printf("%s\n", tally.Json().c_str());
  return 0;
}
