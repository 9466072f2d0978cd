#!/usr/bin/env bash
# User-space instructions per proxied request, counted by callgrind: repeatable on a loaded machine where
# wall-clock benchmarks are not. Each target runs under `valgrind --tool=callgrind` behind the shared
# harness's upstream (nginx, fixed 11-byte JSON); bench/fixed_load.py sends WARM requests, the counters are
# zeroed, then exactly N requests (CONNS keep-alive connections, valid HS256 token) are sent and the counters
# dumped: instructions / N is the figure. Kernel work (TCP on loopback, about 60 % of a request's CPU in perf
# profiles) is not counted: callgrind sees user space only.
#
#   bench/callgrind.sh                    # targets: gateway (the shared harness's example config) and floor
#   TARGETS="gateway gateway-bench floor" bench/callgrind.sh
#     gateway        the release gateway with shared/bench/examples/gateway-cmd.sh's configuration
#     gateway-bench  the release gateway with bench/start-gateway.sh's configuration (login off, route "app")
#     gateway-<f>    the harness's configuration plus feature <f> (gateway-cmd-feature.sh: assertion, pool, ...)
#     floor          shared/bench/examples/hyper-floor (FLOOR_VERIFY=1), built per its README
#   TOOL=strace bench/callgrind.sh     # instead: syscalls per request (strace -c -f attached after the warm-up)
#   CACHE_SIM=1                         # callgrind also simulates caches (I1/D1/LL misses per request)
#   PRELOAD=/usr/lib/x86_64-linux-gnu/libmimalloc.so.2   # run the targets with another malloc (LD_PRELOAD)
#   knobs: N=5000 CONNS=64 WARM=500 GW_BIN=target/release/gateway FLOOR_BIN=/tmp/hyper-floor/release/hyper-floor
#          SHARED_BENCH=/work/shared/bench  TOP=40 (functions listed per target)
#
# Writes <results>/<ts>-callgrind.txt: one `CALLGRIND target=… requests=… instructions=… per_request=…` line per
# target, then each target's top functions (self, then inclusive).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
N=${N:-5000}; CONNS=${CONNS:-64}; WARM=${WARM:-500}; TOP=${TOP:-40}
TARGETS=${TARGETS:-"gateway floor"}
SHARED_BENCH=${SHARED_BENCH:-$HERE/../../shared/bench}
GW_BIN=$(realpath "${GW_BIN:-$HERE/../target/release/gateway}")
FLOOR_BIN=${FLOOR_BIN:-/tmp/hyper-floor/release/hyper-floor}
UP_PORT=${UP_PORT:-18380}; GW_PORT=${GW_PORT:-18390}
. "$HERE/lib.sh"
bench_require "apt-get install nginx valgrind python3" nginx valgrind callgrind_control callgrind_annotate python3
bench_tmp gwcallgrind

head -c 48 /dev/urandom | base64 | tr -d '/+=\n' > "$TMP/jwt_secret"
python3 "$HERE/mkjwt.py" "$TMP/jwt_secret" valid > "$TMP/token"
sed -e "s#@TMP@#$TMP#g" -e "s#@UP_PORT@#$UP_PORT#g" "$SHARED_BENCH/conf/upstream.nginx.conf" > "$TMP/upstream.conf"
start upstream "$UP_PORT" "" nginx -p "$TMP" -e "$TMP/upstream.error.log" -c "$TMP/upstream.conf" -g 'daemon off;'

export LISTEN_ADDR=127.0.0.1:$GW_PORT UPSTREAM_URL=http://127.0.0.1:$UP_PORT UPSTREAM_ADDR=127.0.0.1:$UP_PORT
export JWT_SECRET_FILE=$TMP/jwt_secret JWT_SECRET=$(cat "$TMP/jwt_secret") BENCH_THREADS=1
TOOL=${TOOL:-callgrind}
[ "$TOOL" = strace ] && bench_require "apt-get install strace" strace
VG="valgrind --tool=callgrind --cache-sim=$([ -n "${CACHE_SIM:-}" ] && echo yes || echo no) --dump-instr=no --vgdb=yes --vgdb-prefix=$TMP/vgdb --callgrind-out-file=$TMP/cg.%p.out"
# A wrapper in place of the binary, so the harness's own start-up scripts run the target under valgrind.
[ "$TOOL" = strace ] && VG=""
PRE=${PRELOAD:+env LD_PRELOAD=$PRELOAD}
printf '#!/bin/sh\nexec %s %s %s "$@"\n' "$PRE" "$VG" "$GW_BIN" > "$TMP/gw-under-valgrind"
printf '#!/bin/sh\nFLOOR_VERIFY=1 exec %s %s %s "$@"\n' "$PRE" "$VG" "$FLOOR_BIN" > "$TMP/floor-under-valgrind"
chmod +x "$TMP/gw-under-valgrind" "$TMP/floor-under-valgrind"

