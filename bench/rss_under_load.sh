#!/usr/bin/env bash
# Peak memory under load, and what holds it: the shared harness's 1,000-connection pass on its own, with the
# number of upstream connections the proxy opens. The gateway runs with the harness's own configuration
# (shared/bench/examples/gateway-cmd.sh), pinned as in its split layout (wrk on CPU0, upstream and proxy on
# CPU1): WARM seconds at 64 connections, then DUR seconds at CONNS connections, RSS sampled every 0.5 s.
#
#   bench/rss_under_load.sh                           # the release gateway
#   TARGETS="gateway floor" bench/rss_under_load.sh   # floor = shared/bench/examples/hyper-floor (FLOOR_VERIFY=1)
#   WRAP="heaptrack -o /tmp/gw-heap" bench/rss_under_load.sh   # the gateway under heaptrack, then:
#     heaptrack_print -f /tmp/gw-heap.zst --print-peaks 1 --print-allocators 0 --print-leaks 0 --print-temporary 0
#   knobs: CONNS=1000 DUR=6 WARM=20 GW_BIN=... FLOOR_BIN=/tmp/hyper-floor/release/hyper-floor
#
# Prints and writes to <results>/<ts>-rss.txt one line per target:
#   RSS target=… idle_kib=… warm_kib=… peak_kib=… upstream_conns=… req_s=…
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CONNS=${CONNS:-1000}; DUR=${DUR:-6}; WARM=${WARM:-20}
TARGETS=${TARGETS:-gateway}
SHARED_BENCH=${SHARED_BENCH:-$HERE/../../shared/bench}
GW_BIN=$(realpath "${GW_BIN:-$HERE/../target/release/gateway}")
FLOOR_BIN=${FLOOR_BIN:-/tmp/hyper-floor/release/hyper-floor}
UP_PORT=${UP_PORT:-18580}; PORT=${PORT:-18590}
. "$HERE/lib.sh"
bench_require "apt-get install nginx wrk python3" nginx wrk python3 taskset ss
bench_tmp gwrss

head -c 48 /dev/urandom | base64 | tr -d '/+=\n' > "$TMP/jwt_secret"
TOK=$(python3 "$SHARED_BENCH/mkjwt.py" "$TMP/jwt_secret" valid)
sed -e "s#@TMP@#$TMP#g" -e "s#@UP_PORT@#$UP_PORT#g" "$SHARED_BENCH/conf/upstream.nginx.conf" > "$TMP/upstream.conf"
start upstream "$UP_PORT" 1 nginx -p "$TMP" -e "$TMP/upstream.error.log" -c "$TMP/upstream.conf" -g 'daemon off;'

upstream_conns() { ss -tnH state established "( dport = :$UP_PORT )" | wc -l; }

export LISTEN_ADDR=127.0.0.1:$PORT UPSTREAM_URL=http://127.0.0.1:$UP_PORT UPSTREAM_ADDR=127.0.0.1:$UP_PORT
export JWT_SECRET_FILE=$TMP/jwt_secret BENCH_THREADS=1 BENCH_METRICS_PORT=$((PORT + 9))
# The wrapper stands in for the binary, so the harness's start-up script runs the gateway under WRAP.
printf '#!/bin/sh\nexec %s %s "$@"\n' "${WRAP:-}" "$GW_BIN" > "$TMP/gw"
chmod +x "$TMP/gw"
mkdir -p "$RESULTS_DIR"; OUT="$RESULTS_DIR/$(date +%Y%m%d-%H%M%S)-rss.txt"
echo "# peak RSS at $CONNS connections after ${WARM}s at 64; gateway binary $GW_BIN ($(cd "$HERE/.." && git log -1 --format='%h %s' 2>/dev/null || echo '?'))" > "$OUT"
for t in $TARGETS; do
  case "$t" in
    gateway) cmd=(env BENCH_GATEWAY_BIN="$TMP/gw" bash "$SHARED_BENCH/examples/gateway-cmd.sh") ;;
    floor)
      [ -x "$FLOOR_BIN" ] || { echo "!! $FLOOR_BIN missing: build it per $SHARED_BENCH/examples/hyper-floor/README.md" >&2; exit 2; }
      cmd=(env FLOOR_VERIFY=1 "$FLOOR_BIN") ;;
    *) echo "unknown target $t" >&2; exit 2 ;;
  esac
  start "$t" "$PORT" 1 "${cmd[@]}"
  pid=${PIDS[-1]}
  idle=$(rss_kib "$pid")
  taskset -c 0 wrk -t1 -c64 -d"${WARM}s" -H "Authorization: Bearer $TOK" "http://127.0.0.1:$PORT/" > /dev/null
  warm=$(rss_kib "$pid")
  taskset -c 0 wrk -t1 -c"$CONNS" -d"${DUR}s" --timeout 5s -H "Authorization: Bearer $TOK" \
    "http://127.0.0.1:$PORT/" > "$TMP/wrk.out" &
  w=$!
  peak=0; ups=0
  while kill -0 "$w" 2>/dev/null; do
    r=$(rss_kib "$pid"); [ "$r" -gt "$peak" ] && peak=$r
    u=$(upstream_conns); [ "$u" -gt "$ups" ] && ups=$u
    sleep 0.5
  done
  wait "$w"
  rps=$(awk '/^Requests\/sec/{printf "%.0f", $2}' "$TMP/wrk.out")
  line="RSS target=$t idle_kib=$idle warm_kib=$warm peak_kib=$peak upstream_conns=$ups req_s=${rps:-0}"
  echo "$line" | tee -a "$OUT"
  stop_pid "$pid"; unset 'PIDS[-1]' 'NAMES[-1]'
done
echo "rss: $OUT"
