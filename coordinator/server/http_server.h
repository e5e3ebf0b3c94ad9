#ifndef BUSYFLEET_COORDINATOR_SERVER_HTTP_SERVER_H_
#define BUSYFLEET_COORDINATOR_SERVER_HTTP_SERVER_H_

// The coordinator's HTTP listener (--http-listen): Prometheus /metrics, a
// status page at / (workers, recent jobs, each job's SVG timeline; plain
// HTML and inline SVG, no external assets) and /healthz. Read-only.
//
// Access follows the gRPC side: when the coordinator requires tokens, /
// and /metrics require "Authorization: Bearer <client token>" (Prometheus:
// `authorization: {credentials_file: ...}`); /healthz never does. With a
// TLS certificate it serves HTTPS with the same certificate (and, with a
// client CA, requires client certificates).

#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/rpc/auth.h"
#include "coordinator/core/coordinator.h"

namespace httplib {
class Server;
}

namespace busyfleet::coordinator {

class HttpServer {
 public:
  struct Options {
    // host:port; port 0 picks a free one (read it back with port()).
    std::string listen = "127.0.0.1:7071";
    Coordinator* coordinator = nullptr;  // not owned; outlives the server
    TokenAuthenticator authenticator;
    // PEM files: serve HTTPS when cert and key are set.
    std::string tls_cert;
    std::string tls_key;
    std::string tls_client_ca;
    // Jobs listed on the status page, and how many of them get a timeline.
    int page_jobs = 20;
    int page_timelines = 5;
  };

  // Unavailable when the address cannot be bound; InvalidArgument for a
  // malformed address or unreadable TLS files.
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(Options options);
  ~HttpServer();

  int port() const { return port_; }
  // Stops listening and waits for requests in progress. Idempotent.
  void Shutdown();

 private:
  explicit HttpServer(Options options);
  void Route();

  Options options_;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  int port_ = 0;
};

// The status page as HTML at `now` (exposed for tests): the fleet's figures,
// the workers (gone ones too), the `page_jobs` most recent jobs, and the
// timelines of the first `page_timelines` of them.
std::string StatusPageHtml(Coordinator& coordinator, int page_jobs, int page_timelines, absl::Time now);

}  // namespace busyfleet::coordinator

#endif  // BUSYFLEET_COORDINATOR_SERVER_HTTP_SERVER_H_
