#!/usr/bin/env python3
"""Peer row for issue 7: Dask distributed on the same machine.

LocalCluster(n_workers=2, threads_per_worker=1, processes=True); prints one
JSON row like mp_peer.py. Dask comes from Debian's python3-distributed: with
--install the script installs it with apt-get when it is missing (the
harness passes --install only when asked for --peers). The Debian package
serves /usr/bin/python3, so the script re-runs itself there when the
current interpreter (a pyenv one, say) cannot import it.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time

SYSTEM_PYTHON = "/usr/bin/python3"


def noop(x):
    return x


def percentile(values, q):
    s = sorted(values)
    return s[min(len(s) - 1, int(q * (len(s) - 1) + 0.5))]


def importable(python):
    return subprocess.run([python, "-c", "import distributed"], capture_output=True).returncode == 0


def ensure_distributed(install):
    """Returns None when this interpreter can import distributed, else the
    interpreter to re-run under; installs the Debian package if allowed."""
    try:
        import distributed  # noqa: F401
        return None
    except ImportError:
        pass
    if os.path.exists(SYSTEM_PYTHON) and os.path.realpath(sys.executable) != os.path.realpath(SYSTEM_PYTHON) \
            and importable(SYSTEM_PYTHON):
        return SYSTEM_PYTHON
    if not install:
        raise SystemExit("dask_peer: python module 'distributed' missing; run with --install "
                         "(apt-get install python3-distributed)")
    if shutil.which("apt-get") is None:
        raise SystemExit("dask_peer: 'distributed' missing and no apt-get to install python3-distributed")
    # Idempotent: apt-get does nothing when the package is already there.
    apt = ["apt-get", "install", "-y", "--no-install-recommends", "python3-distributed"]
    if os.geteuid() != 0:
        apt = ["sudo", "-n", *apt]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    if subprocess.run(apt, env=env, stdout=subprocess.DEVNULL).returncode != 0:
        raise SystemExit("dask_peer: apt-get install python3-distributed failed")
    try:
        import distributed  # noqa: F401,F811
        return None
    except ImportError:
        if importable(SYSTEM_PYTHON):
            return SYSTEM_PYTHON
    raise SystemExit("dask_peer: python3-distributed installed but not importable")


def run(tasks, jobs):
    import logging
    from distributed import Client, LocalCluster
    logging.getLogger("distributed").setLevel(logging.ERROR)
    t0 = time.perf_counter()
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    client = Client(cluster)
    client.submit(noop, -1, pure=False).result()
    startup = time.perf_counter() - t0
    try:
        t0 = time.perf_counter()
        futures = client.map(noop, range(tasks), pure=False)
        out = client.gather(futures)
        secs = time.perf_counter() - t0
        if len(out) != tasks:
            raise AssertionError(f"dask: {len(out)} of {tasks} results")
        del futures
        for i in range(min(20, jobs)):
            client.submit(noop, i, pure=False).result()
        ms = []
        for i in range(jobs):
            t1 = time.perf_counter()
            if client.submit(noop, i, pure=False).result() != i:
                raise AssertionError("a task returned the wrong value")
            ms.append((time.perf_counter() - t1) * 1e3)
    finally:
        client.close()
        cluster.close()
    return {"system": "Dask distributed LocalCluster (2 x 1 thread)", "startup_s": startup, "tasks": tasks,
            "tasks_per_s": tasks / secs, "latency_jobs": jobs, "p50_ms": percentile(ms, 0.50),
            "p99_ms": percentile(ms, 0.99)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=5000, help="empty tasks in the throughput map")
    parser.add_argument("--latency-jobs", type=int, default=1000, help="sequential single tasks timed")
    parser.add_argument("--install", action="store_true",
                        help="apt-get install python3-distributed if it is missing")
    args = parser.parse_args()
    if args.tasks < 1 or args.latency_jobs < 1:
        parser.error("--tasks and --latency-jobs must be at least 1")
    other = ensure_distributed(args.install)
    if other is not None:
        os.execv(other, [other, os.path.abspath(__file__), *sys.argv[1:]])
    print(json.dumps(run(args.tasks, args.latency_jobs)), flush=True)


if __name__ == "__main__":
    main()
