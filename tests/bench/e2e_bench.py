#!/usr/bin/env python3
"""busyfleet's end-to-end benchmark: every target of issue 7 in one run.

Starts real coordinators and workers from --bin-dir (each stage gets a fresh
coordinator on a free loopback port), runs the six targets of issue 7 and
issue 17's slow link (target 7: the workers direct and behind a userspace
delay proxy adding a 20 ms round trip, interleaved) and prints one
table: target, figure, target value, ratio, pass/fail. The ratio is how far
past the target the figure is, >= 1 passes, whichever way the target points
(figure / target for "at least", target / figure for "at most").

  python3 tests/bench/e2e_bench.py --bin-dir build/release --peers
  python3 tests/bench/e2e_bench.py --bin-dir build/release --only 1,2 --json out.json
  python3 tests/bench/e2e_bench.py --bin-dir build/release --smoke   # ctest: bench_smoke

With --peers, Python multiprocessing and Dask distributed run the same
empty-task workloads in the same run (tests/bench/peers/), and target 1's
bar is computed from their figures; without, from the figures issue 7
measured on this machine (marked "anchor").

--smoke runs tiny sizes in well under a minute and checks only that every
stage ran and every task was accounted for; it prints figures but has no
timing pass/fail. The full run takes a few minutes.
"""
import argparse
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
import harness  # noqa: E402  (the end-to-end tests' Daemon)
STARTUP_DEADLINE = 30.0

# Issue 7's figures from this machine, used when the peers are not run.
ANCHORS = {
    "pool_cs1_tasks_per_s": 35_800,
    "dask_tasks_per_s": 520,
}


class BenchError(Exception):
    """A stage could not run or lost tasks (always fatal, smoke or not)."""


# --------------------------------------------------------------------------
# Processes


class Daemon(harness.Daemon):
    """The end-to-end tests' daemon (stderr collected line by line), keeping
    only the first lines, failing with BenchError, and killing what will not stop."""

    def __init__(self, argv, cwd=None):
        # Only the first lines matter (the listen address); keep memory flat.
        super().__init__(argv, cwd=cwd, max_lines=200)

    def wait_for_line(self, pattern, timeout=STARTUP_DEADLINE):
        try:
            return super().wait_for_line(pattern, timeout)
        except AssertionError as e:
            raise BenchError(f"{self.argv[0]}: {e}") from None

    def stop(self, sig=signal.SIGTERM, timeout=15):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.reader.join(timeout=5)


