#include "coordinator/core/coordinator.h"

#include <algorithm>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "coordinator/core/job_splitter.h"
#include "coordinator/core/limits.h"
#include "google/protobuf/util/time_util.h"

namespace busyfleet::coordinator {
namespace {

using google::protobuf::util::TimeUtil;

v1::Assignment MakeAssignment(const JobRecord& job, const TaskRecord& task, uint32_t attempt) {
  v1::Assignment a;
  a.mutable_task()->set_job_id(job.id);
  a.mutable_task()->set_task_index(task.index);
  a.mutable_task()->set_attempt(attempt);
  a.set_kind(job.spec.kind());
  a.set_iterations(task.iterations);
  if (job.spec.kind() != v1::TASK_KIND_COUNTDOWN) {
    *a.mutable_duration() = TimeUtil::NanosecondsToDuration(absl::ToInt64Nanoseconds(task.duration));
  }
  a.set_exec(job.spec.exec());
  if (job.spec.has_task_timeout()) *a.mutable_timeout() = job.spec.task_timeout();
  return a;
}

absl::Status ClockField(absl::string_view field, int64_t ns, int64_t lo, int64_t hi) {
  if (ns >= lo && ns < hi) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(field, " must be in [", lo, ", ", hi, "), got ", ns));
}

// Worker clock values feed timing arithmetic: bound them so it cannot overflow.
absl::Status ValidateWorkerClocks(const v1::WorkerMessage& m) {
  constexpr int64_t kMax = limits::kMaxClockNs;
  if (m.has_heartbeat()) {
    const v1::Heartbeat& hb = m.heartbeat();
    BF_RETURN_IF_ERROR(ClockField("heartbeat.sent_mono_ns", hb.sent_mono_ns(), 0, kMax));
    BF_RETURN_IF_ERROR(ClockField("heartbeat.sent_unix_ns", hb.sent_unix_ns(), 0, kMax));
    BF_RETURN_IF_ERROR(ClockField("heartbeat.clock_offset_ns", hb.clock_offset_ns(), -kMax, kMax));
    BF_RETURN_IF_ERROR(ClockField("heartbeat.clock_rtt_ns", hb.clock_rtt_ns(), 0, limits::kMaxRttNs));
  }
  for (const v1::TaskStarted& s : m.updates().started()) {
    BF_RETURN_IF_ERROR(ClockField("started.start_mono_ns", s.start_mono_ns(), 0, kMax));
  }
  for (const v1::TaskResult& r : m.updates().results()) {
    BF_RETURN_IF_ERROR(ClockField("results.start_mono_ns", r.start_mono_ns(), 0, kMax));
    BF_RETURN_IF_ERROR(ClockField("results.end_mono_ns", r.end_mono_ns(), r.start_mono_ns(), kMax));
    BF_RETURN_IF_ERROR(ClockField("results.cpu_ns", r.cpu_ns(), 0, kMax));
  }
  return absl::OkStatus();
}

Scheduler::JobConstraints ConstraintsOf(const v1::JobSpec& spec) {
  Scheduler::JobConstraints c;
  c.max_slots = spec.max_slots();
  c.workers.assign(spec.workers().begin(), spec.workers().end());
  c.selector.insert(spec.selector().begin(), spec.selector().end());
  c.exec = spec.exec();
  return c;
}

// "JOB_STATE_CANCELLED" -> "CANCELLED", as users see states.
std::string StateName(v1::JobState state) {
  std::string name = v1::JobState_Name(state);
  return name.substr(name.rfind('_') + 1);
}

// The job's error when a task has used up its attempts.
std::string AttemptsExhausted(const JobRecord& job, const TaskRecord& t) {
  return absl::StrCat("task ", t.index, " failed ", t.failures.size(), " of ", job.max_attempts(),
                      " attempts: ", absl::StrJoin(t.failures, "; "));
}

}  // namespace

Coordinator::Coordinator(Options options)
    : options_(options),
      clock_(options.clock != nullptr ? options.clock : Clock::Real()),
      scheduler_(Scheduler::Options{options.prefetch_per_worker}) {}

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
  if (options.prefetch_per_worker < 0) {
    return absl::InvalidArgumentError("prefetch must not be negative");
  }
  std::unique_ptr<Coordinator> c(new Coordinator(options));
  BF_RETURN_IF_ERROR(c->Recover());
  return c;
}

absl::Status Coordinator::Recover() {
  BF_ASSIGN_OR_RETURN(std::vector<JobRecord> unfinished, options_.store->LoadUnfinished());
  absl::MutexLock lock(&mu_);
  for (JobRecord& job : unfinished) {
    std::vector<uint32_t> queued;
    for (TaskRecord& t : job.tasks) {
      if (IsTerminal(t.state)) continue;
      // Whatever was assigned or running before the restart runs again.
      t.state = v1::TASK_STATE_QUEUED;
      t.session.clear();
      queued.push_back(t.index);
      ++unfinished_tasks_;
    }
    job.running = 0;
    BF_RETURN_IF_ERROR(scheduler_.AddJob(job.id, ConstraintsOf(job.spec), queued, ++job_seq_));
    const std::string id = job.id;
    jobs_[id] = std::make_unique<JobRecord>(std::move(job));
  }
  return absl::OkStatus();
}

std::string Coordinator::NewIdLocked(absl::string_view prefix) {
  for (;;) {
    std::string id = absl::StrFormat("%s%08x", prefix, absl::Uniform<uint32_t>(rng_));
    if (prefix == "j-") {
      // 32 random bits: a clash is rare, so the store is asked only when
      // the id is not among the jobs in memory.
      if (jobs_.contains(id)) continue;
      auto stored = options_.store->HasJob(id);
      if (stored.ok() && *stored) continue;
    } else if (sessions_.contains(id)) {
      continue;
    }
    return id;
  }
}

JobRecord* Coordinator::FindJobLocked(absl::string_view id) {
  auto it = jobs_.find(std::string(id));
  return it == jobs_.end() ? nullptr : it->second.get();
}

// --- Client API ---

