#!/usr/bin/env python3
"""End to end, security: bearer tokens (one for both roles, or one per role),
the rate-limited log of refused logins, TLS and mutual TLS with certificates
from deploy/make-certs.sh, and the coordinator's start-up refusals. Real
coordinator, worker and coordctl processes on loopback ports chosen at run
time.

Run: python3 tests/e2e/security_test.py --bin-dir build/release [-v]

The last three tests of MutualTlsTest and StartupTest pin bugs found while
writing this file (now fixed): a worker refused at the TLS handshake said
nothing, one that never attached ignored SIGTERM, and a certificate/key
mismatch crashed the coordinator.
"""
import datetime
import errno
import math
import os
import re
import secrets
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import unittest
import urllib.error
import urllib.request

import harness
from harness import Daemon, binary, DEADLINE

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
MAKE_CERTS = os.path.join(REPO, "deploy", "make-certs.sh")

# Another engineer may rebuild the binaries while this runs: a binary can be
# missing, half written or linked against a library being rewritten for a
# moment. Those (and only those) failures are retried.
RETRY_FOR = 60.0
LOADER_ERROR = "error while loading shared libraries"
RETRY_ERRNOS = {errno.ENOENT, errno.ETXTBSY, errno.ENOEXEC, errno.EACCES}

REFUSED = r"refused (worker|client|viewer) call \S+ from (ipv4|ipv6|unix):\S+"
# "(8 more refusals not logged)", or "... 8 refusals suppressed".
SUPPRESSED = r"(\d+)\s+(?:more\s+)?(?:refusals?\s+|login failures?\s+)?(?:not logged|suppressed)"


def run_tool(argv, timeout=120):
    """subprocess.run, retried while the binary is being rebuilt."""
    end = time.monotonic() + RETRY_FOR
    while True:
        try:
            p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        except OSError as e:
            if e.errno not in RETRY_ERRNOS or time.monotonic() > end:
                raise
        else:
            if not (p.returncode == 127 and LOADER_ERROR in p.stderr) or time.monotonic() > end:
                return p
        time.sleep(0.5)  # back-off while the build finishes, not synchronisation


def start_daemon(argv, first_line, timeout=DEADLINE):
    """Starts a Daemon and waits for `first_line`; retried while rebuilding."""
    end = time.monotonic() + RETRY_FOR
    while True:
        try:
            d = Daemon(argv)
        except OSError as e:
            if e.errno not in RETRY_ERRNOS or time.monotonic() > end:
                raise
            time.sleep(0.5)
            continue
        try:
            d.wait_for_line(first_line, timeout)
            return d
        except AssertionError:
            if d.proc.poll() is None:
                d.stop(signal.SIGKILL)
            else:
                d.reader.join(5)
            if not any(LOADER_ERROR in line for line in d.lines) or time.monotonic() > end:
                raise
            time.sleep(0.5)


def make_certs(outdir, *args):
    p = subprocess.run(["bash", MAKE_CERTS, outdir, *args], capture_output=True, text=True, timeout=60)
    if p.returncode != 0:
        raise AssertionError(f"make-certs.sh {outdir} {' '.join(args)}: rc {p.returncode}\n{p.stdout}\n{p.stderr}")
    return p


def openssl_text(pem):
    return subprocess.run(["openssl", "x509", "-in", pem, "-noout", "-text"], capture_output=True, text=True,
                          check=True).stdout


