#!/usr/bin/env python3
"""The deployment files, checked as far as this machine allows (no Docker
engine, no Slurm, no Kubernetes cluster here):

- docker-compose.yml through Debian's docker-compose (`config -q`) and its
  structure (127.0.0.1-only ports, a secret for the token, health-gated
  start-up, a named volume for the database); make-token.sh;
- deploy/Dockerfile's shape, and that its runtime packages provide every
  shared library the built binaries load (ldd + dpkg);
- deploy/k8s: YAML lint, gRPC probes on the gRPC port, CPU requests = slots,
  the token Secret, the PVC;
- deploy/systemd: `systemd-analyze verify` and the offline security score of
  the installed units;
- `cmake --install` into a temporary prefix: layout, RPATH, and the installed
  binaries running a job;
- deploy/slurm/workers.sbatch under a stand-in `srun` (two "nodes" on loopback);
- every deploy script through shellcheck and `bash -n`.

Run: python3 tests/e2e/deploy_test.py --bin-dir build/release
"""
import glob
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import unittest

import harness

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

try:
    import yaml
except ImportError:  # python3-yaml
    yaml = None

YAMLLINT_CONFIG = ("{extends: default, rules: {line-length: {max: 120}, document-start: disable, "
                   "truthy: {check-keys: false}}}")


def path(*parts):
    return os.path.join(ROOT, *parts)


def run(cmd, **kw):
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    kw.setdefault("timeout", 120)
    return subprocess.run(cmd, **kw)


def load_yaml_docs(file):
    with open(file) as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def env_of(container):
    return {e["name"]: e for e in container.get("env", [])}


