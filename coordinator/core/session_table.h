#ifndef BUSYFLEET_COORDINATOR_CORE_SESSION_TABLE_H_
#define BUSYFLEET_COORDINATOR_CORE_SESSION_TABLE_H_

#include <algorithm>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "busyfleet/v1/coordinator.pb.h"
#include "busyfleet/v1/worker.pb.h"
#include "common/clock.h"
#include "coordinator/core/job_model.h"
#include "coordinator/core/timing_aggregator.h"

namespace busyfleet::coordinator {

// The coordinator's side of one attached worker's stream. Implemented by the
// gRPC adapter (and by fakes in tests).
class WorkerChannel {
 public:
  virtual ~WorkerChannel() = default;
  // Queues `message` for the worker. Must not block and must not call back
  // into the Coordinator (it is called with the Coordinator's lock held).
  virtual void Send(v1::CoordinatorMessage message) = 0;
  // Ends the stream with `status` (worker declared dead, shutdown). Same
  // rules as Send.
  virtual void Close(const absl::Status& status) = 0;
};

// Heartbeats a second the coordinator lets a fleet send by default
// (--max-heartbeat-rate): about 5% of a core here, at ~50 us a heartbeat.
inline constexpr double kDefaultMaxHeartbeatRate = 1000;

// How often workers heartbeat, and when silence means a worker is dead
// (issue 17; Nomad's max_heartbeats_per_second). A fleet of up to
// max_rate x base_interval workers heartbeats every base_interval and a
// worker silent for base_timeout is declared dead. A larger fleet is asked
// for heartbeats less often, so that together they stay under max_rate a
// second, and the timeout grows in proportion: a lost worker is declared
// dead within 1.1 x Timeout(the fleet's interval).
struct HeartbeatPacing {
  absl::Duration base_interval = absl::Seconds(5) / 3;
  absl::Duration base_timeout = absl::Seconds(5);
  // Heartbeats a second over all sessions; 0: no ceiling (base_interval).
  double max_rate = kDefaultMaxHeartbeatRate;

  // The fleet's interval once `sessions` are attached, from `current`. It
  // grows to kHeadroom x sessions / max_rate (whole milliseconds) as soon
  // as sessions / max_rate passes `current`, and shrinks to the same (at
  // least base_interval) only once `current` is kShrinkBand times that: a
  // fleet hovering about a size does not re-tell every worker its interval.
  absl::Duration Next(absl::Duration current, size_t sessions) const;
  // The silence after which a worker heartbeating every `interval` is
  // declared dead: base_timeout x interval / base_interval, at least
  // base_timeout.
  absl::Duration Timeout(absl::Duration interval) const;

  static constexpr double kHeadroom = 1.125;
  static constexpr double kShrinkBand = 1.5;
};

// What a result says about its run, as plain values (Attempt's fields).
struct RunReading {
  uint32_t slot = 0;
  uint32_t pid = 0;
  int16_t start_cpu = -1;  // CpuNumber
  int16_t end_cpu = -1;
  bool migrated = false;
  Name bound_cpus;
  int64_t cpu_ns = 0;
  uint64_t iterations_done = 0;
  // On the worker's monotonic clock.
  int64_t start_mono_ns = 0;
  int64_t end_mono_ns = 0;
};

// One attached worker (or, once in the gone ring, one that left).
struct Session {
  std::string id;
  // What an attempt's `session` holds (SessionTable::Add sets it): compared
  // with for every message, as one integer.
  SessionRef ref;
  std::string name;
  std::string instance_id;
  v1::HostInfo host;
  uint32_t slots = 0;
  std::map<std::string, std::string> labels;
  v1::ExecMode default_exec = v1::EXEC_MODE_THREAD;
  std::vector<v1::ExecMode> exec_modes;
  // Hello.kinds (valid ones, no repeats); countdown, spin, sleep for a
  // worker that sent none.
  std::vector<v1::TaskKind> kinds;
  std::string python_version;
  // The worker takes AssignRange (Hello.accepts_ranges).
  bool accepts_ranges = false;
  std::string peer;
  std::shared_ptr<WorkerChannel> channel;
  v1::WorkerState state = v1::WORKER_STATE_READY;
  absl::Time attached_at;
  // When it last said anything, on the monotonic clock: liveness.
  MonoTime last_seen;
  absl::Time last_heartbeat = absl::InfinitePast();
  bool offset_valid = false;
  int64_t clock_offset_ns = 0;
  bool wall_offset_valid = false;
  int64_t wall_offset_ns = 0;
  // Attempts in flight here (the Coordinator keeps these; see the
  // invariants in coordinator.h): ASSIGNED (sent, not started) and RUNNING,
  // primaries and backups alike.
  uint32_t running = 0;
  uint32_t assigned = 0;
  uint64_t tasks_done = 0;
  // Its latest calibration of each kernel (Hello, then heartbeats), and its
  // host's latest background load.
  std::vector<v1::KernelCalibration> calibrations;
  std::optional<v1::HostNoise> noise;
  // Heartbeat pacing: the interval its worker heartbeats at (as its
  // heartbeats report it; a worker older than Heartbeat.heartbeat_interval
  // keeps its welcome's and is never told another: paced false), and the
  // one it was last told (welcome or ack). Until it reports the interval
  // it was told, it may still use the other: liveness allows the longer.
  absl::Duration heartbeat_interval;
  absl::Duration told_interval;
  bool paced = false;

