#!/usr/bin/env bash
# Soak test (issue 4): the release gateway under valid traffic, failed logins and attack traffic at once,
# for a bounded time; reports requests served, errors seen by valid clients (target 0), forged tokens
# accepted (target 0), and the gateway's memory at start and end.
#
#   bench/soak.sh [SECONDS]        # default 180; SOAK_SECONDS also sets it
#
# Starts, all on 127.0.0.1 with free ports, and stops again (by PID) on exit:
#   - the gateway (target/release/gateway, built first unless SOAK_NO_BUILD=1),
#   - an upstream: nginx if installed, else a python3 ThreadingHTTPServer,
#   - a fake Turnstile siteverify (python3 stdlib): tokens starting "ok-" pass once, anything else fails.
# Load, concurrently:
#   - valid traffic: wrk (if installed, else a python loop) on a protected route with a valid token;
#   - valid logins: one python client logging in every 0.5 s and using the issued token;
#   - failed logins: python threads with random user names / wrong passwords / bad captchas, each from a
#     different X-Forwarded-For address (127.0.0.1 is a trusted proxy here, so the per-IP throttle sees them
#     as many clients and the valid login client is never throttled by them);
#   - attacks: forged tokens (alg none, wrong key, tampered, expired, 100 KB), smuggling attempts and
#     malformed heads over raw sockets, slowloris heads, HTTP/2 rapid-reset bursts.
# Exit status: 0 when valid clients saw no error, no forged token was accepted and the gateway survived.
#
# Knobs: SOAK_CONNS (wrk connections, 16), SOAK_ATTACK_THREADS (4), SOAK_LOGIN_THREADS (2),
#        SOAK_KEEP=1 keeps the temp dir (logs, config) for inspection.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
DUR=${1:-${SOAK_SECONDS:-180}}
CONNS=${SOAK_CONNS:-16}
ATTACK_THREADS=${SOAK_ATTACK_THREADS:-4}
LOGIN_THREADS=${SOAK_LOGIN_THREADS:-2}
[[ "$DUR" =~ ^[0-9]+$ ]] && [ "$DUR" -ge 5 ] || { echo "usage: $0 [SECONDS >= 5]" >&2; exit 2; }
command -v python3 >/dev/null || { echo "soak: python3 is required" >&2; exit 2; }

if [ "${SOAK_NO_BUILD:-0}" != 1 ]; then
  echo "soak: building release (cargo build --release)..."
  (cd "$ROOT" && cargo build --release --quiet)
fi
BIN=${GW_BIN:-$ROOT/target/release/gateway}
[ -x "$BIN" ] || { echo "soak: $BIN missing" >&2; exit 2; }

TMP=$(mktemp -d /tmp/gateway-soak.XXXXXX)
chmod 755 "$TMP"
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  sleep 0.3
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  if [ "${SOAK_KEEP:-0}" = 1 ]; then echo "soak: kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
GW_PORT=$(free_port); UP_PORT=$(free_port); TS_PORT=$(free_port); METRICS_PORT=$(free_port)
wait_port() {  # wait until something listens on $1 (at most 10 s)
  local i
  for i in $(seq 1 100); do
    python3 -c "import socket,sys; s=socket.socket(); s.settimeout(0.2); sys.exit(s.connect_ex(('127.0.0.1',$1)))" && return 0
    sleep 0.1
  done
  echo "soak: nothing listens on port $1" >&2; return 1
}

# --- upstream ------------------------------------------------------------------------------------------
if command -v nginx >/dev/null; then
  mkdir -p "$TMP/nginx"
  cat > "$TMP/upstream.conf" <<EOF
worker_processes 1;
pid $TMP/nginx/upstream.pid;
error_log $TMP/nginx/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $TMP/nginx/body;
    proxy_temp_path $TMP/nginx/proxy;
    fastcgi_temp_path $TMP/nginx/fcgi;
    uwsgi_temp_path $TMP/nginx/uwsgi;
    scgi_temp_path $TMP/nginx/scgi;
    keepalive_requests 10000000;
    server {
        listen 127.0.0.1:$UP_PORT;
        location / { default_type application/json; return 200 '{"ok":true}'; }
    }
}
EOF
  nginx -p "$TMP/nginx" -e "$TMP/nginx/error.log" -c "$TMP/upstream.conf" -g 'daemon off;' &
  PIDS+=($!); UPSTREAM_KIND=nginx
