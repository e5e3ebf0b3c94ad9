// The SQLite store's chunked task rows (coordinator/store/task_chunk.h).
#include "coordinator/store/task_chunk.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "tests/testing/status_matchers.h"

namespace busyfleet::coordinator {
namespace {

using ::testing::HasSubstr;

std::vector<TaskRecord> Varied() {
  const absl::Time t0 = absl::FromUnixSeconds(1'800'000'000) + absl::Nanoseconds(17);
  std::vector<TaskRecord> out(6);
  for (uint32_t i = 0; i < out.size(); ++i) out[i].index = i;
  // A plain success.
  out[0].state = v1::TASK_STATE_SUCCEEDED;
  out[0].current.number = 1;
  out[0].current.worker = "w1";
  out[0].current.host = "h1";
  out[0].current.slot = 3;
  out[0].current.assigned_at = t0;
  out[0].current.started_at = t0 + absl::Microseconds(5);
  out[0].current.ended_at = t0 + absl::Microseconds(9);
  out[0].current.result_at = t0 + absl::Microseconds(40);
  out[0].current.cpu_ns = 4000;
  out[0].current.iterations_done = 123456789;
  out[0].current.start_cpu = 1;
  out[0].current.end_cpu = 0;
  out[0].current.migrated = true;
  out[0].current.bound_cpus = "0-1";
  out[0].current.calibrated_rate = 3.4e9;
  // Assigned, not started: only one time set; another worker.
  out[1].state = v1::TASK_STATE_ASSIGNED;
  out[1].current.number = 7;
  out[1].current.worker = "w2";
  out[1].current.host = "h1";
  out[1].current.assigned_at = t0 - absl::Hours(30);
  // Failed, with text, speculation flags and interference; times before the base.
  out[3].state = v1::TASK_STATE_FAILED;
  out[3].current.number = 3;
  out[3].current.worker = "w1";
  out[3].current.assigned_at = t0 - absl::Seconds(2);
  out[3].current.started_at = t0 - absl::Seconds(1);
  out[3].set_error("attempt 3 on worker w1: boom");
  out[3].mutable_failures() = {"attempt 1: lost", "attempt 2: boom"};
  out[3].speculated = true;
  out[3].backup_won = true;
  v1::Interference m;
  m.set_involuntary_switches(9);
  m.set_steal_ns(77);
  out[3].set_interference(m);
  // 2, 4, 5: never assigned (queued).
  return out;
}

void ExpectSameRow(const TaskRecord& a, const TaskRecord& b) {
  EXPECT_EQ(a.index, b.index);
  EXPECT_EQ(static_cast<v1::TaskState>(a.state), static_cast<v1::TaskState>(b.state));
  EXPECT_EQ(a.current.number, b.current.number);
  EXPECT_EQ(a.current.worker.str(), b.current.worker.str());
  EXPECT_EQ(a.current.host.str(), b.current.host.str());
  EXPECT_EQ(a.current.bound_cpus.str(), b.current.bound_cpus.str());
  EXPECT_EQ(a.current.slot, b.current.slot);
  EXPECT_EQ(a.current.assigned_at.time(), b.current.assigned_at.time());
  EXPECT_EQ(a.current.started_at.time(), b.current.started_at.time());
  EXPECT_EQ(a.current.ended_at.time(), b.current.ended_at.time());
  EXPECT_EQ(a.current.result_at.time(), b.current.result_at.time());
  EXPECT_EQ(a.current.cpu_ns, b.current.cpu_ns);
  EXPECT_EQ(a.current.iterations_done, b.current.iterations_done);
  EXPECT_EQ(a.current.start_cpu, b.current.start_cpu);
  EXPECT_EQ(a.current.end_cpu, b.current.end_cpu);
  EXPECT_EQ(a.current.migrated, b.current.migrated);
  EXPECT_EQ(a.current.calibrated_rate, b.current.calibrated_rate);
  EXPECT_EQ(a.error(), b.error());
  EXPECT_EQ(a.failures(), b.failures());
  EXPECT_EQ(a.speculated, b.speculated);
  EXPECT_EQ(a.backup_won, b.backup_won);
  ASSERT_EQ(a.interference() != nullptr, b.interference() != nullptr);
  if (a.interference() != nullptr) {
    EXPECT_EQ(a.interference()->SerializeAsString(), b.interference()->SerializeAsString());
  }
}

TEST(TaskChunkTest, RowsReadBackFieldForField) {
  const std::vector<TaskRecord> in = Varied();
  TaskChunkWriter w;
  for (uint32_t i : {3u, 0u, 1u}) w.Add(TaskRow(in[i]));  // any order
  EXPECT_EQ(w.rows(), 3u);
  EXPECT_EQ(w.first_index(), 3u);
  EXPECT_EQ(w.last_index(), 1u);
  const std::string blob = w.Take();
  EXPECT_EQ(w.rows(), 0u);
  std::vector<TaskRecord> out(in.size());
  for (uint32_t i = 0; i < out.size(); ++i) out[i].index = i;
  ASSERT_TRUE(ApplyTaskChunk(blob, "here", out).ok()) << ApplyTaskChunk(blob, "here", out);
  for (uint32_t i = 0; i < in.size(); ++i) {
    SCOPED_TRACE(i);
    ExpectSameRow(out[i], in[i]);
  }
}

TEST(TaskChunkTest, ALaterRowOfATaskWins) {
  std::vector<TaskRecord> in = Varied();
  TaskChunkWriter w;
  w.Add(TaskRow(in[1]));
  in[1].state = v1::TASK_STATE_SUCCEEDED;
  in[1].current.cpu_ns = 99;
  w.Add(TaskRow(in[1]));
  std::vector<TaskRecord> out(in.size());
  ASSERT_TRUE(ApplyTaskChunk(w.Take(), "here", out).ok());
  EXPECT_EQ(static_cast<v1::TaskState>(out[1].state), v1::TASK_STATE_SUCCEEDED);
  EXPECT_EQ(out[1].current.cpu_ns, 99);
}

TEST(TaskChunkTest, AThousandPlainRowsTakeAboutFortyBytesEach) {
  std::vector<TaskRecord> in(1000);
  const absl::Time t0 = absl::FromUnixSeconds(1'800'000'000);
  TaskChunkWriter w;
  for (uint32_t i = 0; i < in.size(); ++i) {
    TaskRecord& t = in[i];
    t.index = i;
    t.state = v1::TASK_STATE_SUCCEEDED;
    t.current.number = 1;
    t.current.worker = i % 2 ? "worker-1" : "worker-2";
    t.current.host = "node-17.example";
    t.current.slot = i % 2;
    t.current.assigned_at = t0 + absl::Microseconds(3 * i);
    t.current.started_at = t0 + absl::Microseconds(3 * i + 1);
    t.current.ended_at = t0 + absl::Microseconds(3 * i + 1) + absl::Nanoseconds(30);
    t.current.result_at = t0 + absl::Microseconds(3 * i + 2);
    t.current.cpu_ns = 30;
    t.current.start_cpu = t.current.end_cpu = static_cast<int16_t>(i % 2);
    w.Add(TaskRow(t));
  }
  const std::string blob = w.Take();
  EXPECT_LT(blob.size(), 45'000u);
  std::vector<TaskRecord> out(in.size());
  ASSERT_TRUE(ApplyTaskChunk(blob, "here", out).ok());
  for (uint32_t i = 0; i < in.size(); i += 97) ExpectSameRow(out[i], in[i]);
}

TEST(TaskChunkTest, WhatIsNotAChunkOfThisJobIsDataLoss) {
  std::vector<TaskRecord> in = Varied();
  std::vector<TaskRecord> small(2);
  TaskChunkWriter w;
  w.Add(TaskRow(in[3]));
  const std::string blob = w.Take();
  EXPECT_THAT(std::string(ApplyTaskChunk(blob, "job j", small).message()),
              HasSubstr("job j: a task chunk has a row for task 3 of 2"));
  EXPECT_EQ(ApplyTaskChunk("\xff\xff", "job j", small).code(), absl::StatusCode::kDataLoss);
  store::v1::TaskChunk c;
  ASSERT_TRUE(c.ParseFromString(blob));
  c.mutable_cpu_ns()->RemoveLast();
  EXPECT_THAT(std::string(ApplyTaskChunk(c.SerializeAsString(), "job j", in).message()),
              HasSubstr("has a column of 0 rows, not 1"));
  ASSERT_TRUE(c.ParseFromString(blob));
  c.set_worker(0, 9);
  EXPECT_THAT(std::string(ApplyTaskChunk(c.SerializeAsString(), "job j", in).message()),
              HasSubstr("names a string it does not have"));
  ASSERT_TRUE(c.ParseFromString(blob));
  c.set_state(0, 99);
  EXPECT_THAT(std::string(ApplyTaskChunk(c.SerializeAsString(), "job j", in).message()), HasSubstr("in state 99"));
  ASSERT_TRUE(c.ParseFromString(blob));
  c.set_assigned_ns(0, INT64_MAX);
  EXPECT_THAT(std::string(ApplyTaskChunk(c.SerializeAsString(), "job j", in).message()),
              HasSubstr("has a time out of range"));
  ASSERT_TRUE(c.ParseFromString(blob));
  c.mutable_text(0)->set_row(5);
  EXPECT_THAT(std::string(ApplyTaskChunk(c.SerializeAsString(), "job j", in).message()),
              HasSubstr("has text for row 5 of 1"));
}

// The store's backlog log keeps rows in the order added, across blocks,
// each one the row of the record as it was when added.
TEST(TaskRowLogTest, KeepsRowsInOrderAcrossBlocks) {
  TaskRowLog log;
  EXPECT_TRUE(log.empty());
  const size_t n = 2 * TaskRowLog::kBlockRows + 3;
  TaskRecord t;
  t.state = v1::TASK_STATE_SUCCEEDED;
  t.current.worker = "w1";
  for (size_t i = 0; i < n; ++i) {
    t.index = static_cast<uint32_t>(i % 7);  // repeats, as a task changed twice
    t.current.number = static_cast<uint32_t>(i + 1);
    log.Add(t);
  }
  t.current.number = 0;  // the log holds copies, not references
  ASSERT_EQ(log.size(), n);
  EXPECT_FALSE(log.empty());
  for (size_t i = 0; i < n; ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(log[i].index, i % 7);
    EXPECT_EQ(log[i].attempt, i + 1);
    EXPECT_EQ(log[i].worker, "w1");
  }
}

// What WriteChangedTasks writes of a batch: each task's last row, in index
// order, against a plain map, for batches of runs (the dense way) and of
// scattered indices (the sort), with repeats.
TEST(NewestRowsTest, EachTaskOnceAsItsLastRowInIndexOrder) {
  std::mt19937 rng(17);
  struct Case {
    uint32_t base, span, rows;
  };
  // Dealt then finished in runs (the span is the rows / 2); a run near the
  // top of the index range; scattered over a wide span; one row.
  for (const Case c : {Case{1000, 3000, 6000}, Case{UINT32_MAX - 2000, 2001, 4000}, Case{0, 1u << 30, 5000},
                       Case{42, 1, 1}}) {
    SCOPED_TRACE(c.base);
    TaskRowLog log;
    std::map<uint32_t, uint32_t> want;  // index -> attempt of its last row
    TaskRecord t;
    for (uint32_t p = 0; p < c.rows; ++p) {
      t.index = c.base + static_cast<uint32_t>(rng() % c.span);
      t.current.number = p + 1;  // tells the rows apart
      log.Add(t);
      want[t.index] = p + 1;
    }
    std::vector<uint32_t> got;
    ASSERT_OK(ForEachNewestRow(log, [&](uint32_t p) {
      got.push_back(p);
      return absl::OkStatus();
    }));
    ASSERT_EQ(got.size(), want.size());
    auto it = want.begin();
    for (const uint32_t p : got) {
      EXPECT_EQ(log[p].index, it->first);
      EXPECT_EQ(log[p].attempt, it->second);
      ++it;
    }
  }
  int calls = 0;
  ASSERT_OK(ForEachNewestRow(TaskRowLog(), [&](uint32_t) {
    ++calls;
    return absl::OkStatus();
  }));
  EXPECT_EQ(calls, 0);
  // fn's first error stops the walk (a chunk that could not be written).
  TaskRowLog two;
  TaskRecord t;
  two.Add(t);
  t.index = 1;
  two.Add(t);
  const absl::Status stop = ForEachNewestRow(two, [&](uint32_t) {
    ++calls;
    return absl::UnavailableError("disk I/O error");
  });
  EXPECT_EQ(stop.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(calls, 1);
}

}  // namespace
}  // namespace busyfleet::coordinator
