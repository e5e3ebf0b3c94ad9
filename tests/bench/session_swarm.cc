// Issue 7, targets 5 and 6: many worker sessions in one process, speaking
// the real WorkerService.Attach protocol over loopback (hello, then
// heartbeats at the interval the coordinator's welcome asks for; the first
// three 20 ms apart, as worker_client.cc does). The gRPC callback API runs
// every stream on gRPC's own few threads; one timer thread queues the
// heartbeats. A task assigned to a swarm session is answered at once as
// succeeded (0 s), so a stray job cannot hang.
//
// With --pid, measures that process (the coordinator) over the --seconds
// window that starts --settle seconds after every session is welcomed: CPU (utime + stime
// from /proc/PID/stat) as a % of one core, and peak RSS (VmHWM). Prints one
// JSON object on stdout.
//   session_swarm --coordinator 127.0.0.1:7070 --sessions 1000 --seconds 10 --pid PID
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <deque>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <grpcpp/grpcpp.h>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "busyfleet/v1/worker.grpc.pb.h"
#include "common/net.h"
#include "common/rpc/client_security.h"
#include "common/rpc/keepalive.h"

namespace {

namespace v1 = busyfleet::v1;

int64_t MonoNanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

struct Counters {
  std::atomic<int> welcomed{0};
  std::atomic<int> refused{0};
  std::atomic<int> done{0};
  // Signalled whenever welcomed, refused or done grows, so the main thread
  // waits on them with a deadline instead of polling.
  absl::Mutex mu;
  absl::CondVar changed;
  void Bump(std::atomic<int>& counter) {
    absl::MutexLock lock(&mu);
    counter.fetch_add(1);
    changed.SignalAll();
  }
  // Waits until `reached()` or `deadline`; returns reached().
  template <typename Pred>
  bool WaitUntil(Pred reached, absl::Time deadline) {
    absl::MutexLock lock(&mu);
    while (!reached()) {
      if (changed.WaitWithDeadline(&mu, deadline)) return reached();
    }
    return true;
  }
  std::atomic<int64_t> heartbeats_sent{0};
  std::atomic<int64_t> acks{0};
  std::atomic<int64_t> assignments{0};
  std::atomic<int64_t> interval_ns{0};  // from the last welcome or paced ack
  std::atomic<int64_t> interval_updates{0};  // acks that carried an interval
};

// worker_client.cc's OffsetMaxAgeNsLocked() / 2: 15 s, or 9 heartbeats.
constexpr int64_t kAckMaxAgeNs = 15'000'000'000;

int64_t DurationNanos(const google::protobuf::Duration& d) { return d.seconds() * 1'000'000'000 + d.nanos(); }

class Session final : public grpc::ClientBidiReactor<v1::WorkerMessage, v1::CoordinatorMessage> {
 public:
  Session(v1::WorkerService::Stub* stub, const busyfleet::ClientSecurity& security, int id, Counters* counters)
      : id_(id), counters_(counters) {
    security.Apply(ctx_);
    stub->async()->Attach(&ctx_, this);
  }

  void Begin() {
    v1::WorkerMessage m;
    v1::Hello* h = m.mutable_hello();
    h->set_name(absl::StrCat("swarm-", id_));
    h->mutable_host()->set_hostname("swarm");
    h->mutable_host()->set_logical_cpus(1);
    h->mutable_host()->set_physical_cores(1);
    h->mutable_host()->set_affinity_cpus(1);
    h->set_slots(1);
    h->set_default_exec(v1::EXEC_MODE_THREAD);
    h->add_exec_modes(v1::EXEC_MODE_THREAD);
    h->set_version("0.1.0-swarm");
    h->set_instance_id(absl::StrCat("swarm-instance-", getpid(), "-", id_));
    h->set_sent_mono_ns(MonoNanos());
    StartRead(&in_);
    Enqueue(std::move(m));
    StartCall();
  }

  // Called by the timer thread: queues a heartbeat if one is due. Returns
  // false once the stream has ended.
  bool Tick(int64_t now_mono) {
    uint64_t seq = 0;
    int64_t interval = 0;
    int64_t last_ack = 0;
    {
      absl::MutexLock lock(&mu_);
      if (ended_) return false;
      if (!welcomed_ || now_mono < next_heartbeat_) return true;
      seq = ++seq_;
      interval = interval_ns_;
      last_ack = last_ack_;
      next_heartbeat_ = now_mono + (seq_ < 4 ? std::min<int64_t>(interval_ns_, 20'000'000) : interval_ns_);
    }
    v1::WorkerMessage m;
    v1::Heartbeat* hb = m.mutable_heartbeat();
    hb->set_seq(seq);
    hb->set_sent_mono_ns(now_mono);
    hb->set_sent_unix_ns(absl::ToUnixNanos(absl::Now()));
    // As the real worker does: acks while the clock offset settles, then
    // every tenth heartbeat, or when the last ack is 15 s (at a paced
    // interval 9 heartbeats) old: its clock offset estimate is getting old.
    hb->set_no_ack(seq > 4 && seq % 10 != 0 && now_mono - last_ack < std::max(kAckMaxAgeNs, 9 * interval));
    hb->mutable_heartbeat_interval()->set_seconds(interval / 1'000'000'000);
    hb->mutable_heartbeat_interval()->set_nanos(static_cast<int32_t>(interval % 1'000'000'000));
    Enqueue(std::move(m));
    counters_->heartbeats_sent.fetch_add(1, std::memory_order_relaxed);
    return true;
  }

  void Cancel() { ctx_.TryCancel(); }

  void OnReadDone(bool ok) override {
    if (!ok) return;  // the stream ended; OnDone follows
    switch (in_.msg_case()) {
      case v1::CoordinatorMessage::kWelcome: {
        int64_t interval = DurationNanos(in_.welcome().heartbeat_interval());
        if (interval <= 0) interval = 1'000'000'000;
        {
          absl::MutexLock lock(&mu_);
          interval_ns_ = interval;
          welcomed_ = true;
          next_heartbeat_ = MonoNanos();
          last_ack_ = next_heartbeat_;
        }
        counters_->interval_ns.store(interval);
        counters_->Bump(counters_->welcomed);
        break;
      }
      case v1::CoordinatorMessage::kHeartbeatAck:
        counters_->acks.fetch_add(1, std::memory_order_relaxed);
        {
          absl::MutexLock lock(&mu_);
          last_ack_ = MonoNanos();
        }
        // As the real worker does: a paced interval applies from the next
        // heartbeat scheduled on.
        if (in_.heartbeat_ack().has_heartbeat_interval()) {
          const int64_t interval = DurationNanos(in_.heartbeat_ack().heartbeat_interval());
          if (interval > 0) {
            absl::MutexLock lock(&mu_);
            interval_ns_ = interval;
          }
          counters_->interval_ns.store(interval);
          counters_->interval_updates.fetch_add(1, std::memory_order_relaxed);
        }
        break;
      case v1::CoordinatorMessage::kAssign: {
        v1::WorkerMessage m;
        v1::TaskUpdates* u = m.mutable_updates();
        const int64_t now = MonoNanos();
        for (const v1::Assignment& a : in_.assign().assignments()) {
          v1::TaskResult* r = u->add_results();
          *r->mutable_task() = a.task();
          r->set_state(v1::TASK_STATE_SUCCEEDED);
          r->set_start_mono_ns(now);
          r->set_end_mono_ns(now);
          r->set_iterations_done(a.iterations());
          counters_->assignments.fetch_add(1, std::memory_order_relaxed);
        }
        Enqueue(std::move(m));
        break;
      }
      default:
        break;
    }
    StartRead(&in_);
  }

  void OnWriteDone(bool ok) override {
    const v1::WorkerMessage* next = nullptr;
    {
      absl::MutexLock lock(&mu_);
      out_.pop_front();
      if (!ok) out_.clear();
      if (!out_.empty()) {
        next = &out_.front();
      } else {
        writing_ = false;
      }
    }
    if (next != nullptr) StartWrite(next);
  }

  void OnDone(const grpc::Status& status) override {
    {
      absl::MutexLock lock(&mu_);
      ended_ = true;
      status_ = status;
      if (!welcomed_) counters_->Bump(counters_->refused);
    }
    counters_->Bump(counters_->done);
  }

  bool Ended() {
    absl::MutexLock lock(&mu_);
    return ended_;
  }

  std::string StatusText() {
    absl::MutexLock lock(&mu_);
    return absl::StrCat(status_.error_code(), ": ", status_.error_message());
  }

 private:
  // One outstanding write per stream; the rest wait in out_.
  void Enqueue(v1::WorkerMessage m) {
    const v1::WorkerMessage* to_write = nullptr;
    {
      absl::MutexLock lock(&mu_);
      if (ended_) return;
      out_.push_back(std::move(m));
      if (writing_) return;
      writing_ = true;
      to_write = &out_.front();
    }
    StartWrite(to_write);
  }

  const int id_;
  Counters* const counters_;
  grpc::ClientContext ctx_;
  v1::CoordinatorMessage in_;
  absl::Mutex mu_;
  std::deque<v1::WorkerMessage> out_ ABSL_GUARDED_BY(mu_);
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool welcomed_ ABSL_GUARDED_BY(mu_) = false;
  bool ended_ ABSL_GUARDED_BY(mu_) = false;
  int64_t interval_ns_ ABSL_GUARDED_BY(mu_) = 1'000'000'000;
  int64_t next_heartbeat_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t seq_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t last_ack_ ABSL_GUARDED_BY(mu_) = 0;  // monotonic ns of the last ack (or the welcome)
  grpc::Status status_ ABSL_GUARDED_BY(mu_);
};

// utime + stime of `pid` in seconds; negative if unreadable.
double ProcessCpuSeconds(int pid) {
  std::ifstream f(absl::StrCat("/proc/", pid, "/stat"));
  std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  const size_t close = text.rfind(')');
  if (close == std::string::npos) return -1;
  std::istringstream rest(text.substr(close + 2));
  std::string field;
  // Fields after the command: state is field 3; utime 14, stime 15.
  unsigned long long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14) utime = std::stoull(field);
    if (i == 15) stime = std::stoull(field);
  }
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// A "VmHWM:" style field of /proc/PID/status in KiB; -1 if missing.
long StatusKib(int pid, const std::string& key) {
  std::ifstream f(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind(key, 0) == 0) return std::stol(line.substr(key.size()));
  }
  return -1;
}

// Why sessions ended early, by status (on stderr): the figures of a swarm
// that lost sessions are not the fleet's.
void ReportEnded(const std::vector<std::unique_ptr<Session>>& swarm) {
  std::map<std::string, int> why;
  for (const auto& s : swarm) {
    if (s->Ended()) ++why[s->StatusText()];
  }
  for (const auto& [text, n] : why) std::fprintf(stderr, "session_swarm: %d sessions ended: %s\n", n, text.c_str());
}

double SelfCpuSeconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

}  // namespace

int main(int argc, char** argv) {
  // Abseil's lock-order graph grows with every session's mutex: at 10,000
  // sessions it took most of the swarm's CPU and heartbeats went out late.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  CLI::App app{"session_swarm: many worker sessions in one process, heartbeating over the real protocol"};
  std::string coordinator = "127.0.0.1:7070";
  int sessions = 1000;
  int connections = 0;
  double seconds = 10;
  double attach_timeout = 60;
  double settle = 1;
  int pid = 0;
  app.add_option("--coordinator", coordinator, "coordinator address")->capture_default_str();
  app.add_option("--sessions", sessions, "worker sessions")->capture_default_str()->check(CLI::Range(1, 100'000));
  app.add_option("--connections", connections,
                 "TCP connections the sessions share (0: one per session, like real workers)")
      ->capture_default_str()
      ->check(CLI::Range(0, 100'000));
  app.add_option("--seconds", seconds, "measured window once every session is attached")
      ->capture_default_str()
      ->check(CLI::Range(0.1, 3600.0));
  app.add_option("--attach-timeout", attach_timeout, "seconds allowed for every session to be welcomed")
      ->capture_default_str()
      ->check(CLI::Range(1.0, 3600.0));
  app.add_option("--settle", settle,
                 "seconds between the last welcome and the window (the first heartbeats of a session come "
                 "20 ms apart)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 600.0));
  app.add_option("--pid", pid, "process to measure (the coordinator); 0: none")->capture_default_str();
  busyfleet::ClientSecurityFlags security_flags;
  security_flags.AddTo(app);
  CLI11_PARSE(app, argc, argv);
  auto security = security_flags.Load();
  if (!security.ok()) {
    std::fprintf(stderr, "session_swarm: %s\n", std::string(security.status().message()).c_str());
    return 2;
  }
  if (connections == 0 || connections > sessions) connections = sessions;
  // A socket per connection, and a few for gRPC itself.
  const uint64_t open_files = busyfleet::RaiseOpenFileLimit();
  if (open_files < static_cast<uint64_t>(connections) + 64) {
    std::fprintf(stderr,
                 "session_swarm: %d connections need about %d open files; the limit is %llu (raise the hard "
                 "limit: ulimit -Hn, or LimitNOFILE= in systemd), or pass --connections\n",
                 connections, connections + 64, static_cast<unsigned long long>(open_files));
    return 2;
  }

  std::vector<std::shared_ptr<grpc::Channel>> channels;
  std::vector<std::unique_ptr<v1::WorkerService::Stub>> stubs;
  for (int c = 0; c < connections; ++c) {
    grpc::ChannelArguments args;
    // A channel of its own per connection (gRPC would otherwise share one
    // subchannel between channels with the same arguments).
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, static_cast<int>(absl::ToInt64Milliseconds(busyfleet::kKeepaliveTime)));
    args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS,
                static_cast<int>(absl::ToInt64Milliseconds(busyfleet::kKeepaliveTimeout)));
    args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
    args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
    security->Apply(args);
    auto creds = security->credentials ? security->credentials : grpc::InsecureChannelCredentials();
    channels.push_back(grpc::CreateCustomChannel(coordinator, creds, args));
    stubs.push_back(v1::WorkerService::NewStub(channels.back()));
  }

  Counters counters;
  std::vector<std::unique_ptr<Session>> swarm;
  swarm.reserve(static_cast<size_t>(sessions));
  const auto attach_start = std::chrono::steady_clock::now();
  for (int i = 0; i < sessions; ++i) {
    swarm.push_back(std::make_unique<Session>(stubs[static_cast<size_t>(i % connections)].get(), *security, i,
                                              &counters));
    swarm.back()->Begin();
  }

  // The timer thread: every 5 ms, queue the heartbeats that are due.
  absl::Notification stop;
  std::thread timer([&] {
    while (!stop.WaitForNotificationWithTimeout(absl::Milliseconds(5))) {
      const int64_t now = MonoNanos();
      for (auto& s : swarm) s->Tick(now);
    }
  });

  auto finish = [&](int rc) {
    stop.Notify();
    timer.join();
    for (auto& s : swarm) s->Cancel();
    counters.WaitUntil([&] { return counters.done.load() >= sessions; }, absl::Now() + absl::Seconds(30));
    if (counters.done.load() < sessions) {
      // Reactors still referenced by gRPC: leak them rather than crash.
      for (auto& s : swarm) s.release();
    }
    return rc;
  };

  // Wait until every session is welcomed (or refused), with a deadline.
  counters.WaitUntil([&] { return counters.welcomed.load() + counters.refused.load() >= sessions; },
                     absl::Now() + absl::Seconds(attach_timeout));
  const double attach_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - attach_start).count();
  const int welcomed = counters.welcomed.load();
  if (welcomed < sessions) {
    std::string why;
    for (auto& s : swarm) {
      if (counters.refused.load() == 0) break;
      why = s->StatusText();
      if (why.rfind("0:", 0) != 0) break;
    }
    std::fprintf(stderr, "session_swarm: only %d of %d sessions welcomed within %.0f s (%d refused; e.g. %s)\n",
                 welcomed, sessions, attach_timeout, counters.refused.load(), why.c_str());
    return finish(1);
  }
  std::fprintf(stderr, "session_swarm: %d sessions attached over %d connections in %.2f s\n", sessions, connections,
               attach_seconds);

  // The measured window, in the steady state.
  stop.WaitForNotificationWithTimeout(absl::Seconds(settle));  // never notified here: a timed wait
  const double cpu0 = pid > 0 ? ProcessCpuSeconds(pid) : 0;
  const double self0 = SelfCpuSeconds();
  const int64_t acks0 = counters.acks.load();
  const int64_t sent0 = counters.heartbeats_sent.load();
  const auto t0 = std::chrono::steady_clock::now();
  stop.WaitForNotificationWithTimeout(absl::Seconds(seconds));  // never notified here: a timed wait
  const double window = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double cpu1 = pid > 0 ? ProcessCpuSeconds(pid) : 0;
  const double self1 = SelfCpuSeconds();
  const int64_t acks = counters.acks.load() - acks0;
  const int64_t sent = counters.heartbeats_sent.load() - sent0;
  const long hwm = pid > 0 ? StatusKib(pid, "VmHWM:") : -1;
  const long rss = pid > 0 ? StatusKib(pid, "VmRSS:") : -1;
  const int alive = sessions - counters.done.load();
  if (alive < sessions) ReportEnded(swarm);

  std::printf("%s\n",
              absl::StrFormat("{\"sessions\": %d, \"connections\": %d, \"attach_seconds\": %.3f, \"window_seconds\": "
                              "%.3f, \"alive_at_end\": %d, \"heartbeat_interval_ms\": %.1f, \"heartbeats_sent_in_window\": %d, "
                              "\"acks_in_window\": %d, \"acks_per_second\": %.1f, "
                              "\"coordinator_cpu_percent\": %.3f, \"coordinator_vmhwm_kib\": %d, "
                              "\"coordinator_vmrss_kib\": %d, \"swarm_cpu_percent\": %.3f}",
                              sessions, connections, attach_seconds, window, alive,
                              static_cast<double>(counters.interval_ns.load()) / 1e6, sent, acks,
                              static_cast<double>(acks) / window, pid > 0 ? 100.0 * (cpu1 - cpu0) / window : -1.0,
                              hwm, rss, 100.0 * (self1 - self0) / window)
                  .c_str());
  std::fflush(stdout);
  return finish(alive == sessions ? 0 : 1);
}
