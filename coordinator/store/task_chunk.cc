#include "coordinator/store/task_chunk.h"

#include <algorithm>
#include <bit>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"

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
// TaskChunk.coding: each time minus the base, a double rate per row
// (schema versions 2 and 3); chained times and a table of rates (4).
constexpr uint32_t kCodingFromBase = 0;
constexpr uint32_t kCodingChained = 1;

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

TaskRow::TaskRow(const DealtRow& d)
    : assigned_at(d.assigned_at),
      cpu_ns(0),
      iterations_done(0),
      calibrated_rate(0),
      index(d.index),
      attempt(d.attempt),
      slot(d.slot),
      worker(d.worker),
      host(d.host),
      start_cpu(-1),
      end_cpu(-1),
      state(v1::TASK_STATE_ASSIGNED),
      speculated(false),
      backup_won(false),
      migrated(false) {}

DealtRow::DealtRow(const TaskRecord& t)
    : assigned_at(t.current.assigned_at),
      index(t.index),
      attempt(t.current.number),
      slot(t.current.slot),
      worker(t.current.worker),
      host(t.current.host) {}

bool DealtRow::Fits(const TaskRecord& t) {
  const Attempt& a = t.current;
  return t.state == v1::TASK_STATE_ASSIGNED && !t.cold && !t.speculated && !t.backup_won &&
         !a.started_at.is_set() && !a.ended_at.is_set() && !a.result_at.is_set() && a.cpu_ns == 0 &&
         a.iterations_done == 0 && a.calibrated_rate == 0 && a.bound_cpus.empty() && a.start_cpu == -1 &&
         a.end_cpu == -1 && !a.migrated;
}

TaskChunkWriter::TaskChunkWriter() : columns_(kColumns) {}

uint32_t TaskChunkWriter::NameNumber(Name n) {
  if (n.empty()) return 0;
  for (size_t k = 0; k < names_.size(); ++k) {
    if (names_[k] == n) return static_cast<uint32_t>(k + 1);
  }
  names_.push_back(n);
  return static_cast<uint32_t>(names_.size());
}

uint32_t TaskChunkWriter::RateNumber(double rate) {
  // By the bits, so that any double reads back as it was written.
  const uint64_t bits = std::bit_cast<uint64_t>(rate);
  if (bits == 0) return 0;  // +0.0: none
  if (bits == last_rate_bits_ && last_rate_number_ != 0) return last_rate_number_;
  uint32_t number = 0;
  for (size_t k = 0; k < rates_.size(); ++k) {
    if (std::bit_cast<uint64_t>(rates_[k]) == bits) {
      number = static_cast<uint32_t>(k + 1);
      break;
    }
  }
  if (number == 0) {
    rates_.push_back(rate);
    number = static_cast<uint32_t>(rates_.size());
  }
  last_rate_bits_ = bits;
  last_rate_number_ = number;
  return number;
}

void TaskChunkWriter::Time(WallNs t, uint32_t unset, int field, int64_t* chain, uint32_t* bits) {
  if (!t.is_set()) {
    *bits |= unset;
    col(field).Varint(0);
    return;
  }
  // Times within +-2^62 ns of 1970 (as every time read back is) differ by
  // less than 2^63; wrapping keeps any other pair's difference defined.
  col(field).ZigZag(static_cast<int64_t>(static_cast<uint64_t>(t.unix_ns()) - static_cast<uint64_t>(*chain)));
  *chain = t.unix_ns();
}

