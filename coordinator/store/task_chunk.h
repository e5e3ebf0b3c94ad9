#ifndef BUSYFLEET_COORDINATOR_STORE_TASK_CHUNK_H_
#define BUSYFLEET_COORDINATOR_STORE_TASK_CHUNK_H_

// Task rows as the SQLite store keeps them since schema version 2 (issue 17):
// a batch of one job's changed rows is one row of task_chunks, its columns
// packed in a busyfleet.store.v1.TaskChunk. A row costs the writer about a
// varint per column instead of a B-tree insert of 25 columns keyed by text,
// and about 40 bytes of file instead of ~120.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "busyfleet/store/v1/task_chunk.pb.h"
#include "coordinator/core/job_model.h"

namespace busyfleet::coordinator {

// One task's row: what the store writes of a TaskRecord (its current
// attempt), in about 100 bytes. Names are interned; the text columns, empty
// for almost every row, are a cold side record.
struct TaskRow {
  explicit TaskRow(const TaskRecord& t);
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

// Rows in the order saved, in blocks of kBlockRows: it grows without
// copying the rows it holds, and without the slack of a vector's doubling
// (a store's backlog, up to 100,000 rows, is one of these). Blocks are
// of one size, under malloc's mmap threshold, so freed ones are reused.
class TaskRowLog {
 public:
  static constexpr size_t kBlockRows = 1024;  // about 100 KiB a block

  void Add(const TaskRecord& t) {
    if (blocks_.empty() || blocks_.back().size() == kBlockRows) {
      blocks_.emplace_back().reserve(kBlockRows);
    }
    blocks_.back().emplace_back(t);
    ++size_;
  }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  const TaskRow& operator[](size_t i) const { return blocks_[i / kBlockRows][i % kBlockRows]; }

 private:
  std::vector<std::vector<TaskRow>> blocks_;
  size_t size_ = 0;
};

// Calls fn(position) with the position in `rows` of each task's newest row
// (the last saved), in task index order. A batch whose indices span at
// most twice its rows (a job's tasks dealt and finished in runs: almost
// always) takes one pass over them and one over the span, with 4 bytes per
// index of the span (at most 8 a row, what a sort's pairs take); any
// other, a sort. Stops at, and returns, fn's first error.
absl::Status ForEachNewestRow(const TaskRowLog& rows, const std::function<absl::Status(uint32_t)>& fn);

// Builds a chunk of rows, in the order added.
class TaskChunkWriter {
 public:
  void Add(const TaskRow& row);
  size_t rows() const { return static_cast<size_t>(chunk_.index_delta_size()); }
  uint32_t first_index() const { return first_; }
  uint32_t last_index() const { return last_; }
  // The blob; the writer is empty again after.
  std::string Take();

 private:
  uint32_t NameNumber(Name n);
  store::v1::TaskChunk chunk_;
  std::vector<std::pair<uint32_t, uint32_t>> names_;  // Name id -> position + 1
  uint32_t first_ = 0;
  uint32_t last_ = 0;
  bool based_ = false;
};

// Replaces tasks[i] with each row of the chunk `blob`, in order (the
// newest row of a task wins). DataLoss naming `where` when the blob is not a
// chunk this store wrote: unreadable, columns of other lengths, a task
// index outside `tasks`, a state or name out of range.
absl::Status ApplyTaskChunk(const std::string& blob, const std::string& where, std::vector<TaskRecord>& tasks);

}  // namespace busyfleet::coordinator

#endif  // BUSYFLEET_COORDINATOR_STORE_TASK_CHUNK_H_
