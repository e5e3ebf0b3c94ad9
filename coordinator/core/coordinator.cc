#include "coordinator/core/coordinator.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <optional>
#include <span>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "busyfleet/packed_results.h"
#include "common/status_macros.h"
#include "coordinator/core/enum_names.h"
#include "coordinator/core/job_splitter.h"
#include "coordinator/core/limits.h"
#include "coordinator/core/worker_messages.h"

namespace busyfleet::coordinator {
namespace {

// The first attached workers whose calibrations a prediction reads: a
// submit does not scan a 10,000-session fleet for a hint.
constexpr int kPredictionSessions = 16;

// What a task of the job should take: a spin or sleep task's duration; a
// countdown's (or a Python loop's) iterations at the fastest calibrated
// rate of the kind among the first attached workers (the shortest
// plausible); -1 when there is none. Only a hint for the scheduler until
// the job's first result (Scheduler::PredictTaskSeconds).
double PredictTaskSeconds(const v1::JobSpec& spec, const JobPlan& plan, const SessionTable& sessions) {
  if (!plan.takes_iterations) return plan.duration > absl::ZeroDuration() ? absl::ToDoubleSeconds(plan.duration) : -1;
  double rate = 0;
  int seen = 0;
  for (const auto& [id, session] : sessions.attached()) {
    if (seen++ == kPredictionSessions) break;
    rate = std::max(rate, session.CalibratedRate(spec.kind(), -1));
  }
  return rate > 0 ? static_cast<double>(plan.Iterations(0)) / rate : -1;
}

// The scheduler's prefetch caps follow what each task in flight costs the
// store (Scheduler::kMaxAdaptivePrefetchRowless).
Scheduler::Options SchedulerOptionsFor(const Coordinator::Options& options) {
  Scheduler::Options o;
  o.prefetch_per_worker = options.prefetch_per_worker;
  if (options.store != nullptr && !options.store->QueuesTaskRows()) {
    o.max_prefetch = Scheduler::kMaxAdaptivePrefetchRowless;
    o.max_link_prefetch = Scheduler::kMaxLinkPrefetchRowless;
  }
  return o;
}

}  // namespace

Coordinator::Coordinator(Options options)
    : options_(options),
      clock_(options.clock != nullptr ? options.clock : Clock::Real()),
      scheduler_(SchedulerOptionsFor(options)),
      sessions_(options.keep_gone_workers),
      pacing_{options.heartbeat_interval, options.worker_timeout, options.max_heartbeat_rate},
      fleet_interval_(options.heartbeat_interval),
      watchers_(ProgressWatchers::Options{options.progress_interval, options.progress_burst,
                                          options.request_check}),
      store_keeps_rows_(options.store->KeepsTaskRows()) {}

absl::StatusOr<std::unique_ptr<Coordinator>> Coordinator::Create(Options options) {
  if (options.store == nullptr) return absl::InvalidArgumentError("a job store is required");
  if (options.worker_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "worker-timeout must be positive, got ", absl::FormatDuration(options.worker_timeout)));
  }
  if (options.heartbeat_interval <= absl::ZeroDuration()) {
    // Three heartbeats per timeout: one may be lost without the worker being
    // declared dead, and a fleet of a thousand idle workers stays cheap.
    options.heartbeat_interval = options.worker_timeout / 3;
  }
  if (options.heartbeat_interval * 2 > options.worker_timeout) {
    return absl::InvalidArgumentError(absl::StrCat(
        "heartbeat interval (", absl::FormatDuration(options.heartbeat_interval),
        ") must be at most half the worker timeout (", absl::FormatDuration(options.worker_timeout),
        "), or healthy workers would be declared dead"));
  }
  if (!(options.max_heartbeat_rate >= 0) || !std::isfinite(options.max_heartbeat_rate)) {
    return absl::InvalidArgumentError(
        absl::StrCat("max-heartbeat-rate must be 0 (no ceiling) or positive, got ", options.max_heartbeat_rate));
  }
  if (options.prefetch_per_worker < 0) {
    return absl::InvalidArgumentError("prefetch must not be negative");
  }
  std::unique_ptr<Coordinator> c(new Coordinator(options));
  BF_RETURN_IF_ERROR(c->Recover());
  return c;
}

std::string Coordinator::NewIdLocked(absl::string_view prefix) {
  for (;;) {
    if (prefix == "j-") {
      // 64 random bits, checked against the jobs in memory only (no store
      // round trip under the lock): among a million stored jobs the chance
      // that a new id was ever used is below 1e-13, over a million more
      // submits below 1e-7.
      std::string id = absl::StrFormat("%s%016x", prefix, absl::Uniform<uint64_t>(rng_));
      if (jobs_.contains(id)) continue;
      return id;
    }
    std::string id = absl::StrFormat("%s%08x", prefix, absl::Uniform<uint32_t>(rng_));
    if (sessions_.Contains(id)) {
      continue;
    }
    return id;
  }
}

JobRecord* Coordinator::FindJobLocked(absl::string_view id) {
  auto it = jobs_.find(std::string(id));
  return it == jobs_.end() ? nullptr : it->second.get();
}

TaskRecord* Coordinator::FindTaskLocked(const v1::TaskRef& ref, JobRecord** job) {
  *job = FindJobLocked(ref.job_id());
  if (*job == nullptr || ref.task_index() >= (*job)->tasks.size()) return nullptr;
  return &(*job)->tasks[ref.task_index()];
}

v1::JobReport Coordinator::FinalReportLocked(const JobRecord& job, bool include_tasks, absl::Time now) {
  return BuildReport(job, sessions_.Facts(), now, ProgressWatchers::FinalReportOptions(include_tasks));
}

