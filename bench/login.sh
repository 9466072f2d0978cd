#!/usr/bin/env bash
# Login load on loopback: the release gateway with login enabled, a fake Turnstile siteverify (any token
# passes), a users file made with `gateway hash-password`, and wrk driving POST /api/Auth with unique captcha
# tokens (bench/login.lua). Measures:
#   1. one argon2id hash (default m=19456 KiB, t=2, p=1) and the ceiling cores / hash time;
#   2. logins/s with valid captcha + credentials at the hash pool's limit (wrk -c$LOGIN_CONNS);
#   3. proxied GET p50/p99 alone, then while logins saturate the pool;
#   4. RSS idle, during the saturating logins, during $BIG_LOGINS concurrent logins, and after.
# No pinning: the gateway runs as deployed (one worker per core, hash pool = cores). ~1.5 min.
#
#   bench/login.sh                    # knobs: LOGIN_CONNS=16 LOGIN_DUR=10 PROXY_CONNS=16 PROXY_DUR=10
#                                     #        BIG_LOGINS=1000 BIG_DUR=15 HASH_RUNS=7 GW_BIN=... RESULTS_DIR=...
#                                     #        GW_WRAPPER="env LD_PRELOAD=..." (prefix for the gateway command)
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BIN=${GW_BIN:-$HERE/../target/release/gateway}
LOGIN_CONNS=${LOGIN_CONNS:-16}; LOGIN_DUR=${LOGIN_DUR:-10}; PROXY_CONNS=${PROXY_CONNS:-16}; PROXY_DUR=${PROXY_DUR:-10}
BIG_LOGINS=${BIG_LOGINS:-1000}; BIG_DUR=${BIG_DUR:-15}; HASH_RUNS=${HASH_RUNS:-7}; SEQ_DUR=${SEQ_DUR:-4}
UP_PORT=${UP_PORT:-18180}; GW_PORT=${GW_PORT:-18190}; SV_PORT=${SV_PORT:-18195}
. "$HERE/lib.sh"   # RESULTS_DIR, descriptor limit, start/stop helpers
bench_require "apt-get install nginx wrk curl" nginx wrk curl python3 ss
[ -x "$BIN" ] || { echo "$BIN not built (cargo build --release)" >&2; exit 2; }