class SecurityCase(harness.ClusterCase):
    """ClusterCase whose coordctl presents `self.auth` (token and TLS flags)."""

    def setUp(self):
        super().setUp()
        self.dir = self.tmp.name
        self.auth = []
        self.outputs = []  # everything coordctl printed, to look for leaked secrets

    def write_token(self, name, value):
        path = os.path.join(self.dir, name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(value + "\n")  # as `echo TOKEN > file` writes it
        os.chmod(path, 0o600)
        return path

    def start_coordinator(self, *extra, listen="127.0.0.1:0", db=":memory:", timeout="2s", prefix=()):
        # A bound port is never 0: the --insecure warning also says
        # "listening on 0.0.0.0:0", before the port is picked.
        listening = r"listening on (\S+:[1-9]\d*)\b"
        http = [] if any(a.startswith("--http-listen") for a in extra) else \
            ["--http-listen", "" if prefix else "127.0.0.1:0"]
        self.coordinator = start_daemon([*prefix, binary("coordinator/coordinator"), "--listen", listen,
                                         *http, "--db", db, "--worker-timeout", timeout, *extra], listening)
        m = self.coordinator.wait_for_line(listening)
        self.address = m.group(1)
        return self.coordinator

    def start_worker(self, name, *extra, slots=1, prefix=(), coordinator=None):
        # Every worker logs its host facts first: waiting for that line
        # catches one that could not even start (binary being rebuilt).
        w = start_daemon([*prefix, binary("worker/worker"), "--coordinator", coordinator or self.address,
                          "--slots", str(slots), "--name", name, *extra], r"\[worker\]")
        self.workers.append(w)
        return w

    def coordctl(self, *args, check=None, auth=None):
        cmd = [binary("coordinator/coordctl"), "--coordinator", self.address, "--timeout", "5s",
               *(self.auth if auth is None else auth), *args]
        p = run_tool(cmd)
        self.outputs.append(p.stdout + p.stderr)
        if check is not None:
            self.assertEqual(p.returncode, check, f"{cmd}: rc {p.returncode}\n{p.stdout}\n{p.stderr}")
        return p

    def assert_refused(self, expected_code, *, auth):
        """coordctl with `auth` exits 3 and names `expected_code`."""
        p = self.coordctl("-o", "json", "workers", auth=auth, check=3)
        self.assertIn(expected_code, p.stderr)
        return p

    def worker_names(self):
        return sorted(w["name"] for w in self.coordctl_json("workers"))

    def wait_for_worker_names(self, names, timeout=DEADLINE):
        self.wait_for(lambda: self.worker_names() == sorted(names) and len(self.ready_workers()) == len(names),
                      timeout, f"workers {names} ready")

    def run_small_job(self):
        r = self.coordctl_json("submit", "--tasks", "2", "--iterations", "100000", "--wait")
        self.assertEqual(r["state"], "SUCCEEDED", r)
        return r

    def assert_not_logged(self, *secret_values):
        logs = {"coordinator": self.coordinator.lines}
        for i, w in enumerate(self.workers):
            logs[f"worker {i}"] = w.lines
        logs["coordctl"] = self.outputs
        for what, lines in logs.items():
            text = "\n".join(lines)
            for s in secret_values:
                self.assertNotIn(s, text, f"a token appears in the {what} output")


class TokenTest(SecurityCase):
    def test_worker_and_client_tokens_each_open_one_role(self):
        worker_token = "wtok-" + secrets.token_hex(16)
        client_token = "ctok-" + secrets.token_hex(16)
        wt = self.write_token("worker.token", worker_token)
        ct = self.write_token("client.token", client_token)
        wrong = self.write_token("wrong.token", "nope-" + secrets.token_hex(16))
        self.start_coordinator("--worker-token-file", wt, "--client-token-file", ct)
        self.auth = ["--token-file", ct]

        self.start_worker("good", "--token-file", wt)
        self.wait_for_worker_names(["good"])
        self.run_small_job()

        # coordctl: no token, a wrong token, the worker's token.
        self.assert_refused("UNAUTHENTICATED", auth=[])
        self.assert_refused("UNAUTHENTICATED", auth=["--token-file", wrong])
        self.assert_refused("PERMISSION_DENIED", auth=["--token-file", wt])

        # A worker holding the client token is turned away, and keeps trying.
        bad = self.start_worker("bad", "--token-file", ct)
        self.coordinator.wait_for_line(REFUSED.replace(r"(worker|client)", "worker"))
        # The worker reports the gRPC code: by name, or (as today) by number, 7.
        bad.wait_for_line(r"cannot attach to \S+: .*(PERMISSION_DENIED|\(7\))")
        self.wait_for(lambda: bad.count_lines(r"cannot attach") >= 2, what="the refused worker retrying")
        self.assertIsNone(bad.proc.poll(), "the refused worker gave up instead of retrying")
        self.assertEqual(self.worker_names(), ["good"])
        self.assertEqual(bad.count_lines(r"attached to"), 0)

        # The coordinator still serves, and only the good worker runs tasks.
        r = self.run_small_job()
        self.assertEqual({w["name"] for w in r["workers"]}, {"good"})
        self.assertEqual(self.worker_names(), ["good"])

        # Refusals are logged with the caller's address, never with a token.
        self.assertGreaterEqual(self.coordinator.count_lines(REFUSED.replace(r"(worker|client)", "client")), 3)
        self.assertGreaterEqual(self.coordinator.count_lines(REFUSED.replace(r"(worker|client)", "worker")), 1)
        self.assert_not_logged(worker_token, client_token)

    def test_one_token_file_for_both_roles(self):
        token = "tok-" + secrets.token_hex(16)
        tf = self.write_token("token", token)
        wrong_token = "nope-" + secrets.token_hex(16)
        wrong = self.write_token("wrong.token", wrong_token)
        self.start_coordinator("--token-file", tf)
        self.auth = ["--token-file", tf]

        self.start_worker("w1", "--token-file", tf)
        self.wait_for_worker_names(["w1"])
        self.run_small_job()
        self.assert_refused("UNAUTHENTICATED", auth=[])
        self.assert_refused("UNAUTHENTICATED", auth=["--token-file", wrong])

        anonymous = self.start_worker("anonymous")
        impostor = self.start_worker("impostor", "--token-file", wrong)
        for w in (anonymous, impostor):
            w.wait_for_line(r"cannot attach to \S+: .*(UNAUTHENTICATED|\(16\))")
        self.assertEqual(self.worker_names(), ["w1"])
        self.run_small_job()
        self.assertGreaterEqual(self.coordinator.count_lines(REFUSED), 4)
        self.assert_not_logged(token, wrong_token)

    def test_failed_login_flood_is_rate_limited(self):
        token = "tok-" + secrets.token_hex(16)
        tf = self.write_token("token", token)
        wrong = self.write_token("wrong.token", "nope-" + secrets.token_hex(16))
        self.start_coordinator("--token-file", tf)

        flood = 40
        t0 = time.monotonic()
        for _ in range(flood):
            self.coordctl("-o", "json", "jobs", auth=["--token-file", wrong], check=3)
        elapsed = time.monotonic() - t0

        def logged():
            return self.coordinator.count_lines(REFUSED)

        def suppressed():
            with self.coordinator.cond:
                return sum(int(m.group(1)) for line in self.coordinator.lines
                           if re.search(REFUSED, line) for m in [re.search(SUPPRESSED, line)] if m)

        # A burst of 10 lines, then about one a second.
        allowed = 10 + math.ceil(elapsed) + 1
        self.assertLessEqual(logged(), allowed, f"{logged()} refusal lines for {flood} calls in {elapsed:.1f}s")
        self.assertLess(logged(), flood)
        # Nothing is lost: every refusal is either logged or counted in a
        # later line. Keep knocking until the coordinator has reported the
        # refusals it held back (it does so with the next line it logs).
        calls = flood
        end = time.monotonic() + DEADLINE
        while logged() + suppressed() != calls:
            self.assertLessEqual(logged() + suppressed(), calls, "more refusals reported than calls made")
            self.assertLess(time.monotonic(), end,
                            f"{calls} refused calls, {logged()} logged + {suppressed()} reported as not logged")
            self.coordctl("-o", "json", "jobs", auth=["--token-file", wrong], check=3)
            calls += 1
        self.assertGreaterEqual(self.coordinator.count_lines(SUPPRESSED), 1)
        self.assertGreater(suppressed(), 0)
        # The rate limit is on the log only: the right token still gets in.
        self.coordctl("-o", "json", "jobs", auth=["--token-file", tf], check=0)
        self.assert_not_logged(token)


class TlsCase(SecurityCase):
    """Two independent demo CAs from deploy/make-certs.sh, made once."""

    @classmethod
    def setUpClass(cls):
        cls.certs_tmp = tempfile.TemporaryDirectory()
        cls.a = os.path.join(cls.certs_tmp.name, "a")
        cls.b = os.path.join(cls.certs_tmp.name, "b")
        for d in (cls.a, cls.b):
            make_certs(d, "--server-names", "localhost,127.0.0.1,::1", "--clients", "worker,coordctl")

    @classmethod
    def tearDownClass(cls):
        cls.certs_tmp.cleanup()

    def cert(self, ca, name):
        return os.path.join(ca, name)

    def server_flags(self, ca, mutual=False):
        flags = ["--tls-cert", self.cert(ca, "server.pem"), "--tls-key", self.cert(ca, "server.key")]
        if mutual:
            flags += ["--tls-client-ca", self.cert(ca, "ca.pem")]
        return flags

    def client_flags(self, ca, name=None, trust=None):
        flags = ["--tls-ca", self.cert(trust or ca, "ca.pem")]
        if name:
            flags += ["--tls-cert", self.cert(ca, f"{name}.pem"), "--tls-key", self.cert(ca, f"{name}.key")]
        return flags

    def port(self):
        return self.address.rsplit(":", 1)[1]


class TlsTest(TlsCase):
    def test_tls_server_certificate(self):
        self.start_coordinator(*self.server_flags(self.a))
        self.coordinator.wait_for_line(r"listening on .*\bTLS\b")
        self.auth = self.client_flags(self.a)
        self.assertEqual(self.coordctl_json("workers"), [])
        self.start_worker("tls-w", *self.client_flags(self.a))
        self.wait_for_worker_names(["tls-w"])
        self.run_small_job()

        # Plaintext, or trusting another CA: no connection.
        self.assert_refused("UNAVAILABLE", auth=[])
        self.assert_refused("UNAVAILABLE", auth=self.client_flags(self.b))
        # The name checked is the dialled host, or --tls-server-name.
        self.address = f"localhost:{self.port()}"
        self.assertEqual(self.worker_names(), ["tls-w"])
        self.assert_refused("UNAVAILABLE", auth=[*self.client_flags(self.a), "--tls-server-name", "not-in-cert"])
        self.address = f"127.0.0.1:{self.port()}"
        self.assertEqual(self.worker_names(), ["tls-w"])

    def refuses(self, *args):
        p = run_tool([binary("coordinator/coordinator"), "--db", ":memory:", *args], timeout=20)
        self.assertEqual(p.returncode, 2, f"{args}: rc {p.returncode}\n{p.stderr}")
        self.assertNotIn("listening on", p.stderr)
        return p

    def test_tls_alone_off_loopback_is_refused_like_no_authentication(self):
        """TLS without client certificates authenticates only the server."""
        for listen, http in (("0.0.0.0:0", "127.0.0.1:0"), ("127.0.0.1:0", "0.0.0.0:0")):
            p = self.refuses("--listen", listen, "--http-listen", http, *self.server_flags(self.a))
            for flag in ("TLS alone", "--tls-client-ca", "--client-token-file", "--token-file", "--insecure"):
                self.assertIn(flag, p.stderr)
        self.start_coordinator(*self.server_flags(self.a), "--insecure", listen="0.0.0.0:0")
        self.coordinator.wait_for_line(r"INSECURE: serving 0\.0\.0\.0:0 \(--listen\) with TLS but no client "
                                       r"authentication")

    def test_tokens_with_tls_off_loopback_start_without_a_warning(self):
        tf = self.write_token("token", "tok-" + secrets.token_hex(16))
        self.start_coordinator(*self.server_flags(self.a), "--token-file", tf, listen="0.0.0.0:0")
        self.address = f"127.0.0.1:{self.port()}"
        self.auth = [*self.client_flags(self.a), "--token-file", tf]
        self.assertEqual(self.coordctl_json("workers"), [])
        self.assertEqual(self.coordinator.count_lines(r"INSECURE|CLEARTEXT"), 0)

    def test_make_certs_outputs(self):
        out = os.path.join(self.dir, "certs")
        p = make_certs(out)
        host = socket.gethostname()
        expected = {"ca.pem", "ca.key", "server.pem", "server.key", "worker.pem", "worker.key", "coordctl.pem",
                    "coordctl.key"}
        self.assertEqual(set(os.listdir(out)), expected)
        for f in expected:
            mode = os.stat(os.path.join(out, f)).st_mode & 0o777
            if f.endswith(".key"):
                self.assertEqual(mode, 0o600, f)
            else:
                self.assertFalse(mode & 0o022, f"{f} is writable by others: {oct(mode)}")
        # The flags to use, with the real paths.
        abs_out = os.path.realpath(out)
        for flag in ("--tls-cert", "--tls-key", "--tls-client-ca", "--tls-ca"):
            self.assertIn(flag, p.stdout)
        self.assertIn(os.path.join(abs_out, "server.pem"), p.stdout)
        self.assertIn(os.path.join(abs_out, "coordctl.key"), p.stdout)

        server = openssl_text(os.path.join(out, "server.pem"))
        for s in ("DNS:localhost", "IP Address:127.0.0.1", "IP Address:0:0:0:0:0:0:0:1", f"DNS:{host}",
                  "TLS Web Server Authentication", "prime256v1", "ecdsa-with-SHA256", "CA:FALSE"):
            self.assertIn(s, server)
        self.assertNotIn("TLS Web Client Authentication", server)
        ca = openssl_text(os.path.join(out, "ca.pem"))
        self.assertIn("CA:TRUE", ca)
        for name in ("worker", "coordctl"):
            text = openssl_text(os.path.join(out, f"{name}.pem"))
            self.assertIn("TLS Web Client Authentication", text)
            self.assertIn(f"CN = {name}", text)
            self.assertIn("prime256v1", text)
        for name, purpose in (("server", "sslserver"), ("worker", "sslclient"), ("coordctl", "sslclient")):
            v = subprocess.run(["openssl", "verify", "-CAfile", os.path.join(out, "ca.pem"), "-purpose", purpose,
                                os.path.join(out, f"{name}.pem")], capture_output=True, text=True)
            self.assertEqual(v.returncode, 0, v.stdout + v.stderr)
        # 825 days.
        dates = subprocess.run(["openssl", "x509", "-in", os.path.join(out, "server.pem"), "-noout", "-startdate",
                                "-enddate"], capture_output=True, text=True, check=True).stdout
        got = dict(line.split("=", 1) for line in dates.strip().splitlines())
        fmt = "%b %d %H:%M:%S %Y %Z"
        days = (datetime.datetime.strptime(" ".join(got["notAfter"].split()), fmt) -
                datetime.datetime.strptime(" ".join(got["notBefore"].split()), fmt)).days
        self.assertEqual(days, 825)

        # No silent overwrite; --force replaces the CA.
        with open(os.path.join(out, "ca.pem")) as f:
            first_ca = f.read()
        again = subprocess.run(["bash", MAKE_CERTS, out], capture_output=True, text=True, timeout=60)
        self.assertNotEqual(again.returncode, 0)
        self.assertIn("--force", again.stderr)
        with open(os.path.join(out, "ca.pem")) as f:
            self.assertEqual(f.read(), first_ca)
        make_certs(out, "--force", "--server-names", "coordinator,10.1.2.3", "--clients", "node1")
        with open(os.path.join(out, "ca.pem")) as f:
            self.assertNotEqual(f.read(), first_ca)
        server = openssl_text(os.path.join(out, "server.pem"))
        self.assertIn("DNS:coordinator", server)
        self.assertIn("IP Address:10.1.2.3", server)
        self.assertNotIn("localhost", server)
        self.assertIn("TLS Web Client Authentication", openssl_text(os.path.join(out, "node1.pem")))
        # Bad input is a usage error, and writes nothing.
        bad = subprocess.run(["bash", MAKE_CERTS, os.path.join(self.dir, "bad"), "--server-names", "not a name!"],
                             capture_output=True, text=True, timeout=60)
        self.assertEqual(bad.returncode, 2, bad.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.dir, "bad", "ca.pem")))