void Coordinator::SettleLocked() {
  // While the store's backlog is past its cap no new task starts (results
  // still come in): dispatch resumes when the store has caught up (the
  // server's CheckLiveness, woken by the store's health observer).
  if (!shutting_down_ && !options_.store->Backlogged()) DispatchLocked();
  FlushLocked();
  CheckInvariantsLocked();
}

// --- Client API ---

absl::StatusOr<v1::SubmitJobResponse> Coordinator::Submit(const v1::JobSpec& spec) {
  BF_RETURN_IF_ERROR(ValidateJobSpec(spec));
  int free_slots, total_slots;
  {
    absl::MutexLock lock(&mu_);
    if (shutting_down_) return absl::UnavailableError("coordinator is shutting down");
    free_slots = scheduler_.FreeSlots();
    total_slots = scheduler_.TotalSlots();
  }
  // The job's records are built without the lock: a million tasks take a
  // good part of a second, which heartbeats must not wait for.
  // From the plan, not a vector of split tasks: no second copy of a
  // million tasks at the peak.
  BF_ASSIGN_OR_RETURN(const JobPlan plan, PlanJob(spec, free_slots, total_slots));
  auto job = std::make_unique<JobRecord>();
  job->spec = spec;
  job->state = v1::JOB_STATE_PENDING;
  NewTaskTable(job->tasks, plan.tasks);
  for (uint32_t i = 0; i < plan.tasks; ++i) job->iterations_total += plan.Iterations(i);
  const size_t task_count = plan.tasks;
  absl::MutexLock lock(&mu_);
  if (shutting_down_) return absl::UnavailableError("coordinator is shutting down");
  if (unfinished_tasks_ + task_count > options_.max_unfinished_tasks) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "too many unfinished tasks: ", unfinished_tasks_, " queued or running, this job adds ",
        task_count, ", the limit is ", options_.max_unfinished_tasks, "; try again when jobs finish"));
  }
  job->id = NewIdLocked("j-");
  if (job->spec.name().empty()) job->spec.set_name(job->id);
  job->submitted_at = clock_->Now();
  BF_RETURN_IF_ERROR(options_.store->CreateJob(*job));
  job->seq = job_seq_ + 1;
  BF_RETURN_IF_ERROR(
      scheduler_.AddNewJob(job->id, Scheduler::JobConstraints::Of(spec), plan.tasks, ++job_seq_));
  scheduler_.PredictTaskSeconds(job->id, PredictTaskSeconds(spec, plan, sessions_));
  unfinished_tasks_ += task_count;
  ++jobs_submitted_;
  v1::SubmitJobResponse response;
  response.set_job_id(job->id);
  response.set_tasks(static_cast<uint32_t>(task_count));
  jobs_[job->id] = std::move(job);
  UpdatePendingLocked();
  SettleLocked();
  return response;
}

absl::StatusOr<v1::JobReport> Coordinator::GetReport(absl::string_view job_id, const ReportOptions& options) {
  {
    absl::MutexLock lock(&mu_);
    if (const JobRecord* job = FindJobLocked(job_id)) {
      return BuildReport(*job, sessions_.Facts(), clock_->Now(), options);
    }
  }
  // An evicted job: read (and report) without the lock, so dispatch and
  // heartbeats never wait for the store.
  BF_ASSIGN_OR_RETURN(JobRecord stored, options_.store->LoadJob(job_id));
  return BuildReport(stored, WorkerFactsNow(), clock_->Now(), options);
}

std::map<std::string, WorkerFacts> Coordinator::WorkerFactsNow() const {
  absl::MutexLock lock(&mu_);
  return sessions_.Facts();
}

absl::StatusOr<std::vector<v1::JobSummary>> Coordinator::ListJobs(uint32_t limit) {
  if (limit == 0) limit = limits::kDefaultListJobs;
  if (limit > limits::kMaxListJobs) {
    return absl::InvalidArgumentError(
        absl::StrCat("limit must be between 1 and ", limits::kMaxListJobs, ", got ", limit));
  }
  // The store's headers (committed rows only, read without the lock), then
  // the jobs in memory over them: they are newer, and include jobs whose
  // rows still wait to be written.
  BF_ASSIGN_OR_RETURN(std::vector<JobRecord> stored, options_.store->ListJobHeaders(limit));
  const absl::Time now = clock_->Now();
  // Newest first: by submit time; at equal times (a coarse or fake clock)
  // jobs in memory by their submit order, above stored ones in the store's.
  struct Entry {
    absl::Time submitted;
    uint64_t rank;
    v1::JobSummary summary;
  };
  std::map<std::string, Entry> by_id;
  for (size_t i = 0; i < stored.size(); ++i) {
    by_id[stored[i].id] = Entry{stored[i].submitted_at, stored.size() - i, BuildSummary(stored[i], now)};
  }
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [id, job] : jobs_) {
      by_id[id] = Entry{job->submitted_at, (uint64_t{1} << 32) + job->seq, BuildSummary(*job, now)};
    }
  }
  std::vector<Entry> entries;
  entries.reserve(by_id.size());
  for (auto& [id, e] : by_id) entries.push_back(std::move(e));
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return a.submitted != b.submitted ? a.submitted > b.submitted : a.rank > b.rank;
  });
  std::vector<v1::JobSummary> out;
  out.reserve(std::min<size_t>(entries.size(), limit));
  for (auto& e : entries) {
    if (out.size() == limit) break;
    out.push_back(std::move(e.summary));
  }
  return out;
}

