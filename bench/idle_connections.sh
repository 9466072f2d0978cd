#!/usr/bin/env bash
# Memory per idle keep-alive connection: COUNT (10,000) connections over loopback, each having made one
# request, held open and idle; RSS of the server before and after, then one more request on every connection
# (all must still be answered) and RSS after that burst. Not CPU-sensitive: fine on a loaded machine.
#
#   bench/idle_connections.sh                          # the release gateway (bench/start-gateway.sh config)
#   TARGETS="gateway nginx-plain floor" bench/idle_connections.sh
#     gateway      target/release/gateway (GW_BIN), max_connections, header_read_timeout and idle_timeout
#                  raised by environment so 10,000 idle connections stay open for the measurement
#     nginx-plain  the shared harness's nginx-plain configuration (worker_connections raised to 30000)
#     floor        shared/bench/examples/hyper-floor (FLOOR_VERIFY=1)
#   PRELOAD=/usr/lib/x86_64-linux-gnu/libmimalloc.so.2   # the gateway with another malloc (LD_PRELOAD)
#   knobs: COUNT=10000 GW_BIN=... FLOOR_BIN=/tmp/hyper-floor/release/hyper-floor SHARED_BENCH=/work/shared/bench
#
# Prints and writes to <results>/<ts>-idle.txt one line per target:
#   IDLE target=… conns=… before_kib=… open_kib=… per_conn_kib=… answered=… errors=… after_burst_kib=…
# The client opens connections at most 256 at a time, so the server also holds only a few upstream
# connections: the figure is the cost of an idle client connection.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
COUNT=${COUNT:-10000}
TARGETS=${TARGETS:-gateway}
SHARED_BENCH=${SHARED_BENCH:-$HERE/../../shared/bench}
GW_BIN=$(realpath "${GW_BIN:-$HERE/../target/release/gateway}")
FLOOR_BIN=${FLOOR_BIN:-/tmp/hyper-floor/release/hyper-floor}
UP_PORT=${UP_PORT:-18480}; PORT=${PORT:-18490}
. "$HERE/lib.sh"   # also raises the descriptor limit to the hard limit
bench_require "apt-get install nginx python3" nginx python3
need=$((COUNT + 1000))
[ "$(ulimit -n)" -ge "$need" ] || { echo "!! ulimit -n is $(ulimit -n); $need needed (raise the hard limit)" >&2; exit 2; }
bench_tmp gwidle

head -c 48 /dev/urandom | base64 | tr -d '/+=\n' > "$TMP/jwt_secret"
python3 "$HERE/mkjwt.py" "$TMP/jwt_secret" valid > "$TMP/token"
sed -e "s#@TMP@#$TMP#g" -e "s#@UP_PORT@#$UP_PORT#g" -e 's#worker_connections [0-9]*#worker_connections 30000#' \
  "$SHARED_BENCH/conf/upstream.nginx.conf" > "$TMP/upstream.conf"
start upstream "$UP_PORT" "" nginx -p "$TMP" -e "$TMP/upstream.error.log" -c "$TMP/upstream.conf" -g 'daemon off;'

export LISTEN_ADDR=127.0.0.1:$PORT UPSTREAM_URL=http://127.0.0.1:$UP_PORT UPSTREAM_ADDR=127.0.0.1:$UP_PORT
export JWT_SECRET_FILE=$TMP/jwt_secret JWT_SECRET=$(cat "$TMP/jwt_secret") BENCH_THREADS=1
mkdir -p "$RESULTS_DIR"; OUT="$RESULTS_DIR/$(date +%Y%m%d-%H%M%S)-idle.txt"
echo "# $COUNT idle keep-alive connections per target; gateway binary $GW_BIN${PRELOAD:+ with LD_PRELOAD=$PRELOAD} ($(cd "$HERE/.." && git log -1 --format='%h %s' 2>/dev/null || echo '?'))" > "$OUT"
for t in $TARGETS; do
  case "$t" in
    gateway)
      cmd=(env ${PRELOAD:+LD_PRELOAD=$PRELOAD} GW_BIN="$GW_BIN" GW_CONF_DIR="$TMP/gwconf" GATEWAY_SERVER__MAX_CONNECTIONS=$((COUNT + 1000))
           GATEWAY_SERVER__HEADER_READ_TIMEOUT=600s GATEWAY_SERVER__IDLE_TIMEOUT=600s "$HERE/start-gateway.sh") ;;
    nginx-plain)
      sed -e "s#@TMP@#$TMP#g" -e "s#@UP_PORT@#$UP_PORT#g" -e "s#@THREADS@#1#g" -e "s#@PORT@#$PORT#g" \
          -e 's#worker_connections [0-9]*;#worker_connections 30000;#' -e 's#^events#worker_rlimit_nofile 40000;\nevents#' \
          "$SHARED_BENCH/conf/nginx-plain.conf" > "$TMP/nginx-plain.conf"
      cmd=(nginx -p "$TMP" -e "$TMP/nginx-plain.error.log" -c "$TMP/nginx-plain.conf" -g 'daemon off;') ;;
    floor)
      [ -x "$FLOOR_BIN" ] || { echo "!! $FLOOR_BIN missing: build it per $SHARED_BENCH/examples/hyper-floor/README.md" >&2; exit 2; }
      cmd=(env FLOOR_VERIFY=1 "$FLOOR_BIN") ;;
    *) echo "unknown target $t" >&2; exit 2 ;;
  esac
  start "$t" "$PORT" "" "${cmd[@]}"
  pid=${PIDS[-1]}
  python3 "$HERE/fixed_load.py" "127.0.0.1:$PORT" 2000 64 "$TMP/token" > /dev/null   # warm: pools, lazy state
  sleep 1
  before=$(rss_kib "$pid")
  coproc CLIENT { exec python3 "$HERE/idle_client.py" "127.0.0.1:$PORT" "$COUNT" "$TMP/token" 2>&1; }
  read -r word opened open_failed <&"${CLIENT[0]}"
  [ "$word" = OPEN ] || { echo "!! client: $word $opened $open_failed" >&2; exit 1; }
  sleep 2
  open=$(rss_kib "$pid")
  echo >&"${CLIENT[1]}"
  read -r word answered errors <&"${CLIENT[0]}"
  [ "$word" = ANSWERED ] || { echo "!! client: $word $answered $errors" >&2; exit 1; }
  sleep 1
  burst=$(rss_kib "$pid")
  echo >&"${CLIENT[1]}"; wait "$CLIENT_PID" 2>/dev/null || true
  line="IDLE target=$t conns=$opened open_failed=$open_failed before_kib=$before open_kib=$open per_conn_kib=$(awk -v a="$before" -v b="$open" -v n="$opened" 'BEGIN{printf "%.1f", (b-a)/n}') answered=$answered errors=$errors after_burst_kib=$burst"
  echo "$line"; echo "$line" >> "$OUT"
  stop_pid "$pid"; unset 'PIDS[-1]'
done
echo "idle: $OUT"
