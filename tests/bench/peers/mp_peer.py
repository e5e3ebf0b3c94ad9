#!/usr/bin/env python3
"""Peer rows for issue 7: Python multiprocessing on the same machine.

Prints one JSON object per line (a row each), for e2e_bench.py to collect:
  {"system": ..., "startup_s": ..., "tasks": N, "tasks_per_s": ...,
   "latency_jobs": M, "p50_ms": ..., "p99_ms": ...}
The workloads are busyfleet's empty tasks: a function that does nothing,
shipped to 2 worker processes; throughput over --tasks tasks in one map,
round trip over --latency-jobs sequential single tasks. --batched-only: the
default-chunksize map alone, no round trips (one trial of e2e_bench.py's
target 1, interleaved with busyfleet's).
"""
import argparse
import concurrent.futures
import json
import multiprocessing
import statistics
import sys
import time


def noop(x):
    return x


def percentile(values, q):
    s = sorted(values)
    return s[min(len(s) - 1, int(q * (len(s) - 1) + 0.5))]


def latency(call, jobs):
    for i in range(min(20, jobs)):  # warm-up, not measured
        call(i)
    ms = []
    for i in range(jobs):
        t0 = time.perf_counter()
        if call(i) != i:
            raise AssertionError("a task returned the wrong value")
        ms.append((time.perf_counter() - t0) * 1e3)
    return percentile(ms, 0.50), percentile(ms, 0.99)


POOL_KINDS = (("multiprocessing.Pool(2).map, chunksize=1", 1),
              ("multiprocessing.Pool(2).map, default chunksize", None))


def pool_rows(tasks, jobs, kinds=POOL_KINDS):
    rows = []
    for label, chunksize in kinds:
        t0 = time.perf_counter()
        with multiprocessing.Pool(2) as pool:
            pool.map(noop, range(2), chunksize=1)  # both processes up and serving
            startup = time.perf_counter() - t0
            t0 = time.perf_counter()
            out = pool.map(noop, range(tasks), chunksize=chunksize) if chunksize else pool.map(noop, range(tasks))
            secs = time.perf_counter() - t0
            if len(out) != tasks:
                raise AssertionError(f"{label}: {len(out)} of {tasks} results")
            p50, p99 = latency(lambda i: pool.apply(noop, (i,)), jobs) if jobs else (None, None)
        rows.append({"system": label, "startup_s": startup, "tasks": tasks, "tasks_per_s": tasks / secs,
                     "latency_jobs": jobs, "p50_ms": p50, "p99_ms": p99})
    return rows


def executor_row(tasks, jobs):
    label = "concurrent.futures.ProcessPoolExecutor(2)"
    t0 = time.perf_counter()
    with concurrent.futures.ProcessPoolExecutor(2) as ex:
        list(ex.map(noop, range(2)))
        startup = time.perf_counter() - t0
        t0 = time.perf_counter()
        out = list(ex.map(noop, range(tasks)))  # chunksize=1: one task per message
        secs = time.perf_counter() - t0
        if len(out) != tasks:
            raise AssertionError(f"{label}: {len(out)} of {tasks} results")
        p50, p99 = latency(lambda i: ex.submit(noop, i).result(), jobs)
    return {"system": label, "startup_s": startup, "tasks": tasks, "tasks_per_s": tasks / secs,
            "latency_jobs": jobs, "p50_ms": p50, "p99_ms": p99}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=100_000, help="empty tasks in the throughput map")
    parser.add_argument("--executor-tasks", type=int, default=0,
                        help="tasks for ProcessPoolExecutor (slower); 0: same as --tasks")
    parser.add_argument("--latency-jobs", type=int, default=1000, help="sequential single tasks timed")
    parser.add_argument("--batched-only", action="store_true",
                        help="only Pool's default-chunksize map, without round trips")
    args = parser.parse_args()
    if args.tasks < 1 or args.latency_jobs < 1:
        parser.error("--tasks and --latency-jobs must be at least 1")
    if args.batched_only:
        for row in pool_rows(args.tasks, 0, POOL_KINDS[1:]):
            print(json.dumps(row), flush=True)
        return 0
    rows = pool_rows(args.tasks, args.latency_jobs)
    rows.append(executor_row(args.executor_tasks or args.tasks, args.latency_jobs))
    for row in rows:
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    sys.exit(main())
