#!/usr/bin/env bash
# Installs the Debian 12 packages busyfleet needs to build and test.
# Idempotent: when every package is already installed, apt is not called.
#
#   deploy/install-deps.sh            build + test dependencies
#   deploy/install-deps.sh --build    only what compiling the three binaries needs
#                                     (the Dockerfile's build stage)
#   deploy/install-deps.sh --demo     what deploy/demo.sh needs: --build and python3
#   deploy/install-deps.sh --runtime  only the shared libraries the binaries need
#                                     (the Dockerfile's runtime stage)
#   deploy/install-deps.sh --list [--build | --demo | --runtime]
#                                     print the set's packages, one a line; install nothing
set -euo pipefail

compile_pkgs=(
  cmake ninja-build g++ pkg-config ca-certificates
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev libspdlog-dev libfmt-dev libcli11-dev nlohmann-json3-dev
  libsqlite3-dev libcpp-httplib-dev
  prometheus-cpp-dev libhwloc-dev
  # The worker's embedded CPython, for the python task kind (issue 18).
  libpython3-dev
)
build_pkgs=(
  "${compile_pkgs[@]}" git
  libgtest-dev libgmock-dev libbenchmark-dev
  python3 iproute2 procps openssl
  clang libclang-rt-14-dev
  # Tests of the metrics endpoint (a real Prometheus scrapes the coordinator),
  # the status page (headless Chromium), the deployment files (compose,
  # YAML, systemd units), the ssh launcher (sshd in network namespaces) and
  # the Slurm launcher (a real slurmctld and slurmd in network namespaces).
  prometheus chromium docker-compose yamllint openssh-server openssh-client
  libxml2-utils systemd shellcheck slurm-wlm munge
  # The image and compose demo on a real engine (tests/e2e/docker_test.py);
  # mmdebstrap makes the base images where no registry is reachable.
  docker.io mmdebstrap
  # lstopo, to capture a machine's topology as an XML fixture (tests/unit/data/topology).
  hwloc
)
# What `ldd` of the three binaries resolves to (their own dependencies follow).
# libpython3.11 is the worker's embedded CPython; it pulls in
# libpython3.11-stdlib, the standard library the interpreter starts from.
# No comments inside the list: tests/e2e/deploy_test.py reads its words.
runtime_pkgs=(
  libgrpc++1.51 libgrpc29 libprotobuf32 libspdlog1.10 libfmt9 libsqlite3-0
  libcpp-httplib0.11 libprometheus-cpp-core1.0 libhwloc15 ca-certificates
  libpython3.11
)

list=0
if [[ "${1:-}" == --list ]]; then
  list=1
  shift
fi
case "${1:-}" in
  "") pkgs=("${build_pkgs[@]}") ;;
  --build) pkgs=("${compile_pkgs[@]}") ;;
  --demo) pkgs=("${compile_pkgs[@]}" python3) ;;
  --runtime) pkgs=("${runtime_pkgs[@]}") ;;
  *) echo "usage: $0 [--list] [--build | --demo | --runtime]" >&2; exit 2 ;;
esac
if ((list)); then
  printf '%s\n' "${pkgs[@]}"
  exit 0
fi

missing=()
for p in "${pkgs[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]} == 0)); then
  exit 0
fi

echo "install-deps: installing ${missing[*]}" >&2
SUDO=()
if [[ $(id -u) -ne 0 ]]; then
  if command -v sudo >/dev/null 2>&1; then SUDO=(sudo); else
    echo "install-deps: missing packages (${missing[*]}) and not root; run as root" >&2
    exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