absl::StatusOr<v1::SubmitJobResponse> Coordinator::Submit(const v1::JobSpec& spec) {
  BF_RETURN_IF_ERROR(ValidateJobSpec(spec));
  absl::MutexLock lock(&mu_);
  if (shutting_down_) return absl::UnavailableError("coordinator is shutting down");
  BF_ASSIGN_OR_RETURN(std::vector<TaskSpec> tasks,
                      SplitJob(spec, scheduler_.FreeSlots(), scheduler_.TotalSlots()));
  if (unfinished_tasks_ + tasks.size() > options_.max_unfinished_tasks) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "too many unfinished tasks: ", unfinished_tasks_, " queued or running, this job adds ",
        tasks.size(), ", the limit is ", options_.max_unfinished_tasks, "; try again when jobs finish"));
  }
  auto job = std::make_unique<JobRecord>();
  job->id = NewIdLocked("j-");
  job->spec = spec;
  if (job->spec.name().empty()) job->spec.set_name(job->id);
  job->state = v1::JOB_STATE_PENDING;
  job->submitted_at = clock_->Now();
  job->tasks.resize(tasks.size());
  std::vector<uint32_t> queued(tasks.size());
  for (size_t i = 0; i < tasks.size(); ++i) {
    TaskRecord& t = job->tasks[i];
    t.index = tasks[i].index;
    t.iterations = tasks[i].iterations;
    t.duration = tasks[i].duration;
    job->iterations_total += t.iterations;
    queued[i] = t.index;
  }
  BF_RETURN_IF_ERROR(options_.store->CreateJob(*job));
  BF_RETURN_IF_ERROR(scheduler_.AddJob(job->id, ConstraintsOf(spec), queued, ++job_seq_));
  unfinished_tasks_ += tasks.size();
  ++jobs_submitted_;
  v1::SubmitJobResponse response;
  response.set_job_id(job->id);
  response.set_tasks(static_cast<uint32_t>(tasks.size()));
  jobs_[job->id] = std::move(job);
  DispatchLocked();
  FlushLocked();
  return response;
}

std::map<std::string, WorkerFacts> Coordinator::WorkerFactsLocked() const {
  std::map<std::string, WorkerFacts> facts;
  for (const Session& s : gone_) facts[s.name] = {s.host.hostname(), s.slots};
  for (const auto& [id, s] : sessions_) facts[s.name] = {s.host.hostname(), s.slots};
  return facts;
}

absl::StatusOr<v1::JobReport> Coordinator::GetReport(absl::string_view job_id, const ReportOptions& options) {
  absl::MutexLock lock(&mu_);
  if (const JobRecord* job = FindJobLocked(job_id)) {
    return BuildReport(*job, WorkerFactsLocked(), clock_->Now(), options);
  }
  BF_ASSIGN_OR_RETURN(JobRecord stored, options_.store->LoadJob(job_id));
  return BuildReport(stored, WorkerFactsLocked(), clock_->Now(), options);
}

absl::StatusOr<std::vector<v1::JobSummary>> Coordinator::ListJobs(uint32_t limit) {
  if (limit == 0) limit = limits::kDefaultListJobs;
  if (limit > limits::kMaxListJobs) {
    return absl::InvalidArgumentError(
        absl::StrCat("limit must be between 1 and ", limits::kMaxListJobs, ", got ", limit));
  }
  absl::MutexLock lock(&mu_);
  BF_ASSIGN_OR_RETURN(std::vector<std::string> ids, options_.store->ListJobIds(limit));
  std::vector<v1::JobSummary> out;
  const absl::Time now = clock_->Now();
  for (const std::string& id : ids) {
    JobRecord loaded;
    const JobRecord* job = FindJobLocked(id);
    if (job == nullptr) {
      auto stored = options_.store->LoadJob(id);
      if (!stored.ok()) continue;
      loaded = *std::move(stored);
      job = &loaded;
    }
    v1::JobSummary s;
    s.set_id(job->id);
    s.set_name(job->spec.name());
    s.set_state(job->state);
    s.set_kind(job->spec.kind());
    s.set_tasks(static_cast<uint32_t>(job->tasks.size()));
    s.set_tasks_done(job->done());
    ToProtoTime(job->submitted_at, s.mutable_submitted_at());
    const absl::Time end = job->finished_at != absl::InfinitePast() ? job->finished_at : now;
    s.set_wall_seconds(std::max(0.0, absl::ToDoubleSeconds(end - job->submitted_at)));
    out.push_back(std::move(s));
  }
  return out;
}

absl::StatusOr<v1::JobState> Coordinator::Cancel(absl::string_view job_id) {
  absl::MutexLock lock(&mu_);
  JobRecord* job = FindJobLocked(job_id);
  if (job == nullptr) {
    BF_ASSIGN_OR_RETURN(JobRecord stored, options_.store->LoadJob(job_id));
    return absl::FailedPreconditionError(absl::StrCat(
        "job ", job_id, " has already ended (", StateName(stored.state), ")"));
  }
  if (IsTerminal(job->state)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "job ", job_id, " has already ended (", StateName(job->state), ")"));
  }
  FinishJobLocked(*job, v1::JOB_STATE_CANCELLED, "cancelled by request");
  DispatchLocked();
  FlushLocked();
  return v1::JOB_STATE_CANCELLED;
}

v1::WorkerInfo Coordinator::WorkerInfoLocked(const Session& s) const {
  v1::WorkerInfo w;
  w.set_name(s.name);
  w.set_session_id(s.id);
  *w.mutable_host() = s.host;
  w.set_slots(s.slots);
  w.set_state(s.state);
  w.set_running(s.running);
  w.set_assigned(s.assigned);
  ToProtoTime(s.last_heartbeat, w.mutable_last_heartbeat());
  ToProtoTime(s.attached_at, w.mutable_attached_at());
  w.mutable_labels()->insert(s.labels.begin(), s.labels.end());
  w.set_peer(s.peer);
  if (s.wall_offset_valid) {
    *w.mutable_clock_offset() = TimeUtil::NanosecondsToDuration(s.wall_offset_ns);
  }
  w.set_tasks_done(s.tasks_done);
  return w;
}

std::vector<v1::WorkerInfo> Coordinator::ListWorkers(bool include_gone) {
  absl::MutexLock lock(&mu_);
  std::vector<v1::WorkerInfo> out;
  for (const auto& [id, s] : sessions_) out.push_back(WorkerInfoLocked(s));
  std::sort(out.begin(), out.end(),
            [](const v1::WorkerInfo& a, const v1::WorkerInfo& b) { return a.name() < b.name(); });
  if (include_gone) {
    for (auto it = gone_.rbegin(); it != gone_.rend(); ++it) out.push_back(WorkerInfoLocked(*it));
  }
  return out;
}

