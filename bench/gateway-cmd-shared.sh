#!/usr/bin/env bash
# GATEWAY_CMD for ../shared/bench/run.sh: the harness's own gateway configuration
# (shared/bench/examples/gateway-cmd.sh) plus `[shared]` on a local Redis, to show that the proxied path pays
# nothing for the shared store (issue 13: "proxied throughput with and without Redis").
#   GATEWAY_CMD="$PWD/bench/gateway-cmd-shared.sh" GATEWAY_PORT=18090 BENCH_GATEWAY_BIN=$PWD/target/release/gateway \
#     ../shared/bench/run.sh
# BENCH_REDIS_URL (default redis://127.0.0.1:6379); keys go under a per-run prefix with TTLs.
set -euo pipefail
bin=${BENCH_GATEWAY_BIN:?set BENCH_GATEWAY_BIN to the absolute path of the release gateway binary}
dir=$(mktemp -d /tmp/gw-bench-shared.XXXXXX)
secret=${JWT_SECRET:-$(cat "${JWT_SECRET_FILE:?}")}
printf '[[users]]\nname = "bench"\npassword_hash = "$argon2id$v=19$m=19456,t=2,p=1$wV5q73RXaLl+fYxojRf69Q$hW3owtbNPIOD3HMq1VN3cEdWNKCYqHCgPMqj1aCiNNo"\nactive = true\n' > "$dir/users.toml"
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
[shared]
url = "${BENCH_REDIS_URL:-redis://127.0.0.1:6379}"
prefix = "bench-$$"
[[routes]]
prefix = "/"
upstream = "${UPSTREAM_URL}"
TOML
threads=${BENCH_THREADS:-1}
for v in $(compgen -e | grep '^GATEWAY_'); do unset "$v"; done
export GATEWAY_WORKER_THREADS=$threads GATEWAY_LOG=warn
exec "$bin" serve --config "$dir/gateway.toml"
