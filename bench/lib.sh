# Shared start-up for the bench scripts (sourced, not run): a temp dir removed on exit, every started
# process (and its children) stopped on exit, tool checks, and waiting for a port.
#
#   HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
#   . "$HERE/lib.sh"
#   bench_require "apt-get install nginx wrk curl" nginx wrk curl
#   bench_tmp loginbench          # sets TMP, installs the EXIT/INT/TERM traps
#   start NAME PORT CPUS cmd...    # CPUS "" = no pinning; appends to PIDS and NAMES
#   rss_kib PID                    # RSS (KiB) of PID and its descendants
#
# Sets RESULTS_DIR (default: bench/results if writable, else /tmp/gateway-bench-results) and raises the
# descriptor limit (wrk -c10000 needs more than 10000).

RESULTS_DIR=${RESULTS_DIR:-$( [ -w "$HERE" ] && echo "$HERE/results" || echo /tmp/gateway-bench-results )}
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
PIDS=(); NAMES=()

bench_require() {  # bench_require HINT TOOL...: exit 2 naming the first missing tool
  local hint=$1 b; shift
  for b in "$@"; do
    command -v "$b" >/dev/null || { echo "missing $b ($hint)" >&2; exit 2; }
  done
}

descendants() { local c; for c in $(ps -o pid= --ppid "$1" 2>/dev/null); do descendants "$c"; echo "$c"; done; }
rss_kib() {  # RSS (KiB) of PID and its descendants
  local p=$1 q t=0 r
  for q in $p $(descendants "$p"); do
    r=$(awk '/^Rss:/{print $2}' "/proc/$q/smaps_rollup" 2>/dev/null || echo 0)
    t=$((t + ${r:-0}))
  done
  echo "$t"
}
stop_pid() {  # TERM the process and its descendants (by PID), wait, then KILL leftovers
  local p=$1 all i
  all="$(descendants "$p") $p"
  kill -TERM $all 2>/dev/null || true
  for i in $(seq 50); do kill -0 $all 2>/dev/null || break; sleep 0.1; done
  kill -KILL $all 2>/dev/null || true
  wait "$p" 2>/dev/null || true
}
cleanup() {  # stops what was started, newest first, then removes the temp dir
  local i
  trap - EXIT INT TERM
  for ((i=${#PIDS[@]}-1; i>=0; i--)); do stop_pid "${PIDS[$i]}"; done
  rm -rf "$TMP"
}
bench_tmp() {  # bench_tmp PREFIX: TMP=/tmp/PREFIX.XXXXXX, traversable by nginx workers (nobody)
  TMP=$(mktemp -d "/tmp/$1.XXXXXX"); chmod 755 "$TMP"
  trap cleanup EXIT
  trap 'exit 130' INT TERM
}

pin() { local cpus=$1; shift; if [ -n "$cpus" ]; then taskset -c "$cpus" "$@"; else "$@"; fi; }
port_busy() { [ -n "$(ss -Hltn "sport = :$1")" ]; }
wait_port() {  # wait_port NAME PORT PID [TRIES]: TRIES x 0.1 s (default 10 s), giving up early if PID dies
  local i
  for i in $(seq "${4:-100}"); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null; then return 0; fi
    kill -0 "$3" 2>/dev/null || break
    sleep 0.1
  done
  echo "!! $1 did not come up on port $2; logs:" >&2; tail -n 30 "$TMP"/*.log >&2 2>/dev/null || true; exit 1
}
start() {  # start NAME PORT CPUS cmd...: runs cmd in the background, logging to $TMP/NAME.log
  local name=$1 port=$2 cpus=$3; shift 3
  port_busy "$port" && { echo "!! port $port already in use (for $name)" >&2; exit 1; }
  # no function/subshell wrapper here, so $! is the server's own PID (taskset execs)
  if [ -n "$cpus" ]; then taskset -c "$cpus" "$@" >"$TMP/$name.log" 2>&1 &
  else "$@" >"$TMP/$name.log" 2>&1 & fi
  PIDS+=("$!"); NAMES+=("$name")
  wait_port "$name" "$port" "$!"
}
