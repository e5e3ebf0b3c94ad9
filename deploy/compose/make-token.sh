#!/usr/bin/env bash
# Writes a fresh random token for docker-compose.yml's secret (or to FILE).
#
#   deploy/compose/make-token.sh [FILE]     default: deploy/compose/secrets/busyfleet.token
#
# The directory is 0700 (other host users cannot reach the token); the file
# itself is 0644 because compose bind-mounts it into containers that run as
# uid 10001, which must be able to read it. An existing token is kept unless
# --force is given, so running this twice changes nothing.
set -euo pipefail
force=0
if [[ "${1:-}" == "--force" ]]; then force=1; shift; fi
here=$(cd "$(dirname "$0")" && pwd)
file=${1:-$here/secrets/busyfleet.token}
dir=$(dirname "$file")
install -d -m 0700 "$dir"
if [[ -s "$file" && $force -eq 0 ]]; then
  echo "make-token: $file exists; keeping it (--force makes a new one)" >&2
  exit 0
fi
tmp=$(mktemp "$dir/.token.XXXXXX")
head -c 32 /dev/urandom | base64 >"$tmp"
chmod 0644 "$tmp"
mv -f "$tmp" "$file"
echo "make-token: wrote $file" >&2
