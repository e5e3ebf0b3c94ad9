#!/usr/bin/env bash
# Builds busyfleet and runs every test (unit, integration, end to end).
# Installs missing Debian packages first (nothing when all are present).
#
#   bash deploy/test.sh            release build, all tests
#   PRESET=asan bash deploy/test.sh   the same under ASan+UBSan
set -euo pipefail
cd "$(dirname "$0")/.."
PRESET="${PRESET:-release}"

bash deploy/install-deps.sh
cmake --preset "$PRESET" >/dev/null
cmake --build --preset "$PRESET" -j2
ctest --test-dir "build/$PRESET" --output-on-failure --timeout 600
