#!/usr/bin/env bash
# bench/run.sh — Veltrix benchmarks, side by side with their anchors, in one run.
#
#   bench/run.sh [healthz] [players] [scans] [chests] [leaderboard] [tiles] [live] [anchors] [replay] [restart] [pg]
#                [migrate] [audit] [hashcost] [cluster]
#   BENCH="pg" bash bench/run.sh     (the same: workloads from $BENCH when no argument; make bench BENCH=pg)
#
# tiles: a 256×256 map of 1.2 KB tiles loaded with `veltrix tiles import`, random reads
# (wrk -c64), then the same reads while a new version is published every 0.5 s; with its
# own anchors in the same run (not with BENCH_QUICK): nginx serving the same files
# (1 worker) and PostgreSQL (pgbench, the original design's tile SELECT).
#
# replay: build/bench_replay loads 1M players into one hunt (decode + apply), reports
# events/s and bytes per player. restart: build/bench_gen_store writes a store of 10M
# events (with a snapshot 500k events before the end), then times `veltrix serve` start
# to /healthz ready with the snapshot and with --ignore-snapshots (whole log), and checks
# the digest. Both report as checks under the table.
#
# pg: Veltrix with its store on PostgreSQL (--store postgres://, own database in the anchors'
# PostgreSQL instance: default settings, fsync on, synchronous_commit on): durable scans and
# chest opens (wrk as above; CPU per request = veltrix + every PostgreSQL process), beside
# the PostgreSQL anchors of the same run (1-row INSERT tx, SKIP LOCKED chest tx); then
# bench_gen_store loads a 10M-event hunt into another database (COPY), bench_replay replays
# it from PostgreSQL (read alone, then read + decode + apply), and `veltrix serve --store`
# is timed from start to /healthz with the snapshot and from the whole log (checks).
#
# audit: bench/audit.sh: a /log export of BENCH_AUDIT_EVENTS events (default 10M; quick:
# 200k) audited from the file (`veltrix audit --log`). hashcost: durable scans against this
# build and against a build without the hash chain (make NOCHAIN=1), alternating runs on two
# servers, CPU per request of each; then bench_hash, the chain alone per scan event.
#
# cluster: bench/cluster.sh (issue 15): three nodes (n1, n2, n3) on one database of the
# PostgreSQL instance above (started for it alone when pg and anchors are not run):
# durable scans against the hunt's owner, through a non-owner (forwarded), and over the
# three nodes (wrk rows cl_direct, cl_forward, cl_spread); the replica lag sampled during
# the owner-direct runs; the live workload with its clients on one node and over three;
# failover rounds (kill -9 of a hunt's owner under load, time to the first write through a
# survivor: 10 rounds, quick 3). Checks under the table.
#
# No argument: everything. Veltrix (fsync always) runs on a temp data dir on loopback;
# each workload is wrk -t1 -c64, 5 s, 3 runs, median reported. Anchors (nginx, PostgreSQL
# 15 + pgbench, Redis 7 + redis-benchmark) run from the Debian packages in temp dirs,
# one at a time after Veltrix. Prints one table and writes it to bench/results/latest.md
# (full runs) or bench/results/partial.md (quick or subset runs).
#
# Environment:
#   BUILD=build            where the binary is ($BUILD/veltrix, relative to the repo)
#   BENCH_QUICK=1          1 run of 2 s per workload, anchors skipped (smoke test)
#   BENCH_RUNS, BENCH_DURATION, BENCH_THREADS, BENCH_CONNS   wrk settings (3, 5, 1, 64)
#   BENCH_PLAYERS=2000 BENCH_CODES=500    players and codes per scan hunt
#   BENCH_PG_CHESTS=1000000               chests in the PostgreSQL anchor (1,000 zones)
#   BENCH_LIVE_CLIENTS=10000 BENCH_LIVE_RATE=25 BENCH_LIVE_SECONDS=10
#                                         live: WebSocket clients, scans/s, seconds
#                                         (quick: 1000 clients, 3 s)
#   BENCH_OUT=path.md                     where to write the table
#   BENCH_KEEP=1                          keep the temp dir (logs, wrk outputs)
#   BENCH_REPLAY_PLAYERS=1000000         players for the replay workload (quick: 100000)
#   BENCH_RESTART_EVENTS=10000000 BENCH_RESTART_TAIL=500000   restart store (quick: 1M, 100k)
#   BENCH_QUIET_BUDGET=45                 seconds in all to wait, before runs, for other
#                                         processes to leave the CPUs (0: never wait)
#   BENCH_VX_ARGS="--flag value"          extra `veltrix serve` flags for the main server
#                                         (A/B runs of a setting)
#   BENCH_PG_RESTART_RUNS=2               pg: bench_replay runs and restarts per mode (quick: 1)
#   BENCH_PG_LOAD=copy                    pg: how bench_gen_store loads the 10M events (copy, or
#                                         store: the server's pipelined inserts, slower)
# Every process it starts is stopped by PID on exit; every load is bounded in time.
set -uo pipefail   # no -e: a failing step is reported and the rest still runs

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
BUILD=${BUILD:-build}
case $BUILD in /*) BIN=$BUILD/veltrix ;; *) BIN=$ROOT/$BUILD/veltrix ;; esac
QUICK=${BENCH_QUICK:-0}
if [ "$QUICK" = 1 ]; then RUNS=${BENCH_RUNS:-1}; DUR=${BENCH_DURATION:-2}
else RUNS=${BENCH_RUNS:-3}; DUR=${BENCH_DURATION:-5}; fi
THREADS=${BENCH_THREADS:-1}
CONNS=${BENCH_CONNS:-64}
PLAYERS=${BENCH_PLAYERS:-2000}
CODES=${BENCH_CODES:-500}
PG_CHESTS=${BENCH_PG_CHESTS:-1000000}
PG_ZONES=1000
PG_CLIENTS=32
PG_SECONDS=10
REDIS_CLIENTS=32
REDIS_SECONDS=5
HZ=$(getconf CLK_TCK)
KEY=bench-admin-key-$$
PY="python3 $BENCH_DIR/vxbench.py"

usage() { sed -n '2,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 2; }

# ------------------------------------------------------------------ what to run
ALL=(healthz players scans chests leaderboard tiles live anchors replay restart pg migrate audit hashcost cluster)
declare -A WANT=()
[ $# -eq 0 ] && [ -n "${BENCH:-}" ] && set -- $BENCH
if [ $# -eq 0 ]; then
  for w in "${ALL[@]}"; do WANT[$w]=1; done
  [ "$QUICK" = 1 ] && unset 'WANT[anchors]'
  SUBSET=0
else
  for w in "$@"; do
    case $w in
      healthz|players|scans|chests|leaderboard|tiles|live|anchors|replay|restart|pg|migrate|audit|hashcost|cluster) WANT[$w]=1 ;;
      -h|--help) usage ;;
      *) echo "run.sh: unknown workload '$w'" >&2; usage ;;
    esac
  done
  SUBSET=1
fi
want() { [ -n "${WANT[$1]:-}" ]; }
VX_WANTED=0
for w in healthz players scans chests leaderboard; do want $w && VX_WANTED=1; done

if [ "$QUICK" = 1 ] || [ "$SUBSET" = 1 ]; then OUT=${BENCH_OUT:-$BENCH_DIR/results/partial.md}
else OUT=${BENCH_OUT:-$BENCH_DIR/results/latest.md}; fi

need=(python3 wrk curl timeout)
want anchors && need+=(pgbench psql redis-server redis-benchmark redis-cli nginx)
want tiles && [ "$QUICK" != 1 ] && need+=(pgbench psql nginx)
want pg && need+=(pgbench psql)
want cluster && need+=(psql)
for c in "${need[@]}"; do
  command -v "$c" >/dev/null || { echo "run.sh: '$c' not found (make bench installs it: scripts/deps.sh --bench)" >&2; exit 1; }
done
if { [ "$VX_WANTED" = 1 ] || want tiles || want live || want pg || want cluster; } && [ ! -x "$BIN" ]; then
  echo "run.sh: $BIN not found; build it first (make $BUILD/veltrix)" >&2; exit 1
fi

# ------------------------------------------------------------------ processes and cleanup
TMPD=$(mktemp -d /tmp/veltrix-bench.XXXXXX)
chmod 711 "$TMPD"
RESULTS=$TMPD/results.jsonl
CHECKS=$TMPD/checks.txt
NOTES=$TMPD/anchor-notes.txt
: >"$RESULTS"; : >"$CHECKS"; : >"$NOTES"
STARTED=()        # PIDs this script started
PG_DATA=""        # set while our PostgreSQL may be running
PG_PID=""
PG_PORT=""

forget() { local p keep=(); for p in "${STARTED[@]}"; do [ "$p" != "$1" ] && keep+=("$p"); done; STARTED=("${keep[@]}"); }

stop_pid() {  # stop_pid PID [seconds]: TERM, wait, then KILL — that PID only
  local pid=$1 i
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < ${2:-10} * 10; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    echo "run.sh: PID $pid did not stop on SIGTERM, sending SIGKILL" >&2
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}

pg_stop() {
  [ -n "$PG_DATA" ] || return 0
  $AS_PG "$PGBIN/pg_ctl" -D "$PG_DATA" -m fast -t 20 stop >/dev/null 2>&1 || true
  [ -n "$PG_PID" ] && stop_pid "$PG_PID" 5
  PG_DATA=""; PG_PID=""; PG_PORT=""
}

cleanup() {
  local rc=$?
  set +e
  trap - EXIT INT TERM
  pg_stop
  local p
  for p in "${STARTED[@]}"; do stop_pid "$p"; done
  if [ "${BENCH_KEEP:-0}" = 1 ]; then echo "run.sh: kept $TMPD" >&2; else rm -rf "$TMPD"; fi
  exit $rc
}
trap cleanup EXIT
trap 'echo "run.sh: interrupted" >&2; exit 130' INT TERM

check() { echo "$*" >>"$CHECKS"; echo "  check: $*"; }

# Load accounting around one measured run: the load generator's CPU (children of this
# shell, from `times`) and the whole machine's busy CPU (/proc/stat), so the report can
# show how much CPU other processes took during the run.
MEAS=(--times0 "$TMPD/times0" --times1 "$TMPD/times1" --sys0 "$TMPD/sys0" --sys1 "$TMPD/sys1")
meas_begin() { $PY sysbusy >"$TMPD/sys0"; times >"$TMPD/times0"; }
meas_end() { times >"$TMPD/times1"; $PY sysbusy >"$TMPD/sys1"; }

# A run during which other processes kept > 0.25 cores busy is "disturbed": it is kept in
# the detail but left out of the median, and run again while the retry budget lasts.
RETRY_LEFT=${BENCH_RETRIES:-5}
last_field() {  # a field of the last result: errors | disturbed | other
  tail -n 1 "$RESULTS" | python3 -c 'import json,sys
r = json.load(sys.stdin)
f = sys.argv[1]
if f == "errors": print(r.get("non2xx", 0) + sum(r.get("sock_err", {}).values()) + r.get("failed", 0))
elif f == "disturbed": print(1 if r.get("disturbed") else 0)
else: print("%.2f" % (r.get("other_util") or 0))' "$1"
}
retry_if_disturbed() {  # status 0: the last run was disturbed and will be run again
  [ "$(last_field disturbed)" = 1 ] || return 1
  if [ "$RETRY_LEFT" -gt 0 ]; then
    RETRY_LEFT=$((RETRY_LEFT - 1))
    echo "  (other processes used $(last_field other) cores during that run: left out of the median, one more run; retries left $RETRY_LEFT)"
    return 0
  fi
  echo "  (other processes used $(last_field other) cores during that run, no retries left: the run counts, flagged ⚠)"
  return 1
}

# Before each measured run, wait (within a total budget) for the machine to be quiet:
# other people's processes share these 2 cores. Nothing is killed; it is only waited for.
QUIET_LEFT=${BENCH_QUIET_BUDGET:-45}
quiet() {
  [ "$QUIET_LEFT" -gt 0 ] || return 0
  local r waited load
  r=$($PY quiet --max-wait "$QUIET_LEFT" --threshold 0.25) || return 0
  read -r waited load <<<"$r"
  QUIET_LEFT=$((QUIET_LEFT - ${waited%.*}))
  if [ "${waited%.*}" -ge 1 ]; then
    echo "  (waited ${waited}s for other processes to leave the CPUs; load now $load cores; quiet budget left ${QUIET_LEFT}s)"
  fi
}
log() { printf '\n== %s\n' "$*"; }

# ------------------------------------------------------------------ Veltrix
VX_PID=""; VX_URL=""; VX_DATA=$TMPD/veltrix-data; VX_LOG=$TMPD/veltrix.log; VX_DEAD=0

# The load generators far exceed the default limits from one address (127.0.0.1): the
# limits stay on (their cost is measured) but out of reach. README "Limits".
VX_LIMITS="--rate-player 1000000 --rate-ip 10000000 --rate-ip-tiles 10000000 --players-per-ip-per-min 100000000 --max-speed 1e9 ${BENCH_VX_ARGS:-}"
vx_start() {
  local port
  port=$($PY freeport)
  VX_URL=http://127.0.0.1:$port
  mkdir -p "$VX_DATA"
  VX_CMD="$BIN serve --listen 127.0.0.1:$port --data $VX_DATA${VX_STORE_ARGS:+ $VX_STORE_ARGS} --admin-key $KEY --fsync always --token-ttl 3600 $VX_LIMITS"
  echo "--- start: $VX_CMD" >>"$VX_LOG"
  $VX_CMD >>"$VX_LOG" 2>&1 &
  VX_PID=$!
  STARTED+=("$VX_PID")
  local t0=$SECONDS
  if ! $PY wait-ready "$VX_URL/healthz" 60 "$VX_PID"; then
    echo "run.sh: veltrix did not become ready; log tail:" >&2; tail -n 30 "$VX_LOG" >&2
    return 1
  fi
  VX_READY_S=$((SECONDS - t0))
}

vx_alive() {
  [ "$VX_DEAD" = 0 ] || return 1
  if ! kill -0 "$VX_PID" 2>/dev/null; then
    local rc=0; wait "$VX_PID" 2>/dev/null || rc=$?
    forget "$VX_PID"
    VX_DEAD=1
    mkdir -p "$BENCH_DIR/results"; cp "$VX_LOG" "$BENCH_DIR/results/veltrix-server.log"
    check "SERVER DIED during '$1' (exit status $rc); log copied to bench/results/veltrix-server.log; tail: $(tail -n 5 "$VX_LOG" | tr '\n' ' ')"
    return 1
  fi
}

# vx_wrk WORKLOAD RUN ROUTE SCRIPT PATH [stats-hunt stats-field] -- [lua args...]
vx_wrk() {
  local w=$1 run=$2 route=$3 script=$4 path=$5 shunt=${6:-} sfield=${7:-}
  shift 7 || shift $#
  [ "${1:-}" = -- ] && shift
  local out=$TMPD/wrk-$w-$run.txt diag=${DIAG:-0} d=$DUR
  [ "$diag" = 1 ] && { out=$TMPD/wrk-$w-diag.txt; d=2; }
  local cmd=(wrk -t"$THREADS" -c"$CONNS" -d"${d}s" --timeout 5s --latency -s "$BENCH_DIR/$script" "$VX_URL$path")
  [ $# -gt 0 ] && cmd+=(-- "$@")
  local sargs=()
  if [ -n "$shunt" ]; then
    $PY stats "$VX_URL" "$shunt" >"$TMPD/s0.json"
    sargs=(--stats0 "$TMPD/s0.json" --stats1 "$TMPD/s1.json" --stat-field "$sfield")
  fi
  $PY metrics "$VX_URL" >"$TMPD/m0.json"
  local t0 t1 rc=0
  quiet
  t0=$($PY cpu "$VX_PID" ${VX_CPU_ALSO:-})
  meas_begin
  BENCH_LUA_DIR=$BENCH_DIR BENCH_THREADS=$THREADS BENCH_DIAG=$diag \
    timeout -k 5 $((d + 60)) "${cmd[@]}" >"$out" 2>&1 || rc=$?
  meas_end
  t1=$($PY cpu "$VX_PID" ${VX_CPU_ALSO:-} 2>/dev/null || echo "$t0")
  if [ $rc -ne 0 ]; then
    echo "  wrk exited with status $rc:"; sed 's/^/    /' "$out" | tail -n 20
  fi
  vx_alive "$w run $run" || return 1
  sleep 0.3   # requests wrk cut off at the end still finish and get counted
  $PY metrics "$VX_URL" >"$TMPD/m1.json"
  [ -n "$shunt" ] && $PY stats "$VX_URL" "$shunt" >"$TMPD/s1.json"
  $PY record-wrk --results "$RESULTS" --workload "$w" --run "$run" --out "$out" \
    --ticks0 "$t0" --ticks1 "$t1" --hz "$HZ" --m0 "$TMPD/m0.json" --m1 "$TMPD/m1.json" \
    --route "$route" --diag "$diag" --cmd "${cmd[*]}" "${MEAS[@]}" "${sargs[@]}"
}

# vx_workload NAME ROUTE SCRIPT PATH STATS_FIELD LUA_ARGS_FN
# LUA_ARGS_FN RUN prints "hunt|lua args..." for a run (run "diag" = the diagnostic run).
vx_workload() {
  local w=$1 route=$2 script=$3 path_tmpl=$4 sfield=$5 argsfn=$6 run spec hunt path
  log "veltrix $w: $RUNS × ${DUR}s, wrk -t$THREADS -c$CONNS"
  local errs=0 clean=0 run=0
  while [ "$clean" -lt "$RUNS" ]; do
    run=$((run + 1))
    spec=$($argsfn "$run"); hunt=${spec%%|*}
    read -r -a largs <<<"${spec#*|}"
    path=${path_tmpl//HUNT/$hunt}
    vx_wrk "$w" "$run" "$route" "$script" "$path" "${sfield:+$hunt}" "$sfield" -- "${largs[@]}" || return 0
    errs=$((errs + $(last_field errors)))
    retry_if_disturbed || clean=$((clean + 1))
  done
  if [ "$errs" -gt 0 ]; then
    echo "  $errs errors: one 2 s diagnostic run with response bodies (BENCH_DIAG=1)"
    spec=$($argsfn diag); hunt=${spec%%|*}
    read -r -a largs <<<"${spec#*|}"
    path=${path_tmpl//HUNT/$hunt}
    DIAG=1 vx_wrk "$w" 0 "$route" "$script" "$path" "" "" -- "${largs[@]}" || true
  fi
}

args_none() { echo "-|"; }
SETUP=$TMPD/setup   # what setup wrote for the server being measured (tokens, payloads)
args_scans() { local h=bscan$1; echo "$h|$h $SETUP/tokens.txt $SETUP/payloads_$h.txt"; }
args_scans_wide() { local h=bscanw$1; echo "$h|$h $SETUP/tokens.txt $SETUP/payloads_$h.txt"; }
args_chests() { echo "bchest|bchest z $SETUP/tokens.txt"; }
args_lb() { echo "blb|"; }
args_around() { echo "blb|blb $SETUP/player_ids.txt"; }

run_veltrix() {
  log "veltrix: start ($BIN, fsync always, data in a temp dir)"
  vx_start || { VX_DEAD=1; check "SERVER did not start: $(tail -n 5 "$VX_LOG" | tr '\n' ' ')"; return 0; }
  echo "  ready in ${VX_READY_S}s at $VX_URL (PID $VX_PID)"

  local sargs=(--url "$VX_URL" --key "$KEY" --dir "$TMPD/setup" --players "$PLAYERS" --codes "$CODES")
  SCAN_HUNTS=""
  if want scans; then
    for ((r = 1; r <= RUNS + RETRY_LEFT; r++)); do SCAN_HUNTS+="bscan$r,bscanw$r,"; done
    SCAN_HUNTS+=bscandiag
    sargs+=(--scan-hunts "$SCAN_HUNTS")
  fi
  want chests && sargs+=(--chest-hunt bchest)
  want leaderboard && sargs+=(--lb-hunt blb)
  log "veltrix: setup ($PLAYERS players; scan hunts of $CODES codes: ${SCAN_HUNTS:-none})"
  local t0=$SECONDS setup
  if ! setup=$(timeout -k 5 600 $PY setup "${sargs[@]}"); then
    vx_alive setup || true
    check "SETUP FAILED (see above)"; return 0
  fi
  SETUP_INFO="$PLAYERS players (POST /v1/players), $( [ -n "$SCAN_HUNTS" ] && echo "one fresh hunt of $CODES codes per scan run (so $((PLAYERS * CODES)) distinct (player, code) pairs per run), ")$(want chests && echo "chest hunt: one zone with a chest_range of 10,000,000, ")$(want leaderboard && echo "leaderboard hunt: all $PLAYERS players ranked (1–5 scans each), ")setup took $((SECONDS - t0)) s"
  echo "  $setup"

  # warm-up (not recorded)
  BENCH_LUA_DIR=$BENCH_DIR timeout -k 5 30 wrk -t"$THREADS" -c"$CONNS" -d1s -s "$BENCH_DIR/get.lua" "$VX_URL/healthz" >/dev/null 2>&1 || true

  want healthz && vx_alive healthz && vx_workload healthz "GET /healthz" get.lua /healthz "" args_none
  want players && vx_alive players && vx_workload players "POST /v1/players" players.lua /v1/players "" args_none
  want scans && vx_alive scans && vx_workload scans "POST /v1/hunts/:/scans" scans.lua /v1/hunts/HUNT/scans scans args_scans
  # The same scans with 256 connections (more players in flight than wrk's 64): how far
  # the durable log goes when the commit round trip is not what bounds it. Informational.
  want scans && vx_alive scans_c256 && CONNS=256 vx_workload scans_c256 "POST /v1/hunts/:/scans" scans.lua /v1/hunts/HUNT/scans scans args_scans_wide
  want chests && vx_alive chests && vx_workload chests "POST /v1/hunts/:/zones/:/open" chests.lua /v1/hunts/HUNT/zones/z/open chests_left args_chests
  if want leaderboard; then
    vx_alive lb_top && vx_workload lb_top "GET /v1/hunts/:/leaderboard" get.lua "/v1/hunts/HUNT/leaderboard?limit=10" "" args_lb
    vx_alive lb_around && vx_workload lb_around "GET /v1/hunts/:/leaderboard" around.lua "/v1/hunts/HUNT/leaderboard?radius=5" "" args_around
  fi
  vx_alive "the end of the runs" || return 0

  # Graceful stop, restart on the same data, compare every hunt's state.
  local hunts=()
  want scans && IFS=, read -r -a hunts <<<"$SCAN_HUNTS"
  want chests && hunts+=(bchest)
  want leaderboard && hunts+=(blb)
  log "veltrix: SIGTERM, restart on the same data dir, compare state"
  [ ${#hunts[@]} -gt 0 ] && $PY snapshot "$VX_URL" "$KEY" "${hunts[@]}" >"$TMPD/before.json"
  local created
  created=$($PY metrics "$VX_URL" | python3 -c 'import json,sys; print(json.load(sys.stdin).get("POST /v1/players", {}).get("2xx", "?"))')
  local rc=0 t1=$SECONDS
  kill -TERM "$VX_PID"
  for ((i = 0; i < 300; i++)); do kill -0 "$VX_PID" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$VX_PID" 2>/dev/null; then
    check "SIGTERM: veltrix still running after 30 s; killed"
    kill -KILL "$VX_PID"
  fi
  wait "$VX_PID" || rc=$?
  forget "$VX_PID"
  check "SIGTERM: veltrix exited with status $rc after $((SECONDS - t1)) s$([ $rc -ne 0 ] && echo ' — expected 0 (API.md)')"
  local events players
  events=$(sqlite3 "$VX_DATA/veltrix.db" 'select count(*) from events' 2>/dev/null || echo '?')
  players=$(sqlite3 "$VX_DATA/veltrix.db" 'select count(*) from players' 2>/dev/null || echo '?')
  check "players: $created × 201 from POST /v1/players, $players rows in the store after the stop: $([ "$created" = "$players" ] && echo ok || echo MISMATCH)"
  t1=$(date +%s.%N)
  if vx_start; then
    local ready; ready=$(python3 -c "import time; print('%.1f' % (time.time() - $t1))")
    check "restart on the same data ($events log rows, $(du -sh "$VX_DATA" | cut -f1)): ready in $ready s"
    if [ ${#hunts[@]} -gt 0 ]; then
      $PY snapshot "$VX_URL" "$KEY" "${hunts[@]}" >"$TMPD/after.json"
      check "state after restart (stats, digest, top-10 of ${hunts[*]}): $($PY compare "$TMPD/before.json" "$TMPD/after.json")"
    fi
    stop_pid "$VX_PID" 30; forget "$VX_PID"
  else
    check "RESTART FAILED on the same data dir: $(tail -n 5 "$VX_LOG" | tr '\n' ' ')"
  fi
}

# ------------------------------------------------------------------ live stream
# Its own server (fresh data dir, fsync always, up to 20,000 connections, no keepalive
# pings during the run) and bench_livebench (bench/livebench.c): N clients in one hunt,
# server memory per idle connection, delivered messages/s, latency. Results go to checks.
run_live() {
  local lb=$ROOT/$BUILD/bench_livebench port data=$TMPD/live-data pid rc=0
  case $BUILD in /*) lb=$BUILD/bench_livebench ;; esac
  [ -x "$lb" ] || { check "live: $lb not built (make $BUILD/bench_livebench)"; return 0; }
  local n=${BENCH_LIVE_CLIENTS:-10000} rate=${BENCH_LIVE_RATE:-25} secs=${BENCH_LIVE_SECONDS:-10}
  [ "$QUICK" = 1 ] && { n=${BENCH_LIVE_CLIENTS:-1000}; secs=${BENCH_LIVE_SECONDS:-3}; }
  log "veltrix live: $n WebSocket clients, $rate scans/s for ${secs}s"
  port=$($PY freeport); mkdir -p "$data"
  $BIN serve --listen 127.0.0.1:$port --data "$data" --admin-key "$KEY" --fsync always \
    --token-ttl 3600 --max-connections $((n + 1000)) --live-ping-ms 3600000 $VX_LIMITS \
    --max-connections-per-ip 0 >>"$TMPD/live.log" 2>&1 &
  pid=$!; STARTED+=("$pid")
  $PY wait-ready "http://127.0.0.1:$port/healthz" 60 "$pid" || { check "live: server did not start"; return 0; }
  quiet
  local t0 t1; t0=$($PY cpu "$pid")
  timeout -k 5 $((secs + 200)) "$lb" --port "$port" --key "$KEY" --pid "$pid" --clients "$n" \
    --rate "$rate" --seconds "$secs" --writers 50 --codes $(( (rate * secs) / 50 + 10 )) \
    >"$TMPD/livebench.txt" 2>&1 || rc=$?
  t1=$($PY cpu "$pid" 2>/dev/null || echo "$t0")
  sed 's/^/  /' "$TMPD/livebench.txt" | grep -v '^  RESULT'
  local r; r=$(grep '^RESULT' "$TMPD/livebench.txt" | sed 's/^RESULT //')
  if [ -z "$r" ] || [ "$rc" -ne 0 ]; then
    check "live: bench_livebench failed (status $rc): $(tail -n 3 "$TMPD/livebench.txt" | tr '\n' ' ')"
  else
    declare -A R=(); local kv
    for kv in $r; do R[${kv%%=*}]=${kv#*=}; done
    local cpu_us; cpu_us=$(python3 -c "print('%.2f' % (($t1 - $t0) / $HZ * 1e6 / max(1, ${R[deliveries_per_s]} * $secs)))")
    check "live: ${R[clients]} clients, ${R[deliveries_per_s]} messages delivered/s (target ≥ 200,000: $(python3 -c "print('met' if ${R[deliveries_per_s]} >= 200000 else 'NOT met')")), ack→receipt p50 ${R[ack_p50_ms]} ms p99 ${R[ack_p99_ms]} ms (target p99 < 50 ms: $(python3 -c "print('met' if ${R[ack_p99_ms]} < 50 else 'NOT met')")), send→receipt p99 ${R[send_p99_ms]} ms, server memory ${R[bytes_per_conn]} bytes per idle connection (target ≤ 10 KB: $(python3 -c "print('met' if 0 <= ${R[bytes_per_conn]} <= 10240 else 'NOT met')")), ~${cpu_us} server CPU µs per delivery"
  fi
  stop_pid "$pid" 30; forget "$pid"
}

# ------------------------------------------------------------------ anchors
cpu_of() { $PY cpu "$1"; }

# nginx_start DIR PORT READY_PATH HTTP_EXTRA SERVER_BODY: one nginx worker on loopback
# with that server block, waited for; its PID in NGINX_PID (status 1 if it did not start).
nginx_start() {
  local d=$1 port=$2
  cat >"$d/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $d/nginx.pid;
error_log $d/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  $4
  client_body_temp_path $d/body; proxy_temp_path $d/proxy; fastcgi_temp_path $d/fcgi;
  uwsgi_temp_path $d/uwsgi; scgi_temp_path $d/scgi;
  server {
    listen 127.0.0.1:$port;
    $5
  }
}
EOF
  nginx -c "$d/nginx.conf" -p "$d" -e "$d/error.log" >>"$d/out.log" 2>&1 &
  NGINX_PID=$!; STARTED+=("$NGINX_PID")
  $PY wait-ready "http://127.0.0.1:$port$3" 10 "$NGINX_PID" ||
    { echo "  nginx did not start"; cat "$d/error.log"; return 1; }
}

run_nginx() {
  log "anchor: nginx 'return 200' (1 worker), wrk -t$THREADS -c$CONNS, $RUNS × ${DUR}s"
  local d=$TMPD/nginx port
  mkdir -p "$d"
  port=$($PY freeport)
  nginx_start "$d" "$port" "/healthz" "" \
    "location = /healthz { default_type application/json; return 200 '{\"status\":\"ok\"}'; }" || return 0
  nginx_runs "$NGINX_PID" healthz "nginx return 200 (1 worker)" get.lua "http://127.0.0.1:$port/healthz"
}

# nginx_runs PID WORKLOAD NAME SCRIPT URL [-- lua args...]: $RUNS undisturbed wrk runs
# against an nginx anchor, each recorded, then that nginx stopped.
nginx_runs() {
  local pid=$1 workload=$2 name=$3 script=$4 run=0 clean=0 t0 t1 out cmd
  shift 4
  while [ "$clean" -lt "$RUNS" ]; do
    run=$((run + 1))
    out=$TMPD/nginx-$workload-$run.txt
    cmd=(wrk -t"$THREADS" -c"$CONNS" -d"${DUR}s" --timeout 5s --latency -s "$BENCH_DIR/$script" "$@")
    quiet
    t0=$(cpu_of "$pid")
    meas_begin
    BENCH_LUA_DIR=$BENCH_DIR BENCH_THREADS=$THREADS timeout -k 5 $((DUR + 60)) "${cmd[@]}" >"$out" 2>&1 || true
    meas_end
    t1=$(cpu_of "$pid")
    $PY record-wrk --kind anchor --name "$name" --results "$RESULTS" \
      --workload "$workload" --run "$run" --out "$out" --ticks0 "$t0" --ticks1 "$t1" --hz "$HZ" \
      "${MEAS[@]}" --cmd "${cmd[*]}"
    retry_if_disturbed || clean=$((clean + 1))
  done
  stop_pid "$pid"; forget "$pid"
}

# pg_up: a fresh PostgreSQL cluster (default settings: fsync on, synchronous_commit on) in a
# temp dir on loopback, with $PG_SCHEMA (default: the chests/scans anchor schema) loaded
# into its database postgres; PG_PORT, PG_PID, PG_DATA set. Status 1 when it did not start.
pg_up() {
  PGBIN=$(ls -d /usr/lib/postgresql/15/bin 2>/dev/null || ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
  local d port t0 ver
  d=$(mktemp -d "$TMPD/pg.XXXXXX") # a fresh cluster per call (tiles and chests anchors)
  chmod 755 "$d"
  AS_PG=""
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || { echo "  no 'postgres' user to run PostgreSQL as; skipped"; return 1; }
    chown postgres: "$d"
    AS_PG="runuser -u postgres --"
  fi
  ver=$("$PGBIN/postgres" --version)
  log "anchor: $ver in a temp dir on loopback"
  t0=$SECONDS
  $AS_PG "$PGBIN/initdb" -D "$d/data" -U postgres --auth=trust -E UTF8 >"$d/initdb.log" 2>&1 ||
    { echo "  initdb failed:"; tail -n 20 "$d/initdb.log"; return 1; }
  port=$($PY freeport)
  PG_DATA=$d/data
  timeout -k 5 90 $AS_PG "$PGBIN/pg_ctl" -D "$PG_DATA" -l "$d/server.log" -w -t 60 \
    -o "-p $port -k $d -c listen_addresses=127.0.0.1" start >/dev/null ||
    { echo "  pg_ctl start failed:"; tail -n 20 "$d/server.log"; return 1; }
  PG_PID=$(head -n 1 "$PG_DATA/postmaster.pid")
  PG_PORT=$port PG_DIR=$d
  local PSQL=(psql -X -q -h 127.0.0.1 -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1)
  local tl=$SECONDS
  if ! timeout -k 5 300 "${PSQL[@]}" -v chests="$PG_CHESTS" -v zones="$PG_ZONES" -f "$BENCH_DIR/${PG_SCHEMA:-pg_schema.sql}" >"$d/load.log" 2>&1; then
    echo "  schema load failed:"; tail -n 20 "$d/load.log"; pg_stop; return 1
  fi
  local load_s=$((SECONDS - tl))
  if [ -n "${PG_SCHEMA:-}" ]; then  # the tiles anchor: its own table and note
    echo "  initdb + start $((tl - t0)) s; $PG_SCHEMA loaded in $load_s s"
    echo "$ver (Debian), default settings, started by bench/run.sh in a temp dir; table hunt_tile_mv of 65,536 tiles × 1,200 bytes (bench/pg_tiles_schema.sql, primary key (hunt_id, x, y)); pgbench -c $PG_CLIENTS -T $PG_SECONDS -M prepared -f bench/pg_tile.sql (random x, y)." >>"$NOTES"
  else
  echo "  initdb + start $((tl - t0)) s; $PG_CHESTS chests in $PG_ZONES zones loaded and indexed in $load_s s"
  echo "$ver (Debian), default settings (fsync on, synchronous_commit on), started by bench/run.sh in a temp dir; $PG_CHESTS chests in $PG_ZONES zones, each zone's chests contiguous on disk, partial index on zone WHERE NOT found (loaded in $load_s s$([ "$load_s" -gt 60 ] && echo "; over 60 s: set BENCH_PG_CHESTS=200000")); pgbench -c $PG_CLIENTS -T $PG_SECONDS -M prepared, scripts bench/pg_chest.sql and bench/pg_scan.sql." >>"$NOTES"

  fi
}

# pg_anchor_runs: pgbench with each of $PG_SPECS (default: the chest and 1-row INSERT
# anchors) against the cluster pg_up started.
pg_anchor_runs() {
  local d=$PG_DIR port=$PG_PORT
  local name script w specs=("chests|PostgreSQL SKIP LOCKED chest tx|pg_chest.sql" "players|PostgreSQL 1-row INSERT tx|pg_scan.sql")
  [ -n "${PG_SPECS:-}" ] && specs=("$PG_SPECS")
  for spec in "${specs[@]}"; do
    IFS='|' read -r w name script <<<"$spec"
    local out=$d/pgbench-$script.txt lp=$d/pglog-${script%.sql} t1 tb
    local cmd=(pgbench -h 127.0.0.1 -p "$port" -U postgres -n -c "$PG_CLIENTS" -j 1 -T "$PG_SECONDS" -M prepared -D zones="$PG_ZONES" -l --log-prefix="$lp" -f "$BENCH_DIR/$script" postgres)
    echo "  pgbench $script: $PG_CLIENTS clients, ${PG_SECONDS}s"
    while :; do
    quiet
    tb=$(cpu_of "$PG_PID")
    meas_begin
    (cd "$d" && timeout -k 5 $((PG_SECONDS + 60)) "${cmd[@]}") >"$out" 2>&1 || { echo "  pgbench failed:"; tail -n 20 "$out"; }
    meas_end
    sleep 1  # let the backends exit and the postmaster reap them (their CPU lands in its cutime)
    t1=$(cpu_of "$PG_PID")
    $PY record-pgbench --results "$RESULTS" --workload "$w" --name "$name" --out "$out" --log-prefix "$lp" \
      --ticks0 "$tb" --ticks1 "$t1" --hz "$HZ" --seconds "$PG_SECONDS" "${MEAS[@]}" --cmd "${cmd[*]/$BENCH_DIR\//bench/}" || true
    rm -f "$lp".*
    retry_if_disturbed || break
    done
  done
}

run_pg() {
  pg_up || return 0
  pg_anchor_runs
  pg_stop
}

redis_start() {  # redis_start TAG [redis-server options...]
  local tag=$1; shift
  local d=$TMPD/redis-$tag i
  mkdir -p "$d"
  REDIS_PORT=$($PY freeport)
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$d" --daemonize no --logfile "$d/redis.log" "$@" &
  REDIS_PID=$!; STARTED+=("$REDIS_PID")
  for ((i = 0; i < 100; i++)); do
    [ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ] && return 0
    kill -0 "$REDIS_PID" 2>/dev/null || break
    sleep 0.1
  done
  echo "  redis-server did not start:"; tail -n 20 "$d/redis.log"; return 1
}

redis_bench() {  # redis_bench WORKLOAD NAME COMMAND...
  while :; do
    redis_bench1 "$@"
    retry_if_disturbed || break
  done
}

redis_bench1() {
  local w=$1 name=$2; shift 2
  local base=(redis-benchmark -h 127.0.0.1 -p "$REDIS_PORT" -c "$REDIS_CLIENTS" -r "$PLAYERS" --csv)
  local out=$TMPD/redis-$RANDOM.txt n rps t0 t1
  # probe 20k requests to size -n for about REDIS_SECONDS (this also fills the sorted set)
  timeout -k 5 60 "${base[@]}" -n 20000 "$@" >"$out" 2>&1 || true
  rps=$(python3 -c 'import sys; r=[l for l in open(sys.argv[1]) if l.startswith("\"") and not l.startswith("\"test\"")]; print(int(float(r[-1].split("\",\"")[1])) if r else 0)' "$out")
  n=$(( rps * REDIS_SECONDS )); [ "$n" -lt 20000 ] && n=20000; [ "$n" -gt 5000000 ] && n=5000000
  quiet
  t0=$(cpu_of "$REDIS_PID")
  meas_begin
  timeout -k 5 120 "${base[@]}" -n "$n" "$@" >"$out" 2>&1 || { echo "  redis-benchmark failed:"; tail -n 5 "$out"; }
  meas_end
  t1=$(cpu_of "$REDIS_PID")
  $PY record-redis --results "$RESULTS" --workload "$w" --name "$name" --out "$out" --n "$n" \
    --ticks0 "$t0" --ticks1 "$t1" --hz "$HZ" "${MEAS[@]}" --cmd "${base[*]} -n $n $*" || true
}

run_redis() {
  log "anchor: $(redis-server --version | cut -d' ' -f1-3) (no persistence), redis-benchmark -c $REDIS_CLIENTS, ~${REDIS_SECONDS}s each"
  if redis_start plain --save "" --appendonly no; then
    redis_bench scans "Redis ZINCRBY, no persistence" ZINCRBY lb 1 "p:__rand_int__"
    redis_bench lb_top "Redis ZREVRANGE 0 9 WITHSCORES" ZREVRANGE lb 0 9 WITHSCORES
    redis_bench lb_around "Redis ZREVRANK" ZREVRANK lb "p:__rand_int__"
    stop_pid "$REDIS_PID"; forget "$REDIS_PID"
  fi
  log "anchor: redis-server with appendonly yes, appendfsync always"
  if redis_start aof --save "" --appendonly yes --appendfsync always; then
    redis_bench scans "Redis ZINCRBY, appendfsync always" ZINCRBY lb 1 "p:__rand_int__"
    stop_pid "$REDIS_PID"; forget "$REDIS_PID"
  fi
  echo "$(redis-server --version | cut -d' ' -f1-3) (Debian), one sorted set of $PLAYERS members (like the veltrix leaderboard); redis-benchmark -c $REDIS_CLIENTS -r $PLAYERS, -n sized by a 20k-request probe for ~${REDIS_SECONDS} s. ZREVRANK is only the rank half of 'around' (veltrix also returns the 11 rows); reads are measured without persistence (AOF does not touch reads)." >>"$NOTES"
}

# ------------------------------------------------------------------ map tiles
TILE_DIR=$TMPD/tiles   # {x}/{y}.png, 256 × 256 × 1,200 bytes
make_tiles() {
  python3 - "$TILE_DIR" <<'EOF'
import os, random, sys
d = sys.argv[1]
rnd = random.Random(7)
head = b"\x89PNG\r\n\x1a\n"
for x in range(256):
    os.makedirs(os.path.join(d, str(x)), exist_ok=True)
    for y in range(256):
        tag = b"%d/%d/" % (x, y)
        with open(os.path.join(d, str(x), "%d.png" % y), "wb") as f:
            f.write(head + tag + rnd.randbytes(1200 - len(head) - len(tag)))
EOF
}

# Publishes a new version (one changed tile, then POST publish) every 0.5 s until the
# file $1 exists; the number of publishes answered 200 goes to $1.count.
tile_publisher() {
  local stop=$1 n=0 i=0 code
  while [ ! -e "$stop" ]; do
    i=$((i + 1))
    head -c 1200 /dev/urandom | curl -s -o /dev/null -X PUT -H "Authorization: Bearer $KEY" \
      -H "Content-Type: image/png" --data-binary @- "$VX_URL/v1/hunts/btile/tiles/$((i % 256))/7"
    code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H "Authorization: Bearer $KEY" "$VX_URL/v1/hunts/btile/map/publish")
    [ "$code" = 200 ] && n=$((n + 1))
    sleep 0.5
  done
  echo "$n" >"$stop.count"
}

args_tiles() { echo "-|/tiles/btile/ - 256"; }

map_version() { curl -s "$VX_URL/v1/hunts/btile" | python3 -c 'import json,sys; print(json.load(sys.stdin).get("map_version"))'; }

run_tiles() {
  log "veltrix tiles: 256×256 map of 1.2 KB tiles, loaded with 'veltrix tiles import'"
  local t0=$SECONDS
  make_tiles || { check "TILES: could not write the tile files"; return 0; }
  echo "  wrote 65,536 tile files in $((SECONDS - t0)) s ($(du -sh "$TILE_DIR" | cut -f1))"
  local saved=$VX_DATA
  VX_DATA=$TMPD/veltrix-tiles-data
  vx_start || { check "TILES: server did not start"; VX_DATA=$saved; return 0; }
  curl -s -o /dev/null -X PUT -H "Authorization: Bearer $KEY" "$VX_URL/v1/hunts/btile" \
    -d '{"name":"bench tiles","map":{"width":256,"height":256},"codes":[],"items":[],"zones":[]}'
  stop_pid "$VX_PID"; forget "$VX_PID"
  local t1; t1=$(date +%s.%N)
  if ! "$BIN" tiles import btile "$TILE_DIR" --data "$VX_DATA" >>"$VX_LOG" 2>&1; then
    check "TILES: import failed: $(tail -n 3 "$VX_LOG" | tr '\n' ' ')"; VX_DATA=$saved; return 0
  fi
  check "tiles import: $(tail -n 1 "$VX_LOG" | sed 's/^veltrix: //') in $(python3 -c "import time; print('%.1f' % (time.time() - $t1))") s"
  t1=$(date +%s.%N)
  vx_start || { check "TILES: server did not restart after the import"; VX_DATA=$saved; return 0; }
  check "restart with the imported map (65,536 tiles, $(du -sh "$VX_DATA" | cut -f1)): ready in $(python3 -c "import time; print('%.1f' % (time.time() - $t1))") s"
  BENCH_LUA_DIR=$BENCH_DIR timeout -k 5 30 wrk -t"$THREADS" -c"$CONNS" -d1s -s "$BENCH_DIR/tiles.lua" "$VX_URL/tiles/btile/0/0" -- /tiles/btile/ - 256 >/dev/null 2>&1 || true
  vx_alive tiles && vx_workload tiles "GET /tiles/:/:/:" tiles.lua /tiles/btile/0/0 "" args_tiles
  if vx_alive tiles_publish; then
    local stop=$TMPD/publisher.stop v0 v1 ppid
    v0=$(map_version)
    tile_publisher "$stop" &
    ppid=$!; STARTED+=("$ppid")
    vx_workload tiles_publish "GET /tiles/:/:/:" tiles.lua /tiles/btile/0/0 "" args_tiles
    touch "$stop"; wait "$ppid" 2>/dev/null; forget "$ppid"
    v1=$(map_version)
    check "tiles_publish: $(cat "$stop.count" 2>/dev/null || echo '?') new versions of the 256×256 map published (200) during those runs; map_version $v0 -> $v1"
  fi
  vx_alive "the end of the tile runs" && { stop_pid "$VX_PID" 30; forget "$VX_PID"; }
  VX_DATA=$saved
  [ "$QUICK" = 1 ] && return 0
  run_nginx_tiles
  PG_SCHEMA=pg_tiles_schema.sql PG_SPECS="tiles|PostgreSQL tile SELECT|pg_tile.sql" run_pg
}

# nginx_tiles_anchor DIR NAME HTTP_EXTRA SERVER_BODY: one nginx from DIR answering
# /tiles/..., measured with the same wrk command and random tiles as veltrix.
nginx_tiles_anchor() {
  local d=$1 name=$2 port
  port=$($PY freeport)
  nginx_start "$d" "$port" "/tiles/btile/0/0.png" "$3" "$4" || return 0
  nginx_runs "$NGINX_PID" tiles "$name" tiles.lua \
    "http://127.0.0.1:$port/tiles/btile/0/0.png" -- /tiles/btile/ .png 256
}

run_nginx_tiles() {
  log "anchor: nginx serving the same 65,536 tiles as files (1 worker), wrk -t$THREADS -c$CONNS, $RUNS × ${DUR}s"
  local d=$TMPD/nginx-tiles
  mkdir -p "$d/www/tiles" "$TMPD/nginx-ceiling"
  ln -s "$TILE_DIR" "$d/www/tiles/btile"
  chmod -R o+rX "$TILE_DIR" "$d"
  nginx_tiles_anchor "$d" "nginx tile files (1 worker)" "types { image/png png; }" \
    "root $d/www; location /tiles/ { add_header Cache-Control \"public, max-age=5\"; }"
  echo "nginx (Debian nginx-light), 1 worker, default file settings (no open_file_cache), serving the same 65,536 files as /tiles/btile/{x}/{y}.png (bench/run.sh run_nginx_tiles); wrk with bench/tiles.lua, the same random tiles as veltrix." >>"$NOTES"
  # The load generator's ceiling for this workload: the cheapest answer of the same size
  # (nginx returning 1,200 bytes from memory, no file). When its worker stays below one
  # core, wrk is the limit, and no server can show more req/s than this here.
  nginx_tiles_anchor "$TMPD/nginx-ceiling" "nginx 1.2 KB from memory (wrk ceiling)" "" \
    "location /tiles/ { default_type image/png; add_header Cache-Control \"public, max-age=5\"; return 200 '$(head -c 1200 /dev/zero | tr '\0' x)'; }"
  echo "nginx 1.2 KB from memory (wrk ceiling): the same wrk command against nginx answering every tile path with 1,200 bytes from memory (return 200, no file I/O); its worker below one core means wrk, not the server, sets the req/s: the most any server can show in this workload here." >>"$NOTES"
}

# ------------------------------------------------------------------ replay and restart (issue 3)
BDIR=$(dirname "$BIN")
if [ "$QUICK" = 1 ]; then
  REPLAY_PLAYERS=${BENCH_REPLAY_PLAYERS:-100000}; RESTART_EVENTS=${BENCH_RESTART_EVENTS:-1000000}
  RESTART_TAIL=${BENCH_RESTART_TAIL:-100000}
else
  REPLAY_PLAYERS=${BENCH_REPLAY_PLAYERS:-1000000}; RESTART_EVENTS=${BENCH_RESTART_EVENTS:-10000000}
  RESTART_TAIL=${BENCH_RESTART_TAIL:-500000}
fi
met() { python3 -c 'import sys; v, op, t = float(sys.argv[1]), sys.argv[2], float(sys.argv[3]); print("met" if (v >= t if op == "ge" else v < t if op == "lt" else v <= t) else "NOT met")' "$@"; }

run_replay() {
  log "replay: bench_replay $REPLAY_PLAYERS players × 2 scans (decode + apply into a fresh hunt)"
  local out=$TMPD/replay.txt res eps bpp
  quiet
  if ! timeout -k 5 600 "$BDIR/bench_replay" "$REPLAY_PLAYERS" 2 >"$out" 2>&1; then
    check "REPLAY BENCH FAILED: $(tail -n 3 "$out" | tr '\n' ' ')"; return 0
  fi
  grep -v '^RESULT' "$out" | sed 's/^/  /'
  res=$(grep '^RESULT' "$out")
  eps=$(sed -n 's/.* events_per_s=\([0-9.]*\).*/\1/p' <<<"$res")
  bpp=$(sed -n 's/.* bytes_per_player=\([0-9.]*\).*/\1/p' <<<"$res")
  check "replay at $REPLAY_PLAYERS players (one hunt): $eps events/s decoded and applied (target ≥ 1,000,000/s: $(met "$eps" ge 1000000)); $bpp bytes per player per hunt (target ≤ 256: $(met "$bpp" le 256))"
}