def cpu_seconds(pid):
    """utime + stime of `pid` (/proc/PID/stat, fields 14 and 15)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def status_kib(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return -1


class Cluster:
    """A coordinator and N one-slot workers from the build tree."""

    def __init__(self, bench, db, workers, slots=1, extra=(), rtt_ms=None):
        """`rtt_ms`: the workers reach the coordinator through a delay proxy
        adding that round trip (tests/e2e/delay_proxy.py)."""
        self.bench = bench
        self.tmp = tempfile.TemporaryDirectory(prefix="busyfleet-bench-")
        self.db = db if db == ":memory:" else os.path.join(self.tmp.name, "busyfleet.db")
        self.workers = []
        self.proxy = None
        t0 = time.perf_counter()
        self.coordinator = Daemon([bench.bin("coordinator/coordinator"), "--listen", "127.0.0.1:0", "--db", self.db,
                                   *extra], cwd=self.tmp.name)
        self.address = self.coordinator.wait_for_line(r"listening on (\S+:\d+)").group(1)
        worker_address = self.address
        if rtt_ms is not None:
            self.proxy = Daemon([sys.executable, os.path.join(HERE, "..", "e2e", "delay_proxy.py"), "--target",
                                 self.address, "--rtt-ms", str(rtt_ms)])
            worker_address = self.proxy.wait_for_line(r"listening on (\S+:\d+)").group(1)
        for i in range(workers):
            # Benches other than this harness's (memory_soak.py, hostile_soak.py)
            # bind nothing.
            prefix = bench.worker_prefix(i) if hasattr(bench, "worker_prefix") else []
            bind = bench.worker_bind_args() if hasattr(bench, "worker_bind_args") else []
            self.workers.append(Daemon([*prefix, bench.bin("worker/worker"), "--coordinator",
                                        worker_address, "--slots", str(slots), "--name", f"bench-w{i + 1}",
                                        *bind]))
        if workers:
            self.wait_for_workers(workers)
        self.startup_seconds = time.perf_counter() - t0

    @property
    def pid(self):
        return self.coordinator.proc.pid

    def coordctl(self, *args, timeout=600, stdout=None):
        cmd = [self.bench.bin("coordinator/coordctl"), "--coordinator", self.address, *args]
        p = subprocess.run(cmd, stdout=stdout or subprocess.PIPE, stderr=subprocess.PIPE, text=stdout is None,
                           timeout=timeout)
        return p

    def coordctl_json(self, *args, timeout=600):
        p = self.coordctl("-o", "json", *args, timeout=timeout)
        if p.returncode != 0:
            raise BenchError(f"coordctl {' '.join(args)}: rc {p.returncode}: {p.stderr.strip()[-500:]}")
        return json.loads(p.stdout)

    def wait_for_workers(self, n, timeout=STARTUP_DEADLINE):
        end = time.monotonic() + timeout
        while True:
            ready = [w for w in self.coordctl_json("workers") if w["state"] == "READY"]
            if len(ready) >= n:
                return
            if time.monotonic() > end:
                raise BenchError(f"{len(ready)} of {n} workers ready after {timeout}s")
            time.sleep(0.02)

    def close(self):
        for w in self.workers:
            w.stop()
        if self.proxy is not None:
            self.proxy.stop()
        self.coordinator.stop()
        self.tmp.cleanup()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# --------------------------------------------------------------------------
# Results


class Bench:
    def __init__(self, args):
        self.args = args
        self.bin_dir = os.path.abspath(args.bin_dir)
        self.rows = []      # the targets table
        self.peers = []     # start-up / tasks/s / round-trip rows, one per system
        self.notes = []
        self.ran = []       # stages that completed

    def worker_bind_args(self):
        """--bind MODE for every worker, when --worker-bind names one."""
        mode = getattr(self.args, "worker_bind", "")
        return ["--bind", mode] if mode else []

    def worker_prefix(self, i):
        """taskset -c CPU for worker i when its slots are pinned (see --worker-bind)."""
        if getattr(self.args, "worker_bind", "") not in ("cores", "threads"):
            return []
        return ["taskset", "-c", str(i % (os.cpu_count() or 1))]

    def bin(self, rel):
        path = os.path.join(self.bin_dir, rel)
        if not os.access(path, os.X_OK):
            raise BenchError(f"missing binary {path}: build it (cmake --build {self.bin_dir} --target "
                             f"{os.path.basename(rel)})")
        return path

    def row(self, target, name, figure, goal, unit, higher_is_better, note=""):
        """Adds a table row; goal None: informational (no pass/fail)."""
        if goal is None or figure is None:
            ratio, ok = None, None
        else:
            ratio = (figure / goal if higher_is_better else (goal / figure if figure > 0 else float("inf")))
            ok = ratio >= 1.0
        r = {"target": target, "name": name, "figure": figure, "unit": unit,
             "goal": goal, "goal_op": ">=" if higher_is_better else "<=", "ratio": ratio, "pass": ok,
             "note": note}
        self.rows.append(r)
        print(f"  [{target}] {name}: {fmt(figure)} {unit}" + (f" (target {r['goal_op']} {fmt(goal)})"
                                                            if goal is not None else "") +
              (f" — {note}" if note else ""), file=sys.stderr, flush=True)
        return r

    def peer(self, system, startup_s, tasks, tasks_per_s, p50_ms, p99_ms, latency_jobs=None):
        self.peers.append({"system": system, "startup_s": startup_s, "tasks": tasks, "tasks_per_s": tasks_per_s,
                           "latency_jobs": latency_jobs, "p50_ms": p50_ms, "p99_ms": p99_ms})

    def peer_figure(self, prefix, key):
        for p in self.peers:
            if p["system"].startswith(prefix) and p.get(key) is not None:
                return p[key]
        return None


def fmt(v):
    if v is None:
        return "-"
    if isinstance(v, str):
        return v
    a = abs(v)
    if a >= 100_000:
        return f"{v:,.0f}"
    if a >= 100:
        return f"{v:,.0f}" if float(v).is_integer() or a >= 1000 else f"{v:.1f}"
    if a >= 1:
        return f"{v:.3g}" if a < 10 else f"{v:.1f}"
    return f"{v:.3g}"


def load_average():
    try:
        return os.getloadavg()[0]
    except OSError:
        return -1.0


# --------------------------------------------------------------------------
# Targets


def submit_wait(cluster, *args, timeout):
    """coordctl -o json submit ... --wait; returns (report, seconds outside)."""
    t0 = time.perf_counter()
    p = cluster.coordctl("-o", "json", "submit", *args, "--wait", timeout=timeout)
    secs = time.perf_counter() - t0
    if p.returncode != 0:
        raise BenchError(f"submit {' '.join(args)}: rc {p.returncode}: {p.stderr.strip()[-500:]}")
    return json.loads(p.stdout), secs


def check_all_succeeded(report, n, what):
    """Every task accounted for: the counts, the per-worker sums and (when
    the report lists them) every task row."""
    if report["state"] != "SUCCEEDED":
        raise BenchError(f"{what}: job ended {report['state']}: {report.get('error')}")
    counts = report.get("counts", {})
    if counts.get("succeeded", n) != n or counts.get("total", n) != n:
        raise BenchError(f"{what}: counts {counts}, expected {n} succeeded")
    by_workers = sum(w["tasks"] for w in report["workers"])
    if by_workers != n:
        raise BenchError(f"{what}: workers ran {by_workers} tasks, expected {n}")
    tasks = report.get("tasks") or []
    if tasks:
        ok = sum(1 for t in tasks if t["state"] == "SUCCEEDED")
        indices = {t["index"] for t in tasks}
        if ok != n or len(indices) != n:
            raise BenchError(f"{what}: {ok} task rows succeeded, {len(indices)} distinct, expected {n}")


def pool_batched_trial(n):
    """One trial of Pool's batched map: a fresh Pool(2), one map of n empty
    tasks (tests/bench/peers/mp_peer.py --batched-only); tasks/s."""
    p = subprocess.run([sys.executable, os.path.join(HERE, "peers", "mp_peer.py"), "--tasks", str(n),
                        "--batched-only"], capture_output=True, text=True, timeout=600)
    if p.returncode != 0:
        raise BenchError(f"mp_peer.py --batched-only: rc {p.returncode}: {p.stderr.strip()[-500:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])["tasks_per_s"]


def spread(values):
    """'median (min-max)' of figures, as the rows' notes give them."""
    return f"{statistics.median(values):,.0f} ({min(values):,.0f}-{max(values):,.0f})"


