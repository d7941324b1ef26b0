#!/usr/bin/env bash
# The container deployment tested for real, where a Docker engine is present.
#
# Without an engine (`docker info` fails) it prints `SKIPPED: no Docker engine` and exits 0.
# Otherwise it builds the static binary and the FROM-scratch image (no pull), brings up
# deploy/compose.yaml (5 nodes and the built-in origin), waits (bounded) until every node is
# ready, fetches objects through a node with `Host: site.beehive.localhost` and compares the
# bytes with the origin's, stops one node's container, checks that the others still serve,
# and always tears everything down (`down -v`). Requests go only to ports the compose file
# publishes on 127.0.0.1.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

if ! docker info >/dev/null 2>&1; then
  echo "SKIPPED: no Docker engine"
  exit 0
fi
if docker compose version >/dev/null 2>&1; then
  compose=(docker compose)
elif command -v docker-compose >/dev/null 2>&1; then
  compose=(docker-compose)
else
  echo "FAIL: a Docker engine but no compose tool (docker compose / docker-compose)"
  exit 1
fi
project=beehive-ci-$$
compose+=(-p "$project" -f deploy/compose.yaml)
BEEHIVE_SECRET=$(head -c 24 /dev/urandom | base64)
export BEEHIVE_SECRET
ART=target/artifacts
mkdir -p "$ART"
WORK=$(mktemp -d)
passed=0
failed=0
pass() { echo "PASS: $*"; passed=$((passed + 1)); }
fail() { echo "FAIL: $*"; failed=$((failed + 1)); }
cleanup() {
  "${compose[@]}" logs --no-color >"$ART/compose.log" 2>&1
  "${compose[@]}" down -v --remove-orphans >/dev/null 2>&1
  rm -rf "$WORK"
}
trap cleanup EXIT
wait_until() { # wait_until SECONDS CMD...
  local end=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -ge "$end" ] && return 1
    sleep 1
  done
}

image=$(scripts/build-image.sh) || { echo "FAIL: image build"; exit 1; }
pass "image $image built without pulling ($(docker image inspect -f '{{.Size}}' "$image") bytes)"
if ! "${compose[@]}" up -d >"$WORK/up.log" 2>&1; then
  cat "$WORK/up.log"
  fail "compose up"
  echo "docker-test: $passed passed, $failed failed"
  exit 1
fi
pass "compose up"

all_ready() {
  for i in 1 2 3 4 5; do curl -fsS -m 2 "http://127.0.0.1:1909$i/readyz" || return 1; done
}
ring_complete() {
  curl -fsS -m 2 http://127.0.0.1:19091/ring | python3 -c '
import json, sys
ring = json.load(sys.stdin)
sys.exit(0 if len({p["id"] for p in ring["successors"]}) >= 4 else 1)'
}
if wait_until 90 all_ready && wait_until 60 ring_complete; then
  pass "5 nodes ready and in one ring"
else
  fail "the cluster did not become ready within the bound"
fi

# same_bytes NODE_PORT OBJECT: the object through the CDN equals the origin's.
same_bytes() {
  curl -fsS -m 5 -o "$WORK/origin.$2" "http://127.0.0.1:19000/o/$2" || return 1
  curl -fsS -m 10 -o "$WORK/cdn.$2" -H "Host: site.beehive.localhost" "http://127.0.0.1:$1/o/$2" || return 1
  cmp -s "$WORK/origin.$2" "$WORK/cdn.$2"
}
serves_all() { # serves_all NODE_PORT: objects 1..10 through that node equal the origin's
  for k in 1 2 3 4 5 6 7 8 9 10; do same_bytes "$1" "$k" || return 1; done
}
if wait_until 30 serves_all 18081; then
  pass "objects through node1 equal the origin's bytes"
else
  fail "node1 does not serve the origin's bytes (HTTP face or origin missing?)"
fi

victim=$("${compose[@]}" ps -q node3)
if [ -n "$victim" ] && docker stop -t 10 "$victim" >/dev/null; then
  pass "stopped node3 ($victim)"
else
  fail "could not stop node3"
fi
# The ring routes around the stopped node within a few stabilisation rounds.
ring_healed() {
  for i in 1 2 4 5; do curl -fsS -m 2 "http://127.0.0.1:1909$i/readyz" || return 1; done
  curl -fsS -m 2 http://127.0.0.1:19091/ring | python3 -c '
import json, sys
ring = json.load(sys.stdin)
live = {p["id"] for p in ring["successors"]} - set(ring["suspects"])
sys.exit(0 if len(live) == 3 and not any(p["addr"].startswith("172.29.7.13:") for p in ring["successors"]) else 1)'
}
if wait_until 90 ring_healed; then
  pass "the ring healed: 4 nodes ready, node3 gone from node1's successors"
else
  fail "the ring did not heal after node3 stopped"
fi
if wait_until 60 serves_all 18082 && wait_until 30 serves_all 18081; then
  pass "the remaining nodes still serve after node3 stopped"
else
  fail "the remaining nodes do not serve after node3 stopped"
fi

echo "docker-test: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
