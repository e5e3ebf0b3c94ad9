#!/usr/bin/env python3
"""The remote path with real processes on several "hosts": deploy/netns-cluster.sh
builds network namespaces joined by a bridge, runs the coordinator on one and
workers on the others. Checks that workers on distinct addresses join and
share a job, that cutting one host's cable requeues its tasks (the job still
succeeds, with a retry counted), that `down` leaves nothing behind, and that
deploy/ssh/start-workers.sh / stop-workers.sh drive workers over real ssh
(sshd inside the namespaces, throwaway keys), idempotently.

Run as root: python3 tests/e2e/netns_cluster_test.py --bin-dir build/release
Uses its own namespace prefix and address range (198.18.21.0/24), so it never
meets a cluster started by hand (198.18.20.0/24) or fault_test.py (198.18.10.0/24).
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

import harness

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SCRIPT = os.path.join(ROOT, "deploy", "netns-cluster.sh")
PREFIX = "bfnt"
SUBNET = "198.18.21"
DEADLINE = 30.0


def figure(name, seconds):
    print(f"FIGURE {name}: {seconds * 1000:.0f} ms", file=sys.stderr, flush=True)


def our_namespaces():
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.split() and line.split()[0].startswith(PREFIX + "-")]


def purge():
    """Kills every process in a namespace with our prefix and deletes it."""
    for ns in our_namespaces():
        for pid in subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout.split():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def alive(pid):
    """Running, not merely a zombie waiting for its new parent to reap it."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def peer_ip(peer):
    m = re.match(r"ipv4:([\d.]+):\d+$", peer)
    return m and m.group(1)


@unittest.skipUnless(os.geteuid() == 0, "needs root: network namespaces (run the tests as root)")
@unittest.skipUnless(shutil.which("ip"), "needs iproute2's ip command (apt-get install iproute2)")
class NetnsClusterCase(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="bf-netns-")
        self.state = os.path.join(self.tmp.name, "state")
        self.env = dict(os.environ,
                        BUSYFLEET_NETNS_STATE=self.state,
                        BUSYFLEET_NETNS_PREFIX=PREFIX,
                        BUSYFLEET_NETNS_SUBNET=SUBNET,
                        BUSYFLEET_WORKER_TIMEOUT="1s")
        for key in ("BUSYFLEET_COORDINATOR", "BUSYFLEET_TOKEN_FILE"):
            self.env.pop(key, None)
        purge()  # what an earlier run killed before its tearDown left

    def tearDown(self):
        # Always take the cluster down, even when the test failed; then make
        # sure nothing with our prefix survived.
        self.cluster("down", check=None)
        purge()
        self.tmp.cleanup()

    def cluster(self, *args, check=0, timeout=120):
        p = subprocess.run(["bash", SCRIPT, *args], capture_output=True, text=True, env=self.env,
                           timeout=timeout)
        if check is not None:
            self.assertEqual(p.returncode, check, f"netns-cluster.sh {' '.join(args)}: rc {p.returncode}\n"
                             f"{p.stdout}\n{p.stderr}\n{self.logs()}")
        return p

    def logs(self):
        d = os.path.join(self.state, "logs")
        if not os.path.isdir(d):
            return ""
        out = []
        for name in sorted(os.listdir(d)):
            with open(os.path.join(d, name), errors="replace") as f:
                out.append(f"--- {name}\n" + "".join(f.readlines()[-15:]))
        return "\n".join(out)

    def up(self, n, *extra):
        return self.cluster("up", str(n), "--bin-dir", harness.BIN_DIR, *extra)

    def coordctl(self, *args, check=0):
        return self.cluster("exec", "coord", harness.binary("coordinator/coordctl"), "-o", "json", *args,
                            check=check)

    def coordctl_json(self, *args):
        return json.loads(self.coordctl(*args).stdout)

    def addr(self, host):
        return self.cluster("addr", host).stdout.strip()

    def wait_for(self, predicate, timeout=DEADLINE, what="condition"):
        try:
            return harness.ClusterCase.wait_for(self, predicate, timeout, what)
        except AssertionError as e:
            raise AssertionError(f"{e}\n{self.logs()}") from None

    def ready(self):
        return {w["name"]: w for w in self.coordctl_json("workers") if w["state"] == "READY"}

    def report(self, job):
        return self.coordctl_json("status", job)


