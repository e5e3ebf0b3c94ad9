#!/usr/bin/env python3
"""deploy/slurm/workers.sbatch on a real multi-node Slurm built on this machine.

munged, slurmctld and two slurmd run as real daemons (Debian's slurm-wlm and
munge), each slurmd in a network namespace of its own with its own address,
like separate compute nodes; the coordinator runs next to slurmctld, with
worker and client tokens, on an address the nodes reach over a bridge:

    namespace  address         runs
    bfs-sw     -               bridge br0 (the switch), a port a host
    bfs-ctl    10.231.7.1/24   munged, slurmctld, the coordinator; sbatch,
                               squeue, scancel and coordctl run here too
    bfs-n1     10.231.7.11/24  slurmd -N bfs-n1
    bfs-n2     10.231.7.12/24  slurmd -N bfs-n2

The bridge lives in a namespace of its own: nothing is added to the
machine's own network, and dockerd's FORWARD policy (DROP, br_netfilter)
cannot touch traffic between the namespaces. Every state, spool, log, pid
and key file of Slurm and munge is in a temporary directory (SLURM_CONF and
munged's options point there); nothing is written under /var.

The tests, each on a fresh cluster: `sbatch --nodes=2
deploy/slurm/workers.sbatch` starts one worker a node, named after it and
labelled slurm_job=<id>; a job selected by that label runs on both; then,
while a second job runs, `scancel`: both workers drain (running tasks finish
and are reported, prefetched ones go back to the queue) and exit 0, and no
task fails or counts as a retry. The second test sends the SIGTERM to the
batch shell alone (`scancel --batch --signal=TERM`, what a --signal=B:TERM
time limit does): the same drain, and the Slurm job COMPLETED. A last test
checks that nothing was left behind: namespaces, processes, files.

Run as root, after deploy/install-deps.sh (slurm-wlm, munge):
    python3 tests/e2e/slurm_test.py -v --bin-dir build/release
Stage times are printed on stderr as lines starting with "figure:".
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

import harness

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SBATCH_SCRIPT = os.path.join(ROOT, "deploy", "slurm", "workers.sbatch")
PREFIX = "bfs-"
SWITCH = "bfs-sw"
CTL = ("bfs-ctl", "10.231.7.1")
NODES = [("bfs-n1", "10.231.7.11"), ("bfs-n2", "10.231.7.12")]  # namespace = Slurm node name
PORT = 7170
SLOTS = 2  # --cpus-per-task; each node is configured with CPUs=2
DEADLINE = 30.0
TOOLS = ["ip", "nsenter", "munged", "munge", "unmunge", "slurmctld", "slurmd", "sbatch", "squeue",
         "scancel", "scontrol", "sinfo"]
# Where the Debian packages would keep state by default: the test must leave
# these as it found them.
VAR_DIRS = ["/var/spool/slurmctld", "/var/spool/slurmd", "/var/spool/slurm", "/var/log/slurm",
            "/var/lib/slurm", "/run/slurm", "/var/run/slurm", "/var/log/munge", "/var/lib/munge",
            "/run/munge"]


def missing_tools():
    return [t for t in TOOLS if not shutil.which(t)]


def our_namespaces():
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.split() and line.split()[0].startswith(PREFIX)]


def ns_pids(ns):
    p = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True)
    return [int(x) for x in p.stdout.split()]


def alive(pid):
    """Running, not merely a zombie waiting for its parent."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except (FileNotFoundError, ProcessLookupError):
        return ""


def signal_all(pids, sig):
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def purge(timeout=5.0):
    """Every process in a namespace of ours (TERM, then KILL), then the
    namespaces. Also what an earlier, killed run left behind."""
    namespaces = our_namespaces()
    pids = [p for ns in namespaces for p in ns_pids(ns)]
    signal_all(pids, signal.SIGTERM)
    end = time.monotonic() + timeout
    while any(alive(p) for p in pids) and time.monotonic() < end:
        time.sleep(0.1)
    signal_all([p for ns in namespaces for p in ns_pids(ns)], signal.SIGKILL)
    for ns in namespaces:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def become_subreaper():
    """Orphans of our daemons (slurmd's slurmstepd, the workers) become this
    process's children instead of PID 1's, so cleanup can reap them: no
    <defunct> slurmstepd lingers after the test."""
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        pass


