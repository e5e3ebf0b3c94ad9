"""Shared by the end-to-end tests: run the real binaries, read their logs."""
import argparse
import os
import re
import signal
import subprocess
import sys
import threading
import time
import unittest

BIN_DIR = os.environ.get("BUSYFLEET_BIN_DIR", "build/release")
DEADLINE = 30.0

# The keys of the JSON contract (docs/design.md, "JSON contract").
REPORT_KEYS = {"schema", "id", "name", "state", "kind", "error", "timing", "workers", "tasks", "stragglers"}
TIMING_KEYS = {"submitted_at", "started_at", "finished_at", "wall_seconds", "makespan_seconds",
               "serial_seconds", "overhead_seconds", "speedup", "efficiency", "slots", "task_seconds",
               "work_serial_seconds", "work_speedup", "work_efficiency", "slow_tasks"}
TASK_SECONDS_KEYS = {"min", "p50", "p90", "p99", "max"}
WORKER_KEYS = {"name", "host", "slots", "tasks", "iterations", "busy_seconds", "utilization",
               "iterations_per_second", "calibrated_rate", "rate_ratio"}
TASK_KEYS = {"index", "worker", "slot", "attempt", "state", "iterations", "start_offset_seconds",
             "seconds", "cpu_seconds"}
WORKERS_LIST_KEYS = {"name", "host", "slots", "logical_cpus", "physical_cores", "state", "running",
                     "last_heartbeat", "calibrations"}
JOBS_LIST_KEYS = {"id", "name", "state", "tasks", "submitted_at", "wall_seconds"}


def binary(path):
    return os.path.join(BIN_DIR, path)


class Daemon:
    """A background process whose stderr is collected line by line."""

    def __init__(self, argv, cwd=None, max_lines=None):
        """`max_lines`: keep only the first lines (a long run's memory stays flat)."""
        self.argv = argv
        self.max_lines = max_lines
        self.lines = []
        self.cond = threading.Condition()
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=cwd)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stderr:
            with self.cond:
                if self.max_lines is None or len(self.lines) < self.max_lines:
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
        rc = self.proc.wait(timeout=timeout)
        self.reader.join(timeout=timeout)
        self.proc.stderr.close()
        return rc



def main():
    global BIN_DIR
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin-dir", required=True)
    args, rest = parser.parse_known_args()
    BIN_DIR = os.path.abspath(args.bin_dir)
    unittest.main(module="__main__", argv=[sys.argv[0], *rest])


class ClusterCase(unittest.TestCase):
    """A coordinator and workers as real processes, torn down after each test."""

    def setUp(self):
        import tempfile
        self.tmp = tempfile.TemporaryDirectory()
        self.coordinator = None
        self.address = None
        self.workers = []

    def tearDown(self):
        for w in self.workers:
            if w.proc.poll() is None:
                w.stop(signal.SIGKILL)
        if self.coordinator is not None and self.coordinator.proc.poll() is None:
            self.coordinator.stop(signal.SIGKILL)
        self.tmp.cleanup()

    def start_coordinator(self, *extra, listen="127.0.0.1:0", db=":memory:", timeout="2s", prefix=(),
                          http=None):
        """Starts a coordinator; `http` is its --http-listen (default: a free
        loopback port, none inside a network namespace). Sets self.address
        and, with HTTP, self.http_address (host:port)."""
        if http is None:
            http = "" if prefix else "127.0.0.1:0"
        self.coordinator = Daemon([*prefix, binary("coordinator/coordinator"), "--listen", listen,
                                   "--http-listen", http, "--db", db, "--worker-timeout", timeout, *extra])
        m = self.coordinator.wait_for_line(r"listening on (\S+:\d+)")
        self.address = m.group(1)
        self.http_address = None
        if http:
            m = self.coordinator.wait_for_line(r"status page and metrics on https?://(\S+:\d+)/")
            self.http_address = m.group(1)
        return self.coordinator

    def start_worker(self, name, *extra, slots=1, prefix=(), coordinator=None):
        w = Daemon([*prefix, binary("worker/worker"), "--coordinator", coordinator or self.address,
                    "--slots", str(slots), "--name", name, *extra])
        self.workers.append(w)
        return w

    def coordctl(self, *args, check=None):
        cmd = [binary("coordinator/coordctl"), "--coordinator", self.address, *args]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if check is not None:
            self.assertEqual(p.returncode, check, f"{cmd}: rc {p.returncode}\n{p.stdout}\n{p.stderr}")
        return p

    def coordctl_json(self, *args, check=0):
        import json
        return json.loads(self.coordctl("-o", "json", *args, check=check).stdout)

    def wait_for(self, predicate, timeout=DEADLINE, what="condition"):
        """Polls `predicate` until it holds; fails the test at the deadline."""
        end = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            self.assertLess(time.monotonic(), end, f"{what} not met within {timeout}s")
            time.sleep(0.05)

    def ready_workers(self):
        return [w for w in self.coordctl_json("workers") if w["state"] == "READY"]

    def wait_for_workers(self, n, timeout=DEADLINE):
        self.wait_for(lambda: len(self.ready_workers()) == n, timeout, f"{n} ready workers")