@unittest.skipIf(yaml is None, "needs python3-yaml")
class ComposeTest(unittest.TestCase):
    def setUp(self):
        with open(path("docker-compose.yml")) as f:
            self.compose = yaml.safe_load(f)
        self.services = self.compose["services"]

    @unittest.skipUnless(shutil.which("docker-compose"), "needs Debian's docker-compose (deploy/install-deps.sh)")
    def test_docker_compose_accepts_the_file(self):
        env = {k: v for k, v in os.environ.items() if k not in ("WORKERS", "BUSYFLEET_SLOTS")}
        p = run(["docker-compose", "-f", "docker-compose.yml", "config", "-q"], cwd=ROOT, env=env)
        self.assertEqual(p.returncode, 0, p.stderr)
        # 3 workers by default (see test_services_and_start_order); WORKERS=N scales them.
        env["WORKERS"] = "5"
        resolved = yaml.safe_load(run(["docker-compose", "config"], cwd=ROOT, env=env).stdout)
        self.assertEqual(resolved["services"]["worker"]["deploy"]["replicas"], 5)
        self.assertEqual(resolved["services"]["demo"]["environment"]["WORKERS"], "5")
        # Published ports and the image name: 127.0.0.1:7070/7071 and
        # busyfleet:latest unless BUSYFLEET_PORT / _HTTP_PORT / _IMAGE say otherwise.
        del env["WORKERS"]
        for extra, ports, image in (({}, ["127.0.0.1:7070:7070/tcp", "127.0.0.1:7071:7071/tcp"], "busyfleet:latest"),
                                    ({"BUSYFLEET_PORT": "17070", "BUSYFLEET_HTTP_PORT": "17071",
                                      "BUSYFLEET_IMAGE": "other:1"},
                                     ["127.0.0.1:17070:7070/tcp", "127.0.0.1:17071:7071/tcp"], "other:1")):
            env = {k: v for k, v in env.items() if not k.startswith("BUSYFLEET_")}
            resolved = yaml.safe_load(run(["docker-compose", "config"], cwd=ROOT, env={**env, **extra}).stdout)
            self.assertEqual(resolved["services"]["coordinator"]["ports"], ports)
            self.assertEqual({svc["image"] for svc in resolved["services"].values()}, {image})

    @unittest.skipUnless(shutil.which("yamllint"), "needs yamllint")
    def test_yamllint(self):
        p = run(["yamllint", "-s", "-d", YAMLLINT_CONFIG, "docker-compose.yml", "deploy/k8s"], cwd=ROOT)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)

    def test_services_and_start_order(self):
        self.assertEqual(set(self.services), {"coordinator", "worker", "demo"})
        health = self.services["coordinator"]["healthcheck"]["test"]
        self.assertEqual(health[0], "CMD")
        self.assertIn("health", health)
        for name in ("worker", "demo"):
            self.assertEqual(self.services[name]["depends_on"]["coordinator"]["condition"], "service_healthy")
            self.assertEqual(self.services[name]["environment"]["BUSYFLEET_COORDINATOR"], "coordinator:7070")
        demo = "\n".join(self.services["demo"]["command"])
        for step in ("workers --wait-for", "submit --name chapter --tasks 4 --iterations 10000000 --wait", "bench"):
            self.assertIn(step, demo)
        self.assertEqual(self.services["demo"]["restart"], "no")
        self.assertEqual(self.services["worker"]["deploy"]["replicas"], "${WORKERS:-3}")
        self.assertNotIn("container_name", self.services["worker"])  # --scale needs distinct names
        self.assertNotIn("ports", self.services["worker"])

    def test_ports_are_published_on_loopback_only(self):
        for name, svc in self.services.items():
            for port in svc.get("ports", []):
                self.assertTrue(str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback")
        self.assertEqual(self.services["coordinator"]["ports"][0], "127.0.0.1:${BUSYFLEET_PORT:-7070}:7070")

    def test_token_is_a_secret_file_never_in_the_image(self):
        secrets = self.compose["secrets"]
        self.assertEqual(list(secrets), ["busyfleet_token"])
        secret_file = os.path.normpath(path(secrets["busyfleet_token"]["file"]))
        secret_dir = os.path.relpath(os.path.dirname(secret_file), ROOT) + "/"
        for name, svc in self.services.items():
            self.assertIn("busyfleet_token", svc["secrets"], name)
            self.assertEqual(svc["environment"]["BUSYFLEET_TOKEN_FILE"], "/run/secrets/busyfleet_token", name)
            for key, value in svc["environment"].items():
                self.assertNotRegex(key, r"TOKEN$", f"{name}: a token value in the environment")
        with open(path(".dockerignore")) as f:
            self.assertIn(secret_dir, f.read().split(), "the secret directory must stay out of the build context")
        with open(path(".gitignore")) as f:
            self.assertIn(secret_dir, f.read().split())

    def test_database_on_a_named_volume(self):
        coord = self.services["coordinator"]
        db_dir = os.path.dirname(coord["environment"]["BUSYFLEET_DB"])
        mounts = dict(v.split(":")[:2][::-1] for v in coord["volumes"])
        self.assertIn(db_dir, mounts)
        self.assertIn(mounts[db_dir], self.compose["volumes"])
        self.assertEqual(coord["environment"]["BUSYFLEET_LISTEN"], "0.0.0.0:7070")

    def test_make_token(self):
        with tempfile.TemporaryDirectory() as tmp:
            token = os.path.join(tmp, "secrets", "busyfleet.token")
            script = path("deploy/compose/make-token.sh")
            self.assertEqual(run([script, token]).returncode, 0)
            with open(token) as f:
                first = f.read()
            self.assertGreaterEqual(len(first.strip()), 40)
            self.assertEqual(stat.S_IMODE(os.stat(os.path.dirname(token)).st_mode), 0o700)
            self.assertEqual(stat.S_IMODE(os.stat(token).st_mode), 0o644)  # readable by the container's uid
            p = run([script, token])
            self.assertIn("keeping it", p.stderr)
            with open(token) as f:
                self.assertEqual(f.read(), first)
            self.assertEqual(run([script, "--force", token]).returncode, 0)
            with open(token) as f:
                self.assertNotEqual(f.read(), first)


class DockerfileTest(unittest.TestCase):
    def setUp(self):
        with open(path("deploy/Dockerfile")) as f:
            self.text = f.read()
        # Join continuation lines, drop comments.
        joined = re.sub(r"\\\n", " ", self.text)
        self.lines = [l.strip() for l in joined.splitlines() if l.strip() and not l.strip().startswith("#")]

    def instructions(self, name):
        return [l[len(name) + 1:] for l in self.lines if l.upper().startswith(name + " ")]

    def test_multi_stage_bookworm_non_root(self):
        froms = self.instructions("FROM")
        self.assertEqual(froms, ["debian:bookworm AS build", "debian:bookworm-slim AS runtime"])
        users = self.instructions("USER")
        self.assertEqual(len(users), 1)
        self.assertNotIn(users[0].split(":")[0], ("0", "root"))
        # The last stage starts after the last FROM: USER comes after it.
        self.assertGreater(self.lines.index("USER " + users[0]),
                           self.lines.index("FROM debian:bookworm-slim AS runtime"))
        self.assertTrue(any("cmake --preset release" in r for r in self.instructions("RUN")))
        self.assertTrue(any("install-deps.sh --runtime" in r for r in self.instructions("RUN")))
        self.assertTrue(any("cmake --install" in r for r in self.instructions("RUN")))
        self.assertEqual(len(self.instructions("HEALTHCHECK")), 1)
        # No `# syntax=` directive: under BuildKit it pulls a frontend image
        # from a registry, which an air-gapped site does not have.
        self.assertNotRegex(self.text, r"(?im)^#\s*syntax\s*=")
        self.assertIn("coordctl", self.instructions("HEALTHCHECK")[0])
        for c in self.instructions("COPY"):
            self.assertNotIn("secret", c)
            self.assertNotIn("token", c)

    def test_runtime_packages_provide_every_library_the_binaries_load(self):
        """What `install-deps.sh --runtime` installs (with its dependencies)
        must contain every shared library ldd finds for the three binaries."""
        if not shutil.which("dpkg-query") or not shutil.which("ldd"):
            self.skipTest("needs dpkg and ldd")
        bins = [harness.binary(b) for b in ("coordinator/coordinator", "worker/worker", "coordinator/coordctl")]
        if not all(os.path.exists(b) for b in bins):
            self.skipTest(f"binaries not built in {harness.BIN_DIR}")
        with open(path("deploy/install-deps.sh")) as f:
            m = re.search(r"runtime_pkgs=\(([^)]*)\)", f.read())
        runtime = re.findall(r"[a-z0-9][a-z0-9.+-]+", m.group(1))
        # Every installed package's dependencies, in one dpkg call.
        depends = {}
        for line in run(["dpkg-query", "-W", "-f=${Package}\t${Depends},${Pre-Depends}\n"]).stdout.splitlines():
            pkg, _, deps = line.partition("\t")
            depends[pkg] = [alt.split("|")[0].strip().split(" ")[0].split(":")[0]
                            for alt in deps.split(",") if alt.strip()]
        closure, todo = {"libc6"}, list(runtime)  # libc6: in every Debian image
        while todo:
            pkg = todo.pop()
            if pkg in closure:
                continue
            self.assertIn(pkg, depends, f"runtime package {pkg} is not installed here")
            closure.add(pkg)
            todo.extend(depends[pkg])
        libs = {}
        for b in bins:
            for line in run(["ldd", b]).stdout.splitlines():
                m = re.match(r"\s*(\S+) => (/\S+)", line)
                # Sanitizer runtimes only appear in asan/tsan builds, never in the image.
                if m and "busyfleet" not in m.group(1) and not re.match(r"lib(a|ub|t|l)san", m.group(1)):
                    real = os.path.realpath(m.group(2))
                    libs[m.group(1)] = {m.group(2), real, real.replace("/usr/lib/", "/lib/", 1)}
        self.assertGreater(len(libs), 5)
        owners = {}
        query = sorted(set().union(*libs.values()))
        for line in run(["dpkg-query", "-S", *query]).stdout.splitlines():
            pkgs, _, file = line.partition(": ")
            owners[file] = pkgs.split(",")[0].split(":")[0].strip()
        missing = {}
        for lib, candidates in libs.items():
            owner = next((owners[c] for c in candidates if c in owners), None)
            self.assertIsNotNone(owner, f"{lib} belongs to no package")
            if owner not in closure:
                missing[lib] = owner
        self.assertEqual(missing, {}, "add these packages to runtime_pkgs in deploy/install-deps.sh")

    def test_hadolint_if_available(self):
        if not shutil.which("hadolint"):
            self.skipTest("hadolint is not packaged in Debian 12: not run here")
        p = run(["hadolint", path("deploy/Dockerfile")])
        self.assertEqual(p.returncode, 0, p.stdout)


@unittest.skipIf(yaml is None, "needs python3-yaml")
class KubernetesTest(unittest.TestCase):
    def setUp(self):
        self.objects = {}
        for file in sorted(glob.glob(path("deploy/k8s/*.yaml"))):
            for doc in load_yaml_docs(file):
                self.objects[(doc["kind"], doc.get("metadata", {}).get("name", os.path.basename(file)))] = doc
        self.coord = self.objects[("Deployment", "busyfleet-coordinator")]
        self.worker = self.objects[("Deployment", "busyfleet-worker")]
        self.service = self.objects[("Service", "busyfleet-coordinator")]

    def container(self, deployment):
        containers = deployment["spec"]["template"]["spec"]["containers"]
        self.assertEqual(len(containers), 1)
        return containers[0]

    def test_every_object_is_well_formed(self):
        for (kind, name), obj in self.objects.items():
            self.assertIn("apiVersion", obj, name)
            if kind == "Deployment":
                labels = obj["spec"]["template"]["metadata"]["labels"]
                for k, v in obj["spec"]["selector"]["matchLabels"].items():
                    self.assertEqual(labels.get(k), v, f"{name}: selector does not match its pods")
        kust = self.objects[("Kustomization", "kustomization.yaml")]
        self.assertEqual(sorted(kust["resources"]),
                         sorted(os.path.basename(f) for f in glob.glob(path("deploy/k8s/*.yaml"))
                                if not f.endswith("kustomization.yaml")))

    def test_coordinator_probes_use_grpc_on_the_grpc_port(self):
        c = self.container(self.coord)
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        listen_port = int(env_of(c)["BUSYFLEET_LISTEN"]["value"].rsplit(":", 1)[1])
        self.assertEqual(ports["grpc"], listen_port)
        for probe in ("readinessProbe", "livenessProbe"):
            self.assertEqual(c[probe]["grpc"]["port"], listen_port, probe)
            self.assertNotIn("httpGet", c[probe])
        svc_ports = {p["name"]: p for p in self.service["spec"]["ports"]}
        self.assertEqual(svc_ports["grpc"]["targetPort"], "grpc")
        self.assertEqual(self.service["spec"]["selector"], self.coord["spec"]["selector"]["matchLabels"])
        # Workers dial the Service.
        host, port = env_of(self.container(self.worker))["BUSYFLEET_COORDINATOR"]["value"].split(":")
        self.assertEqual(host, self.service["metadata"]["name"])
        self.assertEqual(int(port), svc_ports["grpc"]["port"])

    def test_coordinator_database_on_the_pvc_single_writer(self):
        spec = self.coord["spec"]
        self.assertEqual(spec["replicas"], 1)
        self.assertEqual(spec["strategy"]["type"], "Recreate")
        pod = spec["template"]["spec"]
        vols = {v["name"]: v for v in pod["volumes"]}
        c = self.container(self.coord)
        db_dir = os.path.dirname(env_of(c)["BUSYFLEET_DB"]["value"])
        mount = next(m for m in c["volumeMounts"] if m["mountPath"] == db_dir)
        claim = vols[mount["name"]]["persistentVolumeClaim"]["claimName"]
        pvc = self.objects[("PersistentVolumeClaim", claim)]
        self.assertEqual(pvc["spec"]["accessModes"], ["ReadWriteOnce"])
        self.assertEqual(pod["securityContext"]["fsGroup"], pod["securityContext"]["runAsUser"])

    def test_worker_slots_are_its_cpu_request(self):
        c = self.container(self.worker)
        slots = env_of(c)["BUSYFLEET_SLOTS"]["valueFrom"]["resourceFieldRef"]
        self.assertEqual(slots["resource"], "requests.cpu")
        self.assertEqual(slots["containerName"], c["name"])
        self.assertEqual(str(slots["divisor"]), "1")
        req, lim = c["resources"]["requests"]["cpu"], c["resources"]["limits"]["cpu"]
        self.assertRegex(str(req), r"^\d+$", "whole CPUs: slots are ceil(request)")
        self.assertEqual(str(req), str(lim), "limit = request: the cgroup quota matches the slots")
        self.assertGreater(self.worker["spec"]["template"]["spec"]["terminationGracePeriodSeconds"], 30)

    def test_token_comes_from_the_secret_and_pods_run_unprivileged(self):
        for d in (self.coord, self.worker):
            pod = d["spec"]["template"]["spec"]
            c = self.container(d)
            vols = {v["name"]: v for v in pod["volumes"]}
            token_file = env_of(c)["BUSYFLEET_TOKEN_FILE"]["value"]
            mount = next(m for m in c["volumeMounts"] if token_file.startswith(m["mountPath"] + "/"))
            self.assertTrue(mount["readOnly"])
            self.assertEqual(vols[mount["name"]]["secret"]["secretName"], "busyfleet-token")
            self.assertTrue(pod["securityContext"]["runAsNonRoot"])
            self.assertFalse(pod["automountServiceAccountToken"])
            self.assertFalse(c["securityContext"]["allowPrivilegeEscalation"])
            self.assertTrue(c["securityContext"]["readOnlyRootFilesystem"])
            self.assertEqual(c["securityContext"]["capabilities"]["drop"], ["ALL"])

    def test_kubectl_kustomize_if_available(self):
        if not shutil.which("kubectl"):
            self.skipTest("kubectl not installed (Debian 12's kubernetes-client is 1.20, which predates gRPC probes)")
        p = run(["kubectl", "kustomize", path("deploy/k8s")])
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(len(list(yaml.safe_load_all(p.stdout))), 4)


class InstallTest(unittest.TestCase):
    """cmake --install into a temporary prefix; the units checked there."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="bf-install-")
        cls.prefix = os.path.join(cls.tmp.name, "prefix")
        if not os.path.exists(os.path.join(harness.BIN_DIR, "cmake_install.cmake")):
            raise unittest.SkipTest(f"{harness.BIN_DIR} is not a CMake build directory")
        p = run(["cmake", "--install", harness.BIN_DIR, "--prefix", cls.prefix])
        if p.returncode != 0:
            cls.tmp.cleanup()
            raise AssertionError(f"cmake --install failed:\n{p.stdout}\n{p.stderr}")
        cls.install_log = p.stdout

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def p(self, *parts):
        return os.path.join(self.prefix, *parts)

    def test_layout(self):
        for b in ("coordinator", "worker", "coordctl"):
            self.assertTrue(os.access(self.p("bin", b), os.X_OK), b)
        self.assertTrue(glob.glob(self.p("lib*", "**", "libbusyfleet_proto.so"), recursive=True))
        for unit in ("busyfleet-coordinator.service", "busyfleet-worker.service"):
            self.assertTrue(os.path.isfile(self.p("lib", "systemd", "system", unit)), unit)
        for f in ("examples/coordinator.env", "examples/worker.env", "k8s/coordinator.yaml", "k8s/worker.yaml",
                  "slurm/workers.sbatch", "ssh/common.sh", "compose/make-token.sh"):
            self.assertTrue(os.path.isfile(self.p("share", "busyfleet", f)), f)
        for f in ("netns-cluster.sh", "make-certs.sh", "ssh/start-workers.sh", "ssh/stop-workers.sh"):
            self.assertTrue(os.access(self.p("share", "busyfleet", f), os.X_OK), f)
        self.assertTrue(os.path.isfile(self.p("share", "doc", "busyfleet", "README.md")))

    def test_installed_binaries_run_without_ld_library_path(self):
        env = {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}
        for b in ("coordinator", "worker", "coordctl"):
            p = run([self.p("bin", b), "--help"], env=env)
            self.assertEqual(p.returncode, 0, f"{b} --help: {p.stderr}")
        ldd = run(["ldd", self.p("bin", "coordctl")], env=env).stdout
        proto = [l for l in ldd.splitlines() if "libbusyfleet_proto" in l][0]
        self.assertTrue(os.path.realpath(proto.split("=>")[1].split()[0]).startswith(os.path.realpath(self.prefix)),
                        f"coordctl loads the build tree's library, not the installed one: {proto}")

    def test_installed_binaries_run_a_job(self):
        case = harness.ClusterCase()
        case.setUp()
        self.addCleanup(case.tearDown)
        old = harness.BIN_DIR
        harness.BIN_DIR = self.p("bin")
        self.addCleanup(setattr, harness, "BIN_DIR", old)
        # The installed tree is flat: bin/coordinator, not coordinator/coordinator.
        binary = harness.binary
        harness.binary = lambda name: os.path.join(self.p("bin"), os.path.basename(name))
        self.addCleanup(setattr, harness, "binary", binary)
        case.start_coordinator()
        case.start_worker("installed-a")
        case.wait_for_workers(1)
        r = case.coordctl_json("submit", "--tasks", "2", "--iterations", "1000000", "--wait")
        self.assertEqual(r["state"], "SUCCEEDED")

    def test_units_name_the_installed_binaries(self):
        for unit, b in (("busyfleet-coordinator.service", "coordinator"), ("busyfleet-worker.service", "worker")):
            with open(self.p("lib", "systemd", "system", unit)) as f:
                text = f.read()
            self.assertNotIn("@", text.replace("@system-service", "").replace("@privileged", ""),
                             f"{unit}: unsubstituted @VAR@")
            self.assertRegex(text, rf"(?m)^ExecStart={re.escape(self.p('bin', b))} ")

    def test_units_are_hardened(self):
        want = {"DynamicUser": "yes", "NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
                "PrivateTmp": "yes", "PrivateDevices": "yes", "CapabilityBoundingSet": "",
                "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX"}
        for unit in ("busyfleet-coordinator.service", "busyfleet-worker.service"):
            with open(self.p("lib", "systemd", "system", unit)) as f:
                keys = dict(l.split("=", 1) for l in f.read().splitlines() if "=" in l and not l.startswith("#"))
            for k, v in want.items():
                self.assertEqual(keys.get(k), v, f"{unit}: {k}")
            self.assertIn("EnvironmentFile", keys)
            self.assertIn("LoadCredential", keys)
        with open(self.p("lib", "systemd", "system", "busyfleet-coordinator.service")) as f:
            text = f.read()
        self.assertIn("StateDirectory=busyfleet\n", text)
        self.assertIn("Environment=BUSYFLEET_DB=%S/busyfleet/", text)

    def test_systemd_analyze_verify(self):
        if not shutil.which("systemd-analyze"):
            self.skipTest("systemd-analyze not installed (Debian package systemd)")
        units = sorted(glob.glob(self.p("lib", "systemd", "system", "*.service")))
        p = run(["systemd-analyze", "verify", *units])
        if p.returncode != 0 and "bus" in p.stderr.lower() and "not executable" not in p.stderr:
            self.skipTest(f"systemd-analyze verify cannot run here: {p.stderr.strip()}")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stderr.strip(), "", "systemd-analyze verify warnings")
        for unit in units:
            p = run(["systemd-analyze", "security", "--offline=yes", unit])
            m = re.search(r"Overall exposure level for \S+: ([\d.]+)", p.stdout)
            if p.returncode != 0 or not m:
                self.skipTest(f"systemd-analyze security --offline not available here: {p.stderr.strip()}")
            print(f"FIGURE systemd exposure {os.path.basename(unit)}: {m.group(1)}", file=sys.stderr)
            self.assertLessEqual(float(m.group(1)), 2.0, f"{unit}: exposure {m.group(1)}\n{p.stdout}")


class SlurmTest(harness.ClusterCase):
    """workers.sbatch as Slurm would run it, with a stand-in srun that starts
    one copy of its command a "node" (SLURMD_NODENAME node1, node2)."""

    FAKE_SRUN = r"""#!/bin/bash
# Stand-in for srun: skips srun's options, then runs one copy of the command
# a node with the task environment Slurm would give it; TERM is passed on,
# as srun does.
while [[ "$1" == --* ]]; do shift; done
pids=()
for i in $(seq "$SLURM_JOB_NUM_NODES"); do
  SLURMD_NODENAME=node$i SLURM_PROCID=$((i - 1)) "$@" &
  pids+=($!)
done
trap 'kill -TERM "${pids[@]}" 2>/dev/null' TERM
status=0
for p in "${pids[@]}"; do
  while true; do
    rc=0; wait "$p" || rc=$?
    if ((rc > 128)) && kill -0 "$p" 2>/dev/null; then continue; fi
    ((rc == 0)) || status=$rc
    break
  done
done
exit "$status"
"""
    def test_one_worker_a_node_with_slots_from_slurm(self):
        self.start_coordinator()
        tmp = self.tmp.name
        token = os.path.join(tmp, "token")
        with open(token, "w") as f:
            f.write("unused-on-loopback\n")
        os.chmod(token, 0o600)
        srun = os.path.join(tmp, "srun")
        with open(srun, "w") as f:
            f.write(self.FAKE_SRUN)
        os.chmod(srun, 0o755)
        sbatch = path("deploy/slurm/workers.sbatch")
        with open(sbatch) as f:
            text = f.read()
        self.assertIn("srun --ntasks-per-node=1", text)
        env = dict(os.environ, PATH=f"{tmp}:{os.environ['PATH']}", SLURM_JOB_ID="4242",
                   SLURM_JOB_NUM_NODES="2", SLURM_JOB_NODELIST="node[1-2]", SLURM_CPUS_PER_TASK="3",
                   BUSYFLEET_WORKER=harness.binary("worker/worker"))
        proc = subprocess.Popen(["bash", sbatch, self.address, token], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, start_new_session=True)
        try:
            self.wait_for_workers(2)
            workers = {w["name"]: w for w in self.coordctl_json("workers")}
            self.assertEqual(set(workers), {"node1", "node2"})
            for w in workers.values():
                self.assertEqual(w["slots"], 3)
                self.assertEqual(w["labels"], {"slurm_job": "4242"})
            r = self.coordctl_json("submit", "--kind", "sleep", "--duration", "50ms", "--tasks", "6",
                                   "--selector", "slurm_job=4242", "--wait")
            self.assertEqual(r["state"], "SUCCEEDED")
            # scancel: SIGTERM to the batch shell; the workers drain and the script ends.
            os.kill(proc.pid, signal.SIGTERM)
            out, _ = proc.communicate(timeout=30)
            self.assertIn("2 node(s)", out)
            self.assertEqual(proc.returncode, 0, out)
            self.wait_for(lambda: not self.ready_workers(), what="workers gone")
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    def test_missing_coordinator_argument_is_a_usage_error(self):
        p = run(["bash", path("deploy/slurm/workers.sbatch")])
        self.assertEqual(p.returncode, 2)
        self.assertIn("usage: sbatch", p.stderr)


class InstallDepsTest(unittest.TestCase):
    """deploy/demo.sh installs only what the demo needs; the test command
    installs everything the tests need (issue: a newcomer's first run)."""

    def packages(self, *args):
        p = run(["bash", path("deploy/install-deps.sh"), "--list", *args])
        self.assertEqual(p.returncode, 0, p.stderr)
        return set(p.stdout.split())

    def test_demo_installs_the_compiler_and_python_only(self):
        demo, build, tests = self.packages("--demo"), self.packages("--build"), self.packages()
        self.assertEqual(demo, build | {"python3"})
        for heavy in ("chromium", "prometheus", "docker-compose", "yamllint", "openssh-server",
                      "slurm-wlm", "munge", "docker.io", "mmdebstrap", "clang"):
            self.assertNotIn(heavy, demo)
            self.assertIn(heavy, tests)
        self.assertLessEqual(demo, tests)

    def test_demo_asks_for_the_demo_set(self):
        with open(path("deploy/demo.sh")) as f:
            calls = [l.strip() for l in f if "install-deps.sh" in l and not l.lstrip().startswith("#")]
        self.assertEqual(calls, ["bash deploy/install-deps.sh --demo"])

    def test_unknown_set_is_a_usage_error(self):
        p = run(["bash", path("deploy/install-deps.sh"), "--list", "--nosuch"])
        self.assertEqual(p.returncode, 2)
        self.assertIn("usage:", p.stderr)


class ShellScriptsTest(unittest.TestCase):
    SCRIPTS = ["deploy/netns-cluster.sh", "deploy/ssh/start-workers.sh", "deploy/ssh/stop-workers.sh",
               "deploy/ssh/common.sh", "deploy/slurm/workers.sbatch", "deploy/compose/make-token.sh",
               "deploy/install-deps.sh", "deploy/demo.sh", "deploy/docker/base-images.sh"]

    def test_bash_syntax(self):
        for s in self.SCRIPTS:
            p = run(["bash", "-n", path(s)])
            self.assertEqual(p.returncode, 0, f"{s}: {p.stderr}")

    def test_shellcheck(self):
        if not shutil.which("shellcheck"):
            self.skipTest("shellcheck not installed (Debian package shellcheck)")
        p = run(["shellcheck", "-x", *self.SCRIPTS], cwd=ROOT)
        self.assertEqual(p.returncode, 0, p.stdout)


if __name__ == "__main__":
    harness.main()