def reap_orphans(timeout=2.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            time.sleep(0.05)


def var_snapshot():
    found = set()
    for d in VAR_DIRS:
        for base, dirs, files in os.walk(d):
            found.update(os.path.join(base, n) for n in dirs + files)
        if os.path.exists(d):
            found.add(d)
    return found


@unittest.skipUnless(os.geteuid() == 0, "needs root: network namespaces and Slurm's daemons (run as root)")
@unittest.skipIf(missing_tools(), f"needs {' '.join(missing_tools())}: deploy/install-deps.sh installs "
                 "slurm-wlm and munge (Debian 12)")
class SlurmClusterTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        purge()  # a run killed before its cleanup
        for d in os.listdir(tempfile.gettempdir()):
            if d.startswith("bfs-slurm-"):
                shutil.rmtree(os.path.join(tempfile.gettempdir(), d), ignore_errors=True)
        cls.var_before = var_snapshot()
        become_subreaper()

    def setUp(self):
        self.daemons = {}  # name -> Popen (nsenter execs the daemon: the pid is the daemon's)
        self.logs = {}  # name -> log path
        self.t0 = time.monotonic()
        self.t_prev = self.t0
        self.tag = "slurm"
        # munged insists that every directory above its socket be searchable by all.
        self.tmp = tempfile.mkdtemp(prefix="bfs-slurm-")
        os.chmod(self.tmp, 0o755)
        # A clean environment for every command: no BUSYFLEET_* of the caller's
        # reaches the daemons, and Slurm reads only our slurm.conf.
        self.env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "HOME": "/root",
                    "LANG": "C", "SLURM_CONF": self.path("slurm.conf")}
        self.addCleanup(self.cleanup)

    # ---- cleanup -------------------------------------------------------------------------

    def cleanup(self):
        """Runs whatever happened: daemons, workers, slurmstepd, namespaces, files."""
        # Slurm's daemons, then the coordinator, munged last (the others authenticate with it).
        for name in sorted(self.daemons, key=lambda n: (n == "munged", n == "coordinator", n)):
            p = self.daemons[name]
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.daemons.values():
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        purge()  # workers, slurmstepd, anything else in our namespaces
        reap_orphans()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def log_tails(self, lines=25):
        out = []
        for path in sorted(set(self.logs.values()) | set(self.job_outputs())):
            try:
                with open(path, errors="replace") as f:
                    out.append(f"--- {os.path.basename(path)}\n" + "".join(f.readlines()[-lines:]))
            except FileNotFoundError:
                pass
        return "\n".join(out)

    def job_outputs(self):
        if not os.path.isdir(self.tmp):
            return []
        return [os.path.join(self.tmp, n) for n in os.listdir(self.tmp) if n.startswith("busyfleet-workers-")]

    # ---- helpers -------------------------------------------------------------------------

    def path(self, name):
        return os.path.join(self.tmp, name)

    def stage(self, name):
        now = time.monotonic()
        print(f"figure: {self.tag} {name}: {now - self.t0:.2f} s ({now - self.t_prev:.2f} s after the previous stage)",
              file=sys.stderr, flush=True)
        self.t_prev = now

    def wait_for(self, predicate, timeout=DEADLINE, what="condition", interval=0.2):
        end = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() >= end:
                self.fail(f"{what}: not within {timeout:.0f} s")
            time.sleep(interval)

    def start(self, name, ns, argv, env=None):
        log = self.path(f"{name}.out")
        self.logs[name] = log
        with open(log, "ab") as f:
            self.daemons[name] = subprocess.Popen(["nsenter", f"--net=/run/netns/{ns}", *argv], stdin=subprocess.DEVNULL,
                                                  stdout=f, stderr=subprocess.STDOUT, env=env or self.env,
                                                  start_new_session=True, cwd=self.tmp)
        return self.daemons[name]

    def run_in(self, ns, *argv, check=True, timeout=30):
        p = subprocess.run(["nsenter", f"--net=/run/netns/{ns}", *argv], capture_output=True, text=True,
                           env=self.env, cwd=self.tmp, timeout=timeout)
        if check:
            self.assertEqual(p.returncode, 0, f"{' '.join(argv)}: rc {p.returncode}\n{p.stdout}\n{p.stderr}")
        return p

    def slurm(self, *argv, check=True):
        return self.run_in(CTL[0], *argv, check=check)

    def coordctl(self, *args, check=True):
        return self.run_in(CTL[0], harness.binary("coordinator/coordctl"), "--coordinator", f"{CTL[1]}:{PORT}",
                           "--token-file", self.path("client.token"), "--timeout", "5s", "-o", "json", *args,
                           check=check, timeout=60)

    def coordctl_json(self, *args):
        return json.loads(self.coordctl(*args).stdout)

    def job_workers(self, slurm_job):
        return {w["name"]: w for w in self.coordctl_json("workers")
                if w.get("labels", {}).get("slurm_job") == str(slurm_job)}

    def slurm_job_state(self, slurm_job):
        out = self.slurm("scontrol", "-o", "show", "job", str(slurm_job), check=False).stdout
        m = re.search(r"\bJobState=(\S+)", out)
        return m.group(1) if m else None

    def worker_processes(self):
        """Worker processes still running on the nodes."""
        binary = harness.binary("worker/worker")
        return [(ns, p, cmdline(p)) for ns, _ in NODES for p in ns_pids(ns)
                if alive(p) and cmdline(p).startswith(binary)]

    # ---- the cluster ---------------------------------------------------------------------

    def build_network(self):
        ip = lambda *a: subprocess.run(["ip", *a], check=True, capture_output=True)  # noqa: E731
        ip("netns", "add", SWITCH)
        ip("-n", SWITCH, "link", "add", "br0", "type", "bridge")
        ip("-n", SWITCH, "link", "set", "br0", "up")
        for ns, addr in [CTL, *NODES]:
            ip("netns", "add", ns)
            # The cable: port bfs-<host> on the switch, bfs0 in the host.
            ip("-n", SWITCH, "link", "add", ns, "type", "veth", "peer", "name", "bfs0", "netns", ns)
            ip("-n", SWITCH, "link", "set", ns, "master", "br0", "up")
            ip("-n", ns, "addr", "add", f"{addr}/24", "dev", "bfs0")
            ip("-n", ns, "link", "set", "bfs0", "up")
            ip("-n", ns, "link", "set", "lo", "up")

    def write_config(self):
        t = self.tmp
        host = socket.gethostname().split(".")[0]  # slurmctld checks that it runs on SlurmctldHost
        nodes = "\n".join(f"NodeName={n} NodeAddr={a} CPUs={SLOTS} State=UNKNOWN" for n, a in NODES)
        node_list = ",".join(n for n, _ in NODES)
        conf = f"""# busyfleet e2e: a throwaway cluster, every file under {t}
ClusterName=bfs
SlurmctldHost={host}({CTL[1]})
SlurmUser=root
SlurmdUser=root
SlurmctldPort=6817
SlurmdPort=6818
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={t}/munge/munge.socket
StateSaveLocation={t}/state
SlurmdSpoolDir={t}/spool-%n
SlurmctldPidFile={t}/slurmctld.pid
SlurmdPidFile={t}/slurmd-%n.pid
SlurmctldLogFile={t}/slurmctld.log
SlurmdLogFile={t}/slurmd-%n.log
SlurmctldDebug=info
SlurmdDebug=info
# No cgroups: processes tracked by their parentage, no binding.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
KillWait=30
MinJobAge=300
{nodes}
PartitionName=bfs Nodes={node_list} Default=YES MaxTime=INFINITE State=UP
"""
        with open(self.path("slurm.conf"), "w") as f:
            f.write(conf)
        os.makedirs(self.path("state"))
        for n, _ in NODES:
            os.makedirs(self.path(f"spool-{n}"))
        os.makedirs(self.path("munge"), mode=0o755)
        os.chmod(self.path("munge"), 0o755)
        fd = os.open(self.path("munge/munge.key"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, os.urandom(128))
        os.close(fd)
        for name in ("worker.token", "client.token"):
            fd = os.open(self.path(name), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.write(fd, os.urandom(32).hex().encode() + b"\n")
            os.close(fd)

    def start_munge(self):
        m = self.path("munge")
        self.start("munged", CTL[0], ["munged", "--foreground", f"--key-file={m}/munge.key",
                                      f"--socket={m}/munge.socket", f"--pid-file={m}/munged.pid",
                                      f"--seed-file={m}/munged.seed", f"--log-file={m}/munged.log",
                                      "--num-threads=2"])

        def works():
            if self.daemons["munged"].poll() is not None:
                self.fail("munged exited")
            enc = subprocess.run(["munge", "-n", "-S", f"{m}/munge.socket"], capture_output=True)
            return enc.returncode == 0 and subprocess.run(["unmunge", "-S", f"{m}/munge.socket"], input=enc.stdout,
                                                          capture_output=True).returncode == 0
        self.wait_for(works, what="munged encoding and decoding credentials", interval=0.05)
        self.stage("munge up")

    def start_slurmctld(self):
        self.start("slurmctld", CTL[0], ["slurmctld", "-D", "-f", self.path("slurm.conf")])

        def up():
            if self.daemons["slurmctld"].poll() is not None:
                self.fail("slurmctld exited")
            return "is UP" in self.slurm("scontrol", "ping", check=False).stdout
        self.wait_for(up, what="slurmctld answering scontrol ping")
        self.stage("slurmctld up")

    def start_slurmds(self):
        for n, _ in NODES:
            self.start(f"slurmd-{n}", n, ["slurmd", "-D", "-N", n, "-f", self.path("slurm.conf")])

        def idle():
            for n, _ in NODES:
                if self.daemons[f"slurmd-{n}"].poll() is not None:
                    self.fail(f"slurmd {n} exited")
            out = self.slurm("sinfo", "-h", "-N", "-o", "%N %T", check=False).stdout.split()
            states = dict(zip(out[::2], out[1::2]))
            return all(states.get(n) == "idle" for n, _ in NODES)
        self.wait_for(idle, what=f"{len(NODES)} slurmd registered, nodes idle")
        self.stage(f"{len(NODES)} slurmd up")

    def start_coordinator(self):
        # --prefetch 1: each worker holds one task beyond its slots, so a drain
        # has unstarted tasks to hand back.
        self.start("coordinator", CTL[0], [harness.binary("coordinator/coordinator"), "--listen", f"{CTL[1]}:{PORT}",
                                           "--http-listen", "", "--db", ":memory:", "--prefetch", "1",
                                           "--worker-timeout", "5s",
                                           "--worker-token-file", self.path("worker.token"),
                                           "--client-token-file", self.path("client.token")])

        def listening():
            if self.daemons["coordinator"].poll() is not None:
                self.fail("the coordinator exited")
            with open(self.logs["coordinator"], errors="replace") as f:
                return "listening on" in f.read()
        self.wait_for(listening, what="the coordinator listening", interval=0.05)

    def start_cluster(self):
        self.build_network()
        self.write_config()
        self.start_munge()
        self.start_slurmctld()
        self.start_slurmds()
        self.start_coordinator()

    def sbatch_workers(self):
        """sbatch --nodes=2 workers.sbatch; returns the Slurm job id and its two workers."""
        # sbatch exports its environment to the job: the worker binary to run.
        sub_env = dict(self.env, BUSYFLEET_WORKER=harness.binary("worker/worker"))
        p = subprocess.run(["nsenter", f"--net=/run/netns/{CTL[0]}", "sbatch", "--parsable", "--nodes=2",
                            f"--cpus-per-task={SLOTS}", SBATCH_SCRIPT, f"{CTL[1]}:{PORT}", self.path("worker.token")],
                           capture_output=True, text=True, env=sub_env, cwd=self.tmp, timeout=30)
        self.assertEqual(p.returncode, 0, f"sbatch: {p.stdout}\n{p.stderr}")
        job = int(p.stdout.strip().split(";")[0])

        workers = self.wait_for(lambda: len(self.job_workers(job)) == 2 and self.job_workers(job),
                                what=f"two workers labelled slurm_job={job}")
        self.stage("workers attached")
        self.assertEqual(self.slurm_job_state(job), "RUNNING")
        self.assertEqual(set(workers), {n for n, _ in NODES}, "each worker is named after its node")
        for name, w in workers.items():
            self.assertEqual(w["state"], "READY")
            self.assertEqual(w["slots"], SLOTS, "slots = --cpus-per-task")
            self.assertEqual(w["labels"], {"slurm_job": str(job)})
            # It runs on its node: it reached the coordinator from the node's address.
            self.assertEqual(re.match(r"ipv4:([\d.]+):\d+$", w["peer"]).group(1), dict(NODES)[name], w["peer"])
        return job, workers

    def long_job_running(self, job, workers):
        """A job of 6 x 3 s tasks on the allocation, once 4 run (2 slots a
        worker) and 2 wait prefetched; returns its id and the running tasks."""
        second = self.coordctl_json("submit", "--selector", f"slurm_job={job}", "--kind", "sleep",
                                    "--duration", "3s", "--tasks", "6", "--max-attempts", "1")["id"]

        def running_on_both():
            tasks = self.coordctl_json("status", second)["tasks"]
            running = [t for t in tasks if t["state"] == "RUNNING"]
            return len(running) == 2 * SLOTS and {t["worker"] for t in running} == set(workers) and running
        running = self.wait_for(running_on_both, what="the second job running on every slot of both workers")
        return second, {t["index"] for t in running}

    def check_drained(self, job, second, running_at_signal, slurm_state, signalled):
        """Both workers drained and exited, the Slurm job ended in
        `slurm_state`, and no task of `second` was lost or retried."""
        self.wait_for(lambda: not self.job_workers(job), what="both workers gone from the coordinator")
        self.wait_for(lambda: not self.worker_processes(), what="both worker processes exited")
        self.wait_for(lambda: self.slurm_job_state(job) not in ("RUNNING", "COMPLETING", None),
                      what="the Slurm job ended")
        drain_seconds = time.monotonic() - signalled
        self.stage("drained")
        self.assertEqual(self.slurm_job_state(job), slurm_state)
        self.assertLess(drain_seconds, 20, "the drain waits for the 3 s tasks, not for KillWait (30 s)")

        r = self.coordctl_json("status", second)
        states = {t["index"]: t["state"] for t in r["tasks"]}
        self.assertEqual(sorted(states), list(range(6)), "every task is in the report")
        self.assertEqual(r["counts"]["failed"], 0, r["tasks"])
        self.assertEqual(r["counts"]["retries"], 0, "a drain is not a failed attempt")
        for i, state in states.items():
            if i in running_at_signal:
                self.assertEqual(state, "SUCCEEDED", f"task {i} was running at the signal: it finishes, reported")
            else:
                # Prefetched, not started: handed back, and no worker of the allocation is left to run it.
                self.assertEqual(state, "QUEUED", f"task {i} was not started at the signal: it goes back to the queue")
        self.assertEqual(r["state"], "RUNNING", "not FAILED: its unstarted tasks wait for a worker")
        print(f"figure: {self.tag} signal -> both workers drained and exited, Slurm job {slurm_state}: "
              f"{drain_seconds:.2f} s; busyfleet job {r['state']}: {list(states.values()).count('SUCCEEDED')} tasks "
              f"succeeded ({len(running_at_signal)} were running), {list(states.values()).count('QUEUED')} queued "
              f"again, {r['counts']['failed']} failed, {r['counts']['retries']} retries", file=sys.stderr, flush=True)

        # What the job's output says: both drained and exited 0, nothing killed.
        with open(self.path(f"busyfleet-workers-{job}.out"), errors="replace") as f:
            out = f.read()
        self.assertIn(f"job {job} on 2 node(s)", out)
        self.assertEqual(out.count("worker stopped (drained)"), 2, out)
        self.assertNotIn("Killed", out)
        self.assertNotIn("exit code", out, "both workers exit 0")
        self.assertEqual(out.count("signal 15 received"), 2, f"one SIGTERM each, not two\n{out}")
        return out

    def run_logged(self, scenario):
        try:
            scenario()
        except BaseException:
            print(f"--- the daemons' logs and the Slurm job's output:\n{self.log_tails()}", file=sys.stderr)
            raise

    # ---- the tests -----------------------------------------------------------------------

    def test_sbatch_two_nodes_job_on_both_scancel_drains(self):
        self.tag = "slurm"
        self.run_logged(self.sbatch_two_nodes_job_on_both_scancel_drains)

    def sbatch_two_nodes_job_on_both_scancel_drains(self):
        self.start_cluster()
        job, workers = self.sbatch_workers()

        # A job for this allocation runs on both nodes.
        r = json.loads(self.coordctl("submit", "--selector", f"slurm_job={job}", "--kind", "sleep",
                                     "--duration", "1s", "--tasks", "4", "--wait").stdout)
        self.assertEqual(r["state"], "SUCCEEDED", r["error"])
        self.assertEqual({w["name"] for w in r["workers"] if w["tasks"] > 0}, set(workers), r["workers"])
        self.assertEqual(r["counts"]["succeeded"], 4)
        self.stage("job done")

        # scancel while a longer job runs: Slurm sends SIGTERM to the job's
        # steps (the workers) and to the batch shell.
        second, running = self.long_job_running(job, workers)
        self.slurm("scancel", str(job))
        self.check_drained(job, second, running, "CANCELLED", time.monotonic())

    def test_signal_to_the_batch_shell_drains_the_workers(self):
        """SIGTERM to the batch shell alone (scancel --batch; what an
        --signal=B:TERM time limit sends) reaches the workers through Slurm
        and they drain. Before the fix, the script passed it to srun, which
        turned it into SIGKILL: running tasks lost, the job FAILED."""
        self.tag = "slurm batch-TERM"
        self.run_logged(self.signal_to_the_batch_shell_drains_the_workers)

    def signal_to_the_batch_shell_drains_the_workers(self):
        self.start_cluster()
        job, workers = self.sbatch_workers()
        second, running = self.long_job_running(job, workers)
        self.slurm("scancel", "--batch", "--signal=TERM", str(job))
        out = self.check_drained(job, second, running, "COMPLETED", time.monotonic())
        self.assertNotIn("forcing job termination", out, "srun was signalled")
        self.assertIn("ExitCode=0:0", self.slurm("scontrol", "-o", "show", "job", str(job)).stdout)

    def test_zz_nothing_left_behind(self):
        """Runs after the cluster test (alphabetical): its cleanup left no
        namespace, no process, no file under /var."""
        self.assertEqual(our_namespaces(), [])
        for p in os.listdir("/proc"):
            # Every daemon and worker of ours names a file in its temporary directory.
            if p.isdigit() and alive(int(p)) and "/bfs-slurm-" in cmdline(int(p)):
                self.fail(f"left running: {p} {cmdline(int(p))}")
        self.assertEqual(var_snapshot() - self.var_before, set(), "new files under /var")
        self.assertFalse([d for d in os.listdir(tempfile.gettempdir())
                          if d.startswith("bfs-slurm-") and d != os.path.basename(self.tmp)])


if __name__ == "__main__":
    harness.main()