class NetnsClusterTest(NetnsClusterCase):
    def test_workers_on_distinct_addresses_share_a_job(self):
        self.up(3)
        workers = self.ready()
        self.assertEqual(set(workers), {"w1", "w2", "w3"})
        # Each worker reached the coordinator from its own host's address.
        for name, w in workers.items():
            self.assertEqual(peer_ip(w["peer"]), self.addr(name), f"{name}: peer {w['peer']}")
        self.assertEqual(len({peer_ip(w["peer"]) for w in workers.values()}), 3)
        self.assertEqual(self.addr("coord"), f"{SUBNET}.1")
        # The namespaces are separate hosts: w1 cannot see w2's address as its own.
        own = self.cluster("exec", "w1", "ip", "-o", "-4", "addr", "show", "dev", "eth0").stdout
        self.assertIn(self.addr("w1") + "/24", own)
        self.assertNotIn(self.addr("w2") + "/", own)

        r = json.loads(self.coordctl("submit", "--kind", "sleep", "--duration", "200ms", "--tasks", "6",
                                     "--wait").stdout)
        self.assertEqual(r["state"], "SUCCEEDED", r["error"])
        self.assertEqual({w["name"] for w in r["workers"] if w["tasks"] > 0}, {"w1", "w2", "w3"})
        self.assertEqual({t["worker"] for t in r["tasks"]}, {"w1", "w2", "w3"})
        self.assertEqual(r["counts"]["succeeded"], 6)

    def test_cutting_a_hosts_link_requeues_its_tasks_and_the_job_succeeds(self):
        self.up(2)
        job = self.coordctl_json("submit", "--kind", "sleep", "--duration", "1500ms", "--tasks", "4")["id"]
        self.wait_for(lambda: [t for t in self.report(job)["tasks"]
                               if t["worker"] == "w2" and t["state"] == "RUNNING"], what="w2 running a task")
        self.cluster("link", "w2", "down")
        cut = time.monotonic()
        self.wait_for(lambda: "w2" not in self.ready(), what="w2 declared dead")
        figure("netns cluster: link down -> worker declared dead (timeout 1s)", time.monotonic() - cut)
        lines = self.coordctl("watch", job).stdout.splitlines()
        r = json.loads(lines[-1])
        self.assertEqual(r["state"], "SUCCEEDED", r["error"])
        self.assertEqual(sorted(t["index"] for t in r["tasks"]), [0, 1, 2, 3])
        self.assertGreaterEqual(r["counts"]["retries"], 1)
        self.assertTrue(all(t["worker"] == "w1" for t in r["tasks"]), r["tasks"])
        # Plugged back in, the worker attaches again by itself.
        self.cluster("link", "w2", "up")
        self.wait_for(lambda: "w2" in self.ready(), timeout=60, what="w2 back")

    def test_down_leaves_nothing_and_failed_up_cleans_up(self):
        self.up(1)
        pids = []
        for name in os.listdir(os.path.join(self.state, "pids")):
            with open(os.path.join(self.state, "pids", name)) as f:
                pids.append(int(f.read()))
        self.assertEqual(len(pids), 2)  # coordinator, w1
        self.assertEqual(sorted(our_namespaces()), [f"{PREFIX}-coord", f"{PREFIX}-sw", f"{PREFIX}-w1"])
        # A second cluster on the same state is refused, the first untouched.
        p = self.cluster("up", "1", "--bin-dir", harness.BIN_DIR, check=1)
        self.assertIn("already up", p.stderr)
        self.assertEqual(len(our_namespaces()), 3)

        self.cluster("down")
        self.assertEqual(our_namespaces(), [])
        self.assertFalse(os.path.exists(self.state))
        for pid in pids:
            self.assertFalse(alive(pid), f"pid {pid} survived down")
        self.assertIn("nothing to take down", self.cluster("down").stdout)  # idempotent

        # up with no binaries fails with a clear message and leaves nothing behind.
        p = self.cluster("up", "2", "--bin-dir", self.tmp.name, check=1)
        self.assertIn("no coordinator binary", p.stderr)
        self.assertEqual(our_namespaces(), [])
        # up whose coordinator cannot start (a bad flag value through the
        # environment) fails after making the namespaces: all are removed.
        self.env["BUSYFLEET_WORKER_TIMEOUT"] = "not-a-duration"
        p = self.cluster("up", "1", "--bin-dir", harness.BIN_DIR, check=1)
        self.assertIn("did not start", p.stderr)
        self.assertEqual(our_namespaces(), [])
        self.assertFalse(os.path.exists(self.state))

    def test_bad_arguments_are_refused_with_the_field(self):
        p = self.cluster("up", "0", check=1)
        self.assertIn("between 1 and 200", p.stderr)
        p = self.cluster("exec", "w9", "true", check=1)
        self.assertIn("no cluster", p.stderr)