else
  cat > "$TMP/upstream.py" <<'EOF'
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def _ok(self):
        n = int(self.headers.get("content-length") or 0)
        if n: self.rfile.read(n)
        body = b'{"ok":true}'
        self.send_response(200); self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body))); self.end_headers(); self.wfile.write(body)
    do_GET = do_POST = do_PUT = do_DELETE = _ok
    def log_message(self, *a): pass
ThreadingHTTPServer.daemon_threads = True
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
EOF
  python3 "$TMP/upstream.py" "$UP_PORT" &
  PIDS+=($!); UPSTREAM_KIND=python3
fi

# --- fake siteverify -------------------------------------------------------------------------------------
cat > "$TMP/siteverify.py" <<'EOF'
import json, sys, threading, urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
seen, lock = set(), threading.Lock()
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        raw = self.rfile.read(int(self.headers.get("content-length") or 0)).decode("utf-8", "replace")
        try:
            form = json.loads(raw)
        except ValueError:
            form = {k: v[0] for k, v in urllib.parse.parse_qs(raw).items()}
        tok = str(form.get("response", ""))
        with lock:
            ok = tok.startswith("ok-") and tok not in seen
            seen.add(tok)
        body = json.dumps({"success": ok, "error-codes": [] if ok else ["invalid-input-response"],
                           "hostname": "localhost", "action": "login"}).encode()
        self.send_response(200); self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body))); self.end_headers(); self.wfile.write(body)
    def log_message(self, *a): pass
ThreadingHTTPServer.daemon_threads = True
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
EOF
python3 "$TMP/siteverify.py" "$TS_PORT" &
PIDS+=($!)

# --- gateway ---------------------------------------------------------------------------------------------
head -c 48 /dev/urandom | base64 | tr -d '\n/+=' > "$TMP/jwt.secret"
# ASP.NET Identity V2 hash of "my password" (cheap to verify, so the soak measures the proxy, not PBKDF2).
# "victim" is the user the failed-login threads brute-force (per-user throttling locks it, by design);
# "soak" is the one the valid login client uses.
cat > "$TMP/users.toml" <<'EOF'
[[users]]
name = "soak"
password_hash = "AAABAgMEBQYHCAkKCwwNDg+ukCEMDf0yyQ29NYubggHIVY0sdEUfdyeM+E1LtH1uJg=="
active = true
[[users]]
name = "victim"
password_hash = "AAABAgMEBQYHCAkKCwwNDg+ukCEMDf0yyQ29NYubggHIVY0sdEUfdyeM+E1LtH1uJg=="
active = true
EOF
cat > "$TMP/gateway.toml" <<EOF
# generated by bench/soak.sh
[server]
listen = "127.0.0.1:$GW_PORT"
header_read_timeout = "2s"
idle_timeout = "10s"
trusted_proxies = ["127.0.0.1"]

[auth]
secret_file = "$TMP/jwt.secret"

[log]
access = false

[metrics]
listen = "127.0.0.1:$METRICS_PORT"

[login]
enabled = true
body_timeout = "2s"

[login.turnstile]
secret = "soak-turnstile-secret"
siteverify_url = "http://127.0.0.1:$TS_PORT/turnstile/v0/siteverify"
timeout = "1s"

[users]
file = "$TMP/users.toml"

[[routes]]
prefix = "/"
upstream = "http://127.0.0.1:$UP_PORT"
EOF
wait_port "$UP_PORT"; wait_port "$TS_PORT"
GATEWAY_LOG=${GATEWAY_LOG:-warn} "$BIN" serve --config "$TMP/gateway.toml" 2> "$TMP/gateway.log" &
GW_PID=$!
PIDS+=("$GW_PID")
wait_port "$GW_PORT" || { cat "$TMP/gateway.log" >&2; exit 1; }

rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$GW_PID/status" 2>/dev/null || echo 0; }
hwm_kib() { awk '/^VmHWM/ {print $2}' "/proc/$GW_PID/status" 2>/dev/null || echo 0; }
fds() { ls "/proc/$GW_PID/fd" 2>/dev/null | wc -l; }
threads() { awk '/^Threads/ {print $2}' "/proc/$GW_PID/status" 2>/dev/null || echo 0; }

# --- traffic ---------------------------------------------------------------------------------------------
cat > "$TMP/traffic.py" <<'EOF'
"""Soak traffic: one role per invocation, runs for DUR seconds, prints one JSON line of counters."""
import base64, hashlib, hmac, http.client, json, os, random, socket, sys, threading, time

role, port, dur = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
secret = open(sys.argv[4], "rb").read().strip()
threads = int(sys.argv[5]) if len(sys.argv) > 5 else 1
deadline = time.time() + dur
lock = threading.Lock()
c = {}

def bump(key, n=1):
    with lock:
        c[key] = c.get(key, 0) + n

def b64(b): return base64.urlsafe_b64encode(b).rstrip(b"=").decode()

def jwt(claims, key=secret, alg="HS256", header=None):
    h = b64(json.dumps(header or {"alg": alg, "typ": "JWT"}, separators=(",", ":")).encode())
    p = b64(json.dumps(claims, separators=(",", ":")).encode())
    if alg.lower() == "none":
        return f"{h}.{p}."
    return f"{h}.{p}." + b64(hmac.new(key, f"{h}.{p}".encode(), hashlib.sha256).digest())

def now(): return int(time.time())

def request(method, path, headers=None, body=None, timeout=5):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse(); data = r.read()
        return r.status, data
    finally:
        conn.close()

def raw(data, timeout=3.0):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        try:
            s.sendall(data)
        except OSError:
            pass
        out = b""
        while True:
            try:
                chunk = s.recv(65536)
            except (socket.timeout, OSError):
                break
            if not chunk:
                break
            out += chunk
        return out
    finally:
        s.close()

def xff(): return f"10.66.{random.randint(0, 255)}.{random.randint(1, 254)}"

n_captcha = [0]
def captcha(ok=True):
    with lock:
        n_captcha[0] += 1
        return f"{'ok' if ok else 'bad'}-{role}-{os.getpid()}-{n_captcha[0]}"

def valid_traffic():
    tok = jwt({"sub": "soak-valid", "name": "Valid", "iat": now(), "exp": now() + 86400})
    conn = None
    while time.time() < deadline:
        try:
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/valid", headers={"Authorization": f"Bearer {tok}"})
            r = conn.getresponse(); r.read()
            bump("requests"); bump("ok" if r.status == 200 else "errors")
            if r.status != 200: bump(f"status_{r.status}")
            if r.getheader("connection", "").lower() == "close":
                conn.close(); conn = None
        except Exception as e:
            bump("requests"); bump("errors"); bump(f"exc_{type(e).__name__}")
            try: conn.close()
            except Exception: pass
            conn = None

def valid_login():
    while time.time() < deadline:
        try:
            body = json.dumps({"UserName": "soak", "Password": "my password", "CaptchaToken": captcha()})
            st, data = request("POST", "/api/Auth", {"Content-Type": "application/json", "X-Forwarded-For": "10.1.1.1"}, body)
            bump("requests")
            if st != 200:
                bump("errors"); bump(f"login_status_{st}")
            else:
                tok = json.loads(data)["token"]
                st2, _ = request("GET", "/after-login", {"Authorization": f"Bearer {tok}"})
                bump("requests"); bump("ok" if st2 == 200 else "errors")
        except Exception as e:
            bump("requests"); bump("errors"); bump(f"exc_{type(e).__name__}")
        time.sleep(0.5)