def target1(b, sizes):
    """Empty-task throughput: N countdown tasks of 0 iterations in one job,
    sizes["t1_trials"] times; with the peers, each trial beside one of
    Pool's batched map (interleaved, so both see the same minute of this
    noisy machine) and the bar is those trials' median."""
    n = sizes["t1_tasks"]
    trials = sizes["t1_trials"]
    pool = b.peer_figure("multiprocessing.Pool(2).map, chunksize=1", "tasks_per_s")
    dask = b.peer_figure("Dask", "tasks_per_s")
    src = "this run"
    if pool is None or dask is None:
        pool = pool or ANCHORS["pool_cs1_tasks_per_s"]
        dask = dask or ANCHORS["dask_tasks_per_s"]
        src = "issue 7 anchors"
    goal = max(100 * dask, 3 * pool)
    with_pool = b.peer_figure("multiprocessing.Pool(2).map, default chunksize", "tasks_per_s") is not None
    for db in b.db_modes:
        with Cluster(b, db, workers=2) as c:
            outside, walls, pools = [], [], []
            for _ in range(trials):
                report, secs = submit_wait(c, "--tasks", str(n), "--iterations", "0", timeout=sizes["t1_timeout"])
                check_all_succeeded(report, n, f"target 1 ({db})")
                outside.append(n / secs)
                wall = report["timing"]["wall_seconds"]
                if wall > 0:
                    walls.append(n / wall)
                if with_pool:
                    pools.append(pool_batched_trial(n))
            label = "memory" if db == ":memory:" else "file"
            rate = statistics.median(outside)
            b.row(1, f"empty tasks/s, submit->report outside, db {label}", rate, goal, "tasks/s", True,
                  f"{n} tasks, median of {trials}: {spread(outside)}; bar = max(100 x Dask, 3 x Pool cs=1) from {src}")
            b.row(1, f"empty tasks/s, report wall_seconds, db {label}", statistics.median(walls) if walls else None,
                  goal, "tasks/s", True, f"median of {trials}: {spread(walls)}" if walls else "no wall_seconds")
            # Issue 17's bar: Pool's batched map (what the chapter's readers
            # call), from this run's trials only; every task recorded here.
            bar = statistics.median(pools) if pools else None
            pool_note = f"Pool's map {spread(pools)} in {len(pools)} trials interleaved" if pools else ""
            b.row(1, f"empty tasks/s vs Pool(2).map default chunksize, db {label}", rate, bar, "tasks/s", True,
                  f"issue 17 target, medians: busyfleet {spread(outside)}, {pool_note}; Pool records nothing per task"
                  if pools else "issue 17 target: run with --peers for Pool's batched figure")
            # The same job from a client already connected, as Pool's map
            # runs on a pool already started: without coordctl's process
            # start-up and connect (~10 ms), which the row above includes.
            conn = latency_run(b, c, {"t2_jobs": trials, "t2_warmup": 0}, "run", tasks=n)
            b.row(1, f"empty tasks/s from a connected client vs Pool(2).map default chunksize, db {label}",
                  conn["tasks_per_s"], bar, "tasks/s", True,
                  f"latency_bench --tasks {n} --wait run, {trials} jobs after the ones above: median "
                  f"{conn['p50_ms']:.1f} ms, max {conn['max_ms']:.1f} ms; {pool_note}")
            if db == b.db_modes[0]:
                b.startup_and_rate = (c.startup_seconds, rate)


def latency_run(b, c, sizes, wait, tasks=1):
    """latency_bench's figures for `wait` (run: a RunJob call per job;
    session: every job on one RunJobs stream), jobs of `tasks` empty tasks."""
    p = subprocess.run([b.bin("tests/bench/latency_bench"), "--coordinator", c.address, "--jobs",
                        str(sizes["t2_jobs"]), "--warmup", str(sizes["t2_warmup"]), "--wait", wait,
                        "--tasks", str(tasks)],
                       capture_output=True, text=True, timeout=600)
    if p.returncode != 0:
        raise BenchError(f"latency_bench --wait {wait}: rc {p.returncode}: {p.stderr.strip()[-500:]}")
    return json.loads(p.stdout)


