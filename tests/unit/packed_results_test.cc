// The wire's column form of plain task results (proto/busyfleet/packed_results.h).
#include "busyfleet/packed_results.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "busyfleet/proto_time.h"
#include "google/protobuf/util/message_differencer.h"

namespace busyfleet {
namespace {

using ::testing::HasSubstr;
using ::testing::SizeIs;

constexpr int64_t kMax = int64_t{1} << 62;
constexpr int64_t kWallBase = 1'800'000'000'000'000'000;  // 2027, in Unix ns
constexpr int64_t kMonoBase = 5'000'000'000;

// A plain result whose wall start follows its monotonic start (as the
// packed form rebuilds it).
v1::TaskResult Plain(const std::string& job, uint32_t index, uint32_t attempt, int64_t start, int64_t wall,
                     uint32_t slot = 0) {
  v1::TaskResult r;
  r.mutable_task()->set_job_id(job);
  r.mutable_task()->set_task_index(index);
  r.mutable_task()->set_attempt(attempt);
  r.set_state(v1::TASK_STATE_SUCCEEDED);
  r.set_slot(slot);
  r.set_start_mono_ns(start);
  r.set_end_mono_ns(start + wall);
  r.set_cpu_ns(wall / 2);
  r.set_iterations_done(1000 + index);
  r.set_pid(4242);
  *r.mutable_start_wall() = ToProtoTimestamp(absl::FromUnixNanos(kWallBase + (start - kMonoBase)));
  return r;
}

std::vector<v1::TaskResult> ReadBack(const v1::TaskUpdates& u) {
  std::vector<v1::TaskResult> out(u.results().begin(), u.results().end());
  for (const v1::PackedResults& p : u.packed()) {
    EXPECT_TRUE(ValidatePacked(p, 100'000, kMax).ok()) << ValidatePacked(p, 100'000, kMax);
    ForEachPackedResult(p, [&](const v1::TaskResult& r) { out.push_back(r); });
  }
  return out;
}

void ExpectSame(const std::vector<v1::TaskResult>& got, const std::vector<v1::TaskResult>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    std::string diff;
    google::protobuf::util::MessageDifferencer d;
    d.ReportDifferencesToString(&diff);
    EXPECT_TRUE(d.Compare(want[i], got[i])) << "entry " << i << ": " << diff;
  }
}

TEST(PackedResultsTest, PlainResultsReadBackFieldForField) {
  std::vector<v1::TaskResult> in;
  // Indices in any order (a retry, a range handed back), starts that go
  // back (two slots), CPU numbers known for some only.
  int64_t start = kMonoBase;
  for (uint32_t i : {7u, 8u, 9u, 3u, 100'000u, 0u, 4'000'000'000u}) {
    v1::TaskResult r = Plain("j-1", i, i == 3 ? 2 : 1, start, 30 + i % 7, i % 2);
    if (i % 3 == 0) r.set_start_cpu(i % 2);
    if (i != 9) r.set_end_cpu(1);
    in.push_back(r);
    start += (i % 2 == 0) ? 1'000 : -400;
  }
  v1::TaskUpdates u;
  ResultPacker packer(&u, {});
  for (const v1::TaskResult& r : in) packer.Add(r);
  EXPECT_THAT(u.results(), SizeIs(0));
  ASSERT_THAT(u.packed(), SizeIs(1));
  ExpectSame(ReadBack(u), in);
}

TEST(PackedResultsTest, OnlyPlainResultsArePacked) {
  std::vector<v1::TaskResult> odd;
  odd.push_back(Plain("j", 1, 1, kMonoBase, 10));
  odd.back().set_state(v1::TASK_STATE_FAILED);
  odd.push_back(Plain("j", 2, 1, kMonoBase, 10));
  odd.back().set_state(v1::TASK_STATE_CANCELLED);
  odd.push_back(Plain("j", 3, 1, kMonoBase, 10));
  odd.back().set_error("a note");
  odd.push_back(Plain("j", 4, 1, kMonoBase, 10));
  odd.back().set_permanent(true);
  odd.push_back(Plain("j", 5, 1, kMonoBase, 10));
  odd.back().mutable_interference()->set_involuntary_switches(3);
  odd.push_back(Plain("j", 6, 1, kMonoBase, 10));
  odd.back().set_start_cpu(0);
  odd.back().set_end_cpu(1);
  odd.back().set_migrated(true);
  odd.push_back(Plain("j", 7, 1, kMonoBase, 10));
  odd.back().set_cpu_ns(-1);
  odd.push_back(Plain("j", 8, 1, kMonoBase, 10));
  odd.back().set_end_mono_ns(kMonoBase - 1);  // ends before it starts
  odd.push_back(Plain("j", 9, 1, kMonoBase, 10));
  odd.back().set_bound_cpus("0");  // no slot is pinned here
  for (const v1::TaskResult& r : odd) EXPECT_FALSE(Packable(r) && r.bound_cpus().empty()) << r.DebugString();

  v1::TaskUpdates u;
  ResultPacker packer(&u, {});
  packer.Add(Plain("j", 0, 1, kMonoBase, 10));
  for (const v1::TaskResult& r : odd) packer.Add(r);
  packer.Add(Plain("j", 10, 1, kMonoBase + 20, 10));
  EXPECT_THAT(u.results(), SizeIs(odd.size()));
  ASSERT_THAT(u.packed(), SizeIs(1));
  EXPECT_EQ(u.packed(0).index_delta_size(), 2);
  ExpectSame(std::vector<v1::TaskResult>(u.results().begin(), u.results().end()), odd);
}

TEST(PackedResultsTest, GroupsByJobAndProcess) {
  std::vector<v1::TaskResult> in = {Plain("a", 0, 1, kMonoBase, 5), Plain("b", 0, 1, kMonoBase + 10, 5),
                                    Plain("a", 1, 1, kMonoBase + 20, 5), Plain("a", 2, 1, kMonoBase + 30, 5)};
  in[3].set_pid(99);  // a process-mode child
  v1::TaskUpdates u;
  ResultPacker packer(&u, {});
  for (const v1::TaskResult& r : in) packer.Add(r);
  ASSERT_THAT(u.packed(), SizeIs(3));
  EXPECT_EQ(u.packed(0).job_id(), "a");
  EXPECT_EQ(u.packed(0).index_delta_size(), 2);
  EXPECT_EQ(u.packed(1).job_id(), "b");
  EXPECT_EQ(u.packed(2).pid(), 99u);
  ExpectSame(ReadBack(u), {in[0], in[2], in[1], in[3]});
}

TEST(PackedResultsTest, PinnedSlotsTravelOncePerGroup) {
  const std::vector<std::string> pinned = {"0", "1"};
  std::vector<v1::TaskResult> in;
  for (uint32_t i = 0; i < 4; ++i) {
    in.push_back(Plain("j", i, 1, kMonoBase + i * 100, 50, i % 2));
    in.back().set_bound_cpus(pinned[i % 2]);
  }
  v1::TaskResult elsewhere = Plain("j", 9, 1, kMonoBase, 50, 1);
  elsewhere.set_bound_cpus("0-1");  // not what its slot is pinned to: goes as is
  v1::TaskUpdates u;
  ResultPacker packer(&u, pinned);
  for (const v1::TaskResult& r : in) packer.Add(r);
  packer.Add(elsewhere);
  ASSERT_THAT(u.packed(), SizeIs(1));
  EXPECT_THAT(u.packed(0).slot_bound_cpus(), SizeIs(2));
  ASSERT_THAT(u.results(), SizeIs(1));
  EXPECT_EQ(u.results(0).bound_cpus(), "0-1");
  std::vector<v1::TaskResult> want = {elsewhere};
  want.insert(want.end(), in.begin(), in.end());
  ExpectSame(ReadBack(u), want);
}

TEST(PackedResultsTest, AThousandEmptyTasksTakeAboutTenKilobytes) {
  v1::TaskUpdates plain;
  v1::TaskUpdates packed;
  ResultPacker packer(&packed, {});
  int64_t start = kMonoBase;
  for (uint32_t i = 0; i < 1000; ++i) {
    v1::TaskResult r = Plain("j-6c35d282f65c30a1", 10'000 + i, 1, start, 30 + i % 5, i % 2);
    r.set_cpu_ns(r.end_mono_ns() - r.start_mono_ns());
    r.set_iterations_done(0);
    r.set_start_cpu(i % 2);
    r.set_end_cpu(i % 2);
    start += 700 + i % 300;
    *plain.add_results() = r;
    packer.Add(r);
  }
  const size_t plain_bytes = plain.ByteSizeLong();
  const size_t packed_bytes = packed.ByteSizeLong();
  // About 10 bytes a task (a varint per column) against about 67.
  EXPECT_LT(packed_bytes, 12'000u) << "plain " << plain_bytes;
  EXPECT_GT(plain_bytes, 5 * packed_bytes) << "packed " << packed_bytes;
  ExpectSame(ReadBack(packed), std::vector<v1::TaskResult>(plain.results().begin(), plain.results().end()));
}

TEST(PackedResultsTest, UnpackIntoPutsEveryEntryBackAsAResult) {
  std::vector<v1::TaskResult> in;
  for (uint32_t i = 0; i < 5; ++i) in.push_back(Plain("j", i, 1, kMonoBase + i, 3));
  v1::TaskResult failed = Plain("j", 5, 1, kMonoBase, 3);
  failed.set_state(v1::TASK_STATE_FAILED);
  v1::TaskUpdates u;
  ResultPacker packer(&u, {});
  packer.Add(failed);
  for (const v1::TaskResult& r : in) packer.Add(r);
  UnpackInto(u);
  EXPECT_THAT(u.packed(), SizeIs(0));
  std::vector<v1::TaskResult> want = {failed};
  want.insert(want.end(), in.begin(), in.end());
  ExpectSame(std::vector<v1::TaskResult>(u.results().begin(), u.results().end()), want);
}

// A valid group of three entries to break one field of at a time.
v1::PackedResults ValidGroup() {
  v1::TaskUpdates u;
  ResultPacker packer(&u, {});
  for (uint32_t i = 0; i < 3; ++i) packer.Add(Plain("j", i, 1, kMonoBase + i * 10, 5));
  return u.packed(0);
}

TEST(PackedResultsTest, BadGroupsAreRefusedNamingTheFieldAndTheLimit) {
  ASSERT_TRUE(ValidatePacked(ValidGroup(), 3, kMax).ok());
  struct Case {
    const char* what;
    void (*breakit)(v1::PackedResults&);
    const char* message;
  };
  const Case cases[] = {
      {"a short column", [](v1::PackedResults& p) { p.mutable_wall_ns()->RemoveLast(); },
       "packed.wall_ns must have one entry per task (3), got 2"},
      {"a CPU column of the wrong length", [](v1::PackedResults& p) { p.add_start_cpu_plus1(1); },
       "packed.start_cpu_plus1 must have one entry per task (3, or none), got 1"},
      {"an index below zero", [](v1::PackedResults& p) { p.set_index_delta(1, -5); },
       "packed.index_delta[1] takes the task index out of [0, 4294967295]"},
      {"an index past 2^32", [](v1::PackedResults& p) { p.set_index_delta(2, int64_t{1} << 32); },
       "packed.index_delta[2]"},
      {"a huge index step", [](v1::PackedResults& p) { p.set_index_delta(0, INT64_MIN); }, "packed.index_delta[0]"},
      {"a start before zero", [](v1::PackedResults& p) { p.set_start_delta_ns(0, -kMonoBase - 1); },
       "packed.start_delta_ns[0] takes the start out of [0, 4611686018427387904)"},
      {"a start step that would overflow", [](v1::PackedResults& p) { p.set_start_delta_ns(1, INT64_MAX); },
       "packed.start_delta_ns[1]"},
      {"an end past the clock limit", [](v1::PackedResults& p) { p.set_wall_ns(2, UINT64_MAX); },
       "packed.wall_ns[2] takes the end past 4611686018427387904"},
      {"a CPU time past the limit", [](v1::PackedResults& p) { p.set_cpu_ns(0, uint64_t{1} << 63); },
       "packed.cpu_ns[0] must be below 4611686018427387904"},
      {"a negative base", [](v1::PackedResults& p) { p.set_base_mono_ns(-1); },
       "packed.base_mono_ns must be in [0, 4611686018427387904), got -1"},
      {"a wall base past the limit", [](v1::PackedResults& p) { p.set_base_unix_ns(INT64_MAX); },
       "packed.base_unix_ns must be in [0, 4611686018427387904)"},
      {"too many slots", [](v1::PackedResults& p) { for (int i = 0; i < 4097; ++i) p.add_slot_bound_cpus("0"); },
       "packed.slot_bound_cpus may have at most 4096 entries, got 4097"},
      {"a long CPU list", [](v1::PackedResults& p) { p.add_slot_bound_cpus(std::string(1025, '1')); },
       "packed.slot_bound_cpus entries must be at most 1024 bytes, got 1025"},
  };
  for (const Case& c : cases) {
    v1::PackedResults p = ValidGroup();
    c.breakit(p);
    const absl::Status s = ValidatePacked(p, 3, kMax);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << c.what;
    EXPECT_THAT(std::string(s.message()), HasSubstr(c.message)) << c.what;
  }
  EXPECT_THAT(std::string(ValidatePacked(ValidGroup(), 2, kMax).message()),
              HasSubstr("packed.index_delta may have at most 2 entries, got 3"));
}

// A group with every constant column (as a worker's run writes it): a
// column in full where entries differ.
v1::PackedResults ConstantGroup(bool cpus_differ) {
  v1::PackedResults p;
  p.set_job_id("j");
  p.set_pid(4242);
  p.set_base_mono_ns(kMonoBase);
  p.set_base_unix_ns(kWallBase);
  p.set_attempt_all(3);
  p.set_slot_all(1);
  p.set_iterations_done_all(0);
  p.set_cpu_is_wall(true);
  if (!cpus_differ) p.set_cpu_plus1_all(2);
  for (int i = 0; i < 4; ++i) {
    p.add_index_delta(i == 0 ? 10 : 1);
    p.add_start_delta_ns(i == 0 ? 0 : 100);
    p.add_wall_ns(20 + i);
    if (cpus_differ) {
      p.add_start_cpu_plus1(i < 2 ? 1 : 2);
      p.add_end_cpu_plus1(i < 2 ? 1 : 2);
    }
  }
  return p;
}

TEST(PackedResultsTest, ConstantColumnsReadBackAsTheirValueInEveryEntry) {
  for (const bool cpus_differ : {false, true}) {
    SCOPED_TRACE(cpus_differ);
    const v1::PackedResults p = ConstantGroup(cpus_differ);
    ASSERT_TRUE(ValidatePacked(p, 100, kMax).ok()) << ValidatePacked(p, 100, kMax);
    std::vector<v1::TaskResult> got;
    ForEachPackedResult(p, [&](const v1::TaskResult& r) { got.push_back(r); });
    ASSERT_THAT(got, SizeIs(4));
    for (int i = 0; i < 4; ++i) {
      SCOPED_TRACE(i);
      const v1::TaskResult& r = got[static_cast<size_t>(i)];
      EXPECT_EQ(r.task().task_index(), 10u + static_cast<uint32_t>(i));
      EXPECT_EQ(r.task().attempt(), 3u);
      EXPECT_EQ(r.slot(), 1u);
      EXPECT_EQ(r.iterations_done(), 0u);
      EXPECT_EQ(r.start_mono_ns(), kMonoBase + 100 * i);
      EXPECT_EQ(r.end_mono_ns() - r.start_mono_ns(), 20 + i);
      EXPECT_EQ(r.cpu_ns(), 20 + i) << "cpu_is_wall";
      ASSERT_TRUE(r.has_start_cpu());
      ASSERT_TRUE(r.has_end_cpu());
      EXPECT_EQ(r.start_cpu(), cpus_differ && i < 2 ? 0u : 1u);
      EXPECT_EQ(r.end_cpu(), r.start_cpu());
    }
    // Written out in full (for an older coordinator): no constant left, the
    // same entries.
    v1::PackedResults full = p;
    ExpandConstants(full);
    EXPECT_FALSE(full.has_attempt_all() || full.has_slot_all() || full.has_iterations_done_all() ||
                 full.cpu_is_wall() || full.has_cpu_plus1_all());
    EXPECT_THAT(full.attempt(), SizeIs(4));
    EXPECT_THAT(full.cpu_ns(), SizeIs(4));
    EXPECT_THAT(full.start_cpu_plus1(), SizeIs(4));
    ASSERT_TRUE(ValidatePacked(full, 100, kMax).ok());
    std::vector<v1::TaskResult> again;
    ForEachPackedResult(full, [&](const v1::TaskResult& r) { again.push_back(r); });
    ExpectSame(again, got);
  }
  // An unknown CPU as the constant: no CPU, in full or not.
  v1::PackedResults unknown = ConstantGroup(false);
  unknown.set_cpu_plus1_all(0);
  ExpandConstants(unknown);
  EXPECT_THAT(unknown.start_cpu_plus1(), SizeIs(0));
  ForEachPackedResult(unknown, [](const v1::TaskResult& r) { EXPECT_FALSE(r.has_start_cpu()); });
}

// A writer's column: the constant while every entry is one value; from
// the first that differs, every entry in order (the earlier ones written
// out as the constant was).
TEST(ConstantOrColumnTest, StaysAConstantUntilAnEntryDiffers) {
  struct Case {
    std::vector<uint64_t> entries;
    bool constant;
  };
  for (const Case& c : {Case{{}, false}, Case{{7}, true}, Case{{7, 7, 7}, true}, Case{{7, 7, 9, 7}, false},
                        Case{{9, 7}, false}}) {
    SCOPED_TRACE(testing::PrintToString(c.entries));
    ConstantOrColumn<uint64_t> col;
    std::vector<uint64_t> column;
    for (size_t i = 0; i < c.entries.size(); ++i) {
      col.Add(static_cast<int>(i), c.entries[i], [&column](uint64_t v) { column.push_back(v); });
    }
    if (c.constant) {
      ASSERT_NE(col.all(), nullptr);
      EXPECT_EQ(*col.all(), c.entries.front());
      EXPECT_TRUE(column.empty());
    } else {
      EXPECT_EQ(col.all(), nullptr);
      EXPECT_EQ(column, c.entries);
    }
  }
}

TEST(PackedResultsTest, AConstantAndItsColumnTogetherAreRefused) {
  const std::pair<void (*)(v1::PackedResults&), const char*> cases[] = {
      {[](v1::PackedResults& p) { p.add_attempt(3); }, "packed.attempt must be empty when packed.attempt_all is set"},
      {[](v1::PackedResults& p) { p.add_slot(1); }, "packed.slot must be empty when packed.slot_all is set"},
      {[](v1::PackedResults& p) { p.add_cpu_ns(1); }, "packed.cpu_ns must be empty when packed.cpu_is_wall is set"},
      {[](v1::PackedResults& p) { p.add_iterations_done(0); },
       "packed.iterations_done must be empty when packed.iterations_done_all is set"},
      {[](v1::PackedResults& p) { p.add_end_cpu_plus1(2); },
       "packed.end_cpu_plus1 must be empty when packed.cpu_plus1_all is set"},
      // A missing column without its constant is the old error.
      {[](v1::PackedResults& p) { p.clear_slot_all(); }, "packed.slot must have one entry per task (4), got 0"},
      {[](v1::PackedResults& p) { p.set_cpu_is_wall(false); },
       "packed.cpu_ns must have one entry per task (4), got 0"},
  };
  for (const auto& [breakit, message] : cases) {
    v1::PackedResults p = ConstantGroup(false);
    breakit(p);
    const absl::Status s = ValidatePacked(p, 100, kMax);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << message;
    EXPECT_THAT(std::string(s.message()), HasSubstr(message));
  }
}

}  // namespace
}  // namespace busyfleet
