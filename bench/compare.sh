#!/usr/bin/env bash
# Loopback HTTP reverse-proxy benchmark: direct upstream vs nginx-plain vs haproxy (plain / HS256-JWT)
# vs the gateway (token-protected route) and the same gateway on a public route, measured in ONE run,
# interleaved, reported as ratios. Adapted from shared/bench/run.sh (same method, same peer configs); the
# changes are marked "bench/:". Normally started by bench/run.sh; see docs/performance.md.
#
#   bench/compare.sh                           # gateway = bench/start-gateway.sh (target/release/gateway)
#   GATEWAY_CMD='...' bench/compare.sh         # another gateway command
#
# The gateway command is run via `bash -c "exec $GATEWAY_CMD"`, pinned like the other proxies, with
# these variables exported so it can be configured to match the peers:
#   UPSTREAM_URL=http://127.0.0.1:$UP_PORT  UPSTREAM_ADDR=127.0.0.1:$UP_PORT
#   LISTEN_ADDR=127.0.0.1:$GATEWAY_PORT    GATEWAY_PORT
#   JWT_SECRET (string) / JWT_SECRET_FILE (path; HS256 key = file content, trailing newline stripped)
#   BENCH_THREADS (worker threads the peers use; tokio sees the taskset mask anyway)
# It must return 200 for a valid Bearer HS256 token (claims sub,name,iat,exp) and 401 for missing,
# expired, bad-signature, alg=none and malformed tokens (checked before measuring; CHECK_STRICT=0 to warn only).
#
# Knobs (env): LAYOUT=split|proxy-alone|none (default split)  DUR=5 ROUNDS=6 MAX_ROUNDS=9 MIN_CLEAN=3
#   CONNS=64 WRK_THREADS=1
#   WARM=2 (s, per target, once)  MEM=1 MEM_CONNS=1000 MEM_DUR=6  TARGETS="direct nginx-plain haproxy-plain haproxy-jwt"
#   JWT_SECRET_FILE (default: random secret in the temp dir)  RESULTS_DIR (default ./results)
#   UP_PORT=18080 NGINX_PORT=18081 HAP_PLAIN_PORT=18082 HAP_JWT_PORT=18083 GATEWAY_PORT=18090
# Layouts (2 CPUs): split       = wrk on CPU0 | upstream + proxy on CPU1   (proxy threads=1)
#                   proxy-alone = wrk + upstream on CPU0 | proxy alone on CPU1 (proxy threads=1)
#                   none        = no pinning, proxy threads=2 (PROXY_THREADS overrides)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LAYOUT=${LAYOUT:-split}
DUR=${DUR:-5}; ROUNDS=${ROUNDS:-6}; MAX_ROUNDS=${MAX_ROUNDS:-9}; MIN_CLEAN=${MIN_CLEAN:-3}; CONNS=${CONNS:-64}; WRK_THREADS=${WRK_THREADS:-1}; WARM=${WARM:-2}
MEM=${MEM:-1}; MEM_CONNS=${MEM_CONNS:-1000}; MEM_DUR=${MEM_DUR:-6}
UP_PORT=${UP_PORT:-18080}; NGINX_PORT=${NGINX_PORT:-18081}
HAP_PLAIN_PORT=${HAP_PLAIN_PORT:-18082}; HAP_JWT_PORT=${HAP_JWT_PORT:-18083}; GATEWAY_PORT=${GATEWAY_PORT:-18090}
TARGETS=${TARGETS:-"direct nginx-plain haproxy-plain haproxy-jwt"}
CHECK_STRICT=${CHECK_STRICT:-1}
# bench/: the gateway is always measured, twice: "gateway" on / (token verified, like haproxy-jwt) and
# "gateway-public" on /public/ (same process, same headers, no verification) to price the token check.
GATEWAY_CMD=${GATEWAY_CMD:-$HERE/start-gateway.sh}
[ -n "$GATEWAY_CMD" ] && TARGETS="$TARGETS gateway gateway-public"
MEM_BIG_CONNS=${MEM_BIG_CONNS:-10000}   # bench/: extra memory pass, gateway only (peers' configs cap below it)
. "$HERE/lib.sh"   # RESULTS_DIR, descriptor limit (wrk -c10000), start/stop helpers

case "$LAYOUT" in
  split)       LOAD_CPUS=0; UP_CPUS=1; PROXY_CPUS=1; PROXY_THREADS=${PROXY_THREADS:-1} ;;
  proxy-alone) LOAD_CPUS=0; UP_CPUS=0; PROXY_CPUS=1; PROXY_THREADS=${PROXY_THREADS:-1} ;;
  none)        LOAD_CPUS=;  UP_CPUS=;  PROXY_CPUS=;  PROXY_THREADS=${PROXY_THREADS:-$(nproc)} ;;
  *) echo "unknown LAYOUT=$LAYOUT" >&2; exit 2 ;;
