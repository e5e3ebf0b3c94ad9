#!/usr/bin/env python3
"""Restarts lose no work, with real processes: a coordinator stopped with
SIGTERM or killed with kill -9 and started again on the same --db while
tasks run gets their results from the workers that kept running them (no
attempt charged, counts.retries == 0); workers attach again within about a
second of its return, however long it was away; a worker restarted by its
supervisor while its old process hangs takes its name back.

Run: python3 tests/e2e/restart_test.py --bin-dir build/release
Figures are printed on stderr as lines starting with "FIGURE". The suite
keeps them small; for the closing note's bigger setup:
  BUSYFLEET_RESTART_TASK_SECONDS=20 BUSYFLEET_RESTART_AT=10 \
  BUSYFLEET_RESTART_OUTAGES=0.5,20,180 python3 tests/e2e/restart_test.py --bin-dir build/release
"""
import datetime
import json
import os
import signal
import sys
import time
import unittest

import harness

# 8 spin tasks of TASK_SECONDS on 2 workers x 4 slots, the coordinator
# restarted RESTART_AT seconds in.
TASK_SECONDS = float(os.environ.get("BUSYFLEET_RESTART_TASK_SECONDS", "4"))
RESTART_AT = float(os.environ.get("BUSYFLEET_RESTART_AT", "2"))
OUTAGES = [float(s) for s in os.environ.get("BUSYFLEET_RESTART_OUTAGES", "0.5,20").split(",")]


def figure(name, value, unit="s"):
    shown = f"{value:.2f} {unit}" if unit else f"{value}"
    print(f"FIGURE {name}: {shown}", file=sys.stderr, flush=True)


class RestartTest(harness.ClusterCase):
    def report(self, job):
        return self.coordctl_json("status", job)

    def start_fleet(self, db, timeout="3s"):
        self.start_coordinator(db=db, timeout=timeout)
        self.start_worker("w1", slots=4)
        self.start_worker("w2", slots=4)
        self.wait_for_workers(2)

    def restart_coordinator(self, sig, db, outage=0.0, timeout="3s"):
        """Stops the coordinator with `sig`, keeps it down for `outage`
        seconds (the scenario, not a synchronisation), starts it again on the
        same address and --db; returns the seconds from its "listening" line
        to the last worker's attach."""
        address = self.address
        rc = self.coordinator.stop(sig)
        if sig == signal.SIGTERM:
            self.assertEqual(rc, 0)
        if outage > 0:
            time.sleep(outage)
        coordinator = self.start_coordinator(listen=address, db=db, timeout=timeout)
        up = time.monotonic()
        coordinator.wait_for_line(r"worker w1 attached")
        coordinator.wait_for_line(r"worker w2 attached")
        return time.monotonic() - up

    def run_restart_case(self, sig, label):
        db = os.path.join(self.tmp.name, "busyfleet.db")
        self.start_fleet(db)
        submitted = time.monotonic()
        job = self.coordctl_json("submit", "--kind", "spin", "--duration", f"{TASK_SECONDS}s", "--tasks", "8",
                                 "--max-attempts", "1")["id"]
        self.wait_for(lambda: sum(t["state"] == "RUNNING" for t in self.report(job)["tasks"]) == 8,
                      what="8 tasks running")
        # Restart RESTART_AT seconds into the job (a scenario time, not a
        # synchronisation: the condition above is what the test waits on).
        time.sleep(max(0.0, submitted + RESTART_AT - time.monotonic()))
        reattach = self.restart_coordinator(sig, db)
        r = json.loads(self.coordctl("-o", "json", "watch", job).stdout.splitlines()[-1])
        wall = time.monotonic() - submitted
        self.assertEqual(r["state"], "SUCCEEDED", r["error"])
        self.assertEqual(r["counts"]["retries"], 0)
        self.assertEqual(r["counts"]["succeeded"], 8)
        self.assertTrue(all(t["attempt"] == 1 for t in r["tasks"]), r["tasks"])
        self.assertLess(wall, TASK_SECONDS + 1.0 + 2.0)  # one task length, plus start-up and polling
        figure(f"8 x {TASK_SECONDS:g} s spin, coordinator {label} + restart at {RESTART_AT:g} s -> SUCCEEDED in",
               wall)
        figure(f"{label}: retries", r["counts"]["retries"], "")
        figure(f"{label}: workers re-attached after the coordinator was up", reattach)

    def test_sigterm_restart_keeps_running_tasks(self):
        self.run_restart_case(signal.SIGTERM, "SIGTERM")
        self.assertGreaterEqual(self.workers[0].count_lines(r"coordinator going away"), 1)

    def test_kill_9_restart_keeps_running_tasks(self):
        self.run_restart_case(signal.SIGKILL, "kill -9")

    def test_workers_reattach_within_a_second_whatever_the_outage(self):
        db = os.path.join(self.tmp.name, "busyfleet.db")
        self.start_fleet(db)
        for outage in OUTAGES:
            reattach = self.restart_coordinator(signal.SIGKILL, db, outage=outage)
            figure(f"re-attach after a {outage:g} s outage (kill -9)", reattach)
            self.assertLess(reattach, 1.5)

    def test_supervisor_restart_of_a_hung_worker_keeps_its_name(self):
        # Heartbeats every 2 s: two missed after 4 s, declared dead after 6 s.
        # The new process must get the name in between, by taking it over.
        self.start_coordinator(timeout="6s")
        old = self.start_worker("w1")
        self.wait_for_workers(1)
        old.proc.send_signal(signal.SIGSTOP)  # hung: its stream stays open, silent

        def silent_for(seconds):
            w = [w for w in self.coordctl_json("workers") if w["name"] == "w1"]
            if not w:
                return False
            last = datetime.datetime.fromisoformat(w[0]["last_heartbeat"].replace("Z", "+00:00"))
            return (datetime.datetime.now(datetime.timezone.utc) - last).total_seconds() > seconds
        self.wait_for(lambda: silent_for(4.2), what="two heartbeats missed")
        new = self.start_worker("w1")  # its supervisor starts a new process
        attached = new.wait_for_line(r"attached to \S+ as (\S+) ")
        self.assertEqual(attached.group(1), "w1")  # not w1-2
        self.assertEqual([w["name"] for w in self.coordctl_json("workers")], ["w1"])
        self.coordctl("submit", "--wait", "--kind", "sleep", "--duration", "10ms", "--workers", "w1", check=0)
        # The old process wakes up: now it is the live namesake of a live
        # worker, and gets a suffix (and says so) instead of evicting it.
        old.proc.send_signal(signal.SIGCONT)
        old.wait_for_line(r"another live worker is attached as w1")
        self.assertEqual(sorted(w["name"] for w in self.coordctl_json("workers")), ["w1", "w1-2"])


if __name__ == "__main__":
    harness.main()
