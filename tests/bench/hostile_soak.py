#!/usr/bin/env python3
"""Hostile peers against a coordinator that runs a real job (issue 14, item 7).

Starts a coordinator (with low --max-sessions and --max-watches, so the caps
are hit) and two one-slot workers from --bin-dir on loopback, submits a real
job of sleep tasks, and for --seconds runs tests/bench/hostile_peers: rogue
worker sessions (results for other sessions' tasks, stale attempts, huge
strings, heartbeat floods, streams that never read, invalid messages) and
rogue clients (invalid and oversized requests, watches opened and dropped),
beside a well-behaved client timing SubmitJob. Meanwhile samples the
coordinator's RSS. Then checks, and prints one JSON line:
  - the real job SUCCEEDED with every task counted once;
  - RSS stayed under --max-rss-mib;
  - every refusal a rogue saw is in the coordinator's metrics (per category,
    equal counts), and the well-behaved client was refused nothing.
Bounded (stops by itself), loopback only; stops everything it started.

  python3 tests/bench/hostile_soak.py --bin-dir build/release --seconds 60
  python3 tests/bench/hostile_soak.py --bin-dir build/release --seconds 5    # the ctest version
"""
import argparse
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import e2e_bench  # noqa: E402  (Cluster, status_kib, check_all_succeeded)

MAX_SESSIONS = 8  # 2 real workers + 6: eight rogue threads churning sessions hit it
MAX_WATCHES = 4


