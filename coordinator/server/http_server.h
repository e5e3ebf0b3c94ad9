#ifndef BUSYFLEET_COORDINATOR_SERVER_HTTP_SERVER_H_
#define BUSYFLEET_COORDINATOR_SERVER_HTTP_SERVER_H_

// The coordinator's HTTP listener (--http-listen): Prometheus /metrics, a
// status page at / (workers, recent jobs, each job's SVG timeline; plain
// HTML and inline SVG, no external assets) and /healthz. Read-only.
//
// Access follows the gRPC side: when the coordinator requires tokens, /
// and /metrics require the viewer (or client) role, either as
// "Authorization: Bearer <token>" (scripts; Prometheus:
// `authorization: {credentials_file: ...}`) or as the session cookie that
// a login at /login gives a browser (POST of the token, form-encoded; the
// cookie is HttpOnly, SameSite=Strict, and Secure under TLS). Without
// either, a browser (Accept: text/html) asking for / is sent to /login
// (303), anything else gets 401. /healthz never needs a token. With a TLS
// certificate it serves HTTPS with the same certificate (and, with a client
// CA, requires client certificates).

#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/logging.h"
#include "common/rpc/auth.h"
#include "coordinator/core/coordinator.h"
#include "coordinator/server/web_sessions.h"

namespace httplib {
class Server;
struct Request;
struct Response;
}  // namespace httplib

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
    // Logins at /login (used only when the authenticator is enabled).
    SessionStore::Options sessions;
    LoginLimiter::Options login_limit;
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
  void RouteLogin();
  // True when the request may read: no tokens configured, a viewer or
  // client bearer token, or a live session cookie. Otherwise fills `res`
  // (401/403, or 303 to /login for a browser) and returns false.
  bool Authorized(const httplib::Request& req, httplib::Response& res);
  // The role of the request's session cookie, if it has a live one.
  std::optional<Role> SessionRole(const httplib::Request& req);
  void Login(const httplib::Request& req, httplib::Response& res);
  void Logout(const httplib::Request& req, httplib::Response& res);
  void LogRefusedLogin(const httplib::Request& req, absl::string_view why);
  // A form post from another site's page (login CSRF, forced logout): why
  // it is refused, from its Origin header; nullopt when it may go on (the
  // same origin, or no Origin: scripts and curl send none).
  std::optional<std::string> CrossSite(const httplib::Request& req) const;
  // Refuses `req` with 403 when CrossSite says so; true if it did.
  bool RefuseCrossSite(const httplib::Request& req, httplib::Response& res);

  Options options_;
  SessionStore sessions_;
  LoginLimiter login_limit_;
  LogRateLimiter log_limit_{10, absl::Seconds(1)};
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
