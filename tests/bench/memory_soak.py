#!/usr/bin/env python3
"""A coordinator that runs job after job: does its memory, and its database,
stay bounded? (Issue "Operations", item 2: bounded memory and disk.)

Starts a coordinator and two one-slot workers from --bin-dir on loopback,
submits --jobs jobs of --tasks empty countdown tasks one after the other
(each waited for), and every --every jobs prints the coordinator's resident
memory (VmRSS), its peak (VmHWM) and the size of the database file with its
WAL. Bounded in count and time; stops everything it started.

  python3 tests/bench/memory_soak.py --bin-dir build/release                  # 50 x 200,000, SQLite file
  python3 tests/bench/memory_soak.py --bin-dir build/release --db :memory:
  python3 tests/bench/memory_soak.py --bin-dir build/release --jobs 5 --tasks 2000 --every 1   # a quick look

Extra coordinator flags go after `--`, e.g. `-- --retention 1h`.
"""
import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import e2e_bench  # noqa: E402  (Cluster, status_kib, submit_wait, check_all_succeeded)


def db_mib(cluster):
    if cluster.db == ":memory:":
        return 0.0
    total = 0
    for suffix in ("", "-wal", "-shm"):
        try:
            total += os.path.getsize(cluster.db + suffix)
        except FileNotFoundError:
            pass
    return total / 2**20


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin-dir", required=True)
    ap.add_argument("--db", default="file", help="'file' (a fresh SQLite file) or ':memory:'")
    ap.add_argument("--jobs", type=int, default=50)
    ap.add_argument("--tasks", type=int, default=200_000)
    ap.add_argument("--every", type=int, default=10)
    ap.add_argument("--job-timeout", type=float, default=600)
    ap.add_argument("extra", nargs="*", help="more coordinator flags (after --)")
    args = ap.parse_args()

    class Bin:  # what e2e_bench.Cluster asks of its bench
        def bin(self, rel):
            return os.path.join(os.path.abspath(args.bin_dir), rel)

    print(f"memory soak: {args.jobs} jobs x {args.tasks:,} empty tasks, db {args.db}, 2 workers x 1 slot", flush=True)
    print(f"{'JOBS':>5} {'RSS(MiB)':>9} {'PEAK(MiB)':>10} {'DB(MiB)':>8} {'LAST JOB(s)':>12}", flush=True)
    with e2e_bench.Cluster(Bin(), args.db, workers=2, extra=args.extra) as c:
        started = time.monotonic()
        for j in range(1, args.jobs + 1):
            report, secs = e2e_bench.submit_wait(c, "--tasks", str(args.tasks), "--iterations", "0",
                                                 "--name", f"soak-{j}", timeout=args.job_timeout)
            e2e_bench.check_all_succeeded(report, args.tasks, f"job {j}")
            if j % args.every == 0 or j == args.jobs:
                rss = e2e_bench.status_kib(c.pid, "VmRSS") / 1024
                peak = e2e_bench.status_kib(c.pid, "VmHWM") / 1024
                print(f"{j:>5} {rss:>9.0f} {peak:>10.0f} {db_mib(c):>8.1f} {secs:>12.2f}", flush=True)
        print(f"done in {time.monotonic() - started:.0f} s", flush=True)


if __name__ == "__main__":
    main()
