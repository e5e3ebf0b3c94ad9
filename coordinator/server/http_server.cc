#include "coordinator/server/http_server.h"

#include <httplib.h>
#include <sys/socket.h>

#include <algorithm>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <spdlog/spdlog.h>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "common/net.h"
#include "coordinator/core/slow_cause.h"
#include "coordinator/server/prometheus_text.h"
#include "coordinator/report/fleet.h"
#include "coordinator/report/format.h"
#include "coordinator/report/report_format.h"
#include "coordinator/report/svg_util.h"
#include "coordinator/report/timeline.h"

namespace busyfleet::coordinator {
namespace {

std::string Html(absl::string_view s) { return report::XmlEscape(s); }

constexpr absl::string_view kStyle = R"(
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.4em;margin:0 0 .2em} h2{font-size:1.1em;margin:1.4em 0 .4em}
table{border-collapse:collapse;font-size:.9em} th,td{padding:.25em .7em;text-align:left;border-bottom:1px solid #ddd}
th{background:#f3f3f3} td.n{text-align:right;font-variant-numeric:tabular-nums}
.READY,.SUCCEEDED{color:#1a7f37} .DRAINING,.RUNNING,.PENDING{color:#9a6700} .GONE,.FAILED,.CANCELLED{color:#cf222e}
.bar{display:inline-block;height:.7em;background:#2da44e;vertical-align:middle}
.muted{color:#777;font-size:.85em} .timeline{margin:.5em 0 1.5em;overflow-x:auto}
)";

// The page's head and title line: the time, the fleet's slots, running
// tasks and queue.
std::string PageHead(absl::Time now, const MetricsSnapshot& m) {
  // Whole seconds: the page refreshes every 5 s.
  const absl::Time shown = absl::FromUnixSeconds(absl::ToUnixSeconds(now));
  return absl::StrCat(
      "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
      "<meta http-equiv=\"refresh\" content=\"5\"><title>busyfleet coordinator</title><style>",
      kStyle, "</style></head><body>\n<h1>busyfleet coordinator</h1>\n<p class=\"muted\">",
      Html(report::Rfc3339(report::ToProtoTimestamp(shown))), " &middot; ", m.slots, " slots, ", m.running,
      " running, ", m.queue_depth,
      " queued &middot; refreshes every 5 s &middot; <a href=\"/metrics\">/metrics</a></p>\n");
}

std::string WorkerRow(const v1::WorkerInfo& w, absl::Time now) {
  const std::string state = report::WorkerStateName(w.state());
  const double load = w.slots() > 0 ? static_cast<double>(w.running()) / w.slots() : 0;
  return absl::StrCat("<tr><td>", Html(w.name()), "</td><td>", Html(w.host().hostname()), "</td><td class=\"",
                      state, "\">", state, "</td><td class=\"n\">", w.slots(), "</td><td class=\"n\">",
                      w.host().physical_cores(), "</td><td class=\"n\">", w.host().logical_cpus(),
                      "</td><td class=\"n\">", w.running(), "</td><td>",
                      "<span class=\"bar\" style=\"width:", static_cast<int>(std::min(1.0, load) * 60),
                      "px\"></span> ", static_cast<int>(load * 100), "%</td><td class=\"n\">", w.tasks_done(),
                      "</td><td>", report::Ago(w.last_heartbeat(), now), "</td></tr>\n");
}

std::string WorkersSection(const std::vector<v1::WorkerInfo>& workers, absl::Time now) {
  std::string out =
      "<h2>Workers</h2>\n<table id=\"workers\"><thead><tr><th>name</th><th>host</th>"
      "<th>state</th><th>slots</th><th>cores</th><th>CPUs</th><th>running</th>"
      "<th>load</th><th>tasks done</th><th>last heartbeat</th></tr></thead><tbody>\n";
  for (const v1::WorkerInfo& w : workers) absl::StrAppend(&out, WorkerRow(w, now));
  if (workers.empty()) absl::StrAppend(&out, "<tr><td colspan=\"10\">no worker attached</td></tr>\n");
  absl::StrAppend(&out, "</tbody></table>\n");
  // Workers on one machine share its cores: the total counts each once.
  if (!workers.empty()) {
    absl::StrAppend(&out, "<p class=\"muted\" id=\"fleet\">", Html(report::FleetLine(report::CountFleet(workers))),
                    "</p>\n");
  }
  return out;
}

// A job's row; wall, speedup and efficiency from its report when the
// coordinator could give one.
std::string JobRow(const v1::JobSummary& j, const absl::StatusOr<v1::JobReport>& report) {
  const std::string state = report::JobStateName(j.state());
  return absl::StrCat(
      "<tr><td><a href=\"#job-", Html(j.id()), "\">", Html(j.id()), "</a></td><td>", Html(j.name()), "</td><td>",
      report::TaskKindName(j.kind()), "</td><td class=\"", state, "\">", state, "</td><td class=\"n\">",
      j.tasks_done(), "/", j.tasks(), "</td><td>", Html(report::Rfc3339(j.submitted_at())),
      "</td><td class=\"n\">", report::Fixed(report.ok() ? report->timing().wall_seconds() : j.wall_seconds(), 3),
      "</td><td class=\"n\">", report.ok() ? report::Fixed(report->timing().speedup(), 2) : "-",
      "</td><td class=\"n\">", report.ok() ? report::Percent(report->timing().efficiency()) : "-",
      "</td></tr>\n");
}

// The recent jobs' table. The first `page_timelines` reports the coordinator
// gives (with their attempts) go to `*timelines`.
std::string JobsSection(Coordinator& coordinator, int page_jobs, int page_timelines,
                        std::vector<v1::JobReport>* timelines) {
  absl::StatusOr<std::vector<v1::JobSummary>> jobs = coordinator.ListJobs(static_cast<uint32_t>(page_jobs));
  std::string out =
      "<h2>Recent jobs</h2>\n<table id=\"jobs\"><thead><tr><th>id</th><th>name</th>"
      "<th>kind</th><th>state</th><th>tasks</th><th>submitted</th><th>wall (s)</th>"
      "<th>speedup</th><th>efficiency</th></tr></thead><tbody>\n";
  if (jobs.ok()) {
    for (const v1::JobSummary& j : *jobs) {
      const bool wants_timeline = static_cast<int>(timelines->size()) < page_timelines;
      absl::StatusOr<v1::JobReport> report =
          coordinator.GetReport(j.id(), /*include_tasks=*/false, /*include_attempts=*/wants_timeline);
      absl::StrAppend(&out, JobRow(j, report));
      if (report.ok() && wants_timeline) timelines->push_back(*std::move(report));
    }
  }
  if (!jobs.ok() || jobs->empty()) absl::StrAppend(&out, "<tr><td colspan=\"9\">no job yet</td></tr>\n");
  absl::StrAppend(&out, "</tbody></table>\n");
  return out;
}

// Stragglers listed under a timeline, with their causes.
constexpr int kPageStragglers = 10;

// Per worker: steal and throttling over the job (when it measured any of
// its tasks), and why the first stragglers were slow (from their final
// attempts' figures, as in the report's slow_cause).
std::string InterferenceSection(const v1::JobReport& r) {
  std::string out;
  for (const v1::WorkerTiming& w : r.workers()) {
    if (w.tasks_measured() == 0) continue;
    absl::StrAppend(&out, "<tr><td>", Html(w.name()), "</td><td class=\"n\">", report::Percent(w.steal_share()),
                    "</td><td class=\"n\">", report::Fixed(w.throttled_seconds(), 3), "</td><td class=\"n\">",
                    report::Fixed(w.run_queue_wait_seconds(), 3), "</td><td class=\"n\">",
                    w.involuntary_switches(), "</td></tr>\n");
  }
  if (!out.empty()) {
    out = absl::StrCat(
        "<table class=\"interference\"><thead><tr><th>worker</th><th>steal</th><th>throttled (s)</th>"
        "<th>waited for a CPU (s)</th><th>involuntary switches</th></tr></thead><tbody>\n",
        out, "</tbody></table>\n");
  }
  std::vector<std::string> causes;
  for (const v1::AttemptTiming& a : r.attempts()) {
    if (a.state() != v1::TASK_STATE_SUCCEEDED || static_cast<int>(causes.size()) >= kPageStragglers ||
        !std::binary_search(r.stragglers().begin(), r.stragglers().end(), a.index())) {
      continue;
    }
    const std::optional<v1::Interference> m =
        a.has_interference() ? std::optional(a.interference()) : std::nullopt;
    const std::optional<double> ratio = a.rate_ratio() > 0 ? std::optional(a.rate_ratio()) : std::nullopt;
    causes.push_back(absl::StrCat("task ", a.index(), ": ", StragglerCause(m, a.seconds(), ratio)));
  }
  if (!causes.empty()) {
    absl::StrAppend(&out, "<p class=\"muted stragglers\">Slow tasks: ", Html(absl::StrJoin(causes, "; ")), "</p>\n");
  }
  return out;
}

std::string TimelineSection(const v1::JobReport& r) {
  return absl::StrCat("<h2 id=\"job-", Html(r.id()), "\">Timeline of ", Html(r.id()),
                      r.name().empty() ? "" : " (" + Html(r.name()) + ")", "</h2>\n<div class=\"timeline\">",
                      report::TimelineSvg(r), "</div>\n", InterferenceSection(r));
}

constexpr absl::string_view kSessionCookie = "busyfleet_session";
// No scripts, no external anything; forms post only back here; no framing.
constexpr absl::string_view kPagePolicy =
    "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'";

void SetPage(httplib::Response& res, std::string html) {
  res.set_header("Content-Security-Policy", std::string(kPagePolicy));
  res.set_header("Cache-Control", "no-store");
  res.set_content(std::move(html), "text/html; charset=utf-8");
}

void SeeOther(httplib::Response& res, const char* location) {
  res.status = 303;
  res.set_header("Location", location);
}

// The login form; `error` (if any) above it.
std::string LoginPageHtml(absl::string_view error) {
  return absl::StrCat(
      "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>busyfleet: log in</title><style>",
      kStyle,
      "</style></head><body>\n<h1>busyfleet coordinator</h1>\n",
      error.empty() ? "" : absl::StrCat("<p id=\"error\" class=\"FAILED\">", Html(error), "</p>\n"),
      "<form id=\"login\" method=\"post\" action=\"/login\"><label>Viewer or client token "
      "<input type=\"password\" name=\"token\" autocomplete=\"current-password\" required autofocus>"
      "</label> <button type=\"submit\">Log in</button></form>\n</body></html>\n");
}

// The status page with who is logged in and a logout button before </body>.
std::string WithLogout(std::string page, Role role) {
  const size_t at = page.rfind("</body>");
  if (at == std::string::npos) return page;
  page.insert(at, absl::StrCat("<form id=\"logout\" method=\"post\" action=\"/logout\" class=\"muted\">"
                               "logged in with the ",
                               RoleName(role), " token <button type=\"submit\">Log out</button></form>\n"));
  return page;
}

// The value of cookie `name` in the request's Cookie headers, if any.
std::optional<std::string> CookieValue(const httplib::Request& req, absl::string_view name) {
  const size_t n = req.get_header_value_count("Cookie");
  for (size_t i = 0; i < n; ++i) {
    for (absl::string_view part : absl::StrSplit(req.get_header_value("Cookie", i), ';')) {
      part = absl::StripAsciiWhitespace(part);
      if (absl::ConsumePrefix(&part, name) && absl::ConsumePrefix(&part, "=")) return std::string(part);
    }
  }
  return std::nullopt;
}

// The form field `name` of an application/x-www-form-urlencoded body (never
// the URL's query: a token must not travel in a URL).
std::optional<std::string> FormField(const httplib::Request& req, const std::string& name) {
  if (!absl::StartsWithIgnoreCase(req.get_header_value("Content-Type"), "application/x-www-form-urlencoded")) {
    return std::nullopt;
  }
  httplib::Params fields;
  httplib::detail::parse_query_text(req.body, fields);
  auto it = fields.find(name);
  if (it == fields.end()) return std::nullopt;
  return it->second;
}

}  // namespace

std::string StatusPageHtml(Coordinator& coordinator, int page_jobs, int page_timelines, absl::Time now) {
  const MetricsSnapshot metrics = coordinator.Metrics();
  const std::vector<v1::WorkerInfo> workers = coordinator.ListWorkers(/*include_gone=*/true);
  std::vector<v1::JobReport> timelines;
  std::string out = absl::StrCat(PageHead(now, metrics), WorkersSection(workers, now),
                                 JobsSection(coordinator, page_jobs, page_timelines, &timelines));
  for (const v1::JobReport& r : timelines) absl::StrAppend(&out, TimelineSection(r));
  absl::StrAppend(&out, "</body></html>\n");
  return out;
}

HttpServer::HttpServer(Options options)
    : options_(std::move(options)), sessions_(options_.sessions), login_limit_(options_.login_limit) {}

HttpServer::~HttpServer() { Shutdown(); }

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(Options options) {
  if (options.coordinator == nullptr) return absl::InvalidArgumentError("http server: no coordinator");
  absl::StatusOr<std::string> host = HostOfAddress("--http-listen", options.listen);
  if (!host.ok()) return host.status();
  int port = 0;
  const absl::string_view port_text = absl::string_view(options.listen).substr(options.listen.rfind(':') + 1);
  if (!absl::SimpleAtoi(port_text, &port) || port < 0 || port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("--http-listen: port must be a number from 0 to 65535, got \"", port_text, "\""));
  }
  std::unique_ptr<HttpServer> s(new HttpServer(std::move(options)));
  const HttpServer::Options& o = s->options_;
  if (!o.tls_cert.empty()) {
    auto ssl = std::make_unique<httplib::SSLServer>(o.tls_cert.c_str(), o.tls_key.c_str(),
                                                    o.tls_client_ca.empty() ? nullptr : o.tls_client_ca.c_str());
    if (!ssl->is_valid()) {
      return absl::InvalidArgumentError("--http-listen: cannot load the TLS certificate, key or client CA");
    }
    s->server_ = std::move(ssl);
  } else {
    s->server_ = std::make_unique<httplib::Server>();
  }
  s->Route();
  // cpp-httplib binds with SO_REUSEPORT by default, which lets a second
  // coordinator's status page start on this address beside this one's.
  s->server_->set_socket_options([](int sock) {
    const int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  const std::string bind_host = *host == "localhost" ? "127.0.0.1" : *host;
  if (port == 0) {
    s->port_ = s->server_->bind_to_any_port(bind_host);
  } else {
    s->port_ = s->server_->bind_to_port(bind_host, port) ? port : -1;
  }
  if (s->port_ <= 0) {
    return absl::UnavailableError(absl::StrCat("--http-listen: cannot listen on ", o.listen,
                                               " (address in use or not on this machine)"));
  }
  HttpServer* raw = s.get();
  s->thread_ = std::thread([raw] { raw->server_->listen_after_bind(); });
  // stop() is a no-op until the loop runs: wait for it, so that a Shutdown
  // right after Start cannot leave the thread listening forever.
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (!s->server_->is_running() && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(1));
  return s;
}

void HttpServer::Route() {
  server_->Get("/healthz", [this](const httplib::Request&, httplib::Response& res) {
    // Serving unless the store cannot write (then 503 and why).
    const StoreHealth store = options_.coordinator->Metrics().store;
    if (!store.writable) {
      res.status = 503;
      res.set_content(absl::StrCat("not serving: ", store.cause, "; ", store.backlog_rows,
                                   " rows wait to be written\n"),
                      "text/plain; charset=utf-8");
      return;
    }
    res.set_content("ok\n", "text/plain; charset=utf-8");
  });
  server_->Get("/metrics", [this](const httplib::Request& req, httplib::Response& res) {
    if (!Authorized(req, res)) return;
    res.set_content(PrometheusText(options_.coordinator->Metrics()), "text/plain; version=0.0.4; charset=utf-8");
  });
  server_->Get("/", [this](const httplib::Request& req, httplib::Response& res) {
    if (!Authorized(req, res)) return;
    std::string page = StatusPageHtml(*options_.coordinator, options_.page_jobs, options_.page_timelines, absl::Now());
    const std::optional<Role> session = req.has_header("Authorization") ? std::nullopt : SessionRole(req);
    SetPage(res, session ? WithLogout(std::move(page), *session) : std::move(page));
  });
  RouteLogin();
}

void HttpServer::RouteLogin() {
  server_->Get("/login", [this](const httplib::Request&, httplib::Response& res) {
    if (!options_.authenticator.enabled()) return SeeOther(res, "/");  // nothing to log in to
    SetPage(res, LoginPageHtml(""));
  });
  server_->Post("/login", [this](const httplib::Request& req, httplib::Response& res) { Login(req, res); });
  server_->Post("/logout", [this](const httplib::Request& req, httplib::Response& res) { Logout(req, res); });
}

bool HttpServer::Authorized(const httplib::Request& req, httplib::Response& res) {
  absl::Status st;
  if (req.has_header("Authorization")) {
    const std::string value = req.get_header_value("Authorization");
    const absl::string_view view(value);
    st = options_.authenticator.CheckAuthorization(Role::kViewer, &view);
  } else if (SessionRole(req).has_value()) {
    return true;
  } else {
    st = options_.authenticator.CheckAuthorization(Role::kViewer, nullptr);
  }
  if (st.ok()) return true;
  if (!req.has_header("Authorization") && absl::StrContains(req.get_header_value("Accept"), "text/html")) {
    SeeOther(res, "/login");  // a browser: to the login form
    return false;
  }
  res.status = st.code() == absl::StatusCode::kPermissionDenied ? 403 : 401;
  res.set_header("WWW-Authenticate", "Bearer");
  res.set_content(absl::StrCat(st.message(), "\n"), "text/plain; charset=utf-8");
  return false;
}

std::optional<Role> HttpServer::SessionRole(const httplib::Request& req) {
  if (!options_.authenticator.enabled()) return std::nullopt;
  const std::optional<std::string> id = CookieValue(req, kSessionCookie);
  if (!id) return std::nullopt;
  return sessions_.Lookup(*id);
}

std::optional<std::string> HttpServer::CrossSite(const httplib::Request& req) const {
  if (!req.has_header("Origin")) return std::nullopt;
  const std::string origin = req.get_header_value("Origin");
  const std::string ours = absl::StrCat(options_.tls_cert.empty() ? "http://" : "https://",
                                        req.get_header_value("Host"));
  if (absl::EqualsIgnoreCase(origin, ours)) return std::nullopt;
  const std::string shown = report::TruncateText(absl::CHexEscape(origin), 200);
  return absl::StrCat("cross-site form post (Origin ", shown, ", this page is ", absl::CHexEscape(ours), ")");
}

bool HttpServer::RefuseCrossSite(const httplib::Request& req, httplib::Response& res) {
  const std::optional<std::string> why = CrossSite(req);
  if (!why) return false;
  LogRefusedLogin(req, *why);
  res.status = 403;
  res.set_content("Refused: a cross-site form post (its Origin is not this page's).\n", "text/plain; charset=utf-8");
  return true;
}

void HttpServer::Login(const httplib::Request& req, httplib::Response& res) {
  if (!options_.authenticator.enabled()) return SeeOther(res, "/");
  if (RefuseCrossSite(req, res)) return;
  absl::Duration retry_after;
  if (!login_limit_.Allow(req.remote_addr, &retry_after)) {
    LogRefusedLogin(req, "too many failed logins from this address");
    res.status = 429;
    res.set_header("Retry-After", std::to_string(absl::ToInt64Seconds(absl::Ceil(retry_after, absl::Seconds(1)))));
    return SetPage(res, LoginPageHtml("Too many failed logins from your address; try again later."));
  }
  const std::optional<std::string> token = FormField(req, "token");
  absl::Status st = absl::UnauthenticatedError("no token in the form");
  Role role = Role::kClient;
  if (token && !options_.authenticator.CheckToken(Role::kClient, *token).ok()) {
    role = Role::kViewer;
    st = options_.authenticator.CheckToken(Role::kViewer, *token);  // its refusal says what reading needs
  } else if (token) {
    st = absl::OkStatus();
  }
  if (!st.ok()) {
    login_limit_.Failed(req.remote_addr);
    LogRefusedLogin(req, st.message());
    res.status = st.code() == absl::StatusCode::kPermissionDenied ? 403 : 401;
    return SetPage(res, LoginPageHtml(st.code() == absl::StatusCode::kPermissionDenied
                                          ? "That token cannot read the status page (a viewer or client token can)."
                                          : "Wrong token."));
  }
  absl::StatusOr<std::string> id = sessions_.Create(role);
  if (!id.ok()) {
    res.status = 500;
    return res.set_content(absl::StrCat(id.status().message(), "\n"), "text/plain; charset=utf-8");
  }
  res.set_header("Set-Cookie", absl::StrCat(kSessionCookie, "=", *id, "; Path=/; Max-Age=",
                                            absl::ToInt64Seconds(options_.sessions.ttl),
                                            "; HttpOnly; SameSite=Strict", options_.tls_cert.empty() ? "" : "; Secure"));
  spdlog::info("status page login ({} token) from {}", RoleName(role), req.remote_addr);
  SeeOther(res, "/");
}

void HttpServer::Logout(const httplib::Request& req, httplib::Response& res) {
  if (RefuseCrossSite(req, res)) return;
  if (const std::optional<std::string> id = CookieValue(req, kSessionCookie)) sessions_.Remove(*id);
  res.set_header("Set-Cookie", absl::StrCat(kSessionCookie, "=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict",
                                            options_.tls_cert.empty() ? "" : "; Secure"));
  SeeOther(res, "/login");
}

void HttpServer::LogRefusedLogin(const httplib::Request& req, absl::string_view why) {
  uint64_t suppressed = 0;
  if (!log_limit_.Allow(&suppressed)) return;
  spdlog::warn("refused status page login from {}: {}{}", req.remote_addr, why,
               suppressed > 0 ? fmt::format(" ({} more refusals not logged)", suppressed) : "");
}

void HttpServer::Shutdown() {
  if (server_) server_->stop();
  if (thread_.joinable()) thread_.join();
}

}  // namespace busyfleet::coordinator
