// The coordinator's status page (StatusPageHtml), rendered from a real
// Coordinator driven without a network: workers attach through a channel
// that drops what it is sent, time is a FakeClock, and the page is drawn at
// the fake clock's time.
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "busyfleet/v1/types.pb.h"
#include "busyfleet/v1/worker.pb.h"
#include "common/clock.h"
#include "coordinator/core/coordinator.h"
#include "coordinator/server/http_server.h"
#include "coordinator/store/job_store.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/svg_testing.h"

namespace busyfleet::coordinator {
namespace {

using ::busyfleet::testing::CountOccurrences;
using ::testing::EndsWith;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

class DroppingChannel final : public WorkerChannel {
 public:
  void Send(v1::CoordinatorMessage) override {}
  void Close(const absl::Status&) override {}
};

class StatusPageTest : public ::testing::Test {
 protected:
  // 2026-11-26T02:33:56Z.
  StatusPageTest() : clock_(absl::FromUnixSeconds(1795660436)) {
    Coordinator::Options o;
    o.clock = &clock_;
    o.store = &store_;
    auto c = Coordinator::Create(o);
    EXPECT_TRUE(c.ok()) << c.status();
    if (c.ok()) coordinator_ = *std::move(c);
  }
  ~StatusPageTest() override {
    if (coordinator_) coordinator_->Shutdown();
  }

  // The session id.
  std::string Attach(const std::string& name, uint32_t slots) {
    v1::Hello h;
    h.set_name(name);
    h.set_slots(slots);
    h.mutable_host()->set_hostname(name + "&host");
    h.mutable_host()->set_logical_cpus(2 * slots);
    h.mutable_host()->set_physical_cores(slots);
    h.set_default_exec(v1::EXEC_MODE_THREAD);
    h.add_exec_modes(v1::EXEC_MODE_THREAD);
    auto session = coordinator_->Attach(h, "peer", std::make_shared<DroppingChannel>());
    EXPECT_TRUE(session.ok()) << session.status();
    return session.ok() ? *session : "";
  }

  void Heartbeat(const std::string& session) {
    v1::WorkerMessage m;
    m.mutable_heartbeat()->set_seq(1);
    m.mutable_heartbeat()->set_no_ack(true);
    ASSERT_TRUE(coordinator_->HandleMessage(session, m).ok());
  }

  void Submit(const std::string& name) {
    v1::JobSpec spec;
    spec.set_name(name);
    spec.set_kind(v1::TASK_KIND_COUNTDOWN);
    spec.set_tasks(2);
    spec.set_iterations(1000);
    ASSERT_TRUE(coordinator_->Submit(spec).ok());
  }

  std::string Page(int page_jobs = 20, int page_timelines = 5) {
    return StatusPageHtml(*coordinator_, page_jobs, page_timelines, clock_.Now());
  }

