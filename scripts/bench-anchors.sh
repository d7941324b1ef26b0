#!/usr/bin/env bash
# Puts a beehive node into the caching-proxy anchor table (nginx static file, nginx
# proxy_cache, Varnish) of the sibling bench tool, in the same run, so its numbers read as
# ratios. Builds the release binary first unless --no-build.
#
#   scripts/bench-anchors.sh --ring                            # the whole table: pinned and
#                      unpinned, zipf/uniform 1 KiB and 100 KiB, local hits and one hop (~25 min)
#   scripts/bench-anchors.sh --runs 3 --modes pinned --dists zipf --only "static-1k nginx"
#   scripts/bench-anchors.sh --ring --only "beehive beehive-ring"   # beehive alone: local, 1 hop
#   ANCHORS=/path/to/anchors.sh scripts/bench-anchors.sh ...
#
# Options of this script (everything else goes to anchors.sh unchanged):
#   --no-build    use the binary as it is        --ring   also measure `beehive-ring`
#   --out DIR     results directory (default target/bench/<UTC timestamp>)
#   --baseline BIN  also measure another beehive binary as `beehive-base` (one node), so a
#                 change is judged before/after in the same run
# Targets: `beehive` is one node, so every request after the warm-up is a local hit.
# `beehive-ring` is two nodes without replication (`--mode chord`); wrk talks to the one that
# joined, so the objects homed at the other (about half) are served over one hop, a body
# fetch over the RPC transport, on every request. With --only, name the beehive targets too.
# Environment: ANCHORS (the anchors.sh to run; default ../shared/bench/anchors.sh beside the
# repository), BEEHIVE_BIN (default target/release/beehive), BEEHIVE_PORT (default 8080; the
# ring's second node and the RPC/admin ports use the next ones).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
anchors=${ANCHORS:-$repo/../shared/bench/anchors.sh}
bin=${BEEHIVE_BIN:-$repo/target/release/beehive}
port=${BEEHIVE_PORT:-8080}

build=1 ring=0 out="" base="" pass=()
while [[ $# -gt 0 ]]; do
  case $1 in
    --no-build) build=0 ;;
    --ring) ring=1 ;;
    --baseline) base=$2; shift ;;
    --out) out=$2; shift ;;
    --out=*) out=${1#--out=} ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) pass+=("$1") ;;
  esac
  shift
done

if [[ ! -x $anchors ]]; then
  echo "bench-anchors: no anchors.sh at $anchors; set ANCHORS=/path/to/bench/anchors.sh" >&2
  exit 2
fi
if [[ $build == 1 ]]; then
  (cd "$repo" && cargo build --release --locked --bin beehive >&2)
fi
if [[ ! -x $bin ]]; then
  echo "bench-anchors: no beehive binary at $bin (build it, or set BEEHIVE_BIN)" >&2
  exit 2
fi
out=${out:-$repo/target/bench/$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$out"

# One node. CMD runs under `bash -c` in the target's process group (anchors.sh stops the
# group), with BENCH_RUN, BENCH_ORIGIN and BENCH_WORKERS set; tokio gets as many workers
# as the server side has cores.
# A node from the previous mode may still be leaving its ring (it hands its objects off for
# up to its shutdown bound) and hold its ports, so each node first waits (10 s at most) until
# nothing listens on them.
node() { # node <target> <http port> <rpc port> <admin port> [extra flags...]
  local name=$1 http=$2 rpc=$3 admin=$4; shift 4
  printf 'for p in %s %s %s; do for i in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null || break; sleep 0.1; done; done; ' \
    "$http" "$rpc" "$admin"
  printf 'exec env TOKIO_WORKER_THREADS=$BENCH_WORKERS %q node --http 127.0.0.1:%s --rpc 127.0.0.1:%s --admin 127.0.0.1:%s --secret-file "$BENCH_RUN/secret-%s" --origin site=http://$BENCH_ORIGIN --rate-per-sec 1000000 %s' \
    "$bin" "$http" "$rpc" "$admin" "$name" "$*"
}
# Each target its own cluster secret (targets start one after another in one scratch dir).
secret() { printf 'head -c 32 /dev/urandom | base64 > "$BENCH_RUN/secret-%s"' "$1"; }
host=site.beehive.localhost

targets=(
  --target "beehive=http://127.0.0.1:$port" --host "beehive=$host:$port"
  --start "beehive=$(secret beehive); $(node beehive "$port" $((port + 10)) $((port + 11)))"
)
if [[ $ring == 1 ]]; then
  p2=$((port + 2))
  first=$(node beehive-ring $((port + 1)) $((port + 20)) $((port + 21)) --mode chord)
  second=$(node beehive-ring "$p2" $((port + 22)) $((port + 23)) --mode chord --join 127.0.0.1:$((port + 20)))
  # The second node joins once the first is up; both stay in the target's process group.
  targets+=(
    --target "beehive-ring=http://127.0.0.1:$p2" --host "beehive-ring=$host:$p2"
    --start "beehive-ring=$(secret beehive-ring); $first & sleep 1; $second & wait"
  )
fi

if [[ -n $base ]]; then
  [[ -x $base ]] || { echo "bench-anchors: no baseline binary at $base" >&2; exit 2; }
  pb=$((port + 3))
  targets+=(
    --target "beehive-base=http://127.0.0.1:$pb" --host "beehive-base=$host:$pb"
    --start "beehive-base=$(secret beehive-base); $(bin=$base node beehive-base "$pb" $((port + 30)) $((port + 31)))"
  )
fi

echo "bench-anchors: $anchors -> $out" >&2
exec "$anchors" --out "$out" "${targets[@]}" "${pass[@]}"