run_restart() {
  local d=$TMPD/restart out=$TMPD/restart-gen.txt want size mode port pid t0 t1 secs got
  mkdir -p "$d"
  log "restart: bench_gen_store: $RESTART_EVENTS events, a snapshot $RESTART_TAIL events before the end"
  if ! timeout -k 5 1200 "$BDIR/bench_gen_store" "$d/veltrix.db" "$RESTART_EVENTS" "$RESTART_TAIL" >"$out" 2>&1; then
    check "RESTART BENCH: generating the store failed: $(tail -n 3 "$out" | tr '\n' ' ')"; return 0
  fi
  sed 's/^/  /' "$out"
  want=$(sed -n 's/.* digest \([0-9a-f]*\).*/\1/p' "$out")
  size=$(du -sh "$d" | cut -f1)
  restart_timed "$d" "$want" 1 "restart with $RESTART_EVENTS events ($size store)"
}

# restart_timed DIR DIGEST RUNS LABEL [serve flags...]: `veltrix serve --data DIR [flags]`
# from start to /healthz ready, from the snapshot then from the whole log, RUNS times each
# (median in the check, every time listed); the hunt's digest must equal DIGEST. The
# 15 s target holds for both, or with WHOLE_LOG_TARGET=0 for the snapshot only (PostgreSQL:
# its whole-log target is the replay rate, a check of its own).
restart_timed() {
  local d=$1 want=$2 runs=$3 label=$4 mode port pid t0 t1 secs got i all med
  shift 4
  for mode in snapshot "whole log"; do
    local flags=(--snapshot-every 0) times=() bad=""
    [ "$mode" = snapshot ] || flags+=(--ignore-snapshots)
    for ((i = 1; i <= runs; i++)); do
    port=$($PY freeport)
    quiet
    t0=$(date +%s.%N)
    "$BIN" serve --listen "127.0.0.1:$port" --data "$d" --admin-key "$KEY" "${flags[@]}" "$@" >>"$d/server.log" 2>&1 &
    pid=$!; STARTED+=("$pid")
    if ! $PY wait-ready "http://127.0.0.1:$port/healthz" 300 "$pid"; then
      check "RESTART ($mode) FAILED: $(tail -n 3 "$d/server.log" | tr '\n' ' ')"; stop_pid "$pid"; forget "$pid"; continue 2
    fi
    t1=$(date +%s.%N)
    secs=$(python3 -c "print('%.2f' % ($t1 - $t0))")
    got=$(curl -s -H "Authorization: Bearer $KEY" "http://127.0.0.1:$port/v1/hunts/restart/digest" | sed -n 's/.*"digest":"\([0-9a-f]*\)".*/\1/p')
    stop_pid "$pid" 60; forget "$pid"
    echo "  $mode: ready in $secs s; $(grep recovered "$d/server.log" | tail -n 1)"
    times+=("$secs")
    [ "$got" = "$want" ] || bad="MISMATCH: $got vs $want"
    done
    med=$(python3 -c 'import statistics, sys; print("%.2f" % statistics.median(map(float, sys.argv[1:])))' "${times[@]}")
    all=""; [ "$runs" -gt 1 ] && all=" (median of $runs: ${times[*]} s)"
    [ -n "$bad" ] || bad="equal to the generator's"
    local target="target < 15 s: $(met "$med" lt 15)"
    [ "$mode" != snapshot ] && [ "${WHOLE_LOG_TARGET:-1}" = 0 ] &&
      target="$(python3 -c "import sys; print('{:,.0f}'.format(float(sys.argv[1]) / float(sys.argv[2])))" "$RESTART_EVENTS" "$med") events/s from start to ready, players included; no target of its own"
    check "$label, from the $mode: start → /healthz ready in $med s$all ($target); digest $bad"
  done
}