class MutualTlsTest(TlsCase):
    def test_mutual_tls(self):
        self.start_coordinator(*self.server_flags(self.a, mutual=True))
        self.coordinator.wait_for_line(r"listening on .*mutual TLS")
        self.auth = self.client_flags(self.a, "coordctl")

        # A worker with no client certificate, started first, never gets in.
        certless = self.start_worker("certless", *self.client_flags(self.a))
        self.coordinator.wait_for_line(r"[Hh]andshake failed")
        self.start_worker("mtls-w", *self.client_flags(self.a, "worker"))
        self.wait_for_worker_names(["mtls-w"])
        r = self.run_small_job()
        self.assertEqual({w["name"] for w in r["workers"]}, {"mtls-w"})

        # coordctl: no client certificate; one from another CA; a server
        # certificate (no clientAuth) presented as a client's; plaintext.
        self.assert_refused("UNAVAILABLE", auth=self.client_flags(self.a))
        self.assert_refused("UNAVAILABLE", auth=self.client_flags(self.b, "coordctl", trust=self.a))
        self.assert_refused("UNAVAILABLE", auth=self.client_flags(self.a, "server"))
        self.assert_refused("UNAVAILABLE", auth=[])
        # A worker with a certificate from another CA never gets in either
        # (the certless worker's handshakes fail otherwise: "peer did not
        # return a certificate").
        verify_failed = r"certificate verify failed"
        before = self.coordinator.count_lines(verify_failed)
        self.start_worker("foreign", *self.client_flags(self.b, "worker", trust=self.a))
        self.wait_for(lambda: self.coordinator.count_lines(verify_failed) > before,
                      what="the coordinator turning away the foreign worker")
        self.run_small_job()
        self.assertEqual(self.worker_names(), ["mtls-w"])
        self.assertIsNone(certless.proc.poll())
        self.assertEqual(certless.count_lines(r"attached to"), 0)

    def test_mutual_tls_alone_protects_both_listeners_off_loopback(self):
        """No tokens: the HTTP listener asks for a client certificate from the
        same CA, so mTLS alone is client authentication there too."""
        self.start_coordinator(*self.server_flags(self.a, mutual=True), "--http-listen", "0.0.0.0:0",
                               listen="0.0.0.0:0")
        https_port = self.coordinator.wait_for_line(r"status page and metrics on https://\S+:(\d+)/").group(1)
        self.assertEqual(self.coordinator.count_lines(r"INSECURE|CLEARTEXT"), 0)
        url = f"https://127.0.0.1:{https_port}/"
        ctx = ssl.create_default_context(cafile=self.cert(self.a, "ca.pem"))
        with self.assertRaises((ssl.SSLError, urllib.error.URLError, ConnectionError)):
            urllib.request.urlopen(url, context=ctx, timeout=10).read()
        ctx.load_cert_chain(self.cert(self.a, "coordctl.pem"), self.cert(self.a, "coordctl.key"))
        with urllib.request.urlopen(url, context=ctx, timeout=10) as resp:
            self.assertEqual(resp.status, 200)

    def test_worker_refused_at_the_tls_handshake_says_why(self):
        """A worker whose TLS handshake is refused says so and retries."""
        self.start_coordinator(*self.server_flags(self.a, mutual=True))
        certless = self.start_worker("certless", *self.client_flags(self.a))
        self.coordinator.wait_for_line(r"[Hh]andshake failed")
        certless.wait_for_line(r"cannot attach to", timeout=5)

    def test_worker_that_never_attached_stops_on_sigterm(self):
        """A worker that never attached has nothing to drain: SIGTERM stops it."""
        self.start_coordinator(*self.server_flags(self.a, mutual=True))
        certless = self.start_worker("certless", *self.client_flags(self.a))
        self.coordinator.wait_for_line(r"[Hh]andshake failed")
        certless.proc.send_signal(signal.SIGTERM)
        certless.wait_for_line(r"worker stopped", timeout=5)