absl::StatusOr<v1::JobState> Coordinator::Cancel(absl::string_view job_id) {
  absl::ReleasableMutexLock lock(&mu_);
  JobRecord* job = FindJobLocked(job_id);
  if (job == nullptr) {
    lock.Release();  // an evicted job: read without the lock
    BF_ASSIGN_OR_RETURN(JobRecord stored, options_.store->LoadJob(job_id));
    return absl::FailedPreconditionError(absl::StrCat(
        "job ", job_id, " has already ended (", JobStateName(stored.state), ")"));
  }
  if (IsTerminal(job->state)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "job ", job_id, " has already ended (", JobStateName(job->state), ")"));
  }
  FinishJobLocked(*job, v1::JOB_STATE_CANCELLED, "cancelled by request");
  SettleLocked();
  return v1::JOB_STATE_CANCELLED;
}

std::vector<v1::WorkerInfo> Coordinator::ListWorkers(bool include_gone) {
  absl::MutexLock lock(&mu_);
  return sessions_.List(include_gone);
}

absl::StatusOr<v1::WorkerState> Coordinator::Drain(absl::string_view worker_name) {
  absl::MutexLock lock(&mu_);
  Session* s = sessions_.FindByName(worker_name);
  if (s == nullptr) {
    return absl::NotFoundError(absl::StrCat("no attached worker is named \"", worker_name, "\""));
  }
  if (s->state != v1::WORKER_STATE_DRAINING) {
    s->state = v1::WORKER_STATE_DRAINING;
    BF_RETURN_IF_ERROR(scheduler_.SetDraining(s->id));
    v1::CoordinatorMessage m;
    m.mutable_drain();
    s->channel->Send(std::move(m));
    UpdatePendingLocked();
    FlushLocked();
  }
  return s->state;
}

absl::StatusOr<uint64_t> Coordinator::Watch(absl::string_view job_id, bool include_tasks,
                                            ProgressCallback callback, absl::Duration first_update_delay) {
  uint64_t handle;
  {
    absl::MutexLock lock(&mu_);
    handle = watchers_.NewHandle();
    const absl::Time now = clock_->Now();
    if (JobRecord* live = FindJobLocked(job_id); live != nullptr && !IsTerminal(live->state)) {
      watchers_.Add(handle, *live, include_tasks, std::move(callback), first_update_delay, now, clock_->Mono());
      return handle;
    }
    // An ended job in memory: its final update alone.
    if (const JobRecord* job = FindJobLocked(job_id)) {
      v1::JobProgress p = BuildProgress(*job, now);
      *p.mutable_report() = FinalReportLocked(*job, include_tasks, now);
      callback(p);
      return handle;
    }
  }
  // Only in the store: read without the lock.
  BF_ASSIGN_OR_RETURN(JobRecord stored, options_.store->LoadJob(job_id));
  const absl::Time now = clock_->Now();
  v1::JobProgress p = BuildProgress(stored, now);
  *p.mutable_report() = BuildReport(stored, WorkerFactsNow(), now, ProgressWatchers::FinalReportOptions(include_tasks));
  callback(p);
  return handle;
}

void Coordinator::Unwatch(uint64_t handle) {
  absl::MutexLock lock(&mu_);
  watchers_.Remove(handle);
}

// --- Worker API ---

absl::StatusOr<std::string> Coordinator::Attach(const v1::Hello& hello, absl::string_view peer,
                                                std::shared_ptr<WorkerChannel> channel) {
  BF_RETURN_IF_ERROR(ValidateHello(hello));
  absl::MutexLock lock(&mu_);
  if (shutting_down_) return absl::UnavailableError("coordinator is shutting down");
  // A reconnecting worker replaces its old session; another worker with the
  // same name gets a suffix.
  const Session* namesake = sessions_.FindByName(hello.name());
  const absl::Duration namesake_interval = namesake != nullptr ? namesake->PacedInterval() : fleet_interval_;
  SessionTable::NameChoice name =
      sessions_.ChooseName(hello.name(), hello.instance_id(), clock_->Mono() - 2 * namesake_interval);
  if (name.takeover) {
    // A new process under the old name: the old one's tasks are lost with it.
    std::shared_ptr<WorkerChannel> old = sessions_.At(name.stale).channel;
    RemoveSessionLocked(name.stale, "its name was taken over by a new instance of the worker");
    if (old) old->Close(absl::UnavailableError("replaced by a new instance of this worker"));
  } else if (!name.stale.empty()) {
    // The same process reconnecting: what it still runs carries on.
    HoldSessionLocked(name.stale);
  }
  Session s = Session::FromHello(hello, NewIdLocked("s-"), std::move(name.name), peer, std::move(channel),
                                 clock_->Now(), clock_->Mono());
  Scheduler::WorkerSpec spec;
  spec.session = s.id;
  spec.name = s.name;
  spec.slots = static_cast<int>(s.slots);
  spec.labels = s.labels;
  spec.exec_modes = s.exec_modes;
  spec.kinds = s.kinds;
  BF_RETURN_IF_ERROR(scheduler_.AddWorker(std::move(spec)));
  fleet_interval_ = pacing_.Next(fleet_interval_, sessions_.attached().size() + 1);
  s.heartbeat_interval = s.told_interval = fleet_interval_;
  s.channel->Send(WelcomeMessage(s.id, s.name, hello, fleet_interval_, pacing_.Timeout(fleet_interval_),
                                 clock_->Now()));
  Session& added = sessions_.Add(std::move(s));
  ClaimHeldLocked(added, hello.held());
  const std::string id = added.id;
  WakeLivenessForLocked(added);
  UpdatePendingLocked();
  SettleLocked();
  return id;
}

