#include "coordinator/store/task_chunk.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"

namespace busyfleet::coordinator {
namespace {

constexpr uint32_t kAssignedUnset = 1u << 0;
constexpr uint32_t kStartedUnset = 1u << 1;
constexpr uint32_t kEndedUnset = 1u << 2;
constexpr uint32_t kResultUnset = 1u << 3;
constexpr uint32_t kSpeculated = 1u << 4;
constexpr uint32_t kBackupWon = 1u << 5;
constexpr uint32_t kMigrated = 1u << 6;
// Times read back stay within this of 1970 (about 146 years).
constexpr int64_t kMaxTimeDelta = int64_t{1} << 62;

absl::Status Bad(const std::string& where, absl::string_view why) {
  return absl::DataLossError(absl::StrCat(where, ": a task chunk ", why));
}

}  // namespace

TaskRow::TaskRow(const TaskRecord& t)
    : assigned_at(t.current.assigned_at),
      started_at(t.current.started_at),
      ended_at(t.current.ended_at),
      result_at(t.current.result_at),
      cpu_ns(t.current.cpu_ns),
      iterations_done(t.current.iterations_done),
      calibrated_rate(t.current.calibrated_rate),
      index(t.index),
      attempt(t.current.number),
      slot(t.current.slot),
      worker(t.current.worker),
      host(t.current.host),
      bound_cpus(t.current.bound_cpus),
      start_cpu(t.current.start_cpu),
      end_cpu(t.current.end_cpu),
      state(t.state),
      speculated(t.speculated),
      backup_won(t.backup_won),
      migrated(t.current.migrated) {
  if (!t.error().empty() || !t.failures().empty() || t.interference()) {
    text = std::make_unique<Text>();
    text->error = t.error();
    text->failures = absl::StrJoin(t.failures(), "\n");
    if (t.interference()) text->interference = t.interference()->SerializeAsString();
  }
}

uint32_t TaskChunkWriter::NameNumber(Name n) {
  if (n.empty()) return 0;
  for (const auto& [id, number] : names_) {
    if (id == n.id()) return number;
  }
  chunk_.add_names(n.str());
  names_.emplace_back(n.id(), static_cast<uint32_t>(chunk_.names_size()));
  return static_cast<uint32_t>(chunk_.names_size());
}

void TaskChunkWriter::Add(const TaskRow& row) {
  if (!based_) {
    // The first set time of the chunk's first row: the others are close.
    for (WallNs t : {row.assigned_at, row.started_at, row.ended_at, row.result_at}) {
      if (t.is_set()) {
        chunk_.set_base_ns(t.unix_ns());
        break;
      }
    }
    based_ = true;
    first_ = row.index;
  }
  const int n = chunk_.index_delta_size();
  chunk_.add_index_delta(n == 0 ? static_cast<int64_t>(row.index)
                                : static_cast<int64_t>(row.index) - static_cast<int64_t>(last_));
  last_ = row.index;
  chunk_.add_state(static_cast<uint32_t>(static_cast<v1::TaskState>(row.state)));
  chunk_.add_attempt(row.attempt);
  chunk_.add_slot(row.slot);
  chunk_.add_worker(NameNumber(row.worker));
  chunk_.add_host(NameNumber(row.host));
  chunk_.add_bound_cpus(NameNumber(row.bound_cpus));
  uint32_t bits = 0;
  auto time = [&](WallNs t, uint32_t unset, auto add) {
    if (!t.is_set()) bits |= unset;
    (chunk_.*add)(t.is_set() ? t.unix_ns() - chunk_.base_ns() : 0);
  };
  time(row.assigned_at, kAssignedUnset, &store::v1::TaskChunk::add_assigned_ns);
  time(row.started_at, kStartedUnset, &store::v1::TaskChunk::add_started_ns);
  time(row.ended_at, kEndedUnset, &store::v1::TaskChunk::add_ended_ns);
  time(row.result_at, kResultUnset, &store::v1::TaskChunk::add_result_ns);
  if (row.speculated) bits |= kSpeculated;
  if (row.backup_won) bits |= kBackupWon;
  if (row.migrated) bits |= kMigrated;
  chunk_.add_bits(bits);
  chunk_.add_cpu_ns(row.cpu_ns);
  chunk_.add_iterations_done(row.iterations_done);
  chunk_.add_start_cpu(row.start_cpu);
  chunk_.add_end_cpu(row.end_cpu);
  chunk_.add_calibrated_rate(row.calibrated_rate);
  if (row.text) {
    store::v1::TaskChunk::Text& text = *chunk_.add_text();
    text.set_row(static_cast<uint32_t>(n));
    text.set_error(row.text->error);
    text.set_failures(row.text->failures);
    text.set_interference(row.text->interference);
  }
}

std::string TaskChunkWriter::Take() {
  std::string blob = chunk_.SerializeAsString();
  chunk_.Clear();
  names_.clear();
  based_ = false;
  return blob;
}

absl::Status ApplyTaskChunk(const std::string& blob, const std::string& where, std::vector<TaskRecord>& tasks) {
  store::v1::TaskChunk c;
  if (!c.ParseFromString(blob)) return Bad(where, "is unreadable");
  const int n = c.index_delta_size();
  for (const int size : {c.state_size(), c.attempt_size(), c.slot_size(), c.worker_size(), c.host_size(),
                         c.bound_cpus_size(), c.assigned_ns_size(), c.started_ns_size(), c.ended_ns_size(),
                         c.result_ns_size(), c.bits_size(), c.cpu_ns_size(), c.iterations_done_size(),
                         c.start_cpu_size(), c.end_cpu_size(), c.calibrated_rate_size()}) {
    if (size != n) return Bad(where, absl::StrCat("has a column of ", size, " rows, not ", n));
  }
  if (c.base_ns() <= -kMaxTimeDelta || c.base_ns() >= kMaxTimeDelta) return Bad(where, "has a base time out of range");
  std::vector<Name> names;
  names.reserve(static_cast<size_t>(c.names_size()) + 1);
  names.emplace_back();
  for (const std::string& s : c.names()) names.emplace_back(s);
  auto name = [&](uint32_t number, Name* out) {
    if (number >= names.size()) return false;
    *out = names[number];
    return true;
  };
  std::vector<const store::v1::TaskChunk::Text*> texts(static_cast<size_t>(n), nullptr);
  for (const store::v1::TaskChunk::Text& t : c.text()) {
    if (t.row() >= static_cast<uint32_t>(n)) return Bad(where, absl::StrCat("has text for row ", t.row(), " of ", n));
    texts[t.row()] = &t;
  }
  int64_t index = 0;
  for (int i = 0; i < n; ++i) {
    const int64_t step = c.index_delta(i);
    if (step <= -(int64_t{1} << 33) || step >= (int64_t{1} << 33)) return Bad(where, "has an index step out of range");
    index = i == 0 ? step : index + step;
    if (index < 0 || index >= static_cast<int64_t>(tasks.size())) {
      return Bad(where, absl::StrCat("has a row for task ", index, " of ", tasks.size()));
    }
    if (!v1::TaskState_IsValid(static_cast<int>(c.state(i))) || c.state(i) > 255) {
      return Bad(where, absl::StrCat("has a row in state ", c.state(i)));
    }
    TaskRecord t;
    t.index = static_cast<uint32_t>(index);
    t.state = static_cast<v1::TaskState>(c.state(i));
    t.current.number = c.attempt(i);
    t.current.slot = c.slot(i);
    if (!name(c.worker(i), &t.current.worker) || !name(c.host(i), &t.current.host) ||
        !name(c.bound_cpus(i), &t.current.bound_cpus)) {
      return Bad(where, "names a string it does not have");
    }
    const uint32_t bits = c.bits(i);
    auto time = [&](int64_t delta, uint32_t unset, WallNs* out) {
      if ((bits & unset) != 0) return true;
      int64_t at = 0;
      // Within +-2^62 ns of 1970 (about 146 years): any two differ by less
      // than 2^63, so the writer's deltas never overflow.
      if (__builtin_add_overflow(c.base_ns(), delta, &at) || at <= -kMaxTimeDelta || at >= kMaxTimeDelta) {
        return false;
      }
      *out = absl::FromUnixNanos(at);
      return true;
    };
    if (!time(c.assigned_ns(i), kAssignedUnset, &t.current.assigned_at) ||
        !time(c.started_ns(i), kStartedUnset, &t.current.started_at) ||
        !time(c.ended_ns(i), kEndedUnset, &t.current.ended_at) ||
        !time(c.result_ns(i), kResultUnset, &t.current.result_at)) {
      return Bad(where, "has a time out of range");
    }
    t.speculated = (bits & kSpeculated) != 0;
    t.backup_won = (bits & kBackupWon) != 0;
    t.current.migrated = (bits & kMigrated) != 0;
    t.current.cpu_ns = c.cpu_ns(i);
    t.current.iterations_done = c.iterations_done(i);
    t.current.start_cpu = static_cast<int16_t>(std::clamp(c.start_cpu(i), -1, 32767));
    t.current.end_cpu = static_cast<int16_t>(std::clamp(c.end_cpu(i), -1, 32767));
    t.current.calibrated_rate = c.calibrated_rate(i);
    if (const store::v1::TaskChunk::Text* text = texts[static_cast<size_t>(i)]) {
      t.set_error(text->error());
      if (!text->failures().empty()) t.mutable_failures() = absl::StrSplit(text->failures(), '\n');
      if (!text->interference().empty()) {
        v1::Interference m;
        if (m.ParseFromString(text->interference())) t.set_interference(std::move(m));  // unreadable: not measured
      }
    }
    tasks[static_cast<size_t>(index)] = std::move(t);
  }
  return absl::OkStatus();
}

absl::Status ForEachNewestRow(const TaskRowLog& rows, const std::function<absl::Status(uint32_t)>& fn) {
  if (rows.empty()) return absl::OkStatus();
  uint32_t lo = UINT32_MAX;
  uint32_t hi = 0;
  for (size_t p = 0; p < rows.size(); ++p) {
    lo = std::min(lo, rows[p].index);
    hi = std::max(hi, rows[p].index);
  }
  const uint64_t span = uint64_t{hi} - lo + 1;
  if (span <= 2 * static_cast<uint64_t>(rows.size())) {
    // A later row of an index overwrites an earlier one's position.
    std::vector<uint32_t> newest(static_cast<size_t>(span), UINT32_MAX);
    for (size_t p = 0; p < rows.size(); ++p) newest[rows[p].index - lo] = static_cast<uint32_t>(p);
    for (const uint32_t p : newest) {
      if (p != UINT32_MAX) BF_RETURN_IF_ERROR(fn(p));
    }
    return absl::OkStatus();
  }
  std::vector<std::pair<uint32_t, uint32_t>> order;  // (task index, position saved)
  order.reserve(rows.size());
  for (size_t p = 0; p < rows.size(); ++p) order.emplace_back(rows[p].index, static_cast<uint32_t>(p));
  std::sort(order.begin(), order.end());
  for (size_t k = 0; k < order.size(); ++k) {
    if (k + 1 < order.size() && order[k + 1].first == order[k].first) continue;  // a newer one follows
    BF_RETURN_IF_ERROR(fn(order[k].second));
  }
  return absl::OkStatus();
}

}  // namespace busyfleet::coordinator
