#!/usr/bin/env python3
"""deploy/Dockerfile and docker-compose.yml on a real Docker engine.

No registry is needed: deploy/docker/base-images.sh makes debian:bookworm and
debian:bookworm-slim with mmdebstrap when the engine has neither. Then:

- `docker build` of deploy/Dockerfile (its own tag, bftest<pid>:latest);
- the image runs as uid 10001, and the coordinator refuses to start on
  0.0.0.0 without a token;
- `docker-compose up --build --abort-on-container-exit --exit-code-from demo`
  (its own project, -p bftest<pid>, on free loopback ports): the demo exits 0
  with 3 workers;
- `up -d --scale worker=5`: the coordinator's healthcheck goes healthy, 5
  workers attach; the containers are read-only, uid 10001;
- a worker container killed mid-job: the job SUCCEEDS, with a retry;
- the coordinator container restarted: the finished reports are still there
  (the volume), the workers re-attach, it goes healthy again;
- `down -v`: no container, network or volume of the project is left.

The engine: the running one, or a dockerd started here (niced, with
--iptables=false --ip-forward=false --bridge=none, so the host's firewall,
forwarding and bridges stay as they were) and stopped at the end. Cleanup,
also after a failure: `down -v`, the test image and the build cache this run
created. The base images stay: they are the cache of the next run.

Each stage's time is printed as a `figure:` line.

Run as root: python3 tests/e2e/docker_test.py --bin-dir build/release
"""
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request

import harness

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PROJECT = f"bftest{os.getpid()}"
IMAGE = f"{PROJECT}:latest"
BASE_IMAGES = ("debian:bookworm", "debian:bookworm-slim")
BUILD_TIMEOUT = 2400  # an image build on 2 busy cores, niced


def figure(name, seconds):
    print(f"figure: {name}: {seconds:.1f} s", file=sys.stderr, flush=True)


def note(text):
    print(f"note: {text}", file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def docker_client():
    """The client shipped with the engine (docker.io's), else the one on PATH."""
    dockerd = shutil.which("dockerd")
    if dockerd:
        beside = os.path.join(os.path.dirname(dockerd), "docker")
        if os.access(beside, os.X_OK):
            return beside
    return shutil.which("docker")


DOCKER = docker_client()


def run(cmd, timeout=120, check=True, **kw):
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    p = subprocess.run(cmd, timeout=timeout, **kw)
    if check and p.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)}: rc {p.returncode}\n{p.stdout[-4000:]}\n{p.stderr[-4000:]}")
    return p


def docker(*args, **kw):
    return run([DOCKER, *args], **kw)


def engine_answers():
    return subprocess.run([DOCKER, "info"], capture_output=True, timeout=30).returncode == 0


