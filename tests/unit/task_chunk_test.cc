// The SQLite store's chunked task rows (coordinator/store/task_chunk.h).
#include "coordinator/store/task_chunk.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_join.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/task_chunk_reference.h"

namespace busyfleet::coordinator {
namespace {

using ::testing::HasSubstr;

TaskTable Varied() {
  const absl::Time t0 = absl::FromUnixSeconds(1'800'000'000) + absl::Nanoseconds(17);
  TaskTable out(6);
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
  const TaskTable in = Varied();
  TaskChunkWriter w;
  for (uint32_t i : {3u, 0u, 1u}) w.Add(TaskRow(in[i]));  // any order
  EXPECT_EQ(w.rows(), 3u);
  EXPECT_EQ(w.first_index(), 3u);
  EXPECT_EQ(w.last_index(), 1u);
  const std::string blob = w.Take();
  EXPECT_EQ(w.rows(), 0u);
  TaskTable out(in.size());
  for (uint32_t i = 0; i < out.size(); ++i) out[i].index = i;
  ASSERT_TRUE(ApplyTaskChunk(blob, "here", out).ok()) << ApplyTaskChunk(blob, "here", out);
  for (uint32_t i = 0; i < in.size(); ++i) {
    SCOPED_TRACE(i);
    ExpectSameRow(out[i], in[i]);
  }
}

TEST(TaskChunkTest, ALaterRowOfATaskWins) {
  TaskTable in = Varied();
  TaskChunkWriter w;
  w.Add(TaskRow(in[1]));
  in[1].state = v1::TASK_STATE_SUCCEEDED;
  in[1].current.cpu_ns = 99;
  w.Add(TaskRow(in[1]));
  TaskTable out(in.size());
  ASSERT_TRUE(ApplyTaskChunk(w.Take(), "here", out).ok());
  EXPECT_EQ(static_cast<v1::TaskState>(out[1].state), v1::TASK_STATE_SUCCEEDED);
  EXPECT_EQ(out[1].current.cpu_ns, 99);
}

TEST(TaskChunkTest, AThousandPlainRowsTakeAboutTwentyBytesEach) {
  TaskTable in(1000);
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
    t.current.calibrated_rate = i % 2 ? 3.4e9f : 3.1e9f;
    w.Add(TaskRow(t));
  }
  const std::string blob = w.Take();
  // Coding 1: 12 one-byte columns, the times 2 + 2 + 1 + 2 bytes, the rate
  // one byte; coding 0 took about 40.
  EXPECT_LT(blob.size(), 21'000u);
  TaskTable out(in.size());
  ASSERT_TRUE(ApplyTaskChunk(blob, "here", out).ok());
  for (uint32_t i = 0; i < in.size(); i += 97) ExpectSameRow(out[i], in[i]);
}

// Rows over each column's whole range: unset and far times, names empty and
// shared, negative CPU time and CPUs, the largest counts, text in any of
// its three parts (and on the chunk's first row, whose row number is 0).
TaskTable RandomRows(std::mt19937_64& rng, size_t n) {
  const char* names[] = {"", "w1", "worker-two", "h", "0-3,8"};
  const int64_t t0 = 1'800'000'000'000'000'000;
  TaskTable out(n);
  auto pick = [&](uint64_t k) { return rng() % k; };
  for (TaskRecord& t : out) {
    t.index = pick(4) == 0 ? static_cast<uint32_t>(rng()) : static_cast<uint32_t>(pick(5000));
    t.state = static_cast<v1::TaskState>(pick(7));
    t.current.number = pick(8) == 0 ? UINT32_MAX : static_cast<uint32_t>(pick(4));
    t.current.slot = static_cast<uint32_t>(pick(300));
    t.current.worker = names[pick(5)];
    t.current.host = names[pick(5)];
    t.current.bound_cpus = names[pick(5)];
    for (WallNs* w : {&t.current.assigned_at, &t.current.started_at, &t.current.ended_at, &t.current.result_at}) {
      const uint64_t kind = pick(4);
      if (kind == 0) continue;  // not set
      const int64_t spread = kind == 1 ? int64_t{1} << 20 : kind == 2 ? int64_t{1} << 40 : int64_t{1} << 58;
      *w = WallNs::FromUnixNanos(t0 + static_cast<int64_t>(rng() % static_cast<uint64_t>(spread)) - spread / 2);
    }
    t.current.cpu_ns = pick(6) == 0 ? -static_cast<int64_t>(pick(1000)) : static_cast<int64_t>(pick(1u << 30));
    t.current.iterations_done = pick(5) == 0 ? UINT64_MAX : pick(1000);
    t.current.start_cpu = static_cast<int16_t>(static_cast<int>(pick(40)) - 1);
    t.current.end_cpu = pick(9) == 0 ? int16_t{32767} : static_cast<int16_t>(static_cast<int>(pick(40)) - 1);
    t.current.calibrated_rate = pick(3) == 0 ? 0.0 : static_cast<double>(rng()) / 3.0;
    t.current.migrated = pick(2) == 0;
    t.speculated = pick(5) == 0;
    t.backup_won = pick(7) == 0;
    const uint64_t text = pick(10);
    if (text == 1) t.set_error("attempt 2 on worker w1: boom");
    if (text == 2) t.mutable_failures() = {"attempt 1: lost", "attempt 2: deadline exceeded"};
    if (text == 3) {
      v1::Interference m;
      m.set_steal_ns(pick(1u << 20));
      t.set_interference(m);
    }
  }
  return out;
}

TEST(TaskChunkTest, TheWriterWritesWhatTheGeneratedCodeWouldByteForByte) {
  std::mt19937_64 rng(1717);
  TaskChunkWriter w;  // one writer for every chunk: Take leaves nothing behind
  for (const size_t n : {size_t{1}, size_t{2}, size_t{37}, size_t{1000}, size_t{4096}, size_t{0}}) {
    for (int round = 0; round < 3; ++round) {
      SCOPED_TRACE(::testing::Message() << n << " rows, round " << round);
      const TaskTable rows = RandomRows(rng, n);
      for (const TaskRecord& t : rows) w.Add(TaskRow(t));
      ASSERT_EQ(w.rows(), n);
      const std::string blob = w.Take();
      ASSERT_EQ(blob, ReferenceChunk(rows));
      EXPECT_EQ(w.rows(), 0u);
    }
  }
}

// Random rows, each task once, read back from the writer's chunk and from
// one of coding 0 (what a version 3 file holds).
TEST(TaskChunkTest, RandomRowsReadBackFieldForFieldInEitherCoding) {
  std::mt19937_64 rng(4242);
  for (const bool from_base : {false, true}) {
    SCOPED_TRACE(from_base ? "coding 0" : "coding 1");
    TaskTable rows = RandomRows(rng, 3000);
    std::vector<uint32_t> order(rows.size());
    for (uint32_t i = 0; i < order.size(); ++i) order[i] = i;
    std::shuffle(order.begin(), order.end(), rng);
    for (size_t k = 0; k < rows.size(); ++k) rows[k].index = order[k];
    std::string blob;
    if (from_base) {
      blob = ReferenceChunk(rows, true);
    } else {
      TaskChunkWriter w;
      for (const TaskRecord& t : rows) w.Add(TaskRow(t));
      blob = w.Take();
    }
    TaskTable out(rows.size());
    ASSERT_TRUE(ApplyTaskChunk(blob, "here", out).ok()) << ApplyTaskChunk(blob, "here", out);
    for (const TaskRecord& t : rows) {
      SCOPED_TRACE(t.index);
      ExpectSameRow(out[t.index], t);
    }
  }
}

TEST(TaskChunkTest, WhatIsNotAChunkOfThisJobIsDataLoss) {
  TaskTable in = Varied();
  TaskTable small(2);
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
  c.set_rate(0, 9);
  EXPECT_THAT(std::string(ApplyTaskChunk(c.SerializeAsString(), "job j", in).message()), HasSubstr("has rate 9 of 0"));
  ASSERT_TRUE(c.ParseFromString(blob));
  c.set_coding(7);
  EXPECT_THAT(std::string(ApplyTaskChunk(c.SerializeAsString(), "job j", in).message()),
              HasSubstr("has coding 7; this coordinator reads 0 and 1"));
  ASSERT_TRUE(c.ParseFromString(blob));
  c.mutable_text(0)->set_row(5);
  EXPECT_THAT(std::string(ApplyTaskChunk(c.SerializeAsString(), "job j", in).message()),
              HasSubstr("has text for row 5 of 1"));
}

// A deal kept as a DealtRow writes what its full row would, byte for byte;
// a record with anything more than a deal's columns does not fit.
TEST(DealtRowTest, ADealWritesAsItsFullRowAndOnlyADealFits) {
  TaskRecord t;
  t.index = 41;
  t.state = v1::TASK_STATE_ASSIGNED;
  t.current.number = 3;
  t.current.slot = 2;
  t.current.worker = "w7";
  t.current.host = "node-7";
  t.current.assigned_at = absl::FromUnixSeconds(1'800'000'000) + absl::Nanoseconds(5);
  ASSERT_TRUE(DealtRow::Fits(t));
  TaskChunkWriter full, dealt;
  full.Add(TaskRow(t));
  dealt.Add(TaskRow(DealtRow(t)));
  EXPECT_EQ(full.Take(), dealt.Take());
  std::vector<std::function<void(TaskRecord&)>> more = {
      [](TaskRecord& r) { r.state = v1::TASK_STATE_RUNNING; },
      [](TaskRecord& r) { r.set_error("boom"); },
      [](TaskRecord& r) { r.mutable_failures().push_back("attempt 1: lost"); },
      [](TaskRecord& r) { r.speculated = true; },
      [](TaskRecord& r) { r.backup_won = true; },
      [](TaskRecord& r) { r.current.started_at = absl::FromUnixSeconds(1'800'000'001); },
      [](TaskRecord& r) { r.current.ended_at = absl::FromUnixSeconds(1'800'000'001); },
      [](TaskRecord& r) { r.current.result_at = absl::FromUnixSeconds(1'800'000'001); },
      [](TaskRecord& r) { r.current.cpu_ns = 1; },
      [](TaskRecord& r) { r.current.iterations_done = 1; },
      [](TaskRecord& r) { r.current.calibrated_rate = 1e9f; },
      [](TaskRecord& r) { r.current.bound_cpus = "0-1"; },
      [](TaskRecord& r) { r.current.start_cpu = 0; },
      [](TaskRecord& r) { r.current.end_cpu = 0; },
      [](TaskRecord& r) { r.current.migrated = true; },
  };
  for (size_t k = 0; k < more.size(); ++k) {
    TaskRecord r = t;
    more[k](r);
    EXPECT_FALSE(DealtRow::Fits(r)) << "change " << k;
  }
}

// Drop forgets a task's row for the writer (ForEachNewestRow skips it) and
// for live(); StaysIndexedWith says what Add would do to the table.
TEST(TaskRowLogTest, DropForgetsARowAndStaysIndexedWithForetellsAdd) {
  TaskRowLog log;
  EXPECT_FALSE(log.Drop(3)) << "empty";
  EXPECT_TRUE(log.StaysIndexedWith(1'000'000));
  TaskRecord t;
  t.state = v1::TASK_STATE_ASSIGNED;
  for (uint32_t i = 100; i < 110; ++i) {
    t.index = i;
    ASSERT_TRUE(log.Add(t));
  }
  EXPECT_TRUE(log.Drop(104));
  EXPECT_FALSE(log.Drop(104)) << "dropped already";
  EXPECT_FALSE(log.Drop(99));
  EXPECT_FALSE(log.Drop(5000));
  EXPECT_EQ(log.size(), 10u);
  EXPECT_EQ(log.live(), 9u);
  std::vector<uint32_t> seen;
  ASSERT_OK(ForEachNewestRow(log, [&](uint32_t p) {
    seen.push_back(log[p].index);
    return absl::OkStatus();
  }));
  EXPECT_THAT(seen, ::testing::ElementsAre(100, 101, 102, 103, 105, 106, 107, 108, 109));
  // Added again after a drop: a new row.
  t.index = 104;
  EXPECT_TRUE(log.Add(t));
  EXPECT_EQ(log.live(), 10u);
  // The span allowed: twice the rows (11 after the add) and the slack.
  const uint64_t allowed = 2 * (log.size() + 1) + TaskRowLog::kSlackIndices;
  const uint32_t last_ok = static_cast<uint32_t>(100 + allowed - 1);
  EXPECT_TRUE(log.StaysIndexedWith(last_ok));
  EXPECT_FALSE(log.StaysIndexedWith(last_ok + 1));
  t.index = last_ok + 1;
  log.Add(t);
  EXPECT_FALSE(log.indexed()) << "as foretold";
  EXPECT_FALSE(log.StaysIndexedWith(100));
  EXPECT_FALSE(log.Drop(100)) << "not indexed: nothing is dropped";
}

// Rows that come and go (deals dropped when their results come) reuse the
// places of those dropped: the log holds about as many rows as stand at
// once. A log with a row dropped stays indexed however far its indices
// spread (only its table knows which rows are gone).
TEST(TaskRowLogTest, DroppedRowsPlacesAreReusedAndKeepTheLogIndexed) {
  TaskRowLog log;
  TaskRecord t;
  t.state = v1::TASK_STATE_ASSIGNED;
  for (uint32_t i = 0; i < 100'000; ++i) {
    t.index = i;
    ASSERT_TRUE(log.Add(t));
    if (i >= 8) {
      ASSERT_TRUE(log.Drop(i - 8));  // eight stand at a time
    }
  }
  EXPECT_EQ(log.live(), 8u);
  EXPECT_LE(log.size(), 9u);
  EXPECT_TRUE(log.indexed());
  // Its table slid up with the rows that stand: not 100,000 indices.
  EXPECT_LT(log.positions().size(), 64u);
  // Far beyond twice the rows and the slack: still indexed, as foretold.
  EXPECT_TRUE(log.StaysIndexedWith(5'000'000));
  t.index = 5'000'000;
  ASSERT_TRUE(log.Add(t));
  EXPECT_TRUE(log.indexed());
  std::vector<uint32_t> seen;
  ASSERT_OK(ForEachNewestRow(log, [&](uint32_t p) {
    seen.push_back(log[p].index);
    return absl::OkStatus();
  }));
  EXPECT_THAT(seen, ::testing::ElementsAre(99'992, 99'993, 99'994, 99'995, 99'996, 99'997, 99'998, 99'999,
                                           5'000'000));
}

// The store's backlog log keeps rows in the order first added, across
// blocks, each one the row of the record as it was when last added: a task
// added again replaces its row, whichever way its indices run.
TEST(TaskRowLogTest, KeepsOneRowATaskInOrderAcrossBlocks) {
  const size_t n = 2 * TaskRowLog::kBlockRows + 3;
  // Rising, falling (the table grows below), and two interleaved runs (two
  // workers' results).
  for (const int order : {0, 1, 2}) {
    SCOPED_TRACE(order);
    TaskRowLog log;
    EXPECT_TRUE(log.empty());
    auto index_at = [&](size_t i) -> uint32_t {
      if (order == 0) return static_cast<uint32_t>(1000 + i);
      if (order == 1) return static_cast<uint32_t>(5000 - i);
      return static_cast<uint32_t>(i % 2 ? 8096 + i / 2 : 2000 + i / 2);  // a range of 4,096 each, and more
    };
    TaskRecord t;
    t.state = v1::TASK_STATE_ASSIGNED;
    t.current.worker = "w1";
    for (size_t i = 0; i < n; ++i) {
      t.index = index_at(i);
      t.current.number = static_cast<uint32_t>(i + 1);
      EXPECT_TRUE(log.Add(t));
    }
    t.state = v1::TASK_STATE_SUCCEEDED;
    for (size_t i = 0; i < n; i += 3) {  // every third task finishes
      t.index = index_at(i);
      t.current.number = static_cast<uint32_t>(i + 1);
      EXPECT_FALSE(log.Add(t));
    }
    t.current.number = 0;  // the log holds copies, not references
    ASSERT_EQ(log.size(), n);
    EXPECT_FALSE(log.empty());
    EXPECT_TRUE(log.indexed());
    for (size_t i = 0; i < n; ++i) {
      SCOPED_TRACE(i);
      EXPECT_EQ(log[i].index, index_at(i));
      EXPECT_EQ(log[i].attempt, i + 1);
      EXPECT_EQ(log[i].worker, "w1");
      EXPECT_EQ(static_cast<v1::TaskState>(log[i].state),
                i % 3 == 0 ? v1::TASK_STATE_SUCCEEDED : v1::TASK_STATE_ASSIGNED);
    }
    // The table stays within the bound: twice the rows and the slack.
    EXPECT_LE(log.positions().size(), 2 * n + 2 + TaskRowLog::kSlackIndices);
  }
}

// Past the span the table may cover, a task added again gets a second row
// (the writer takes the newest), and the table is gone.
TEST(TaskRowLogTest, ScatteredIndicesAddRowsInsteadOfATable) {
  TaskRowLog log;
  TaskRecord t;
  t.index = 7;
  EXPECT_TRUE(log.Add(t));
  t.index = 7 + 2 * 2 + static_cast<uint32_t>(TaskRowLog::kSlackIndices);  // just past the bound for two rows
  EXPECT_TRUE(log.Add(t));
  EXPECT_FALSE(log.indexed());
  EXPECT_TRUE(log.positions().empty());
  t.index = 7;
  EXPECT_TRUE(log.Add(t));
  EXPECT_EQ(log.size(), 3u);
  TaskRowLog near;
  t.index = 7;
  EXPECT_TRUE(near.Add(t));
  t.index = 7 + 2 * 2 + static_cast<uint32_t>(TaskRowLog::kSlackIndices) - 1;  // just within it
  EXPECT_TRUE(near.Add(t));
  EXPECT_TRUE(near.indexed());
  t.index = 7;
  EXPECT_FALSE(near.Add(t));
  EXPECT_EQ(near.size(), 2u);
}

// What WriteChangedTasks writes of a batch: each task's last row, in index
// order, against a plain map, for batches of runs (the dense way) and of
// scattered indices (the sort), with repeats.
TEST(NewestRowsTest, EachTaskOnceAsItsLastRowInIndexOrder) {
  std::mt19937 rng(17);
  struct Case {
    uint32_t base, span, rows;
    bool far_first;  // the first two rows at the span's two ends
  };
  // Dealt then finished in runs (the span is the rows / 2: the log's table);
  // a run near the top of the index range; scattered over a wide span (a
  // sort); a table dropped at the second row, the rows dense after (one
  // pass over the span); one row.
  for (const Case c : {Case{1000, 3000, 6000, false}, Case{UINT32_MAX - 2000, 2001, 4000, false},
                       Case{0, 1u << 30, 5000, false}, Case{5, 30001, 40000, true}, Case{42, 1, 1, false}}) {
    SCOPED_TRACE(c.base);
    TaskRowLog log;
    std::map<uint32_t, uint32_t> want;  // index -> attempt of its last row
    TaskRecord t;
    for (uint32_t p = 0; p < c.rows; ++p) {
      t.index = c.base + static_cast<uint32_t>(rng() % c.span);
      if (c.far_first && p < 2) t.index = c.base + (p == 0 ? 0 : c.span - 1);
      t.current.number = p + 1;  // tells the rows apart
      log.Add(t);
      want[t.index] = p + 1;
    }
    EXPECT_EQ(log.indexed(), c.span <= 3000) << "the case takes the path it is there for";
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