void TaskChunkWriter::Add(const TaskRow& row) {
  if (!based_) {
    // The first set time of the chunk's first row: the others are close.
    for (WallNs t : {row.assigned_at, row.started_at, row.ended_at, row.result_at}) {
      if (t.is_set()) {
        base_ns_ = t.unix_ns();
        break;
      }
    }
    assigned_chain_ = ended_chain_ = result_chain_ = base_ns_;
    based_ = true;
    first_ = row.index;
  }
  col(10).ZigZag(rows_ == 0 ? static_cast<int64_t>(row.index)
                            : static_cast<int64_t>(row.index) - static_cast<int64_t>(last_));
  last_ = row.index;
  col(11).Varint(static_cast<uint32_t>(static_cast<v1::TaskState>(row.state)));
  col(12).Varint(row.attempt);
  col(13).Varint(row.slot);
  col(14).Varint(NameNumber(row.worker));
  col(15).Varint(NameNumber(row.host));
  col(16).Varint(NameNumber(row.bound_cpus));
  uint32_t bits = 0;
  Time(row.assigned_at, kAssignedUnset, 17, &assigned_chain_, &bits);
  // Started follows the previous task's end on its slot; ended follows the
  // task's own start (ended_chain_ holds that start once it is set).
  Time(row.started_at, kStartedUnset, 18, &ended_chain_, &bits);
  Time(row.ended_at, kEndedUnset, 19, &ended_chain_, &bits);
  Time(row.result_at, kResultUnset, 20, &result_chain_, &bits);
  if (row.speculated) bits |= kSpeculated;
  if (row.backup_won) bits |= kBackupWon;
  if (row.migrated) bits |= kMigrated;
  col(21).Varint(bits);
  col(22).Varint(static_cast<uint64_t>(row.cpu_ns));  // int64: a negative one takes ten bytes
  col(23).Varint(row.iterations_done);
  col(24).ZigZag(row.start_cpu);  // sint32: the same bytes as sint64 for an int16
  col(25).ZigZag(row.end_cpu);
  col(27).Varint(RateNumber(row.calibrated_rate));
  if (row.text) {  // rare: through the generated message
    store::v1::TaskChunk::Text text;
    text.set_row(static_cast<uint32_t>(rows_));
    text.set_error(row.text->error);
    text.set_failures(row.text->failures);
    text.set_interference(row.text->interference);
    texts_.push_back(text.SerializeAsString());
  }
  ++rows_;
}

std::string TaskChunkWriter::Take() {
  using google::protobuf::internal::WireFormatLite;
  // Fields in number order, as the generated code writes them; a field at
  // its default (an empty column, a zero base) is left out.
  std::string blob;
  {
    google::protobuf::io::StringOutputStream stream(&blob);
    google::protobuf::io::CodedOutputStream out(&stream);
    for (const Name n : names_) WireFormatLite::WriteString(1, n.str(), &out);
    if (base_ns_ != 0) WireFormatLite::WriteInt64(2, base_ns_, &out);
    WireFormatLite::WriteUInt32(3, kCodingChained, &out);
    if (!rates_.empty()) {  // packed doubles
      WireFormatLite::WriteTag(4, WireFormatLite::WIRETYPE_LENGTH_DELIMITED, &out);
      out.WriteVarint32(static_cast<uint32_t>(rates_.size() * sizeof(double)));
      for (const double r : rates_) out.WriteLittleEndian64(std::bit_cast<uint64_t>(r));
    }
    for (int f = kFirstColumn; f < kFirstColumn + kColumns; ++f) {
      Column& c = col(f);
      if (c.size() == 0) continue;
      WireFormatLite::WriteTag(f, WireFormatLite::WIRETYPE_LENGTH_DELIMITED, &out);
      out.WriteVarint32(static_cast<uint32_t>(c.size()));
      out.WriteRaw(c.data(), static_cast<int>(c.size()));
      c.clear();
    }
    for (const std::string& text : texts_) WireFormatLite::WriteBytes(30, text, &out);
  }  // the stream trims the string to what was written
  texts_.clear();
  names_.clear();
  rates_.clear();
  last_rate_number_ = 0;
  base_ns_ = 0;
  rows_ = 0;
  based_ = false;
  return blob;
}

