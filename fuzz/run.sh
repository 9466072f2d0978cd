#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 20) and exits non-zero if any target finds a crash.
#
#   fuzz/run.sh [SECONDS]            # e.g. fuzz/run.sh 20 from .ci/run
#   FUZZ_TARGETS="token_verify" fuzz/run.sh 300
#
# Works on the stable toolchain: cargo-fuzz passes nightly-only flags, which RUSTC_BOOTSTRAP=1 allows.
# Installs cargo-fuzz (pinned) if missing (~1.5 min on 2 cores); the first build of the targets compiles
# the gateway and its dependencies with coverage instrumentation (~6-10 min on 2 cores; later runs reuse
# fuzz/target). No sanitizer (-s none): the gateway forbids unsafe code, so AddressSanitizer would find
# little and cost 2-3x in speed; panics, failed assertions, timeouts and OOMs are what is caught.
# Seeds are read from fuzz/corpus/<target>/ (never written to); the inputs the fuzzer finds go to
# fuzz/target/corpus-work/<target>/, crashes to fuzz/artifacts/<target>/.
set -euo pipefail

SECS=${1:-20}
[[ "$SECS" =~ ^[0-9]+$ ]] && [ "$SECS" -ge 1 ] || { echo "usage: $0 [SECONDS]" >&2; exit 2; }
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
TARGETS=${FUZZ_TARGETS:-"path_normalise token_verify bearer_extract password_verify header_handling"}
CARGO_FUZZ_VERSION=0.13.2

export RUSTC_BOOTSTRAP=1
export CARGO_TERM_COLOR=never

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz $CARGO_FUZZ_VERSION (about 1.5 min)..."
  cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked --quiet
fi

cd "$ROOT"
echo "fuzz: building targets ($(cargo fuzz --version))..."
build_start=$(date +%s)
cargo fuzz build -O -s none
echo "fuzz: build took $(( $(date +%s) - build_start )) s"

fail=0
summary=()
for t in $TARGETS; do
  work="$HERE/target/corpus-work/$t"
  mkdir -p "$work" "$HERE/artifacts/$t"
  log="$HERE/target/fuzz-$t.log"
  echo "fuzz: $t for ${SECS}s"
  # -timeout: one input slower than 10 s is a finding (DoS); -rss_limit_mb bounds memory per input run.
  set +e
  timeout $(( SECS + 120 )) cargo fuzz run -O -s none "$t" "$work" "$HERE/corpus/$t" -- \
    -max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 > "$log" 2>&1
  rc=$?
  set -e
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*$')
  if [ "$rc" -ne 0 ]; then
    fail=1
    summary+=("$t: FAILED (exit $rc) after ${execs:-?} execs; see $log and $HERE/artifacts/$t/")
    tail -40 "$log" >&2
  else
    summary+=("$t: ok, ${execs:-?} execs in ${SECS}s, coverage ${cov:-?} edges")
  fi
done

echo
echo "fuzz summary:"
for line in "${summary[@]}"; do echo "  $line"; done
exit "$fail"
