#!/usr/bin/env python3
"""End to end, issue 17 (link-aware prefetch): a worker behind a slow link
(a userspace delay proxy adding a 100 ms round trip) is kept more than one
task ahead per slot, so its slot does not idle a round trip between tasks;
the job completes with every task accounted for.

Asserts on behaviour, not timing: the most tasks the coordinator held in
flight on the far worker (`coordctl workers -o json`: running + assigned)
while the job ran, against what the rule without the link would allow (its
slot plus one, or the configured prefetch of 2 before the first result).

Run: python3 tests/e2e/slow_link_test.py --bin-dir build/release
"""
import os
import sys

import harness

HERE = os.path.dirname(os.path.abspath(__file__))
RTT_MS = 100
# 20 ms sleep tasks: 5 ms + 2 x 100 ms of queued work per slot is 10 tasks
# (still 4 if a loaded machine stretches them to 50 ms);
# without the link only the running one and one ready (20 ms > 5 ms).
TASKS = 80
TASK_DURATION = "20ms"
# More than the link-blind rule holds on a 1-slot worker: the running task
# and one ready (2 before this change), with room for a --prefetch of up to
# 2 before the job's first result.
MORE_THAN_BLIND = 3


class SlowLinkTest(harness.ClusterCase):
    def start_proxy(self, rtt_ms):
        proxy = harness.Daemon([sys.executable, os.path.join(HERE, "delay_proxy.py"), "--target", self.address,
                                "--rtt-ms", str(rtt_ms)])
        self.workers.append(proxy)  # stopped in tearDown with the workers
        return proxy.wait_for_line(r"listening on (\S+:\d+)").group(1)

    def far_in_flight(self):
        """running + assigned of the far worker, or None when it is not listed."""
        for w in self.coordctl_json("workers"):
            if w["name"] == "far":
                return w["running"] + w.get("assigned", 0)
        return None

    def test_far_worker_is_kept_a_round_trip_ahead(self):
        self.start_coordinator()
        far_address = self.start_proxy(RTT_MS)
        self.start_worker("far", coordinator=far_address)
        self.wait_for_workers(1)
        job = self.coordctl_json("submit", "--tasks", str(TASKS), "--kind", "sleep", "--duration", TASK_DURATION)
        most = 0

        def ended():
            nonlocal most
            most = max(most, self.far_in_flight() or 0)
            states = {j["id"]: j["state"] for j in self.coordctl_json("jobs", "--limit", "5")}
            return states.get(job["id"]) in ("SUCCEEDED", "FAILED", "CANCELLED")

        self.wait_for(ended, timeout=60, what="the job's end")
        report = self.coordctl_json("status", job["id"])
        self.assertEqual(report["state"], "SUCCEEDED", report.get("error"))
        self.assertEqual(sorted(t["index"] for t in report["tasks"]), list(range(TASKS)))
        self.assertTrue(all(t["state"] == "SUCCEEDED" and t["worker"] == "far" for t in report["tasks"]))
        self.assertGreater(most, MORE_THAN_BLIND,
                           f"the far worker never held more than {most} tasks: its slot waits a round trip")


if __name__ == "__main__":
    harness.main()