class Engine:
    """The running Docker engine, or one started (and later stopped) here."""

    def __init__(self):
        self.proc = None
        self.tmp = None

    def start_if_needed(self):
        if engine_answers():
            note("using the Docker engine already running (it stays running)")
            return
        self.tmp = tempfile.mkdtemp(prefix="bftest-dockerd-")
        log = open(os.path.join(self.tmp, "dockerd.log"), "w")
        # nice: image builds run in its containers. No iptables rules, no
        # forwarding, no docker0: the host's network stays as it was; compose
        # networks are bridges of their own and published ports go through
        # docker-proxy on 127.0.0.1.
        self.proc = subprocess.Popen(
            ["nice", "-n", "19", shutil.which("dockerd"), "--iptables=false", "--ip-forward=false",
             "--bridge=none", "--pidfile", os.path.join(self.tmp, "dockerd.pid")],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        start = time.monotonic()
        while not engine_answers():
            if self.proc.poll() is not None or time.monotonic() - start > 90:
                self.stop()
                raise AssertionError("dockerd did not start:\n" + self.log_tail())
            time.sleep(0.2)
        figure("dockerd start", time.monotonic() - start)

    def log_tail(self):
        try:
            with open(os.path.join(self.tmp, "dockerd.log")) as f:
                return "".join(f.readlines()[-30:])
        except OSError:
            return ""

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        note(f"stopped the dockerd this test started (rc {self.proc.returncode})")
        self.proc = None
        shutil.rmtree(self.tmp, ignore_errors=True)


def all_image_ids():
    return set(docker("images", "-a", "-q", "--no-trunc").stdout.split())


def skip_reason():
    if os.geteuid() != 0:
        return "needs root (dockerd, mmdebstrap)"
    missing = [c for c in ("dockerd", "docker-compose", "mmdebstrap") if not shutil.which(c)]
    if missing or DOCKER is None:
        return f"needs {' '.join(missing or ['docker'])} (Debian packages docker.io docker-compose mmdebstrap; " \
               "deploy/install-deps.sh installs them)"
    return None


class DockerTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        reason = skip_reason()
        if reason:
            raise unittest.SkipTest(reason)
        cls.engine = Engine()
        cls.addClassCleanup(cls.engine.stop)
        cls.engine.start_if_needed()

        start = time.monotonic()
        run([os.path.join(ROOT, "deploy/docker/base-images.sh")], timeout=BUILD_TIMEOUT,
            env={**os.environ, "DOCKER": DOCKER}, stdin=subprocess.DEVNULL)
        figure("base images (base-images.sh)", time.monotonic() - start)

        # Everything the build adds beyond this (the image, its intermediate
        # images: the legacy builder's cache) is removed at the end.
        cls.images_before = all_image_ids()
        cls.addClassCleanup(cls.remove_own_images)
        start = time.monotonic()
        env = {**os.environ, "DOCKER_BUILDKIT": "0"}
        p = run(["nice", "-n", "19", DOCKER, "build", "-q", "-f", "deploy/Dockerfile", "-t", IMAGE, "."],
                cwd=ROOT, env=env, timeout=BUILD_TIMEOUT, check=False)
        if p.returncode != 0:
            raise AssertionError(f"docker build failed:\n{p.stdout[-6000:]}\n{p.stderr[-6000:]}")
        figure("image build (docker build)", time.monotonic() - start)
        cls.image_size = int(docker("image", "inspect", "-f", "{{.Size}}", IMAGE).stdout)
        note(f"image {IMAGE}: {cls.image_size / 1e6:.0f} MB")

    @classmethod
    def remove_own_images(cls):
        docker("rmi", "-f", IMAGE, check=False)
        own = all_image_ids() - cls.images_before
        # Children before parents: retry until nothing more goes.
        for _ in range(10):
            if not own:
                break
            for image in list(own):
                if docker("rmi", image, check=False).returncode == 0:
                    own.discard(image)
            own &= all_image_ids()
        note(f"removed the test image and its build cache ({len(own)} image(s) left behind)")

    # -- the image on its own ------------------------------------------------

    def test_image_runs_as_uid_10001_and_the_coordinator_needs_a_token(self):
        self.assertEqual(docker("image", "inspect", "-f", "{{.Config.User}}", IMAGE).stdout.strip(), "10001:10001")
        p = docker("run", "--rm", "--read-only", IMAGE, "id", "-u")
        self.assertEqual(p.stdout.strip(), "10001")
        p = docker("run", "--rm", "--read-only", IMAGE, "coordctl", "--help")
        self.assertIn("bench", p.stdout)
        # The default command: a coordinator on 0.0.0.0:7070 with no token.
        p = docker("run", "--rm", "--read-only", "--tmpfs", "/tmp", IMAGE, check=False, timeout=60)
        self.assertEqual(p.returncode, 2, p.stdout + p.stderr)
        self.assertIn("refusing to listen on 0.0.0.0:7070", p.stdout + p.stderr)

    # -- the compose story ---------------------------------------------------

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="bftest-compose-")
        self.addCleanup(self.tmp.cleanup)
        self.token = os.path.join(self.tmp.name, "secrets", "busyfleet.token")
        run([os.path.join(ROOT, "deploy/compose/make-token.sh"), self.token])
        # The secret comes from this run's own token, not the checkout's.
        self.override = os.path.join(self.tmp.name, "test-override.yml")
        with open(self.override, "w") as f:
            f.write(f"version: \"3.9\"\nsecrets:\n  busyfleet_token:\n    file: {self.token}\n")
        self.port, self.http_port = free_port(), free_port()
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith("BUSYFLEET_") and k not in ("WORKERS", "COMPOSE_FILE", "COMPOSE_PROJECT_NAME")}
        self.env.update(BUSYFLEET_IMAGE=IMAGE, BUSYFLEET_PORT=str(self.port), BUSYFLEET_HTTP_PORT=str(self.http_port),
                        DOCKER_BUILDKIT="0", COMPOSE_DOCKER_CLI_BUILD="0")

    def compose(self, *args, timeout=300, check=True, env=None):
        return run(["docker-compose", "-p", PROJECT, "-f", "docker-compose.yml", "-f", self.override, *args],
                   cwd=ROOT, env={**self.env, **(env or {})}, timeout=timeout, check=check,
                   stdin=subprocess.DEVNULL)

    def containers(self, service):
        return self.compose("ps", "-q", service).stdout.split()

    def coordinator(self):
        ids = self.containers("coordinator")
        self.assertEqual(len(ids), 1)
        return ids[0]

    def ctl(self, *args, check=True):
        """coordctl through the published port (the host's build), else inside the coordinator container."""
        host = harness.binary("coordinator/coordctl")
        if os.access(host, os.X_OK):
            cmd = [host, "--coordinator", f"127.0.0.1:{self.port}", "--token-file", self.token, "--timeout", "5s"]
        else:
            cmd = [DOCKER, "exec", self.coordinator(), "coordctl", "--timeout", "5s"]
        return run([*cmd, "-o", "json", *args], check=check, timeout=60)

    def ctl_json(self, *args):
        return json.loads(self.ctl(*args).stdout)

    def wait_for(self, predicate, timeout, what):
        end = time.monotonic() + timeout
        while True:
            try:
                value = predicate()
            except (AssertionError, ValueError, subprocess.TimeoutExpired):
                value = None
            if value:
                return value
            if time.monotonic() > end:
                raise AssertionError(f"{what}: not within {timeout} s")
            time.sleep(0.5)

    def health(self):
        return docker("inspect", "-f", "{{.State.Health.Status}}", self.coordinator()).stdout.strip()

    def ready_workers(self):
        return [w for w in self.ctl_json("workers") if w["state"] == "READY"]

    def report(self, job):
        return self.ctl_json("status", job)

    def test_compose_demo_scale_kill_restart_down(self):
        self.addCleanup(self.compose, "down", "-v", "--remove-orphans", "-t", "5", check=False, timeout=300)

        # 1. The demo: coordinator, 3 workers, the chapter's job and bench.
        start = time.monotonic()
        p = self.compose("up", "--no-color", "--build", "--abort-on-container-exit", "--exit-code-from", "demo",
                         timeout=BUILD_TIMEOUT, check=False)
        figure("compose up --build until the demo exits", time.monotonic() - start)
        out = p.stdout + p.stderr
        self.assertEqual(p.returncode, 0, "the demo failed:\n" + out[-8000:])
        self.assertIn("waiting for 3 workers", out)
        self.assertIn("SUCCEEDED", out)
        demo_lines = [l for l in out.splitlines() if re.match(r"\s*(\S+[_-])?demo[_-]1\b", l)]
        note("the demo's last lines:\n" + "\n".join(demo_lines[-12:]))

        # 2. Up again, detached, with 5 workers; the healthcheck goes healthy.
        start = time.monotonic()
        self.compose("up", "-d", "--scale", "worker=5", "coordinator", "worker", env={"WORKERS": "5"})
        self.wait_for(lambda: self.health() == "healthy", 120, "coordinator healthy")
        figure("up -d --scale worker=5 -> coordinator healthy", time.monotonic() - start)
        self.wait_for(lambda: len(self.ready_workers()) == 5, 120, "5 ready workers")
        figure("up -d --scale worker=5 -> 5 workers ready", time.monotonic() - start)
        self.assertEqual(len(self.containers("worker")), 5)
        # The published HTTP port, on loopback.
        with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/healthz", timeout=10) as r:
            self.assertEqual(r.status, 200)
        workers = self.ready_workers()
        note("workers (name, host, slots, logical_cpus, physical_cores): " + json.dumps(
            [[w["name"], w["host"], w["slots"], w["logical_cpus"], w["physical_cores"]] for w in workers]))
        # One machine, however many containers: every worker reports the
        # kernel's boot id, and the fleet counts this machine's cores once.
        self.assertEqual(len({w["machine_id"] for w in workers}), 1, workers)
        self.assertNotEqual(workers[0]["machine_id"], "")
        self.assertGreater(len({w["host"] for w in workers}), 1, "each container has a host name of its own")
        cores, cpus = workers[0]["physical_cores"], workers[0]["logical_cpus"]
        fleet = re.search(r"fleet: 3 workers on (\d+) machines?, 3 slots \((\d+) physical cores?, (\d+) logical CPUs?\)", out)
        self.assertIsNotNone(fleet, "the demo's bench printed no fleet line")
        # Both kernels, each mode with its interval; the image runs the python kind.
        self.assertIn("5 trials per mode (interleaved, after 1 warm-up round)", out)
        self.assertIn("5.00M python iterations, 3 trials per mode", out)
        self.assertIn("share one interpreter lock (the GIL)", out)
        self.assertEqual([int(g) for g in fleet.groups()], [1, cores, cpus], fleet.group(0))
        note(f"the demo's bench: {fleet.group(0)} (this machine: {os.cpu_count()} logical CPUs)")
        table = self.ctl("-o", "table", "workers").stdout
        self.assertIn(f"5 workers on 1 machine: 5 slots, {cores} physical core", table)
        for cid in (self.coordinator(), self.containers("worker")[0]):
            cfg = json.loads(docker("inspect", cid).stdout)[0]
            self.assertTrue(cfg["HostConfig"]["ReadonlyRootfs"], cid)
            self.assertEqual(cfg["Config"]["User"], "10001:10001")
            self.assertEqual(docker("exec", cid, "id", "-u").stdout.strip(), "10001")
        # The demo's finished job survived the stop and start (the volume).
        jobs = self.ctl_json("jobs")
        self.assertIn("chapter", [j["name"] for j in jobs if j["state"] == "SUCCEEDED"], jobs)

        # 3. A worker container killed mid-job: the job succeeds with a retry.
        job = self.ctl_json("submit", "--name", "killed", "--kind", "sleep", "--duration", "8s", "--tasks", "2")["id"]

        def running():
            tasks = [t for t in self.report(job)["tasks"] if t["state"] == "RUNNING"]
            return len(tasks) == 2 and tasks
        victim = self.wait_for(running, 60, "both tasks running")[0]
        by_name = {}
        for cid in self.containers("worker"):
            by_name[docker("inspect", "-f", "{{.Config.Hostname}}", cid).stdout.strip()] = cid
        self.assertIn(victim["worker"], by_name, "a worker's name is its container's host name")
        start = time.monotonic()
        docker("kill", by_name[victim["worker"]])
        r = self.wait_for(lambda: (lambda r: r["state"] in ("SUCCEEDED", "FAILED", "CANCELLED") and r)(self.report(job)),
                          120, "the job ends")
        figure("worker container killed -> job succeeded", time.monotonic() - start)
        self.assertEqual(r["state"], "SUCCEEDED", r.get("error"))
        self.assertGreaterEqual(r["counts"]["retries"], 1, r)
        self.assertGreaterEqual(r["tasks"][victim["index"]]["attempt"], 2, r)
        # Back to 5 (a killed container is not restarted by its policy).
        docker("start", by_name[victim["worker"]])
        self.wait_for(lambda: len(self.ready_workers()) == 5, 120, "5 ready workers again")

        # 4. The coordinator restarted: reports kept, workers back, healthy.
        coordinator = self.coordinator()
        start = time.monotonic()
        docker("restart", "-t", "10", coordinator)
        self.wait_for(lambda: self.health() == "healthy", 120, "coordinator healthy after the restart")
        figure("coordinator restarted -> healthy", time.monotonic() - start)
        hostnames = {docker("inspect", "-f", "{{.Config.Hostname}}", c).stdout.strip()
                     for c in self.containers("worker")}
        self.wait_for(lambda: {w["name"] for w in self.ready_workers()} == hostnames, 120, "workers re-attached")
        figure("coordinator restarted -> workers re-attached", time.monotonic() - start)
        self.assertEqual(self.report(job)["state"], "SUCCEEDED")
        names = [j["name"] for j in self.ctl_json("jobs") if j["state"] == "SUCCEEDED"]
        self.assertIn("chapter", names)
        self.assertIn("killed", names)

        # 5. down -v: nothing of the project is left.
        start = time.monotonic()
        self.compose("down", "-v", "-t", "10")
        figure("compose down -v", time.monotonic() - start)
        label = f"label=com.docker.compose.project={PROJECT}"
        self.assertEqual(docker("ps", "-a", "-q", "--filter", label).stdout.split(), [])
        self.assertEqual(docker("network", "ls", "-q", "--filter", label).stdout.split(), [])
        self.assertEqual(docker("volume", "ls", "-q", "--filter", label).stdout.split(), [])
        self.assertEqual(docker("network", "ls", "-q", "--filter", f"name={PROJECT}_").stdout.split(), [])
        self.assertEqual(docker("volume", "ls", "-q", "--filter", f"name={PROJECT}_").stdout.split(), [])


if __name__ == "__main__":
    harness.main()
