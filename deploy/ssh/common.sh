# Shared by start-workers.sh and stop-workers.sh (sourced, not run).
# shellcheck shell=bash

die() { echo "$(basename "$0"): $*" >&2; exit 2; }

# Single-quotes a word for a POSIX shell on the far side.
shq() { printf "'%s'" "${1//\'/\'\\\'\'}"; }

# read_hostfile FILE: fills HOSTS (user@host or host) and SLOTS ("" = worker's default).
# One host a line, optional slots after it; '#' starts a comment.
read_hostfile() {
  local file=$1 line lineno=0 host slots rest
  [[ -r "$file" ]] || die "cannot read host file '$file'"
  HOSTS=() SLOTS=()
  while IFS= read -r line || [[ -n "$line" ]]; do
    lineno=$((lineno + 1))
    line=${line%%#*}
    read -r host slots rest <<<"$line" || true
    [[ -z "${host:-}" ]] && continue
    [[ -z "${rest:-}" ]] || die "$file:$lineno: expected 'HOST [SLOTS]', got '$line'"
    [[ "$host" =~ ^([A-Za-z0-9._-]+@)?[A-Za-z0-9._:-]+$ ]] \
      || die "$file:$lineno: host '$host' has characters other than letters, digits and ._-:@"
    if [[ -n "${slots:-}" ]] && { ! [[ "$slots" =~ ^[0-9]+$ ]] || ((slots < 1 || slots > 4096)); }; then
      die "$file:$lineno: slots must be between 1 and 4096, got '$slots'"
    fi
    HOSTS+=("$host") SLOTS+=("${slots:-}")
  done <"$file"
  ((${#HOSTS[@]})) || die "no hosts in '$file'"
}

# host_name user@host -> host (the worker's name and its state directory).
host_name() { echo "${1#*@}"; }

# run_on_hosts SCRIPT_FN: for every host, in parallel, pipes the output of
# `SCRIPT_FN INDEX` (a POSIX sh script) to `ssh HOST sh -s`, the host's output
# going to LOG_DIR/NAME.log; prints one summary line a host (the log's last
# line) and returns 1 when any host failed.
run_on_hosts() {
  local script_fn=$1 i name failed=0
  local -a pids=()
  mkdir -p "$LOG_DIR"
  read -r -a ssh_cmd <<<"$SSH"
  for i in "${!HOSTS[@]}"; do
    name=$(host_name "${HOSTS[$i]}")
    {
      echo "== $(date -u +%FT%TZ) ${HOSTS[$i]}"
      "$script_fn" "$i" | "${ssh_cmd[@]}" "${HOSTS[$i]}" sh -s
    } >>"$LOG_DIR/$name.log" 2>&1 &
    pids+=($!)
  done
  for i in "${!HOSTS[@]}"; do
    name=$(host_name "${HOSTS[$i]}")
    if wait "${pids[$i]}"; then
      echo "$name: $(tail -n 1 "$LOG_DIR/$name.log")"
    else
      echo "$name: FAILED: $(tail -n 1 "$LOG_DIR/$name.log") (log: $LOG_DIR/$name.log)"
      failed=1
    fi
  done
  return "$failed"
}