absl::Status ApplyTaskChunk(const std::string& blob, const std::string& where, TaskTable& tasks) {
  store::v1::TaskChunk c;
  if (!c.ParseFromString(blob)) return Bad(where, "is unreadable");
  if (c.coding() != kCodingFromBase && c.coding() != kCodingChained) {
    return Bad(where, absl::StrCat("has coding ", c.coding(), "; this coordinator reads ", kCodingFromBase, " and ",
                                   kCodingChained));
  }
  const bool chained = c.coding() == kCodingChained;
  const int n = c.index_delta_size();
  for (const int size : {c.state_size(), c.attempt_size(), c.slot_size(), c.worker_size(), c.host_size(),
                         c.bound_cpus_size(), c.assigned_ns_size(), c.started_ns_size(), c.ended_ns_size(),
                         c.result_ns_size(), c.bits_size(), c.cpu_ns_size(), c.iterations_done_size(),
                         c.start_cpu_size(), c.end_cpu_size(), chained ? c.rate_size() : c.calibrated_rate_size()}) {
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
  // Coding 1's chains (coding 0 measures every time from the base).
  int64_t assigned_chain = c.base_ns();
  int64_t ended_chain = c.base_ns();
  int64_t result_chain = c.base_ns();
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
    // A time is `delta` past `*chain` (coding 1, the chain moving to it)
    // or past the base (coding 0).
    auto time = [&](int64_t delta, uint32_t unset, int64_t* chain, WallNs* out) {
      if ((bits & unset) != 0) return true;
      const int64_t from = chained ? *chain : c.base_ns();
      int64_t at = 0;
      // Within +-2^62 ns of 1970 (about 146 years): any two differ by less
      // than 2^63, so the writer's deltas never overflow.
      if (__builtin_add_overflow(from, delta, &at) || at <= -kMaxTimeDelta || at >= kMaxTimeDelta) {
        return false;
      }
      *out = absl::FromUnixNanos(at);
      *chain = at;
      return true;
    };
    if (!time(c.assigned_ns(i), kAssignedUnset, &assigned_chain, &t.current.assigned_at) ||
        !time(c.started_ns(i), kStartedUnset, &ended_chain, &t.current.started_at) ||
        !time(c.ended_ns(i), kEndedUnset, &ended_chain, &t.current.ended_at) ||
        !time(c.result_ns(i), kResultUnset, &result_chain, &t.current.result_at)) {
      return Bad(where, "has a time out of range");
    }
    t.speculated = (bits & kSpeculated) != 0;
    t.backup_won = (bits & kBackupWon) != 0;
    t.current.migrated = (bits & kMigrated) != 0;
    t.current.cpu_ns = c.cpu_ns(i);
    t.current.iterations_done = c.iterations_done(i);
    t.current.start_cpu = static_cast<int16_t>(std::clamp(c.start_cpu(i), -1, 32767));
    t.current.end_cpu = static_cast<int16_t>(std::clamp(c.end_cpu(i), -1, 32767));
    if (!chained) {
      t.current.calibrated_rate = static_cast<float>(c.calibrated_rate(i));
    } else if (const uint32_t r = c.rate(i); r != 0) {
      if (r > static_cast<uint32_t>(c.rates_size())) return Bad(where, absl::StrCat("has rate ", r, " of ", c.rates_size()));
      t.current.calibrated_rate = static_cast<float>(c.rates(static_cast<int>(r - 1)));
    }
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

template <typename Row>
bool RowLog<Row>::Add(const TaskRecord& t) {
  const uint64_t index = t.index;
  if (indexed_) {
    if (size_ == 0) base_ = index;
    if (index >= base_ && index - base_ < where_.size() && where_[index - base_] != 0) {
      const uint32_t p = where_[index - base_] - 1;
      blocks_[p / kBlockRows][p % kBlockRows] = Row(t);
      return false;
    }
    const uint64_t lo = std::min(base_, index);
    const uint64_t end = std::max(base_ + where_.size(), index + 1);
    // A log with rows dropped stays indexed whatever its span: only the
    // table knows which rows are gone.
    if (dropped_ == 0 && end - lo > SpanLimit()) {
      indexed_ = false;
      std::vector<uint32_t>().swap(where_);
    } else if (index < base_) {
      // Room below for as many again as the table holds (within the span
      // allowed), so indices that keep falling cost amortized O(1).
      const uint64_t room = std::min(base_ - index + where_.size(), base_);
      const uint64_t allowed = SpanLimit() > end - lo ? SpanLimit() - (end - lo) : 0;
      const uint64_t grow = std::max(base_ - index, std::min(room, base_ - index + allowed));
      std::vector<uint32_t> wider(static_cast<size_t>(grow + where_.size()), 0);
      std::copy(where_.begin(), where_.end(), wider.begin() + static_cast<ptrdiff_t>(grow));
      where_.swap(wider);
      base_ -= grow;
    } else if (index - base_ >= where_.size()) {
      if (dropped_ > 0 && where_.size() == where_.capacity()) {
        // Before the table grows: the rows at its low end dropped (deals
        // whose results came) leave it, so that a log whose rows come and
        // go spans about the rows that stand, not every index it saw.
        size_t gone = 0;
        while (gone < where_.size() && where_[gone] == 0) ++gone;
        if (gone > 0 && gone >= where_.size() / 2) {
          where_.erase(where_.begin(), where_.begin() + static_cast<ptrdiff_t>(gone));
          base_ += gone;
        }
      }
      if (index - base_ == where_.size()) {
        where_.push_back(0);  // the next index (rows come in runs): inlined, not resize's call
      } else {
        where_.resize(static_cast<size_t>(index - base_ + 1), 0);  // grows geometrically
      }
    }
    if (indexed_ && !free_.empty()) {
      // A dropped row's place, so that a log whose rows come and go (the
      // deals that wait for their results) holds only those standing.
      const uint32_t p = free_.back();
      free_.pop_back();
      --dropped_;
      where_[index - base_] = p + 1;
      blocks_[p / kBlockRows][p % kBlockRows] = Row(t);
      lowest_ = std::min(lowest_, t.index);
      highest_ = std::max(highest_, t.index);
      return true;
    }
    if (indexed_) where_[index - base_] = static_cast<uint32_t>(size_ + 1);
  }
  if (blocks_.empty() || blocks_.back().size() == kBlockRows) {
    blocks_.emplace_back().reserve(kBlockRows);
  }
  blocks_.back().emplace_back(t);
  ++size_;
  lowest_ = std::min(lowest_, t.index);
  highest_ = std::max(highest_, t.index);
  return true;
}

template <typename Row>
bool RowLog<Row>::StaysIndexedWith(uint32_t index) const {
  if (!indexed_) return false;
  if (size_ == 0 || dropped_ > 0) return true;
  const uint64_t lo = std::min<uint64_t>(base_, index);
  const uint64_t end = std::max<uint64_t>(base_ + where_.size(), uint64_t{index} + 1);
  return end - lo <= SpanLimit();  // as Add decides
}

template <typename Row>
bool RowLog<Row>::Drop(uint32_t index) {
  if (!indexed_ || size_ == 0 || index < base_ || index - base_ >= where_.size()) return false;
  uint32_t& p = where_[index - base_];
  if (p == 0) return false;
  free_.push_back(p - 1);
  p = 0;
  ++dropped_;
  return true;
}

template <typename Row>
absl::Status ForEachNewestRow(const RowLog<Row>& rows, const std::function<absl::Status(uint32_t)>& fn) {
  if (rows.empty()) return absl::OkStatus();
  if (rows.indexed()) {
    for (const uint32_t p : rows.positions()) {
      if (p != 0) BF_RETURN_IF_ERROR(fn(p - 1));
    }
    return absl::OkStatus();
  }
  const uint32_t lo = rows.lowest_index();
  const uint32_t hi = rows.highest_index();
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

template class RowLog<TaskRow>;
template class RowLog<DealtRow>;
template absl::Status ForEachNewestRow(const RowLog<TaskRow>&, const std::function<absl::Status(uint32_t)>&);
template absl::Status ForEachNewestRow(const RowLog<DealtRow>&, const std::function<absl::Status(uint32_t)>&);

}  // namespace busyfleet::coordinator