  FakeClock clock_;
  InMemoryJobStore store_{/*copy_task_rows=*/false};
  std::unique_ptr<Coordinator> coordinator_;
};

TEST_F(StatusPageTest, EmptyCoordinatorSaysSoInBothTables) {
  const std::string page = Page();
  EXPECT_THAT(page, StartsWith("<!DOCTYPE html>\n"));
  EXPECT_THAT(page, HasSubstr("<p class=\"muted\">2026-11-26T02:33:56.000000Z &middot; 0 slots, 0 running, "
                              "0 queued &middot;"));
  EXPECT_THAT(page, HasSubstr("<tr><td colspan=\"10\">no worker attached</td></tr>\n"));
  EXPECT_THAT(page, HasSubstr("<tr><td colspan=\"9\">no job yet</td></tr>\n"));
  EXPECT_THAT(page, Not(HasSubstr("<svg")));
  EXPECT_THAT(page, EndsWith("</tbody></table>\n</body></html>\n"));
}

TEST_F(StatusPageTest, TimeIsShownToTheWholeSecond) {
  clock_.Advance(absl::Milliseconds(1500));
  EXPECT_THAT(Page(), HasSubstr("<p class=\"muted\">2026-11-26T02:33:57.000000Z &middot;"));
}

TEST_F(StatusPageTest, WorkerRowsAreEscapedWithLoadAndHeartbeatAge) {
  const std::string session = Attach("w<1>", 2);
  Attach("w2", 4);
  Heartbeat(session);
  clock_.Advance(absl::Seconds(3));
  const std::string page = Page();
  EXPECT_THAT(page, HasSubstr("<tr><td>w&lt;1&gt;</td><td>w&lt;1&gt;&amp;host</td><td class=\"READY\">READY</td>"
                              "<td class=\"n\">2</td><td class=\"n\">2</td><td class=\"n\">4</td>"
                              "<td class=\"n\">0</td><td><span class=\"bar\" style=\"width:0px\"></span> 0%</td>"
                              "<td class=\"n\">0</td><td>3.0s ago</td></tr>\n"));
  // No heartbeat yet: no age.
  EXPECT_THAT(page, HasSubstr("<td class=\"n\">0</td><td>-</td></tr>\n"));
  EXPECT_THAT(page, Not(HasSubstr("<1>")));
  EXPECT_THAT(page, Not(HasSubstr("no worker attached")));
}

TEST_F(StatusPageTest, JobsAreListedNewestFirstAndOnlyTheFirstGetTimelines) {
  Attach("w1", 2);
  for (const char* name : {"first", "<second>", "third"}) {
    Submit(name);
    clock_.Advance(absl::Seconds(1));
  }
  const std::string page = Page(/*page_jobs=*/20, /*page_timelines=*/2);
  EXPECT_EQ(CountOccurrences(page, "<tr><td><a href=\"#job-"), 3u);
  EXPECT_THAT(page, HasSubstr("</a></td><td>&lt;second&gt;</td><td>countdown</td><td class=\"RUNNING\">"));
  EXPECT_LT(page.find("<td>third</td>"), page.find("<td>&lt;second&gt;</td>"));
  EXPECT_LT(page.find("<td>&lt;second&gt;</td>"), page.find("<td>first</td>"));
  EXPECT_EQ(CountOccurrences(page, "<div class=\"timeline\"><svg "), 2u);
  EXPECT_THAT(page, HasSubstr(" (&lt;second&gt;)</h2>\n<div class=\"timeline\">"));
  EXPECT_THAT(page, Not(HasSubstr(" (first)</h2>")));
  EXPECT_THAT(page, Not(HasSubstr("no job yet")));

  EXPECT_EQ(CountOccurrences(Page(/*page_jobs=*/1, /*page_timelines=*/5), "<tr><td><a href=\"#job-"), 1u);
}

// Issue 16: the timeline's job shows each worker's steal and throttling,
// and why its stragglers were slow.
TEST_F(StatusPageTest, TimelinesShowInterferenceAndStragglerCauses) {
  const std::string session = Attach("w1", 3);
  v1::JobSpec spec;
  spec.set_kind(v1::TASK_KIND_COUNTDOWN);
  spec.set_tasks(3);
  spec.set_iterations(1000);
  auto submitted = coordinator_->Submit(spec);
  ASSERT_TRUE(submitted.ok()) << submitted.status();
  v1::WorkerMessage m;
  for (uint32_t i = 0; i < 3; ++i) {
    v1::TaskResult* r = m.mutable_updates()->add_results();
    r->mutable_task()->set_job_id(submitted->job_id());
    r->mutable_task()->set_task_index(i);
    r->mutable_task()->set_attempt(1);
    r->set_state(v1::TASK_STATE_SUCCEEDED);
    r->set_slot(i);
    r->set_iterations_done(1000);
    r->set_start_mono_ns(1);
    r->set_end_mono_ns(1 + (i == 2 ? 500'000'000 : 100'000'000));  // task 2 is the straggler
    r->mutable_interference()->set_steal_share(0);
    r->mutable_interference()->set_throttled_ns(i == 2 ? 300'000'000 : 0);
  }
  clock_.Advance(absl::Seconds(1));
  ASSERT_TRUE(coordinator_->HandleMessage(session, m).ok());
  const std::string page = Page();
  EXPECT_THAT(page, HasSubstr("<th>steal</th><th>throttled (s)</th>"));
  EXPECT_THAT(page, HasSubstr("<tr><td>w1</td><td class=\"n\">0.0%</td><td class=\"n\">0.300</td>"));
  EXPECT_THAT(page, HasSubstr("Slow tasks: task 2: throttled 300 ms</p>"));
}

}  // namespace
}  // namespace busyfleet::coordinator