# ------------------------------------------------------------------ the store on PostgreSQL (issue 14)
# In the anchors' cluster (pg_up: the same settings), each in a database of its own.
pg_url() { echo "postgres://postgres@127.0.0.1:$PG_PORT/$1"; }
pg_psql() { psql -X -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 "$@"; }
if [ "$QUICK" = 1 ]; then PG_RESTART_RUNS=${BENCH_PG_RESTART_RUNS:-1}; else PG_RESTART_RUNS=${BENCH_PG_RESTART_RUNS:-2}; fi

# Durable scans and chest opens with --store postgres://: the same setup, wrk commands and
# checks as the SQLite rows; the CPU column counts veltrix and every PostgreSQL process.
# Then SIGTERM, a restart on the same database, and every hunt's state compared.
run_vx_pg() {
  local db=veltrix_bench saved_data=$VX_DATA saved_log=$VX_LOG
  log "veltrix on PostgreSQL: --store $(pg_url $db) (the anchors' instance, a database of its own)"
  pg_psql -c "CREATE DATABASE $db" || { check "PG STORE: cannot create database $db"; return 0; }
  VX_DATA=$TMPD/veltrix-pg-data VX_LOG=$TMPD/veltrix-pg.log SETUP=$TMPD/setup-pg VX_DEAD=0
  VX_STORE_ARGS="--store $(pg_url $db)" VX_CPU_ALSO=$PG_PID
  run_vx_pg_rows
  VX_DATA=$saved_data VX_LOG=$saved_log SETUP=$TMPD/setup VX_STORE_ARGS="" VX_CPU_ALSO=""
}