mkdir -p "$RESULTS_DIR"; OUT="$RESULTS_DIR/$(date +%Y%m%d-%H%M%S)-callgrind.txt"
echo "# callgrind: $N requests after $WARM warm-up, $CONNS keep-alive connections, GET / with a valid HS256 token" > "$OUT"
echo "# gateway binary: $GW_BIN${PRELOAD:+ with LD_PRELOAD=$PRELOAD} ($(cd "$HERE/.." && git log -1 --format='%h %s' 2>/dev/null || echo '?'))" >> "$OUT"
DETAILS=$TMP/details; : > "$DETAILS"
for t in $TARGETS; do
  case "$t" in
    gateway) cmd=(env BENCH_GATEWAY_BIN="$TMP/gw-under-valgrind" bash "$SHARED_BENCH/examples/gateway-cmd.sh") ;;
    gateway-bench) cmd=(env GW_BIN="$TMP/gw-under-valgrind" GW_CONF_DIR="$TMP/gwconf" "$HERE/start-gateway.sh") ;;
    gateway-*) cmd=(env BENCH_GATEWAY_BIN="$TMP/gw-under-valgrind" BENCH_FEATURE="${t#gateway-}" bash "$HERE/gateway-cmd-feature.sh") ;;
    floor)
      [ -x "$FLOOR_BIN" ] || { echo "!! $FLOOR_BIN missing: build it per $SHARED_BENCH/examples/hyper-floor/README.md" >&2; exit 2; }
      cmd=("$TMP/floor-under-valgrind") ;;
    *) echo "unknown target $t" >&2; exit 2 ;;
  esac
  port_busy "$GW_PORT" && { echo "!! port $GW_PORT already in use" >&2; exit 1; }
  "${cmd[@]}" > "$TMP/$t.log" 2>&1 &   # exec all the way down: $! is valgrind's (the target's) PID
  pid=$!; PIDS+=("$pid"); NAMES+=("$t")
  wait_port "$t" "$GW_PORT" "$pid" 600   # valgrind starts slowly
  python3 "$HERE/fixed_load.py" "127.0.0.1:$GW_PORT" "$WARM" "$CONNS" "$TMP/token" > /dev/null
  if [ "$TOOL" = strace ]; then
    v0=$(awk '/^voluntary_ctxt_switches/{print $2}' /proc/"$pid"/status)
    strace -f -c -o "$TMP/strace.$t" -p "$pid" 2>/dev/null & st=$!
    sleep 1
    python3 "$HERE/fixed_load.py" "127.0.0.1:$GW_PORT" "$N" "$CONNS" "$TMP/token" > /dev/null
    kill -INT "$st"; wait "$st" || true
    v1=$(awk '/^voluntary_ctxt_switches/{print $2}' /proc/"$pid"/status)
    calls=$(awk '$NF=="total"{print $(NF-2)}' "$TMP/strace.$t")
    line="STRACE target=$t requests=$N syscalls=$calls per_request=$(awk -v c="$calls" -v n="$N" 'BEGIN{printf "%.2f", c/n}') main_thread_voluntary_switches_per_request=$(awk -v a="$v0" -v b="$v1" -v n="$N" 'BEGIN{printf "%.2f", (b-a)/n}')"
    echo "$line"; echo "$line" >> "$OUT"
    { echo; echo "## $t: syscalls per request"
      awk -v n="$N" '$NF!="total" && $(NF-1) ~ /^[0-9]+$|^[a-z_0-9]+$/ && NF>=5 {c=($NF ~ /^[a-z]/)?$(NF-2):0; if ($(NF-2) ~ /^[0-9]+$/) printf "%-20s %8.3f\n", $NF, $(NF-2)/n}' "$TMP/strace.$t" | sort -k2 -rn; } >> "$DETAILS"
    stop_pid "$pid"; unset 'PIDS[-1]'
    continue
  fi
  callgrind_control --vgdb-prefix="$TMP/vgdb" -z "$pid" > /dev/null 2>&1
  python3 "$HERE/fixed_load.py" "127.0.0.1:$GW_PORT" "$N" "$CONNS" "$TMP/token" > /dev/null
  callgrind_control --vgdb-prefix="$TMP/vgdb" -d "$pid" > /dev/null 2>&1
  for i in $(seq 100); do ls "$TMP"/cg."$pid".out.* >/dev/null 2>&1 && break; sleep 0.1; done
  dump=$(ls "$TMP"/cg."$pid".out.* | sort | head -1 || true)
  read -r -a ev <<< "$(awk '/^events:/{$1=""; print; exit}' "$dump")"
  read -r -a tot <<< "$(awk '/^(summary|totals):/{$1=""; print; exit}' "$dump")"
  total=${tot[0]}
  line="CALLGRIND target=$t requests=$N instructions=$total per_request=$((total / N))"
  for i in "${!ev[@]}"; do [ "$i" -gt 0 ] && line="$line ${ev[$i]}_per_request=$(awk -v c="${tot[$i]:-0}" -v n="$N" 'BEGIN{printf "%.1f", c/n}')"; done
  echo "$line"; echo "$line" >> "$OUT"
  { echo; echo "## $t: self"; callgrind_annotate --threshold=100 --auto=no "$dump" 2>/dev/null | sed -n '/file:function/,$p' | grep -v -e '__libc_start_main' -e 'below main' -e 'lang_start' -e 'rust_begin_short_backtrace' -e '^ *[0-9,]* (100.0%)' | head -$((TOP + 2)) | cut -c1-220 || true
    echo; echo "## $t: inclusive"; callgrind_annotate --threshold=100 --auto=no --inclusive=yes "$dump" 2>/dev/null | sed -n '/file:function/,$p' | grep -v '(100.0%)' | head -$((TOP + 2)) | cut -c1-220 || true; } >> "$DETAILS"
  [ -n "${KEEP:-}" ] && cp "$dump" "${OUT%.txt}.$t.callgrind.out"
  stop_pid "$pid"; unset 'PIDS[-1]'
done
cat "$DETAILS" >> "$OUT"
echo "callgrind: $OUT"
