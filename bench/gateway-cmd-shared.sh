#!/usr/bin/env bash
# GATEWAY_CMD for ../shared/bench/run.sh with `[shared]` on a local Redis (issue 13: "proxied throughput with
# and without Redis"); see gateway-cmd-feature.sh.
BENCH_FEATURE=shared exec "$(dirname "${BASH_SOURCE[0]}")/gateway-cmd-feature.sh"