def failed_logins():
    while time.time() < deadline:
        kind = random.random()
        user = "victim" if kind < 0.2 else "u" + "".join(random.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(12))
        body = {"UserName": user, "Password": "wrong-" + str(random.random()), "CaptchaToken": captcha(ok=kind > 0.1)}
        try:
            st, _ = request("POST", "/api/Auth", {"Content-Type": "application/json", "X-Forwarded-For": xff()}, json.dumps(body))
            bump("requests"); bump(f"status_{st}")
            if st == 200: bump("unexpected_success")
            if st >= 500: bump("gateway_5xx")
        except Exception as e:
            bump("requests"); bump(f"exc_{type(e).__name__}")

def forged_tokens():
    n = now(); claims = {"sub": "admin", "name": "admin", "iat": n, "exp": n + 3600}
    valid = jwt({"sub": "alice", "exp": n + 3600})
    h, p, s = valid.split(".")
    return [
        jwt(claims, alg="none"), jwt(claims, alg="none", header={"alg": "None"}),
        jwt(claims, alg="none", header={"alg": "nOnE"}),
        jwt(claims, key=b"attacker-secret-0123456789abcdef0123456789"),
        jwt(claims, key=b""), jwt(claims, header={"alg": "HS256", "kid": "../../dev/null"}, key=b""),
        jwt(claims, header={"alg": "HS256", "jku": "http://127.0.0.1:1/jwks.json"}, key=b"x"),
        f"{h}.{b64(json.dumps(claims).encode())}.{s}", f"{h}.{p}.", f"{h}.{p}",
        jwt({"sub": "admin", "iat": n - 7200, "exp": n - 3600}),
        jwt({"sub": "admin", "nbf": n + 3600, "exp": n + 7200}),
        "a" * 100_000, "not-a-token", f"{valid}.x",
    ]

def smuggling_and_malformed():
    tok = jwt({"sub": "alice", "exp": now() + 3600})
    auth = f"Authorization: Bearer {tok}\r\n"
    sm = "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
    return [
        f"POST /a HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: {len(sm) + 5}\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{sm}",
        f"POST /a HTTP/1.1\r\nHost: x\r\n{auth}Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n{len(sm):x}\r\n{sm}\r\n0\r\n\r\n",
        f"POST /a HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: 0\r\nContent-Length: {len(sm)}\r\n\r\n{sm}",
        f"POST /a HTTP/1.1\r\nHost: x\r\n{auth}Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
        f"POST /a HTTP/1.1\r\nHost: x\r\n{auth}Transfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n",
        f"POST /a HTTP/1.1\r\nHost: x\r\n{auth}Transfer-Encoding: chunked\r\n\r\nfffffffffffffffffff\r\n",
        f"POST /a HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: +5\r\n\r\nhello",
        "GET /a HTTP/1.1\r\n\r\n", "GET /a HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        f"GET /a HTTP/1.1\r\nHost: x\r\nX-Big: {'a' * 70000}\r\n\r\n",
        "GET /a HTTP/1.1\r\nHost: x\r\nX-Bad: a\x00b\r\n\r\n", "GET /a\xff HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET /public/..%2f..%2fadmin HTTP/1.1\r\nHost: x\r\n\r\n", "\x16\x03\x01\x00\x05hello\r\n\r\n",
    ]

def h2_rapid_reset(streams=500):
    def frame(kind, flags, sid, payload=b""):
        return len(payload).to_bytes(3, "big") + bytes([kind, flags]) + sid.to_bytes(4, "big") + payload
    def lit(name, value):
        name, value = name.encode(), value.encode()
        return b"\x00" + bytes([len(name)]) + name + bytes([len(value)]) + value
    block = lit(":method", "GET") + lit(":scheme", "http") + lit(":path", "/reset") + lit(":authority", "x")
    data = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(4, 0, 0)
    for i in range(streams):
        sid = 1 + 2 * i
        data += frame(1, 5, sid, block) + frame(3, 0, sid, (8).to_bytes(4, "big"))
    return data