def metrics(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        m = re.match(r"^(busyfleet_(?:peer_refusals|client_refusals|worker_strings_truncated)_total)"
                     r"(?:\{\w+=\"(\w+)\"\})? (\d+)$", line)
        if m:
            out[m.group(1) + (f":{m.group(2)}" if m.group(2) else "")] = int(m.group(3))
    return out


def sample_rss(pid, stop, samples):
    while not stop.wait(0.25):
        try:
            samples.append(e2e_bench.status_kib(pid, "VmRSS") / 1024)
        except (OSError, ValueError):
            return


def wait_ended(c, job_id, timeout):
    """The job's report once it has ended (polled: a watch could be refused
    by --max-watches, and would count as a refusal)."""
    end = time.monotonic() + timeout
    while True:
        report = c.coordctl_json("status", job_id, "--tasks")
        if report["state"] in ("SUCCEEDED", "FAILED", "CANCELLED") or time.monotonic() > end:
            return report
        time.sleep(0.2)


def compare(seen, m, log_cuts):
    """Pairs of (what the rogues saw, what the coordinator counted) that must be equal."""
    def get(key):
        return m.get(key, 0)
    own = {"ok", "cancelled", "deadline_exceeded"}  # the rogue's own doing, not refusals
    client_codes = {k[len("client_status_"):] for k in seen if k.startswith("client_status_")} - own
    client_codes |= {k.split(":", 1)[1] for k in m if k.startswith("busyfleet_client_refusals_total:")}
    pairs = {f"client {c}": (seen.get(f"client_status_{c}", 0) + seen.get(f"good_client_status_{c}", 0),
                             get(f"busyfleet_client_refusals_total:{c}")) for c in sorted(client_codes)}
    pairs["sessions over the cap"] = (seen.get("worker_status_resource_exhausted", 0),
                                      get("busyfleet_peer_refusals_total:sessions_limit"))
    pairs["invalid worker streams"] = (seen.get("worker_status_invalid_argument", 0),
                                       get("busyfleet_peer_refusals_total:invalid_worker"))
    pairs["never-reading streams cut"] = (seen.get("worker_never_read_cut", 0),
                                          get("busyfleet_peer_refusals_total:slow_reader"))
    pairs["never-reading streams cut (log lines)"] = (seen.get("worker_never_read_cut", 0), log_cuts)
    return pairs


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin-dir", required=True)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--rogue-workers", type=int, default=8)
    ap.add_argument("--rogue-clients", type=int, default=4)
    ap.add_argument("--max-rss-mib", type=float, default=1024)
    ap.add_argument("--job-timeout", type=float, default=300)
    args = ap.parse_args()

    class Bin:  # what e2e_bench.Cluster asks of its bench
        def bin(self, rel):
            return os.path.join(os.path.abspath(args.bin_dir), rel)

    extra = ["--http-listen", "127.0.0.1:0", "--max-sessions", str(MAX_SESSIONS), "--max-watches", str(MAX_WATCHES)]
    tasks = max(20, int(args.seconds * 12))  # 100 ms each on 2 slots: about 0.6 x --seconds undisturbed
    with e2e_bench.Cluster(Bin(), ":memory:", workers=2, extra=extra) as c:
        http = int(c.coordinator.wait_for_line(r"metrics on https?://[^:]+:(\d+)/").group(1))
        c.coordinator.max_lines = None  # every line from here: the cuts are counted in the log too
        # On the real workers only: a rogue given a task and then lost would
        # (rightly) count an attempt against it. Rogues still send results
        # for its tasks.
        job = c.coordctl_json("submit", "--kind", "sleep", "--duration", "100ms", "--tasks", str(tasks),
                              "--name", "real", "--workers", "bench-w1,bench-w2")
        job_id = job.get("job_id") or job["id"]
        stop, rss = threading.Event(), []
        sampler = threading.Thread(target=sample_rss, args=(c.pid, stop, rss), daemon=True)
        sampler.start()
        p = subprocess.run([Bin().bin("tests/bench/hostile_peers"), "--coordinator", c.address, "--job", job_id,
                            "--tasks", str(tasks), "--seconds", str(args.seconds),
                            "--rogue-workers", str(args.rogue_workers), "--rogue-clients", str(args.rogue_clients)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=args.seconds + 120)
        if p.returncode != 0:
            raise e2e_bench.BenchError(f"hostile_peers: rc {p.returncode}: {p.stderr[-2000:]}")
        seen = json.loads(p.stdout)
        try:
            report = wait_ended(c, job_id, args.job_timeout)
        except e2e_bench.BenchError:
            print("\n".join(c.coordinator.lines[-15:]), file=sys.stderr)
            raise
        stop.set()
        sampler.join()
        m = metrics(http)
        log_cuts = c.coordinator.count_lines(r"disconnecting the worker at .*: the worker stopped reading")
        peak = e2e_bench.status_kib(c.pid, "VmHWM") / 1024
    failures = []
    try:
        e2e_bench.check_all_succeeded(report, tasks, "the real job")
    except e2e_bench.BenchError as e:
        failures.append(str(e))
    if peak > args.max_rss_mib:
        failures.append(f"coordinator peak RSS {peak:.0f} MiB > {args.max_rss_mib} MiB")
    pairs = compare(seen, m, log_cuts)
    for what, (rogues, coordinator) in pairs.items():
        if rogues != coordinator:
            failures.append(f"{what}: rogues saw {rogues}, the coordinator counted {coordinator}")
    if any(k.startswith("good_client_status_") for k in seen):
        failures.append("the well-behaved client was refused: " +
                        ", ".join(f"{k}={v}" for k, v in seen.items() if k.startswith("good_client_status_")))
    result = {"seconds": args.seconds, "tasks": tasks, "job_state": report["state"],
              "duplicates_ignored": report.get("counts", {}).get("duplicates", report.get("duplicates")),
              "rss_mib": {"first": round(rss[0], 1) if rss else None, "max": round(max(rss), 1) if rss else None,
                          "last": round(rss[-1], 1) if rss else None, "samples": len(rss)},
              "rss_mib_by_quarter": [round(max(rss[len(rss) * q // 4:len(rss) * (q + 1) // 4] or [0]), 1)
                                     for q in range(4)],
              "peak_rss_mib": round(peak, 1),
              "submit_ms": {"n": seen.get("submits"), "p50": round(seen.get("submit_p50_ms", 0), 2),
                            "p99": round(seen.get("submit_p99_ms", 0), 2),
                            "max": round(seen.get("submit_max_ms", 0), 2)},
              "refusals": {k: {"rogues": a, "coordinator": b} for k, (a, b) in pairs.items()},
              "truncated": m.get("busyfleet_worker_strings_truncated_total", 0),
              "rogues": seen, "failures": failures}
    print(json.dumps(result), flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
