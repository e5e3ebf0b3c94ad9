#!/usr/bin/env bash
# A busyfleet cluster on one Linux machine: N+1 "hosts" in network
# namespaces, each with its own address, joined by a bridge that lives in a
# namespace of its own (nothing is added to the machine's own network). The
# coordinator runs on host `coord`, a worker on each of `w1`..`wN`, all from
# the built binaries. Needs root and iproute2.
#
#   deploy/netns-cluster.sh up N [--bin-dir DIR] [--token-file FILE] [--slots S]
#                                [--no-workers] [--sshd]
#   deploy/netns-cluster.sh exec HOST CMD [ARGS...]   run CMD on HOST (coord, w1, ...)
#   deploy/netns-cluster.sh link HOST up|down         plug / unplug HOST's cable
#   deploy/netns-cluster.sh addr HOST                 print HOST's address
#   deploy/netns-cluster.sh status                    hosts, addresses, daemons
#   deploy/netns-cluster.sh down                      stop everything, delete it all
#
# `exec` sets BUSYFLEET_COORDINATOR and BUSYFLEET_TOKEN_FILE (unless already
# set), so `exec coord coordctl workers` just works.
#
# --sshd also runs an sshd on every worker host, with a throwaway host key
# and client key made for this cluster (STATE/ssh/ssh_config is the client
# configuration), so deploy/ssh/start-workers.sh can be tried against it.
#
# Environment:
#   BUSYFLEET_NETNS_STATE   state directory (default /run/busyfleet-netns); `down`
#                           removes what it lists: processes, namespaces, files
#   BUSYFLEET_NETNS_PREFIX  prefix of the namespace names (default bfn)
#   BUSYFLEET_NETNS_SUBNET  first three octets of the /24 (default 198.18.20, in
#                           the benchmarking range 198.18.0.0/15)
#   BUSYFLEET_NETNS_PORT    coordinator port (default 7070)
#   BUSYFLEET_BIN_DIR       default of --bin-dir
#   BUSYFLEET_*             every other flag variable reaches the daemons
#                           (e.g. BUSYFLEET_WORKER_TIMEOUT=1s)
set -euo pipefail

STATE=${BUSYFLEET_NETNS_STATE:-/run/busyfleet-netns}
PREFIX=${BUSYFLEET_NETNS_PREFIX:-bfn}
SUBNET=${BUSYFLEET_NETNS_SUBNET:-198.18.20}
PORT=${BUSYFLEET_NETNS_PORT:-7070}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SWITCH_NS="$PREFIX-sw"

