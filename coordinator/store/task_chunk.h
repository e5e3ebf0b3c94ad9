#ifndef BUSYFLEET_COORDINATOR_STORE_TASK_CHUNK_H_
#define BUSYFLEET_COORDINATOR_STORE_TASK_CHUNK_H_

// Task rows as the SQLite store keeps them since schema version 2 (issue 17):
// a batch of one job's changed rows is one row of task_chunks, its columns
// packed in a busyfleet.store.v1.TaskChunk. A row costs the writer about a
// varint per column instead of a B-tree insert of 25 columns keyed by text,
// and about 20 bytes of file instead of ~120 (chained times and a table of
// rates, TaskChunk.coding 1, since schema version 4; about 33 before).

#include <algorithm>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/wire_format_lite.h"
#include "busyfleet/store/v1/task_chunk.pb.h"
#include "coordinator/core/job_model.h"

namespace busyfleet::coordinator {

struct DealtRow;

// One task's row: what the store writes of a TaskRecord (its current
// attempt), in about 100 bytes. Names are interned; the text columns, empty
// for almost every row, are a cold side record.
struct TaskRow {
  explicit TaskRow(const TaskRecord& t);
  // The row of the task DealtRow keeps (what TaskRow(t) gives for it).
  explicit TaskRow(const DealtRow& d);
  struct Text {
    std::string error;
    std::string failures;      // one line each
    std::string interference;  // v1.Interference serialized; "" when not measured
  };
  WallNs assigned_at;
  WallNs started_at;
  WallNs ended_at;
  WallNs result_at;
  int64_t cpu_ns;
  uint64_t iterations_done;
  double calibrated_rate;
  std::unique_ptr<Text> text;  // null: all three empty
  uint32_t index;
  uint32_t attempt;
  uint32_t slot;
  Name worker;
  Name host;
  Name bound_cpus;
  int16_t start_cpu;
  int16_t end_cpu;
  TaskStateByte state;
  bool speculated;
  bool backup_won;
  bool migrated;
};

// A task just dealt, as its row would say it, in 32 bytes instead of
// TaskRow's 96: the store keeps one for each deal waiting for its result
// (SqliteJobStore::Pending), and with thousands of tasks in flight those
// counted against a million-task job's peak. Only a record that Fits: dealt
// (ASSIGNED), never started nor reported, no speculation, nothing cold
// (errors, failures, history); its other columns are their defaults.
struct DealtRow {
  explicit DealtRow(const TaskRecord& t);
  static bool Fits(const TaskRecord& t);
  WallNs assigned_at;
  uint32_t index;
  uint32_t attempt;
  uint32_t slot;
  Name worker;
  Name host;
};

// A batch's task rows, each task's newest: a task saved again while its row
// is still in the log (dealt, then finished, within one group commit: most
// tasks) has that row replaced, not a second one added. Rows sit in the
// order first saved (a dropped row's place is taken by the next), in
// blocks of kBlockRows: the log grows without copying
// the rows it holds, and without the slack of a vector's doubling (a
// store's backlog, up to 100,000 rows, is one of these). Blocks are of one
// size, under malloc's mmap threshold, so freed ones are reused.
//
// Finding a task's row takes a table by task index, 4 bytes an index of
// the span the rows cover; kept while that span stays within twice the
// rows and kSlackIndices (a job's tasks dealt and finished in runs: almost
// always). Past it the table is dropped and a task saved again gets a
// second row, which ForEachNewestRow skips.
template <typename Row>
class RowLog {
 public:
  static constexpr size_t kBlockRows = 1024;  // about 100 KiB a block
  static constexpr uint64_t kSlackIndices = 16384;  // 64 KiB of table

  // Returns whether a row was added (false: t's task's row was replaced).
  bool Add(const TaskRecord& t);
  // Whether adding a row of task `index` keeps the log indexed().
  bool StaysIndexedWith(uint32_t index) const;
  // Forgets task `index`'s row while indexed() (ForEachNewestRow skips it;
  // it still counts in size(), not in live(), until a row added takes its
  // place); whether there was one. A log with rows dropped stays indexed.
  bool Drop(uint32_t index);
  size_t size() const { return size_; }
  // The rows not dropped.
  size_t live() const { return size_ - dropped_; }
  bool empty() const { return size_ == 0; }
  const Row& operator[](size_t i) const { return blocks_[i / kBlockRows][i % kBlockRows]; }
  // The lowest and highest task index among the rows (meaningful when not
  // empty): kept as rows are added, so the writer need not read them twice.
  uint32_t lowest_index() const { return lowest_; }
  uint32_t highest_index() const { return highest_; }
  // Whether each task has one row at most, found by index: the table below.
  bool indexed() const { return indexed_; }
  // Position + 1 of the row of task base_index() + k at k (0: none), while
  // indexed().
  const std::vector<uint32_t>& positions() const { return where_; }

