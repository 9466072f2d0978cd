#!/usr/bin/env bash
# What the shared store adds to a login: the same gateway binary run twice on loopback, without and with
# `[shared] url`, each answering $LOGINS sequential successful logins (one keep-alive client, unique captcha
# tokens, a fake siteverify that passes everything, a user with a cheap ASP.NET V2 hash so that hashing does not
# drown the difference). Prints login p50/p90 for both runs, then, from the second run's /metrics, the Redis
# round trips per login and the store's latency per operation (gateway_shared_store_duration_seconds).
#
# On a loaded machine the wall-clock p50s are noisy; the round-trip count and Redis' own latency histogram are
# the robust figures (added cost ~= round trips x Redis latency).
#
#   bench/login_shared.sh        # knobs: LOGINS=300 REDIS_URL=redis://127.0.0.1:6379 GW_BIN=target/release/gateway
#                                #        GW_PORT=18290 SV_PORT=18295
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BIN=${GW_BIN:-$HERE/../target/release/gateway}
LOGINS=${LOGINS:-300}
REDIS_URL=${REDIS_URL:-${GATEWAY_TEST_REDIS_URL:-redis://127.0.0.1:6379}}
GW_PORT=${GW_PORT:-18290}; SV_PORT=${SV_PORT:-18295}
[ -x "$BIN" ] || { echo "$BIN not built (cargo build --release, or GW_BIN=target/debug/gateway)" >&2; exit 2; }
command -v redis-cli >/dev/null || { echo "redis-cli needed (apt-get install redis-tools)" >&2; exit 2; }

TMP=$(mktemp -d /tmp/login-shared.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$TMP"; }
trap cleanup EXIT

python3 "$HERE/fake_siteverify.py" "$SV_PORT" > "$TMP/siteverify.log" 2>&1 & PIDS+=($!)
head -c 48 /dev/urandom | base64 | tr -d '/+=\n' > "$TMP/jwt_secret"
# ASP.NET Identity V2 hash of "my password" (../shared/specs.md): one PBKDF2-SHA1 with 1000 iterations.
cat > "$TMP/users.toml" <<'EOT'
[[users]]
name = "bench"
password_hash = "AAABAgMEBQYHCAkKCwwNDg+ukCEMDf0yyQ29NYubggHIVY0sdEUfdyeM+E1LtH1uJg=="
EOT
PREFIX="gwbench-$$"

run() { # $1 = label, $2 = extra TOML; prints "label p50_ms p90_ms"
  cat > "$TMP/gateway.toml" <<EOT
[server]
listen = "127.0.0.1:$GW_PORT"
[auth]
secret_file = "$TMP/jwt_secret"
[log]
access = false
[metrics]
listen = "127.0.0.1:$((GW_PORT + 1))"
[login]
enabled = true
[login.throttle]
ip_max_failures = 100000
[login.turnstile]
secret = "bench-turnstile-secret"
siteverify_url = "http://127.0.0.1:$SV_PORT/siteverify"
[users]
file = "$TMP/users.toml"
[[routes]]
prefix = "/"
upstream = "http://127.0.0.1:9"
$2
EOT
  GATEWAY_LOG=warn "$BIN" serve --config "$TMP/gateway.toml" > "$TMP/gw-$1.log" 2>&1 & local gw=$!
  PIDS+=($gw)
  for _ in $(seq 100); do
    curl -fsS "http://127.0.0.1:$((GW_PORT + 1))/readyz" > /dev/null 2>&1 && break; sleep 0.1
  done
  python3 - "$1" "$GW_PORT" "$LOGINS" <<'EOP'
import http.client, json, sys, time, uuid
label, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
conn = http.client.HTTPConnection("127.0.0.1", port)
times = []
for i in range(n + 20):  # 20 warm-up logins
    body = json.dumps({"UserName": "bench", "Password": "my password", "CaptchaToken": str(uuid.uuid4())})
    t = time.perf_counter()
    conn.request("POST", "/api/Auth", body, {"Content-Type": "application/json"})
    r = conn.getresponse(); r.read()
    took = time.perf_counter() - t
    if r.status != 200:
        sys.exit(f"{label}: login answered {r.status}")
    if i >= 20:
        times.append(took * 1000)
times.sort()
print(f"{label} p50 {times[len(times)//2]:.3f} ms  p90 {times[int(len(times)*0.9)]:.3f} ms  ({n} logins)")
EOP
  curl -fsS "http://127.0.0.1:$((GW_PORT + 1))/metrics" > "$TMP/metrics-$1.txt"
  kill "$gw"; wait "$gw" 2>/dev/null || true
}

echo "== login latency, $LOGINS sequential successful logins, $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
run local ""
run shared "[shared]
url = \"$REDIS_URL\"
prefix = \"$PREFIX\""
redis-cli -u "$REDIS_URL" --scan --pattern "$PREFIX:*" | xargs -r redis-cli -u "$REDIS_URL" del > /dev/null

echo "== shared store, from /metrics of the shared run"
python3 - "$TMP/metrics-shared.txt" "$LOGINS" <<'EOP'
import re, sys
text = open(sys.argv[1]).read()
logins = float(re.search(r'^gateway_logins_total\{outcome="success"\} (\S+)', text, re.M).group(1))
trips = 0.0
for op in ("login_admit", "login_reserve", "login_settle"):
    m = re.search(rf'^gateway_shared_store_duration_seconds_count\{{operation="{op}"\}} (\S+)', text, re.M)
    s = re.search(rf'^gateway_shared_store_duration_seconds_sum\{{operation="{op}"\}} (\S+)', text, re.M)
    if not m:
        continue
    count, total = float(m.group(1)), float(s.group(1))
    trips += count
    buckets = [(re.search(r'le="([^"]+)"', l).group(1), l.rsplit(" ", 1)[1]) for l in text.splitlines()
               if l.startswith("gateway_shared_store_duration_seconds_bucket{") and f'operation="{op}"' in l]
    p50 = next((le for le, c in buckets if float(c) >= count / 2), "?")
    print(f"  {op:14} {int(count):6} calls  mean {total / count * 1000:.3f} ms  p50 <= {float(p50) * 1000:.3f} ms")
print(f"  round trips per successful login: {trips / logins:.2f}")
EOP
