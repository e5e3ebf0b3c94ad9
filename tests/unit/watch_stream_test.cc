// Unit tests of the WatchJob reactor's bookkeeping (WatchStream): every
// order of writes, progress and cancellation ends the call exactly once.
#include "coordinator/server/watch_stream.h"

#include <gtest/gtest.h>

namespace busyfleet::coordinator {
namespace {

v1::JobProgress Update(uint32_t done) {
  v1::JobProgress p;
  p.set_tasks_done(done);
  return p;
}

v1::JobProgress Final() {
  v1::JobProgress p = Update(9);
  p.mutable_report()->set_id("j-1");
  return p;
}

TEST(WatchStreamTest, WritesOneAtATimeKeepingOnlyTheNewest) {
  WatchStream s;
  EXPECT_EQ(s.OnProgress(Update(1)).write, nullptr) << "not started yet";
  const WatchStream::Step first = s.Start();
  ASSERT_NE(first.write, nullptr);
  EXPECT_EQ(first.write->tasks_done(), 1u);
  EXPECT_EQ(s.OnProgress(Update(2)).write, nullptr) << "a write is outstanding";
  EXPECT_EQ(s.OnProgress(Update(3)).write, nullptr);
  const WatchStream::Step next = s.OnWriteDone(true);
  ASSERT_NE(next.write, nullptr);
  EXPECT_EQ(next.write->tasks_done(), 3u);
}

TEST(WatchStreamTest, AWriteOutstandingPastTheStallLimitIsReportedOnce) {
  WatchStream s;
  s.OnProgress(Update(1));
  ASSERT_NE(s.Start().write, nullptr);
  // A generous limit: not stalled.
  EXPECT_FALSE(s.OnProgress(Update(2), absl::Hours(1)).stalled);
  // No time allowed: the outstanding write is stuck, said once.
  EXPECT_TRUE(s.OnProgress(Update(3), absl::ZeroDuration()).stalled);
  EXPECT_FALSE(s.OnProgress(Update(4), absl::ZeroDuration()).stalled);
  // Without a write outstanding nothing is stuck.
  WatchStream idle;
  idle.Start();
  EXPECT_FALSE(idle.OnProgress(Update(1), absl::ZeroDuration()).stalled);
}

TEST(WatchStreamTest, APlainUpdateNeverReplacesAPendingFinalOne) {
  WatchStream s;
  s.OnProgress(Update(1));
  ASSERT_NE(s.Start().write, nullptr);
  s.OnProgress(Final());
  s.OnProgress(Update(2));
  const WatchStream::Step last = s.OnWriteDone(true);
  ASSERT_NE(last.write, nullptr);
  EXPECT_TRUE(last.write->has_report());
  EXPECT_EQ(s.OnCancel().finish_cancelled, false) << "the final write ends the call already";
}

TEST(WatchStreamTest, CancelWithNoWriteOutstandingFinishesAtOnce) {
  WatchStream s;
  s.Start();
  EXPECT_TRUE(s.OnCancel().finish_cancelled);
  EXPECT_EQ(s.OnProgress(Update(1)).write, nullptr);
}

TEST(WatchStreamTest, BrokenWriteFinishesOnce) {
  WatchStream s;
  s.OnProgress(Update(1));
  ASSERT_NE(s.Start().write, nullptr);
  EXPECT_TRUE(s.OnWriteDone(false).finish_cancelled);
  EXPECT_FALSE(s.OnCancel().finish_cancelled);
}

// Issue 14: a cancel that came while a write was outstanding, followed by
// that write completing successfully, never finished the call: the reactor
// leaked and the server's Shutdown waited for it.
TEST(WatchStreamTest, CancelDuringAWriteThatStillSucceedsFinishesTheCall) {
  WatchStream s;
  s.OnProgress(Update(1));
  ASSERT_NE(s.Start().write, nullptr);
  EXPECT_FALSE(s.OnCancel().finish_cancelled) << "the outstanding write must complete first";
  s.OnProgress(Update(2));
  const WatchStream::Step done = s.OnWriteDone(true);
  EXPECT_TRUE(done.finish_cancelled);
  EXPECT_EQ(done.write, nullptr);
}

TEST(WatchStreamTest, CancelDuringAFailedWriteFinishesOnce) {
  WatchStream s;
  s.OnProgress(Update(1));
  ASSERT_NE(s.Start().write, nullptr);
  EXPECT_FALSE(s.OnCancel().finish_cancelled);
  EXPECT_TRUE(s.OnWriteDone(false).finish_cancelled);
}

}  // namespace
}  // namespace busyfleet::coordinator