absl::Status Coordinator::HandleMessage(absl::string_view session_id,
                                        const v1::WorkerMessage& message) {
  BF_RETURN_IF_ERROR(ValidateWorkerMessage(message));
  absl::MutexLock lock(&mu_);
  Session* session = sessions_.Find(session_id);
  if (session == nullptr) {
    return absl::NotFoundError(absl::StrCat("worker session ", session_id, " not found"));
  }
  session->last_seen = clock_->Mono();
  switch (message.msg_case()) {
    case v1::WorkerMessage::kHeartbeat:
      HandleHeartbeatLocked(*session, message.heartbeat());
      return absl::OkStatus();
    case v1::WorkerMessage::kUpdates: {
      for (const v1::TaskStarted& started : message.updates().started()) HandleStartedLocked(*session, started);
      // The results of one message arrived together: one reading of the
      // clock for them all (a message may carry thousands).
      const absl::Time now = clock_->Now();
      for (const v1::TaskResult& result : message.updates().results()) {
        JobRecord* job = FindJobLocked(result.task().job_id());
        if (job == nullptr || result.task().task_index() >= job->tasks.size()) continue;
        HandleResultLocked(*session, *job, result, now);
      }
      for (const v1::PackedResults& packed : message.updates().packed()) {
        // One lookup for the group; the job may end (not go) within it.
        JobRecord* job = FindJobLocked(packed.job_id());
        if (job == nullptr) continue;
        HandlePackedLocked(*session, *job, packed, now);
      }
      break;
    }
    case v1::WorkerMessage::kDrain:
      HandleReturnedLocked(*session, message.drain());
      break;
    case v1::WorkerMessage::kHello:
      return absl::InvalidArgumentError("hello may only be sent once, as the first message");
    case v1::WorkerMessage::MSG_NOT_SET:
      return absl::InvalidArgumentError("empty worker message");
  }
  SettleLocked();
  return absl::OkStatus();
}

void Coordinator::HandleHeartbeatLocked(Session& session, const v1::Heartbeat& hb) {
  const absl::Time now = clock_->Now();
  session.last_heartbeat = now;
  session.ObserveClocks(hb, now);
  // The worker's smallest-delay round trip (every heartbeat carries it,
  // also those without an ack) sizes its prefetch.
  if (hb.clock_rtt_ns() > 0) (void)scheduler_.SetRoundTrip(session.id, absl::Nanoseconds(hb.clock_rtt_ns()));
  session.ObserveCalibrations(hb.calibrations());
  if (hb.has_noise()) session.ObserveNoise(hb.noise());
  fleet_interval_ = pacing_.Next(fleet_interval_, sessions_.attached().size());
  if (session.ObserveInterval(hb, fleet_interval_)) {
    session.channel->Send(HeartbeatAck(hb, now, fleet_interval_));
    return;
  }
  if (hb.no_ack()) return;
  session.channel->Send(HeartbeatAck(hb, now));
}

void Coordinator::HandleStartedLocked(Session& session, const v1::TaskStarted& started) {
  JobRecord* job = nullptr;
  TaskRecord* t = FindTaskLocked(started.task(), &job);
  if (t == nullptr) return;
  const absl::Time now = clock_->Now();
  const MonoTime mono_now = clock_->Mono();
  if (t->backup() && t->backup()->number == started.task().attempt() && t->backup()->session == session.ref &&
      !t->backup()->running) {
    Attempt& b = *t->backup();
    b.running = true;
    b.slot = started.slot();
    b.started_at = session.StartTime(started.start_mono_ns(), b.assigned_at, now);
    b.mono = session.StartMono(started.start_mono_ns(), b.mono, now, mono_now);
    ++session.running;
    CountDown(session.assigned);
    return;
  }
  if (t->current.number != started.task().attempt() || t->current.session != session.ref ||
      t->state != v1::TASK_STATE_ASSIGNED) {
    return;  // stale: the attempt was requeued, cancelled or already ended
  }
  job->SetTaskState(*t, v1::TASK_STATE_RUNNING);
  t->current.slot = started.slot();
  t->current.started_at = session.StartTime(started.start_mono_ns(), t->current.assigned_at, now);
  t->current.mono = session.StartMono(started.start_mono_ns(), t->current.mono, now, mono_now);
  ++session.running;
  CountDown(session.assigned);
  MarkDirtyLocked(*job, t->index);
}

void Coordinator::LeaveSessionLocked(Session& session, absl::string_view job_id, uint32_t index, bool running,
                                     bool release) {
  CountDown(running ? session.running : session.assigned);
  if (release) (void)scheduler_.Release(session.id, job_id, index);
}

