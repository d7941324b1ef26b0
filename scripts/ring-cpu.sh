#!/usr/bin/env bash
# CPU time per request of beehive nodes under wrk, a figure that holds on a busy machine
# (throughput does not): the user+sys time of every node process (from /proc/PID/stat)
# over a run, divided by the requests wrk completed.
#
#   scripts/ring-cpu.sh                 # 2-node ring (--mode chord), wrk on the joiner:
#                                       # about half the requests go one hop to the other node
#   scripts/ring-cpu.sh --single        # one node: every request a local hit
#   BEEHIVE_BIN=/tmp/old/beehive scripts/ring-cpu.sh   # another build, for before/after
#
# PERF=/tmp/x.data also records 4 s of the nodes with perf (DWARF call graphs).
# --callgrind runs the nodes under valgrind and also prints the user-space instructions per
# request over the measured run (repeatable whatever the load; use --objects 1000 and
# --connections 8, the nodes are ~50x slower).
# Options: --single, --duration 6s, --connections 64, --objects 10000 (1 KiB each, Zipf 0.91).
# Uses the built-in origin (`beehive origin`), wrk and scripts/zipf.lua (Zipf 0.91 over
# /o/0 .. /o/<objects-1>). Ports 19000-19023 on 127.0.0.1. Nodes on
# CPU 1, wrk on CPU 0 (as anchors.sh pins), every process started here stopped by its PID.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
bin=${BEEHIVE_BIN:-$repo/target/release/beehive}
zipf=$repo/scripts/zipf.lua
single=0 duration=6s conns=64 objects=10000 grind=0
while [[ $# -gt 0 ]]; do
  case $1 in
    --single) single=1 ;;
    --duration) duration=$2; shift ;;
    --connections) conns=$2; shift ;;
    --objects) objects=$2; shift ;;
    --callgrind) grind=1 ;;
    *) echo "ring-cpu: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
[[ -x $bin ]] || { echo "ring-cpu: no binary at $bin" >&2; exit 2; }

run=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$run"
}
trap cleanup EXIT
head -c 32 /dev/urandom | base64 >"$run/secret"

"$bin" origin --listen 127.0.0.1:19000 --objects "$objects" --size 1024 --max-age 3600 \
  >"$run/origin.log" 2>&1 &
pids+=($!)
node() { # node <http port> <rpc port> <admin port> [flags...]
  local http=$1 rpc=$2 admin=$3; shift 3
  local wrap=()
  [[ $grind == 1 ]] && wrap=(valgrind --tool=callgrind --instr-atstart=no
    --callgrind-out-file="$run/callgrind.%p")
  TOKIO_WORKER_THREADS=1 taskset -c 1 "${wrap[@]}" "$bin" node --http 127.0.0.1:"$http" --rpc 127.0.0.1:"$rpc" \
    --admin 127.0.0.1:"$admin" --secret-file "$run/secret" --origin site=http://127.0.0.1:19000 \
    --rate-per-sec 1000000 "$@" >"$run/node-$http.log" 2>&1 &
  pids+=($!)
  nodes+=($!)
}
nodes=()
if [[ $single == 1 ]]; then
  node 19001 19010 19011
  port=19001
else
  node 19001 19020 19021 --mode chord
  sleep 1
  node 19002 19022 19023 --mode chord --join 127.0.0.1:19020
  port=19002
fi
host=site.beehive.localhost:$port
# Ready once the entry node answers 200 (503 until it joined its ring). Bounded.
for _ in $(seq 300); do
  code=$(curl -s -o /dev/null -w '%{http_code}' -H "Host: $host" "http://127.0.0.1:$port/o/0" || true)
  [[ $code == 200 ]] && break
  sleep 0.2
done
[[ $code == 200 ]] || { echo "ring-cpu: node not ready ($code)" >&2; cat "$run"/node-*.log >&2; exit 1; }
# Warm every object once (each home loads its own), then once more (all hits).
for _ in 1 2; do
  curl -s --parallel --parallel-max 16 -H "Host: $host" -o /dev/null \
    "http://127.0.0.1:$port/o/[0-$((objects - 1))]" 2>/dev/null
done

ticks() { # ticks [user]: summed utime+stime (or utime alone) of the node processes
  local t=0 p sum='$14 + $15'
  [[ ${1:-} == user ]] && sum='$14'
  for p in "${nodes[@]}"; do
    t=$((t + $(awk "{print $sum}" "/proc/$p/stat")))
  done
  echo "$t"
}
hz=$(getconf CLK_TCK)
[[ $grind == 1 ]] && for p in "${nodes[@]}"; do callgrind_control -i on "$p" >/dev/null; done
before=$(ticks) ubefore=$(ticks user)
# PERF=FILE: also sample the nodes (call graphs by DWARF) for 4 s of the run.
if [[ -n ${PERF:-} ]]; then
  (sleep 1; perf record -q -F 999 --call-graph dwarf,16384 -o "$PERF" \
    -p "$(IFS=,; echo "${nodes[*]}")" -- sleep 4 >/dev/null 2>&1) &
  perf_pid=$!
fi
taskset -c 0 wrk -t2 -c"$conns" -d"$duration" --latency -s "$zipf" "http://127.0.0.1:$port" \
  -- alpha=0.91 n="$objects" host="$host" >"$run/wrk.log"
after=$(ticks) uafter=$(ticks user)
if [[ $grind == 1 ]]; then
  for p in "${nodes[@]}"; do callgrind_control -d "$p" >/dev/null; done
  sleep 1
  [[ -n ${CALLGRIND_KEEP:-} ]] && cp "$run"/callgrind.* "$CALLGRIND_KEEP"/
  # A dump holds both a `summary:` and an equal `totals:` line; count one.
  ir=$(cat "$run"/callgrind.* | awk '/^totals:/ {s += $2} END {print s + 0}')
  echo "user-space instructions per request (callgrind): $((ir / $(grep -o 'requests=[0-9]*' "$run/wrk.log" | cut -d= -f2)))"
fi
[[ -n ${perf_pid:-} ]] && wait "$perf_pid"
line=$(grep '^WRKRESULT' "$run/wrk.log")
reqs=$(sed -E 's/.*requests=([0-9]+).*/\1/' <<<"$line")
errs=$(sed -E 's/.*err_status=([0-9]+).*/\1/' <<<"$line")
awk -v r="$reqs" -v t=$((after - before)) -v u=$((uafter - ubefore)) -v hz="$hz" -v l="$line" -v e="$errs" -v load="$(cut -d' ' -f1-3 /proc/loadavg)" 'BEGIN {
  split(l, f, " "); rps = ""; p50 = ""; p99 = "";
  for (i in f) { split(f[i], kv, "="); if (kv[1] == "rps") rps = kv[2]; if (kv[1] == "p50_us") p50 = kv[2]; if (kv[1] == "p99_us") p99 = kv[2] }
  printf "requests %d  req/s %.0f  p50 %s us  p99 %s us  non-2xx %d  node CPU %.2f s  CPU/request %.2f us (user %.2f)  (load %s)\n",
    r, rps, p50, p99, e, t / hz, t / hz * 1e6 / r, u / hz * 1e6 / r, load }'
