#!/usr/bin/env python3
"""End to end, the viewer role and the status page's login: a real
coordinator with worker, client and viewer tokens. The HTTP flows (login,
session cookie, logout, refusals, the failed-login limit, Bearer for
scripts) over http.client; the viewer's gRPC rights through coordctl; and
one real headless Chromium, driven over the DevTools protocol on a pipe
(--remote-debugging-pipe: no websocket module needed), that logs in through
the form, sees the page, and logs out.

Run: python3 tests/e2e/web_login_test.py --bin-dir build/release [-v]
"""
import http.client
import json
import os
import re
import secrets
import shutil
import signal
import ssl
import subprocess
import tempfile
import time
import unittest
import urllib.parse

import harness
from harness import DEADLINE, binary
from security_test import make_certs

COOKIE = "busyfleet_session"


def set_cookie(headers):
    """The Set-Cookie header of a response ('' if none)."""
    return headers.get("Set-Cookie", "")


def session_of(headers):
    m = re.match(COOKIE + r"=([^;]*)", set_cookie(headers))
    return m.group(1) if m else None


class WebCase(harness.ClusterCase):
    """A coordinator requiring worker, client and viewer tokens."""

    def setUp(self):
        super().setUp()
        self.tokens = {role: f"{role[0]}tok-{secrets.token_urlsafe(24)}" for role in ("worker", "client", "viewer")}
        self.files = {role: self.write_token(role, t) for role, t in self.tokens.items()}
        self.conn_args = {}

    def write_token(self, name, value):
        path = os.path.join(self.tmp.name, name + ".token")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(value + "\n")
        return path

    def start(self, *extra):
        self.start_coordinator("--worker-token-file", self.files["worker"], "--client-token-file",
                               self.files["client"], "--viewer-token-file", self.files["viewer"], *extra)

    def request(self, method, path, form=None, headers=None):
        """(status, headers, body); never follows a redirect."""
        host, port = self.http_address.rsplit(":", 1)
        if self.conn_args:
            conn = http.client.HTTPSConnection(host, int(port), timeout=10, **self.conn_args)
        else:
            conn = http.client.HTTPConnection(host, int(port), timeout=10)
        h = dict(headers or {})
        body = None
        if form is not None:
            h["Content-Type"] = "application/x-www-form-urlencoded"
            body = urllib.parse.urlencode(form)
        try:
            conn.request(method, path, body=body, headers=h)
            r = conn.getresponse()
            return r.status, r.headers, r.read().decode("utf-8")
        finally:
            conn.close()

    def login(self, token):
        return self.request("POST", "/login", {"token": token})

    def with_session(self, session, **headers):
        return {"Cookie": f"{COOKIE}={session}", **headers}

    def assert_not_logged(self):
        text = "\n".join(self.coordinator.lines)
        for role, token in self.tokens.items():
            self.assertNotIn(token, text, f"the {role} token appears in the coordinator's log")

    def coordctl_as(self, role, *args, check=None):
        return self.coordctl("--token-file", self.files[role], "--timeout", "5s", *args, check=check)