esac

bench_require "apt-get install nginx haproxy wrk curl" nginx haproxy wrk curl python3 taskset ss
bench_tmp proxybench

render() {  # render TEMPLATE OUT
  sed -e "s#@TMP@#$TMP#g" -e "s#@UP_PORT@#$UP_PORT#g" -e "s#@THREADS@#$PROXY_THREADS#g" \
      -e "s#@PORT_PLAIN@#$HAP_PLAIN_PORT#g" -e "s#@PORT_JWT@#$HAP_JWT_PORT#g" -e "s#@PORT@#$NGINX_PORT#g" "$1" > "$2"
}

# ---------- secret + tokens ----------
if [ -z "${JWT_SECRET_FILE:-}" ]; then
  JWT_SECRET_FILE=$TMP/jwt_secret; head -c 48 /dev/urandom | base64 | tr -d '/+=\n' > "$JWT_SECRET_FILE"
fi
JWT_SECRET=$(tr -d '\n' < "$JWT_SECRET_FILE")
case "$JWT_SECRET" in *[!A-Za-z0-9._-]*) echo "!! JWT secret must be [A-Za-z0-9._-] (haproxy config quoting)" >&2; exit 2;; esac
export JWT_SECRET JWT_SECRET_FILE
for k in valid expired badsig alg-none; do python3 "$HERE/mkjwt.py" "$JWT_SECRET_FILE" "$k" > "$TMP/tok.$k"; done
TOK=$(cat "$TMP/tok.valid")

