#!/usr/bin/env python3
"""End to end: the real coordinator, worker and coordctl binaries on loopback
ports chosen at run time, driven through coordctl, JSON output checked.

Run: python3 tests/e2e/e2e_test.py --bin-dir build/release
"""
import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

BIN_DIR = None
DEADLINE = 30.0

# The keys of DESIGN.md's JSON contract.
REPORT_KEYS = {"schema", "id", "name", "state", "kind", "error", "timing", "workers", "tasks", "stragglers"}
TIMING_KEYS = {"submitted_at", "started_at", "finished_at", "wall_seconds", "makespan_seconds",
               "serial_seconds", "overhead_seconds", "speedup", "efficiency", "slots", "task_seconds"}
TASK_SECONDS_KEYS = {"min", "p50", "p90", "p99", "max"}
WORKER_KEYS = {"name", "host", "slots", "tasks", "iterations", "busy_seconds", "utilization",
               "iterations_per_second"}
TASK_KEYS = {"index", "worker", "slot", "attempt", "state", "iterations", "start_offset_seconds",
             "seconds", "cpu_seconds"}
WORKERS_LIST_KEYS = {"name", "host", "slots", "logical_cpus", "physical_cores", "state", "running",
                     "last_heartbeat"}
JOBS_LIST_KEYS = {"id", "name", "state", "tasks", "submitted_at", "wall_seconds"}


def binary(path):
    return os.path.join(BIN_DIR, path)


class Daemon:
    """A background process whose stderr is collected line by line."""

    def __init__(self, argv):
        self.lines = []
        self.cond = threading.Condition()
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stderr:
            with self.cond:
                self.lines.append(line.rstrip("\n"))
                self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def wait_for_line(self, pattern, timeout=DEADLINE):
        """Waits until a stderr line matches `pattern`; returns the match."""
        regex = re.compile(pattern)
        end = time.monotonic() + timeout
        with self.cond:
            while True:
                for line in self.lines:
                    m = regex.search(line)
                    if m:
                        return m
                left = end - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self.reader.is_alive()):
                    raise AssertionError(f"no line matching {pattern!r}; got:\n" + "\n".join(self.lines))
                self.cond.wait(left)

    def count_lines(self, pattern):
        regex = re.compile(pattern)
        with self.cond:
            return sum(1 for line in self.lines if regex.search(line))

    def stop(self, sig=signal.SIGTERM, timeout=10):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout=timeout)


