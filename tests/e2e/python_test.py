#!/usr/bin/env python3
"""End to end: the python task kind (issue 18) with real workers. The
chapter's loop in the worker's embedded CPython, in both exec modes; cancel,
task timeout, and a worker started without the kind.

Run: python3 tests/e2e/python_test.py --bin-dir build/release
"""
import json
import os
import time

import harness

NO_PYTHON_REASON = ("no attached worker offers the python kind (workers built without Python, "
                    "or started with --no-python)")
CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    """CPU time of `pid` and its live children (process-mode tasks)."""
    total = 0.0
    pids = [pid]
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                pids += [int(c) for c in f.read().split()]
    except OSError:
        pass
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime
        except OSError:
            pass  # a child that just exited
    return total


class PythonKindTest(harness.ClusterCase):
    def setUp(self):
        super().setUp()
        self.start_coordinator()

    def start_python_worker(self, name="py", slots=2, *extra):
        w = self.start_worker(name, *extra, slots=slots)
        w.wait_for_line(r"python task kind: embedded CPython 3\.")
        return w

    def submit_python(self, *args, check=0):
        return json.loads(self.coordctl("-o", "json", "submit", "--kind", "python", *args, check=check).stdout)

    def test_both_exec_modes_run_python_jobs_and_iterations_add_up(self):
        self.start_python_worker()
        self.wait_for_workers(1)
        for mode in ("thread", "process"):
            with self.subTest(mode=mode):
                r = self.submit_python("--iterations", "1000003", "--tasks", "4", "--exec", mode, "--wait")
                self.assertEqual(r["state"], "SUCCEEDED", r["error"])
                self.assertEqual(r["kind"], "python")
                self.assertEqual(r["iterations_total"], 4_000_012)
                self.assertEqual(sum(t["iterations"] for t in r["tasks"]), 4_000_012)
                self.assertEqual(sum(w["iterations"] for w in r["workers"]), 4_000_012)
                self.assertTrue(all(t["cpu_seconds"] > 0 for t in r["tasks"]))

    def test_workers_lists_the_kinds(self):
        self.start_python_worker("py")
        self.start_worker("plain", "--no-python").wait_for_line(r"python task kind: off \(--no-python\)")
        self.wait_for_workers(2)
        by_name = {w["name"]: w for w in self.coordctl_json("workers")}
        self.assertEqual(by_name["py"]["kinds"], ["countdown", "spin", "sleep", "python"])
        self.assertRegex(by_name["py"]["python_version"], r"^3\.\d+\.\d+")
        self.assertEqual(by_name["plain"]["kinds"], ["countdown", "spin", "sleep"])
        self.assertEqual(by_name["plain"]["python_version"], "")
        table = self.coordctl("-o", "table", "workers", check=0).stdout
        self.assertIn("PYTHON", table.splitlines()[0])

    def test_cancel_stops_a_long_python_job_promptly(self):
        for mode in ("thread", "process"):
            with self.subTest(mode=mode):
                worker = self.start_python_worker(f"py-{mode}", 2, "--exec", mode)
                self.wait_for_workers(1)
                job = self.submit_python("--iterations", "1000000000000", "--tasks", "2")["id"]
                self.wait_for(lambda: sum(w["running"] for w in self.coordctl_json("workers")) == 2,
                              what="both tasks running")
                self.assertEqual(self.coordctl_json("cancel", job)["state"], "CANCELLED")
                self.wait_for(lambda: sum(w["running"] for w in self.coordctl_json("workers")) == 0,
                              what="no task running")

                def idle():  # the worker (and its children) burn no CPU any more
                    before = cpu_seconds(worker.proc.pid)
                    time.sleep(0.2)
                    return cpu_seconds(worker.proc.pid) - before < 0.05

                self.wait_for(idle, what="the worker's CPU going idle")
                r = json.loads(self.coordctl("-o", "json", "status", job, check=1).stdout)
                self.assertEqual(r["state"], "CANCELLED")
                self.assertEqual(r["counts"]["cancelled"], 2)
                worker.stop()
                self.workers.remove(worker)
                self.wait_for_workers(0)

    def test_task_timeout_fails_a_python_task(self):
        self.start_python_worker()
        self.wait_for_workers(1)
        for mode in ("thread", "process"):
            with self.subTest(mode=mode):
                r = self.submit_python("--iterations", "1000000000000", "--tasks", "1", "--exec", mode,
                                       "--task-timeout", "100ms", "--max-attempts", "1", "--wait", check=1)
                self.assertEqual(r["state"], "FAILED")
                self.assertIn("timed out after 100ms", json.dumps(r["tasks"]))

    def test_worker_without_the_kind_leaves_the_job_pending_then_one_with_it_runs_it(self):
        self.start_worker("plain", "--no-python").wait_for_line(r"python task kind: off")
        self.wait_for_workers(1)
        job = self.submit_python("--iterations", "500001", "--tasks", "2")["id"]
        status = self.wait_for(
            lambda: (s := self.coordctl_json("status", job))["pending_reason"] == NO_PYTHON_REASON and s,
            what="the pending reason")
        self.assertEqual(status["state"], "PENDING")
        # A countdown job still runs on the worker without Python meanwhile.
        r = self.coordctl_json("submit", "--iterations", "1000", "--tasks", "1", "--wait")
        self.assertEqual(r["state"], "SUCCEEDED")
        self.start_python_worker("py")
        r = self.wait_for(lambda: (s := self.coordctl_json("status", job, check=None))["state"] == "SUCCEEDED" and s,
                          what="the python job succeeding")
        self.assertEqual(r["iterations_total"], 1_000_002)
        self.assertEqual({t["worker"] for t in r["tasks"]}, {"py"})


if __name__ == "__main__":
    harness.main()
