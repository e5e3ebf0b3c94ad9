#!/usr/bin/env bash
# Starts a busyfleet worker on every host of HOSTFILE over ssh.
#
#   deploy/ssh/start-workers.sh --coordinator coord.example:7070 --token-file worker.token HOSTFILE [-- WORKER FLAGS]
#
# HOSTFILE: one host a line ([user@]host), optionally followed by its slots;
# '#' starts a comment:
#     node01 8
#     admin@node02        # slots: the worker's own count of physical cores
#
# On each host the worker runs detached (setsid), named after the host, with
# its pid, log and a copy of the token (mode 0600, sent over ssh's stdin,
# never on a command line) in REMOTE_DIR/HOST/ (a directory a host, so a home
# directory shared over NFS works). Idempotent: a host whose worker is still
# running is left alone. Local logs of each launch: LOG_DIR/HOST.log.
#
# Options (and their environment variables):
#   --coordinator ADDR  BUSYFLEET_COORDINATOR; required
#   --token-file FILE   BUSYFLEET_TOKEN_FILE; local file, copied to each host
#   --worker PATH       the worker binary on the hosts (default: worker, on the remote PATH)
#   --remote-dir DIR    default .busyfleet (relative to the remote home directory)
#   --log-dir DIR       default busyfleet-ssh-logs
#   --ssh CMD           BUSYFLEET_SSH; default "ssh -o BatchMode=yes -o ConnectTimeout=10"
# Exit status: 0 when every host runs a worker, 1 when a host failed, 2 on bad usage.
set -euo pipefail
# shellcheck source=deploy/ssh/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

COORDINATOR=${BUSYFLEET_COORDINATOR:-}
TOKEN_FILE=${BUSYFLEET_TOKEN_FILE:-}
WORKER=worker
REMOTE_DIR=.busyfleet
LOG_DIR=busyfleet-ssh-logs
SSH=${BUSYFLEET_SSH:-ssh -o BatchMode=yes -o ConnectTimeout=10}
HOSTFILE=""
EXTRA=()
while (($#)); do
  case "$1" in
    --coordinator) COORDINATOR=${2:?--coordinator needs host:port}; shift 2 ;;
    --token-file) TOKEN_FILE=${2:?--token-file needs a file}; shift 2 ;;
    --worker) WORKER=${2:?--worker needs a path}; shift 2 ;;
    --remote-dir) REMOTE_DIR=${2:?--remote-dir needs a directory}; shift 2 ;;
    --log-dir) LOG_DIR=${2:?--log-dir needs a directory}; shift 2 ;;
    --ssh) SSH=${2:?--ssh needs a command}; shift 2 ;;
    -h | --help) sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    --) shift; EXTRA=("$@"); break ;;
    -*) die "unknown option '$1' (see --help)" ;;
    *) [[ -z "$HOSTFILE" ]] || die "one HOSTFILE only, got '$HOSTFILE' and '$1'"; HOSTFILE=$1; shift ;;
  esac
done
[[ -n "$HOSTFILE" ]] || die "usage: $0 --coordinator HOST:PORT [--token-file FILE] HOSTFILE [-- WORKER FLAGS]"
[[ -n "$COORDINATOR" ]] || die "--coordinator (or BUSYFLEET_COORDINATOR) is required"
TOKEN_B64=""
if [[ -n "$TOKEN_FILE" ]]; then
  [[ -s "$TOKEN_FILE" && -r "$TOKEN_FILE" ]] || die "token file '$TOKEN_FILE' is missing, empty or unreadable"
  TOKEN_B64=$(base64 -w0 <"$TOKEN_FILE")
fi
read_hostfile "$HOSTFILE"

remote_script() {  # INDEX: the POSIX sh script run on host INDEX
  local name extra="" a
  name=$(host_name "${HOSTS[$1]}")
  for a in ${EXTRA[@]+"${EXTRA[@]}"}; do extra+=" $(shq "$a")"; done
  cat <<SCRIPT
set -eu
name=$(shq "$name"); dir=$(shq "$REMOTE_DIR")/\$name; worker=$(shq "$WORKER")
coordinator=$(shq "$COORDINATOR"); slots=$(shq "${SLOTS[$1]}"); token_b64=$(shq "$TOKEN_B64")
set --$extra
SCRIPT
  cat <<'SCRIPT'
umask 077
mkdir -p "$dir"
pidfile=$dir/worker.pid
if [ -f "$pidfile" ]; then
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "--name $name "; then
    echo "already running (pid $pid)"
    exit 0
  fi
fi
command -v "$worker" >/dev/null 2>&1 || { echo "no worker binary '$worker' on $(hostname)"; exit 3; }
if [ -n "$token_b64" ]; then
  printf '%s' "$token_b64" | base64 -d >"$dir/token.new" && mv -f "$dir/token.new" "$dir/token"
  set -- --token-file "$dir/token" "$@"
fi
if [ -n "$slots" ]; then set -- --slots "$slots" "$@"; fi
nohup setsid "$worker" --coordinator "$coordinator" --name "$name" "$@" </dev/null >>"$dir/worker.log" 2>&1 &
pid=$!
echo "$pid" >"$pidfile"
# Catch a worker that dies at once (bad flag, unreadable token); joining the
# coordinator is the caller's to check (coordctl workers).
sleep 0.3
if ! kill -0 "$pid" 2>/dev/null; then
  tail -n 5 "$dir/worker.log"
  rm -f "$pidfile"
  echo "worker exited at once (log: $dir/worker.log)"
  exit 4
fi
echo "started (pid $pid, log $dir/worker.log)"
SCRIPT
}

run_on_hosts remote_script