bench_tmp loginbench
cpu_ns() { local f t=0 v; for f in /proc/$1/task/*/schedstat; do read -r v _ < "$f" 2>/dev/null && t=$((t+v)); done; echo "$t"; }
busy_j() { awk '/^cpu /{print $2+$3+$4+$7+$8+$9, $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat; }
mem_kb() { local q rss=0 r; for q in $1 $(descendants "$1"); do
  r=$(awk '/^Rss:/{print $2}' "/proc/$q/smaps_rollup" 2>/dev/null || echo 0); rss=$((rss+${r:-0})); done; echo "$rss"; }
RAW=$TMP/raw.txt; : > "$RAW"

# ---------- 1. one hash, and the ceiling ----------
PW="bench-$(head -c 12 /dev/urandom | base64 | tr -d '/+=')"
echo "== argon2id cost: $HASH_RUNS x gateway hash-password (default params) vs the same with m=8 KiB t=1 (process overhead)"
# CPU time (user+sys) of the process, not wall time: robust to other load on the machine.
hash_once() {
  local TIMEFORMAT='%3U %3S' t
  t=$( { time (echo "$PW" | "$BIN" hash-password --config "$TMP/none.toml" "$@" > "$TMP/hash.out"); } 2>&1 )
  awk '{printf "%d", ($1 + $2) * 1000}' <<< "$t"
}
full=(); tiny=()
for i in $(seq "$HASH_RUNS"); do full+=("$(hash_once)"); tiny+=("$(hash_once --memory-kib 8 --iterations 1)"); done
HASH=$(echo "$PW" | "$BIN" hash-password --config "$TMP/none.toml")
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
HASH_MS=$(( $(median "${full[@]}") - $(median "${tiny[@]}") ))
CORES=$(nproc)
echo "HASH $HASH_MS $(median "${full[@]}") $(median "${tiny[@]}") $CORES" >> "$RAW"
echo "  one hash ~${HASH_MS} ms CPU (median $(median "${full[@]}") ms with start-up, start-up alone $(median "${tiny[@]}") ms); ceiling $CORES cores -> $(awk -v h="$HASH_MS" -v c="$CORES" 'BEGIN{if (h > 0) printf "%.0f", c*1000/h; else print "?"}') logins/s"

# ---------- 2. servers ----------
head -c 48 /dev/urandom | base64 | tr -d '/+=\n' > "$TMP/jwt_secret"
TOK=$(python3 "$HERE/mkjwt.py" "$TMP/jwt_secret" valid)
sed -e "s#@TMP@#$TMP#g" -e "s#@UP_PORT@#$UP_PORT#g" "$HERE/conf/upstream.nginx.conf" > "$TMP/upstream.conf"
start upstream "$UP_PORT" "" nginx -p "$TMP" -e "$TMP/upstream.error.log" -c "$TMP/upstream.conf" -g 'daemon off;'
start siteverify "$SV_PORT" "" python3 "$HERE/fake_siteverify.py" "$SV_PORT"
USER_NAME=bench
cat > "$TMP/users.toml" <<EOF
[[users]]
name = "$USER_NAME"
password_hash = "$HASH"
EOF
# Limits raised so that $BIG_LOGINS logins are all admitted at once (the memory worst case); defaults are
# turnstile.max_concurrent = 64 and hashing.max_queue = 256, beyond which logins are refused at once.
cat > "$TMP/gateway.toml" <<EOF
[server]
listen = "127.0.0.1:$GW_PORT"
[auth]
secret_file = "$TMP/jwt_secret"
[identity]
forward_authorization = true
[log]
access = false
[metrics]
listen = "127.0.0.1:$((GW_PORT + 1))"
[login]
enabled = true
[login.turnstile]
secret = "bench-turnstile-secret"
siteverify_url = "http://127.0.0.1:$SV_PORT/siteverify"
max_concurrent = $((BIG_LOGINS + 100))
# The fake siteverify (Python, one thread per connection) needs more than the default 5 s to answer a burst of
# $BIG_LOGINS verifications on a busy 2-CPU machine; a timeout there would be the fake's limit, not the gateway's.
timeout = "30s"
[login.hashing]
max_queue = $((BIG_LOGINS + 100))
# One loopback client IP drives all the load: per-IP / per-user failure throttling off (0 = off).
[login.throttle]
ip_max_failures = 0
user_max_failures = 0
[users]
file = "$TMP/users.toml"
[[routes]]
name = "app"
prefix = "/"
upstream = "http://127.0.0.1:$UP_PORT"
EOF
GATEWAY_LOG=${GW_LOG:-warn} start gateway "$GW_PORT" "" env -u GATEWAY_PORT -u GATEWAY_CMD ${GW_WRAPPER:-} "$BIN" serve --config "$TMP/gateway.toml"
GW=${PIDS[-1]}

echo "IDLE0 $(mem_kb "$GW")" >> "$RAW"   # before any login

# ---------- 3. checks ----------
echo "== checks"
FAIL=0
login() { curl -s -o "$TMP/login.body" -w '%{http_code}' --max-time 10 -H 'Content-Type: application/json' \
  --data "{\"UserName\":\"$1\",\"Password\":\"$2\",\"CaptchaToken\":\"$3\"}" "http://127.0.0.1:$GW_PORT/api/Auth" || echo 000; }
chk() { if [ "$2" = "$3" ]; then printf '  ok   %-34s -> %s\n' "$1" "$2"; else printf '  FAIL %-34s -> %s (want %s)\n' "$1" "$2" "$3"; FAIL=1; fi; }
chk "login, valid" "$(login "$USER_NAME" "$PW" check-1)" 200
LTOK=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["token"])' "$TMP/login.body" 2>/dev/null || echo none)
chk "login, replayed captcha" "$(login "$USER_NAME" "$PW" check-1)" 401
chk "login, wrong password" "$(login "$USER_NAME" "wrong-$PW" check-2)" 401
chk "GET / with the issued token" "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $LTOK" "http://127.0.0.1:$GW_PORT/")" 200
chk "GET / with a harness token" "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOK" "http://127.0.0.1:$GW_PORT/")" 200
chk "GET / without a token" "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$GW_PORT/")" 401
[ "$FAIL" = 0 ] || { echo "!! checks failed; gateway log:" >&2; tail -n 20 "$TMP/gateway.log" >&2; exit 1; }
echo "IDLE $(mem_kb "$GW")" >> "$RAW"

# ---------- 4. load ----------
export LOGIN_USER=$USER_NAME LOGIN_PASSWORD=$PW
proxied() { wrk -t1 -c"$PROXY_CONNS" -d"$1"s --timeout 10s -s "$HERE/report.lua" -H "Authorization: Bearer $TOK" \
  "http://127.0.0.1:$GW_PORT/" 2>&1 | grep '^RESULT' || echo "RESULT 0 0 0 0 0 0 0 0 0 0 0"; }
logins() { wrk -t1 -c"$1" -d"$2"s --timeout "$3" -s "$HERE/login.lua" "http://127.0.0.1:$GW_PORT/" > "$TMP/login.$1.out" 2>&1 || true; }
peak_while() {  # peak_while PID -> peak RSS of the gateway while PID runs
  local peak=0 r; while kill -0 "$1" 2>/dev/null; do r=$(mem_kb "$GW"); [ "$r" -gt "$peak" ] && peak=$r; sleep 0.5; done; echo "$peak"; }
show() { awk '{printf "%.1f req/s p50=%.2fms p99=%.2fms max=%.0fms non2xx=%d errors=%d", $3, $4/1000, $5/1000, $6/1000, $7, $8+$9+$10+$11}'; }

echo "== one login at a time: wrk -c1 ${SEQ_DUR}s (the gateway's CPU per login = one hash, warm, in process)"
c0=$(cpu_ns "$GW")
logins 1 "$SEQ_DUR" 10s
c1=$(cpu_ns "$GW")
echo "SEQ $((c1-c0)) $(grep '^RESULT' "$TMP/login.1.out" | cut -d' ' -f2-) $(grep '^STATUS' "$TMP/login.1.out" | cut -d' ' -f2-)" >> "$RAW"
echo "  $(grep '^RESULT' "$TMP/login.1.out" | cut -d' ' -f2- | show | sed 's/req\/s/logins\/s/')  gateway CPU per login $(awk -v c=$((c1-c0)) -v n="$(grep '^STATUS' "$TMP/login.1.out" | cut -d' ' -f2)" 'BEGIN{printf "%.1f ms", n ? c/n/1e6 : 0}')"

echo "== proxied GET alone: wrk -c$PROXY_CONNS ${PROXY_DUR}s"
line=$(proxied "$PROXY_DUR"); echo "PROXY_IDLE ${line#RESULT }" >> "$RAW"; echo "  $(show <<< "${line#RESULT }")"

echo "== logins alone: wrk -c$LOGIN_CONNS ${LOGIN_DUR}s (valid captcha + credentials)"
c0=$(cpu_ns "$GW"); read -r b0 t0 <<< "$(busy_j)"
logins "$LOGIN_CONNS" "$LOGIN_DUR" 10s & w=$!
peak=$(peak_while "$w"); wait "$w" || true
c1=$(cpu_ns "$GW"); read -r b1 t1 <<< "$(busy_j)"
echo "LOGINCPU $((c1-c0)) $((b1-b0)) $((t1-t0))" >> "$RAW"
echo "LOGINS $LOGIN_CONNS $peak $(grep '^RESULT' "$TMP/login.$LOGIN_CONNS.out" | cut -d' ' -f2-) $(grep '^STATUS' "$TMP/login.$LOGIN_CONNS.out" | cut -d' ' -f2-)" >> "$RAW"
echo "  $(grep '^RESULT' "$TMP/login.$LOGIN_CONNS.out" | cut -d' ' -f2- | show | sed 's/req\/s/logins\/s/')  status 2xx/401/408/429/503/other: $(grep '^STATUS' "$TMP/login.$LOGIN_CONNS.out" | cut -d' ' -f2- | tr ' ' /)  peak RSS $((peak/1024)) MiB"

echo "== proxied GET while logins saturate the pool: wrk -c$PROXY_CONNS ${PROXY_DUR}s inside wrk -c$LOGIN_CONNS logins"
mv "$TMP/login.$LOGIN_CONNS.out" "$TMP/login.alone.out"
logins "$LOGIN_CONNS" "$((PROXY_DUR + 4))" 10s & w=$!
sleep 2
line=$(proxied "$PROXY_DUR"); wait "$w" || true
echo "PROXY_BUSY ${line#RESULT }" >> "$RAW"
echo "LOGINS_BUSY $(grep '^RESULT' "$TMP/login.$LOGIN_CONNS.out" | cut -d' ' -f2-) $(grep '^STATUS' "$TMP/login.$LOGIN_CONNS.out" | cut -d' ' -f2-)" >> "$RAW"
echo "  proxied: $(show <<< "${line#RESULT }")"
echo "  logins meanwhile: $(grep '^RESULT' "$TMP/login.$LOGIN_CONNS.out" | cut -d' ' -f2- | show | sed 's/req\/s/logins\/s/')"

echo "== $BIG_LOGINS concurrent logins: wrk -c$BIG_LOGINS ${BIG_DUR}s (all admitted: queue and siteverify limits raised)"
logins "$BIG_LOGINS" "$BIG_DUR" 30s & w=$!
peak=$(peak_while "$w"); wait "$w" || true
echo "BIGLOGINS $BIG_LOGINS $peak $(grep '^RESULT' "$TMP/login.$BIG_LOGINS.out" | cut -d' ' -f2-) $(grep '^STATUS' "$TMP/login.$BIG_LOGINS.out" | cut -d' ' -f2-)" >> "$RAW"
echo "  $(grep '^RESULT' "$TMP/login.$BIG_LOGINS.out" | cut -d' ' -f2- | show | sed 's/req\/s/logins\/s/')  status: $(grep '^STATUS' "$TMP/login.$BIG_LOGINS.out" | cut -d' ' -f2- | tr ' ' /)  peak RSS $((peak/1024)) MiB"
sleep 3
echo "AFTER $(mem_kb "$GW")" >> "$RAW"

# ---------- 5. report ----------
mkdir -p "$RESULTS_DIR"
OUTF="$RESULTS_DIR/$(date +%Y%m%d-%H%M%S)-login"
[ -s "$TMP/gateway.log" ] && cp "$TMP/gateway.log" "$OUTF.gateway.log"
{ echo "# seq_dur=$SEQ_DUR login_conns=$LOGIN_CONNS login_dur=$LOGIN_DUR proxy_conns=$PROXY_CONNS proxy_dur=$PROXY_DUR big=$BIG_LOGINS big_dur=$BIG_DUR cores=$CORES"; cat "$RAW"; } > "$OUTF.raw"
python3 - "$OUTF.raw" > "$OUTF.md" <<'PY'
import sys
h, d = {}, {}
for ln in open(sys.argv[1]):
    f = ln.split()
    if not f: continue
    if f[0] == "#": h = dict(x.split("=", 1) for x in f[1:]); continue
    d[f[0]] = f[1:]
hash_ms, full_ms, tiny_ms, cores = map(int, d["HASH"])
def wrk(v):  # requests dur rps p50 p99 max non2xx conn read write timeout
    return dict(rps=float(v[2]), p50=int(v[3]) / 1000, p99=int(v[4]) / 1000, mx=int(v[5]) / 1000, err=sum(map(int, v[6:11])))
mib = lambda kb: int(kb) / 1024
sq = d["SEQ"]; seq_ns = int(sq[0]); sw = wrk(sq[1:12]); sok = int(sq[12])
one = seq_ns / 1e6 / sok if sok else 0           # gateway CPU ms per login, one at a time
ceil = cores * 1000 / one if one else 0
li = d["LOGINS"]; la = wrk(li[2:13]); ls = li[13:19]
gw_ns, busy_j, tot_j = map(int, d["LOGINCPU"])
ok = int(ls[0]); per = gw_ns / 1e6 / ok if ok else 0
gw_cpus = gw_ns / 1e9 / float(h["login_dur"])
lb = wrk(d["LOGINS_BUSY"][0:11])
pi, pb = wrk(d["PROXY_IDLE"]), wrk(d["PROXY_BUSY"])
bl = d["BIGLOGINS"]; bw = wrk(bl[2:13]); bs = bl[13:19]
print(f"Gateway unpinned on {cores} CPUs (one tokio worker per core, hash pool = {cores} hashes at once), with the upstream "
      f"nginx, the fake siteverify and wrk on the same CPUs. Status columns: 2xx/401/408/429/503/other.\n")
print("| figure | value |\n|---|---|")
print(f"| one login at a time (`wrk -c1` {h.get('seq_dur', '?')} s): gateway CPU per login ≈ one argon2id hash "
      f"(m=19456 KiB, t=2, p=1), warm | **{one:.1f} ms** ({sw['rps']:.1f} logins/s, p50 {sw['p50']:.0f} ms) |")
print(f"| the same hash in a fresh process (`gateway hash-password`, CPU time minus start-up) | {hash_ms} ms |")
print(f"| ceiling = {cores} cores / {one:.1f} ms | **{ceil:.0f} logins/s** |")
print(f"| logins/s at the pool's limit, valid captcha + credentials (`wrk -c{h['login_conns']}` {h['login_dur']} s) | "
      f"**{la['rps']:.1f}** = {la['rps'] / ceil * 100 if ceil else 0:.0f} % of the ceiling; p50 {la['p50']:.0f} ms, p99 {la['p99']:.0f} ms; "
      f"status {'/'.join(ls)}; socket errors/timeouts {sum(map(int, li[9:13]))} |")
print(f"| … CPU the gateway got meanwhile (machine {busy_j / tot_j * 100 if tot_j else 0:.0f} % busy, all processes) | "
      f"{gw_cpus:.2f} of {cores} CPUs, {per:.1f} ms per login → {la['rps'] / gw_cpus if gw_cpus else 0:.1f} logins per CPU-second "
      f"(ceiling {1000 / one if one else 0:.1f}) |")
print(f"| proxied GET alone (`wrk -c{h['proxy_conns']}` {h['proxy_dur']} s) | {pi['rps']:,.0f} req/s, p50 {pi['p50']:.2f} ms, "
      f"**p99 {pi['p99']:.2f} ms**, max {pi['mx']:.0f} ms |")
print(f"| proxied GET while logins saturate the pool | {pb['rps']:,.0f} req/s, p50 {pb['p50']:.2f} ms, **p99 {pb['p99']:.2f} ms** "
      f"(× {pb['p99'] / pi['p99'] if pi['p99'] else 0:.1f} idle), max {pb['mx']:.0f} ms; logins meanwhile {lb['rps']:.1f}/s |")
print(f"| RSS idle, login enabled, before any login | {mib(d['IDLE0'][0]):.1f} MiB |")
print(f"| RSS idle after the 4 check logins | {mib(d['IDLE'][0]):.1f} MiB |")
print(f"| RSS peak, logins at the pool's limit (`-c{h['login_conns']}`) | {mib(li[1]):.1f} MiB |")
print(f"| RSS peak, {h['big']} concurrent logins (`wrk -c{h['big']}` {h['big_dur']} s, all admitted) | {mib(bl[1]):.1f} MiB; "
      f"{bw['rps']:.1f} logins/s, status {'/'.join(bs)}, p50 {bw['p50'] / 1000:.1f} s |")
print(f"| RSS 3 s after the load | {mib(d['AFTER'][0]):.1f} MiB |")
PY
cat "$OUTF.md"
echo "raw: $OUTF.raw  markdown: $OUTF.md"
echo "RESULT_FILES $OUTF"
