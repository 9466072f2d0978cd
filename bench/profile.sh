#!/usr/bin/env bash
# CPU profile of the proxied, token-checked GET under load, in the benchmark's split layout (wrk on CPU0,
# upstream nginx + gateway on CPU1, one gateway worker). Uses perf (software clock: works in VMs without PMU
# access) with DWARF unwinding, which needs no debug info: Rust binaries keep .eh_frame, and symbols come
# from the symbol table. ~1 min.
#
#   bench/profile.sh                     # knobs: PROF_DUR=8 CONNS=64 URLPATH=/ GW_BIN=... RESULTS_DIR=...
#   KEEP=1 bench/profile.sh              # also keep perf.data next to the report (large)
#   PROFILER=callgrind bench/profile.sh  # valgrind --tool=callgrind instead (exact instruction counts, ~50x slower)
#
# Writes <results>/<ts>-profile.txt: flat profile (self time by symbol), by shared object, and the
# inclusive (children) view, for the gateway process only.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BIN=${GW_BIN:-$HERE/../target/release/gateway}
PROF_DUR=${PROF_DUR:-8}; CONNS=${CONNS:-64}; URLPATH=${URLPATH:-/}; PROFILER=${PROFILER:-perf}
UP_PORT=${UP_PORT:-18280}; GW_PORT=${GW_PORT:-18290}
. "$HERE/lib.sh"   # RESULTS_DIR, start/stop helpers
bench_require "apt-get install nginx wrk curl" nginx wrk curl python3 taskset
case "$PROFILER" in
  perf) command -v perf >/dev/null || { echo "missing perf (apt-get install linux-perf)" >&2; exit 2; } ;;
  callgrind) command -v valgrind >/dev/null || { echo "missing valgrind (apt-get install valgrind)" >&2; exit 2; } ;;
  *) echo "PROFILER=perf|callgrind" >&2; exit 2 ;;
esac

bench_tmp gwprofile

head -c 48 /dev/urandom | base64 | tr -d '/+=\n' > "$TMP/jwt_secret"
TOK=$(python3 "$HERE/mkjwt.py" "$TMP/jwt_secret" valid)
sed -e "s#@TMP@#$TMP#g" -e "s#@UP_PORT@#$UP_PORT#g" "$HERE/conf/upstream.nginx.conf" > "$TMP/upstream.conf"
taskset -c 1 nginx -p "$TMP" -e "$TMP/upstream.error.log" -c "$TMP/upstream.conf" -g 'daemon off;' > "$TMP/upstream.log" 2>&1 &
PIDS+=("$!"); wait_port upstream "$UP_PORT" "$!"

export LISTEN_ADDR=127.0.0.1:$GW_PORT UPSTREAM_URL=http://127.0.0.1:$UP_PORT JWT_SECRET_FILE=$TMP/jwt_secret BENCH_THREADS=1
export GW_CONF_DIR=$TMP/gw GW_BIN=$BIN GW_METRICS_PORT=$((GW_PORT + 1))
if [ "$PROFILER" = perf ]; then
  taskset -c 1 "$HERE/start-gateway.sh" > "$TMP/gateway.log" 2>&1 &
else
  GW_WRAPPER="valgrind --tool=callgrind --callgrind-out-file=$TMP/callgrind.out --dump-instr=no" \
    taskset -c 1 "$HERE/start-gateway.sh" > "$TMP/gateway.log" 2>&1 &
fi
PIDS+=("$!"); GW=${PIDS[-1]}; wait_port gateway "$GW_PORT" "$GW" 200   # valgrind starts slowly
[ "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOK" "http://127.0.0.1:$GW_PORT$URLPATH")" = 200 ] \
  || { echo "!! gateway does not answer 200" >&2; tail "$TMP/gateway.log" >&2; exit 1; }

wrkrun() { taskset -c 0 wrk -t1 -c"$CONNS" -d"$1"s -s "$HERE/report.lua" -H "Authorization: Bearer $TOK" \
  "http://127.0.0.1:$GW_PORT$URLPATH" | grep '^RESULT' || true; }
mkdir -p "$RESULTS_DIR"; OUT="$RESULTS_DIR/$(date +%Y%m%d-%H%M%S)-profile-$PROFILER.txt"
if [ "$PROFILER" = perf ]; then
  wrkrun 2 > /dev/null   # warm the pools
  wrkrun $((PROF_DUR + 3)) > "$TMP/wrk.out" & w=$!
  sleep 1
  perf record -e cpu-clock -F 1999 --call-graph dwarf,16384 -p "$GW" -o "$TMP/perf.data" -- sleep "$PROF_DUR" \
    > "$TMP/perf.log" 2>&1 || { cat "$TMP/perf.log" >&2; exit 1; }
  wait "$w" || true
  {
    echo "# perf profile of the gateway: $CONNS connections, GET $URLPATH with a valid token, ${PROF_DUR}s, split layout"
    echo "# wrk: $(cat "$TMP/wrk.out")"
    rep() { perf report -i "$TMP/perf.data" --stdio "$@" 2>/dev/null | grep -v '^#' | grep -v '^$' \
        | sed -E 's/[[:space:]]+-[[:space:]]+-[[:space:]]*$//; s/[[:space:]]+$//' || true; }
    echo; echo "## by shared object (self)"
    rep --no-children --sort dso -g none | head -15
    echo; echo "## flat: self time by symbol (top 60)"
    rep --no-children --sort dso,symbol -g none --percent-limit 0.3 | head -60
    echo; echo "## inclusive: children time by symbol (top 80)"
    rep --children --sort symbol -g none --percent-limit 1 | head -80
    echo; echo "## callers of the top kernel entry points (self time, caller graph, top 120 lines)"
    rep --no-children --sort symbol -g caller,0.5,callee,function,percent --percent-limit 3 | head -120
  } > "$OUT"
  [ -n "${KEEP:-}" ] && cp "$TMP/perf.data" "${OUT%.txt}.perf.data"   # KEEP=1: keep perf.data for perf report
else
  wrkrun "$PROF_DUR" > "$TMP/wrk.out"
  kill -TERM "$GW"; for i in $(seq 100); do kill -0 "$GW" 2>/dev/null || break; sleep 0.2; done
  {
    echo "# callgrind profile of the gateway: $CONNS connections, GET $URLPATH with a valid token, ${PROF_DUR}s"
    echo "# wrk: $(cat "$TMP/wrk.out")"
    callgrind_annotate --inclusive=no "$TMP/callgrind.out" 2>/dev/null | head -80
    echo; echo "## inclusive"
    callgrind_annotate --inclusive=yes "$TMP/callgrind.out" 2>/dev/null | head -100
  } > "$OUT"
fi
cat "$OUT"
echo "profile: $OUT"