absl::StatusOr<v1::WorkerState> Coordinator::Drain(absl::string_view worker_name) {
  absl::MutexLock lock(&mu_);
  for (auto& [id, s] : sessions_) {
    if (s.name != worker_name) continue;
    if (s.state != v1::WORKER_STATE_DRAINING) {
      s.state = v1::WORKER_STATE_DRAINING;
      BF_RETURN_IF_ERROR(scheduler_.SetDraining(id));
      v1::CoordinatorMessage m;
      m.mutable_drain();
      s.channel->Send(std::move(m));
    }
    return s.state;
  }
  return absl::NotFoundError(absl::StrCat("no attached worker is named \"", worker_name, "\""));
}

absl::StatusOr<uint64_t> Coordinator::Watch(absl::string_view job_id, bool include_tasks,
                                            ProgressCallback callback, absl::Duration first_update_delay) {
  absl::MutexLock lock(&mu_);
  const uint64_t handle = next_watch_++;
  ReportOptions report_options;
  report_options.tasks = include_tasks;
  report_options.task_limit = limits::kMaxTaskRowsPerReply;
  report_options.summarize_large = true;
  const absl::Time now = clock_->Now();
  JobRecord* job = FindJobLocked(job_id);
  if (job == nullptr) {
    BF_ASSIGN_OR_RETURN(JobRecord stored, options_.store->LoadJob(job_id));
    v1::JobProgress p = BuildProgress(stored, now);
    *p.mutable_report() = BuildReport(stored, WorkerFactsLocked(), now, report_options);
    callback(p);
    return handle;
  }
  if (IsTerminal(job->state)) {
    v1::JobProgress p = BuildProgress(*job, now);
    *p.mutable_report() = BuildReport(*job, WorkerFactsLocked(), now, report_options);
    callback(p);
    return handle;
  }
  Watcher& w = watchers_[handle];
  w.job_id = job->id;
  w.include_tasks = include_tasks;
  w.refilled = now;
  if (first_update_delay > absl::ZeroDuration()) {
    w.tokens = options_.progress_burst;
    w.due = now + first_update_delay;
    HoldBackLocked(w);
  } else {
    callback(BuildProgress(*job, now));
    w.tokens = std::max(0.0, options_.progress_burst - 1);  // the update just sent counts
  }
  w.callback = std::move(callback);
  return handle;
}

void Coordinator::Unwatch(uint64_t handle) {
  absl::MutexLock lock(&mu_);
  watchers_.erase(handle);
}

// --- Worker API ---

absl::StatusOr<std::string> Coordinator::Attach(const v1::Hello& hello, absl::string_view peer,
                                                std::shared_ptr<WorkerChannel> channel) {
  BF_RETURN_IF_ERROR(ValidateName("hello.name", hello.name(), /*allow_empty=*/false));
  if (hello.slots() < 1 || hello.slots() > limits::kMaxSlotsPerWorker) {
    return absl::InvalidArgumentError(absl::StrCat("hello.slots must be between 1 and ",
                                                   limits::kMaxSlotsPerWorker, ", got ", hello.slots()));
  }
  if (hello.labels_size() > static_cast<int>(limits::kMaxLabels)) {
    return absl::InvalidArgumentError(absl::StrCat("hello.labels must have at most ", limits::kMaxLabels,
                                                   " entries, got ", hello.labels_size()));
  }
  for (const auto& [k, v] : hello.labels()) {
    BF_RETURN_IF_ERROR(ValidateName("label key", k, false));
    BF_RETURN_IF_ERROR(ValidateName("label value", v, true));
  }
  BF_RETURN_IF_ERROR(ValidateName("hello.host.hostname", hello.host().hostname(), true));
  if (hello.instance_id().size() > limits::kMaxNameBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("hello.instance_id must be at most ", limits::kMaxNameBytes, " bytes"));
  }
  absl::MutexLock lock(&mu_);
  if (shutting_down_) return absl::UnavailableError("coordinator is shutting down");

  // A reconnecting worker replaces its old session; another worker with the
  // same name gets a suffix.
  std::string name = hello.name();
  std::string stale;
  for (int n = 2;; ++n) {
    bool taken = false;
    for (const auto& [id, s] : sessions_) {
      if (s.name != name) continue;
      if (!hello.instance_id().empty() && s.instance_id == hello.instance_id()) {
        stale = id;
      } else {
        taken = true;
      }
    }
    if (!taken) break;
    name = absl::StrCat(hello.name(), "-", n);
  }
  if (!stale.empty()) RemoveSessionLocked(stale, "replaced by a new session of the same worker");

  Session s;
  s.id = NewIdLocked("s-");
  s.name = name;
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
  s.peer = std::string(peer);
  s.channel = std::move(channel);
  s.attached_at = clock_->Now();
  s.last_seen = s.attached_at;

  Scheduler::WorkerSpec spec;
  spec.session = s.id;
  spec.name = s.name;
  spec.slots = static_cast<int>(s.slots);
  spec.labels = s.labels;
  spec.exec_modes = s.exec_modes;
  BF_RETURN_IF_ERROR(scheduler_.AddWorker(std::move(spec)));

  v1::CoordinatorMessage welcome;
  v1::Welcome* w = welcome.mutable_welcome();
  w->set_session_id(s.id);
  w->set_name(s.name);
  *w->mutable_heartbeat_interval() =
      TimeUtil::NanosecondsToDuration(absl::ToInt64Nanoseconds(options_.heartbeat_interval));
  *w->mutable_worker_timeout() =
      TimeUtil::NanosecondsToDuration(absl::ToInt64Nanoseconds(options_.worker_timeout));
  w->set_coordinator_unix_ns(absl::ToUnixNanos(clock_->Now()));
  w->set_echo_sent_mono_ns(hello.sent_mono_ns());
  s.channel->Send(std::move(welcome));
  const std::string id = s.id;
  sessions_.emplace(id, std::move(s));
  if (options_.on_worker_attached) options_.on_worker_attached();
  DispatchLocked();
  FlushLocked();
  return id;
}

absl::Time Coordinator::WorkerToCoordinatorTime(const Session& session, int64_t mono_ns) const {
  return absl::FromUnixNanos(mono_ns + session.clock_offset_ns);
}

