#!/usr/bin/env bash
# SQL user store benchmark: login latency with a small (10 users) and a large (default 1,000,000 users)
# ASP.NET Identity table, per database, and the most database connections the gateway ever held at once.
#
#   bench/sql_login.sh                                  # PostgreSQL, MySQL/MariaDB, SQLite; 1,000,000 users
#   GATEWAY_BENCH_DBS=postgres GATEWAY_BENCH_USERS=100000 bench/sql_login.sh
#
# Knobs (env): GATEWAY_BENCH_DBS (postgres,mysql,sqlite)  GATEWAY_BENCH_USERS (1000000)
#   GATEWAY_BENCH_LOGINS (300 sequential logins per table; the store-only lookups are 4x that)
#   GATEWAY_TEST_POSTGRES_URL / GATEWAY_TEST_MYSQL_URL (default: the local servers, as in .ci/run)
#   PROFILE=release to build optimised (slow to build on 2 cores; the default dev profile optimises
#   dependencies, the gateway crate itself is unoptimised); TIME_LIMIT (seconds, default 1500).
#
# What it does (tests/sql_store.rs, bench_login_latency_small_vs_large_table): for each database and table
# size, a fresh schema with an `AspNetUsers` table shaped like ASP.NET Identity's (unique index on
# NormalizedUserName), filled in one INSERT ... SELECT; the lookup's plan (EXPLAIN); a gateway with
# users.max_connections = 4 behind a loopback TCP forwarder that counts connections; 20 warm-up logins, then
# sequential logins over HTTP (fake Turnstile on loopback, a V2 hash so password hashing does not drown the
# lookup) of users spread over the whole table; the lookup alone through the store; 64 concurrent logins.
# Every request goes to loopback only, bounded in count, and the run stops by itself.
set -euo pipefail
cd "$(dirname "$0")/.."

export GATEWAY_TEST_POSTGRES_URL="${GATEWAY_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}"
export GATEWAY_TEST_MYSQL_URL="${GATEWAY_TEST_MYSQL_URL:-mysql://root@127.0.0.1:3306/test}"
export GATEWAY_BENCH_USERS="${GATEWAY_BENCH_USERS:-1000000}"
export GATEWAY_BENCH_LOGINS="${GATEWAY_BENCH_LOGINS:-300}"
export GATEWAY_BENCH_DBS="${GATEWAY_BENCH_DBS:-postgres,mysql,sqlite}"
export GATEWAY_LOG="${GATEWAY_LOG:-warn}"

profile=()
if [[ "${PROFILE:-dev}" == release ]]; then
  profile=(--release)
fi

echo "# sql_login: dbs=$GATEWAY_BENCH_DBS users=10 vs $GATEWAY_BENCH_USERS logins=$GATEWAY_BENCH_LOGINS profile=${PROFILE:-dev}"
echo "# $(nproc) cores, $(uname -sr), $(date -u +%Y-%m-%dT%H:%M:%SZ)"
timeout "${TIME_LIMIT:-1500}" cargo test "${profile[@]}" --test sql_store -- \
  --ignored --exact bench_login_latency_small_vs_large_table --nocapture --test-threads 1