def target2(b, sizes):
    """Single-task latency: sequential one-task jobs through the client API."""
    for db in b.db_modes:
        with Cluster(b, db, workers=2) as c:
            # The figure is the client session's (RunJobs, issue 17); a call
            # per job (RunJob) is measured right after, on the same cluster.
            r = latency_run(b, c, sizes, "session")
            per_call = latency_run(b, c, sizes, "run")
            label = "memory" if db == ":memory:" else "file"
            # Issue 17's bars; the loopback gRPC round trip measured between
            # the jobs of the same run is the floor (a job takes two: the
            # client's and the worker's).
            rtt = f"gRPC round trip p50 {r['rtt_p50_ms']:.3f} ms, p99 {r['rtt_p99_ms']:.3f} ms"
            b.row(2, f"one-task job latency p50, db {label}", r["p50_ms"], 0.3, "ms", False,
                  f"{r['jobs']} jobs on one RunJobs stream; p90 {r['p90_ms']:.3f} ms, max {r['max_ms']:.3f} ms; "
                  f"{rtt}; a RunJob call per job: p50 {per_call['p50_ms']:.3f} ms")
            b.row(2, f"one-task job latency p99, db {label}", r["p99_ms"], 1.0, "ms", False,
                  f"{rtt}; a RunJob call per job: p99 {per_call['p99_ms']:.3f} ms")
            if db == b.db_modes[0]:
                b.latency = r


def kernel_rate(b, iterations, reps, cpu=None):
    """(kernel G it/s, bare G it/s), both timed by their own binaries."""
    def run(binary):
        cmd = [b.bin(binary), str(iterations), str(reps)]
        if cpu is not None and shutil.which("taskset"):
            cmd = ["taskset", "-c", str(cpu), *cmd]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        if p.returncode != 0:
            raise BenchError(f"{binary}: rc {p.returncode}: {p.stderr}")
        return float(re.search(r"([\d.]+) G iterations/s", p.stdout).group(1))
    return run("tests/bench/countdown_kernel"), run("tests/bench/bare_countdown")


