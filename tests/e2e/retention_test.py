"""Finished jobs leave memory and the database: `coordctl delete`, `coordctl
jobs prune`, the daemon's --retention-jobs, and --db :memory:'s bound on
finished jobs, with the real binaries. Deleted jobs stay deleted across a
restart, and their task rows leave the file.
"""
import os
import re
import signal
import sqlite3
import sys
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


class RetentionTest(harness.ClusterCase):
    def run_job(self, tasks=3):
        job = self.coordctl_json("submit", "--wait", "--kind", "sleep", "--duration", "1ms", "--tasks", str(tasks))
        self.assertEqual(job["state"], "SUCCEEDED")
        return job["id"]

    def job_ids(self):
        return [j["id"] for j in self.coordctl_json("jobs")]

    def rows_of(self, db, job):
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            # Version 1 rows and the rows packed in task_chunks (schema 2).
            return (conn.execute("SELECT count(*) FROM tasks WHERE job_id = ?", (job,)).fetchone()[0] +
                    conn.execute("SELECT COALESCE(SUM(rows), 0) FROM task_chunks WHERE job_id = ?",
                                 (job,)).fetchone()[0])

    def metric(self, name):
        with urllib.request.urlopen(f"http://{self.http_address}/metrics", timeout=5) as resp:
            m = re.search(rf"^{name} (\S+)$", resp.read().decode(), re.M)
        self.assertIsNotNone(m, f"{name} not in /metrics")
        return float(m.group(1))

    def test_delete_and_prune_survive_a_restart(self):
        db = os.path.join(self.tmp.name, "busyfleet.db")
        self.start_coordinator(db=db)
        self.start_worker("w1", slots=2)
        self.wait_for_workers(1)
        a, b, c, d = (self.run_job() for _ in range(4))
        # A running job is refused (exit 2, FAILED_PRECONDITION), with advice.
        running = self.coordctl_json("submit", "--kind", "sleep", "--duration", "60s", "--tasks", "1")["id"]
        p = self.coordctl("delete", running, check=2)
        self.assertIn("cancel it first", p.stderr)
        self.coordctl("cancel", running, check=0)
        # Several at once; an unknown id fails the command (exit 2), not the others.
        p = self.coordctl("-o", "json", "delete", running, a, "j-0000000000000000", check=2)
        self.assertIn("j-0000000000000000", p.stderr)
        self.assertEqual(sorted(__import__("json").loads(p.stdout)["deleted"]), sorted([running, a]))
        self.coordctl("status", a, check=2)
        self.assertEqual(set(self.job_ids()), {b, c, d})
        # Prune: a dry run lists the oldest beyond --keep, and removes nothing.
        dry = self.coordctl_json("jobs", "prune", "--keep", "1", "--dry-run")
        self.assertTrue(dry["dry_run"])
        self.assertEqual([j["id"] for j in dry["jobs"]], [b, c])
        self.assertEqual(set(self.job_ids()), {b, c, d})
        pruned = self.coordctl_json("jobs", "prune", "--keep", "1")
        self.assertEqual([j["id"] for j in pruned["jobs"]], [b, c])
        self.assertEqual(self.job_ids(), [d])
        self.assertEqual(self.metric("busyfleet_jobs_deleted_total"), 4)
        self.coordctl("jobs", "prune", check=2)  # neither --older-than nor --keep
        # The rows leave the file; a restart on it shows the same jobs.
        self.wait_for(lambda: all(self.rows_of(db, j) == 0 for j in (a, b, c, running)), what="rows purged")
        self.assertGreaterEqual(self.rows_of(db, d), 3)  # kept: a row per task, or more (each change of a task is a row of its chunk)
        self.coordinator.stop(signal.SIGTERM)
        self.start_coordinator(db=db)
        self.assertEqual(self.job_ids(), [d])
        self.assertEqual(self.coordctl_json("status", d)["state"], "SUCCEEDED")

    def test_retention_jobs_caps_the_database(self):
        db = os.path.join(self.tmp.name, "busyfleet.db")
        self.start_coordinator("--retention-jobs", "2", db=db)
        self.start_worker("w1", slots=2)
        self.wait_for_workers(1)
        ids = [self.run_job() for _ in range(5)]
        # Retention runs when a job ends; a job is chosen once its end is
        # committed, so the last pass may come with the next job's end or
        # the next minute: run one more to be sure, then wait.
        ids.append(self.run_job())
        self.wait_for(lambda: len(self.job_ids()) <= 3, what="retention to cap the jobs")
        self.assertEqual(self.job_ids()[:2], [ids[-1], ids[-2]])
        self.wait_for(lambda: all(self.rows_of(db, j) == 0 for j in ids[:3]), what="rows purged")
        self.assertRegex(self.coordinator.wait_for_line(r"retention: removed \d+ finished jobs").group(0),
                         r"removed \d+ finished jobs")

    def test_memory_db_drops_the_oldest_finished_jobs_and_says_so(self):
        self.start_coordinator("--keep-finished-jobs", "1", db=":memory:")
        self.start_worker("w1", slots=2)
        self.wait_for_workers(1)
        first = self.run_job()
        second = self.run_job()
        p = self.coordctl("status", first, check=2)
        self.assertIn("dropped", p.stderr)
        self.assertIn("--keep-finished", p.stderr)
        self.assertEqual(self.coordctl_json("status", second)["state"], "SUCCEEDED")
        self.assertEqual(self.job_ids(), [second, first])  # still listed
        self.assertEqual(self.metric("busyfleet_jobs_dropped_total"), 1)
        health = self.coordctl_json("health")
        self.assertEqual(health["store"]["jobs_dropped"], 1)


if __name__ == "__main__":
    harness.main()