def attacks():
    forged = forged_tokens(); bad = [m.encode("latin-1") for m in smuggling_and_malformed()]
    while time.time() < deadline:
        r = random.random()
        try:
            if r < 0.5:
                tok = random.choice(forged)
                st, _ = request("GET", "/forged", {"Authorization": f"Bearer {tok}"})
                bump("forged"); bump(f"forged_status_{st}")
                if st == 200: bump("forged_accepted")
            elif r < 0.9:
                out = raw(random.choice(bad))
                bump("malformed"); code = out[9:12].decode("latin-1") if out.startswith(b"HTTP/1.") else "close"
                bump(f"malformed_{code}")
                if code.startswith("5"): bump("gateway_5xx")
            elif r < 0.97:
                # slowloris-ish: half a head, then silence until the gateway hangs up
                t0 = time.time(); raw(b"GET /slow HTTP/1.1\r\nHost: x\r\nX-A: ", timeout=5)
                bump("slowloris"); bump("slowloris_closed_by_gateway" if time.time() - t0 < 4.5 else "slowloris_timeout")
            else:
                raw(h2_rapid_reset(), timeout=2); bump("h2_rapid_reset_bursts")
        except Exception as e:
            bump(f"exc_{type(e).__name__}")

target = {"valid": valid_traffic, "login": valid_login, "failed": failed_logins, "attack": attacks}[role]
ts = [threading.Thread(target=target, daemon=True) for _ in range(threads)]
for t in ts: t.start()
for t in ts: t.join(dur + 30)
print(json.dumps({"role": role, **c}), flush=True)
EOF

TOKEN=$(python3 - "$TMP/jwt.secret" <<'EOF'
import base64, hashlib, hmac, json, sys, time
s = open(sys.argv[1], "rb").read().strip()
b = lambda x: base64.urlsafe_b64encode(x).rstrip(b"=").decode()
h = b(b'{"alg":"HS256","typ":"JWT"}'); p = b(json.dumps({"sub": "soak-wrk", "exp": int(time.time()) + 86400}).encode())
print(f"{h}.{p}." + b(hmac.new(s, f"{h}.{p}".encode(), hashlib.sha256).digest()))
EOF
)
# Sanity before measuring: a valid token passes, none passes without one.
code=$(python3 -c "import http.client,sys; c=http.client.HTTPConnection('127.0.0.1',$GW_PORT,timeout=5); c.request('GET','/',headers={'Authorization':'Bearer $TOKEN'}); print(c.getresponse().status)")
[ "$code" = 200 ] || { echo "soak: a valid token got $code" >&2; cat "$TMP/gateway.log" >&2; exit 1; }

RSS_START=$(rss_kib); FDS_START=$(fds); THREADS_START=$(threads)
echo "soak: gateway pid $GW_PID on :$GW_PORT, upstream $UPSTREAM_KIND :$UP_PORT, ${DUR}s; RSS at start ${RSS_START} KiB"
start=$(date +%s)
LOADS=()
if command -v wrk >/dev/null; then
  timeout $((DUR + 30)) wrk -t1 -c"$CONNS" -d"${DUR}s" --timeout 5s -H "Authorization: Bearer $TOKEN" \
    "http://127.0.0.1:$GW_PORT/wrk" > "$TMP/wrk.out" 2>&1 &
  LOADS+=($!); PIDS+=($!)
else
  timeout $((DUR + 60)) python3 "$TMP/traffic.py" valid "$GW_PORT" "$DUR" "$TMP/jwt.secret" 4 > "$TMP/valid.json" &
  LOADS+=($!); PIDS+=($!)
fi
timeout $((DUR + 60)) python3 "$TMP/traffic.py" login "$GW_PORT" "$DUR" "$TMP/jwt.secret" 1 > "$TMP/login.json" &
LOADS+=($!); PIDS+=($!)
timeout $((DUR + 60)) python3 "$TMP/traffic.py" failed "$GW_PORT" "$DUR" "$TMP/jwt.secret" "$LOGIN_THREADS" > "$TMP/failed.json" &
LOADS+=($!); PIDS+=($!)
timeout $((DUR + 60)) python3 "$TMP/traffic.py" attack "$GW_PORT" "$DUR" "$TMP/jwt.secret" "$ATTACK_THREADS" > "$TMP/attack.json" &
LOADS+=($!); PIDS+=($!)

