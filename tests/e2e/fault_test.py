#!/usr/bin/env python3
"""Fault tolerance with real processes: a job finishes with every task
counted exactly once as long as one worker survives — through kill -9,
SIGSTOP, a coordinator crash and restart, repeated kills, a network cut
between network namespaces, and a chaos loop.

Run: python3 tests/e2e/fault_test.py --bin-dir build/release
Figures (kill -> requeue, partition -> requeue, restart -> running) are
printed on stderr as lines starting with "FIGURE".
"""
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import unittest

import harness


def figure(name, seconds):
    print(f"FIGURE {name}: {seconds * 1000:.0f} ms", file=sys.stderr, flush=True)


class FaultTest(harness.ClusterCase):
    def report(self, job):
        return json.loads(self.coordctl("-o", "json", "status", job).stdout)

    def assert_exactly_once(self, r, n):
        self.assertEqual(r["state"], "SUCCEEDED", r["error"])
        self.assertEqual(sorted(t["index"] for t in r["tasks"]), list(range(n)))
        self.assertTrue(all(t["state"] == "SUCCEEDED" for t in r["tasks"]))
        self.assertEqual(r["counts"]["succeeded"], n)

    def running_on(self, job, worker):
        return [t for t in self.report(job)["tasks"] if t["worker"] == worker and t["state"] == "RUNNING"]

    def test_kill_9_worker_tasks_rerun_elsewhere(self):
        self.start_coordinator()
        workers = {f"w{i + 1}": self.start_worker(f"w{i + 1}") for i in range(3)}
        self.wait_for_workers(3)
        # Two tasks on three workers: one worker stays free to take over.
        job = self.coordctl_json("submit", "--kind", "sleep", "--duration", "2s", "--tasks", "2")["id"]

        def running():
            tasks = [t for t in self.report(job)["tasks"] if t["state"] == "RUNNING"]
            return len(tasks) == 2 and tasks
        victim_task = self.wait_for(running, what="both tasks running")[0]
        victim, lost = victim_task["worker"], victim_task["index"]
        killed = time.monotonic()
        workers[victim].stop(signal.SIGKILL)

        def rerun():
            t = self.report(job)["tasks"][lost]
            return t["worker"] != victim and t["state"] in ("RUNNING", "SUCCEEDED") and t["attempt"] >= 2
        self.wait_for(rerun, what="the lost task running elsewhere")
        figure("kill -9 worker -> its tasks running elsewhere", time.monotonic() - killed)
        r = json.loads(self.coordctl("-o", "json", "watch", job).stdout.splitlines()[-1])
        self.assert_exactly_once(r, 2)
        self.assertGreaterEqual(r["counts"]["retries"], 1)
        self.assertTrue(all(t["worker"] != victim for t in r["tasks"]))

    def test_sigstop_worker_is_declared_dead_and_its_late_results_ignored(self):
        self.start_coordinator(timeout="1s")
        self.start_worker("w1")
        self.start_worker("w2")
        self.wait_for_workers(2)
        job = self.coordctl_json("submit", "--kind", "sleep", "--duration", "1500ms", "--tasks", "4")["id"]
        self.wait_for(lambda: self.running_on(job, "w1"), what="w1 running a task")
        stopped = time.monotonic()
        os.kill(self.workers[0].proc.pid, signal.SIGSTOP)
        try:
            self.wait_for(lambda: any(w["name"] == "w1" and w["state"] == "GONE"
                                      for w in self.coordctl_json("workers", "--all")),
                          what="w1 declared dead")
            figure("silent worker (SIGSTOP) -> declared dead, timeout 1s", time.monotonic() - stopped)
            r = json.loads(self.coordctl("-o", "json", "watch", job).stdout.splitlines()[-1])
            self.assert_exactly_once(r, 4)
            self.assertTrue(all(t["worker"] == "w2" for t in r["tasks"]))
        finally:
            os.kill(self.workers[0].proc.pid, signal.SIGCONT)
        # It comes back as a fresh session; what it finished while stopped
        # arrives late and is recorded as a duplicate, changing nothing.
        self.wait_for_workers(2)
        late = self.wait_for(lambda: self.report(job)["counts"]["duplicates"] >= 1 and self.report(job),
                             what="late result recorded")
        self.assert_exactly_once(late, 4)
        self.assertTrue(all(t["worker"] == "w2" for t in late["tasks"]))

    def test_coordinator_kill_9_and_restart_resumes_the_job(self):
        db = os.path.join(self.tmp.name, "busyfleet.db")
        self.start_coordinator(db=db)
        address = self.address
        self.start_worker("w1")
        self.start_worker("w2")
        self.wait_for_workers(2)
        job = self.coordctl_json("submit", "--kind", "sleep", "--duration", "400ms", "--tasks", "8")["id"]

        # Wait until some results are in the database itself (writes are
        # batched): tasks that had succeeded when the store's backlog was
        # then seen empty are committed (the coordinator hands every change
        # to its store as it makes it; the rows are packed in task_chunks).
        def committed():
            done = [(t["index"], t["attempt"], t["worker"]) for t in self.report(job)["tasks"]
                    if t["state"] == "SUCCEEDED"]
            if len(done) < 2 or self.coordctl_json("health")["store"]["backlog_rows"] != 0:
                return []
            return done
        before = self.wait_for(committed, what="2 results committed")
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            rows = con.execute("SELECT COALESCE(SUM(rows), 0) FROM task_chunks WHERE job_id=?", (job,)).fetchone()[0]
        finally:
            con.close()
        self.assertGreaterEqual(rows, 2, "the job's rows are in the file")
        self.coordinator.stop(signal.SIGKILL)
        restarted = time.monotonic()
        self.start_coordinator(listen=address, db=db)
        self.wait_for(lambda: any(t["state"] == "RUNNING" for t in self.report(job)["tasks"]),
                      what="the job running again")
        figure("coordinator kill -9 + restart -> job running again", time.monotonic() - restarted)
        r = json.loads(self.coordctl("-o", "json", "watch", job).stdout.splitlines()[-1])
        self.assert_exactly_once(r, 8)
        by_index = {t["index"]: t for t in r["tasks"]}
        for idx, attempt, worker in before:
            self.assertEqual(by_index[idx]["attempt"], attempt, f"task {idx} was run again")
            self.assertEqual(by_index[idx]["worker"], worker)
        # A clean stop saves the state too: the report survives another restart.
        self.assertEqual(self.coordinator.stop(signal.SIGTERM), 0)
        self.start_coordinator(listen=address, db=db)
        again = self.report(job)
        self.assertEqual(again["state"], "SUCCEEDED")
        self.assertEqual(again["timing"]["serial_seconds"], r["timing"]["serial_seconds"])

    def test_worker_killed_ten_times_keeps_state_consistent(self):
        self.start_coordinator()
        self.start_worker("steady")
        victim = self.start_worker("flaky")
        self.wait_for_workers(2)
        job = self.coordctl_json("submit", "--kind", "sleep", "--duration", "300ms", "--tasks", "30",
                                 "--max-attempts", "20")["id"]
        seen = {}
        for _ in range(10):
            self.wait_for(lambda: self.running_on(job, "flaky") or self.report(job)["state"] != "RUNNING",
                          what="flaky running a task")
            victim.stop(signal.SIGKILL)
            for t in self.report(job)["tasks"]:
                self.assertGreaterEqual(t["attempt"], seen.get(t["index"], 0), "attempt went backwards")
                seen[t["index"]] = t["attempt"]
            victim = self.start_worker("flaky")
            self.wait_for(lambda: any(w["name"] == "flaky" and w["state"] == "READY"
                                      for w in self.coordctl_json("workers")), what="flaky back")
        r = json.loads(self.coordctl("-o", "json", "watch", job).stdout.splitlines()[-1])
        self.assert_exactly_once(r, 30)
        for t in r["tasks"]:
            self.assertGreaterEqual(t["attempt"], seen.get(t["index"], 0))

    def test_chaos_random_kills_and_restarts(self):
        self.start_coordinator()
        names = ["c1", "c2", "c3"]
        procs = {n: self.start_worker(n) for n in names}
        self.wait_for_workers(3)
        job = self.coordctl_json("submit", "--kind", "sleep", "--duration", "20ms", "--tasks", "240",
                                 "--max-attempts", "50")["id"]
        rng = random.Random(7)
        end = time.monotonic() + 20  # bounded; stops by itself
        kills = 0
        while time.monotonic() < end and self.report(job)["state"] == "RUNNING":
            name = rng.choice(names)
            procs[name].stop(signal.SIGKILL)
            kills += 1
            procs[name] = self.start_worker(name)
            time.sleep(rng.uniform(0.1, 0.4))  # chaos pacing, not synchronisation
        r = json.loads(self.coordctl("-o", "json", "watch", job).stdout.splitlines()[-1])
        self.assert_exactly_once(r, 240)
        self.assertGreaterEqual(kills, 1)
        self.wait_for_workers(3)  # capacity restored


