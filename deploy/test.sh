#!/usr/bin/env bash
# Builds busyfleet and runs every test (unit, integration, end to end) and,
# for the release preset, the fuzzers (deploy/fuzz.sh).
# Installs missing Debian packages first (nothing when all are present).
#
#   bash deploy/test.sh            release build, all tests
#   PRESET=asan bash deploy/test.sh   the same under ASan+UBSan
set -euo pipefail
cd "$(dirname "$0")/.."
PRESET="${PRESET:-release}"

bash deploy/install-deps.sh
if [[ "$PRESET" == "asan" ]]; then
  export LSAN_OPTIONS="suppressions=$PWD/tests/lsan.supp:print_suppressions=0"
fi
cmake --preset "$PRESET" >/dev/null
cmake --build --preset "$PRESET" -j2
# Request validation under libFuzzer (clang): the checked-in corpus, then a
# bounded run (FUZZ_SECONDS per fuzzer). SKIP_FUZZ=1 leaves it out.
if [[ "$PRESET" == "release" && "${SKIP_FUZZ:-0}" != 1 ]]; then
  bash deploy/fuzz.sh
fi
# -j2: e2e_docker (its image build niced to 19) runs beside the other
# tests, which take one lock and run one at a time (tests/CMakeLists.txt).
ctest --test-dir "build/$PRESET" --output-on-failure --timeout 600 -j2