class LoginTest(WebCase):
    def setUp(self):
        super().setUp()
        self.start()

    def test_a_browser_without_a_session_is_sent_to_the_login_form(self):
        status, headers, _ = self.request("GET", "/", headers={"Accept": "text/html,application/xhtml+xml"})
        self.assertEqual((status, headers["Location"]), (303, "/login"))
        status, _, body = self.request("GET", "/login")
        self.assertEqual(status, 200)
        self.assertIn('<form id="login" method="post" action="/login">', body)
        # Scripts (no text/html in Accept) keep their 401.
        status, headers, _ = self.request("GET", "/")
        self.assertEqual((status, headers["WWW-Authenticate"]), (401, "Bearer"))
        self.assertEqual(self.request("GET", "/metrics")[0], 401)

    def test_a_viewer_login_gives_a_strict_http_only_session_that_reads(self):
        status, headers, _ = self.login(self.tokens["viewer"])
        self.assertEqual((status, headers["Location"]), (303, "/"))
        cookie = set_cookie(headers)
        attributes = {a.strip().split("=")[0] for a in cookie.split(";")[1:]}
        self.assertEqual(attributes, {"Path", "Max-Age", "HttpOnly", "SameSite"}, cookie)  # no Secure without TLS
        self.assertIn("SameSite=Strict", cookie)
        self.assertIn("Max-Age=43200", cookie)  # --session-ttl's default, 12 h
        self.assertRegex(session_of(headers), r"^[0-9a-f]{64}$")
        status, _, page = self.request("GET", "/", headers=self.with_session(session_of(headers)))
        self.assertEqual(status, 200)
        self.assertIn('<table id="workers">', page)
        self.assertIn("logged in with the viewer token", page)
        status, _, metrics = self.request("GET", "/metrics", headers=self.with_session(session_of(headers)))
        self.assertEqual(status, 200)
        self.assertIn("busyfleet_", metrics)
        self.coordinator.wait_for_line(r"status page login \(viewer token\) from 127\.0\.0\.1")
        self.assert_not_logged()

    def test_logout_ends_the_session_on_the_server(self):
        _, headers, _ = self.login(self.tokens["client"])
        session = session_of(headers)
        _, _, page = self.request("GET", "/", headers=self.with_session(session))
        self.assertIn("logged in with the client token", page)
        status, headers, _ = self.request("POST", "/logout", headers=self.with_session(session))
        self.assertEqual((status, headers["Location"]), (303, "/login"))
        self.assertIn("Max-Age=0", set_cookie(headers))
        # The old cookie, replayed, opens nothing.
        self.assertEqual(self.request("GET", "/", headers=self.with_session(session))[0], 401)
        self.assertEqual(self.request("GET", "/metrics", headers=self.with_session(session))[0], 401)

    def test_wrong_or_worker_tokens_are_refused_and_logged_without_the_token(self):
        status, headers, body = self.login("wrong-" + secrets.token_hex(8))
        self.assertEqual(status, 401)
        self.assertEqual(set_cookie(headers), "")
        self.assertIn("Wrong token.", body)
        status, headers, body = self.login(self.tokens["worker"])
        self.assertEqual(status, 403)
        self.assertEqual(set_cookie(headers), "")
        self.assertEqual(self.request("POST", "/login", {"nothing": "here"})[0], 401)
        self.assertEqual(self.request("GET", "/", headers=self.with_session("0" * 64))[0], 401)
        self.coordinator.wait_for_line(r"refused status page login from 127\.0\.0\.1: invalid token")
        self.coordinator.wait_for_line(r"refused status page login from 127\.0\.0\.1: a worker token cannot read")
        self.assert_not_logged()

    def test_a_token_in_the_url_is_never_accepted(self):
        query = urllib.parse.urlencode({"token": self.tokens["client"]})
        status, headers, _ = self.request("POST", "/login?" + query, headers={"Content-Length": "0"})
        self.assertEqual(status, 401)
        self.assertEqual(set_cookie(headers), "")
        status, headers, _ = self.request("GET", "/login?" + query)
        self.assertEqual((status, set_cookie(headers)), (200, ""))

    def test_cross_site_form_posts_are_refused(self):
        """Login CSRF: another site's page posting its own token to /login
        (or a forced /logout) is refused on its Origin; a same-origin form
        and scripts that send no Origin go through."""
        evil = {"Origin": "https://evil.example"}
        status, headers, body = self.request("POST", "/login", {"token": self.tokens["viewer"]}, headers=evil)
        self.assertEqual((status, set_cookie(headers)), (403, ""))
        self.assertIn("cross-site", body)
        self.coordinator.wait_for_line(r"refused status page login from 127\.0\.0\.1: cross-site form post "
                                       r"\(Origin https://evil\.example")
        self.assertEqual(self.request("POST", "/login", {"token": self.tokens["viewer"]},
                                      headers={"Origin": "null"})[0], 403)
        _, headers, _ = self.login(self.tokens["viewer"])
        session = session_of(headers)
        status, headers, _ = self.request("POST", "/logout", headers=self.with_session(session, **evil))
        self.assertEqual(status, 403)
        self.assertEqual(self.request("GET", "/", headers=self.with_session(session))[0], 200, "still logged in")
        same = {"Origin": "http://" + self.http_address}
        status, headers, _ = self.request("POST", "/login", {"token": self.tokens["viewer"]}, headers=same)
        self.assertEqual((status, headers["Location"]), (303, "/"))
        status, headers, _ = self.request("POST", "/logout", headers=self.with_session(session, **same))
        self.assertEqual((status, headers["Location"]), (303, "/login"))

    def test_failed_logins_are_limited_per_address(self):
        for i in range(5):
            self.assertEqual(self.login(f"guess-{i}")[0], 401, i)
        status, headers, body = self.login("guess-5")
        self.assertEqual(status, 429)
        self.assertGreater(int(headers["Retry-After"]), 0)
        self.assertIn("Too many failed logins", body)
        # While the bucket is empty even the right token waits.
        self.assertEqual(self.login(self.tokens["viewer"])[0], 429)
        self.coordinator.wait_for_line(r"refused status page login from 127\.0\.0\.1: too many failed logins")
        # Bearer for scripts is not a login and not limited.
        self.assertEqual(self.request("GET", "/metrics",
                                      headers={"Authorization": "Bearer " + self.tokens["viewer"]})[0], 200)

    def test_bearer_tokens_keep_working_for_scripts_and_prometheus(self):
        for role, expected in (("viewer", 200), ("client", 200), ("worker", 403)):
            for path in ("/metrics", "/"):
                status, _, _ = self.request("GET", path, headers={"Authorization": "Bearer " + self.tokens[role]})
                self.assertEqual(status, expected, f"{role} {path}")
        self.assertEqual(self.request("GET", "/metrics", headers={"Authorization": "Bearer nope"})[0], 401)
        self.assertEqual(self.request("GET", "/healthz")[0], 200)