run_vx_pg_rows() {
  vx_start || { VX_DEAD=1; check "PG STORE: server did not start: $(tail -n 5 "$VX_LOG" | tr '\n' ' ')"; return 0; }
  echo "  ready in ${VX_READY_S}s at $VX_URL (PID $VX_PID; PostgreSQL PID $PG_PID)"
  local hunts="" r
  for ((r = 1; r <= RUNS + RETRY_LEFT; r++)); do hunts+="bscan$r,"; done
  hunts+=bscandiag
  if ! timeout -k 5 600 $PY setup --url "$VX_URL" --key "$KEY" --dir "$SETUP" --players "$PLAYERS" \
       --codes "$CODES" --scan-hunts "$hunts" --chest-hunt bchest >/dev/null; then
    vx_alive pg_setup || true
    check "PG STORE: SETUP FAILED (see above)"; return 0
  fi
  BENCH_LUA_DIR=$BENCH_DIR timeout -k 5 30 wrk -t"$THREADS" -c"$CONNS" -d1s -s "$BENCH_DIR/get.lua" "$VX_URL/healthz" >/dev/null 2>&1 || true
  vx_alive pg_scans && vx_workload pg_scans "POST /v1/hunts/:/scans" scans.lua /v1/hunts/HUNT/scans scans args_scans
  vx_alive pg_chests && vx_workload pg_chests "POST /v1/hunts/:/zones/:/open" chests.lua /v1/hunts/HUNT/zones/z/open chests_left args_chests
  vx_alive "the end of the PostgreSQL runs" || return 0
  local list=()
  IFS=, read -r -a list <<<"$hunts"
  list+=(bchest)
  $PY snapshot "$VX_URL" "$KEY" "${list[@]}" >"$TMPD/pg-before.json"
  stop_pid "$VX_PID" 30; forget "$VX_PID"
  local t1; t1=$(date +%s.%N)
  if vx_start; then
    check "PG STORE: restart on the same database ($(pg_psql -Atc "SELECT count(*) FROM veltrix.events" -d veltrix_bench 2>/dev/null) log rows): ready in $(python3 -c "import time; print('%.1f' % (time.time() - $t1))") s; state (stats, digest, top-10 of ${#list[@]} hunts): $($PY snapshot "$VX_URL" "$KEY" "${list[@]}" >"$TMPD/pg-after.json" && $PY compare "$TMPD/pg-before.json" "$TMPD/pg-after.json")"
    stop_pid "$VX_PID" 30; forget "$VX_PID"
  else
    check "PG STORE: RESTART FAILED on the same database: $(tail -n 5 "$VX_LOG" | tr '\n' ' ')"
  fi
}

