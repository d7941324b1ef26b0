#!/usr/bin/env bash
# Browser test of the dashboard and of the CDN name, in headless Chromium (Debian's package).
#
# Starts `beehive origin` and a 5-node ring on loopback (fixed high ports, shortened
# intervals), sends a bounded Zipf-like load through the CDN, then checks with Chromium that
#   * the dashboard of node 0 draws 5 `circle.node` and at least one replicated `path.arc`
#     (screenshot: target/artifacts/dashboard.png, DOM: target/artifacts/dashboard.html);
#   * http://site.beehive.localhost:PORT/ (the origin's index through the CDN) shows the
#     origin's own page title;
#   * /metrics parses with Python's prometheus_client text parser and its counters moved
#     under the load.
# Every check prints PASS or FAIL; the script exits non-zero if any failed. It kills only
# the processes it started (by PID) and every wait is bounded.
#
# Environment: BEEHIVE_BIN (skip the build and use this binary), BEEHIVE_ORIGIN_BIN (run the
# origin from another binary; default BEEHIVE_BIN), BROWSER_TEST_PORT_BASE
# (default 21100, below the ephemeral port range; ports BASE..BASE+30 and BASE+99 are used), BROWSER_TEST_REQUESTS (1500).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

ART=target/artifacts
mkdir -p "$ART"
WORK=$(mktemp -d)
BASE=${BROWSER_TEST_PORT_BASE:-21100}
REQUESTS=${BROWSER_TEST_REQUESTS:-1500}
NODES=5
OBJECTS=200
export BEEHIVE_SECRET=browser-test-cluster-secret-0123456789
pids=()
passed=0
failed=0

