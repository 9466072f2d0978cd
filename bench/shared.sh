#!/usr/bin/env bash
# The shared harness (shared/bench/run.sh: nginx-plain, HAProxy plain and with jwt_verify, and the gateway,
# interleaved on one upstream) with this repository's release gateway plugged in, in one command; then the
# table of docs/performance.md regenerated from its output (bench/perf_table.py).
#
#   bench/shared.sh                 # builds target/release/gateway if missing, runs the harness, updates the doc
#   FLOOR=1 bench/shared.sh         # then a second harness run with the hyper floor as the gateway target
#   CONFIG=bench bench/shared.sh    # the gateway configured by bench/start-gateway.sh instead of the harness's
#                                   # own example (shared/bench/examples/gateway-cmd.sh, the issue's setup)
#   CONFIG=feature BENCH_FEATURE=assertion bench/shared.sh   # the harness's config plus one feature
#                                   # (gateway-cmd-feature.sh: shared, assertion, pool, pool-user)
#   knobs: SHARED_BENCH=/work/shared/bench GW_BIN=... FLOOR_BIN=/tmp/hyper-floor/release/hyper-floor
#          UPDATE_DOC=0 (only print the table)  SKIP_BUILD=1; anything run.sh reads (ROUNDS, LAYOUT, MEM, ...)
#
# Raw files go to bench/results/shared/ (run.sh's RESULTS_DIR). Takes ~4 min per harness run; do not run it
# while other work loads the machine (the figures are CPU time and throughput).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
SHARED_BENCH=${SHARED_BENCH:-$ROOT/../shared/bench}
GW_BIN=${GW_BIN:-$ROOT/target/release/gateway}
FLOOR_BIN=${FLOOR_BIN:-/tmp/hyper-floor/release/hyper-floor}
CONFIG=${CONFIG:-shared}
export RESULTS_DIR=${RESULTS_DIR:-$HERE/results/shared}
[ -x "$SHARED_BENCH/run.sh" ] || { echo "!! no harness at $SHARED_BENCH (set SHARED_BENCH)" >&2; exit 2; }
if [ ! -x "$GW_BIN" ] && [ -z "${SKIP_BUILD:-}" ]; then (cd "$ROOT" && cargo build --release); fi
[ -x "$GW_BIN" ] || { echo "!! $GW_BIN missing" >&2; exit 2; }
GW_BIN=$(realpath "$GW_BIN")
mkdir -p "$RESULTS_DIR"

newest_raw() { ls -t "$RESULTS_DIR"/*.raw 2>/dev/null | head -1 || true; }

case "$CONFIG" in
  shared) export BENCH_GATEWAY_BIN=$GW_BIN; cmd="$SHARED_BENCH/examples/gateway-cmd.sh" ;;
  bench)  export GW_BIN; cmd="$HERE/start-gateway.sh" ;;
  feature) export BENCH_GATEWAY_BIN=$GW_BIN BENCH_FEATURE=${BENCH_FEATURE:?CONFIG=feature needs BENCH_FEATURE}
           cmd="$HERE/gateway-cmd-feature.sh" ;;
  *) echo "CONFIG=shared|bench|feature" >&2; exit 2 ;;
esac
before=$(newest_raw)
GATEWAY_CMD="$cmd" GATEWAY_PORT=${GATEWAY_PORT:-18090} "$SHARED_BENCH/run.sh"
raw=$(newest_raw)
[ -n "$raw" ] && [ "$raw" != "$before" ] || { echo "!! the harness wrote no raw file" >&2; exit 1; }

floor_raw=""
if [ -n "${FLOOR:-}" ]; then
  [ -x "$FLOOR_BIN" ] || { echo "!! $FLOOR_BIN missing: build it per $SHARED_BENCH/examples/hyper-floor/README.md" >&2; exit 2; }
  printf '#!/bin/sh\nFLOOR_VERIFY=1 exec %s\n' "$FLOOR_BIN" > "$RESULTS_DIR/floor-cmd.sh"; chmod +x "$RESULTS_DIR/floor-cmd.sh"
  GATEWAY_CMD="$RESULTS_DIR/floor-cmd.sh" GATEWAY_PORT=${GATEWAY_PORT:-18090} "$SHARED_BENCH/run.sh"
  floor_raw=$(newest_raw)
fi

args=("$raw"); [ -n "$floor_raw" ] && args+=(--floor "$floor_raw")
[ "${UPDATE_DOC:-1}" = 1 ] && args+=(--update "$ROOT/docs/performance.md")
python3 "$HERE/perf_table.py" "${args[@]}"
echo "raw: $raw${floor_raw:+ and $floor_raw}"