# ---------- start servers ----------
render "$HERE/conf/upstream.nginx.conf" "$TMP/upstream.conf"
render "$HERE/conf/nginx-plain.conf"   "$TMP/nginx-plain.conf"
render "$HERE/conf/haproxy.cfg"        "$TMP/haproxy.cfg"
start upstream "$UP_PORT" "$UP_CPUS" nginx -p "$TMP" -e "$TMP/upstream.error.log" -c "$TMP/upstream.conf" -g 'daemon off;'
declare -A PORT=([direct]=$UP_PORT [nginx-plain]=$NGINX_PORT [haproxy-plain]=$HAP_PLAIN_PORT [haproxy-jwt]=$HAP_JWT_PORT [gateway]=$GATEWAY_PORT [gateway-public]=$GATEWAY_PORT)
declare -A URLPATH=([gateway-public]=/public/)   # bench/: default "/"
declare -A PROC=()   # target -> index in PIDS
PROC[direct]=0
case " $TARGETS " in *" nginx-plain "*)
  start nginx-plain "$NGINX_PORT" "$PROXY_CPUS" nginx -p "$TMP" -e "$TMP/nginx-plain.error.log" -c "$TMP/nginx-plain.conf" -g 'daemon off;'
  PROC[nginx-plain]=$((${#PIDS[@]}-1)) ;; esac
case " $TARGETS " in *" haproxy-"*)
  haproxy -q -c -f "$TMP/haproxy.cfg" >/dev/null
  start haproxy "$HAP_JWT_PORT" "$PROXY_CPUS" haproxy -db -f "$TMP/haproxy.cfg"
  wait_port haproxy "$HAP_PLAIN_PORT" "${PIDS[-1]}"
  PROC[haproxy-plain]=$((${#PIDS[@]}-1)); PROC[haproxy-jwt]=$((${#PIDS[@]}-1)) ;; esac
if [ -n "$GATEWAY_CMD" ]; then
  export UPSTREAM_URL=http://127.0.0.1:$UP_PORT UPSTREAM_ADDR=127.0.0.1:$UP_PORT LISTEN_ADDR=127.0.0.1:$GATEWAY_PORT
  export GATEWAY_PORT BENCH_THREADS=$PROXY_THREADS GW_CONF_DIR=$TMP/gateway
  start gateway "$GATEWAY_PORT" "$PROXY_CPUS" bash -c "exec $GATEWAY_CMD"
  PROC[gateway]=$((${#PIDS[@]}-1)); PROC[gateway-public]=$((${#PIDS[@]}-1))
fi

# ---------- correctness checks ----------
code() { curl -s -o "$TMP/body" -w '%{http_code}' --max-time 5 "$@" || echo 000; }
FAIL=0
check() {  # check TARGET EXPECTED DESC curl-args...
  local t=$1 exp=$2 desc=$3 got; shift 3
  got=$(code "$@" "http://127.0.0.1:${PORT[$t]}${URLPATH[$t]:-/}")
  if [ "$got" = "$exp" ] && { [ "$exp" != 200 ] || grep -q '"ok":true' "$TMP/body"; }; then
    printf '  ok   %-14s %-10s -> %s\n' "$t" "$desc" "$got"
  else
    printf '  FAIL %-14s %-10s -> %s (want %s%s)\n' "$t" "$desc" "$got" "$exp" "$([ "$exp" = 200 ] && echo ' with body {"ok":true}')"; FAIL=1
  fi
}
echo "== checks (layout=$LAYOUT, proxy threads=$PROXY_THREADS)"
for t in $TARGETS; do
  check "$t" 200 valid -H "Authorization: Bearer $TOK"
  case "$t" in haproxy-jwt|gateway)
    check "$t" 401 missing
    check "$t" 401 expired   -H "Authorization: Bearer $(cat "$TMP/tok.expired")"
    check "$t" 401 badsig    -H "Authorization: Bearer $(cat "$TMP/tok.badsig")"
    check "$t" 401 alg-none  -H "Authorization: Bearer $(cat "$TMP/tok.alg-none")"
    check "$t" 401 garbage   -H "Authorization: Bearer abc.def"
    check "$t" 401 basic     -H "Authorization: Basic dXNlcjpwYXNz" ;;
  gateway-public)
    check "$t" 200 missing ;;
  esac
done
if [ "$FAIL" = 1 ] && [ "$CHECK_STRICT" = 1 ]; then echo "!! checks failed, not measuring" >&2; exit 1; fi

# ---------- memory helpers ----------
mem_kb() {  # "rss_kb pss_kb" summed over PID and descendants
  local p=$1 q rss=0 pss=0 r s
  for q in $p $(descendants "$p"); do
    r=$(awk '/^Rss:/{print $2}' "/proc/$q/smaps_rollup" 2>/dev/null || echo 0)
    s=$(awk '/^Pss:/{print $2}' "/proc/$q/smaps_rollup" 2>/dev/null || echo 0)
    rss=$((rss+${r:-0})); pss=$((pss+${s:-0}))
  done
  echo "$rss $pss"
}
cpu_ns() {  # on-CPU time (ns, from schedstat) summed over all threads of PID and descendants
  local p=$1 q f t=0 v
  for q in $p $(descendants "$p"); do
    for f in /proc/$q/task/*/schedstat; do read -r v _ < "$f" 2>/dev/null && t=$((t+v)); done
  done
  echo "$t"
}
steal() { awk '/^cpu /{print $9}' /proc/stat; }
cpustat() { awk '/^cpu[0-9]/{b=$2+$3+$4+$7+$8+$9; printf "%s %d %d ", $1, b, b+$5+$6}' /proc/stat; }
busy() {  # busy% per CPU between two cpustat snapshots
  awk -v a="$1" -v b="$2" 'BEGIN{n=split(a,x," "); split(b,y," "); s="";
    for(i=1;i<=n;i+=3){ d=y[i+2]-x[i+2]; s=s sprintf("%s%.0f", (s==""?"":"/"), d>0?100*(y[i+1]-x[i+1])/d:0) } print s}'
}
RAW=$TMP/raw.txt; : > "$RAW"
STEAL0=$(steal); T0=$(date +%s)
for t in $TARGETS; do echo "IDLE $t $(mem_kb "${PIDS[${PROC[$t]}]}")" >> "$RAW"; done
echo "CPUS $(nproc) $(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo | tr ' ' '_')" >> "$RAW"   # bench/

# ---------- load ----------
wrk_run() {  # wrk_run TARGET CONNS DUR -> RESULT line
  pin "$LOAD_CPUS" wrk -t"$WRK_THREADS" -c"$2" -d"$3"s --timeout 5s -s "$HERE/report.lua" \
      -H "Authorization: Bearer $TOK" "http://127.0.0.1:${PORT[$1]}${URLPATH[$1]:-/}" 2>&1 | grep '^RESULT' || echo "RESULT 0 0 0 0 0 0 0 0 0 0 0"
}
read -r -a TL <<< "$TARGETS"; N=${#TL[@]}
echo "== warmup ${WARM}s each"
for t in "${TL[@]}"; do wrk_run "$t" "$CONNS" "$WARM" >/dev/null; done
echo "== measure: $ROUNDS rounds x $N targets x ${DUR}s, wrk -t$WRK_THREADS -c$CONNS (order rotates per round;"
echo "   extra rounds, up to MAX_ROUNDS=$MAX_ROUNDS, while a target has < MIN_CLEAN=$MIN_CLEAN rounds with its SUT CPU >=95% busy)"
declare -A SATN=(); for t in "${TL[@]}"; do SATN[$t]=0; done
for ((r=1; r<=MAX_ROUNDS; r++)); do
  if [ "$r" -gt "$ROUNDS" ]; then
    need=0   # 'direct' is excluded: it is client(wrk)-bound by design
    for t in "${TL[@]}"; do [ "$t" != direct ] && [ "${SATN[$t]}" -lt "$MIN_CLEAN" ] && need=1; done
    [ "$need" = 0 ] && break
    echo "  (host noisy: extra round $r)"
  fi
  for ((i=0; i<N; i++)); do
    t=${TL[$(( (i + r - 1) % N ))]}
    c0=$(cpu_ns "${PIDS[${PROC[$t]}]}"); s0=$(cpustat)
    line=$(wrk_run "$t" "$CONNS" "$DUR")
    c1=$(cpu_ns "${PIDS[${PROC[$t]}]}"); b=$(busy "$s0" "$(cpustat)")
    sc=$PROXY_CPUS; [ "$t" = direct ] && sc=$UP_CPUS      # the CPU the measured server runs on
    if [ -n "$sc" ]; then sb=$(cut -d/ -f$((sc+1)) <<< "$b"); else sb=$(tr / '\n' <<< "$b" | sort -n | head -1); fi
    echo "RUN $r $t ${line#RESULT } $((c1-c0)) $b ${sb:-0}" >> "$RAW"
    [ "${sb:-0}" -ge 95 ] && SATN[$t]=$(( ${SATN[$t]} + 1 ))
    printf '  round %d %-14s %s\n' "$r" "$t" "$(awk -v c=$((c1-c0)) '{printf "%.0f req/s p50=%.2fms p99=%.2fms cpu=%.1fus/req non2xx=%d errs=%d", $4, $5/1000, $6/1000, ($2>0?c/$2/1000:0), $8, $9+$10+$11+$12}' <<< "$line") cpu0/1 busy=$b%"
  done
done
mem_pass() {  # mem_pass TARGET CONNS -> LOADMEM line (bench/: conns recorded, for the 10,000 pass)
  local t=$1 c=$2 w peak_r=0 peak_p=0 r p
  wrk_run "$t" "$c" "$MEM_DUR" > "$TMP/memrun" & w=$!
  sleep 1
  while kill -0 "$w" 2>/dev/null; do
    read -r r p <<< "$(mem_kb "${PIDS[${PROC[$t]}]}")"
    [ "$r" -gt "$peak_r" ] && peak_r=$r; [ "$p" -gt "$peak_p" ] && peak_p=$p
    sleep 0.5
  done
  wait "$w" || true
  echo "LOADMEM $t $c $peak_r $peak_p $(sed 's/^RESULT //' "$TMP/memrun")" >> "$RAW"
  printf '  %-14s -c%-6s peak RSS %6.1f MiB  %s\n' "$t" "$c" "$(awk -v r=$peak_r 'BEGIN{print r/1024}')" \
    "$(awk '{printf "%.0f req/s p99=%.1fms non2xx=%d errs=%d", $4, $6/1000, $8, $9+$10+$11+$12}' "$TMP/memrun")"
}
if [ "$MEM" = 1 ]; then
  echo "== memory under load: wrk -c$MEM_CONNS ${MEM_DUR}s per target"
  for t in "${TL[@]}"; do
    case "$t" in direct|gateway-public) continue ;; esac
    mem_pass "$t" "$MEM_CONNS"
  done
  if [ -n "${PROC[gateway]:-}" ] && [ "${MEM_BIG_CONNS:-0}" -gt 0 ]; then
    echo "== memory, gateway only: wrk -c$MEM_BIG_CONNS ${MEM_DUR}s (fd limit $(ulimit -n))"
    mem_pass gateway "$MEM_BIG_CONNS"
  fi
  sleep 3   # bench/: RSS once the load has gone (allocator keeps what it got?)
  for t in "${TL[@]}"; do
    case "$t" in direct|gateway-public) continue ;; esac
    echo "IDLEAFTER $t $(mem_kb "${PIDS[${PROC[$t]}]}")" >> "$RAW"
  done
fi

echo "STEAL $(( $(steal) - STEAL0 )) $(( $(date +%s) - T0 ))" >> "$RAW"
# ---------- report ----------
mkdir -p "$RESULTS_DIR"
OUTF="$RESULTS_DIR/$(date +%Y%m%d-%H%M%S)-$LAYOUT"
{ echo "# layout=$LAYOUT proxy_cpus=$PROXY_CPUS threads=$PROXY_THREADS dur=$DUR rounds=$ROUNDS conns=$CONNS wrk_threads=$WRK_THREADS gateway=${GATEWAY_CMD:-none}"
  cat "$RAW"; } > "$OUTF.raw"
python3 "$HERE/report.py" "$OUTF.raw" | tee "$OUTF.txt"
python3 "$HERE/report.py" --markdown "$OUTF.raw" > "$OUTF.md"   # bench/
echo "raw: $OUTF.raw  table: $OUTF.txt  markdown: $OUTF.md"
echo "RESULT_FILES $OUTF"