cleanup() {
  touch "$WORK/stop-load"
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null
  done
  wait 2>/dev/null
  cp "$WORK"/*.log "$ART"/ 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

pass() { echo "PASS: $*"; passed=$((passed + 1)); }
fail() { echo "FAIL: $*"; failed=$((failed + 1)); }
# wait_until SECONDS CMD...: runs CMD every 0.5 s until it succeeds or SECONDS pass.
wait_until() {
  local end=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -ge "$end" ] && return 1
    sleep 0.5
  done
}
# first_line_with FILE PATTERN SECONDS: waits for a line matching PATTERN in FILE.
first_line_with() {
  local end=$((SECONDS + $3))
  until grep -m1 "$2" "$1" 2>/dev/null; do
    [ "$SECONDS" -ge "$end" ] && return 1
    sleep 0.2
  done
}

# ---- tools
if ! command -v chromium >/dev/null 2>&1; then
  echo "installing chromium (Debian package)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
command -v chromium >/dev/null || { echo "FAIL: chromium cannot be installed"; exit 1; }
if ! python3 -c 'import prometheus_client' 2>/dev/null; then
  python3 -m pip install --quiet --disable-pip-version-check prometheus-client >/dev/null 2>&1 \
    || echo "note: prometheus-client (PyPI) could not be installed; /metrics is not parsed"
fi
BIN=${BEEHIVE_BIN:-$(scripts/build-static.sh)} || { echo "FAIL: build"; exit 1; }
echo "binary: $BIN"

browser() {
  # Headless Chromium with a bounded run; prints the DOM after the page's scripts ran.
  timeout 60 chromium --headless --no-sandbox --disable-gpu --disable-dev-shm-usage \
    --no-first-run --user-data-dir="$WORK/chromium" "$@" 2>>"$WORK/chromium.log"
}

# ---- origin
ORIGIN_ADDR=127.0.0.1:$((BASE + 99))
have_origin=false
ORIGIN_BIN=${BEEHIVE_ORIGIN_BIN:-$BIN}
if "$ORIGIN_BIN" origin --help >/dev/null 2>&1; then
  "$ORIGIN_BIN" origin --listen "$ORIGIN_ADDR" --objects "$OBJECTS" --size 2048 >"$WORK/origin.log" 2>&1 &
  pids+=($!)
  if line=$(first_line_with "$WORK/origin.log" "listening http=" 20); then
    ORIGIN_ADDR=${line#*http=}; ORIGIN_ADDR=${ORIGIN_ADDR%% *}
    have_origin=true
    pass "origin listening on $ORIGIN_ADDR"
  else
    fail "beehive origin did not print its listening line"
  fi
else
  fail "beehive origin does not exist yet (the HTTP face has not landed)"
fi

# ---- five nodes
extra=()
if "$BIN" node --help 2>/dev/null | grep -q -- '--replication-ms'; then extra+=(--replication-ms 1000); fi
# Plain Chord on five nodes already costs less than one hop: ask for fewer, so objects replicate.
if "$BIN" node --help 2>/dev/null | grep -q -- '--target-hops'; then extra+=(--target-hops 0.5); fi
for i in $(seq 0 $((NODES - 1))); do
  args=(node --rpc "127.0.0.1:$((BASE + i))" --admin "127.0.0.1:$((BASE + 10 + i))"
        --http "127.0.0.1:$((BASE + 20 + i))" --origin "site=http://$ORIGIN_ADDR"
        --stabilize-ms 200 --fix-fingers-ms 200 --check-predecessor-ms 200 "${extra[@]}")
  [ "$i" -gt 0 ] && args+=(--join "127.0.0.1:$BASE")
  RUST_LOG=${RUST_LOG:-info} "$BIN" "${args[@]}" >"$WORK/node$i.log" 2>&1 &
  pids+=($!)
  first_line_with "$WORK/node$i.log" "listening rpc=" 20 >/dev/null || fail "node $i did not start"
done
ADMIN0=127.0.0.1:$((BASE + 10))
ring_has_all() {
  curl -fsS "http://$ADMIN0/ring" | python3 -c '
import json, sys
ring = json.load(sys.stdin)
sys.exit(0 if ring["ready"] and len({p["id"] for p in ring["successors"]}) >= int(sys.argv[1]) - 1 else 1)
' "$NODES"
}
all_ready() {
  for i in $(seq 0 $((NODES - 1))); do curl -fsS "http://127.0.0.1:$((BASE + 10 + i))/readyz" || return 1; done
}
if wait_until 40 all_ready && wait_until 40 ring_has_all; then
  pass "$NODES nodes ready; node 0 knows all of them"
else
  fail "the ring did not form within the bound"
fi

metric() { # metric ADMIN SERIES: one sample's value, 0 if absent
  curl -fsS "http://$1/metrics" | awk -v s="$2" '$1 == s { print $2; found = 1 } END { if (!found) print 0 }'
}
sent_before=$(metric "$ADMIN0" 'beehive_rpc_messages_sent_total{kind="stabilize"}')

# ---- load through the CDN
have_http=false
if curl -fsS -m 5 -o /dev/null -H "Host: site.beehive.localhost" "http://127.0.0.1:$((BASE + 20))/o/1"; then
  have_http=true
else
  fail "the CDN does not serve http://site.beehive.localhost:$((BASE + 20))/o/1 (the HTTP face has not landed?)"
fi
if $have_http; then
  # Keys log-uniform over 1..OBJECTS: a Zipf(α≈1)-like popularity. Bounded by count and time.
  awk -v n="$REQUESTS" -v m="$OBJECTS" -v nodes="$NODES" -v base="$BASE" 'BEGIN {
      srand(42)
      for (i = 0; i < n; i++) {
        k = int(exp(rand() * log(m))); port = base + 20 + (i % nodes)
        print "http://127.0.0.1:" port "/o/" k
      }
    }' >"$WORK/urls"
  start=$SECONDS
  codes=$(timeout 240 xargs -P 4 -n 1 curl -s -m 10 -o /dev/null -w '%{http_code}\n' \
            -H "Host: site.beehive.localhost" <"$WORK/urls")
  ok=$(grep -c '^200$' <<<"$codes")
  echo "load: $ok of $REQUESTS answered 200 in $((SECONDS - start)) s"
  if [ "$ok" -ge $((REQUESTS * 9 / 10)) ]; then pass "load served"; else fail "load: only $ok of $REQUESTS were 200"; fi
  # Popularity decays once requests stop, and with it the replication levels: keep a gentle
  # load going (batches of 100, bounded by time and by a stop file) while the browser looks.
  (
    end=$((SECONDS + 240))
    while [ ! -e "$WORK/stop-load" ] && [ "$SECONDS" -lt "$end" ]; do
      shuf -n 100 "$WORK/urls" | timeout 15 xargs -P 2 -n 1 curl -s -m 5 -o /dev/null \
        -H "Host: site.beehive.localhost" >/dev/null 2>&1
    done
  ) &
  pids+=($!)
fi

# ---- /metrics: parses, counters moved
curl -fsS "http://$ADMIN0/metrics" >"$ART/metrics.txt"
if python3 -c 'import prometheus_client' 2>/dev/null; then
  if python3 - "$ART/metrics.txt" <<'PY'
import sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
families = list(text_string_to_metric_families(open(sys.argv[1]).read()))
names = {f.name for f in families}
need = {"beehive_rpc_messages_sent", "beehive_object_lookup_hops", "beehive_store_bytes", "beehive_leader_epoch"}
missing = need - names
print(f"{len(families)} metric families parsed")
sys.exit(1 if missing else 0)
PY
  then pass "/metrics parses as OpenMetrics"; else fail "/metrics does not parse or lacks a family"; fi
fi
sent_after=$(metric "$ADMIN0" 'beehive_rpc_messages_sent_total{kind="stabilize"}')
if awk -v a="$sent_before" -v b="$sent_after" 'BEGIN { exit !(b > a) }'; then
  pass "rpc counters moved ($sent_before -> $sent_after)"
else
  fail "rpc counters did not move"
fi
if $have_http; then
  lookups=$(curl -fsS "http://$ADMIN0/metrics" | awk '/^beehive_object_lookups_total/ { s += $2 } END { print s + 0 }')
  if [ "${lookups%.*}" -gt 0 ]; then pass "object lookup counters moved ($lookups)"; else fail "no object lookups counted"; fi
fi

# ---- the dashboard in Chromium
count() { grep -o "$1" "$2" | wc -l; }
dashboard_ok() {
  browser --virtual-time-budget=8000 --dump-dom "http://$ADMIN0/dashboard" >"$ART/dashboard.html"
  [ "$(count '<circle class="node"' "$ART/dashboard.html")" -eq "$NODES" ] || return 1
  $have_http || return 0
  [ "$(count '<path class="arc"' "$ART/dashboard.html")" -ge 1 ]
}
# Replicated arcs need a leader result and a pull or two: give them a bounded while.
end=$((SECONDS + 150))
until dashboard_ok; do
  [ "$SECONDS" -ge "$end" ] && break
  sleep 5
done
nodes_drawn=$(count '<circle class="node"' "$ART/dashboard.html")
arcs_drawn=$(count '<path class="arc"' "$ART/dashboard.html")
echo "dashboard: $nodes_drawn nodes, $arcs_drawn replicated arcs"
if [ "$nodes_drawn" -eq "$NODES" ]; then pass "dashboard draws $NODES nodes"; else fail "dashboard draws $nodes_drawn nodes, not $NODES"; fi
if [ "$arcs_drawn" -ge 1 ]; then pass "dashboard draws replicated arcs"; else fail "dashboard draws no replicated arc"; fi
browser --virtual-time-budget=8000 --window-size=1400,1000 --screenshot="$ART/dashboard.png" \
  "http://$ADMIN0/dashboard" >/dev/null
if [ -s "$ART/dashboard.png" ]; then pass "screenshot $ART/dashboard.png"; else fail "no screenshot"; fi

# ---- the origin's page through the CDN name, in the same browser
if $have_origin && $have_http; then
  title=$(curl -fsS -m 5 "http://$ORIGIN_ADDR/" | sed -n 's:.*<title>\(.*\)</title>.*:\1:p' | head -1)
  [ -n "$title" ] || title=$(curl -fsS -m 5 "http://$ORIGIN_ADDR/" | head -c 40)
  browser --virtual-time-budget=3000 --dump-dom "http://site.beehive.localhost:$((BASE + 20))/" >"$ART/cdn-page.html"
  if [ -n "$title" ] && grep -qF "$title" "$ART/cdn-page.html"; then
    pass "the CDN name shows the origin's page ($title)"
  else
    fail "the page through the CDN name lacks the origin's marker '$title'"
  fi
else
  fail "the origin's page through the CDN name was not checked (no origin or no HTTP face)"
fi

echo "browser-test: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
