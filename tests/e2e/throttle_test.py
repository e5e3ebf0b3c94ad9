#!/usr/bin/env python3
"""End to end, issue 16 item 3: a worker throttled for real (its own cgroup
with a CPU quota) has the throttling attributed to its tasks: their
interference figures, its worker row, and its stragglers' causes.

Needs root and a writable cpu controller (cgroup v1 /sys/fs/cgroup/cpu, or
cgroup v2 with the cpu controller); skipped otherwise.

Run: python3 tests/e2e/throttle_test.py --bin-dir build/release
"""
import os
import time
import unittest

import harness
from harness import DEADLINE

# 20 ms of CPU per 100 ms period: a CPU-bound task runs at a fifth of its speed.
QUOTA_US = 20000
PERIOD_US = 100000
# About 0.1-0.3 s of countdown per task unthrottled on this machine's vCPUs.
ITERATIONS = "400000000"
TASKS = "10"


def mounts():
    """(mount point, fstype, super options) of each mount."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            head, _, tail = line.partition(" - ")
            fields, tail_fields = head.split(), tail.split()
            if len(fields) >= 5 and len(tail_fields) >= 3:
                out.append((fields[4], tail_fields[0], tail_fields[2].split(",")))
    return out


def cpu_controller():
    """("v1", mount) or ("v2", mount) of a cpu controller we can create a
    cgroup under, or (None, why)."""
    if os.geteuid() != 0:
        return None, "needs root to create a cgroup"
    for point, fstype, options in mounts():
        if fstype == "cgroup" and "cpu" in options and os.access(point, os.W_OK) and \
                os.path.exists(os.path.join(point, "cpu.cfs_quota_us")):
            return "v1", point
    for point, fstype, _ in mounts():
        if fstype != "cgroup2" or not os.access(point, os.W_OK):
            continue
        try:
            with open(os.path.join(point, "cgroup.subtree_control")) as f:
                if "cpu" in f.read().split():
                    return "v2", point
        except OSError:
            pass
    return None, "no writable cpu controller (cgroup v1 cpu, or v2 with cpu in subtree_control)"


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


class ThrottleTest(harness.ClusterCase):
    def setUp(self):
        super().setUp()
        version, where = cpu_controller()
        if version is None:
            self.skipTest(where)
        self.parent = where
        self.cgroup = os.path.join(where, f"busyfleet-throttle-{os.getpid()}")
        os.mkdir(self.cgroup)
        # After tearDown has killed the workers: always gone, also on failure.
        self.addCleanup(self.remove_cgroup)
        if version == "v1":
            write(os.path.join(self.cgroup, "cpu.cfs_period_us"), str(PERIOD_US))
            write(os.path.join(self.cgroup, "cpu.cfs_quota_us"), str(QUOTA_US))
        else:
            write(os.path.join(self.cgroup, "cpu.max"), f"{QUOTA_US} {PERIOD_US}")

    def remove_cgroup(self):
        procs = os.path.join(self.cgroup, "cgroup.procs")

        def emptied():
            try:
                with open(procs) as f:
                    pids = f.read().split()
            except FileNotFoundError:
                return True
            for pid in pids:  # a straggling process goes back to the parent
                try:
                    write(os.path.join(self.parent, "cgroup.procs"), pid)
                except OSError:
                    pass
            try:
                os.rmdir(self.cgroup)
                return True
            except FileNotFoundError:
                return True
            except OSError:
                return False

        self.wait_for(emptied, what=f"removing {self.cgroup}")

    def test_throttled_workers_tasks_say_they_were_throttled(self):
        self.start_coordinator()
        # The shell joins the cgroup, then becomes the worker: it is inside
        # before it runs anything.
        join = ["sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', self.cgroup]
        self.start_worker("throttled", prefix=join)
        self.start_worker("free")
        self.wait_for_workers(2)
        with open(os.path.join(self.cgroup, "cgroup.procs")) as f:
            self.assertTrue(f.read().split(), "the throttled worker is in its cgroup")

        r = self.coordctl_json("submit", "--tasks", TASKS, "--iterations", ITERATIONS, "--max-slots", "2", "--wait")
        self.assertEqual(r["state"], "SUCCEEDED", r)
        report = self.coordctl_json("status", r["id"])
        throttled_tasks = [t for t in report["tasks"] if t["worker"] == "throttled"]
        free_tasks = [t for t in report["tasks"] if t["worker"] == "free"]
        self.assertTrue(throttled_tasks, "the throttled worker ran some of the tasks")
        for t in throttled_tasks:
            self.assertIn("interference", t, t)
            self.assertGreater(t["interference"]["throttled_seconds"], 0, t)
            self.assertGreater(t["interference"]["throttled_periods"], 0, t)
        for t in free_tasks:
            self.assertEqual(t.get("interference", {}).get("throttled_seconds", 0), 0, t)

        workers = {w["name"]: w for w in report["workers"]}
        self.assertGreater(workers["throttled"]["throttled_seconds"], 0, workers)
        self.assertGreater(workers["throttled"]["throttled_share"], 0, workers)
        self.assertEqual(workers["free"]["throttled_seconds"], 0, workers)

        # Five times slower than the free worker's: stragglers, throttled.
        slow = [t for t in throttled_tasks if t["index"] in report["stragglers"]]
        self.assertTrue(slow, f"a throttled task is a straggler: {report['stragglers']} {throttled_tasks}")
        for t in slow:
            self.assertIn("throttled", t["slow_cause"], t)

        text = self.coordctl("-o", "table", "status", r["id"], check=0).stdout
        self.assertIn("THROTTLED(s)", text)
        # Causes are listed largest first: on a loaded machine waiting for a
        # CPU can come before the throttling on the same line.
        self.assertRegex(text, r"task \d+: [^\n]*throttled \d")


if __name__ == "__main__":
    harness.main()