# A hunt of $RESTART_EVENTS events loaded into its own database (bench_gen_store, COPY),
# replayed from it by bench_replay, then `veltrix serve --store` timed from start to ready.
run_pg_restart() {
  local db=veltrix_restart d=$TMPD/pg-restart out=$TMPD/pg-restart-gen.txt want size res
  mkdir -p "$d"
  log "PostgreSQL store: bench_gen_store: $RESTART_EVENTS events into $(pg_url $db), a snapshot $RESTART_TAIL events before the end"
  pg_psql -c "CREATE DATABASE $db" || { check "PG RESTART: cannot create database $db"; return 0; }
  quiet
  if ! timeout -k 5 1800 "$BDIR/bench_gen_store" "$(pg_url $db)" "$RESTART_EVENTS" "$RESTART_TAIL" >"$out" 2>&1; then
    check "PG RESTART: generating the store failed: $(tail -n 3 "$out" | tr '\n' ' ')"; return 0
  fi
  sed 's/^/  /' "$out"
  want=$(sed -n 's/.* digest \([0-9a-f]*\).*/\1/p' "$out")
  size=$(pg_psql -Atc "SELECT pg_size_pretty(pg_database_size('$db'))")
  check "PostgreSQL store: $(grep '^loaded by' "$out")"
  local i eps=() reps=()
  for ((i = 1; i <= PG_RESTART_RUNS; i++)); do
    quiet
    if ! timeout -k 5 900 "$BDIR/bench_replay" --store "$(pg_url $db)" restart "$want" >"$TMPD/pg-replay.txt" 2>&1; then
      check "PG REPLAY FAILED: $(tail -n 3 "$TMPD/pg-replay.txt" | tr '\n' ' ')"; break
    fi
    grep -v '^RESULT' "$TMPD/pg-replay.txt" | sed 's/^/  /'
    res=$(grep '^RESULT' "$TMPD/pg-replay.txt")
    eps+=("$(sed -n 's/.* events_per_s=\([0-9.]*\).*/\1/p' <<<"$res")")
    reps+=("$(sed -n 's/.* read_events_per_s=\([0-9.]*\).*/\1/p' <<<"$res")")
  done
  if [ ${#eps[@]} -gt 0 ]; then
    local m mr
    m=$(python3 -c 'import statistics, sys; print("%.0f" % statistics.median(map(float, sys.argv[1:])))' "${eps[@]}")
    mr=$(python3 -c 'import statistics, sys; print("%.0f" % statistics.median(map(float, sys.argv[1:])))' "${reps[@]}")
    check "PostgreSQL store: full replay of $RESTART_EVENTS events (bench_replay --store: read + decode + apply, one hunt): $m events/s (target ≥ 500,000: $(met "$m" ge 500000)); reading alone $mr events/s; median of ${#eps[@]}: ${eps[*]}"
  fi
  WHOLE_LOG_TARGET=0 restart_timed "$d" "$want" "$PG_RESTART_RUNS" "PostgreSQL store: restart with $RESTART_EVENTS events ($size database)" --store "$(pg_url $db)"
  pg_psql -c "DROP DATABASE $db" || true
}

# A standalone timing script (bench/migrate.sh, ...) that prints one line
# "NAME: N events in S s = R events/s": the rate against its target (events/s, ≥).
run_rate_script() {
  local name=$1 script=$2 events=$3 target=$4 out=$TMPD/$1.txt line rate
  log "$name: bench/$script $events"
  quiet
  if ! BUILD=$BUILD timeout -k 5 1800 bash "$BENCH_DIR/$script" "$events" >"$out" 2>"$out.err"; then
    check "${name^^} BENCH FAILED: $(tail -n 3 "$out.err" | tr '\n' ' ')"; return 0
  fi
  line=$(grep "^$name: " "$out" | tail -n 1)
  rate=$(sed -n 's/.* = \([0-9.]*\) events\/s.*/\1/p' <<<"$line")
  check "$line (target ≥ $target events/s: $(met "${rate:-0}" ge "$target"))"
}

# ------------------------------------------------------------------ the chain's cost (issue 17)
# Two servers side by side: this build and build/nochain (make NOCHAIN=1: engine_apply
# does not extend the hash chain, the only hashing a write adds), each with its own data
# directory and the scans setup. The scans workload alternates between them run by run
# (rows scans_chain and scans_nochain: the same wrk command on fresh hunts); the
# difference of their median server CPU per request is what the chain costs a durable
# scan over HTTP. Then bench_hash times the chain alone (CPU ns per scan event).
run_hashcost() {
  local nbin=$ROOT/build/nochain/veltrix v r hunts="" out=$TMPD/hash.txt
  log "hash chain cost: make NOCHAIN=1 (the baseline build without the chain), then both servers"
  # BUILD named on the command line: `make bench` exports BUILD=build, which the
  # Makefile's NOCHAIN default (BUILD ?= build/nochain) would not override.
  if ! make -s -C "$ROOT" -j2 NOCHAIN=1 BUILD=build/nochain build/nochain/veltrix \
      >"$TMPD/nochain-build.txt" 2>&1; then
    check "HASHCOST: the no-chain build failed: $(tail -n 3 "$TMPD/nochain-build.txt" | tr '\n' ' ')"; return 0
  fi
  local saved_bin=$BIN saved_data=$VX_DATA saved_log=$VX_LOG saved_setup=$SETUP
  local -A url pid
  for ((r = 1; r <= RUNS; r++)); do hunts+="bscan$r,"; done
  hunts=${hunts%,}
  for v in chain nochain; do
    if [ $v = chain ]; then BIN=$saved_bin; else BIN=$nbin; fi
    VX_DATA=$TMPD/hash-$v-data VX_LOG=$TMPD/hash-$v.log VX_DEAD=0
    if ! vx_start; then check "HASHCOST: the $v server did not start"; break; fi
    url[$v]=$VX_URL pid[$v]=$VX_PID
    if ! timeout -k 5 600 $PY setup --url "$VX_URL" --key "$KEY" --dir "$TMPD/setup-hash-$v" \
         --players "$PLAYERS" --codes "$CODES" --scan-hunts "$hunts" >/dev/null; then
      check "HASHCOST: setup failed on the $v server"; break
    fi
  done
  if [ -n "${pid[nochain]:-}" ] && [ -f "$TMPD/setup-hash-nochain/tokens.txt" ]; then
    for ((r = 1; r <= RUNS; r++)); do
      for v in chain nochain; do
        VX_URL=${url[$v]} VX_PID=${pid[$v]} VX_DEAD=0 SETUP=$TMPD/setup-hash-$v
        vx_wrk "scans_$v" "$r" "POST /v1/hunts/:/scans" scans.lua "/v1/hunts/bscan$r/scans" "bscan$r" scans \
          -- "bscan$r" "$SETUP/tokens.txt" "$SETUP/payloads_bscan$r.txt" || true
      done
    done
    check "hash chain over HTTP: $($PY cpu-delta --results "$RESULTS" --with scans_chain --without scans_nochain)"
  fi
  for v in chain nochain; do [ -n "${pid[$v]:-}" ] && { stop_pid "${pid[$v]}" 30; forget "${pid[$v]}"; }; done
  BIN=$saved_bin VX_DATA=$saved_data VX_LOG=$saved_log SETUP=$saved_setup VX_DEAD=0
  quiet
  if timeout -k 5 300 "$BDIR/bench_hash" 5000000 >"$out" 2>&1; then
    local ns; ns=$(sed -n 's/^RESULT ns_per_event=\([0-9.]*\).*/\1/p' "$out")
    check "hash chain alone (bench_hash, 5,000,000 scan events): $ns ns of CPU per event (target ≤ 500 ns: $(met "${ns:-1e9}" le 500))"
  else
    check "HASHCOST: bench_hash failed: $(tail -n 3 "$out" | tr '\n' ' ')"
  fi
}

# ------------------------------------------------------------------ several nodes (issue 15)
source "$BENCH_DIR/cluster.sh"

# ------------------------------------------------------------------ main
START=$SECONDS
echo "veltrix bench: workloads: ${!WANT[*]}; $RUNS run(s) × ${DUR}s; temp dir $TMPD"
[ "$VX_WANTED" = 1 ] && run_veltrix
want tiles && run_tiles
want live && run_live
want replay && run_replay
want restart && run_restart
want anchors && run_nginx
if want anchors || want pg || want cluster; then
  # One PostgreSQL for its anchors, the store on PostgreSQL (pg) and the cluster, side by
  # side. The cluster alone does not need the anchors' million chests.
  pg_ok=0
  if want anchors || want pg; then pg_up && pg_ok=1
  else PG_CHESTS=1000 NOTES=$TMPD/pg-cluster-notes.txt pg_up && pg_ok=1; fi
  if [ "$pg_ok" = 1 ]; then
    want pg && run_vx_pg
    want pg && run_pg_restart
    want cluster && run_cluster
    { want anchors || { want pg && [ "$QUICK" != 1 ]; }; } && pg_anchor_runs
    pg_stop
  else
    want pg && check "PG STORE: no PostgreSQL to run on (see above)"
    want cluster && check "CLUSTER: no PostgreSQL to run on (see above)"
  fi
fi
want anchors && run_redis
want audit && run_rate_script audit audit.sh "${BENCH_AUDIT_EVENTS:-$([ "$QUICK" = 1 ] && echo 200000 || echo 10000000)}" 1000000
want hashcost && run_hashcost
want migrate && run_rate_script migrate migrate.sh "${BENCH_MIGRATE_EVENTS:-$([ "$QUICK" = 1 ] && echo 200000 || echo 2000000)}" 200000

log "results ($((SECONDS - START)) s)"
mode="full run"
[ "$QUICK" = 1 ] && mode="BENCH_QUICK=1 (smoke test)"
[ "$SUBSET" = 1 ] && mode="$mode, subset: ${*}"
repro="make bench"
if [ "$QUICK" = 1 ] || [ "$SUBSET" = 1 ]; then
  repro="make $BUILD/veltrix && $( [ "$QUICK" = 1 ] && echo 'BENCH_QUICK=1 ')BUILD=$BUILD bash bench/run.sh${*:+ $*}"
fi
MODE=$mode REPRO=$repro SETUP_INFO=${SETUP_INFO:-} RUNS=$RUNS THREADS=$THREADS CONNS=$CONNS DUR=$DUR ROOT=$ROOT \
python3 - >"$TMPD/meta.json" <<'EOF'
import json, os, subprocess, time
def sh(c):
    try:
        return subprocess.run(c, shell=True, capture_output=True, text=True, cwd=os.environ["ROOT"]).stdout.strip()
    except Exception:
        return ""
cpu = sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2").strip()
print(json.dumps({
    "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    "commit": sh("git rev-parse --short HEAD"),
    "dirty": bool(sh("git status --porcelain -- src Makefile")),
    "machine": "%s cores (%s), Linux %s" % (os.cpu_count(), cpu or "?", os.uname().release),
    "mode": os.environ["MODE"], "command": os.environ["REPRO"], "setup": os.environ["SETUP_INFO"],
    "runs": os.environ["RUNS"], "threads": os.environ["THREADS"], "conns": os.environ["CONNS"],
    "dur": os.environ["DUR"]}))
EOF
echo
$PY table "$RESULTS" --out "$OUT" --meta "$TMPD/meta.json" --checks "$CHECKS" --notes "$NOTES"
echo
echo "written to ${OUT#$ROOT/}"
