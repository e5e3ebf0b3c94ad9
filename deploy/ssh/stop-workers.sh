#!/usr/bin/env bash
# Stops the workers that start-workers.sh started on every host of HOSTFILE.
#
#   deploy/ssh/stop-workers.sh [--timeout 60] [--kill] HOSTFILE
#
# SIGTERM makes a worker drain: running tasks finish and are reported, then it
# exits. stop-workers waits up to --timeout seconds a host; with --kill a
# worker still running then gets SIGKILL (its tasks run again elsewhere).
# Removes the pid file and the token copy. Hosts with no running worker are
# fine (idempotent).
#
# Options: --remote-dir DIR, --log-dir DIR, --ssh CMD (BUSYFLEET_SSH), as for
# start-workers.sh. Exit status: 0 when every host's worker is gone, 1 otherwise.
set -euo pipefail
# shellcheck source=deploy/ssh/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

REMOTE_DIR=.busyfleet
LOG_DIR=busyfleet-ssh-logs
SSH=${BUSYFLEET_SSH:-ssh -o BatchMode=yes -o ConnectTimeout=10}
TIMEOUT=60
KILL=0
HOSTFILE=""
while (($#)); do
  case "$1" in
    --timeout) TIMEOUT=${2:?--timeout needs seconds}; shift 2 ;;
    --kill) KILL=1; shift ;;
    --remote-dir) REMOTE_DIR=${2:?--remote-dir needs a directory}; shift 2 ;;
    --log-dir) LOG_DIR=${2:?--log-dir needs a directory}; shift 2 ;;
    --ssh) SSH=${2:?--ssh needs a command}; shift 2 ;;
    -h | --help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) die "unknown option '$1' (see --help)" ;;
    *) [[ -z "$HOSTFILE" ]] || die "one HOSTFILE only, got '$HOSTFILE' and '$1'"; HOSTFILE=$1; shift ;;
  esac
done
[[ -n "$HOSTFILE" ]] || die "usage: $0 [--timeout SECONDS] [--kill] HOSTFILE"
[[ "$TIMEOUT" =~ ^[0-9]+$ ]] || die "--timeout must be whole seconds, got '$TIMEOUT'"
read_hostfile "$HOSTFILE"

remote_script() {  # INDEX: the POSIX sh script run on host INDEX
  cat <<SCRIPT
set -eu
name=$(shq "$(host_name "${HOSTS[$1]}")"); dir=$(shq "$REMOTE_DIR")/\$name
timeout=$TIMEOUT; kill_after=$KILL
SCRIPT
  cat <<'SCRIPT'
pidfile=$dir/worker.pid
rm -f "$dir/token"
if [ ! -f "$pidfile" ]; then echo "not running (no pid file)"; exit 0; fi
pid=$(cat "$pidfile")
if ! kill -0 "$pid" 2>/dev/null || ! tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "--name $name "; then
  rm -f "$pidfile"
  echo "not running (stale pid file)"
  exit 0
fi
kill -TERM "$pid"
ticks=$((timeout * 10))
while kill -0 "$pid" 2>/dev/null && [ "$ticks" -gt 0 ]; do sleep 0.1; ticks=$((ticks - 1)); done
if kill -0 "$pid" 2>/dev/null; then
  if [ "$kill_after" = 1 ]; then
    kill -KILL "$pid"
    rm -f "$pidfile"
    echo "killed (pid $pid) after ${timeout}s of draining"
    exit 0
  fi
  echo "still draining after ${timeout}s (pid $pid); run again, or with --kill"
  exit 4
fi
rm -f "$pidfile"
echo "stopped (pid $pid)"
SCRIPT
}

run_on_hosts remote_script