absl::Status Coordinator::HandleMessage(absl::string_view session_id,
                                        const v1::WorkerMessage& message) {
  const int updates = message.updates().started_size() + message.updates().results_size();
  if (updates > limits::kMaxUpdatesPerMessage || message.drain().returned_size() > limits::kMaxUpdatesPerMessage) {
    return absl::InvalidArgumentError(absl::StrCat("a worker message may carry at most ",
                                                   limits::kMaxUpdatesPerMessage, " task entries, got ",
                                                   std::max(updates, message.drain().returned_size())));
  }
  BF_RETURN_IF_ERROR(ValidateWorkerClocks(message));
  absl::MutexLock lock(&mu_);
  auto it = sessions_.find(std::string(session_id));
  if (it == sessions_.end()) {
    return absl::NotFoundError(absl::StrCat("worker session ", session_id, " not found"));
  }
  Session& session = it->second;
  session.last_seen = clock_->Now();
  switch (message.msg_case()) {
    case v1::WorkerMessage::kHeartbeat: {
      const v1::Heartbeat& hb = message.heartbeat();
      session.last_heartbeat = session.last_seen;
      if (hb.clock_offset_valid()) {
        session.offset_valid = true;
        session.clock_offset_ns = hb.clock_offset_ns();
      }
      if (hb.sent_unix_ns() != 0) {
        // How far the worker's wall clock is behind ours (positive: behind),
        // taking half the round trip as the one-way delay.
        session.wall_offset_ns = absl::ToUnixNanos(session.last_seen) - hb.sent_unix_ns() -
                                 hb.clock_rtt_ns() / 2;
        session.wall_offset_valid = true;
      }
      if (hb.no_ack()) return absl::OkStatus();
      v1::CoordinatorMessage ack;
      ack.mutable_heartbeat_ack()->set_seq(hb.seq());
      ack.mutable_heartbeat_ack()->set_echo_sent_mono_ns(hb.sent_mono_ns());
      ack.mutable_heartbeat_ack()->set_coordinator_unix_ns(absl::ToUnixNanos(clock_->Now()));
      session.channel->Send(std::move(ack));
      return absl::OkStatus();
    }
    case v1::WorkerMessage::kUpdates:
      HandleUpdatesLocked(session, message.updates());
      break;
    case v1::WorkerMessage::kDrain:
      HandleReturnedLocked(session, message.drain());
      break;
    case v1::WorkerMessage::kHello:
      return absl::InvalidArgumentError("hello may only be sent once, as the first message");
    case v1::WorkerMessage::MSG_NOT_SET:
      return absl::InvalidArgumentError("empty worker message");
  }
  DispatchLocked();
  FlushLocked();
  return absl::OkStatus();
}

void Coordinator::HandleUpdatesLocked(Session& session, const v1::TaskUpdates& updates) {
  for (const v1::TaskStarted& started : updates.started()) {
    JobRecord* job = FindJobLocked(started.task().job_id());
    if (job == nullptr || started.task().task_index() >= job->tasks.size()) continue;
    TaskRecord& t = job->tasks[started.task().task_index()];
    if (t.backup_attempt != 0 && t.backup_attempt == started.task().attempt() &&
        t.backup_session == session.id && !t.backup_running) {
      t.backup_running = true;
      t.backup_slot = started.slot();
      t.backup_started_at = std::clamp(session.offset_valid
                                           ? WorkerToCoordinatorTime(session, started.start_mono_ns())
                                           : clock_->Now(),
                                       t.backup_assigned_at, clock_->Now());
      ++session.running;
      if (session.assigned > 0) --session.assigned;
      continue;
    }
    if (t.attempt != started.task().attempt() || t.session != session.id ||
        t.state != v1::TASK_STATE_ASSIGNED) {
      continue;  // stale: the attempt was requeued, cancelled or already ended
    }
    t.state = v1::TASK_STATE_RUNNING;
    t.slot = started.slot();
    t.started_at = session.offset_valid ? WorkerToCoordinatorTime(session, started.start_mono_ns())
                                        : clock_->Now();
    t.started_at = std::clamp(t.started_at, t.assigned_at, clock_->Now());
    ++job->running;
    ++session.running;
    if (session.assigned > 0) --session.assigned;
    MarkDirtyLocked(*job, t.index);
  }
  for (const v1::TaskResult& result : updates.results()) {
    JobRecord* job = FindJobLocked(result.task().job_id());
    if (job == nullptr || result.task().task_index() >= job->tasks.size()) continue;
    HandleResultLocked(session, *job, result);
  }
}

void Coordinator::HandleResultLocked(Session& session, JobRecord& job, const v1::TaskResult& result) {
  TaskRecord& t = job.tasks[result.task().task_index()];
  if (t.backup_attempt != 0 && t.backup_attempt == result.task().attempt() &&
      t.backup_session == session.id) {
    HandleBackupResultLocked(session, job, t, result);
    return;
  }
  if (t.attempt != result.task().attempt() || t.session != session.id) {
    ++job.duplicates;  // a late result of an attempt that is no longer current
    MarkDirtyLocked(job, t.index);
    return;
  }
  const absl::Time now = clock_->Now();
  const bool was_running = t.state == v1::TASK_STATE_RUNNING;
  if (was_running) {
    if (job.running > 0) --job.running;
    if (session.running > 0) --session.running;
  } else if (t.state == v1::TASK_STATE_ASSIGNED && session.assigned > 0) {
    --session.assigned;
  }
  RecordTiming(session, result, now, t);  // whatever the outcome
  MarkDirtyLocked(job, t.index);
  t.session.clear();  // any later result for this attempt is a duplicate
  if (IsTerminal(t.state)) return;  // the job ended meanwhile (cancelled or failed)
  (void)scheduler_.Release(session.id, TaskKey{job.id, t.index});
  ++session.tasks_done;

  switch (result.state()) {
    case v1::TASK_STATE_SUCCEEDED:
      if (t.backup_attempt != 0) StopBackupLocked(job, t);  // the primary won
      SucceedTaskLocked(job, t);
      break;
    case v1::TASK_STATE_CANCELLED:
      // Not asked for by us (the job is live): the worker gave it up, e.g.
      // while shutting down. Run it again without counting an attempt.
      RetryOrFailLocked(job, t, absl::StrCat("cancelled on worker ", session.name), false);
      break;
    default: {
      const std::string why = absl::StrCat("attempt ", t.attempt, " on worker ", session.name, ": ",
                                           result.error().empty() ? "failed" : result.error());
      if (result.permanent()) {
        // Fails by itself (a bad spec): running it again cannot help.
        t.failures.push_back(why);
        ++counters_.attempts_failed;
        t.error = why;
        FailTaskLocked(job, t, absl::StrCat("task ", t.index, " failed and cannot be retried: ", why));
      } else {
        RetryOrFailLocked(job, t, why, true);
      }
      break;
    }
  }
}

