"""Store faults on real files: the coordinator survives them and says so.

An exclusive lock held past the busy timeout (as the sqlite3 shell's BEGIN
IMMEDIATE, a VACUUM or a migration does) and a full file system (a small
tmpfs filled up, then freed). During each: gRPC health and /healthz say
NOT_SERVING with the database and the cause, submits get UNAVAILABLE naming
the database, the running job goes on in memory and the backlog shows in
/metrics. After it: the backlog commits, submits work again without a
restart, every report is unchanged, and a restart on the same file gives
the same reports.
"""
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


def essentials(r):
    """What a report says about the work done (not times relative to now)."""
    return {
        "state": r["state"],
        "counts": r["counts"],
        "serial_seconds": r["timing"]["serial_seconds"],
        "tasks": [(t["index"], t["state"], t["attempt"], t["worker"], t["iterations"]) for t in r["tasks"]],
    }


class StoreFaultsTest(harness.ClusterCase):
    def setUp(self):
        super().setUp()
        self.mounts = []
        # A write waits this long for a lock before it fails and is retried.
        os.environ["BUSYFLEET_DB_BUSY_TIMEOUT"] = "500ms"
        self.addCleanup(os.environ.pop, "BUSYFLEET_DB_BUSY_TIMEOUT", None)

    def tearDown(self):
        # The processes first (they hold files on the mounts), then the mounts,
        # then the temporary directory.
        for d in [*self.workers, self.coordinator]:
            if d is not None and d.proc.poll() is None:
                d.stop(signal.SIGKILL)
        for mnt in self.mounts:
            subprocess.run(["umount", mnt], check=False)
        super().tearDown()

    def report(self, job):
        return json.loads(self.coordctl("-o", "json", "status", job, check=0).stdout)

    def healthz(self):
        try:
            with urllib.request.urlopen(f"http://{self.http_address}/healthz", timeout=5) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def metric(self, name):
        with urllib.request.urlopen(f"http://{self.http_address}/metrics", timeout=5) as resp:
            text = resp.read().decode()
        m = re.search(rf"^{name} (\S+)$", text, re.M)
        self.assertIsNotNone(m, f"{name} not in /metrics")
        return float(m.group(1))

    def serving(self):
        return self.coordctl("health").returncode == 0

    def start_cluster(self, db):
        self.start_coordinator(db=db)
        self.start_worker("w1", slots=2)
        self.wait_for_workers(1)

    def assert_not_serving_because(self, db, cause):
        self.wait_for(lambda: not self.serving(), timeout=20, what="gRPC health NOT_SERVING")
        code, body = self.healthz()
        self.assertEqual(code, 503, body)
        self.assertIn(db, body)
        self.assertRegex(body, cause)
        self.assertEqual(self.metric("busyfleet_store_writable"), 0)
        health = json.loads(self.coordctl("-o", "json", "health", check=3).stdout)
        self.assertEqual(health["status"], "NOT_SERVING")
        self.assertFalse(health["store"]["writable"])
        self.assertIn(db, health["store"]["cause"])
        self.assertGreater(health["store"]["backlog_rows"], 0)
        self.assertNotEqual(health["store"]["unwritable_since"], "")
        self.assertRegex(self.coordctl("-o", "table", "health", check=3).stdout, r"store: .*" + re.escape(db))
        self.assertGreaterEqual(self.metric("busyfleet_store_write_failures_total"), 1)
        p = self.coordctl("submit", "--kind", "sleep", "--duration", "1ms", "--tasks", "1")
        self.assertNotEqual(p.returncode, 0, p.stdout)
        self.assertIn("UNAVAILABLE", p.stderr)
        self.assertIn(db, p.stderr)
        self.coordinator.wait_for_line(re.escape(db) + r" cannot be written: .*" + cause)

    def assert_recovered_and_restart_agrees(self, db, job):
        self.wait_for(self.serving, timeout=20, what="gRPC health SERVING again")
        self.assertEqual(self.healthz()[0], 200)
        health = json.loads(self.coordctl("-o", "json", "health", check=0).stdout)
        self.assertTrue(health["store"]["writable"])
        self.wait_for(lambda: self.metric("busyfleet_store_backlog_rows") == 0, what="the backlog committed")
        # Submits work again, without a restart.
        again = self.coordctl_json("submit", "--kind", "sleep", "--duration", "1ms", "--tasks", "4")["id"]
        self.wait_for(lambda: self.report(again)["state"] == "SUCCEEDED", what="a job after recovery")
        before = {j: essentials(self.report(j)) for j in (job, again)}
        self.assertEqual(self.coordinator.stop(signal.SIGTERM), 0)
        self.start_coordinator(listen=self.address, db=db)
        after = {j: essentials(self.report(j)) for j in (job, again)}
        self.assertEqual(after, before)
        self.assertEqual(after[job]["counts"]["succeeded"], 200)

    def run_job_through(self, db, fault_on, fault_off, cause):
        job = self.coordctl_json("submit", "--kind", "sleep", "--duration", "10ms", "--tasks", "200")["id"]
        fault_on()
        try:
            self.assert_not_serving_because(db, cause)
            # The job goes on in memory and ends while nothing can be written.
            self.wait_for(lambda: self.report(job)["state"] == "SUCCEEDED", what="the job ending in memory")
            self.assertGreater(self.metric("busyfleet_store_backlog_rows"), 0)
            reported = essentials(self.report(job))
        finally:
            fault_off()
        self.assertEqual(essentials(self.report(job)), reported)
        self.assert_recovered_and_restart_agrees(db, job)

    def test_exclusive_lock_past_the_busy_timeout(self):
        db = os.path.join(self.tmp.name, "busyfleet.db")
        self.start_cluster(db)
        holder = {}

        def lock():
            con = sqlite3.connect(db, isolation_level=None, timeout=10)
            con.execute("BEGIN IMMEDIATE")
            holder["con"] = con

        def unlock():
            con = holder.pop("con", None)
            if con is not None:
                con.execute("ROLLBACK")
                con.close()

        self.run_job_through(db, lock, unlock, r"database is locked")

    def test_full_file_system(self):
        mnt = os.path.join(self.tmp.name, "mnt")
        os.mkdir(mnt)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", mnt], check=True)
        self.mounts.append(mnt)  # unmounted by tearDown, also on failure
        db = os.path.join(mnt, "busyfleet.db")
        self.start_cluster(db)
        filler = os.path.join(mnt, "filler")

        def fill():
            fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            try:
                while True:
                    os.write(fd, b"\0" * 65536)
            except OSError:
                pass
            finally:
                os.close(fd)

        def free():
            if os.path.exists(filler):
                os.remove(filler)

        self.run_job_through(db, fill, free, r"full|SQLITE_FULL")

    def test_database_made_read_only(self):
        """The database file and its WAL made immutable (`chattr +i`, on an
        ext4 file system: what an operator's `chattr`, a read-only snapshot
        or a security tool does to a file a process has open; Linux refuses to
        remount a file system read-only under open files, and root ignores
        permission bits), then writable again. The -shm file stays: it is
        memory-mapped, and making it immutable kills any SQLite process."""
        for tool in ("mkfs.ext4", "chattr"):
            if shutil.which(tool) is None:
                self.skipTest(f"{tool} not installed")
        image = os.path.join(self.tmp.name, "ext4.img")
        with open(image, "wb") as f:
            f.truncate(64 << 20)
        subprocess.run(["mkfs.ext4", "-q", image], check=True)
        mnt = os.path.join(self.tmp.name, "mnt")
        os.mkdir(mnt)
        subprocess.run(["mount", "-o", "loop", image, mnt], check=True)
        self.mounts.append(mnt)  # unmounted by tearDown, also on failure
        db = os.path.join(mnt, "busyfleet.db")
        self.start_cluster(db)
        files = [db, db + "-wal"]

        def read_only():
            subprocess.run(["chattr", "+i", *files], check=True)

        def writable():
            if os.path.ismount(mnt):
                subprocess.run(["chattr", "-i", *files], check=False)

        self.addCleanup(writable)
        self.run_job_through(db, read_only, writable, r"I/O error|SQLITE_IOERR|readonly|SQLITE_READONLY")


    def test_heartbeats_flow_while_a_million_task_job_is_created_and_listed(self):
        """No store I/O under the coordinator's lock nor on the gRPC callback
        threads: with a 2 s worker timeout (1 s passes too, with less margin
        on two shared cores), creating a 1,000,000-task job (a million rows to commit)
        while `jobs` and the status page are hammered declares no worker dead."""
        db = os.path.join(self.tmp.name, "busyfleet.db")
        self.start_coordinator(db=db, timeout="2s")
        self.start_worker("w1", slots=2)
        self.start_worker("w2", slots=2)
        self.wait_for_workers(2)
        sessions = {w["name"]: w["session_id"] for w in self.coordctl_json("workers")}
        stop = threading.Event()
        calls = {"jobs": 0, "page": 0}

        def hammer_jobs():
            while not stop.is_set():
                self.coordctl("jobs", "--limit", "1000")
                calls["jobs"] += 1

        def hammer_page():
            while not stop.is_set():
                with urllib.request.urlopen(f"http://{self.http_address}/", timeout=30) as resp:
                    resp.read()
                calls["page"] += 1

        threads = [threading.Thread(target=f, daemon=True) for f in (hammer_jobs, hammer_jobs, hammer_page)]
        for t in threads:
            t.start()
        try:
            started = time.monotonic()
            job = self.coordctl_json("submit", "--kind", "sleep", "--duration", "30s",
                                     "--tasks", "1000000")["id"]
            print(f"FIGURE submit of 1,000,000 tasks: {(time.monotonic() - started) * 1000:.0f} ms",
                  file=sys.stderr, flush=True)
            # Keep listing while the million rows are committed.
            deadline = time.monotonic() + 6
            while time.monotonic() < deadline:
                self.assertEqual(self.coordinator.count_lines(r"no heartbeat"), 0,
                                 "\n".join(self.coordinator.lines))
                time.sleep(0.2)
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=60)
        print(f"FIGURE calls during the run: {calls}", file=sys.stderr, flush=True)
        self.assertGreater(calls["jobs"], 0)
        self.assertGreater(calls["page"], 0)
        self.assertEqual(self.coordinator.count_lines(r"no heartbeat|declared dead"), 0,
                         "\n".join(self.coordinator.lines))
        for w in self.workers:
            self.assertEqual(w.count_lines(r"declared dead|lost the coordinator"), 0, "\n".join(w.lines))
        now = {w["name"]: w["session_id"] for w in self.coordctl_json("workers") if w["state"] == "READY"}
        self.assertEqual(now, sessions)
        jobs = self.coordctl_json("jobs")
        self.assertEqual(jobs[0]["id"], job)
        self.assertEqual(jobs[0]["tasks"], 1000000)

if __name__ == "__main__":
    harness.main()