void Coordinator::HandleResultLocked(Session& session, JobRecord& job, const v1::TaskResult& result,
                                     absl::Time now) {
  TaskRecord& t = job.tasks[result.task().task_index()];
  if (t.backup() && t.backup()->number == result.task().attempt() && t.backup()->session == session.ref) {
    HandleBackupResultLocked(session, job, t, result);
    return;
  }
  if (t.current.number != result.task().attempt() || t.current.session != session.ref) {
    if (t.stopped_loser() != 0 && t.stopped_loser() == result.task().attempt()) {
      t.set_stopped_loser(0);  // the stopped speculation loser's echo (counted in backups_cancelled)
      return;
    }
    ++job.duplicates;  // a late result of an attempt that is no longer current
    MarkDirtyLocked(job, t.index);
    return;
  }
  if (t.state == v1::TASK_STATE_RUNNING || t.state == v1::TASK_STATE_ASSIGNED) {
    LeaveSessionLocked(session, job.id, t.index, t.state == v1::TASK_STATE_RUNNING, /*release=*/true);
  }
  session.RecordTiming(result, job.spec.kind(), now, t.current);  // whatever the outcome
  t.set_interference(result.has_interference() ? std::optional(result.interference()) : std::nullopt);
  MarkDirtyLocked(job, t.index);
  t.current.session.clear();  // any later result for this attempt is a duplicate
  if (IsTerminal(t.state)) return;  // the job ended meanwhile (cancelled or failed)
  ++session.tasks_done;

  switch (result.state()) {
    case v1::TASK_STATE_SUCCEEDED:
      if (t.backup() != nullptr) {  // the primary won: stop the copy
        StopLoserLocked(job, t, *t.backup(), t.backup()->running);
        t.DropBackup(v1::TASK_STATE_CANCELLED,
                     absl::StrCat("speculation copy stopped: attempt ", t.current.number, " finished first"),
                     now);
      }
      SucceedTaskLocked(job, t);
      break;
    case v1::TASK_STATE_CANCELLED:
      // Not asked for by us (the job is live): the worker gave it up, e.g.
      // while shutting down. Run it again without counting an attempt.
      EndAttemptLocked(job, t, AttemptEnd::kGaveUp, absl::StrCat("cancelled on worker ", session.name),
                       Queued::kNo);
      break;
    default:
      // A permanent failure fails by itself (a bad spec): running it again cannot help.
      EndAttemptLocked(job, t, result.permanent() ? AttemptEnd::kFailedPermanently : AttemptEnd::kFailed,
                       absl::StrCat("attempt ", t.current.number, " on worker ", session.name, ": ",
                                    result.error().empty() ? "failed" : result.error()),
                       Queued::kNo);
      break;
  }
}

void Coordinator::HandlePackedLocked(Session& session, JobRecord& job, const v1::PackedResults& packed,
                                     absl::Time now) {
  // The scheduler's share of the fast path, told once for the group (and
  // before anything else touches the job's tasks in flight).
  std::vector<uint32_t> released;
  std::vector<double> observed;
  released.reserve(static_cast<size_t>(packed.index_delta_size()));
  auto tell_scheduler = [&] {
    if (!released.empty()) (void)scheduler_.ReleaseMany(session.id, job.id, released);
    if (!observed.empty()) scheduler_.ObserveTaskSeconds(job.id, observed);
    released.clear();
    observed.clear();
  };
  const WallNs now_ns(now);
  RunReading run;
  run.pid = packed.pid();
  // A run's entries share their slot and mostly their CPU: their pin and
  // calibrated rate are looked up when they change.
  uint32_t bound_slot = UINT32_MAX;
  int rate_cpu = INT_MIN;
  float rate = 0;
  v1::TaskResult slow;  // the other cases, as HandleResultLocked takes them
  slow.mutable_task()->set_job_id(packed.job_id());
  slow.set_state(v1::TASK_STATE_SUCCEEDED);
  slow.set_pid(packed.pid());
  ForEachPackedEntry(packed, [&](const PackedEntry& e) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (e.index >= job.tasks.size()) return;
    TaskRecord& t = job.tasks[e.index];
    // HandleResultLocked's path for a successful current attempt on this
    // session, with no speculation copy, that does not end the job.
    const bool in_flight = t.state == v1::TASK_STATE_RUNNING || t.state == v1::TASK_STATE_ASSIGNED;
    if (!in_flight || t.backup() != nullptr || t.current.number != e.attempt || t.current.session != session.ref ||
        job.succeeded + 1 >= job.tasks.size()) {
      tell_scheduler();
      SetPackedResult(packed, e, slow);
      HandleResultLocked(session, job, slow, now);
      return;
    }
    CountDown(t.state == v1::TASK_STATE_RUNNING ? session.running : session.assigned);
    released.push_back(e.index);
    if (e.slot != bound_slot) {
      bound_slot = e.slot;
      run.bound_cpus = BoundCpusOf(packed, e.slot);
    }
    run.slot = e.slot;
    run.start_cpu = CpuNumber(e.start_cpu_plus1 != 0, e.start_cpu_plus1 - 1);
    run.end_cpu = CpuNumber(e.end_cpu_plus1 != 0, e.end_cpu_plus1 - 1);
    run.cpu_ns = e.cpu_ns;
    run.iterations_done = e.iterations_done;
    run.start_mono_ns = e.start_mono_ns;
    run.end_mono_ns = e.end_mono_ns;
    if (run.start_cpu != rate_cpu) {
      rate_cpu = run.start_cpu;
      rate = static_cast<float>(session.CalibratedRate(job.spec.kind(), run.start_cpu));
    }
    session.RecordTiming(run, rate, now_ns, t.current);
    t.set_interference(std::nullopt);
    MarkDirtyLocked(job, t.index);
    t.current.session.clear();  // any later result for this attempt is a duplicate
    ++session.tasks_done;
    SucceedTaskLocked(job, t, &observed);
  });
  tell_scheduler();
}

void Coordinator::EndAttemptLocked(JobRecord& job, TaskRecord& t, AttemptEnd end, std::string why,
                                   Queued queued) {
  t.current.session.clear();
  MarkDirtyLocked(job, t.index);
  std::string job_error;
  const AfterFailedAttempt next =
      EndFailedAttempt(job, t, why, end != AttemptEnd::kGaveUp, end == AttemptEnd::kFailedPermanently,
                       clock_->Now(), counters_, &job_error);
  const TaskKey key{job.id, t.index};
  switch (next) {
    case AfterFailedAttempt::kFailTask:
      FailTaskLocked(job, t, std::move(job_error));
      return;
    case AfterFailedAttempt::kPromoteBackup:
      if (queued == Queued::kByScheduler) scheduler_.Dequeue(key);
      PromoteBackupLocked(job, t);  // the copy already running takes over
      return;
    case AfterFailedAttempt::kQueue:
      job.SetTaskState(t, v1::TASK_STATE_QUEUED);
      if (queued == Queued::kNo) (void)scheduler_.Requeue(key);
      return;
  }
}