void Coordinator::RetryOrFailLocked(JobRecord& job, TaskRecord& t, const std::string& why,
                                    bool counts) {
  if (counts) {
    t.failures.push_back(why);
    ++counters_.attempts_failed;
  }
  t.error = why;
  if (counts && t.failures.size() >= job.max_attempts()) {
    FailTaskLocked(job, t, AttemptsExhausted(job, t));
    return;
  }
  if (counts) {
    ++job.retries;
    ++counters_.retried;
  }
  ArchiveAttempt(t, counts ? v1::TASK_STATE_FAILED : v1::TASK_STATE_CANCELLED, why, clock_->Now());
  if (t.backup_attempt != 0) {
    PromoteBackupLocked(job, t);  // the copy already running takes over
    return;
  }
  t.state = v1::TASK_STATE_QUEUED;
  t.session.clear();
  MarkDirtyLocked(job, t.index);
  (void)scheduler_.Requeue(TaskKey{job.id, t.index});
}

void Coordinator::PromoteBackupLocked(JobRecord& job, TaskRecord& t) {
  t.attempt = t.backup_attempt;
  t.session = t.backup_session;
  t.worker = t.backup_worker;
  t.host = t.backup_host;
  t.assigned_at = t.backup_assigned_at;
  t.started_at = t.backup_started_at;
  t.slot = t.backup_slot;
  const bool running = t.backup_running;
  if (running && t.state != v1::TASK_STATE_RUNNING) ++job.running;
  if (!running && t.state == v1::TASK_STATE_RUNNING && job.running > 0) --job.running;
  t.state = running ? v1::TASK_STATE_RUNNING : v1::TASK_STATE_ASSIGNED;
  ClearBackup(t);
  MarkDirtyLocked(job, t.index);
}

void Coordinator::ClearBackup(TaskRecord& t) {
  t.backup_attempt = 0;
  t.backup_session.clear();
  t.backup_worker.clear();
  t.backup_host.clear();
  t.backup_assigned_at = absl::InfinitePast();
  t.backup_started_at = absl::InfinitePast();
  t.backup_slot = 0;
  t.backup_running = false;
}

void Coordinator::ArchiveAttempt(TaskRecord& t, v1::TaskState state, std::string error, absl::Time now) {
  if (t.started_at != absl::InfinitePast()) {
    AttemptRecord& a = t.history.emplace_back();
    a.attempt = t.attempt;
    a.state = state;
    a.slot = t.slot;
    a.pid = t.pid;
    a.worker = t.worker;
    a.host = t.host;
    a.started_at = t.started_at;
    a.ended_at = t.ended_at != absl::InfinitePast() ? t.ended_at : std::max(now, t.started_at);
    a.cpu_ns = t.cpu_ns;
    a.iterations_done = t.iterations_done;
    a.error = std::move(error);
  }
  t.started_at = absl::InfinitePast();
  t.ended_at = absl::InfinitePast();
  t.result_at = absl::InfinitePast();
  t.cpu_ns = 0;
  t.iterations_done = 0;
  t.pid = 0;
}

void Coordinator::ArchiveBackup(TaskRecord& t, v1::TaskState state, std::string error, absl::Time now) {
  if (t.backup_attempt == 0 || t.backup_started_at == absl::InfinitePast()) return;
  AttemptRecord& a = t.history.emplace_back();
  a.attempt = t.backup_attempt;
  a.state = state;
  a.backup = true;
  a.slot = t.backup_slot;
  a.worker = t.backup_worker;
  a.host = t.backup_host;
  a.started_at = t.backup_started_at;
  a.ended_at = std::max(now, t.backup_started_at);
  a.error = std::move(error);
}

void Coordinator::RecordTiming(const Session& session, const v1::TaskResult& result, absl::Time now,
                               TaskRecord& t) const {
  t.slot = result.slot();
  t.result_at = now;
  t.pid = result.pid();
  t.cpu_ns = result.cpu_ns();
  t.iterations_done = result.iterations_done();
  const absl::Duration ran = absl::Nanoseconds(result.end_mono_ns() - result.start_mono_ns());
  t.started_at = session.offset_valid ? WorkerToCoordinatorTime(session, result.start_mono_ns()) : now - ran;
  // The offset estimate is only good to half a round trip; keep what we
  // know for sure: the attempt ran between its assignment and its result.
  if (t.started_at < t.assigned_at) t.started_at = t.assigned_at;
  if (t.started_at + ran > now) t.started_at = std::max(t.assigned_at, now - ran);
  t.ended_at = t.started_at + ran;
}

void Coordinator::StopCopyLocked(const JobRecord& job, uint32_t index, const std::string& session_id,
                                 uint32_t attempt, bool running) {
  auto s = sessions_.find(session_id);
  if (s == sessions_.end()) return;
  v1::CoordinatorMessage m;
  v1::TaskRef* ref = m.mutable_cancel()->add_tasks();
  ref->set_job_id(job.id);
  ref->set_task_index(index);
  ref->set_attempt(attempt);
  s->second.channel->Send(std::move(m));
  if (running) {
    if (s->second.running > 0) --s->second.running;
  } else if (s->second.assigned > 0) {
    --s->second.assigned;
  }
  (void)scheduler_.Release(session_id, TaskKey{job.id, index});
}

void Coordinator::StopBackupLocked(JobRecord& job, TaskRecord& t) {
  ArchiveBackup(t, v1::TASK_STATE_CANCELLED,
                absl::StrCat("speculation copy stopped: attempt ", t.attempt, " finished first"), clock_->Now());
  StopCopyLocked(job, t.index, t.backup_session, t.backup_attempt, t.backup_running);
  ClearBackup(t);
}

