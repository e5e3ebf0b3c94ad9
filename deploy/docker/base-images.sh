#!/usr/bin/env bash
# Makes the two base images deploy/Dockerfile starts FROM, debian:bookworm
# (build stage) and debian:bookworm-slim (runtime stage), without a registry:
# when one is missing from the local Docker engine, it is built with
# mmdebstrap from Debian packages (this machine's apt mirror, or a site's own
# mirror), with the packages `deploy/install-deps.sh --build` (resp.
# `--runtime`) would install already in it, so the Dockerfile's install-deps.sh
# finds everything installed and makes no apt call. This is how an air-gapped
# site gets them; where a registry is reachable, `docker pull` does the same.
#
#   deploy/docker/base-images.sh                  build the missing ones, and those that lack a
#                                                 package of today's lists (else does nothing)
#   deploy/docker/base-images.sh --force          rebuild both
#   BUSYFLEET_DEBIAN_MIRROR=URL|FILE deploy/docker/base-images.sh
#                                                 another mirror (a URI, a "deb ..." line or a
#                                                 sources.list file, as mmdebstrap takes them);
#                                                 default: mmdebstrap's, deb.debian.org with
#                                                 bookworm-updates and bookworm-security
#
# Needs root (mmdebstrap's root mode), mmdebstrap and a running Docker engine.
# The images stay in the engine: they are the cache of the next image build.
set -euo pipefail

force=0
case "${1:-}" in
  "") ;;
  --force) force=1 ;;
  *) echo "usage: $0 [--force]" >&2; exit 2 ;;
esac

here=$(cd "$(dirname "$0")" && pwd)
deps=$here/../install-deps.sh
DOCKER=${DOCKER:-docker}

# The package lists, read from install-deps.sh (one source of truth).
compile_pkgs=() runtime_pkgs=()
# shellcheck source=/dev/null
source <(sed -n '/^compile_pkgs=(/,/^)/p; /^runtime_pkgs=(/,/^)/p' "$deps")
if ((${#compile_pkgs[@]} == 0 || ${#runtime_pkgs[@]} == 0)); then
  echo "base-images: no compile_pkgs/runtime_pkgs found in $deps" >&2
  exit 1
fi

# What the official images set: a PATH (the Dockerfile's ENV PATH=...:$PATH
# extends it) and bash as the default command.
changes=(--change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
         --change 'CMD ["bash"]')

build_one() {  # image, packages...
  local image=$1; shift
  if [[ $force -eq 0 ]] && "$DOCKER" image inspect "$image" >/dev/null 2>&1; then
    # Kept only while it has every package of today's list (install-deps.sh
    # grows: an image made before would send the Dockerfile's install-deps.sh
    # to a mirror an air-gapped site does not have).
    local status
    # shellcheck disable=SC2016  # dpkg-query's own ${...} format, not the shell's
    if status=$("$DOCKER" run --rm --network none "$image" dpkg-query -W -f '${db:Status-Status}\n' "$@" 2>/dev/null) &&
       ! grep -qv '^installed$' <<<"$status"; then
      echo "base-images: $image exists with its packages; keeping it" >&2
      return 0
    fi
    echo "base-images: $image lacks some of $*; rebuilding it" >&2
  fi
  command -v mmdebstrap >/dev/null || { echo "base-images: $image is missing and mmdebstrap is not installed" >&2; exit 1; }
  local include
  include=$(IFS=,; echo "$*")
  local mirror=()
  [[ -n "${BUSYFLEET_DEBIAN_MIRROR:-}" ]] && mirror=("$BUSYFLEET_DEBIAN_MIRROR")
  echo "base-images: building $image with mmdebstrap ($*)" >&2
  local start=$SECONDS
  # The tarball streams from mmdebstrap into `docker import`: no file on disk.
  nice -n 19 mmdebstrap --quiet --variant=apt --include="$include" bookworm - "${mirror[@]}" </dev/null \
    | "$DOCKER" import "${changes[@]}" --message "mmdebstrap bookworm ($include)" - "$image" >/dev/null
  echo "base-images: $image built in $((SECONDS - start)) s" >&2
}

build_one debian:bookworm "${compile_pkgs[@]}"
build_one debian:bookworm-slim "${runtime_pkgs[@]}"