die() { echo "netns-cluster: $*" >&2; exit 1; }
usage() { sed -n '9,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2; }

need_root() {
  [[ $(id -u) -eq 0 ]] || die "needs root (network namespaces); run as root"
  command -v ip >/dev/null || die "needs iproute2's ip command (apt-get install iproute2)"
}

# hosts file: one "NAME NAMESPACE ADDRESS" line a host.
host_field() {  # HOST FIELD(2=ns, 3=addr)
  [[ -f "$STATE/hosts" ]] || die "no cluster at $STATE (run: $0 up N)"
  local v
  v=$(awk -v h="$1" -v f="$2" '$1 == h { print $f }' "$STATE/hosts")
  [[ -n "$v" ]] || die "unknown host '$1' (hosts: $(awk '{printf "%s ", $1}' "$STATE/hosts"))"
  echo "$v"
}

find_binary() {  # DIR NAME: build tree (DIR/coordinator/coordctl) or install tree (DIR/bin/coordctl)
  local dir=$1 name=$2 c
  for c in "$dir/$name" "$dir/bin/$name" "$dir/coordinator/$name" "$dir/worker/$name"; do
    if [[ -f "$c" && -x "$c" ]]; then (cd "$(dirname "$c")" && echo "$PWD/$name"); return; fi
  done
  die "no $name binary under $dir (give --bin-dir: build/release, or an install prefix)"
}

default_bin_dir() {
  if [[ -n "${BUSYFLEET_BIN_DIR:-}" ]]; then echo "$BUSYFLEET_BIN_DIR"
  elif [[ -d "$HERE/../build/release" ]]; then echo "$HERE/../build/release"   # source tree
  else echo "$HERE/../.."                                                     # PREFIX/share/busyfleet
  fi
}

start_daemon() {  # NS LOGNAME ARGV...: in the background, pid in STATE/pids/LOGNAME.pid
  local ns=$1 log=$2; shift 2
  ip netns exec "$ns" "$@" </dev/null >>"$STATE/logs/$log.log" 2>&1 &
  echo $! >"$STATE/pids/$log.pid"
}

wait_for() {  # SECONDS COMMAND...: poll a condition until it holds or the deadline passes
  local end=$((SECONDS + $1)); shift
  until "$@"; do
    ((SECONDS < end)) || return 1
    sleep 0.1
  done
}

ready_workers() {
  ip netns exec "$PREFIX-coord" "$COORDCTL" --coordinator "$SUBNET.1:$PORT" --token-file "$TOKEN" \
    --timeout 2s -o json workers 2>/dev/null | grep -o '"READY"' | wc -l
}

coordinator_listening_or_gone() {
  grep -q "listening on" "$STATE/logs/coord.log" || ! kill -0 "$(cat "$STATE/pids/coord.pid")" 2>/dev/null
}

workers_ready_at_least() { (($(ready_workers) >= $1)); }

cmd_up() {
  need_root
  local n=${1:-}; shift || true
  if ! [[ "$n" =~ ^[0-9]+$ ]] || ((n < 1 || n > 200)); then
    die "up N: N (workers) must be between 1 and 200, got '${n}'"
  fi
  local bin_dir slots=1 token_file="" workers=1 sshd=0
  bin_dir=$(default_bin_dir)
  while (($#)); do
    case "$1" in
      --bin-dir) bin_dir=${2:?--bin-dir needs a directory}; shift 2 ;;
      --token-file) token_file=${2:?--token-file needs a file}; shift 2 ;;
      --slots) slots=${2:?--slots needs a number}; shift 2 ;;
      --no-workers) workers=0; shift ;;
      --sshd) sshd=1; shift ;;
      *) die "up: unknown option '$1'" ;;
    esac
  done
  [[ "$slots" =~ ^[0-9]+$ ]] || die "--slots must be a number, got '$slots'"
  [[ "$PREFIX" =~ ^[a-z][a-z0-9]{0,7}$ ]] || die "BUSYFLEET_NETNS_PREFIX must be 1-8 lower-case letters/digits, got '$PREFIX'"
  [[ "$SUBNET" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "BUSYFLEET_NETNS_SUBNET must be three octets (198.18.20), got '$SUBNET'"
  [[ -e "$STATE/hosts" ]] && die "a cluster is already up at $STATE; run: $0 down"
  if [[ -d "$STATE" && -n "$(ls -A "$STATE")" ]]; then die "$STATE exists and is not empty; not mine to use"; fi
  local ns
  for ns in $(ip netns list | awk '{print $1}'); do
    [[ "$ns" == "$PREFIX"-* ]] && die "namespace $ns already exists (another cluster with prefix $PREFIX?)"
  done

  COORDINATOR_BIN=$(find_binary "$bin_dir" coordinator)
  WORKER_BIN=$(find_binary "$bin_dir" worker)
  COORDCTL=$(find_binary "$bin_dir" coordctl)

  mkdir -p "$STATE/logs" "$STATE/pids"
  chmod 0700 "$STATE"
  : >"$STATE/hosts"
  # From here on, a failure (die, or any failing command under set -e)
  # takes down whatever was made.
  UP_OK=0
  trap 'if ((!UP_OK)); then echo "netns-cluster: up failed; cleaning up" >&2; cmd_down >/dev/null 2>&1 || true; fi' EXIT

  if [[ -z "$token_file" ]]; then
    token_file="$STATE/token"
    (umask 077; head -c 32 /dev/urandom | base64 >"$token_file")
  fi
  TOKEN=$(cd "$(dirname "$token_file")" && echo "$PWD/$(basename "$token_file")")
  [[ -s "$TOKEN" ]] || die "token file $TOKEN is missing or empty"
  printf 'TOKEN=%q\nCOORDCTL=%q\nADDRESS=%q\n' "$TOKEN" "$COORDCTL" "$SUBNET.1:$PORT" >"$STATE/env"

  # The switch: a bridge in a namespace of its own.
  echo "switch $SWITCH_NS -" >>"$STATE/hosts"
  ip netns add "$SWITCH_NS"
  ip -n "$SWITCH_NS" link add br0 type bridge
  ip -n "$SWITCH_NS" link set br0 up
  ip -n "$SWITCH_NS" link set lo up

  local i name addr
  for ((i = 0; i <= n; i++)); do
    if ((i == 0)); then name=coord; else name="w$i"; fi
    ns="$PREFIX-$name"
    addr="$SUBNET.$((i + 1))"
    echo "$name $ns $addr" >>"$STATE/hosts"
    ip netns add "$ns"
    # The cable: port NAME on the switch, eth0 on the host.
    ip -n "$SWITCH_NS" link add "$name" type veth peer name eth0 netns "$ns"
    ip -n "$SWITCH_NS" link set "$name" master br0 up
    ip -n "$ns" addr add "$addr/24" dev eth0
    ip -n "$ns" link set eth0 up
    ip -n "$ns" link set lo up
  done

  start_daemon "$PREFIX-coord" coord "$COORDINATOR_BIN" --listen "$SUBNET.1:$PORT" \
    --db "$STATE/coordinator.db" --token-file "$TOKEN"
  if ! wait_for 15 coordinator_listening_or_gone || ! grep -q "listening on" "$STATE/logs/coord.log"; then
    cat "$STATE/logs/coord.log" >&2
    die "the coordinator did not start (log above)"
  fi

  if ((sshd)); then setup_sshd "$n"; fi

  if ((workers)); then
    for ((i = 1; i <= n; i++)); do
      start_daemon "$PREFIX-w$i" "w$i" "$WORKER_BIN" --coordinator "$SUBNET.1:$PORT" \
        --token-file "$TOKEN" --name "w$i" --slots "$slots"
    done
    if ! wait_for 30 workers_ready_at_least "$n"; then
      tail -n 5 "$STATE"/logs/*.log >&2
      die "$n workers did not attach within 30 s (logs above)"
    fi
  fi
  # shellcheck disable=SC2034  # read by the EXIT trap
  UP_OK=1
  if ((workers)); then
    echo "netns-cluster: up: coordinator on coord ($SUBNET.1:$PORT), $n worker(s) attached"
  else
    echo "netns-cluster: up: coordinator on coord ($SUBNET.1:$PORT), hosts w1..w$n without workers"
  fi
  cmd_status
  echo "try: $0 exec coord $COORDCTL workers"
}

setup_sshd() {  # N
  if ! command -v ssh-keygen >/dev/null || [[ ! -x /usr/sbin/sshd ]]; then
    die "--sshd needs openssh-server and openssh-client"
  fi
  local n=$1 i addr d="$STATE/ssh"
  mkdir -p "$d"
  ssh-keygen -q -t ed25519 -N '' -C "busyfleet-netns-host" -f "$d/host_key"
  ssh-keygen -q -t ed25519 -N '' -C "busyfleet-netns-client" -f "$d/client_key"
  cp "$d/client_key.pub" "$d/authorized_keys"
  : >"$d/known_hosts"
  # sshd insists on its privilege-separation directory.
  if [[ ! -d /run/sshd ]]; then install -d -m 0755 /run/sshd && touch "$STATE/made-run-sshd"; fi
  for ((i = 1; i <= n; i++)); do
    addr="$SUBNET.$((i + 1))"
    echo "$addr $(cat "$d/host_key.pub")" >>"$d/known_hosts"
    cat >"$d/sshd_config.w$i" <<EOF
ListenAddress $addr
Port 22
HostKey $d/host_key
PidFile none
AuthorizedKeysFile $d/authorized_keys
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PrintMotd no
X11Forwarding no
AllowTcpForwarding no
EOF
    start_daemon "$PREFIX-w$i" "sshd-w$i" /usr/sbin/sshd -D -e -f "$d/sshd_config.w$i"
  done
  cat >"$d/ssh_config" <<EOF
Host *
  User $(id -un)
  IdentityFile $d/client_key
  IdentitiesOnly yes
  UserKnownHostsFile $d/known_hosts
  GlobalKnownHostsFile /dev/null
  StrictHostKeyChecking yes
  BatchMode yes
  ConnectTimeout 5
  LogLevel ERROR
EOF
  chmod 0600 "$d/ssh_config" "$d/client_key"
  for ((i = 1; i <= n; i++)); do
    if ! wait_for 10 grep -q "Server listening" "$STATE/logs/sshd-w$i.log"; then
      cat "$STATE/logs/sshd-w$i.log" >&2
      die "sshd on w$i did not start within 10 s (log above)"
    fi
  done
  echo "netns-cluster: sshd on every worker host; client: ssh -F $d/ssh_config $SUBNET.2"
}

kill_all_in() {  # NS...: TERM, wait up to 5 s, then KILL every process in these namespaces
  local ns pids
  pids=$(for ns in "$@"; do ip netns pids "$ns" 2>/dev/null || true; done)
  [[ -z "$pids" ]] && return 0
  # shellcheck disable=SC2086
  kill -TERM $pids 2>/dev/null || true
  local end=$((SECONDS + 5))
  while ((SECONDS < end)); do
    pids=$(for ns in "$@"; do ip netns pids "$ns" 2>/dev/null || true; done)
    [[ -z "$pids" ]] && return 0
    sleep 0.1
  done
  # shellcheck disable=SC2086
  kill -KILL $pids 2>/dev/null || true
}

cmd_down() {
  need_root
  if [[ ! -f "$STATE/hosts" ]]; then
    if [[ -d "$STATE" && -z "$(ls -A "$STATE")" ]]; then rmdir "$STATE"; fi
    echo "netns-cluster: nothing to take down at $STATE"
    return 0
  fi
  local namespaces
  mapfile -t namespaces < <(awk '{print $2}' "$STATE/hosts")
  # Everything running in our namespaces (daemons, ssh sessions, workers
  # started over ssh), then the recorded pids in case one left its namespace.
  kill_all_in "${namespaces[@]}"
  local f pid
  for f in "$STATE"/pids/*.pid; do
    [[ -f "$f" ]] || continue
    pid=$(cat "$f")
    if [[ -n "$pid" && -d /proc/$pid ]] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -e coordinator -e worker -e sshd; then
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done
  local ns
  for ns in "${namespaces[@]}"; do
    ip netns del "$ns" 2>/dev/null || true   # deleting a host's end removes its veth pair too
  done
  if [[ -f "$STATE/made-run-sshd" ]]; then rmdir /run/sshd 2>/dev/null || true; fi
  rm -rf "${STATE:?}"
  echo "netns-cluster: down (${#namespaces[@]} namespaces deleted)"
}

load_env() {
  [[ -f "$STATE/env" ]] || die "no cluster at $STATE (run: $0 up N)"
  # shellcheck disable=SC1091
  source "$STATE/env"
}

cmd_exec() {
  need_root
  (($# >= 2)) || die "usage: $0 exec HOST CMD [ARGS...]"
  local ns
  ns=$(host_field "$1" 2)
  shift
  load_env
  exec ip netns exec "$ns" env \
    BUSYFLEET_COORDINATOR="${BUSYFLEET_COORDINATOR:-$ADDRESS}" \
    BUSYFLEET_TOKEN_FILE="${BUSYFLEET_TOKEN_FILE:-$TOKEN}" "$@"
}

cmd_link() {
  need_root
  if (($# != 2)) || [[ "$2" != up && "$2" != down ]]; then die "usage: $0 link HOST up|down"; fi
  ip -n "$(host_field "$1" 2)" link set eth0 "$2"
}

cmd_status() {
  [[ -f "$STATE/hosts" ]] || { echo "netns-cluster: no cluster at $STATE"; return 0; }
  local name ns addr pid state
  printf '%-8s %-12s %-15s %s\n' HOST NAMESPACE ADDRESS DAEMON
  while read -r name ns addr; do
    [[ "$name" == switch ]] && continue
    state="-"
    pid=""
    if [[ -f "$STATE/pids/$name.pid" ]]; then
      pid=$(cat "$STATE/pids/$name.pid")
      if kill -0 "$pid" 2>/dev/null; then state="running (pid $pid)"; else state="exited (pid $pid)"; fi
      if [[ "$name" == coord ]]; then state="coordinator $state"; else state="worker $state"; fi
    fi
    printf '%-8s %-12s %-15s %s\n' "$name" "$ns" "$addr" "$state"
  done <"$STATE/hosts"
  echo "state: $STATE (logs in $STATE/logs)"
}

cmd=${1:-}
shift || true
case "$cmd" in
  up) cmd_up "$@" ;;
  down) cmd_down ;;
  exec) cmd_exec "$@" ;;
  link) cmd_link "$@" ;;
  addr) (($# == 1)) || die "usage: $0 addr HOST"; host_field "$1" 3 ;;
  status) cmd_status ;;
  *) usage ;;
esac