void Coordinator::StopAttemptLocked(const JobRecord& job, uint32_t index, const Attempt& attempt, bool running) {
  Session* s = sessions_.Find(attempt.session);
  if (s == nullptr) return;
  s->channel->Send(CancelMessage(job.id, index, attempt.number));
  LeaveSessionLocked(*s, job.id, index, running, /*release=*/true);
}

void Coordinator::StopLoserLocked(JobRecord& job, TaskRecord& t, const Attempt& loser, bool running) {
  StopAttemptLocked(job, t.index, loser, running);
  t.set_stopped_loser(loser.number);
  ++job.backups_cancelled;
}

void Coordinator::SucceedTaskLocked(JobRecord& job, TaskRecord& t, std::vector<double>* observed) {
  ++counters_.succeeded;
  if (t.has_timing()) {
    counters_.task_seconds.Add(t.seconds());
    if (observed != nullptr) {
      observed->push_back(t.seconds());
    } else {
      scheduler_.ObserveTaskSeconds(job.id, t.seconds());
    }
  }
  job.SetTaskState(t, v1::TASK_STATE_SUCCEEDED);
  t.set_error("");
  ++job.succeeded;
  job.iterations_done += t.current.iterations_done;
  --unfinished_tasks_;
  if (job.succeeded == job.tasks.size()) FinishJobLocked(job, v1::JOB_STATE_SUCCEEDED, "");
}

void Coordinator::FailTaskLocked(JobRecord& job, TaskRecord& t, std::string job_error) {
  job.SetTaskState(t, v1::TASK_STATE_FAILED);
  ++job.failed;
  --unfinished_tasks_;
  MarkDirtyLocked(job, t.index);
  FinishJobLocked(job, v1::JOB_STATE_FAILED, std::move(job_error));
}

void Coordinator::HandleReturnedLocked(Session& session, const v1::DrainNotice& notice) {
  if (session.state == v1::WORKER_STATE_READY) {
    session.state = v1::WORKER_STATE_DRAINING;
    (void)scheduler_.SetDraining(session.id);
    UpdatePendingLocked();
  }
  for (const v1::TaskRef& ref : notice.returned()) {
    JobRecord* job = nullptr;
    TaskRecord* t = FindTaskLocked(ref, &job);
    if (t != nullptr && t->backup() && t->backup()->number == ref.attempt() && t->backup()->session == session.ref) {
      DropReturnedBackupLocked(session, *job, *t);
      continue;
    }
    if (t == nullptr || t->current.number != ref.attempt() || t->current.session != session.ref ||
        IsTerminal(t->state)) {
      continue;
    }
    const TaskKey key{job->id, t->index};
    LeaveSessionLocked(session, key.job_id, key.index, t->state == v1::TASK_STATE_RUNNING, /*release=*/true);
    t->ArchiveCurrent(v1::TASK_STATE_CANCELLED, absl::StrCat("handed back by draining worker ", session.name),
                      clock_->Now());
    if (t->backup() != nullptr) {
      // Its backup carries on (queued again, the task could run a third
      // copy, or be dispatched after the backup's success).
      PromoteBackupLocked(*job, *t);
      continue;
    }
    job->SetTaskState(*t, v1::TASK_STATE_QUEUED);
    t->current.session.clear();
    MarkDirtyLocked(*job, t->index);
    (void)scheduler_.Requeue(key);
  }
}

void Coordinator::Detach(absl::string_view session_id, const absl::Status& reason) {
  absl::MutexLock lock(&mu_);
  if (shutting_down_ || !sessions_.Contains(session_id)) return;
  RemoveSessionLocked(std::string(session_id), reason.ok() ? "stream closed" : std::string(reason.message()));
  UpdatePendingLocked();
  SettleLocked();
}

void Coordinator::RemoveSessionLocked(const std::string& session_id, const std::string& why) {
  Session* s = sessions_.Find(session_id);
  if (s == nullptr) return;
  // The scheduler frees the worker's credit and queues its tasks again.
  auto tasks = scheduler_.RemoveWorker(session_id);
  if (tasks.ok()) {
    for (const TaskKey& key : *tasks) {
      JobRecord* job = FindJobLocked(key.job_id);
      if (job == nullptr || key.index >= job->tasks.size()) continue;
      TaskRecord& t = job->tasks[key.index];
      if (t.backup() && t.backup()->session == s->ref) {
        // A lost backup copy: the primary runs on, nothing is counted.
        scheduler_.Dequeue(key);
        t.DropBackup(v1::TASK_STATE_FAILED, absl::StrCat("lost with worker ", s->name, " (", why, ")"),
                     clock_->Now());
        MarkDirtyLocked(*job, t.index);
        continue;
      }
      if (t.current.session != s->ref || IsTerminal(t.state)) continue;
      // A lost attempt counts; a backup takes over if there is one.
      EndAttemptLocked(*job, t, AttemptEnd::kFailed,
                       absl::StrCat("attempt ", t.current.number, " lost with worker ", s->name, " (", why, ")"),
                       Queued::kByScheduler);
    }
  }
  sessions_.Retire(session_id);
}