@unittest.skipUnless(shutil.which("ssh") and os.path.exists("/usr/sbin/sshd"),
                     "needs openssh-client and openssh-server (deploy/install-deps.sh installs them)")
class SshLauncherTest(NetnsClusterCase):
    """deploy/ssh/start-workers.sh against sshd running on the cluster's hosts."""

    def test_start_is_idempotent_and_stop_stops(self):
        self.up(2, "--no-workers", "--sshd")
        self.assertEqual(self.ready(), {})
        w1, w2 = self.addr("w1"), self.addr("w2")
        hostfile = os.path.join(self.tmp.name, "hosts")
        with open(hostfile, "w") as f:
            f.write(f"# the cluster's worker hosts\n{w1} 1\n\n{w2} 2   # two slots\n")
        ssh = f"ssh -F {self.state}/ssh/ssh_config"
        remote = os.path.join(self.tmp.name, "remote")
        logs = os.path.join(self.tmp.name, "logs")
        common = ["--remote-dir", remote, "--log-dir", logs, "--ssh", ssh]
        token = os.path.join(self.state, "token")
        start = [os.path.join(ROOT, "deploy/ssh/start-workers.sh"), "--coordinator", f"{SUBNET}.1:7070",
                 "--token-file", token, "--worker", harness.binary("worker/worker"), *common, hostfile]
        stop = [os.path.join(ROOT, "deploy/ssh/stop-workers.sh"), "--timeout", "20", *common, hostfile]

        # The launcher runs on the coordinator's host, like an operator's shell would.
        out = self.cluster("exec", "coord", *start).stdout
        self.assertEqual(out.count("started (pid"), 2, out)
        workers = self.wait_for(lambda: len(self.ready()) == 2 and self.ready(), what="2 workers over ssh")
        self.assertEqual(set(workers), {w1, w2})
        self.assertEqual(workers[w1]["slots"], 1)
        self.assertEqual(workers[w2]["slots"], 2)
        for name, w in workers.items():
            self.assertEqual(peer_ip(w["peer"]), name, "the worker runs on the host ssh reached")
        pids = {}
        for host in (w1, w2):
            with open(os.path.join(remote, host, "worker.pid")) as f:
                pids[host] = int(f.read())
            self.assertEqual(os.stat(os.path.join(remote, host, "token")).st_mode & 0o777, 0o600)
            self.assertTrue(os.path.getsize(os.path.join(logs, host + ".log")) > 0)

        # Twice: nothing new starts.
        out = self.cluster("exec", "coord", *start).stdout
        self.assertEqual(out.count("already running"), 2, out)
        sessions = {w["name"]: w["session_id"] for w in self.coordctl_json("workers")}
        self.assertEqual(set(sessions), {w1, w2}, "a second worker attached")
        self.assertEqual({n: w["session_id"] for n, w in self.ready().items()}, sessions)
        for host in (w1, w2):
            with open(os.path.join(remote, host, "worker.pid")) as f:
                self.assertEqual(int(f.read()), pids[host])

        r = json.loads(self.coordctl("submit", "--kind", "sleep", "--duration", "100ms", "--tasks", "3",
                                     "--wait").stdout)
        self.assertEqual(r["state"], "SUCCEEDED", r["error"])
        self.assertEqual({t["worker"] for t in r["tasks"]}, {w1, w2})

        out = self.cluster("exec", "coord", *stop).stdout
        self.assertEqual(out.count("stopped (pid"), 2, out)
        for host, pid in pids.items():
            self.assertFalse(alive(pid), f"worker on {host} still running")
            self.assertFalse(os.path.exists(os.path.join(remote, host, "token")), "token copy left behind")
        self.wait_for(lambda: not self.ready(), what="workers gone from the coordinator")



class SshLauncherArgsTest(unittest.TestCase):
    def test_bad_host_file_names_the_line(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)
        hostfile = os.path.join(self.tmp.name, "hosts")
        with open(hostfile, "w") as f:
            f.write("node01 4\nnode02 lots\n")
        p = subprocess.run([os.path.join(ROOT, "deploy/ssh/start-workers.sh"), "--coordinator", "x:1", hostfile],
                           capture_output=True, text=True)
        self.assertEqual(p.returncode, 2)
        self.assertIn(f"{hostfile}:2: slots must be between 1 and 4096, got 'lots'", p.stderr)


if __name__ == "__main__":
    harness.main()
