#!/usr/bin/env bash
# The gateway's performance benchmark, one command (see docs/performance.md):
#
#   bench/run.sh
#
# 1. installs what it needs from Debian if missing (nginx haproxy wrk curl; `apt-get update` first);
# 2. builds the gateway in release mode (cargo build --release);
# 3. compare.sh: the gateway vs nginx-plain, HAProxy plain and HAProxy-jwt, interleaved on loopback, with the
#    200/401 checks first; memory idle and at 1,000 (all) and 10,000 (gateway) keep-alive connections  ~5-6 min
# 4. login.sh: logins/s at the hash pool's limit vs the ceiling, proxied p99 while logins saturate the pool,
#    RSS during 1,000 concurrent logins                                                               ~1.5 min
# 5. optional: CRITERION=1 adds the criterion micro-benchmarks (token, routing, headers; CRITERION=all adds
#    password), short settings                                                                        ~3-6 min
#    PROFILE=1 adds a perf profile of the proxied path (bench/profile.sh)                             ~1 min
# and writes bench/results/<timestamp>/results.md (+ raw files), also copied to bench/results/latest.md.
#
# Knobs: SKIP_APT=1 SKIP_BUILD=1 GW_BIN=path PHASES="compare login" RESULTS_DIR=dir, and those of each script.
# Every phase runs under `timeout`; servers are stopped by PID (also on Ctrl-C); loopback only.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
PHASES=${PHASES:-"compare login"}
[ -n "${CRITERION:-}" ] && PHASES="$PHASES criterion"
[ -n "${PROFILE:-}" ] && PHASES="$PHASES profile"
TS=$(date +%Y%m%d-%H%M%S)
BASE=${RESULTS_DIR:-$HERE/results}
OUT=$BASE/$TS; mkdir -p "$OUT"
export GW_BIN=${GW_BIN:-$ROOT/target/release/gateway}

# ---------- 1. tools ----------
declare -A PKG=([nginx]=nginx [haproxy]=haproxy [wrk]=wrk [curl]=curl [python3]=python3 [ss]=iproute2
                [taskset]=util-linux [ps]=procps)
need=()
for b in "${!PKG[@]}"; do command -v "$b" >/dev/null || need+=("${PKG[$b]}"); done
case " $PHASES " in *" profile "*) command -v perf >/dev/null || need+=(linux-perf) ;; esac
if [ ${#need[@]} -gt 0 ]; then
  if [ -n "${SKIP_APT:-}" ]; then echo "missing: ${need[*]} (SKIP_APT set)" >&2; exit 2; fi
  echo "== apt-get install ${need[*]}"
  SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# ---------- 2. build ----------
if [ -z "${SKIP_BUILD:-}" ]; then
  echo "== cargo build --release"
  (cd "$ROOT" && timeout 1800 cargo build --release)
fi
[ -x "$GW_BIN" ] || { echo "no gateway binary at $GW_BIN" >&2; exit 2; }
COMMIT=$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)
DIRTY=$(cd "$ROOT" && git status --porcelain -- src Cargo.toml 2>/dev/null | grep -q . && echo " (+ uncommitted changes in src/)" || true)

# ---------- 3-5. phases ----------
declare -A FILES=()
for ph in $PHASES; do
  case "$ph" in
    compare)
      echo "== compare.sh (interleaved comparison, ~5-6 min)"
      RESULTS_DIR=$OUT timeout 1500 "$HERE/compare.sh" 2>&1 | tee "$OUT/compare.log"
      FILES[compare]=$(grep '^RESULT_FILES' "$OUT/compare.log" | tail -1 | cut -d' ' -f2) ;;
    login)
      echo "== login.sh (login load, ~1.5 min)"
      RESULTS_DIR=$OUT timeout 600 "$HERE/login.sh" 2>&1 | tee "$OUT/login.log"
      FILES[login]=$(grep '^RESULT_FILES' "$OUT/login.log" | tail -1 | cut -d' ' -f2) ;;
    criterion)
      benches="--bench token --bench routing --bench headers"
      [ "${CRITERION:-}" = all ] && benches="$benches --bench password"
      echo "== cargo bench $benches (short settings)"
      since=$(date +%s)
      (cd "$ROOT" && timeout 1800 cargo bench $benches -- --warm-up-time 1 --measurement-time 3) 2>&1 \
        | tee "$OUT/criterion.log" | grep -E '^[a-z].*time:|^Benchmarking .*: Analyzing' | grep time: || true
      python3 "$HERE/criterion_table.py" "${CARGO_TARGET_DIR:-$ROOT/target}/criterion" --since "$since" > "$OUT/criterion.md" \
        && FILES[criterion]=$OUT/criterion ;;
    profile)
      echo "== profile.sh (perf, ~1 min)"
      RESULTS_DIR=$OUT timeout 600 "$HERE/profile.sh" > "$OUT/profile.log" 2>&1 || true
      FILES[profile]=$(ls "$OUT"/*-profile-*.txt 2>/dev/null | tail -1) ;;
    *) echo "unknown phase $ph" >&2; exit 2 ;;
  esac
done

# ---------- results.md ----------
section() {  # section PHASE TITLE: the phase's markdown under a heading, if the phase ran
  [ -n "${FILES[$1]:-}" ] || return 0
  echo; echo "## $2"; echo
  cat "${FILES[$1]}.md"
}
{
  echo "# Gateway benchmark results, $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo
  echo "Commit \`$COMMIT\`$DIRTY, \`$("$GW_BIN" --version 2>/dev/null || echo gateway)\`; $(nproc) CPUs" \
       "($(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo)), $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo);" \
       "$(nginx -v 2>&1 | sed 's/.*: //'), HAProxy $(haproxy -v 2>/dev/null | awk 'NR==1{print $3}'), $(wrk -v 2>&1 | awk 'NR==1{print $1, $2}')."
  echo "Command: \`bench/run.sh\` (PHASES=\"$PHASES\"). How to read these tables: docs/performance.md."
  section compare "Proxied GET: gateway vs nginx and HAProxy"
  section login "Login load"
  section criterion "Micro-benchmarks (criterion, short settings)"
  if [ -n "${FILES[profile]:-}" ]; then
    echo; echo "## Profile (perf, proxied GET with token)"; echo
    echo '```'; sed -n '1,60p' "${FILES[profile]}"; echo '```'
  fi
} > "$OUT/results.md"
cp "$OUT/results.md" "$BASE/latest.md"
echo
echo "results: $OUT/results.md (also $BASE/latest.md)"