# Memory samples every 10 s while the load runs.
SAMPLES=()
while [ $(( $(date +%s) - start )) -lt "$DUR" ]; do
  sleep 10
  kill -0 "$GW_PID" 2>/dev/null || break
  SAMPLES+=("$(rss_kib)")
done
for p in "${LOADS[@]}"; do wait "$p" || true; done
ALIVE=yes; kill -0 "$GW_PID" 2>/dev/null || ALIVE=no
sleep 1
RSS_END=$(rss_kib); HWM=$(hwm_kib); FDS_END=$(fds); THREADS_END=$(threads)
code_after=$(python3 -c "import http.client; c=http.client.HTTPConnection('127.0.0.1',$GW_PORT,timeout=5); c.request('GET','/',headers={'Authorization':'Bearer $TOKEN'}); print(c.getresponse().status)" 2>/dev/null || echo down)

python3 - "$TMP" "$DUR" "$RSS_START" "$RSS_END" "$HWM" "$FDS_START" "$FDS_END" "$THREADS_START" "$THREADS_END" "$ALIVE" "$code_after" "${SAMPLES[*]:-}" <<'EOF'
import json, os, re, sys
tmp, dur, rss0, rss1, hwm, fd0, fd1, th0, th1, alive, after, samples = sys.argv[1:13]
def load(name):
    p = os.path.join(tmp, name)
    try:
        return json.loads(open(p).read().strip().splitlines()[-1])
    except Exception:
        return {}
valid = {"requests": 0, "errors": 0}
wrk = os.path.join(tmp, "wrk.out")
if os.path.exists(wrk):
    t = open(wrk).read()
    m = re.search(r"(\d+) requests in", t); valid["requests"] = int(m.group(1)) if m else 0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", t); non2xx = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", t)
    sock = sum(map(int, m.groups())) if m else 0
    valid["errors"] = non2xx + sock
    m = re.search(r"Requests/sec:\s+([\d.]+)", t); valid["rps"] = float(m.group(1)) if m else 0
    m = re.search(r"Latency\s+(\S+)\s+(\S+)\s+(\S+)", t); valid["latency_avg_max"] = f"{m.group(1)} / {m.group(3)}" if m else "?"
    if not m and "requests in" not in t: valid["errors"] += 1; valid["wrk_output"] = t[-400:]
else:
    v = load("valid.json"); valid = {"requests": v.get("requests", 0), "errors": v.get("errors", 0)}
login, failed, attack = load("login.json"), load("failed.json"), load("attack.json")
served = valid["requests"] + login.get("requests", 0) + failed.get("requests", 0) + attack.get("forged", 0) + attack.get("malformed", 0)
valid_errors = valid["errors"] + login.get("errors", 0)
print()
print(f"=== soak report ({dur}s) ===")
print(f"requests served (all clients):      {served}")
print(f"valid traffic:                      {valid}")
print(f"valid logins (+ use of the token):  {login}")
print(f"failed logins:                      {failed}")
print(f"attacks:                            {attack}")
print(f"ERRORS SEEN BY VALID CLIENTS:       {valid_errors}")
print(f"FORGED TOKENS ACCEPTED:             {attack.get('forged_accepted', 0)}")
print(f"failed logins that succeeded:       {failed.get('unexpected_success', 0)}")
print(f"gateway 5xx to attack/failed:       {attack.get('gateway_5xx', 0) + failed.get('gateway_5xx', 0)}")
print(f"gateway RSS start / end / peak:     {int(rss0)//1024} MiB / {int(rss1)//1024} MiB / {int(hwm)//1024} MiB ({rss0} / {rss1} / {hwm} KiB)")
print(f"RSS samples every 10 s (KiB):       {samples}")
print(f"open fds start / end:               {fd0} / {fd1};  threads {th0} / {th1}")
print(f"gateway alive at end: {alive}; valid request after the soak: {after}")
ok = valid_errors == 0 and attack.get("forged_accepted", 0) == 0 and failed.get("unexpected_success", 0) == 0 and alive == "yes" and after == "200"
print("RESULT:", "PASS" if ok else "FAIL")
sys.exit(0 if ok else 1)
EOF
