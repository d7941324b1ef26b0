#!/usr/bin/env bash
# Builds the container image `beehive:local` (or $BEEHIVE_IMAGE) from the static release
# binary, without pulling anything: deploy/Dockerfile is FROM scratch.
set -euo pipefail
cd "$(dirname "$0")/.."
image=${BEEHIVE_IMAGE:-beehive:local}
bin=${BEEHIVE_BIN:-$(scripts/build-static.sh)}
context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
# The image needs no debug info: strip a copy (the build's own binary keeps it).
if command -v strip >/dev/null 2>&1; then strip -o "$context/beehive" "$bin"; else cp "$bin" "$context/beehive"; fi
docker build --pull=false -q -f deploy/Dockerfile -t "$image" "$context" >&2
echo "$image"
