#!/usr/bin/env bash
# The chapter's experiment on this machine: builds busyfleet, starts a
# coordinator and two local workers (one slot each), runs the countdown job
# serially and in parallel, prints the reports, and stops everything.
# Installs the missing Debian packages it needs first: the compiler, the
# libraries and python3, nothing the tests need (nothing when all are present).
set -euo pipefail
cd "$(dirname "$0")/.."

bash deploy/install-deps.sh --demo
cmake --preset release >/dev/null
cmake --build --preset release -j2 --target coordinator worker coordctl >/dev/null
BIN=build/release
WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

# A free loopback port, chosen by the coordinator itself.
"$BIN/coordinator/coordinator" --listen 127.0.0.1:0 --http-listen 127.0.0.1:0 --db "$WORK/demo.db" \
  2>"$WORK/coordinator.log" &
PIDS+=($!)
for _ in $(seq 100); do
  ADDR=$(sed -n 's/.*listening on \([0-9.:]*\).*/\1/p' "$WORK/coordinator.log")
  HTTP=$(sed -n 's/.*status page and metrics on \(http[^ ]*\).*/\1/p' "$WORK/coordinator.log")
  [[ -n "$ADDR" && -n "$HTTP" ]] && break
  sleep 0.1
done
[[ -n "${ADDR:-}" ]] || { cat "$WORK/coordinator.log"; echo "demo: coordinator did not start" >&2; exit 1; }

for i in 1 2; do
  "$BIN/worker/worker" --coordinator "$ADDR" --slots 1 --name "worker-$i" 2>"$WORK/worker-$i.log" &
  PIDS+=($!)
done
CTL=("$BIN/coordinator/coordctl" --coordinator "$ADDR")
for _ in $(seq 100); do
  [[ $("${CTL[@]}" -o json workers | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))') == 2 ]] && break
  sleep 0.1
done

echo "== coordinator at $ADDR with two workers, one slot each =="
"${CTL[@]}" -o table workers
echo
echo "== The chapter's job: 4 tasks x 10,000,000 countdown iterations =="
"${CTL[@]}" -o table submit --name chapter --tasks 4 --iterations 10000000 --wait | tee "$WORK/chapter.txt"

# Tasks of about a second each: calibrate on this machine first.
PER_SLOT=$("${CTL[@]}" -o json submit --name calibrate --tasks 2 --iterations 500000000 --wait | python3 -c '
import json, sys
r = json.load(sys.stdin)
ips = [w["iterations_per_second"] for w in r["workers"] if w["iterations_per_second"] > 0]
print(int(max(ips)) if ips else 1000000000)')
echo
echo "== Heavier: 4 tasks of about a second each ($PER_SLOT iterations), serial (--max-slots 1) =="
"${CTL[@]}" -o json submit --name heavy-serial --tasks 4 --iterations "$PER_SLOT" --max-slots 1 --wait >"$WORK/serial.json"
"${CTL[@]}" -o table status "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$WORK/serial.json")"
echo
echo "== The same, in parallel on both workers =="
"${CTL[@]}" -o json submit --name heavy-parallel --tasks 4 --iterations "$PER_SLOT" --wait >"$WORK/parallel.json"
"${CTL[@]}" -o table status "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$WORK/parallel.json")"
echo
python3 - "$WORK/serial.json" "$WORK/parallel.json" <<'PY'
import json, sys
s, p = (json.load(open(f)) for f in sys.argv[1:3])
ws, wp = s["timing"]["wall_seconds"], p["timing"]["wall_seconds"]
print(f"== Serial {ws:.2f} s, parallel {wp:.2f} s: {ws / wp:.2f}x faster on {p['timing']['slots']} slots "
      f"(reported speedup {p['timing']['speedup']:.2f}, efficiency {p['timing']['efficiency'] * 100:.1f}%) ==")
PY
echo
echo "== coordctl bench: serial, threads, processes, the whole fleet (one worker's slot each here),"
echo "   5 interleaved trials of each after a warm-up round, tasks of about a quarter second (~25 s) =="
"${CTL[@]}" -o table bench --iterations "$((PER_SLOT / 4))" --repeat 5 2>/dev/null
echo
echo "(The coordinator also served a status page at $HTTP and Prometheus metrics at ${HTTP}metrics;"
echo " start one yourself to browse them: README, 'Where the time went'.)"
