#!/usr/bin/env bash
# Builds the `beehive` release binary statically linked (glibc, crt-static: no musl target is
# needed) and prints its path on stdout. The container image and the test scripts use it.
#
#   scripts/build-static.sh            # build, print the path
#   CARGO_TARGET_DIR=/tmp/t scripts/build-static.sh
set -euo pipefail
cd "$(dirname "$0")/.."
triple=x86_64-unknown-linux-gnu
target_dir=${CARGO_TARGET_DIR:-target}
RUSTFLAGS="-C target-feature=+crt-static" \
  cargo build --release --locked --target "$triple" --bin beehive -j "${BUILD_JOBS:-2}" >&2
bin="$target_dir/$triple/release/beehive"
# A static binary has no program interpreter; refuse to hand out anything else.
if command -v file >/dev/null 2>&1 && ! file "$bin" | grep -Eq 'static(-pie)? linked|statically linked'; then
  echo "build-static: $bin is not statically linked: $(file "$bin")" >&2
  exit 1
fi
echo "$bin"