 private:
  // The widest span of indices the table may cover: twice the rows (and
  // one to come) and kSlackIndices.
  uint64_t SpanLimit() const { return 2 * (uint64_t{size_} + 1) + kSlackIndices; }
  std::vector<std::vector<Row>> blocks_;
  size_t size_ = 0;
  size_t dropped_ = 0;
  std::vector<uint32_t> free_;  // dropped rows' positions
  uint32_t lowest_ = UINT32_MAX;
  uint32_t highest_ = 0;
  std::vector<uint32_t> where_;
  uint64_t base_ = 0;
  bool indexed_ = true;
};

using TaskRowLog = RowLog<TaskRow>;
// The deals that wait for their results (SqliteJobStore::Pending).
using DealtRowLog = RowLog<DealtRow>;

// Calls fn(position) with the position in `rows` of each task's newest row
// (the last saved), in task index order: a walk of the log's table while
// it is indexed; else, for a batch whose indices span at most twice its
// rows, one pass over them and one over the span, with 4 bytes per index
// of the span (at most 8 a row, what a sort's pairs take); any other, a
// sort. Stops at, and returns, fn's first error.
template <typename Row>
absl::Status ForEachNewestRow(const RowLog<Row>& rows, const std::function<absl::Status(uint32_t)>& fn);

// Builds a chunk of rows, in the order added: the bytes of a
// busyfleet.store.v1.TaskChunk of coding 1, written straight into one
// buffer per column (what the generated code would serialize, byte for
// byte, without its repeated fields, their size pass and the copy out of
// them).
class TaskChunkWriter {
 public:
  TaskChunkWriter();
  void Add(const TaskRow& row);
  size_t rows() const { return rows_; }
  uint32_t first_index() const { return first_; }
  uint32_t last_index() const { return last_; }
  // The blob; the writer is empty again after.
  std::string Take();

  // A packed column of varints being written (with protobuf's own wire
  // helpers), room for one more value always kept.
  class Column {
   public:
    void Varint(uint64_t v) {
      Room();
      size_ = static_cast<size_t>(
          google::protobuf::io::CodedOutputStream::WriteVarint64ToArray(v, data_.data() + size_) - data_.data());
    }
    void ZigZag(int64_t v) { Varint(google::protobuf::internal::WireFormatLite::ZigZagEncode64(v)); }
    size_t size() const { return size_; }
    const uint8_t* data() const { return data_.data(); }
    void clear() { size_ = 0; }

   private:
    static constexpr size_t kMaxValue = 10;  // a 64-bit varint's most bytes
    void Room() {
      if (data_.size() - size_ < kMaxValue) data_.resize(std::max<size_t>(256, 2 * data_.size()));
    }
    std::vector<uint8_t> data_;
    size_t size_ = 0;
  };

 private:
  uint32_t NameNumber(Name n);
  uint32_t RateNumber(double rate);
  // A time's column: the time minus `*chain` (which then moves to it), or 0
  // with its bit in `*bits` when it is not set.
  void Time(WallNs t, uint32_t unset, int field, int64_t* chain, uint32_t* bits);
  // TaskChunk's packed fields, 10 (index_delta) to 27 (rate); 26
  // (calibrated_rate, coding 0) stays empty.
  static constexpr int kFirstColumn = 10;
  static constexpr int kColumns = 18;
  Column& col(int field) { return columns_[static_cast<size_t>(field - kFirstColumn)]; }
  std::vector<Column> columns_;
  std::vector<Name> names_;         // field 1: name number k is names_[k - 1]
  std::vector<std::string> texts_;  // field 30: each a serialized TaskChunk.Text
  std::vector<double> rates_;       // field 4: rate number k is rates_[k - 1]
  uint64_t last_rate_bits_ = 0;     // the last rate looked up (its bits) and its number
  uint32_t last_rate_number_ = 0;
  int64_t base_ns_ = 0;
  // Coding 1's chains: the previous set assigned, ended and result times.
  int64_t assigned_chain_ = 0;
  int64_t ended_chain_ = 0;
  int64_t result_chain_ = 0;
  size_t rows_ = 0;
  uint32_t first_ = 0;
  uint32_t last_ = 0;
  bool based_ = false;
};

// Replaces tasks[i] with each row of the chunk `blob`, in order (the
// newest row of a task wins); either coding. DataLoss naming `where` when
// the blob is not a chunk this store wrote: unreadable, a coding it does
// not know, columns of other lengths, a task index outside `tasks`, a
// state, name or rate out of range.
absl::Status ApplyTaskChunk(const std::string& blob, const std::string& where, TaskTable& tasks);

}  // namespace busyfleet::coordinator

#endif  // BUSYFLEET_COORDINATOR_STORE_TASK_CHUNK_H_
