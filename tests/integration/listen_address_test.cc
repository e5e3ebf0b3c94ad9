// A coordinator's listening address is its own. gRPC binds with
// SO_REUSEPORT unless told not to, and then a second coordinator started
// on the same address by mistake starts as well: the kernel shares new
// connections between the two, so workers and clients split between
// coordinators that know nothing of each other (a job submitted to one
// waits for workers attached to the other). The second must refuse to
// start, naming the address.
#include <memory>
#include <string>

#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "coordinator/server/coordinator_server.h"
#include "coordinator/store/job_store.h"
#include "tests/testing/status_matchers.h"

namespace busyfleet::testing {
namespace {

using coordinator::CoordinatorServer;

absl::StatusOr<std::unique_ptr<CoordinatorServer>> StartOn(const std::string& listen,
                                                            const std::string& http_listen = "") {
  CoordinatorServer::Options o;
  o.listen = listen;
  o.store = std::make_shared<coordinator::InMemoryJobStore>();
  if (!http_listen.empty()) {
    o.http.emplace();
    o.http->listen = http_listen;
  }
  return CoordinatorServer::Start(o);
}

// `second`, started on `address` beside a running coordinator, was
// refused, naming the address.
void ExpectRefused(absl::StatusOr<std::unique_ptr<CoordinatorServer>> second, const std::string& address) {
  EXPECT_FALSE(second.ok()) << "two coordinators listen on " << address;
  if (second.ok()) {
    (*second)->Shutdown(absl::Seconds(1));
    return;
  }
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(second.status().message().find(address), std::string::npos) << second.status();
  EXPECT_NE(second.status().message().find("address in use"), std::string::npos) << second.status();
}

TEST(ListenAddressTest, ASecondCoordinatorOnTheSameAddressRefusesToStart) {
  auto first = StartOn("127.0.0.1:0");
  ASSERT_OK(first.status());
  const std::string address = absl::StrCat("127.0.0.1:", (*first)->port());
  ExpectRefused(StartOn(address), address);
  (*first)->Shutdown(absl::Seconds(1));
  // Once the first has gone, the address is free again.
  auto again = StartOn(address);
  EXPECT_OK(again.status());
  if (again.ok()) (*again)->Shutdown(absl::Seconds(1));
}

// The same for the status page's address (cpp-httplib, too, binds with
// SO_REUSEPORT unless told otherwise).
TEST(ListenAddressTest, ASecondStatusPageOnTheSameAddressRefusesToStart) {
  auto first = StartOn("127.0.0.1:0", "127.0.0.1:0");
  ASSERT_OK(first.status());
  const std::string address = absl::StrCat("127.0.0.1:", (*first)->http_port());
  ExpectRefused(StartOn("127.0.0.1:0", address), address);
  (*first)->Shutdown(absl::Seconds(1));
}

}  // namespace
}  // namespace busyfleet::testing