void Coordinator::HandleBackupResultLocked(Session& session, JobRecord& job, TaskRecord& t,
                                           const v1::TaskResult& result) {
  MarkDirtyLocked(job, t.index);
  if (t.backup_running) {
    if (session.running > 0) --session.running;
  } else if (session.assigned > 0) {
    --session.assigned;
  }
  (void)scheduler_.Release(session.id, TaskKey{job.id, t.index});
  if (IsTerminal(t.state) || result.state() != v1::TASK_STATE_SUCCEEDED) {
    // A failed or cancelled copy changes nothing: the primary runs on.
    if (!IsTerminal(t.state)) {
      ArchiveBackup(t, result.state() == v1::TASK_STATE_CANCELLED ? v1::TASK_STATE_CANCELLED : v1::TASK_STATE_FAILED,
                    result.error(), clock_->Now());
    }
    ClearBackup(t);
    return;
  }
  // The backup finished first: it is the task's result; stop the primary.
  ArchiveAttempt(t, v1::TASK_STATE_CANCELLED,
                 absl::StrCat("stopped: speculation copy (attempt ", t.backup_attempt, ") finished first"),
                 clock_->Now());
  StopCopyLocked(job, t.index, t.session, t.attempt, t.state == v1::TASK_STATE_RUNNING);
  if (t.state == v1::TASK_STATE_RUNNING && job.running > 0) --job.running;
  t.attempt = t.backup_attempt;
  t.worker = t.backup_worker;
  t.host = t.backup_host;
  t.assigned_at = t.backup_assigned_at;
  RecordTiming(session, result, clock_->Now(), t);
  t.session.clear();
  t.backup_won = true;
  ClearBackup(t);
  ++job.backups_won;
  ++session.tasks_done;
  SucceedTaskLocked(job, t);
}

void Coordinator::SucceedTaskLocked(JobRecord& job, TaskRecord& t) {
  ++counters_.succeeded;
  if (t.has_timing()) {
    counters_.task_seconds.Add(t.seconds());
    scheduler_.ObserveTaskSeconds(job.id, t.seconds());
  }
  t.state = v1::TASK_STATE_SUCCEEDED;
  t.error.clear();
  ++job.succeeded;
  job.iterations_done += t.iterations_done;
  --unfinished_tasks_;
  if (job.succeeded == job.tasks.size()) FinishJobLocked(job, v1::JOB_STATE_SUCCEEDED, "");
}

void Coordinator::FailTaskLocked(JobRecord& job, TaskRecord& t, std::string job_error) {
  t.state = v1::TASK_STATE_FAILED;
  ++job.failed;
  --unfinished_tasks_;
  MarkDirtyLocked(job, t.index);
  FinishJobLocked(job, v1::JOB_STATE_FAILED, std::move(job_error));
}

absl::Time Coordinator::SpeculateLocked(absl::Time now) {
  absl::Time next = absl::InfiniteFuture();
  std::map<std::string, v1::CoordinatorMessage> batches;
  for (auto& [id, job_ptr] : jobs_) {
    JobRecord& job = *job_ptr;
    if (!job.spec.speculate() || IsTerminal(job.state)) continue;
    // Until results come in there is no median: look again soon.
    next = std::min(next, now + kSpeculationRecheck);
    if (job.succeeded == 0 || scheduler_.QueuedFor(job.id) > 0) continue;
    std::vector<double> done;
    done.reserve(job.succeeded);
    for (const TaskRecord& t : job.tasks) {
      if (t.state == v1::TASK_STATE_SUCCEEDED && t.has_timing()) done.push_back(t.seconds());
    }
    if (done.empty()) continue;
    std::nth_element(done.begin(), done.begin() + static_cast<std::ptrdiff_t>(done.size() / 2), done.end());
    const absl::Duration threshold = absl::Seconds(kStragglerFactor * done[done.size() / 2]);
    for (TaskRecord& t : job.tasks) {
      if (t.state != v1::TASK_STATE_RUNNING || t.speculated || t.backup_attempt != 0) continue;
      const absl::Time due = t.started_at + threshold;
      if (due > now) {
        next = std::min(next, due);
        continue;
      }
      std::optional<std::string> target = scheduler_.AssignBackup(TaskKey{job.id, t.index}, t.session);
      if (!target) continue;  // no free slot now; the recheck above comes back
      Session& s = sessions_.at(*target);
      t.backup_attempt = t.last_attempt = std::max({t.attempt, t.backup_attempt, t.last_attempt}) + 1;
      t.backup_session = *target;
      t.backup_worker = s.name;
      t.backup_host = s.host.hostname();
      t.backup_assigned_at = now;
      t.backup_running = false;
      t.speculated = true;
      ++job.backups;
      ++s.assigned;
      ++counters_.dispatched;
      MarkDirtyLocked(job, t.index);
      *batches[*target].mutable_assign()->add_assignments() = MakeAssignment(job, t, t.backup_attempt);
    }
  }
  for (auto& [session, message] : batches) sessions_.at(session).channel->Send(std::move(message));
  return next;
}

void Coordinator::HandleReturnedLocked(Session& session, const v1::DrainNotice& notice) {
  if (session.state == v1::WORKER_STATE_READY) {
    session.state = v1::WORKER_STATE_DRAINING;
    (void)scheduler_.SetDraining(session.id);
  }
  for (const v1::TaskRef& ref : notice.returned()) {
    JobRecord* job = FindJobLocked(ref.job_id());
    if (job == nullptr || ref.task_index() >= job->tasks.size()) continue;
    TaskRecord& t = job->tasks[ref.task_index()];
    if (t.attempt != ref.attempt() || t.session != session.id || IsTerminal(t.state)) continue;
    if (t.state == v1::TASK_STATE_RUNNING) {
      if (job->running > 0) --job->running;
      if (session.running > 0) --session.running;
    } else if (session.assigned > 0) {
      --session.assigned;
    }
    (void)scheduler_.Release(session.id, TaskKey{job->id, t.index});
    ArchiveAttempt(t, v1::TASK_STATE_CANCELLED, absl::StrCat("handed back by draining worker ", session.name),
                   clock_->Now());
    t.state = v1::TASK_STATE_QUEUED;
    t.session.clear();
    MarkDirtyLocked(*job, t.index);
    (void)scheduler_.Requeue(TaskKey{job->id, t.index});
  }
}

void Coordinator::Detach(absl::string_view session_id, const absl::Status& reason) {
  absl::MutexLock lock(&mu_);
  if (!sessions_.contains(std::string(session_id))) return;
  RemoveSessionLocked(std::string(session_id),
                      reason.ok() ? "stream closed" : std::string(reason.message()));
  DispatchLocked();
  FlushLocked();
}