class StartupTest(SecurityCase):
    def run_coordinator(self, *args, timeout=20):
        argv = [binary("coordinator/coordinator"), "--db", ":memory:", *args]
        t0 = time.monotonic()
        try:
            p = run_tool(argv, timeout=timeout)
        except subprocess.TimeoutExpired as e:
            self.fail(f"{argv} still running after {timeout}s; stderr:\n{e.stderr}")
        return p, time.monotonic() - t0

    def assert_refuses(self, *args, mentions=()):
        p, took = self.run_coordinator(*args)
        self.assertEqual(p.returncode, 2, f"{args}: rc {p.returncode}\n{p.stderr}")
        self.assertLess(took, 10)
        self.assertNotIn("listening on", p.stderr)
        for m in mentions:
            self.assertIn(m, p.stderr)
        return p

    def test_non_loopback_without_auth_is_refused(self):
        self.assert_refuses("--listen", "0.0.0.0:0", mentions=["--insecure"])
        self.assert_refuses("--listen", "[::]:0", mentions=["--insecure"])

    def test_insecure_listens_with_a_loud_warning(self):
        self.start_coordinator("--insecure", listen="0.0.0.0:0")
        self.coordinator.wait_for_line(r"INSECURE")
        self.address = f"127.0.0.1:{self.address.rsplit(':', 1)[1]}"
        self.assertEqual(self.coordctl_json("workers"), [])

    def test_non_loopback_with_a_token_needs_no_insecure(self):
        tf = self.write_token("token", "tok-" + secrets.token_hex(16))
        self.start_coordinator("--token-file", tf, listen="0.0.0.0:0")
        self.assertEqual(self.coordinator.count_lines(r"INSECURE"), 0)
        # Served, but the tokens cross the network in clear text: said loudly.
        self.coordinator.wait_for_line(r"CLEARTEXT: tokens cross the network unencrypted on 0\.0\.0\.0:0 "
                                       r"\(--listen\).*--tls-cert")
        self.address = f"127.0.0.1:{self.address.rsplit(':', 1)[1]}"
        self.assert_refused("UNAUTHENTICATED", auth=[])
        self.coordctl("-o", "json", "workers", auth=["--token-file", tf], check=0)

    def test_empty_or_unreadable_token_files_are_fatal(self):
        empty = os.path.join(self.dir, "empty.token")
        open(empty, "w").close()
        blank = os.path.join(self.dir, "blank.token")
        with open(blank, "w") as f:
            f.write("  \n\n")
        missing = os.path.join(self.dir, "missing.token")
        good = self.write_token("good.token", "tok-" + secrets.token_hex(16))
        for path in (empty, blank, missing):
            self.assert_refuses("--listen", "127.0.0.1:0", "--token-file", path, mentions=[path])
            self.assert_refuses("--listen", "127.0.0.1:0", "--worker-token-file", path, "--client-token-file", good,
                                mentions=[path])
            self.assert_refuses("--listen", "127.0.0.1:0", "--worker-token-file", good, "--client-token-file", path,
                                mentions=[path])

    def test_role_tokens_come_in_pairs(self):
        tf = self.write_token("token", "tok-" + secrets.token_hex(16))
        p = self.assert_refuses("--listen", "127.0.0.1:0", "--worker-token-file", tf)
        self.assertIn("--client-token-file", p.stderr)
        p = self.assert_refuses("--listen", "127.0.0.1:0", "--client-token-file", tf)
        self.assertIn("--worker-token-file", p.stderr)

    def test_tls_flags_must_be_complete(self):
        certs = os.path.join(self.dir, "certs")
        make_certs(certs, "--clients", "")
        cert, key, ca = (os.path.join(certs, f) for f in ("server.pem", "server.key", "ca.pem"))
        self.assert_refuses("--listen", "127.0.0.1:0", "--tls-cert", cert)
        self.assert_refuses("--listen", "127.0.0.1:0", "--tls-key", key)
        self.assert_refuses("--listen", "127.0.0.1:0", "--tls-client-ca", ca)
        missing = os.path.join(self.dir, "missing.pem")
        self.assert_refuses("--listen", "127.0.0.1:0", "--tls-cert", missing, "--tls-key", key, mentions=[missing])

    def test_mismatched_tls_key_is_a_clean_error(self):
        """A --tls-key that does not belong to --tls-cert is a clean start-up
        error, not a crash."""
        a, b = os.path.join(self.dir, "a"), os.path.join(self.dir, "b")
        make_certs(a, "--clients", "")
        make_certs(b, "--clients", "")
        p, _ = self.run_coordinator("--listen", "127.0.0.1:0", "--tls-cert", os.path.join(a, "server.pem"),
                                    "--tls-key", os.path.join(b, "server.key"))
        self.assertIn(p.returncode, (1, 2), p.stderr)


if __name__ == "__main__":
    harness.main()