class ViewerGrpcTest(WebCase):
    def test_the_viewer_reads_everything_and_changes_nothing(self):
        self.start()
        self.start_worker("v-1", "--token-file", self.files["worker"])
        self.wait_for(lambda: json.loads(self.coordctl_as("viewer", "-o", "json", "workers", check=0).stdout),
                      what="a worker listed to the viewer")
        job = json.loads(self.coordctl_as("client", "-o", "json", "submit", "--tasks", "2", "--iterations",
                                          "1000", "--wait", check=0).stdout)
        self.assertEqual(job["state"], "SUCCEEDED")
        self.assertEqual(json.loads(self.coordctl_as("viewer", "-o", "json", "status", job["id"], check=0).stdout)["id"],
                         job["id"])
        self.assertEqual(len(json.loads(self.coordctl_as("viewer", "-o", "json", "jobs", check=0).stdout)), 1)
        self.coordctl_as("viewer", "watch", job["id"], check=0)
        self.coordctl_as("viewer", "health", check=0)
        for args in (("submit", "--tasks", "1", "--iterations", "1"), ("submit", "--tasks", "1", "--iterations",
                                                                        "1", "--wait"),
                     ("cancel", job["id"]), ("drain", "v-1")):
            p = self.coordctl_as("viewer", *args, check=3)
            self.assertIn("PERMISSION_DENIED", p.stderr, args)
        self.assertEqual(len(json.loads(self.coordctl_as("client", "-o", "json", "jobs", check=0).stdout)), 1)
        self.coordinator.wait_for_line(r"refused viewer call SubmitJob|refused client call SubmitJob")
        self.assert_not_logged()


class SecureCookieTest(WebCase):
    def test_under_tls_the_session_cookie_is_secure(self):
        certs = os.path.join(self.tmp.name, "certs")
        make_certs(certs, "--clients", "")
        self.start("--tls-cert", os.path.join(certs, "server.pem"), "--tls-key", os.path.join(certs, "server.key"))
        self.conn_args = {"context": ssl.create_default_context(cafile=os.path.join(certs, "ca.pem"))}
        status, headers, _ = self.login(self.tokens["viewer"])
        self.assertEqual(status, 303)
        self.assertRegex(set_cookie(headers), r"; Secure$")
        status, headers, _ = self.request("POST", "/logout", headers=self.with_session(session_of(headers)))
        self.assertRegex(set_cookie(headers), r"Max-Age=0.*; Secure$")


