#!/usr/bin/env python3
"""End to end: the real coordinator, worker and coordctl binaries on loopback
ports chosen at run time, driven through coordctl, JSON output checked.

Run: python3 tests/e2e/e2e_test.py --bin-dir build/release
"""
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

from harness import Daemon, binary, REPORT_KEYS, TIMING_KEYS, TASK_SECONDS_KEYS, WORKER_KEYS, TASK_KEYS, WORKERS_LIST_KEYS, JOBS_LIST_KEYS, DEADLINE
import harness


class E2ETest(harness.ClusterCase):
    def setUp(self):
        super().setUp()
        self.start_coordinator()
        for i in range(2):
            self.start_worker(f"e2e-w{i + 1}")
        self.wait_for_workers(2)

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
        self.assertRegex(out["id"], r"^j-[0-9a-f]{16}$")

    def test_workers_lists_host_facts(self):
        workers = self.coordctl_json("workers")
        self.assertEqual([w["name"] for w in workers], ["e2e-w1", "e2e-w2"])
        for w in workers:
            self.assertLessEqual(WORKERS_LIST_KEYS, set(w))
            self.assertEqual(w["slots"], 1)
            self.assertGreaterEqual(w["logical_cpus"], 1)
            self.assertEqual(w["logical_cpus"], os.cpu_count())
            # The worker calibrated each kernel it runs on each CPU it may use.
            cals = {c["kind"]: c for c in w["calibrations"]}
            self.assertEqual(set(cals), {"countdown", "python"} & set(w["kinds"]) | {"countdown"})
            cal = cals["countdown"]
            self.assertEqual(len(cal["cpus"]), len(os.sched_getaffinity(0)))
            self.assertGreater(cal["iterations_per_second"], 1e6)
            rates = sorted(c["iterations_per_second"] for c in cal["cpus"])
            self.assertLessEqual(rates[0], cal["iterations_per_second"])
            self.assertLessEqual(cal["iterations_per_second"], rates[-1])

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

    def test_output_that_cannot_be_written_exits_1_and_says_so(self):
        # A report printed to a full disk used to be lost with exit code 0.
        for args in (("-o", "json", "workers"), ("-o", "json", "submit", "--tasks", "2", "--iterations", "1000",
                                                  "--wait")):
            with open("/dev/full", "w") as full:
                p = subprocess.run([binary("coordinator/coordctl"), "--coordinator", self.address, *args],
                                   stdout=full, stderr=subprocess.PIPE, text=True, timeout=120)
            self.assertEqual(p.returncode, 1, f"{args}: {p.stderr}")
            self.assertIn("coordctl: cannot write the output", p.stderr)

    def test_failed_job_exits_1_with_a_reason(self):
        p = self.coordctl("-o", "json", "submit", "--tasks", "1", "--iterations", "10000000000000",
                          "--task-timeout", "20ms", "--max-attempts", "2", "--wait", check=1)
        r = json.loads(p.stdout)
        self.assertEqual(r["state"], "FAILED")
        self.assertIn("task 0 failed 2 of 2 attempts", r["error"])

    def test_job_no_worker_can_take_says_why_at_once(self):
        # Issue 14: this used to print nothing and wait for ever.
        cmd = [binary("coordinator/coordctl"), "--coordinator", self.address, "submit", "--tasks", "1",
               "--workers", "nosuch", "--wait"]
        waiting = Daemon(cmd)  # its stderr, line by line
        try:
            m = waiting.wait_for_line(r"job (j-[0-9a-f]+) is pending: no attached worker matches --workers nosuch")
            job = m.group(1)
            status = self.coordctl_json("status", job)
            self.assertEqual(status["state"], "PENDING")
            self.assertEqual(status["pending_reason"], "no attached worker matches --workers nosuch")
            table = self.coordctl("-o", "table", "status", job, check=0).stdout
            self.assertIn("Pending:", table)
            self.assertEqual(self.coordctl_json("cancel", job)["state"], "CANCELLED")
            self.assertEqual(waiting.proc.wait(timeout=DEADLINE), 1)  # cancelled: exit 1
        finally:
            waiting.stop(signal.SIGKILL)

    def test_pending_timeout_fails_the_job_with_the_reason(self):
        p = self.coordctl("-o", "json", "submit", "--tasks", "2", "--exec", "process", "--workers", "nosuch",
                          "--pending-timeout", "2s", "--wait", check=1)  # the job failed: exit 1
        r = json.loads(p.stdout)
        self.assertEqual(r["state"], "FAILED")
        self.assertIn("pending timeout", r["error"])
        self.assertIn("no attached worker matches --workers nosuch", r["error"])
        self.assertEqual(r["pending_reason"], "")
        self.assertEqual(r["spec"]["pending_timeout_seconds"], 2)
        self.assertIn("is pending: no attached worker matches --workers nosuch", p.stderr)
        bad = self.coordctl("submit", "--pending-timeout", "soon", check=2)
        self.assertIn("--pending-timeout", bad.stderr)

    def test_sigterm_drains_a_worker_and_stops_the_coordinator(self):
        # Sleep tasks: long enough to be seen running however fast the build.
        out = self.coordctl_json("submit", "--kind", "sleep", "--duration", "1500ms", "--tasks", "4")
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


if __name__ == "__main__":
    harness.main()
