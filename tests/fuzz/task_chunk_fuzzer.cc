// libFuzzer target: ApplyTaskChunk, the SQLite store's reader of task rows
// packed in task_chunks (coordinator/store/task_chunk.h) — what a damaged
// or foreign database file hands it.
//
// Input: 1 byte of task count (0-255: the job's tasks), then the blob.
// ApplyTaskChunk must return OK or DATA_LOSS, never anything else, and on
// OK only change tasks inside the job, to a valid state. Then the round
// trip: the rows it read, written again with TaskChunkWriter and read into
// a fresh job, must read back the same. Anything else (a crash, a sanitizer
// report, a broken property) aborts.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "coordinator/store/task_chunk.h"
#include "google/protobuf/stubs/logging.h"

namespace busyfleet::coordinator {
namespace {

[[noreturn]] void Fail(const char* what, const std::string& detail) {
  std::fprintf(stderr, "task_chunk_fuzzer: %s: %s\n", what, detail.c_str());
  std::abort();
}

void CheckSame(const TaskRecord& a, const TaskRecord& b) {
  const bool same =
      a.index == b.index && static_cast<v1::TaskState>(a.state) == static_cast<v1::TaskState>(b.state) &&
      a.current.number == b.current.number && a.current.slot == b.current.slot &&
      a.current.worker.str() == b.current.worker.str() && a.current.host.str() == b.current.host.str() &&
      a.current.bound_cpus.str() == b.current.bound_cpus.str() &&
      a.current.assigned_at == b.current.assigned_at && a.current.started_at == b.current.started_at &&
      a.current.ended_at == b.current.ended_at && a.current.result_at == b.current.result_at &&
      a.current.cpu_ns == b.current.cpu_ns && a.current.iterations_done == b.current.iterations_done &&
      a.current.start_cpu == b.current.start_cpu && a.current.end_cpu == b.current.end_cpu &&
      a.current.migrated == b.current.migrated && a.speculated == b.speculated && a.backup_won == b.backup_won &&
      a.error() == b.error() && a.failures() == b.failures();
  if (!same) Fail("a row read back differently", "task " + std::to_string(a.index));
}

void Check(uint32_t task_count, const std::string& blob) {
  TaskTable tasks(task_count);
  for (uint32_t i = 0; i < task_count; ++i) tasks[i].index = i;
  const absl::Status s = ApplyTaskChunk(blob, "fuzz", tasks);
  if (!s.ok()) {
    if (s.code() != absl::StatusCode::kDataLoss) Fail("not DATA_LOSS", s.ToString());
    return;
  }
  if (tasks.size() != task_count) Fail("the job changed size", std::to_string(tasks.size()));
  TaskChunkWriter writer;
  for (uint32_t i = 0; i < task_count; ++i) {
    const TaskRecord& t = tasks[i];
    if (t.index != i) Fail("a task moved", std::to_string(i));
    if (!v1::TaskState_IsValid(static_cast<v1::TaskState>(t.state))) Fail("an invalid state", std::to_string(i));
    writer.Add(TaskRow(t));
  }
  TaskTable again(task_count);
  for (uint32_t i = 0; i < task_count; ++i) again[i].index = i;
  const absl::Status back = ApplyTaskChunk(writer.Take(), "fuzz (rewritten)", again);
  if (!back.ok()) Fail("its own rewrite was refused", back.ToString());
  for (uint32_t i = 0; i < task_count; ++i) CheckSame(again[i], tasks[i]);
}

}  // namespace
}  // namespace busyfleet::coordinator

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // Protobuf's complaints about invalid UTF-8 in string fields are expected
  // here; keep the output to what matters.
  google::protobuf::SetLogHandler(nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  busyfleet::coordinator::Check(data[0], std::string(reinterpret_cast<const char*>(data + 1), size - 1));
  return 0;
}
