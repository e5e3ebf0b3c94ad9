#include "coordinator/core/scheduler.h"

#include <cmath>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "coordinator/core/enum_names.h"

namespace busyfleet::coordinator {

Scheduler::JobConstraints Scheduler::JobConstraints::Of(const v1::JobSpec& spec) {
  JobConstraints c;
  c.max_slots = spec.max_slots();
  c.workers.assign(spec.workers().begin(), spec.workers().end());
  c.selector.insert(spec.selector().begin(), spec.selector().end());
  c.exec = spec.exec();
  c.kind = spec.kind();
  return c;
}

void IndexQueue::AssignRange(uint32_t n) {
  clear();
  if (n > 0) runs_.push_back(Run{0, n});
  size_ = n;
}

void IndexQueue::Assign(const std::vector<uint32_t>& indices) {
  clear();
  for (uint32_t i : indices) PushBack(i);
}

void IndexQueue::PushBack(uint32_t index) {
  if (!runs_.empty() && runs_.back().count < UINT32_MAX &&
      static_cast<uint64_t>(runs_.back().first) + runs_.back().count == index) {
    ++runs_.back().count;
  } else {
    runs_.push_back(Run{index, 1});
  }
  ++size_;
}

void IndexQueue::pop_front() {
  Run& r = runs_.front();
  ++r.first;
  if (--r.count == 0) runs_.pop_front();
  --size_;
}

void IndexQueue::push_front(uint32_t index) {
  if (!runs_.empty() && runs_.front().first > 0 && runs_.front().first - 1 == index &&
      runs_.front().count < UINT32_MAX) {
    --runs_.front().first;
    ++runs_.front().count;
  } else {
    runs_.push_front(Run{index, 1});
  }
  ++size_;
}

bool IndexQueue::Erase(uint32_t index) {
  for (auto it = runs_.begin(); it != runs_.end(); ++it) {
    if (index < it->first || index - it->first >= it->count) continue;
    const uint32_t before = index - it->first;
    const uint32_t after = it->count - before - 1;
    if (before == 0 && after == 0) {
      runs_.erase(it);
    } else if (before == 0) {
      it->first = index + 1;
      it->count = after;
    } else {
      it->count = before;
      if (after > 0) runs_.insert(std::next(it), Run{index + 1, after});
    }
    --size_;
    return true;
  }
  return false;
}

bool IndexSet::StartsAfter(uint32_t index, const Run& r) { return index < r.first; }

std::vector<IndexSet::Run>::iterator IndexSet::After(uint32_t index) {
  return std::upper_bound(runs_.begin(), runs_.end(), index, StartsAfter);
}

bool IndexSet::Insert(uint32_t index) {
  // Past the end: the usual case (tasks are dealt in order).
  if (runs_.empty() || index > runs_.back().last) {
    if (!runs_.empty() && runs_.back().last + 1 == index) {
      runs_.back().last = index;
    } else {
      runs_.push_back(Run{index, index});
    }
    ++size_;
    return true;
  }
  auto next = After(index);
  Run* prev = next == runs_.begin() ? nullptr : &*(next - 1);
  if (prev != nullptr && index <= prev->last) return false;
  const bool joins_prev = prev != nullptr && prev->last + 1 == index;
  const bool joins_next = next != runs_.end() && index + 1 == next->first;  // next->first > index: no wrap
  if (joins_prev && joins_next) {
    prev->last = next->last;
    runs_.erase(next);
  } else if (joins_prev) {
    prev->last = index;
  } else if (joins_next) {
    next->first = index;
  } else {
    runs_.insert(next, Run{index, index});
  }
  ++size_;
  return true;
}

bool IndexSet::Erase(uint32_t index) {
  if (runs_.empty()) return false;
  // At the front: the usual case (results come back in order). Otherwise
  // the run holding it, if one does.
  auto it = runs_.begin();
  if (it->first != index) {
    auto next = After(index);
    if (next == runs_.begin()) return false;
    it = next - 1;
    if (index > it->last) return false;
  }
  if (it->first == it->last) {
    runs_.erase(it);
  } else if (index == it->first) {
    ++it->first;
  } else if (index == it->last) {
    --it->last;
  } else {
    const Run tail{index + 1, it->last};
    it->last = index - 1;
    runs_.insert(it + 1, tail);
  }
  --size_;
  return true;
}

bool IndexSet::Contains(uint32_t index) const {
  auto next = std::upper_bound(runs_.begin(), runs_.end(), index, StartsAfter);
  return next != runs_.begin() && index <= (next - 1)->last;
}

void IndexSet::AppendTo(std::vector<uint32_t>& out) const {
  out.reserve(out.size() + size_);
  for (const Run& r : runs_) {
    for (uint32_t i = r.first;; ++i) {
      out.push_back(i);
      if (i == r.last) break;
    }
  }
}

Scheduler::Scheduler(Options options) : options_(options) {}

Scheduler::FlightSet::Entry* Scheduler::FlightSet::Find(absl::string_view job_id, bool add) {
  if (last_ != nullptr && last_->first == job_id) return last_;
  auto it = by_job_.find(job_id);
  if (it == by_job_.end()) {
    if (!add) return nullptr;
    it = by_job_.try_emplace(std::string(job_id)).first;
  }
  last_ = &*it;
  return last_;
}

void Scheduler::FlightSet::EraseEntry(Entry* entry) {
  if (last_ == entry) last_ = nullptr;
  size_ -= entry->second.size();
  by_job_.erase(entry->first);
}

bool Scheduler::FlightSet::Insert(absl::string_view job_id, uint32_t index) {
  if (!Find(job_id, /*add=*/true)->second.Insert(index)) return false;
  ++size_;
  return true;
}

bool Scheduler::FlightSet::Erase(absl::string_view job_id, uint32_t index) {
  return EraseMany(job_id, absl::MakeConstSpan(&index, 1)) == 1;
}

size_t Scheduler::FlightSet::EraseMany(absl::string_view job_id, absl::Span<const uint32_t> indices) {
  Entry* entry = Find(job_id, /*add=*/false);
  if (entry == nullptr) return 0;
  size_t erased = 0;
  for (const uint32_t index : indices) erased += entry->second.Erase(index) ? 1 : 0;
  size_ -= erased;
  if (entry->second.empty()) EraseEntry(entry);
  return erased;
}

bool Scheduler::FlightSet::Contains(absl::string_view job_id, uint32_t index) const {
  auto it = by_job_.find(job_id);
  return it != by_job_.end() && it->second.Contains(index);
}

std::vector<uint32_t> Scheduler::FlightSet::TakeJob(absl::string_view job_id) {
  std::vector<uint32_t> out;
  Entry* entry = Find(job_id, /*add=*/false);
  if (entry == nullptr) return out;
  entry->second.AppendTo(out);
  EraseEntry(entry);
  return out;
}

std::vector<TaskKey> Scheduler::FlightSet::All() const {
  std::vector<TaskKey> out;
  out.reserve(size_);
  std::vector<uint32_t> indices;
  for (const auto& [job, set] : by_job_) {
    indices.clear();
    set.AppendTo(indices);
    for (uint32_t i : indices) out.push_back(TaskKey{job, i});
  }
  return out;
}

absl::Status Scheduler::AddWorker(WorkerSpec worker) {
  if (worker.slots < 1) {
    return absl::InvalidArgumentError(absl::StrCat("slots must be at least 1, got ", worker.slots));
  }
  absl::MutexLock lock(&mu_);
  const std::string session = worker.session;
  Worker w;
  w.spec = std::move(worker);
  if (!workers_.emplace(session, std::move(w)).second) {
    return absl::AlreadyExistsError(absl::StrCat("worker session ", session, " already exists"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<TaskKey>> Scheduler::RemoveWorker(absl::string_view session) {
  absl::MutexLock lock(&mu_);
  auto it = workers_.find(session);
  if (it == workers_.end()) {
    return absl::NotFoundError(absl::StrCat("worker session ", session, " not found"));
  }
  std::vector<TaskKey> tasks = it->second.in_flight.All();
  std::sort(tasks.begin(), tasks.end(), [](const TaskKey& a, const TaskKey& b) {
    return a.job_id != b.job_id ? a.job_id < b.job_id : a.index > b.index;
  });
  for (const TaskKey& t : tasks) {
    auto job = jobs_.find(t.job_id);
    if (job == jobs_.end()) continue;
    --job->second.in_flight;
    job->second.queued.push_front(t.index);  // descending order above keeps the lowest index first
    ++queued_;
  }
  if (last_worker_ == &it->second) last_worker_ = nullptr;
  workers_.erase(it);
  return tasks;
}

absl::Status Scheduler::SetDraining(absl::string_view session) {
  absl::MutexLock lock(&mu_);
  auto it = workers_.find(session);
  if (it == workers_.end()) {
    return absl::NotFoundError(absl::StrCat("worker session ", session, " not found"));
  }
  it->second.draining = true;
  return absl::OkStatus();
}

absl::Status Scheduler::SetRoundTrip(absl::string_view session, absl::Duration rtt) {
  absl::MutexLock lock(&mu_);
  auto it = workers_.find(session);
  if (it == workers_.end()) {
    return absl::NotFoundError(absl::StrCat("worker session ", session, " not found"));
  }
  it->second.rtt_seconds = std::max(0.0, absl::ToDoubleSeconds(rtt));
  return absl::OkStatus();
}

absl::Status Scheduler::AddJob(absl::string_view job_id, JobConstraints constraints,
                               const std::vector<uint32_t>& queued, uint64_t seq) {
  IndexQueue q;
  q.Assign(queued);
  absl::MutexLock lock(&mu_);
  return AddJobLocked(job_id, std::move(constraints), std::move(q), seq);
}

absl::Status Scheduler::AddNewJob(absl::string_view job_id, JobConstraints constraints, uint32_t tasks, uint64_t seq) {
  IndexQueue q;
  q.AssignRange(tasks);
  absl::MutexLock lock(&mu_);
  return AddJobLocked(job_id, std::move(constraints), std::move(q), seq);
}

absl::Status Scheduler::AddJobLocked(absl::string_view job_id, JobConstraints constraints, IndexQueue queued,
                                     uint64_t seq) {
  Job job;
  job.id = std::string(job_id);
  job.allowed_workers.insert(constraints.workers.begin(), constraints.workers.end());
  job.constraints = std::move(constraints);
  job.queued = std::move(queued);
  job.seq = seq;
  const size_t n = job.queued.size();
  if (!jobs_.emplace(job.id, std::move(job)).second) {
    return absl::AlreadyExistsError(absl::StrCat("job ", job_id, " already scheduled"));
  }
  queued_ += n;
  return absl::OkStatus();
}

std::vector<Scheduler::Assignment> Scheduler::RemoveJob(absl::string_view job_id) {
  absl::MutexLock lock(&mu_);
  std::vector<Assignment> in_flight;
  auto it = jobs_.find(job_id);
  if (it == jobs_.end()) return in_flight;
  queued_ -= it->second.queued.size();
  if (it->second.in_flight > 0) {
    for (auto& [session, worker] : workers_) {
      for (uint32_t index : worker.in_flight.TakeJob(it->second.id)) {
        in_flight.push_back({session, TaskKey{it->second.id, index}});
      }
    }
  }
  if (last_job_ == &it->second) last_job_ = nullptr;
  jobs_.erase(it);
  return in_flight;
}

absl::Status Scheduler::Adopt(absl::string_view session, const TaskKey& task) {
  absl::MutexLock lock(&mu_);
  auto w = workers_.find(session);
  if (w == workers_.end()) return absl::NotFoundError(absl::StrCat("unknown session ", session));
  auto job = jobs_.find(task.job_id);
  if (job == jobs_.end()) return absl::NotFoundError(absl::StrCat("unknown job ", task.job_id));
  if (!w->second.in_flight.Insert(task.job_id, task.index)) {
    return absl::AlreadyExistsError(absl::StrCat("task ", task.index, " is in flight on ", session));
  }
  ++job->second.in_flight;
  return absl::OkStatus();
}

absl::Status Scheduler::Release(absl::string_view session, absl::string_view job_id, uint32_t index) {
  absl::MutexLock lock(&mu_);
  Worker* w = FindWorkerLocked(session);
  if (w == nullptr || !w->in_flight.Erase(job_id, index)) {
    return absl::NotFoundError(absl::StrCat("task ", job_id, "/", index, " is not in flight on session ", session));
  }
  if (Job* job = FindJobLocked(job_id)) --job->in_flight;
  return absl::OkStatus();
}

size_t Scheduler::ReleaseMany(absl::string_view session, absl::string_view job_id,
                               absl::Span<const uint32_t> indices) {
  absl::MutexLock lock(&mu_);
  Worker* w = FindWorkerLocked(session);
  if (w == nullptr) return 0;
  const size_t released = w->in_flight.EraseMany(job_id, indices);
  if (Job* job = FindJobLocked(job_id)) job->in_flight -= static_cast<uint32_t>(released);
  return released;
}

absl::Status Scheduler::Requeue(const TaskKey& task) {
  absl::MutexLock lock(&mu_);
  auto job = jobs_.find(task.job_id);
  if (job == jobs_.end()) return absl::NotFoundError(absl::StrCat("job ", task.job_id, " not scheduled"));
  job->second.queued.push_front(task.index);
  ++queued_;
  return absl::OkStatus();
}

bool Scheduler::Eligible(const Job& job, const Worker& worker) const {
  const JobConstraints& c = job.constraints;
  if (c.max_slots != 0 && job.in_flight >= c.max_slots) return false;
  return Matches(job, worker);
}

bool Scheduler::NameMatches(const Job& job, const Worker& worker) {
  return job.allowed_workers.empty() || job.allowed_workers.contains(worker.spec.name);
}

bool Scheduler::LabelsMatch(const Job& job, const Worker& worker) {
  for (const auto& [k, v] : job.constraints.selector) {
    auto it = worker.spec.labels.find(k);
    if (it == worker.spec.labels.end() || it->second != v) return false;
  }
  return true;
}

bool Scheduler::ExecMatches(const Job& job, const Worker& worker) {
  const v1::ExecMode exec = job.constraints.exec;
  const auto& modes = worker.spec.exec_modes;
  return exec == v1::EXEC_MODE_UNSPECIFIED || std::find(modes.begin(), modes.end(), exec) != modes.end();
}

bool Scheduler::KindMatches(const Job& job, const Worker& worker) {
  const v1::TaskKind kind = job.constraints.kind;
  const auto& kinds = worker.spec.kinds;
  if (kind == v1::TASK_KIND_UNSPECIFIED) return true;
  if (kinds.empty()) return kind != v1::TASK_KIND_PYTHON;  // an older worker: the C++ kinds
  return std::find(kinds.begin(), kinds.end(), kind) != kinds.end();
}

bool Scheduler::Matches(const Job& job, const Worker& worker) {
  return NameMatches(job, worker) && LabelsMatch(job, worker) && ExecMatches(job, worker) &&
         KindMatches(job, worker);
}

namespace {

// "no attached worker offers the python kind (...)": the reason a job waits
// when no worker runs its kind.
std::string NoWorkerOffersKind(v1::TaskKind kind) {
  return absl::StrCat("no attached worker offers the ", TaskKindName(kind), " kind",
                      kind == v1::TASK_KIND_PYTHON ? " (workers built without Python, or started with --no-python)"
                                                   : "");
}

}  // namespace

std::string Scheduler::WhyUnrunnable(const Job& job, const std::vector<const Worker*>& ready) {
  const JobConstraints& c = job.constraints;
  const std::string names = absl::StrJoin(c.workers, ",");
  const std::string labels = absl::StrJoin(c.selector, ",", absl::PairFormatter("="));
  const std::string exec = c.exec == v1::EXEC_MODE_UNSPECIFIED ? "" : ExecModeName(c.exec);
  auto any = [&ready, &job](bool (*pred)(const Job&, const Worker&)) {
    return std::any_of(ready.begin(), ready.end(), [&](const Worker* w) { return pred(job, *w); });
  };
  std::vector<std::string> unmet;
  if (!any(&NameMatches)) unmet.push_back(absl::StrCat("no attached worker matches --workers ", names));
  if (!any(&ExecMatches)) unmet.push_back(absl::StrCat("no worker offers --exec ", exec));
  if (!any(&KindMatches)) unmet.push_back(NoWorkerOffersKind(c.kind));
  if (!any(&LabelsMatch)) unmet.push_back(absl::StrCat("no worker with labels ", labels));
  if (!unmet.empty()) return absl::StrJoin(unmet, "; ");
  std::vector<std::string> all;
  if (!names.empty()) all.push_back(absl::StrCat("--workers ", names));
  if (!exec.empty()) all.push_back(absl::StrCat("--exec ", exec));
  if (c.kind == v1::TASK_KIND_PYTHON) all.push_back("--kind python");
  if (!labels.empty()) all.push_back(absl::StrCat("labels ", labels));
  return absl::StrCat("no single worker matches all of ", absl::StrJoin(all, ", "));
}

std::vector<Scheduler::Unrunnable> Scheduler::UnrunnableJobs() const {
  absl::MutexLock lock(&mu_);
  std::vector<Unrunnable> out;
  if (queued_ == 0) return out;
  std::vector<const Worker*> ready;
  for (const auto& [session, w] : workers_) {
    if (!w.draining) ready.push_back(&w);
  }
  for (const auto& entry : jobs_) {
    const auto& [id, job] = entry;
    if (job.queued.empty()) continue;
    if (ready.empty()) {
      out.push_back({id, workers_.empty() ? "no worker attached" : "every attached worker is draining"});
      continue;
    }
    // (A lambda may not capture a structured binding in clang 14: use `entry`.)
    const bool runnable =
        std::any_of(ready.begin(), ready.end(), [&](const Worker* w) { return Matches(entry.second, *w); });
    if (!runnable) out.push_back({id, WhyUnrunnable(job, ready)});
  }
  return out;
}

int Scheduler::PrefetchSize(double rtt_seconds, double task_seconds, int slots, bool plenty_queued,
                            int max_prefetch, int max_link_prefetch) {
  // Work per slot to keep queued: the pipeline plus the round trips a
  // result and its replacement spend on the link (many for tiny tasks:
  // assignments and results go in batches).
  const double budget = kPipelineSeconds + kRoundTripMargin * std::max(rtt_seconds, 0.0);
  const double per_slot = budget / std::max(task_seconds, 1e-7);
  // The cap bounds the rate (max_prefetch per kPipelineSeconds of budget),
  // so a far worker's grows with its link, up to max_link_prefetch.
  const double cap = std::min<double>(std::max(max_link_prefetch, 0),
                                      std::floor(std::max(max_prefetch, 0) * budget / kPipelineSeconds));
  const int adaptive = static_cast<int>(std::min(cap, std::floor(per_slot * std::max(slots, 0))));
  // Longer tasks: one ready per slot while plenty are left; near the job's
  // end only those shorter than the budget (no task waits behind another
  // for longer than the link would make its slot idle).
  return plenty_queued ? std::max(adaptive, slots) : adaptive;
}

int Scheduler::PrefetchFor(const Job& job, const Worker& worker, int fleet_slots) const {
  double seconds = job.task_seconds;
  if (seconds < 0) {
    // Before the first result, only a prediction of long tasks is trusted
    // (PredictTaskSeconds).
    if (job.predicted_seconds < kPipelineSeconds) return options_.prefetch_per_worker;
    seconds = job.predicted_seconds;
  }
  // Plenty while more than the fleet's slots are queued. A job alone on
  // the fleet stays plenty while each slot can still get one ready task:
  // its queued tasks and those already waiting behind a running one (its
  // in flight past the slots) number at least the slots. At the very end
  // that readies each slot's last task behind its running one, where
  // waiting for the slot to ask would idle it a round trip; one task short
  // of that, the rest go to whichever slot frees first. Jobs sharing the
  // fleet keep the first rule, so that a freed slot goes to the job with
  // the fewest tasks in flight.
  const size_t slots = static_cast<size_t>(kTailSlotsFactor) * static_cast<size_t>(std::max(fleet_slots, 0));
  const size_t waiting = job.in_flight > slots ? job.in_flight - slots : 0;
  const bool plenty = job.queued.size() > slots || (jobs_.size() == 1 && job.queued.size() + waiting >= slots);
  return PrefetchSize(worker.rtt_seconds, seconds, worker.spec.slots, plenty, options_.max_prefetch,
                      options_.max_link_prefetch);
}

Scheduler::Worker* Scheduler::FindWorkerLocked(absl::string_view session) {
  if (last_worker_ != nullptr && last_worker_->spec.session == session) return last_worker_;
  auto it = workers_.find(session);
  if (it == workers_.end()) return nullptr;
  last_worker_ = &it->second;
  return last_worker_;
}

Scheduler::Job* Scheduler::FindJobLocked(absl::string_view job_id) {
  if (last_job_ != nullptr && last_job_->id == job_id) return last_job_;
  auto it = jobs_.find(job_id);
  if (it == jobs_.end()) return nullptr;
  last_job_ = &it->second;
  return last_job_;
}

void Scheduler::PredictTaskSeconds(absl::string_view job_id, double seconds) {
  absl::MutexLock lock(&mu_);
  Job* job = FindJobLocked(job_id);
  if (job != nullptr && seconds >= 0) job->predicted_seconds = seconds;
}

void Scheduler::ObserveTaskSeconds(absl::string_view job_id, double seconds) {
  ObserveTaskSeconds(job_id, absl::MakeConstSpan(&seconds, 1));
}

void Scheduler::ObserveTaskSeconds(absl::string_view job_id, absl::Span<const double> seconds) {
  absl::MutexLock lock(&mu_);
  Job* job = FindJobLocked(job_id);
  if (job == nullptr) return;
  double& ewma = job->task_seconds;
  // A figure older than the last kEwmaHorizon weighs under 0.8^200 (4e-20)
  // in the average: a long run (a packed group of thousands of results)
  // starts there, for the same average without a dependent multiply and add
  // a task (2.7 % of the coordinator's samples in 100,000-task jobs).
  constexpr size_t kEwmaHorizon = 200;
  if (seconds.size() > kEwmaHorizon) seconds.remove_prefix(seconds.size() - kEwmaHorizon);
  for (const double s : seconds) {
    if (!(s >= 0)) continue;
    ewma = ewma < 0 ? s : 0.8 * ewma + 0.2 * s;
  }
}

Scheduler::Job* Scheduler::PickJob(const Worker& worker, bool prefetch, int fleet_slots) {
  Job* best = nullptr;
  const int in_flight = static_cast<int>(worker.in_flight.size());
  for (auto& [id, job] : jobs_) {
    if (job.queued.empty() || !Eligible(job, worker)) continue;
    if (prefetch && in_flight >= worker.spec.slots + PrefetchFor(job, worker, fleet_slots)) continue;
    if (best == nullptr || job.in_flight < best->in_flight ||
        (job.in_flight == best->in_flight && job.seq < best->seq)) {
      best = &job;
    }
  }
  return best;
}

std::vector<Scheduler::Assignment> Scheduler::Dispatch() {
  std::vector<Assignment> out;
  for (Run& run : DispatchRuns()) {
    for (uint32_t i = 0; i < run.count; ++i) out.push_back({run.session, TaskKey{run.job_id, run.first + i}});
  }
  return out;
}

void Scheduler::TakeLocked(Job& job, Worker& w, size_t take, std::vector<Run>& out) {
  // The run being extended: the last one, if it is this worker's and job's.
  Run* run = nullptr;
  if (!out.empty() && out.back().job_id == job.id && out.back().session == w.spec.session) run = &out.back();
  for (size_t i = 0; i < take && !job.queued.empty(); ++i) {
    const uint32_t index = job.queued.front();
    job.queued.pop_front();
    --queued_;
    ++job.in_flight;
    w.in_flight.Insert(job.id, index);
    if (run != nullptr && run->first + run->count == index) {
      ++run->count;
    } else {
      out.push_back(Run{w.spec.session, job.id, index, 1});
      run = &out.back();
    }
  }
}

std::vector<Scheduler::Run> Scheduler::DispatchRuns() {
  absl::MutexLock lock(&mu_);
  std::vector<Run> out;
  if (queued_ == 0 || workers_.empty()) return out;
  std::vector<Worker*> order;
  order.reserve(workers_.size());
  int fleet_slots = 0;
  for (auto& [session, worker] : workers_) {
    if (worker.draining) continue;
    order.push_back(&worker);
    fleet_slots += worker.spec.slots;
  }
  if (order.empty()) return out;
  // Rotate the starting worker so small jobs do not always land on the first.
  const size_t start = cursor_++ % order.size();
  std::rotate(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(start), order.end());
  for (const bool prefetch : {false, true}) {
    bool progress = true;
    while (progress && queued_ > 0) {
      progress = false;
      for (Worker* w : order) {
        if (!prefetch && static_cast<int>(w->in_flight.size()) >= w->spec.slots) continue;
        Job* job = PickJob(*w, prefetch, fleet_slots);
        if (job == nullptr) continue;
        // Prefetch deals a run of consecutive tasks at a time (one
        // AssignRange on the wire), no more than the worker has room for and
        // its share of the job's queue, so the next worker gets as much.
        size_t take = 1;
        if (prefetch && job->constraints.max_slots == 0) {
          const int room = w->spec.slots + PrefetchFor(*job, *w, fleet_slots) - static_cast<int>(w->in_flight.size());
          take = std::clamp<size_t>(job->queued.size() / order.size(), 1, static_cast<size_t>(std::max(room, 1)));
        }
        TakeLocked(*job, *w, take, out);
        progress = true;
        if (queued_ == 0) break;
      }
    }
  }
  return out;
}

std::optional<std::string> Scheduler::AssignBackup(const TaskKey& task, absl::string_view exclude) {
  absl::MutexLock lock(&mu_);
  auto job = jobs_.find(task.job_id);
  if (job == jobs_.end()) return std::nullopt;
  Worker* best = nullptr;
  for (auto& [session, w] : workers_) {
    if (w.draining || session == exclude || w.in_flight.Contains(task.job_id, task.index)) continue;
    if (static_cast<int>(w.in_flight.size()) >= w.spec.slots) continue;  // a free slot, not prefetch
    if (!Eligible(job->second, w)) continue;
    // The emptiest worker: the backup should not queue behind other work.
    if (best == nullptr || w.spec.slots - static_cast<int>(w.in_flight.size()) >
                               best->spec.slots - static_cast<int>(best->in_flight.size())) {
      best = &w;
    }
  }
  if (best == nullptr) return std::nullopt;
  best->in_flight.Insert(task.job_id, task.index);
  ++job->second.in_flight;
  return best->spec.session;
}

bool Scheduler::Dequeue(const TaskKey& task) {
  absl::MutexLock lock(&mu_);
  auto job = jobs_.find(task.job_id);
  if (job == jobs_.end()) return false;
  if (!job->second.queued.Erase(task.index)) return false;
  --queued_;
  return true;
}

size_t Scheduler::QueuedFor(absl::string_view job_id) const {
  absl::MutexLock lock(&mu_);
  auto job = jobs_.find(job_id);
  return job == jobs_.end() ? 0 : job->second.queued.size();
}

int Scheduler::TotalSlots() const {
  absl::MutexLock lock(&mu_);
  int total = 0;
  for (const auto& [session, w] : workers_) {
    if (!w.draining) total += w.spec.slots;
  }
  return total;
}

int Scheduler::FreeSlots() const {
  absl::MutexLock lock(&mu_);
  int free = 0;
  for (const auto& [session, w] : workers_) {
    if (!w.draining) free += std::max(0, w.spec.slots - static_cast<int>(w.in_flight.size()));
  }
  return free;
}

size_t Scheduler::QueuedTasks() const {
  absl::MutexLock lock(&mu_);
  return queued_;
}

int Scheduler::InFlight(absl::string_view session) const {
  absl::MutexLock lock(&mu_);
  auto it = workers_.find(session);
  return it == workers_.end() ? 0 : static_cast<int>(it->second.in_flight.size());
}

}  // namespace busyfleet::coordinator