NS_C, NS_W = "bfc-fault", "bfw-fault"


@unittest.skipUnless(os.geteuid() == 0 and shutil.which("ip"), "needs root and iproute2 (ip netns)")
class PartitionTest(harness.ClusterCase):
    """A coordinator and a worker on two hosts (network namespaces joined by a
    veth pair, addresses from the benchmarking range 198.18.0.0/15), plus a
    worker next to the coordinator. Cutting the link longer than the timeout
    requeues the remote worker's tasks; restoring it lets the worker rejoin."""

    def ip(self, *args, check=True):
        return subprocess.run(["ip", *args], check=check, capture_output=True, text=True)

    def setUp(self):
        super().setUp()
        self.cleanup_netns()
        try:
            self.ip("netns", "add", NS_C)
            self.ip("netns", "add", NS_W)
            self.ip("link", "add", "bfc-veth", "type", "veth", "peer", "name", "bfw-veth")
            self.ip("link", "set", "bfc-veth", "netns", NS_C)
            self.ip("link", "set", "bfw-veth", "netns", NS_W)
            for ns, dev, addr in ((NS_C, "bfc-veth", "198.18.10.1/24"), (NS_W, "bfw-veth", "198.18.10.2/24")):
                self.ip("-n", ns, "addr", "add", addr, "dev", dev)
                self.ip("-n", ns, "link", "set", dev, "up")
                self.ip("-n", ns, "link", "set", "lo", "up")
        except subprocess.CalledProcessError as e:
            self.cleanup_netns()
            self.skipTest(f"cannot build network namespaces here: {e.stderr.strip()}")

    def tearDown(self):
        super().tearDown()
        self.cleanup_netns()

    def cleanup_netns(self):
        for ns in (NS_C, NS_W):
            self.ip("netns", "del", ns, check=False)

    def test_network_cut_requeues_and_the_worker_rejoins(self):
        in_c = ("ip", "netns", "exec", NS_C)
        in_w = ("ip", "netns", "exec", NS_W)
        self.start_coordinator("--insecure", listen="198.18.10.1:7070", timeout="1s", prefix=in_c)
        self.start_worker("remote", prefix=in_w)
        self.start_worker("local", prefix=in_c)
        # coordctl runs inside the coordinator's namespace too.
        self.coordctl = self.make_coordctl(in_c)
        self.wait_for_workers(2)
        hosts = {w["name"]: w for w in self.coordctl_json("workers")}
        self.assertEqual(set(hosts), {"remote", "local"})
        job = self.coordctl_json("submit", "--kind", "sleep", "--duration", "1500ms", "--tasks", "4")["id"]
        self.wait_for(lambda: self.running_on(job, "remote"), what="remote running a task")
        self.ip("-n", NS_W, "link", "set", "bfw-veth", "down")
        cut = time.monotonic()
        self.wait_for(lambda: not any(w["name"] == "remote" for w in self.coordctl_json("workers")),
                      what="remote declared dead")
        figure("network cut -> requeue, timeout 1s", time.monotonic() - cut)
        r = json.loads(self.coordctl("-o", "json", "watch", job).stdout.splitlines()[-1])
        self.assertEqual(r["state"], "SUCCEEDED")
        self.assertEqual(sorted(t["index"] for t in r["tasks"]), [0, 1, 2, 3])
        self.ip("-n", NS_W, "link", "set", "bfw-veth", "up")
        self.wait_for(lambda: any(w["name"] == "remote" and w["state"] == "READY"
                                  for w in self.coordctl_json("workers")), timeout=90, what="remote rejoined")

    def make_coordctl(self, prefix):
        def run(*args, check=None):
            cmd = [*prefix, harness.binary("coordinator/coordctl"), "--coordinator", self.address, *args]
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
            if check is not None:
                self.assertEqual(p.returncode, check, f"{cmd}: rc {p.returncode}\n{p.stdout}\n{p.stderr}")
            return p
        return run

    def running_on(self, job, worker):
        r = json.loads(self.coordctl("-o", "json", "status", job).stdout)
        return [t for t in r["tasks"] if t["worker"] == worker and t["state"] == "RUNNING"]


if __name__ == "__main__":
    harness.main()