void Coordinator::FinishJobLocked(JobRecord& job, v1::JobState state, std::string error) {
  if (IsTerminal(job.state)) return;
  const absl::Time now = clock_->Now();
  job.state = state;
  job.error = std::move(error);
  job.finished_at = now;
  job.pending_reason.clear();
  CancelInFlightLocked(job, now);
  // A job ends SUCCEEDED only when its every task has (SucceedTaskLocked):
  // its table, 100 MB for a million tasks, is not read again for nothing.
  for (TaskRecord& t : state == v1::JOB_STATE_SUCCEEDED ? std::span<TaskRecord>() : std::span(job.tasks)) {
    if (IsTerminal(t.state)) continue;
    job.SetTaskState(t, v1::TASK_STATE_CANCELLED);
    ++job.cancelled;
    --unfinished_tasks_;
    MarkDirtyLocked(job, t.index);
  }
  finished_order_.push_back(job.id);
  finished_rows_ += job.total_tasks();
  MarkDirtyLocked(job, UINT32_MAX);
  // Told after the watchers (FlushLocked): the log line is not on the way
  // of the job's report to its client.
  if (options_.on_job_finished) ended_.push_back(job.id);
}

void Coordinator::CancelInFlightLocked(JobRecord& job, absl::Time now) {
  std::map<std::string, v1::CoordinatorMessage> cancels;
  for (const Scheduler::Assignment& a : scheduler_.RemoveJob(job.id)) {  // frees their credit
    const TaskRecord& t = job.tasks[a.task.index];
    Session* s = sessions_.Find(a.session);
    const bool backup = t.backup() && s != nullptr && s->ref == t.backup()->session;
    AddCancel(job.id, t.index, backup ? t.backup()->number : t.current.number, cancels[a.session]);
    if (s != nullptr) {
      const bool running = backup ? t.backup()->running : t.state == v1::TASK_STATE_RUNNING;
      const bool assigned = backup ? !t.backup()->running : t.state == v1::TASK_STATE_ASSIGNED;
      if (running || assigned) CountDown(running ? s->running : s->assigned);
    }
  }
  if (job.backups > 0) {  // else no task of it ever had a copy (not kept across restarts)
    for (TaskRecord& t : job.tasks) {
      if (t.backup() != nullptr) t.DropBackup(v1::TASK_STATE_CANCELLED, "the job ended", now);
    }
  }
  for (auto& [session, message] : cancels) {
    if (Session* s = sessions_.Find(session)) s->channel->Send(std::move(message));
  }
}

void Coordinator::DispatchLocked() {
  const std::vector<Scheduler::Run> runs = scheduler_.DispatchRuns();
  if (runs.empty()) return;
  const absl::Time now = clock_->Now();
  const MonoTime mono_now = clock_->Mono();
  std::map<std::string, v1::CoordinatorMessage> batches;
  // The scheduler hands out runs of one job to one session: look each up
  // (and intern its names) once per run, not once per task.
  JobRecord* job = nullptr;
  Session* s = nullptr;
  v1::AssignBatch* batch = nullptr;
  SessionRef session_ref;
  Name worker_name, host_name;
  for (const Scheduler::Run& run : runs) {
    if (job == nullptr || job->id != run.job_id) job = FindJobLocked(run.job_id);
    if (s == nullptr || s->id != run.session) {
      s = sessions_.Find(run.session);
      batch = s == nullptr ? nullptr : batches[run.session].mutable_assign();
      if (s != nullptr) {
        session_ref = s->ref;
        worker_name = Name(s->name);
        host_name = Name(s->host.hostname());
      }
    }
    if (job == nullptr || s == nullptr) continue;
    if (job->state == v1::JOB_STATE_PENDING) job->state = v1::JOB_STATE_RUNNING;
    // The run's one attempt number, or 0 when they differ (retries among them).
    uint32_t attempt_of_all = 0;
    for (uint32_t index = run.first; index - run.first < run.count; ++index) {
      TaskRecord& t = job->tasks[index];
      if (t.current.started_at != absl::InfinitePast()) {
        // Started before but never archived: an attempt cut short by a coordinator restart.
        t.ArchiveCurrent(v1::TASK_STATE_FAILED, absl::StrCat("attempt ", t.current.number, " did not finish"), now);
      }
      // Attempt numbers never repeat (not even a lost backup's).
      t.current.number = t.NextAttemptNumber();
      const uint32_t number = t.current.number;
      attempt_of_all = index == run.first || attempt_of_all == number ? number : 0;
      job->SetTaskState(t, v1::TASK_STATE_ASSIGNED);
      t.current.session = session_ref;
      t.current.worker = worker_name;
      t.current.host = host_name;
      t.current.assigned_at = now;
      t.current.mono = mono_now;
      MarkDirtyLocked(*job, t.index);
      if (!s->accepts_ranges) *batch->add_assignments() = MakeAssignment(*job, t, t.current.number);
    }
    if (s->accepts_ranges) AddRunToRanges(*job, run.first, run.count, *batch, attempt_of_all);
    s->assigned += run.count;
    counters_.dispatched += run.count;
  }
  for (auto& [session, message] : batches) {
    if (message.assign().assignments_size() == 0 && message.assign().ranges_size() == 0) continue;
    SingleRangesToAssignments(*message.mutable_assign());
    sessions_.At(session).channel->Send(std::move(message));
  }
}

void Coordinator::MarkDirtyLocked(JobRecord& job, uint32_t task_index) {
  if (dirty_job_ != &job) {
    dirty_job_ = &job;
    dirty_rows_ = &dirty_[job.id];
  }
  if (!store_keeps_rows_) return;
  std::vector<uint32_t>& changed = *dirty_rows_;
  if (task_index != UINT32_MAX && (changed.empty() || changed.back() != task_index)) changed.push_back(task_index);
}

