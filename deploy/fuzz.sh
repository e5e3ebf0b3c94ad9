#!/usr/bin/env bash
# Builds the libFuzzer targets (preset "fuzz": clang, ASan+UBSan), replays
# each fuzzer's checked-in corpus (tests/fuzz/corpus/), then fuzzes each one
# for a bounded time. Exits non-zero on any crash, sanitizer report, leak,
# timeout or out-of-memory; the inputs that caused it are kept in a temp dir
# whose path is printed. Needs no network (run deploy/install-deps.sh once).
#
#   bash deploy/fuzz.sh                 25 s per fuzzer, one per CPU at a time
#   FUZZ_SECONDS=600 bash deploy/fuzz.sh
#   FUZZ_JOBS=1 bash deploy/fuzz.sh      one after the other
set -euo pipefail
cd "$(dirname "$0")/.."

FUZZ_SECONDS="${FUZZ_SECONDS:-25}"
if ! [[ "$FUZZ_SECONDS" =~ ^[0-9]+$ ]] || ((FUZZ_SECONDS < 1)); then
  echo "fuzz.sh: FUZZ_SECONDS must be a positive whole number of seconds, got '$FUZZ_SECONDS'" >&2
  exit 2
fi
# fuzzer binary -> its corpus under tests/fuzz/corpus/
declare -A CORPUS=([spec_fuzzer]=spec [worker_message_fuzzer]=worker_message [task_chunk_fuzzer]=task_chunk)
FUZZERS=(spec_fuzzer worker_message_fuzzer task_chunk_fuzzer)
BIN_DIR=build/fuzz/tests/fuzz
FUZZ_FLAGS=(-max_len=4096 -rss_limit_mb=2048 -timeout=10)
# A UBSan report aborts (the preset builds with -fno-sanitize-recover) and
# shows where it came from.
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1}"

cmake --preset fuzz >/dev/null
cmake --build --preset fuzz -j2 --target "${FUZZERS[@]}"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/busyfleet-fuzz.XXXXXX")"
failed=0
summaries=()

# Prints the end of a fuzzer's log (the sanitizer report) and where the inputs are.
report_failure() {
  local name="$1" what="$2" log="$3" artifacts="$4"
  echo "---- $name: $what failed; last lines of $log:" >&2
  tail -n 60 "$log" >&2
  echo "---- $name: crash inputs and logs kept in $artifacts" >&2
}

# One fuzzer: replay, then fuzz. Its one-line summary goes to
# $WORK/NAME/summary; returns non-zero on any failure.
fuzz_one() {
  local name="$1"
  local bin="$BIN_DIR/$name"
  local corpus="tests/fuzz/corpus/${CORPUS[$name]}"
  local artifacts="$WORK/$name/artifacts"
  local new_inputs="$WORK/$name/new_inputs"
  local summary="$WORK/$name/summary"
  mkdir -p "$artifacts" "$new_inputs"

  # 1. Replay: each checked-in input runs once (libFuzzer's file mode).
  local -a inputs
  mapfile -t inputs < <(find "$corpus" -type f | sort)
  if ((${#inputs[@]} == 0)); then
    echo "$name: no inputs in $corpus" >"$summary"
    return 1
  fi
  local replay_log="$WORK/$name/replay.log"
  if ! "$bin" "${FUZZ_FLAGS[@]}" -artifact_prefix="$artifacts/" "${inputs[@]}" >"$replay_log" 2>&1; then
    report_failure "$name" "corpus replay" "$replay_log" "$WORK/$name"
    echo "$name: corpus replay FAILED (${#inputs[@]} inputs), not fuzzed" >"$summary"
    return 1
  fi

  # 2. Fuzz: new inputs go to the temp dir, never into the checked-in corpus.
  local fuzz_log="$WORK/$name/fuzz.log"
  local start=$SECONDS rc=0
  "$bin" "${FUZZ_FLAGS[@]}" -max_total_time="$FUZZ_SECONDS" -print_final_stats=1 \
      -artifact_prefix="$artifacts/" "$new_inputs" "$corpus" >"$fuzz_log" 2>&1 || rc=$?
  local elapsed=$((SECONDS - start))
  local runs
  runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$fuzz_log" | tail -n 1)"
  if ((rc != 0)); then
    report_failure "$name" "fuzzing (exit code $rc)" "$fuzz_log" "$WORK/$name"
    echo "$name: corpus replayed (${#inputs[@]} inputs), fuzzed ${elapsed} s, ${runs:-?} runs, FAILED (exit code $rc, see $artifacts)" >"$summary"
    return 1
  fi
  echo "$name: corpus replayed (${#inputs[@]} inputs), fuzzed ${elapsed} s, ${runs:-?} runs, no crash" >"$summary"
}

# The fuzzers are single-threaded: as many run at once as there are CPUs
# (FUZZ_JOBS), each for its full FUZZ_SECONDS. On 2 cores the three take
# ~2 x 25 s instead of 3 x 25 s.
FUZZ_JOBS="${FUZZ_JOBS:-$(nproc)}"
if ! [[ "$FUZZ_JOBS" =~ ^[0-9]+$ ]] || ((FUZZ_JOBS < 1)); then
  echo "fuzz.sh: FUZZ_JOBS must be a positive whole number, got '$FUZZ_JOBS'" >&2
  exit 2
fi
declare -A PIDS=()
for name in "${FUZZERS[@]}"; do
  while (($(jobs -rp | wc -l) >= FUZZ_JOBS)); do
    wait -n || true  # each one's status is collected below, by its pid
  done
  fuzz_one "$name" &
  PIDS[$name]=$!
done
for name in "${FUZZERS[@]}"; do
  wait "${PIDS[$name]}" || failed=1
  summaries+=("$(cat "$WORK/$name/summary" 2>/dev/null || echo "$name: no summary (killed?)")")
done

printf '%s\n' "${summaries[@]}"
if ((failed)); then
  echo "fuzz.sh: FAILED; inputs, artifacts and logs are in $WORK" >&2
  exit 1
fi
rm -rf "$WORK"