  // A session for a worker that said `hello` (validated), attached at `now`
  // (`mono_now` on the monotonic clock).
  static Session FromHello(const v1::Hello& hello, std::string id, std::string name, absl::string_view peer,
                           std::shared_ptr<WorkerChannel> channel, absl::Time now, MonoTime mono_now);
  // A time on the worker's monotonic clock, on ours (needs offset_valid).
  absl::Time ToCoordinatorTime(int64_t mono_ns) const { return absl::FromUnixNanos(mono_ns + clock_offset_ns); }
  // When an attempt assigned at `assigned_at` started, from the worker's
  // report (`now` without a clock offset), kept between its assignment and `now`.
  absl::Time StartTime(int64_t start_mono_ns, absl::Time assigned_at, absl::Time now) const;
  // The same start on our monotonic clock, kept between `assigned_mono` and
  // `mono_now` (read with `now`): the offset puts it on our wall clock, and
  // its distance from `now` is how long ago that was. A stale offset (our
  // wall clock stepped since) is caught by the bounds.
  MonoTime StartMono(int64_t start_mono_ns, MonoTime assigned_mono, absl::Time now, MonoTime mono_now) const;
  // Puts a result's worker times on our clock, kept between the attempt's
  // assignment and `now` (when its result arrived); takes its figures.
  void RecordTiming(const v1::TaskResult& result, v1::TaskKind kind, absl::Time now, Attempt& a) const;
  // The same from plain values (a packed result): `calibrated_rate` is
  // CalibratedRate(kind, the start CPU), which the caller may keep for a run.
  void RecordTiming(const RunReading& run, float calibrated_rate, WallNs now, Attempt& a) const;
  // Its calibrated per-core rate for `kind`: CPU `cpu`'s when calibrated,
  // else the median over its CPUs; 0 when it has no calibration of `kind`.
  double CalibratedRate(v1::TaskKind kind, int cpu) const;
  // Takes the calibrations and host load a heartbeat (or hello) carries,
  // bounded (Bounded* below): a later calibration of a kind replaces the
  // earlier one.
  void ObserveCalibrations(const google::protobuf::RepeatedPtrField<v1::KernelCalibration>& in);
  void ObserveNoise(const v1::HostNoise& in);
  // Takes the clock offsets a heartbeat carries; `now` is when it arrived.
  void ObserveClocks(const v1::Heartbeat& hb, absl::Time now);
  // Takes the interval a heartbeat reports (at most the longest it may use)
  // and returns true when the worker should be told `fleet` (it follows
  // pacing and was last told another), which then counts as told.
  bool ObserveInterval(const v1::Heartbeat& hb, absl::Duration fleet);
  // The longest interval its worker may be heartbeating at.
  absl::Duration PacedInterval() const { return std::max(heartbeat_interval, told_interval); }
  v1::WorkerInfo Info() const;
};

// The attached workers by session id, and a ring of the last ones that left.
// Plain data, no lock: the Coordinator calls it with its own lock held.
class SessionTable {
 public:
  // `first_ref`: the first SessionRef number given (tests: the wrap past
  // 2^32 - 1, where 0 is skipped).
  explicit SessionTable(size_t keep_gone, uint32_t first_ref = 1) : keep_gone_(keep_gone), next_ref_(first_ref) {}

  // The name a worker saying hello as `name` gets: its own, unless an
  // attached, live worker of another instance has it; then `name-2`,
  // `name-3`... A worker reconnecting with the same non-empty instance_id
  // keeps its name; its old session is returned in `stale` (to be removed).
  // A session of another instance that has been silent since before
  // `silent_since` (it missed heartbeats: its process is likely gone, and a
  // supervisor started a new one) is `stale` too, with `takeover` set.
  struct NameChoice {
    std::string name;
    std::string stale;  // empty: none
    bool takeover = false;
  };
  NameChoice ChooseName(absl::string_view name, absl::string_view instance_id,
                        std::optional<MonoTime> silent_since = std::nullopt) const;

  bool Contains(absl::string_view id) const { return sessions_.contains(std::string(id)); }
  Session* Find(absl::string_view id);
  Session& At(absl::string_view id) { return sessions_.at(std::string(id)); }
  // The attached worker named `name`; nullptr if none. O(log sessions).
  Session* FindByName(absl::string_view name);
  const Session* FindByName(absl::string_view name) const;
  // The attached session an attempt's `ref` names; nullptr if none.
  Session* Find(SessionRef ref);
  const Session* Find(SessionRef ref) const;
  // Adds `s`, giving it a `ref` no attached session holds.
  Session& Add(Session s);
  // Moves the session into the gone ring (state GONE, no channel, nothing
  // in flight), dropping the oldest beyond the limit.
  void Retire(absl::string_view id);

  std::map<std::string, Session>& attached() { return sessions_; }
  const std::map<std::string, Session>& attached() const { return sessions_; }
  size_t gone_count() const { return gone_.size(); }

  // Host and slots by worker name, the gone ones included (for reports).
  std::map<std::string, WorkerFacts> Facts() const;
  // Attached workers by name, then (with include_gone) the gone ones,
  // newest first.
  std::vector<v1::WorkerInfo> List(bool include_gone) const;

 private:
  const size_t keep_gone_;
  std::map<std::string, Session> sessions_;
  // Attached session ids by name: one each (ChooseName keeps names
  // unique), so that choosing a name is not a scan of 10,000 sessions.
  std::map<std::string, std::string, std::less<>> by_name_;
  // Attached sessions by ref (std::map nodes do not move), and the next
  // ref to try (refs are reused only after 2^32 attaches, never while held).
  absl::flat_hash_map<uint32_t, Session*> by_ref_;
  uint32_t next_ref_;
  std::deque<Session> gone_;
};

}  // namespace busyfleet::coordinator

#endif  // BUSYFLEET_COORDINATOR_CORE_SESSION_TABLE_H_