void Coordinator::FlushLocked() {
  if (dirty_.empty()) return;
  std::map<std::string, std::vector<uint32_t>> dirty;
  dirty.swap(dirty_);
  std::map<std::string, std::optional<v1::JobReport>> finals;  // ended jobs' reports, when built
  dirty_job_ = nullptr;
  dirty_rows_ = nullptr;
  const absl::Time now = clock_->Now();
  const MonoTime mono_now = clock_->Mono();
  for (auto& [id, changed] : dirty) {
    JobRecord* job = FindJobLocked(id);
    if (job == nullptr) continue;
    // Queued, not written: a store that cannot write keeps the rows in its
    // backlog and retries (its health says so); the only error left is
    // NotFound for a job it never saw, which cannot happen here.
    // Marked mostly in order (runs dealt, runs' results): often sorted already.
    if (!std::is_sorted(changed.begin(), changed.end())) std::sort(changed.begin(), changed.end());
    changed.erase(std::unique(changed.begin(), changed.end()), changed.end());
    (void)options_.store->SaveJob(*job, changed);
    // An ended job's final report, built for its watchers, also serves
    // on_job_finished below.
    std::optional<v1::JobReport>* final_report = nullptr;
    if (IsTerminal(job->state) && std::find(ended_.begin(), ended_.end(), id) != ended_.end()) {
      final_report = &finals[id];
    }
    watchers_.Notify(*job, now, mono_now, [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return sessions_.Facts(); },
                     final_report);
  }
  for (const std::string& id : ended_) {
    const JobRecord* job = FindJobLocked(id);
    if (job == nullptr) continue;
    auto built = finals.find(id);
    if (built != finals.end() && built->second) {
      options_.on_job_finished(*built->second);
    } else {
      options_.on_job_finished(BuildReport(*job, sessions_.Facts(), now, false));
    }
  }
  ended_.clear();
  EvictFinishedLocked();
}

void Coordinator::EvictFinishedLocked() {
  while (finished_order_.size() > options_.keep_finished_jobs ||
         (finished_rows_ > options_.keep_finished_tasks && finished_order_.size() > 1)) {
    auto it = jobs_.find(finished_order_.front());
    if (it != jobs_.end()) {
      finished_rows_ -= std::min<uint64_t>(finished_rows_, it->second->total_tasks());
      options_.store->TakeEvicted(std::move(*it->second));
      if (dirty_job_ == it->second.get()) dirty_job_ = nullptr, dirty_rows_ = nullptr;
      jobs_.erase(it);
    }
    finished_order_.pop_front();
  }
}

MonoTime Coordinator::CheckLiveness() {
  absl::MutexLock lock(&mu_);
  const absl::Time now = clock_->Now();
  const MonoTime mono_now = clock_->Mono();
  std::vector<std::string> dead;
  MonoTime next = MonoTime::InfiniteFuture();
  for (const auto& [id, s] : sessions_.attached()) {
    const absl::Duration timeout = LivenessTimeoutLocked(s);
    const MonoTime due = s.last_seen + timeout;
    if (due <= mono_now) {
      dead.push_back(id);
    } else {
      // A little slack, so that many sessions' deadlines are checked in one
      // wake-up rather than one each (a worker is declared dead within 1.1x
      // the timeout).
      next = std::min(next, due + timeout / 10);
    }
  }
  for (const std::string& id : dead) {
    std::shared_ptr<WorkerChannel> channel = sessions_.At(id).channel;
    const absl::Duration timeout = LivenessTimeoutLocked(sessions_.At(id));
    RemoveSessionLocked(id, absl::StrCat("no heartbeat for ", absl::FormatDuration(timeout)));
    if (channel) {
      channel->Close(absl::UnavailableError("declared dead: no heartbeat within the worker timeout"));
    }
  }
  next = std::min(next, ExpireHeldLocked(mono_now));
  next = std::min(next, SpeculateLocked(now, mono_now));
  next = std::min(next, UpdatePendingLocked());
  SettleLocked();
  next = std::min(next, watchers_.SendDue(now, mono_now, [this](const std::string& id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return static_cast<const JobRecord*>(FindJobLocked(id));
  }));
  liveness_due_ = next;
  return next;
}

void Coordinator::WakeLivenessForLocked(const Session& session) {
  // Only when the loop would otherwise sleep past this session's deadline
  // (no worker attached): a wake per attach made 10,000 attaches scan the
  // sessions 10,000 times under the lock.
  const MonoTime due = session.last_seen + LivenessTimeoutLocked(session);
  if (due >= liveness_due_) return;
  liveness_due_ = due;
  if (options_.on_worker_attached) options_.on_worker_attached();
}

MetricsSnapshot Coordinator::Metrics() const {
  absl::MutexLock lock(&mu_);
  MetricsSnapshot m;
  for (const auto& [id, s] : sessions_.attached()) {
    ++m.workers[s.state];
    m.slots += s.slots;
    m.running += s.running;
  }
  m.workers[v1::WORKER_STATE_GONE] = static_cast<uint32_t>(sessions_.gone_count());
  m.queue_depth = scheduler_.QueuedTasks();
  for (const auto& [id, job] : jobs_) ++m.jobs[job->state];
  m.jobs_submitted = jobs_submitted_;
  m.counters = counters_;
  m.store = options_.store->Health();  // memory only: no I/O under the lock
  m.peers = peer_tally_.Snapshot();
  return m;
}

void Coordinator::Shutdown() {
  absl::MutexLock lock(&mu_);
  if (shutting_down_) return;
  shutting_down_ = true;
  // The sessions stay as they are: their tasks are saved as assigned or
  // running on their workers, which keep them and claim them back.
  v1::CoordinatorMessage bye;
  bye.mutable_going_away()->set_reason("coordinator is shutting down; it will be back");
  for (auto& [id, s] : sessions_.attached()) {
    if (!s.channel) continue;
    s.channel->Send(bye);
    s.channel->Close(absl::UnavailableError("coordinator is shutting down"));
  }
  FlushLocked();
}

}  // namespace busyfleet::coordinator