void Coordinator::RemoveSessionLocked(const std::string& session_id, const std::string& why) {
  auto it = sessions_.find(session_id);
  if (it == sessions_.end()) return;
  Session& s = it->second;
  auto tasks = scheduler_.RemoveWorker(session_id);
  if (tasks.ok()) {
    for (const TaskKey& key : *tasks) {
      JobRecord* job = FindJobLocked(key.job_id);
      if (job == nullptr || key.index >= job->tasks.size()) continue;
      TaskRecord& t = job->tasks[key.index];
      if (t.backup_attempt != 0 && t.backup_session == session_id) {
        // A lost backup copy: the primary runs on, nothing is counted.
        scheduler_.Dequeue(key);
        ArchiveBackup(t, v1::TASK_STATE_FAILED, absl::StrCat("lost with worker ", s.name, " (", why, ")"),
                      clock_->Now());
        ClearBackup(t);
        MarkDirtyLocked(*job, t.index);
        continue;
      }
      if (t.session != session_id || IsTerminal(t.state)) continue;
      if (t.backup_attempt != 0) {
        // The backup takes over from the lost primary; the loss still counts.
        scheduler_.Dequeue(key);
        t.failures.push_back(absl::StrCat("attempt ", t.attempt, " lost with worker ", s.name, " (", why, ")"));
        ++counters_.attempts_failed;
        t.error = t.failures.back();
        ++job->retries;
        ++counters_.retried;
        if (t.failures.size() < job->max_attempts()) {
          ArchiveAttempt(t, v1::TASK_STATE_FAILED, t.error, clock_->Now());
          PromoteBackupLocked(*job, t);
          continue;
        }
        t.session.clear();
        FailTaskLocked(*job, t, AttemptsExhausted(*job, t));
        continue;
      }
      if (t.state == v1::TASK_STATE_RUNNING && job->running > 0) --job->running;
      // The scheduler has queued it again already; undo that if it fails the job.
      t.failures.push_back(absl::StrCat("attempt ", t.attempt, " lost with worker ", s.name, " (", why, ")"));
      ++counters_.attempts_failed;
      t.error = t.failures.back();
      t.session.clear();
      MarkDirtyLocked(*job, t.index);
      if (t.failures.size() >= job->max_attempts()) {
        FailTaskLocked(*job, t, AttemptsExhausted(*job, t));
      } else {
        ArchiveAttempt(t, v1::TASK_STATE_FAILED, t.error, clock_->Now());
        t.state = v1::TASK_STATE_QUEUED;
        ++job->retries;
        ++counters_.retried;
      }
    }
  }
  s.state = v1::WORKER_STATE_GONE;
  s.running = 0;
  s.assigned = 0;
  s.channel.reset();
  gone_.push_back(std::move(s));
  while (gone_.size() > options_.keep_gone_workers) gone_.pop_front();
  sessions_.erase(it);
}

void Coordinator::FinishJobLocked(JobRecord& job, v1::JobState state, std::string error) {
  if (IsTerminal(job.state)) return;
  const absl::Time now = clock_->Now();
  job.state = state;
  job.error = std::move(error);
  job.finished_at = now;
  // Stop whatever of the job is still in flight.
  std::map<std::string, v1::CoordinatorMessage> cancels;
  for (const Scheduler::Assignment& a : scheduler_.RemoveJob(job.id)) {
    const TaskRecord& t = job.tasks[a.task.index];
    const bool backup = t.backup_attempt != 0 && a.session == t.backup_session;
    v1::TaskRef* ref = cancels[a.session].mutable_cancel()->add_tasks();
    ref->set_job_id(job.id);
    ref->set_task_index(t.index);
    ref->set_attempt(backup ? t.backup_attempt : t.attempt);
    auto s = sessions_.find(a.session);
    if (s != sessions_.end()) {
      const bool running = backup ? t.backup_running : t.state == v1::TASK_STATE_RUNNING;
      const bool assigned = backup ? !t.backup_running : t.state == v1::TASK_STATE_ASSIGNED;
      if (running && s->second.running > 0) --s->second.running;
      if (assigned && s->second.assigned > 0) --s->second.assigned;
    }
  }
  for (TaskRecord& t : job.tasks) {
    if (t.backup_attempt == 0) continue;
    ArchiveBackup(t, v1::TASK_STATE_CANCELLED, "the job ended", now);
    ClearBackup(t);
  }
  for (auto& [session, message] : cancels) {
    auto s = sessions_.find(session);
    if (s != sessions_.end()) s->second.channel->Send(std::move(message));
  }
  for (TaskRecord& t : job.tasks) {
    if (IsTerminal(t.state)) continue;
    t.state = v1::TASK_STATE_CANCELLED;
    ++job.cancelled;
    --unfinished_tasks_;
    MarkDirtyLocked(job, t.index);
  }
  job.running = 0;
  finished_order_.push_back(job.id);
  MarkDirtyLocked(job, UINT32_MAX);
  if (options_.on_job_finished) options_.on_job_finished(BuildReport(job, WorkerFactsLocked(), now, false));
}

void Coordinator::DispatchLocked() {
  std::vector<Scheduler::Assignment> assignments = scheduler_.Dispatch();
  if (assignments.empty()) return;
  const absl::Time now = clock_->Now();
  std::map<std::string, v1::CoordinatorMessage> batches;
  for (const Scheduler::Assignment& a : assignments) {
    JobRecord* job = FindJobLocked(a.task.job_id);
    auto s = sessions_.find(a.session);
    if (job == nullptr || s == sessions_.end()) continue;
    TaskRecord& t = job->tasks[a.task.index];
    if (t.started_at != absl::InfinitePast()) {
      // Started before but never archived: an attempt cut short by a coordinator restart.
      ArchiveAttempt(t, v1::TASK_STATE_FAILED, absl::StrCat("attempt ", t.attempt, " did not finish"), now);
    }
    // Attempt numbers never repeat (not even a lost backup's).
    t.attempt = t.last_attempt = std::max({t.attempt, t.backup_attempt, t.last_attempt}) + 1;
    t.state = v1::TASK_STATE_ASSIGNED;
    t.session = a.session;
    t.worker = s->second.name;
    t.host = s->second.host.hostname();
    t.assigned_at = now;
    ++s->second.assigned;
    ++counters_.dispatched;
    if (job->state == v1::JOB_STATE_PENDING) job->state = v1::JOB_STATE_RUNNING;
    MarkDirtyLocked(*job, t.index);
    *batches[a.session].mutable_assign()->add_assignments() = MakeAssignment(*job, t, t.attempt);
  }
  for (auto& [session, message] : batches) {
    sessions_.at(session).channel->Send(std::move(message));
  }
}

