#include "coordinator/core/session_table.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "busyfleet/proto_time.h"
#include "coordinator/core/limits.h"

namespace busyfleet::coordinator {
namespace {

bool UsableRate(double rate) { return std::isfinite(rate) && rate > 0 && rate < limits::kMaxCalibratedRate; }

bool UsableCalibration(const v1::KernelCalibration& c) {
  if (!v1::TaskKind_IsValid(c.kind()) || c.kind() == v1::TASK_KIND_UNSPECIFIED) return false;
  if (!UsableRate(c.iterations_per_second()) || c.cpus_size() > limits::kMaxCalibratedCpus) return false;
  return std::all_of(c.cpus().begin(), c.cpus().end(),
                     [](const v1::CpuRate& r) { return UsableRate(r.iterations_per_second()); });
}

// At most kMaxNoiseTextBytes of `text`, bytes outside printable ASCII as
// '?': a process name is any bytes, and a cut UTF-8 sequence would make the
// reply unparsable.
std::string PrintableAscii(const std::string& text) {
  std::string out = text.substr(0, limits::kMaxNoiseTextBytes);
  for (char& c : out) {
    if (c < 0x20 || c > 0x7e) c = '?';
  }
  return out;
}

double FiniteOrZero(double v) { return std::isfinite(v) && v >= 0 ? v : 0; }

v1::HostNoise BoundedNoise(const v1::HostNoise& in) {
  v1::HostNoise n;
  n.set_load1(FiniteOrZero(in.load1()));
  n.set_online_cpus(in.online_cpus());
  n.set_steal_share(std::min(FiniteOrZero(in.steal_share()), 1.0));
  n.set_other_busy_cpus(FiniteOrZero(in.other_busy_cpus()));
  n.set_governor(PrintableAscii(in.governor()));
  n.set_interval_seconds(FiniteOrZero(in.interval_seconds()));
  for (int i = 0; i < std::min(in.busy_size(), limits::kMaxBusyProcesses); ++i) {
    v1::BusyProcess* p = n.add_busy();
    p->set_pid(in.busy(i).pid());
    p->set_name(PrintableAscii(in.busy(i).name()));
    p->set_cpus(FiniteOrZero(in.busy(i).cpus()));
  }
  return n;
}

// The kinds a hello offers: its valid ones, each once; countdown, spin and
// sleep from a worker older than Hello.kinds.
std::vector<v1::TaskKind> KindsOf(const v1::Hello& hello) {
  std::vector<v1::TaskKind> kinds;
  for (const int k : hello.kinds()) {
    const auto kind = static_cast<v1::TaskKind>(k);
    if (v1::TaskKind_IsValid(k) && kind != v1::TASK_KIND_UNSPECIFIED &&
        std::find(kinds.begin(), kinds.end(), kind) == kinds.end()) {
      kinds.push_back(kind);
    }
  }
  if (kinds.empty()) kinds = {v1::TASK_KIND_COUNTDOWN, v1::TASK_KIND_SPIN, v1::TASK_KIND_SLEEP};
  return kinds;
}

}  // namespace

absl::Duration HeartbeatPacing::Next(absl::Duration current, size_t sessions) const {
  if (max_rate <= 0) return base_interval;
  const absl::Duration need = absl::Seconds(static_cast<double>(sessions) / max_rate);
  if (need <= current && need * kShrinkBand >= current) return current;
  return std::max(base_interval, absl::Ceil(need * kHeadroom, absl::Milliseconds(1)));
}

absl::Duration HeartbeatPacing::Timeout(absl::Duration interval) const {
  if (interval <= base_interval) return base_timeout;
  // To the nearest millisecond (5 s / 3 is not a whole number of them).
  const absl::Duration timeout = base_timeout * absl::FDivDuration(interval, base_interval);
  return absl::Floor(timeout + absl::Microseconds(500), absl::Milliseconds(1));
}

Session Session::FromHello(const v1::Hello& hello, std::string id, std::string name, absl::string_view peer,
                           std::shared_ptr<WorkerChannel> channel, absl::Time now, MonoTime mono_now) {
  Session s;
  s.id = std::move(id);
  s.name = std::move(name);
  s.instance_id = hello.instance_id();
  s.host = hello.host();
  s.slots = hello.slots();
  s.labels.insert(hello.labels().begin(), hello.labels().end());
  s.default_exec = hello.default_exec() == v1::EXEC_MODE_PROCESS ? v1::EXEC_MODE_PROCESS
                                                                  : v1::EXEC_MODE_THREAD;
  for (const int m : hello.exec_modes()) {
    if (m == v1::EXEC_MODE_THREAD || m == v1::EXEC_MODE_PROCESS) {
      s.exec_modes.push_back(static_cast<v1::ExecMode>(m));
    }
  }
  if (s.exec_modes.empty()) s.exec_modes.push_back(s.default_exec);
  s.kinds = KindsOf(hello);
  s.python_version = hello.python_version();
  s.accepts_ranges = hello.accepts_ranges();
  s.peer = std::string(peer);
  s.channel = std::move(channel);
  s.attached_at = now;
  s.last_seen = mono_now;
  s.ObserveCalibrations(hello.calibrations());
  return s;
}

absl::Time Session::StartTime(int64_t start_mono_ns, absl::Time assigned_at, absl::Time now) const {
  const absl::Time start = offset_valid ? ToCoordinatorTime(start_mono_ns) : now;
  // Our wall clock may have stepped back since the assignment: then
  // `now` is before `assigned_at` and the assignment is the bound.
  return std::clamp(start, assigned_at, std::max(assigned_at, now));
}

MonoTime Session::StartMono(int64_t start_mono_ns, MonoTime assigned_mono, absl::Time now,
                            MonoTime mono_now) const {
  if (!offset_valid) return mono_now;
  const MonoTime start = mono_now - (now - ToCoordinatorTime(start_mono_ns));
  return std::clamp(start, assigned_mono, mono_now);
}

void Session::RecordTiming(const v1::TaskResult& result, v1::TaskKind kind, absl::Time now, Attempt& a) const {
  RunReading run;
  run.slot = result.slot();
  run.pid = result.pid();
  run.start_cpu = CpuNumber(result.has_start_cpu(), result.start_cpu());
  run.end_cpu = CpuNumber(result.has_end_cpu(), result.end_cpu());
  run.migrated = result.migrated();
  run.bound_cpus = result.bound_cpus();
  run.cpu_ns = result.cpu_ns();
  run.iterations_done = result.iterations_done();
  run.start_mono_ns = result.start_mono_ns();
  run.end_mono_ns = result.end_mono_ns();
  RecordTiming(run, static_cast<float>(CalibratedRate(kind, run.start_cpu)), now, a);
}

void Session::RecordTiming(const RunReading& run, float calibrated_rate, WallNs now, Attempt& a) const {
  a.slot = run.slot;
  a.result_at = now;
  a.pid = run.pid;
  a.start_cpu = run.start_cpu;
  a.end_cpu = run.end_cpu;
  a.migrated = run.migrated;
  a.bound_cpus = run.bound_cpus;
  a.calibrated_rate = calibrated_rate;
  a.cpu_ns = run.cpu_ns;
  a.iterations_done = run.iterations_done;
  // In Unix nanoseconds, not absl::Time: this runs for every result. The
  // readings are validated to [0, kMaxClockNs) and the offset to within
  // +-kMaxClockNs (limits.h), so no sum or difference below overflows.
  const int64_t now_ns = now.unix_ns();
  const int64_t ran = run.end_mono_ns - run.start_mono_ns;
  int64_t started = offset_valid ? run.start_mono_ns + clock_offset_ns : now_ns - ran;
  // The offset estimate is only good to half a round trip; keep what we
  // know for sure: the attempt ran between its assignment and its result.
  // (An attempt without an assignment time, WallNs's INT64_MIN, has only
  // the second bound.)
  const int64_t assigned = a.assigned_at.unix_ns();
  if (started < assigned) started = assigned;
  if (started > now_ns - ran) started = std::max(assigned, now_ns - ran);
  a.started_at = WallNs::FromUnixNanos(started);
  a.ended_at = WallNs::FromUnixNanos(started + ran);
}

double Session::CalibratedRate(v1::TaskKind kind, int cpu) const {
  for (const v1::KernelCalibration& c : calibrations) {
    if (c.kind() != kind) continue;
    for (const v1::CpuRate& r : c.cpus()) {
      if (cpu >= 0 && r.cpu() == static_cast<uint32_t>(cpu)) return r.iterations_per_second();
    }
    return c.iterations_per_second();
  }
  return 0;
}

void Session::ObserveCalibrations(const google::protobuf::RepeatedPtrField<v1::KernelCalibration>& in) {
  for (const v1::KernelCalibration& c : in) {
    if (!UsableCalibration(c)) continue;  // a bad figure is dropped, not trusted
    auto same_kind = [&](const v1::KernelCalibration& mine) { return mine.kind() == c.kind(); };
    auto it = std::find_if(calibrations.begin(), calibrations.end(), same_kind);
    if (it != calibrations.end()) {
      *it = c;
    } else if (calibrations.size() < limits::kMaxCalibratedKinds) {
      calibrations.push_back(c);
    }
  }
}

void Session::ObserveNoise(const v1::HostNoise& in) { noise = BoundedNoise(in); }

void Session::ObserveClocks(const v1::Heartbeat& hb, absl::Time now) {
  if (hb.clock_offset_valid()) {
    offset_valid = true;
    clock_offset_ns = hb.clock_offset_ns();
  }
  if (hb.sent_unix_ns() != 0) {
    // How far the worker's wall clock is behind ours (positive: behind),
    // taking half the round trip as the one-way delay.
    wall_offset_ns = absl::ToUnixNanos(now) - hb.sent_unix_ns() - hb.clock_rtt_ns() / 2;
    wall_offset_valid = true;
  }
}

bool Session::ObserveInterval(const v1::Heartbeat& hb, absl::Duration fleet) {
  if (hb.has_heartbeat_interval()) {
    paced = true;
    heartbeat_interval = std::clamp(ToAbslDuration(hb.heartbeat_interval()), absl::ZeroDuration(), PacedInterval());
  }
  if (!paced || told_interval == fleet) return false;
  told_interval = fleet;
  return true;
}

v1::WorkerInfo Session::Info() const {
  v1::WorkerInfo w;
  w.set_name(name);
  w.set_session_id(id);
  *w.mutable_host() = host;
  w.set_slots(slots);
  w.set_state(state);
  w.set_running(running);
  w.set_assigned(assigned);
  *w.mutable_last_heartbeat() = ToProtoTimestamp(last_heartbeat);
  *w.mutable_attached_at() = ToProtoTimestamp(attached_at);
  w.mutable_labels()->insert(labels.begin(), labels.end());
  w.set_peer(peer);
  if (wall_offset_valid) {
    *w.mutable_clock_offset() = ToProtoDuration(absl::Nanoseconds(wall_offset_ns));
  }
  w.set_tasks_done(tasks_done);
  for (const v1::KernelCalibration& c : calibrations) *w.add_calibrations() = c;
  if (noise) *w.mutable_noise() = *noise;
  for (const v1::TaskKind k : kinds) w.add_kinds(k);
  w.set_python_version(python_version);
  return w;
}

SessionTable::NameChoice SessionTable::ChooseName(absl::string_view name, absl::string_view instance_id,
                                                  std::optional<MonoTime> silent_since) const {
  NameChoice choice;
  choice.name = std::string(name);
  for (int n = 2;; ++n) {
    // Attached names are unique (the index has one session per name).
    const Session* s = FindByName(choice.name);
    if (s == nullptr) return choice;
    if (!instance_id.empty() && s->instance_id == instance_id) {
      choice.stale = s->id;
      return choice;
    }
    if (n == 2 && silent_since && s->last_seen < *silent_since) {
      // A new process of the worker (restarted by its supervisor) while
      // the old one's session has gone silent: it takes the name over.
      choice.stale = s->id;
      choice.takeover = true;
      return choice;
    }
    // Two live workers share the name: this one gets a suffix.
    choice.name = absl::StrCat(name, "-", n);
  }
}

Session* SessionTable::Find(absl::string_view id) {
  auto it = sessions_.find(std::string(id));
  return it == sessions_.end() ? nullptr : &it->second;
}

const Session* SessionTable::FindByName(absl::string_view name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : &sessions_.at(it->second);
}

Session* SessionTable::FindByName(absl::string_view name) {
  return const_cast<Session*>(std::as_const(*this).FindByName(name));
}

Session& SessionTable::Add(Session s) {
  const std::string id = s.id;
  const bool named = by_name_.emplace(s.name, id).second;
  assert(named && "two attached sessions with one name (ChooseName keeps them unique)");
  (void)named;
  while (next_ref_ == 0 || by_ref_.contains(next_ref_)) ++next_ref_;
  s.ref = SessionRef(next_ref_++);
  Session& added = sessions_.emplace(id, std::move(s)).first->second;
  by_ref_[added.ref.number()] = &added;
  return added;
}

const Session* SessionTable::Find(SessionRef ref) const {
  if (ref.empty()) return nullptr;
  auto it = by_ref_.find(ref.number());
  return it == by_ref_.end() ? nullptr : it->second;
}

Session* SessionTable::Find(SessionRef ref) { return const_cast<Session*>(std::as_const(*this).Find(ref)); }

void SessionTable::Retire(absl::string_view id) {
  auto it = sessions_.find(std::string(id));
  if (it == sessions_.end()) return;
  Session& s = it->second;
  by_name_.erase(s.name);
  by_ref_.erase(s.ref.number());
  s.state = v1::WORKER_STATE_GONE;
  s.running = 0;
  s.assigned = 0;
  s.channel.reset();
  gone_.push_back(std::move(s));
  while (gone_.size() > keep_gone_) gone_.pop_front();
  sessions_.erase(it);
}

std::map<std::string, WorkerFacts> SessionTable::Facts() const {
  std::map<std::string, WorkerFacts> facts;
  for (const Session& s : gone_) facts[s.name] = {s.host.hostname(), s.slots};
  for (const auto& [id, s] : sessions_) facts[s.name] = {s.host.hostname(), s.slots};
  return facts;
}

std::vector<v1::WorkerInfo> SessionTable::List(bool include_gone) const {
  std::vector<v1::WorkerInfo> out;
  for (const auto& [id, s] : sessions_) out.push_back(s.Info());
  std::sort(out.begin(), out.end(),
            [](const v1::WorkerInfo& a, const v1::WorkerInfo& b) { return a.name() < b.name(); });
  if (include_gone) {
    for (auto it = gone_.rbegin(); it != gone_.rend(); ++it) out.push_back(it->Info());
  }
  return out;
}

}  // namespace busyfleet::coordinator
