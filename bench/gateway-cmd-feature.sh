#!/usr/bin/env bash
# GATEWAY_CMD for ../shared/bench/run.sh: the harness's own gateway configuration
# (shared/bench/examples/gateway-cmd.sh) plus one feature, to measure what that feature costs per proxied
# request against the same run's nginx-plain:
#   BENCH_FEATURE=none       the harness's configuration as it is (the baseline of a with/without pair)
#   BENCH_FEATURE=shared     [shared] on a local Redis (issue 13): proxied requests never touch it
#   BENCH_FEATURE=assertion  a signed identity assertion on every request (issue 18), EdDSA, default cache
#   BENCH_FEATURE=pool       the route balanced over three targets (issue 17): the harness's one upstream
#                            named three ways (127.0.0.1, localhost, 127.1), round robin, health checks on
#   BENCH_FEATURE=pool-user  the same with balance = "user" (affinity by the token's sub)
#
#   BENCH_FEATURE=assertion GATEWAY_CMD="$PWD/bench/gateway-cmd-feature.sh" GATEWAY_PORT=18090 \
#     BENCH_GATEWAY_BIN=$PWD/target/release/gateway ../shared/bench/run.sh
# BENCH_REDIS_URL (default redis://127.0.0.1:6379) for `shared`; keys go under a per-run prefix with TTLs.
set -euo pipefail
bin=${BENCH_GATEWAY_BIN:?set BENCH_GATEWAY_BIN to the absolute path of the release gateway binary}
feature=${BENCH_FEATURE:-none}
dir=$(mktemp -d /tmp/gw-bench-feature.XXXXXX)
secret=${JWT_SECRET:-$(cat "${JWT_SECRET_FILE:?}")}
printf '[[users]]\nname = "bench"\npassword_hash = "$argon2id$v=19$m=19456,t=2,p=1$wV5q73RXaLl+fYxojRf69Q$hW3owtbNPIOD3HMq1VN3cEdWNKCYqHCgPMqj1aCiNNo"\nactive = true\n' > "$dir/users.toml"
port=${UPSTREAM_ADDR##*:}
upstream="upstream = \"${UPSTREAM_URL}\""
extra=""
case "$feature" in
  none) ;;
  shared) extra="[shared]
url = \"${BENCH_REDIS_URL:-redis://127.0.0.1:6379}\"
prefix = \"bench-$$\"" ;;
  assertion) extra="[identity.assertion]
header = \"X-Auth-Assertion\"" ;;
  pool|pool-user)
    upstream="upstreams = [\"http://127.0.0.1:$port\", \"http://localhost:$port\", \"http://127.1:$port\"]
health = { path = \"/\", interval = \"2s\" }"
    [ "$feature" = pool-user ] && upstream="$upstream
balance = \"user\"" ;;
  *) echo "BENCH_FEATURE=none|shared|assertion|pool|pool-user" >&2; exit 2 ;;
esac
cat > "$dir/gateway.toml" <<TOML
[server]
listen = "${LISTEN_ADDR}"
[auth]
secret = "${secret}"
[identity]
user_header = "X-Auth-Sub"
[login.throttle]
ip_max_failures = 1000000
[log]
access = ${BENCH_ACCESS_LOG:-false}
level = "warn"
[metrics]
enabled = ${BENCH_METRICS:-true}
listen = "127.0.0.1:${BENCH_METRICS_PORT:-18099}"
[users]
file = "users.toml"
${extra}
[[routes]]
prefix = "/"
${upstream}
TOML
threads=${BENCH_THREADS:-1}
for v in $(compgen -e | grep '^GATEWAY_'); do unset "$v"; done
export GATEWAY_WORKER_THREADS=$threads GATEWAY_LOG=warn
exec "$bin" serve --config "$dir/gateway.toml"