void Coordinator::MarkDirtyLocked(JobRecord& job, uint32_t task_index) {
  std::set<uint32_t>& changed = dirty_[job.id];
  if (task_index != UINT32_MAX) changed.insert(task_index);
}

void Coordinator::FlushLocked() {
  if (dirty_.empty()) return;
  std::map<std::string, std::set<uint32_t>> dirty;
  dirty.swap(dirty_);
  for (auto& [id, changed] : dirty) {
    JobRecord* job = FindJobLocked(id);
    if (job == nullptr) continue;
    // The in-memory record stays authoritative if the store fails; the
    // failure surfaces at the next start-up (and is logged by the adapter).
    (void)options_.store->SaveJob(*job, std::vector<uint32_t>(changed.begin(), changed.end()));
    NotifyLocked(*job);
  }
  EvictFinishedLocked();
}

void Coordinator::NotifyLocked(JobRecord& job) {
  const absl::Time now = clock_->Now();
  std::optional<v1::JobProgress> progress;
  for (auto it = watchers_.begin(); it != watchers_.end();) {
    Watcher& w = it->second;
    if (w.job_id != job.id) {
      ++it;
      continue;
    }
    if (IsTerminal(job.state)) {
      if (!progress) progress = BuildProgress(job, now);
      v1::JobProgress final_progress = *progress;
      ReportOptions report_options;
      report_options.tasks = w.include_tasks;
      report_options.task_limit = limits::kMaxTaskRowsPerReply;
      report_options.summarize_large = true;
      *final_progress.mutable_report() = BuildReport(job, WorkerFactsLocked(), now, report_options);
      w.callback(final_progress);
      it = watchers_.erase(it);
      continue;
    }
    if (w.pending) {  // already held back: it goes out with the newest progress when due
      ++it;
      continue;
    }
    if (TakeProgressToken(w, now)) {
      if (!progress) progress = BuildProgress(job, now);
      w.callback(*progress);
    } else {
      HoldBackLocked(w);
    }
    ++it;
  }
}

void Coordinator::HoldBackLocked(Watcher& w) {
  w.pending = true;
  if (w.due < progress_due_) {
    progress_due_ = w.due;
    if (options_.request_check) options_.request_check();
  }
}

bool Coordinator::TakeProgressToken(Watcher& w, absl::Time now) const {
  if (options_.progress_interval <= absl::ZeroDuration()) return true;
  if (w.refilled != absl::InfinitePast()) {
    w.tokens = std::min(options_.progress_burst,
                        w.tokens + absl::FDivDuration(now - w.refilled, options_.progress_interval));
  }
  w.refilled = now;
  if (w.tokens >= 1) {
    w.tokens -= 1;
    return true;
  }
  w.due = now + options_.progress_interval * (1 - w.tokens);
  return false;
}

absl::Time Coordinator::SendDueProgressLocked(absl::Time now) {
  if (progress_due_ > now) return progress_due_;
  progress_due_ = absl::InfiniteFuture();
  for (auto& [handle, w] : watchers_) {
    if (!w.pending) continue;
    if (w.due > now || !TakeProgressToken(w, now)) {
      progress_due_ = std::min(progress_due_, w.due);
      continue;
    }
    w.pending = false;
    w.due = absl::InfiniteFuture();
    if (JobRecord* job = FindJobLocked(w.job_id)) w.callback(BuildProgress(*job, now));
  }
  return progress_due_;
}

void Coordinator::EvictFinishedLocked() {
  while (finished_order_.size() > options_.keep_finished_jobs) {
    auto it = jobs_.find(finished_order_.front());
    if (it != jobs_.end()) {
      options_.store->TakeEvicted(std::move(*it->second));
      jobs_.erase(it);
    }
    finished_order_.pop_front();
  }
}

absl::Time Coordinator::CheckLiveness() {
  absl::MutexLock lock(&mu_);
  const absl::Time now = clock_->Now();
  std::vector<std::string> dead;
  absl::Time next = absl::InfiniteFuture();
  for (const auto& [id, s] : sessions_) {
    const absl::Time due = s.last_seen + options_.worker_timeout;
    if (due <= now) {
      dead.push_back(id);
    } else {
      // A little slack, so that many sessions' deadlines are checked in one
      // wake-up rather than one each (a worker is declared dead within 1.1x
      // the timeout).
      next = std::min(next, due + options_.worker_timeout / 10);
    }
  }
  for (const std::string& id : dead) {
    std::shared_ptr<WorkerChannel> channel = sessions_.at(id).channel;
    RemoveSessionLocked(id, absl::StrCat("no heartbeat for ", absl::FormatDuration(options_.worker_timeout)));
    if (channel) {
      channel->Close(absl::UnavailableError("declared dead: no heartbeat within the worker timeout"));
    }
  }
  next = std::min(next, SpeculateLocked(now));
  DispatchLocked();
  FlushLocked();
  next = std::min(next, SendDueProgressLocked(now));
  return next;
}

MetricsSnapshot Coordinator::Metrics() const {
  absl::MutexLock lock(&mu_);
  MetricsSnapshot m;
  for (const auto& [id, s] : sessions_) {
    ++m.workers[s.state];
    m.slots += s.slots;
    m.running += s.running;
  }
  m.workers[v1::WORKER_STATE_GONE] = static_cast<uint32_t>(gone_.size());
  m.queue_depth = scheduler_.QueuedTasks();
  for (const auto& [id, job] : jobs_) ++m.jobs[job->state];
  m.jobs_submitted = jobs_submitted_;
  m.counters = counters_;
  return m;
}

void Coordinator::Shutdown() {
  absl::MutexLock lock(&mu_);
  if (shutting_down_) return;
  shutting_down_ = true;
  for (auto& [id, s] : sessions_) {
    if (s.channel) s.channel->Close(absl::UnavailableError("coordinator is shutting down"));
  }
  FlushLocked();
}

}  // namespace busyfleet::coordinator