class E2ETest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.coordinator = Daemon([binary("coordinator/coordinator"), "--listen", "127.0.0.1:0",
                                   "--worker-timeout", "2s"])
        m = self.coordinator.wait_for_line(r"listening on (\S+:\d+)")
        self.address = m.group(1)
        self.workers = []
        for i in range(2):
            self.start_worker(f"e2e-w{i + 1}")
        # Wait for both workers through coordctl itself.
        self.wait_for(lambda: len([w for w in self.coordctl_json("workers") if w["state"] == "READY"]) == 2)

    def tearDown(self):
        for w in self.workers:
            if w.proc.poll() is None:
                w.stop(signal.SIGKILL)
        if self.coordinator.proc.poll() is None:
            self.coordinator.stop(signal.SIGKILL)
        self.tmp.cleanup()

    def start_worker(self, name, *extra):
        w = Daemon([binary("worker/worker"), "--coordinator", self.address, "--slots", "1", "--name", name,
                    *extra])
        self.workers.append(w)
        return w

    def coordctl(self, *args, check=None):
        cmd = [binary("coordinator/coordctl"), "--coordinator", self.address, *args]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if check is not None:
            self.assertEqual(p.returncode, check, f"{cmd}: rc {p.returncode}\n{p.stdout}\n{p.stderr}")
        return p

    def coordctl_json(self, *args, check=0):
        return json.loads(self.coordctl("-o", "json", *args, check=check).stdout)

    def wait_for(self, predicate, timeout=DEADLINE):
        end = time.monotonic() + timeout
        while not predicate():
            self.assertLess(time.monotonic(), end, "condition not met in time")
            time.sleep(0.05)

    def assert_report_contract(self, r):
        self.assertLessEqual(REPORT_KEYS, set(r))
        self.assertEqual(r["schema"], 1)
        self.assertLessEqual(TIMING_KEYS, set(r["timing"]))
        self.assertLessEqual(TASK_SECONDS_KEYS, set(r["timing"]["task_seconds"]))
        for w in r["workers"]:
            self.assertLessEqual(WORKER_KEYS, set(w))
        for t in r["tasks"]:
            self.assertLessEqual(TASK_KEYS, set(t))
        for key in ("submitted_at", "started_at", "finished_at"):
            self.assertRegex(r["timing"][key], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")

    def test_submit_wait_prints_the_json_report(self):
        r = self.coordctl_json("submit", "--tasks", "4", "--iterations", "20000000", "--wait", "--name", "chapter")
        self.assert_report_contract(r)
        self.assertEqual(r["state"], "SUCCEEDED")
        self.assertEqual(r["kind"], "countdown")
        self.assertEqual(r["name"], "chapter")
        self.assertEqual(sorted(t["index"] for t in r["tasks"]), [0, 1, 2, 3])
        self.assertEqual(sum(t["iterations"] for t in r["tasks"]), 80_000_000)
        self.assertEqual({w["name"] for w in r["workers"]}, {"e2e-w1", "e2e-w2"})
        self.assertEqual(r["timing"]["slots"], 2)
        self.assertGreater(r["timing"]["speedup"], 0)
        # status gives the same report afterwards, jobs lists it.
        s = self.coordctl_json("status", r["id"])
        self.assertEqual(s["id"], r["id"])
        self.assertEqual(s["timing"]["serial_seconds"], r["timing"]["serial_seconds"])
        jobs = self.coordctl_json("jobs")
        self.assertEqual(jobs[0]["id"], r["id"])
        self.assertLessEqual(JOBS_LIST_KEYS, set(jobs[0]))
        self.assertEqual(jobs[0]["tasks"], 4)

    def test_submit_without_wait_prints_the_id_at_once(self):
        out = self.coordctl_json("submit", "--tasks", "2", "--iterations", "1000")
        self.assertEqual(set(out), {"id", "tasks"})
        self.assertRegex(out["id"], r"^j-[0-9a-f]{8}$")

    def test_workers_lists_host_facts(self):
        workers = self.coordctl_json("workers")
        self.assertEqual([w["name"] for w in workers], ["e2e-w1", "e2e-w2"])
        for w in workers:
            self.assertLessEqual(WORKERS_LIST_KEYS, set(w))
            self.assertEqual(w["slots"], 1)
            self.assertGreaterEqual(w["logical_cpus"], 1)
            self.assertEqual(w["logical_cpus"], os.cpu_count())

    def test_cancel_stops_a_running_job(self):
        out = self.coordctl_json("submit", "--tasks", "2", "--iterations", "10000000000000")
        job = out["id"]
        self.wait_for(lambda: sum(w["running"] for w in self.coordctl_json("workers")) == 2)
        self.assertEqual(self.coordctl_json("cancel", job)["state"], "CANCELLED")
        self.wait_for(lambda: sum(w["running"] for w in self.coordctl_json("workers")) == 0)
        r = self.coordctl("-o", "json", "status", job, check=1)  # exit 1: the job was cancelled
        self.assertEqual(json.loads(r.stdout)["state"], "CANCELLED")
        again = self.coordctl("cancel", job, check=2)
        self.assertIn("already ended", again.stderr)

    def test_table_output_and_watch_of_a_finished_job(self):
        out = self.coordctl_json("submit", "--tasks", "2", "--iterations", "1000000", "--max-slots", "1")
        p = self.coordctl("-o", "table", "watch", out["id"], check=0)
        self.assertIn("SUCCEEDED", p.stdout)
        self.assertIn("Speedup:", p.stdout)
        self.assertIn("e2e-w", p.stdout)

    def test_exit_codes(self):
        bad = self.coordctl("submit", "--tasks", "0", check=2)
        self.assertIn("tasks must be between 1 and 1000000, got 0", bad.stderr)
        self.coordctl("submit", "--iterations", "-5", check=2)
        self.coordctl("submit", "--kind", "bogus", check=2)
        self.coordctl("status", "j-00000000", check=2)
        self.coordctl("drain", "nobody", check=2)
        self.coordctl("frobnicate", check=2)
        unreachable = subprocess.run([binary("coordinator/coordctl"), "--coordinator", "127.0.0.1:1",
                                      "--timeout", "2s", "jobs"], capture_output=True, text=True, timeout=60)
        self.assertEqual(unreachable.returncode, 3, unreachable.stderr)

    def test_failed_job_exits_1_with_a_reason(self):
        p = self.coordctl("-o", "json", "submit", "--tasks", "1", "--iterations", "10000000000000",
                          "--task-timeout", "20ms", "--max-attempts", "2", "--wait", check=1)
        r = json.loads(p.stdout)
        self.assertEqual(r["state"], "FAILED")
        self.assertIn("task 0 failed 2 of 2 attempts", r["error"])

    def test_sigterm_drains_a_worker_and_stops_the_coordinator(self):
        out = self.coordctl_json("submit", "--tasks", "4", "--iterations", "300000000")
        self.wait_for(lambda: sum(w["running"] for w in self.coordctl_json("workers")) == 2)
        self.assertEqual(self.workers[0].stop(signal.SIGTERM, timeout=30), 0)
        lines = self.coordctl("-o", "json", "watch", out["id"], check=0).stdout.splitlines()
        updates = [json.loads(line) for line in lines]
        self.assertTrue(all("tasks_done" in u for u in updates[:-1]))
        r = updates[-1]
        self.assert_report_contract(r)
        self.assertEqual(r["state"], "SUCCEEDED")
        self.assertEqual(r["counts"]["retries"], 0)
        self.assertEqual(self.coordinator.stop(signal.SIGTERM, timeout=10), 0)
        self.coordinator.wait_for_line(r"coordinator stopped")
        # The remaining worker notices and keeps trying to reconnect.
        self.workers[1].wait_for_line(r"lost the coordinator")
        self.assertEqual(self.workers[1].stop(signal.SIGTERM, timeout=10), 0)


def main():
    global BIN_DIR
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin-dir", required=True)
    args, rest = parser.parse_known_args()
    BIN_DIR = os.path.abspath(args.bin_dir)
    unittest.main(argv=[sys.argv[0], *rest])


if __name__ == "__main__":
    main()