class Chromium:
    """Headless Chromium driven over the DevTools protocol on a pipe: JSON
    messages separated by NUL, written to its fd 3, read from its fd 4."""

    def __init__(self, executable):
        # Everything chromium writes goes under one directory of ours: its
        # profile, and through TMPDIR the singleton socket's directory it
        # makes in /tmp (a killed browser cannot remove that itself).
        self.root = tempfile.mkdtemp(prefix="bf-chromium-")
        self.profile = os.path.join(self.root, "profile")
        to_chrome_r, self.to_chrome = os.pipe()
        self.from_chrome, from_chrome_w = os.pipe()

        def wire():
            os.dup2(to_chrome_r, 3)
            os.dup2(from_chrome_w, 4)

        self.proc = subprocess.Popen(
            [executable, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--remote-debugging-pipe", f"--user-data-dir={self.profile}", "about:blank"],
            pass_fds=(3, 4), preexec_fn=wire, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env=dict(os.environ, TMPDIR=self.root),
            start_new_session=True)  # its own process group: close() stops its helpers too
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self.buffer = b""
        self.next_id = 0
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]

    def _message(self):
        while b"\0" not in self.buffer:
            chunk = os.read(self.from_chrome, 1 << 16)
            if not chunk:
                raise AssertionError("chromium closed the DevTools pipe")
            self.buffer += chunk
        raw, self.buffer = self.buffer.split(b"\0", 1)
        return json.loads(raw)

    def call(self, method, params=None, page=False):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if page:
            msg["sessionId"] = self.session
        os.write(self.to_chrome, json.dumps(msg).encode() + b"\0")
        while True:
            m = self._message()
            if m.get("id") == self.next_id:
                if "error" in m:
                    raise AssertionError(f"{method}: {m['error']}")
                return m["result"]

    def eval(self, expression):
        r = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True}, page=True)
        return r["result"].get("value")

    # What Runtime.evaluate answers when the page navigates under it (a
    # form just submitted): the new page is not there yet, ask again.
    NAVIGATING = ("Inspected target navigated or closed", "Execution context was destroyed",
                  "Cannot find context with specified id")

    def poll(self, expression):
        try:
            return self.eval(expression)
        except AssertionError as e:
            if any(m in str(e) for m in self.NAVIGATING):
                return None
            raise

    def wait_until(self, expression, what, timeout=DEADLINE):
        end = time.monotonic() + timeout
        while not self.poll(expression):
            if time.monotonic() > end:
                raise AssertionError(f"chromium: {what} not within {timeout}s; at {self.eval('location.href')}")
            time.sleep(0.05)

    def close(self):
        # The whole group: chromium's helpers outlive a killed browser a
        # moment and wrote into the profile after it was removed (2 runs of
        # 10 left one behind in /tmp; every run left a singleton directory).
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=10)
        os.close(self.to_chrome)
        os.close(self.from_chrome)
        deadline = time.monotonic() + 10
        while True:
            try:
                os.killpg(self.proc.pid, 0)  # a helper still there (or not yet reaped)
                alive = True
            except ProcessLookupError:
                alive = False
            shutil.rmtree(self.root, ignore_errors=True)
            if (not alive and not os.path.exists(self.root)) or time.monotonic() > deadline:
                break
            time.sleep(0.05)  # polling the group's end, with a deadline


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@unittest.skipIf(CHROMIUM is None, "chromium is not installed")
class ChromiumTest(WebCase):
    def test_chromium_logs_in_sees_the_page_and_logs_out(self):
        self.start()
        browser = Chromium(CHROMIUM)
        self.addCleanup(browser.close)
        base = f"http://{self.http_address}"
        loaded = "document.readyState === 'complete' && location.pathname === '{}'"
        browser.call("Page.navigate", {"url": base + "/"}, page=True)
        browser.wait_until(loaded.format("/login") + " && !!document.getElementById('login')", "the login form")
        # A wrong token first: the form comes back with the error.
        fill = "document.querySelector('input[name=token]').value = {}; document.getElementById('login').submit()"
        browser.eval(fill.format(json.dumps("not-the-token")))
        browser.wait_until("!!document.getElementById('error')", "the wrong-token error")
        browser.eval(fill.format(json.dumps(self.tokens["viewer"])))
        browser.wait_until(loaded.format("/") + " && !!document.getElementById('workers')", "the status page")
        self.assertIn("busyfleet coordinator", browser.eval("document.body.innerText"))
        self.assertIn("logged in with the viewer token", browser.eval("document.body.innerText"))
        self.assertEqual(browser.eval("document.cookie"), "")  # HttpOnly: no script sees it
        cookies = browser.call("Network.getCookies", {"urls": [base + "/"]}, page=True)["cookies"]
        self.assertEqual([(c["name"], c["httpOnly"], c["sameSite"], c["secure"]) for c in cookies],
                         [(COOKIE, True, "Strict", False)])
        browser.eval("document.getElementById('logout').submit()")
        browser.wait_until(loaded.format("/login") + " && !!document.getElementById('login')", "back at the login")
        self.assertEqual(browser.call("Network.getCookies", {"urls": [base + "/"]}, page=True)["cookies"], [])
        browser.call("Page.navigate", {"url": base + "/"}, page=True)
        browser.wait_until(loaded.format("/login"), "the login form again")
        self.assert_not_logged()


if __name__ == "__main__":
    harness.main()