def target3(b, sizes):
    """Parallel efficiency: 64 x 50 ms tasks; 8 x 250 ms vs a bare split run."""
    kernel, _ = kernel_rate(b, sizes["calib_iterations"], 3)
    rate = kernel * 1e9
    it50 = int(rate * sizes["t3a_seconds"])
    it250 = int(rate * sizes["t3b_seconds"])
    b.notes.append(f"target 3 calibration: kernel {kernel:.3f} G it/s -> {it50:,} iterations per "
                   f"{sizes['t3a_seconds'] * 1e3:.0f} ms task, {it250:,} per {sizes['t3b_seconds'] * 1e3:.0f} ms task")
    # The two vCPUs' speeds drift from minute to minute: the median of
    # several trials, with each bare run right after its job's, so both
    # sides of a ratio see the same machine.
    trials = sizes["t3_trials"]
    effs, ratios = [], []
    with Cluster(b, ":memory:", workers=2) as c:
        for _ in range(trials):
            n = sizes["t3a_tasks"]
            report, _ = submit_wait(c, "--tasks", str(n), "--iterations", str(it50), timeout=600)
            check_all_succeeded(report, n, "target 3a")
            effs.append(report["timing"])
            n = sizes["t3b_tasks"]
            report, outside = submit_wait(c, "--tasks", str(n), "--iterations", str(it250), timeout=600)
            check_all_succeeded(report, n, "target 3b")
            p = subprocess.run(["/usr/bin/time", "-f", "TIME %e", b.bin("tests/bench/bare_countdown"), "--split",
                                str(n), str(it250), "2"], capture_output=True, text=True, timeout=600)
            if p.returncode != 0:
                raise BenchError(f"bare_countdown --split: rc {p.returncode}: {p.stderr}")
            bare_outside = float(re.search(r"TIME ([\d.]+)", p.stderr).group(1))
            bare_inside = float(re.search(r"on 2 threads: ([\d.]+) s", p.stdout).group(1))
            t = report["timing"]
            ratios.append((t["makespan_seconds"] / bare_outside, t, outside, bare_outside, bare_inside))
    t = sorted(effs, key=lambda x: x["efficiency"])[len(effs) // 2]
    b.row(3, f"efficiency, {sizes['t3a_tasks']} x {sizes['t3a_seconds'] * 1e3:.0f} ms on 2 slots", t["efficiency"],
          0.98, "", True, f"median of {trials}: makespan {t['makespan_seconds']:.3f} s, serial "
                          f"{t['serial_seconds']:.3f} s, slots {t['slots']}; all: "
                          + ", ".join(f"{x['efficiency']:.3f}" for x in effs))
    ratio, t, outside, bare_outside, bare_inside = sorted(ratios, key=lambda x: x[0])[len(ratios) // 2]
    b.row(3, f"makespan / bare, {sizes['t3b_tasks']} x {sizes['t3b_seconds'] * 1e3:.0f} ms", ratio, 1.02, "x",
          False, f"median of {trials}: job makespan {t['makespan_seconds']:.3f} s (wall {t['wall_seconds']:.3f} s, "
                 f"coordctl {outside:.3f} s); bare {bare_outside:.2f} s by /usr/bin/time ({bare_inside:.3f} s "
                 f"inside); all: " + ", ".join(f"{x[0]:.3f}" for x in ratios))


def target4(b, sizes):
    """Kernel vs the bare loop, both pinned to CPU 0 when taskset exists."""
    ratios = []
    for _ in range(sizes["t4_trials"]):
        kernel, bare = kernel_rate(b, sizes["t4_iterations"], sizes["t4_reps"], cpu=0)
        ratios.append((kernel / bare, kernel, bare))
    ratio, kernel, bare = sorted(ratios)[len(ratios) // 2]
    b.row(4, "kernel / bare loop, iterations/s per core", ratio, 0.98, "x", True,
          f"median of {len(ratios)}: kernel {kernel:.3f} vs bare {bare:.3f} G it/s")


def wait_job(c, job_id, n, timeout):
    """Waits for the job to end via `coordctl jobs` (cheap for any size)."""
    end = time.monotonic() + timeout
    while True:
        for j in c.coordctl_json("jobs", "--limit", "10"):
            if j["id"] == job_id and j["state"] in ("SUCCEEDED", "FAILED", "CANCELLED"):
                return j["state"]
        if time.monotonic() > end:
            c.coordctl("cancel", job_id)
            raise BenchError(f"target 5: the {n:,}-task job did not end within {timeout} s")
        time.sleep(0.25)


# The bar for a million-task job's coordinator (VmHWM over submit,
# run and `status`).
T5_RSS_MIB = 150


def million_task_job(b, sizes, db):
    """A million-task job on a `db` (":memory:" or "file") coordinator: its
    rows, `status` time and the coordinator's peak RSS."""
    n = sizes["t5_tasks"]
    label = "" if db == ":memory:" else ", SQLite file"
    with Cluster(b, db, workers=2) as c:
        t0 = time.perf_counter()
        sub = c.coordctl_json("submit", "--tasks", str(n), "--iterations", "0")
        submit_s = time.perf_counter() - t0
        submit_mib = status_kib(c.pid, "VmHWM") / 1024
        state = wait_job(c, sub["id"], n, sizes["t5_timeout"])
        run_s = time.perf_counter() - t0
        # Every task accounted for, from the summary (no task rows).
        p = subprocess.run([b.bin("tests/bench/job_summary"), "--coordinator", c.address, sub["id"]],
                           capture_output=True, text=True, timeout=120)
        if p.returncode != 0:
            raise BenchError(f"job_summary {sub['id']}: rc {p.returncode}: {p.stderr.strip()[-500:]}")
        check_all_succeeded(json.loads(p.stdout), n, f"target 5 ({n:,}-task job{label})")
        run_mib = status_kib(c.pid, "VmHWM") / 1024
        b.row(5, f"{n:,}-task job{label}: tasks accounted for", n, n, "tasks", True,
              f"{state} in {run_s:.1f} s (submit {submit_s:.2f} s, {n / run_s:,.0f} tasks/s)")
        # What a user types: `coordctl status JOB`, as it comes.
        with tempfile.TemporaryFile() as out:
            t0 = time.perf_counter()
            p = c.coordctl("-o", "json", "status", sub["id"], stdout=out, timeout=600)
            status_s = time.perf_counter() - t0
            out.seek(0)
            data = out.read()
        if p.returncode != 0:
            err = p.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["?"]
            b.row(5, f"`coordctl -o json status JOB` time{label}", None, 1.0, "s", False,
                  f"FAILED after {status_s:.2f} s (rc {p.returncode}): {err[0][:160]}")
            b.rows[-1]["pass"] = False
        else:
            rows = len(json.loads(data).get("tasks") or [])
            b.row(5, f"`coordctl -o json status JOB` time{label}", status_s, 1.0, "s", False,
                  f"{len(data) / 1e6:.1f} MB of JSON, {rows:,} task rows" +
                  (" (dumps every task by default)" if rows == n else ""))
        del data
        hwm_mib = status_kib(c.pid, "VmHWM") / 1024
        b.row(5, f"coordinator peak RSS, {n:,}-task job{label}", hwm_mib, T5_RSS_MIB, "MiB", False,
              f"VmHWM: {submit_mib:.0f} after submit, {run_mib:.0f} after the run, {hwm_mib:.0f} after status")


def target5(b, sizes):
    """Scale: a million-task job; 1,000 and 10,000 heartbeating sessions."""
    million_task_job(b, sizes, ":memory:")
    if "file" in getattr(b, "db_modes", []):
        million_task_job(b, sizes, "file")
    for sessions, cpu_bar in sizes["t5_sessions"]:
        swarm_row(b, sizes, sessions, cpu_bar)


# Sessions past which the coordinator paces heartbeats by default:
# --max-heartbeat-rate 1,000 a second x the base interval (5 s / 3).
PACED_ABOVE = 1666


def swarm_row(b, sizes, sessions, cpu_bar):
    """`sessions` simulated workers attached and heartbeating: the
    coordinator's CPU (bar `cpu_bar` % of a core) and peak RSS (1 GiB). A
    fleet past --max-heartbeat-rate x the base interval is paced: the
    window starts once every session heartbeats at the paced interval."""
    with Cluster(b, ":memory:", workers=0) as c:
        paced = sessions > PACED_ABOVE
        settle = sizes["t5_settle"] + (sizes["t5_paced_settle"] if paced else 0)
        # Paced: a window of ten intervals, so that it holds the acks a
        # paced worker asks for about every tenth heartbeat.
        window = sizes["t5_paced_window"] if paced else sizes["t5_window"]
        p = subprocess.run([b.bin("tests/bench/session_swarm"), "--coordinator", c.address, "--sessions",
                            str(sessions), "--seconds", str(window), "--settle", str(settle),
                            "--attach-timeout", "120", "--pid", str(c.pid)],
                           capture_output=True, text=True, timeout=window + settle + 300)
        if p.returncode != 0:
            raise BenchError(f"session_swarm: rc {p.returncode}: {p.stderr.strip()[-800:]}")
        r = json.loads(p.stdout)
        # Heartbeats are acked only every tenth time once a session's clock
        # offset has settled, so a short window may see no ack at all.
        if r["alive_at_end"] != sessions or r["heartbeats_sent_in_window"] <= 0:
            raise BenchError(f"session_swarm: {r}")
        b.row(5, f"{r['sessions']:,} sessions: coordinator CPU", r["coordinator_cpu_percent"], cpu_bar,
              "% of a core", False,
              f"{r['heartbeats_sent_in_window'] / r['window_seconds']:.0f} heartbeats/s, every "
              f"{r['heartbeat_interval_ms'] / 1000:.2f} s ({r['acks_per_second']:.0f}/s acked) over "
              f"{r['window_seconds']:.1f} s; attach {r['attach_seconds']:.2f} s; swarm itself "
              f"{r['swarm_cpu_percent']:.1f}%")
        b.row(5, f"{r['sessions']:,} sessions: coordinator peak RSS", r["coordinator_vmhwm_kib"] / 1024, 1024, "MiB",
              False, "VmHWM")


def target6(b, sizes):
    """Idle cost: a coordinator with 10 real workers attached, nothing to do."""
    n = sizes["t6_workers"]
    with Cluster(b, ":memory:", workers=n) as c:
        time.sleep(sizes["t6_settle"])  # let the attach burst and first heartbeats pass
        cpu0 = cpu_seconds(c.pid)
        workers0 = sum(cpu_seconds(w.proc.pid) for w in c.workers)
        t0 = time.perf_counter()
        time.sleep(sizes["t6_window"])  # the measured window: nothing else happens
        secs = time.perf_counter() - t0
        pct = 100 * (cpu_seconds(c.pid) - cpu0) / secs
        workers_pct = 100 * (sum(cpu_seconds(w.proc.pid) for w in c.workers) - workers0) / secs / n
        ready = len([w for w in c.coordctl_json("workers") if w["state"] == "READY"])
        if ready != n:
            raise BenchError(f"target 6: {ready} of {n} workers still ready after the window")
        b.row(6, f"idle coordinator, {n} workers: CPU", pct, 1.0, "% of a core", False,
              f"over {secs:.1f} s; each idle worker {workers_pct:.2f}%")


def slow_link_trial(b, sizes, rtt_ms, it5, it50):
    """One trial of the three workloads on 2 workers x 1 slot, the workers
    direct (rtt_ms None) or behind the delay proxy: {workload: figure}."""
    out = {}
    with Cluster(b, ":memory:", workers=2, rtt_ms=rtt_ms) as c:
        for key, n, iterations in (("eff50", sizes["t7_long_tasks"], it50), ("eff5", sizes["t7_short_tasks"], it5),
                                   ("empty", sizes["t7_empty_tasks"], 0)):
            report, outside = submit_wait(c, "--tasks", str(n), "--iterations", str(iterations), timeout=600)
            check_all_succeeded(report, n, f"target 7 {key} (rtt {rtt_ms})")
            out[key] = n / outside if key == "empty" else report["timing"]["efficiency"]
    return out


def target7(b, sizes):
    """Slow link: the same workloads direct and over a delayed round trip."""
    kernel, _ = kernel_rate(b, sizes["calib_iterations"], 3)
    rate = kernel * 1e9
    it5, it50 = int(rate * sizes["t7_short_seconds"]), int(rate * sizes["t7_long_seconds"])
    rtt = sizes["t7_rtt_ms"]
    # Interleaved, direct then delayed, so both sides of each ratio see the
    # same machine; the ratio of each pair, and the median over the trials.
    pairs = []
    for _ in range(sizes["t7_trials"]):
        pairs.append((slow_link_trial(b, sizes, None, it5, it50), slow_link_trial(b, sizes, rtt, it5, it50)))
    rows = (("eff50", f"{sizes['t7_long_tasks']} x {sizes['t7_long_seconds'] * 1e3:.0f} ms efficiency", 0.98),
            ("eff5", f"{sizes['t7_short_tasks']} x {sizes['t7_short_seconds'] * 1e3:.0f} ms efficiency", 0.9),
            ("empty", f"{sizes['t7_empty_tasks']:,} empty tasks/s", 0.8))
    for key, what, goal in rows:
        ratios = sorted((d[key] / x[key], x[key], d[key]) for x, d in pairs)
        ratio, direct, delayed = ratios[len(ratios) // 2]
        b.row(7, f"{what}, {rtt:g} ms round trip / direct", ratio, goal, "x", True,
              f"median of {len(pairs)}: direct {fmt(direct)}, delayed {fmt(delayed)}; all ratios "
              + ", ".join(f"{r[0]:.3f} ({fmt(r[1])} vs {fmt(r[2])})" for r in ratios))


def run_peers(b, sizes):
    rows = []
    cmds = [[sys.executable, os.path.join(HERE, "peers", "mp_peer.py"), "--tasks", str(sizes["peer_tasks"]),
             "--executor-tasks", str(sizes["peer_executor_tasks"]), "--latency-jobs", str(sizes["peer_jobs"])],
            [sys.executable, os.path.join(HERE, "peers", "dask_peer.py"), "--install", "--tasks",
             str(sizes["dask_tasks"]), "--latency-jobs", str(sizes["dask_jobs"])]]
    for cmd in cmds:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        if p.returncode != 0:
            raise BenchError(f"{os.path.basename(cmd[1])}: rc {p.returncode}: {p.stderr.strip()[-800:]}")
        for line in p.stdout.splitlines():
            if line.strip().startswith("{"):
                rows.append(json.loads(line))
    for r in rows:
        b.peer(r["system"], r["startup_s"], r["tasks"], r["tasks_per_s"], r["p50_ms"], r["p99_ms"],
               r.get("latency_jobs"))
        print(f"  [peer] {r['system']}: start-up {r['startup_s']:.2f} s, {r['tasks_per_s']:,.0f} tasks/s, "
              f"p50 {r['p50_ms']:.3f} ms, p99 {r['p99_ms']:.3f} ms", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# Output

FULL = dict(t1_tasks=100_000, t1_trials=5, t1_timeout=600, t2_jobs=1000, t2_warmup=20, calib_iterations=500_000_000,
            t3a_tasks=64, t3a_seconds=0.050, t3b_tasks=8, t3b_seconds=0.250, t3_trials=3, t4_iterations=1_000_000_000,
            t4_reps=5, t4_trials=3, t5_tasks=1_000_000, t5_timeout=400, t5_sessions=((1000, 5.0), (10_000, 10.0)),
            t5_window=10, t5_settle=1, t5_paced_settle=20, t5_paced_window=120, t6_workers=10, t6_settle=2.0, t6_window=10.0, peer_tasks=100_000, peer_executor_tasks=20_000,
            peer_jobs=1000, dask_tasks=5000, dask_jobs=300, t7_rtt_ms=20, t7_trials=3, t7_long_tasks=64,
            t7_long_seconds=0.050, t7_short_tasks=640, t7_short_seconds=0.005, t7_empty_tasks=20_000)
SMOKE = dict(t1_tasks=300, t1_trials=1, t1_timeout=60, t2_jobs=20, t2_warmup=2, calib_iterations=20_000_000,
             t3a_tasks=8, t3a_seconds=0.005, t3b_tasks=4, t3b_seconds=0.020, t3_trials=1, t4_iterations=20_000_000,
             t4_reps=1, t4_trials=1, t5_tasks=2000, t5_timeout=60, t5_sessions=((20, 5.0), (2000, 10.0)),
             t5_window=1, t5_settle=1, t5_paced_settle=5, t5_paced_window=3, t6_workers=3, t6_settle=0.5, t6_window=1.0, peer_tasks=500, peer_executor_tasks=200,
             peer_jobs=20, dask_tasks=100, dask_jobs=10, t7_rtt_ms=20, t7_trials=1, t7_long_tasks=4,
             t7_long_seconds=0.010, t7_short_tasks=16, t7_short_seconds=0.002, t7_empty_tasks=200)

TARGETS = {1: target1, 2: target2, 3: target3, 4: target4, 5: target5, 6: target6, 7: target7}


def machine():
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu_model": model, "kernel": platform.release(),
            "python": platform.python_version()}


def print_tables(b, smoke):
    head = ["target", "figure", "target value", "ratio", "pass/fail"]
    lines = []
    for r in b.rows:
        goal = "-" if r["goal"] is None else f"{r['goal_op']} {fmt(r['goal'])} {r['unit']}".rstrip()
        verdict = "-" if r["pass"] is None else ("pass" if r["pass"] else "FAIL")
        if smoke:
            verdict = "(smoke)"
        figure = "error" if r["figure"] is None else f"{fmt(r['figure'])} {r['unit']}".rstrip()
        lines.append([f"{r['target']}. {r['name']}", figure, goal,
                      "-" if r["ratio"] is None else f"{r['ratio']:.3g}", verdict])
    print(markdown(head, lines))
    if b.peers:
        print()
        head = ["system", "start-up", "empty tasks/s", "round trip p50", "p99"]
        lines = [[p["system"], f"{p['startup_s']:.2f} s", f"{p['tasks_per_s']:,.0f}", f"{p['p50_ms']:.2f} ms",
                  f"{p['p99_ms']:.2f} ms"] for p in b.peers]
        print(markdown(head, lines))
    notes = b.notes + [f"target {r['target']}, {r['name']}: {r['note']}" for r in b.rows
                       if r["figure"] is None and r["note"]]
    for n in notes:
        print(f"\n- {n}", end="")
    if notes:
        print()


def markdown(head, lines):
    widths = [max(len(str(x)) for x in col) for col in zip(head, *lines)]
    out = ["| " + " | ".join(str(h).ljust(w) for h, w in zip(head, widths)) + " |",
           "| " + " | ".join("-" * w for w in widths) + " |"]
    for line in lines:
        out.append("| " + " | ".join(str(x).ljust(w) for x, w in zip(line, widths)) + " |")
    return "\n".join(out)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin-dir", required=True, help="the CMake build tree (build/release)")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes; checks every stage ran, no timing verdicts")
    parser.add_argument("--only", default="", help="comma-separated targets to run, e.g. 1,2 (default: all)")
    parser.add_argument("--peers", action="store_true",
                        help="also run the multiprocessing and Dask peers (installs python3-distributed if missing)")
    parser.add_argument("--db", default="both", choices=["memory", "file", "both"],
                        help="coordinator store for targets 1 and 2: :memory:, the SQLite file, or both "
                             "(the other targets use :memory:)")
    parser.add_argument("--sessions", default="",
                        help="target 5's session swarm sizes, comma-separated (default 1000,10000; CPU bar 5%% of a "
                             "core up to 1,000 sessions, 10%% above)")
    parser.add_argument("--json", default="", help="also write the results to this file")
    parser.add_argument("--strict", action="store_true", help="exit 3 when a full run misses a target")
    parser.add_argument("--worker-bind", default="", choices=["", "auto", "cores", "threads", "none"],
                        help="pass --bind MODE to every worker (default: the worker's own default); with cores or "
                             "threads, worker i is first confined to CPU i mod nproc (taskset), so one-slot workers "
                             "on this machine do not all pin to the first core")
    args = parser.parse_args()
    try:
        only = sorted({int(x) for x in args.only.split(",") if x.strip()}) or sorted(TARGETS)
    except ValueError:
        parser.error(f"--only must list target numbers 1-7, got {args.only!r}")
    bad = [t for t in only if t not in TARGETS]
    if bad:
        parser.error(f"--only: no target {bad[0]} (targets are 1-7)")

    sizes = dict(SMOKE if args.smoke else FULL)
    if args.sessions:
        try:
            counts = [int(x) for x in args.sessions.split(",") if x.strip()]
        except ValueError:
            parser.error(f"--sessions must list session counts, e.g. 1000,10000; got {args.sessions!r}")
        sizes["t5_sessions"] = tuple((n, 5.0 if n <= 1000 else 10.0) for n in counts)
    b = Bench(args)
    b.db_modes = {"memory": [":memory:"], "file": ["file"], "both": [":memory:", "file"]}[args.db]
    info = machine()
    print(f"busyfleet bench: {info['nproc']} CPUs, {info['cpu_model']}; load average {load_average():.2f}"
          f"{' (smoke sizes)' if args.smoke else ''}", file=sys.stderr, flush=True)
    started = time.perf_counter()
    loads = {}
    try:
        if args.peers:
            loads["peers"] = load_average()
            run_peers(b, sizes)
            b.ran.append("peers")
        for t in only:
            loads[str(t)] = load_average()
            print(f"target {t}: {TARGETS[t].__doc__.strip().splitlines()[0]} (load {loads[str(t)]:.2f})",
                  file=sys.stderr, flush=True)
            TARGETS[t](b, sizes)
            b.ran.append(t)
    except (BenchError, subprocess.TimeoutExpired, json.JSONDecodeError) as e:
        print(f"e2e_bench: FAILED: {e}", file=sys.stderr)
        print_tables(b, args.smoke)
        return 1
    if getattr(b, "startup_and_rate", None) or getattr(b, "latency", None):
        startup, rate = getattr(b, "startup_and_rate", (None, None))
        lat = getattr(b, "latency", {})
        b.peers.insert(0, {"system": "busyfleet (coordinator + 2 workers x 1 slot)",
                           "startup_s": startup if startup is not None else float("nan"),
                           "tasks": sizes["t1_tasks"], "tasks_per_s": rate if rate is not None else float("nan"),
                           "p50_ms": lat.get("p50_ms", float("nan")), "p99_ms": lat.get("p99_ms", float("nan"))})
    elapsed = time.perf_counter() - started
    print(f"\nbusyfleet bench on {info['nproc']} x {info['cpu_model']} ({info['kernel']}), "
          f"{time.strftime('%Y-%m-%d')}, {elapsed:.0f} s; load average at each stage: "
          + ", ".join(f"{k} {v:.2f}" for k, v in loads.items()) + "\n")
    print_tables(b, args.smoke)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": info, "smoke": args.smoke, "elapsed_s": elapsed, "load": loads, "rows": b.rows,
                       "peers": b.peers, "notes": b.notes}, f, indent=2)
    missing = [t for t in only if t not in b.ran]
    if missing:
        print(f"e2e_bench: stages did not run: {missing}", file=sys.stderr)
        return 1
    errors = [r for r in b.rows if r["figure"] is None]
    if args.smoke and errors:
        print(f"e2e_bench: {len(errors)} stage(s) gave no figure: " + "; ".join(r["note"] for r in errors),
              file=sys.stderr)
        return 1
    if args.smoke or not args.strict:
        return 0
    return 0 if all(r["pass"] is not False for r in b.rows) else 3


if __name__ == "__main__":
    sys.exit(main())
