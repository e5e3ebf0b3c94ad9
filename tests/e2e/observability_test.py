#!/usr/bin/env python3
"""End to end, issue 5: coordctl bench / timeline / compare, the HTTP
listener (/metrics scraped by a real Prometheus, the status page in headless
Chromium, /healthz), JSON logs, and clock offsets of skewed workers.

Run: python3 tests/e2e/observability_test.py --bin-dir build/release
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import unittest
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET

import harness
from harness import Daemon, DEADLINE

SVG = "{http://www.w3.org/2000/svg}"


def http_get(url, headers=None, timeout=10):
    req = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return resp.status, resp.headers, resp.read().decode("utf-8")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def children_of(pid):
    """Child pids of `pid`, from /proc (every thread's children list)."""
    out = set()
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out.update(int(x) for x in f.read().split())
        except FileNotFoundError:
            pass
    return out


class BenchTest(harness.ClusterCase):
    """The chapter's four modes through a fleet of two workers (2 + 1 slots)."""

    def setUp(self):
        super().setUp()
        self.start_coordinator()
        self.big = self.start_worker("bench-big", slots=2)
        self.start_worker("bench-small", slots=1)
        self.wait_for_workers(2)

    def test_bench_runs_the_four_modes_and_reports_them(self):
        # One trial each: the row's figures are that job's own.
        out = self.coordctl_json("bench", "--iterations", "20000000", "--tasks", "4", "--repeat", "1",
                                 "--warmup", "0")
        self.assertEqual(out["schema"], 1)
        self.assertEqual(out["worker"], "bench-big")
        self.assertEqual(out["fleet"]["slots"], 3)
        # Two workers on this one machine: its cores are counted once.
        self.assertEqual(out["fleet"]["machines"], 1)
        workers = self.coordctl_json("workers")
        self.assertEqual(len({w["machine_id"] for w in workers}), 1, workers)
        self.assertEqual(out["fleet"]["physical_cores"], workers[0]["physical_cores"])
        modes = {m["mode"]: m for m in out["modes"]}
        self.assertEqual(list(modes), ["serial", "threads", "processes", "fleet"])
        self.assertEqual(modes["serial"]["slots"], 1)
        self.assertAlmostEqual(modes["serial"]["speedup"], 1.0, places=6)
        self.assertEqual(modes["threads"]["slots"], 2)
        self.assertEqual(modes["processes"]["slots"], 2)
        self.assertEqual(modes["fleet"]["slots"], 3)
        for m in modes.values():
            self.assertGreater(m["wall_seconds"], 0, m)
            self.assertGreater(m["speedup"], 0, m)
            self.assertAlmostEqual(m["efficiency"], m["speedup"] / m["slots"], places=6)
            report = self.coordctl_json("status", m["job_id"])
            self.assertEqual(report["state"], "SUCCEEDED")
            self.assertEqual(report["counts"]["succeeded"], 4)
            self.assertAlmostEqual(report["timing"]["wall_seconds"], m["wall_seconds"], places=6)
        # Threads run in the worker's own process; processes in a child each.
        worker_pid = self.big.proc.pid
        threads = self.coordctl_json("status", modes["threads"]["job_id"])
        self.assertEqual({t["pid"] for t in threads["tasks"]}, {worker_pid})
        procs = self.coordctl_json("status", modes["processes"]["job_id"])
        pids = [t["pid"] for t in procs["tasks"]]
        self.assertEqual(len(set(pids)), 4, f"one child per task: {pids}")
        self.assertNotIn(worker_pid, pids)

    def test_bench_repeat_gives_intervals_and_every_trial(self):
        # Serial and threads on the 1-slot worker are the same work: the
        # speedup's interval must hold 1. At 99.9% confidence over 12 paired
        # rounds the interval is the whole range of the 12 ratios: by
        # chance alone all 12 fall on one side of 1 once in 2,048 runs.
        out = self.coordctl_json("bench", "--worker", "bench-small", "--iterations", "20000000", "--tasks", "2",
                                 "--repeat", "12", "--warmup", "1", "--confidence", "0.999")
        self.assertEqual(out["repeat"], 12)
        self.assertEqual(out["warmup"], 1)
        self.assertEqual(out["confidence"], 0.999)
        self.assertEqual(out["kind"], "countdown")
        self.assertEqual(len(out["warmup_job_ids"]), 4)
        self.assertIsInstance(out["noise"], list)
        self.assertEqual(len(out["noise"]), 1, out["noise"])  # one machine
        self.assertIn("calibrated", out["noise"][0])
        modes = {m["mode"]: m for m in out["modes"]}
        self.assertEqual(list(modes), ["serial", "threads", "processes", "fleet"])
        self.assertTrue(modes["serial"]["baseline"])
        job_ids = set()
        for m in modes.values():
            self.assertEqual([t["round"] for t in m["trials"]], list(range(1, 13)), m["mode"])
            for key in ("median", "min", "max", "mean", "stdev", "cv", "ci_low", "ci_high"):
                self.assertIn(key, m["wall"])
            self.assertLessEqual(m["wall"]["min"], m["wall_seconds"])
            self.assertLessEqual(m["wall_seconds"], m["wall"]["max"])
            for key in ("low", "high", "min", "max", "coverage"):
                self.assertIn(key, m["speedup_interval"])
            self.assertIn(m["speedup_verdict"], ("within_noise", "higher", "lower"))
            self.assertEqual(m["job_id"], m["trials"][-1]["job_id"])
            job_ids.update(t["job_id"] for t in m["trials"])
        self.assertEqual(len(job_ids), 48, "a job per mode per round")
        # The trials are paired: each speedup is its round's serial wall / its own.
        serial = modes["serial"]["trials"]
        for t, s in zip(modes["threads"]["trials"], serial):
            self.assertAlmostEqual(t["speedup"], s["wall_seconds"] / t["wall_seconds"], places=9)
        threads = modes["threads"]
        self.assertEqual(threads["slots"], 1)
        interval = threads["speedup_interval"]
        self.assertLessEqual(interval["low"], 1.0, threads)
        self.assertGreaterEqual(interval["high"], 1.0, threads)
        self.assertEqual(threads["speedup_verdict"], "within_noise")
        self.assertEqual(threads["efficiency_verdict"], "within_noise")
        # The workers calibrated their cores: every trial has a work-based speedup.
        self.assertGreater(threads["work_speedup"], 0)
        report = self.coordctl_json("status", threads["job_id"])
        self.assertGreater(report["timing"]["work_serial_seconds"], 0)
        for task in report["tasks"]:
            self.assertGreater(task["calibrated_rate"], 0, task)
            self.assertGreater(task["rate_ratio"], 0, task)
        # The table says it in words.
        p = self.coordctl("-o", "table", "bench", "--worker", "bench-small", "--iterations", "5000000", "--tasks",
                          "2", "--repeat", "3", "--warmup", "0", check=0)
        self.assertIn("Noise check before the run", p.stdout)
        self.assertIn("3 trials per mode (interleaved)", p.stdout)
        self.assertIn("1x (baseline)", p.stdout)

    def test_compare_takes_repeated_runs_a_side(self):
        ids = {}
        # Tasks of ~50 ms: with ~6 ms ones, a loaded machine could leave the
        # second slot's thread unscheduled until the first slot had run both.
        for side, extra in (("a", ("--max-slots", "1")), ("b", ())):
            ids[side] = [self.coordctl_json("submit", "--tasks", "2", "--iterations", "200000000", "--workers",
                                            "bench-big", *extra, "--wait")["id"] for _ in range(3)]
        out = self.coordctl_json("compare", ",".join(ids["a"]), ",".join(ids["b"]))
        self.assertEqual(out["a"]["ids"], ids["a"])
        metrics = {m["metric"]: m for m in out["metrics"]}
        wall = metrics["wall_seconds"]
        self.assertEqual(len(wall["a_trials"]), 3)
        self.assertIn(wall["verdict"], ("within_noise", "higher", "lower"))
        self.assertLessEqual(wall["ratio_low"], wall["ratio_high"])
        self.assertEqual(metrics["slots"]["verdict"], "higher")  # 1 slot against 2, every time
        p = self.coordctl("-o", "table", "compare", ",".join(ids["a"]), ids["b"][0], check=0)
        self.assertIn("A: 3 jobs:", p.stdout)

    def test_sweep_draws_the_scaling_curve(self):
        svg_path = os.path.join(self.tmp.name, "scaling.svg")
        p = self.coordctl("-o", "table", "bench", "--iterations", "10000000", "--tasks", "3", "--sweep", "--repeat", "2",
                          "--svg", svg_path, check=0)
        self.assertIn("serial", p.stdout)
        self.assertIn("Scaling over the fleet", p.stdout)
        root = ET.parse(svg_path).getroot()
        self.assertEqual(root.tag, SVG + "svg")
        self.assertTrue(root.iter(SVG + "polyline") or root.iter(SVG + "path"))
        out = self.coordctl_json("bench", "--iterations", "5000000", "--tasks", "3", "--sweep", "--repeat", "2")
        self.assertEqual([row["slots"] for row in out["sweep"]], [1, 2, 3])

    def test_svg_without_sweep_is_a_usage_error(self):
        p = self.coordctl("bench", "--svg", os.path.join(self.tmp.name, "x.svg"), check=2)
        self.assertIn("--sweep", p.stderr)

    def test_a_crashing_child_fails_only_its_task(self):
        sub = self.coordctl_json("submit", "--kind", "spin", "--duration", "3s", "--tasks", "2",
                                 "--workers", "bench-big", "--exec", "process", "--max-attempts", "2")
        job = sub["id"]
        worker_pid = self.big.proc.pid
        kids = self.wait_for(lambda: len(children_of(worker_pid)) == 2 and children_of(worker_pid),
                             what="two task children running")
        victim = sorted(kids)[0]
        os.kill(victim, signal.SIGSEGV)
        self.coordctl("watch", job, check=0)
        report = self.coordctl_json("status", job)
        self.assertEqual(report["state"], "SUCCEEDED")
        self.assertEqual(report["counts"]["retries"], 1)
        attempts = sorted(t["attempt"] for t in report["tasks"])
        self.assertEqual(attempts, [1, 2], "only the crashed task ran again")
        self.assertIsNone(self.big.proc.poll(), "the worker survives its child's crash")
        self.big.wait_for_line(r"task \d of job %s \(attempt 1\) failed: task process killed by signal 11" % job)
        trace = json.loads(self.coordctl("timeline", job, "--format", "chrome", check=0).stdout)
        slices = [e for e in trace["traceEvents"] if e["ph"] == "X"]
        self.assertEqual(len(slices), 3)
        failed = [e for e in slices if e["args"]["state"] == "FAILED"]
        self.assertEqual(len(failed), 1)
        self.assertIn("signal 11", failed[0]["args"]["error"])
        self.assertEqual(failed[0]["args"].get("pid", victim), victim)


class TimelineCompareTest(harness.ClusterCase):
    def setUp(self):
        super().setUp()
        self.start_coordinator()
        self.start_worker("tl-a")
        self.start_worker("tl-b")
        self.wait_for_workers(2)

    def run_job(self, *args):
        return self.coordctl_json("submit", "--wait", *args, check=0)

    def test_chrome_trace_has_one_slice_per_attempt(self):
        r = self.run_job("--tasks", "6", "--iterations", "10000000")
        trace = json.loads(self.coordctl("timeline", r["id"], check=0).stdout)
        slices = [e for e in trace["traceEvents"] if e["ph"] == "X"]
        self.assertEqual(sorted(e["args"]["task"] for e in slices), list(range(6)))
        rows = {(e["pid"], e["tid"]) for e in slices}
        self.assertLessEqual(len(rows), 2)
        names = [e for e in trace["traceEvents"] if e["ph"] == "M" and e["name"] == "process_name"]
        self.assertEqual(sorted(n["args"]["name"].split()[0] for n in names), ["tl-a", "tl-b"])
        for e in slices:
            task = r["tasks"][e["args"]["task"]]
            self.assertAlmostEqual(e["ts"], task["start_offset_seconds"] * 1e6, delta=1)
            self.assertAlmostEqual(e["dur"], task["seconds"] * 1e6, delta=1)

    def test_svg_timeline_is_well_formed_and_goes_to_a_file(self):
        r = self.run_job("--tasks", "4", "--iterations", "10000000", "--name", "<odd & \"named\">")
        path = os.path.join(self.tmp.name, "t.svg")
        p = self.coordctl("timeline", r["id"], "--format", "svg", "--out", path, check=0)
        self.assertEqual(p.stdout, "")
        root = ET.parse(path).getroot()
        self.assertEqual(root.tag, SVG + "svg")
        self.assertGreaterEqual(len(list(root.iter(SVG + "rect"))), 4)

    def test_timeline_of_an_unknown_job_is_not_found(self):
        p = self.coordctl("timeline", "j-nope", check=2)
        self.assertIn("NOT_FOUND", p.stderr)

    def test_compare_puts_two_reports_side_by_side(self):
        serial = self.run_job("--tasks", "4", "--iterations", "20000000", "--max-slots", "1")
        parallel = self.run_job("--tasks", "4", "--iterations", "20000000")
        c = self.coordctl_json("compare", serial["id"], parallel["id"])
        self.assertEqual(c["schema"], 1)
        self.assertEqual(c["a"]["id"], serial["id"])
        self.assertEqual(c["b"]["id"], parallel["id"])
        metrics = {m["metric"]: m for m in c["metrics"]}
        wall = metrics["wall_seconds"]
        self.assertAlmostEqual(wall["a"], serial["timing"]["wall_seconds"], places=6)
        self.assertAlmostEqual(wall["ratio"], wall["b"] / wall["a"], places=6)
        self.assertEqual(metrics["slots"]["a"], 1)
        self.assertEqual(metrics["slots"]["b"], 2)
        table = self.coordctl("-o", "table", "compare", serial["id"], parallel["id"], check=0).stdout
        self.assertIn("wall", table)
        self.assertRegex(table, r"\d+\.\d+x")

    def test_watch_json_prints_one_object_per_update(self):
        sub = self.coordctl_json("submit", "--kind", "sleep", "--duration", "200ms", "--tasks", "4",
                                 "--max-slots", "1")
        p = self.coordctl("-o", "json", "watch", sub["id"], check=0)
        lines = [json.loads(line) for line in p.stdout.splitlines()]
        self.assertGreaterEqual(len(lines), 2)
        progress, final = lines[:-1], lines[-1]
        done = [u["tasks_done"] for u in progress]
        self.assertEqual(done, sorted(done), "progress never goes back")
        self.assertTrue(all({"tasks_total", "tasks_done", "iterations_per_second", "eta_seconds"} <= set(u)
                            for u in progress))
        self.assertEqual(final["state"], "SUCCEEDED")
        self.assertEqual(final["id"], sub["id"])


class CoordctlCommandsTest(harness.ClusterCase):
    """health, workers --wait-for, and task rows of large jobs."""

    def setUp(self):
        super().setUp()
        self.start_coordinator()

    def test_health_says_serving_or_exits_3(self):
        p = self.coordctl("health", check=0)
        out = json.loads(p.stdout)
        self.assertEqual(out["status"], "SERVING")
        # Keys are only ever added: the store's health came later.
        self.assertTrue(out["store"]["writable"], out)
        self.assertEqual(out["store"]["backlog_rows"], 0, out)
        p = subprocess.run([harness.binary("coordinator/coordctl"), "--coordinator", f"127.0.0.1:{free_port()}",
                            "--timeout", "2s", "health"], capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 3, p.stderr)

    def test_workers_wait_for(self):
        p = self.coordctl("workers", "--wait-for", "1", "--wait-timeout", "300ms", check=1)
        self.assertIn("0 of 1 workers ready", p.stderr)
        self.start_worker("late", slots=1)
        out = self.coordctl_json("workers", "--wait-for", "1", "--wait-timeout", "30s")
        self.assertEqual([w["name"] for w in out], ["late"])

    def test_large_jobs_are_summarised_and_paged(self):
        self.start_worker("pager", slots=1)
        self.wait_for_workers(1)
        n = 50_001  # one over a reply page
        r = self.coordctl_json("submit", "--wait", "--tasks", str(n), "--iterations", "0", check=0)
        self.assertEqual(r["state"], "SUCCEEDED")
        self.assertEqual(r["tasks"], [])
        self.assertEqual(r["tasks_omitted"], n)
        self.assertEqual(r["counts"]["succeeded"], n)
        page = self.coordctl_json("status", r["id"], "--tasks-offset", "49999", "--tasks-limit", "5")
        self.assertEqual(page["tasks_offset"], 49999)
        self.assertEqual([t["index"] for t in page["tasks"]], [49999, 50000])
        every = self.coordctl_json("status", r["id"], "--tasks")
        self.assertEqual([t["index"] for t in every["tasks"]], list(range(n)))
        self.assertNotIn("tasks_omitted", every)
        small = self.coordctl_json("submit", "--wait", "--tasks", "3", "--iterations", "0", check=0)
        self.assertEqual(len(small["tasks"]), 3)
        self.assertNotIn("tasks_omitted", small)


class HttpTest(harness.ClusterCase):
    def setUp(self):
        super().setUp()
        self.start_coordinator()
        self.base = f"http://{self.http_address}"

    def test_healthz_and_metrics(self):
        status, _, body = http_get(self.base + "/healthz")
        self.assertEqual((status, body), (200, "ok\n"))
        self.start_worker("m-1", slots=1)
        self.start_worker("m-2", slots=1)
        self.wait_for_workers(2)
        self.coordctl_json("submit", "--wait", "--tasks", "3", "--iterations", "1000000", check=0)
        status, headers, text = http_get(self.base + "/metrics")
        self.assertEqual(status, 200)
        self.assertTrue(headers["Content-Type"].startswith("text/plain; version=0.0.4"))
        samples = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                samples[name] = float(value)
        self.assertEqual(samples['busyfleet_workers{state="ready"}'], 2)
        self.assertEqual(samples["busyfleet_slots"], 2)
        self.assertEqual(samples['busyfleet_tasks_total{state="succeeded"}'], 3)
        self.assertGreaterEqual(samples['busyfleet_tasks_total{state="dispatched"}'], 3)
        self.assertEqual(samples['busyfleet_jobs{state="succeeded"}'], 1)
        self.assertEqual(samples["busyfleet_task_duration_seconds_count"], 3)
        self.assertEqual(samples['busyfleet_task_duration_seconds_bucket{le="+Inf"}'], 3)
        self.assertEqual(samples["busyfleet_queue_depth"], 0)

    @unittest.skipUnless(shutil.which("prometheus"), "Debian's prometheus is not installed")
    def test_a_real_prometheus_scrapes_the_coordinator(self):
        for i in range(3):
            self.start_worker(f"p-{i}")
        self.wait_for_workers(3)
        port = free_port()
        config = os.path.join(self.tmp.name, "prometheus.yml")
        with open(config, "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                    "scrape_configs:\n  - job_name: busyfleet\n"
                    f"    static_configs:\n      - targets: ['{self.http_address}']\n")
        prom = Daemon(["prometheus", f"--config.file={config}",
                       f"--storage.tsdb.path={os.path.join(self.tmp.name, 'tsdb')}",
                       f"--web.listen-address=127.0.0.1:{port}"])
        try:
            prom.wait_for_line(r"Server is ready to receive web requests", timeout=60)
            query = urllib.request.quote('busyfleet_workers{state="ready"}')

            def value():
                try:
                    _, _, body = http_get(f"http://127.0.0.1:{port}/api/v1/query?query={query}")
                except (urllib.error.URLError, ConnectionError):
                    return None
                result = json.loads(body)["data"]["result"]
                return result and float(result[0]["value"][1]) == 3

            self.wait_for(value, timeout=60, what="prometheus sees busyfleet_workers{state=ready} == 3")
        finally:
            prom.stop(timeout=30)

    @unittest.skipUnless(shutil.which("chromium"), "Debian's chromium is not installed")
    def test_status_page_in_headless_chromium(self):
        self.start_worker("page-w1", slots=1)
        self.start_worker("page-w2", slots=1)
        self.wait_for_workers(2)
        r = self.coordctl_json("submit", "--wait", "--tasks", "4", "--iterations", "5000000",
                               "--name", "page-job", check=0)
        shot = os.path.join(self.tmp.name, "status.png")
        profile = os.path.join(self.tmp.name, "chromium-profile")
        flags = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={profile}", "--window-size=1280,1000"]
        dom = subprocess.run(flags + ["--dump-dom", self.base + "/"], capture_output=True, text=True,
                             timeout=120)
        self.assertEqual(dom.returncode, 0, dom.stderr[-2000:])
        html = dom.stdout
        start = html.index('<table id="workers">')
        table = html[start:html.index("</table>", start)]
        self.assertEqual(table.count("<tr>") - 1, 2, table)  # header row + one per worker
        self.assertIn("page-w1", table)
        self.assertIn("page-w2", table)
        self.assertIn(r["id"], html)
        self.assertIn("<svg", html[html.index(f'id="job-{r["id"]}"'):])
        snap = subprocess.run(flags + [f"--screenshot={shot}", self.base + "/"], capture_output=True, text=True,
                              timeout=120)
        self.assertEqual(snap.returncode, 0, snap.stderr[-2000:])
        with open(shot, "rb") as f:
            head = f.read(8)
        self.assertEqual(head, b"\x89PNG\r\n\x1a\n")
        self.assertGreater(os.path.getsize(shot), 10_000)
        # Kept for people to look at (ctest -V prints the path).
        keep = os.environ.get("BUSYFLEET_SCREENSHOT_DIR")
        if keep:
            shutil.copy(shot, os.path.join(keep, "status-page.png"))


class HttpSecurityTest(harness.ClusterCase):
    def test_non_loopback_http_without_auth_is_refused(self):
        p = subprocess.run([harness.binary("coordinator/coordinator"), "--db", ":memory:", "--listen",
                            "127.0.0.1:0", "--http-listen", "0.0.0.0:0"], capture_output=True, text=True,
                           timeout=20)
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn("--http-listen", p.stderr)
        self.assertIn("--insecure", p.stderr)

    def test_with_a_token_metrics_need_it_and_healthz_does_not(self):
        token = os.path.join(self.tmp.name, "token")
        with open(token, "w") as f:
            f.write("s3cret-token-0123456789abcdef\n")
        os.chmod(token, 0o600)
        self.start_coordinator("--token-file", token)
        base = f"http://{self.http_address}"
        self.assertEqual(http_get(base + "/healthz")[0], 200)
        for path in ("/metrics", "/"):
            with self.assertRaises(urllib.error.HTTPError) as e:
                http_get(base + path)
            self.assertEqual(e.exception.code, 401)
            with self.assertRaises(urllib.error.HTTPError) as e:
                http_get(base + path, {"Authorization": "Bearer wrong"})
            self.assertEqual(e.exception.code, 401)
            status, _, _ = http_get(base + path, {"Authorization": "Bearer s3cret-token-0123456789abcdef"})
            self.assertEqual(status, 200)
        # submit --wait goes through RunJob: refused without the token, and no job is created.
        p = self.coordctl("submit", "--wait", "--tasks", "1", "--iterations", "1", check=3)
        self.assertIn("UNAUTHENTICATED", p.stderr)
        self.assertEqual(self.coordctl_json("--token-file", token, "jobs"), [])

    def test_a_taken_http_port_stops_start_up_with_a_clear_error(self):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            s.listen()
            port = s.getsockname()[1]
            p = subprocess.run([harness.binary("coordinator/coordinator"), "--db", ":memory:", "--listen",
                                "127.0.0.1:0", "--http-listen", f"127.0.0.1:{port}"], capture_output=True,
                               text=True, timeout=20)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn(f"127.0.0.1:{port}", p.stderr)


class LogsAndClocksTest(harness.ClusterCase):
    def test_json_logs_carry_ids(self):
        self.start_coordinator("--log-format", "json")
        w = self.start_worker("log-w", "--log-format", "json")
        self.wait_for_workers(1)
        r = self.coordctl_json("submit", "--wait", "--tasks", "2", "--iterations", "1000", check=0)
        self.coordinator.wait_for_line(r"job %s ended" % r["id"])
        self.coordinator.stop()
        w.stop()
        lines = [json.loads(line) for line in self.coordinator.lines if line.startswith("{")]
        self.assertEqual(len(lines), len(self.coordinator.lines), "every line is one JSON object")
        for obj in lines:
            self.assertLessEqual({"time", "level", "component", "message"}, set(obj))
        ended = [o for o in lines if o["message"].startswith(f"job {r['id']} ended")]
        self.assertEqual(len(ended), 1)
        self.assertEqual(ended[0]["job_id"], r["id"])
        self.assertEqual(ended[0]["state"], "JOB_STATE_SUCCEEDED")
        attached = [o for o in lines if "attached from" in o["message"]]
        self.assertEqual(attached[0]["worker"], "log-w")
        worker_lines = [json.loads(line) for line in w.lines]
        for obj in worker_lines:
            self.assertIn("component", obj)
        # The worker logs its own figures when it stops.
        ran = [o for o in worker_lines if o["message"].startswith("ran 2 tasks (2 succeeded, 0 failed")]
        self.assertEqual(len(ran), 1, [o["message"] for o in worker_lines])
        self.assertIn("2000 iterations", ran[0]["message"])

    def test_skewed_worker_clocks_are_corrected(self):
        self.start_coordinator()
        self.start_worker("ahead", "--debug-clock-skew", "5s")
        self.start_worker("behind", "--debug-clock-skew", "-3s")
        self.wait_for_workers(2)
        offsets = {}

        def measured():
            for w in self.coordctl_json("workers"):
                if w.get("clock_offset_seconds") is not None:
                    offsets[w["name"]] = w["clock_offset_seconds"]
            return len(offsets) == 2

        self.wait_for(measured, what="both workers' clock offsets measured")
        self.assertAlmostEqual(offsets["ahead"], -5, delta=0.5)
        self.assertAlmostEqual(offsets["behind"], 3, delta=0.5)
        # Two tasks on two free slots start together, one on each worker:
        # on the coordinator's clock their slices must overlap (8 s apart
        # without the offsets) and lie within the job's wall time.
        r = self.coordctl_json("submit", "--wait", "--kind", "spin", "--duration", "300ms", "--tasks", "2",
                               check=0)
        self.assertEqual({t["worker"] for t in r["tasks"]}, {"ahead", "behind"})
        trace = json.loads(self.coordctl("timeline", r["id"], check=0).stdout)
        a, b = sorted((e for e in trace["traceEvents"] if e["ph"] == "X"), key=lambda e: e["ts"])
        self.assertLess(b["ts"] - a["ts"], 150_000, (a, b))
        wall_us = r["timing"]["wall_seconds"] * 1e6
        for e in (a, b):
            self.assertGreaterEqual(e["ts"], 0)
            self.assertLessEqual(e["ts"] + e["dur"], wall_us + 1000)
            self.assertAlmostEqual(e["dur"], 300_000, delta=100_000)
        self.assertLess(r["timing"]["makespan_seconds"], 0.45)


if __name__ == "__main__":
    harness.main()
