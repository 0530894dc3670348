# bench/cluster.sh — the `cluster` workload of bench/run.sh (issue 15 targets): sourced by
# run.sh, which provides check, quiet, stop_pid/forget/STARTED, pg_up ($PG_PORT, $PG_PID),
# meas_begin/meas_end, $PY (vxbench.py) and the wrk settings.
#
# Three nodes (n1, n2, n3: `veltrix serve --store postgres://... --node-id`) on one fresh
# database of run.sh's PostgreSQL instance, on 127.0.0.1, with a cluster secret file of the
# run's own. Every hunt measured here is chosen by name so that rendezvous placement gives
# it to a known node (bench/clusterbench.py place). In order:
#   1. Forwarded writes: the durable scans workload (bench/scans.lua, a fresh hunt owned by
#      n1 per run, as the scans rows) (a) wrk against n1, the owner (cl_direct), (b) against
#      n2, every write forwarded to n1 (cl_forward), (c) three wrk processes side by side,
#      one per node, $CONNS connections in all, each with a third of the players
#      (cl_spread: throughput summed, the worst p99). Runs alternate between the three.
#      CPU per request counts the three nodes and every PostgreSQL process.
#   2. Replica lag, sampled during the cl_direct runs (clusterbench.py lag: what it
#      measures is in the check line).
#   3. Live: bench_livebench with its writers on the owner n1, its WebSocket clients all on
#      n1, then spread round robin over n1, n2, n3 (--client-ports): deliveries/s and
#      answer→receipt latency of each.
#   4. Failover: rounds of kill -9 of a hunt's owner (n1, n2, n3 in turn) while scans go to
#      that hunt through the next node; the time from the kill to the first 200 write
#      through that survivor. The killed node is restarted and the cluster settled (every
#      node sees three alive, every hunt back with its placement) before the next round.
# Environment: BENCH_CLUSTER_ROUNDS (failover rounds: 10, quick 3), BENCH_CLUSTER_PLAYERS
# (players for the scans: $PLAYERS, quick 500), BENCH_CLUSTER_LIVE_CLIENTS (live clients:
# $BENCH_LIVE_CLIENTS or 10,000, quick 1,000), BENCH_LIVE_RATE, BENCH_LIVE_SECONDS.

CL_NODES=(n1 n2 n3)
CL_PY="python3 $BENCH_DIR/clusterbench.py"
declare -A CL_PORT=() CL_URL=() CL_PID=()

# cl_start NODE [nowait]: starts that node on its port (the same on a restart), waits for
# /healthz unless told not to (cl_ready).
cl_start() {
  local n=$1 port=${CL_PORT[$1]} log=$TMPD/cl-$1.log
  mkdir -p "$TMPD/cl-$n"
  local cmd=("$BIN" serve --listen "127.0.0.1:$port" --data "$TMPD/cl-$n" --store "$CL_STORE"
    --node-id "$n" --advertise "http://127.0.0.1:$port" --cluster-secret-file "$CL_SECRET"
    --admin-key "$KEY" --fsync always --token-ttl 3600 --max-connections "$CL_MAXCONN"
    --max-connections-per-ip 0 --live-ping-ms 3600000 $VX_LIMITS
    ${CL_FEED:+--replica-feed $CL_FEED})
  echo "--- start: ${cmd[*]}" >>"$log"
  "${cmd[@]}" >>"$log" 2>&1 &
  CL_PID[$n]=$!; STARTED+=("$!")
  [ "${2:-}" = nowait ] || cl_ready "$n"
}

cl_ready() {
  local n=$1 log=$TMPD/cl-$1.log
  $PY wait-ready "${CL_URL[$n]}/healthz" 60 "${CL_PID[$n]}" ||
    { echo "  node $n did not become ready; log tail:"; tail -n 10 "$log"; return 1; }
}

cl_urls() { echo "${CL_URL[n1]},${CL_URL[n2]},${CL_URL[n3]}"; }
cl_settle() { timeout -k 5 60 $CL_PY settle --urls "$(cl_urls)" --key "$KEY" --hunts "${1:-}" --timeout "${2:-30}"; }
cl_cpu() { $PY cpu "${CL_PID[@]}" "$PG_PID" 2>/dev/null || echo 0; }

cl_alive() {  # every node still running (a death is a finding: reported, the rest skipped)
  local n rc
  for n in "${CL_NODES[@]}"; do
    kill -0 "${CL_PID[$n]}" 2>/dev/null && continue
    rc=0; wait "${CL_PID[$n]}" 2>/dev/null || rc=$?
    forget "${CL_PID[$n]}"
    check "CLUSTER: node $n DIED during '$1' (exit status $rc); log tail: $(tail -n 5 "$TMPD/cl-$n.log" | tr '\n' ' ')"
    return 1
  done
}

# cl_wrk WORKLOAD RUN HUNT NODE...: durable scans on HUNT (owned by n1), $CONNS connections
# in all split over one wrk process per NODE (each with its own slice of the players, so
# that no (player, code) pair repeats); recorded as one row (clusterbench.py combine). The
# owner's /metrics and stats check that every 2xx seen by wrk landed on the owner once.
cl_wrk() {
  local w=$1 run=$2 hunt=$3; shift 3
  local k=$# i=0 n out=$TMPD/cl-wrk-$w-$run.txt pids=() outs=() cmds=() t0 t1 lagpid=""
  local own=${CL_URL[n1]}
  $PY stats "$own" "$hunt" >"$TMPD/cl-s0.json"
  $PY metrics "$own" >"$TMPD/cl-m0.json"
  quiet
  t0=$(cl_cpu)
  meas_begin
  if [ "$w" = cl_direct ] || [ "$w" = cl_direct_poll ]; then
    $CL_PY lag --owner "$own" --replicas "${CL_URL[n2]},${CL_URL[n3]}" --hunt "$hunt" \
      --seconds "$DUR" --poll-ms 2 --gap-ms 20 --out "$TMPD/cl-lag.jsonl" &
    lagpid=$!; STARTED+=("$lagpid")
  fi
  for n in "$@"; do
    local c=$((CONNS / k + (i < CONNS % k ? 1 : 0))) tok=$CL_SETUP/tokens.txt o=$out.$n
    if [ "$k" -gt 1 ]; then
      tok=$CL_SETUP/tokens-$i-of-$k.txt
      awk -v k="$k" -v i="$i" '(NR - 1) % k == i' "$CL_SETUP/tokens.txt" >"$tok"
    fi
    local cmd=(wrk -t1 -c"$c" -d"${DUR}s" --timeout 5s --latency -s "$BENCH_DIR/scans.lua"
      "${CL_URL[$n]}/v1/hunts/$hunt/scans" -- "$hunt" "$tok" "$CL_SETUP/payloads_$hunt.txt")
    BENCH_LUA_DIR=$BENCH_DIR BENCH_THREADS=1 timeout -k 5 $((DUR + 60)) "${cmd[@]}" >"$o" 2>&1 &
    pids+=("$!"); STARTED+=("$!"); outs+=("$o"); cmds+=("$n: ${cmd[*]}")
    i=$((i + 1))
  done
  for i in "${pids[@]}"; do wait "$i" || echo "  wrk exited with status $? (see $out.*)"; forget "$i"; done
  [ -n "$lagpid" ] && { wait "$lagpid"; forget "$lagpid"; }
  meas_end
  t1=$(cl_cpu)
  cl_alive "$w run $run" || return 1
  sleep 0.3   # requests wrk cut off at the end still finish and get counted
  $PY metrics "$own" >"$TMPD/cl-m1.json"
  $PY stats "$own" "$hunt" >"$TMPD/cl-s1.json"
  if [ "$k" -gt 1 ]; then $CL_PY combine "$out" "${outs[@]}" || return 1; else cp "${outs[0]}" "$out"; fi
  $PY record-wrk --results "$RESULTS" --workload "$w" --run "$run" --out "$out" \
    --ticks0 "$t0" --ticks1 "$t1" --hz "$HZ" --m0 "$TMPD/cl-m0.json" --m1 "$TMPD/cl-m1.json" \
    --route "POST /v1/hunts/:/scans" --diag 0 --cmd "$(IFS=';'; echo "${cmds[*]}")" "${MEAS[@]}" \
    --stats0 "$TMPD/cl-s0.json" --stats1 "$TMPD/cl-s1.json" --stat-field scans
}

# cl_live LABEL HUNT [--client-ports P,P,P]: bench_livebench, writers on n1 (the hunt's
# owner); prints its RESULT fields and the nodes' + PostgreSQL's CPU µs per delivery.
cl_live() {
  local label=$1 hunt=$2 out=$TMPD/cl-live-$1.txt t0 t1 rc=0
  shift 2
  quiet
  t0=$(cl_cpu)
  timeout -k 5 $((CL_LIVE_SECS + 200)) "$CL_LB" --port "${CL_PORT[n1]}" --key "$KEY" \
    --clients "$CL_LIVE_CLIENTS" --rate "$CL_LIVE_RATE" --seconds "$CL_LIVE_SECS" --writers 50 \
    --codes $(((CL_LIVE_RATE * CL_LIVE_SECS) / 50 + 10)) --hunt "$hunt" "$@" >"$out" 2>&1 || rc=$?
  t1=$(cl_cpu)
  sed 's/^/  /' "$out" | grep -v '^  RESULT' >&2
  local r; r=$(grep '^RESULT' "$out" | sed 's/^RESULT //')
  if [ -z "$r" ] || [ "$rc" -ne 0 ]; then
    echo "FAILED(status $rc: $(tail -n 2 "$out" | tr '\n' ' '))"; return 0
  fi
  echo "$r cpu_us=$(python3 -c "import sys; print('%.2f' % ((float(sys.argv[1]) - float(sys.argv[2])) / $HZ * 1e6 / max(1, float(sys.argv[3]) * $CL_LIVE_SECS)))" "$t1" "$t0" "$(sed -n 's/.*deliveries_per_s=\([0-9.]*\).*/\1/p' <<<"$r")")"
}

# One RESULT line as "X deliveries/s, answer→receipt p50 A p99 B ms, C µs CPU".
cl_live_fmt() {
  local kv; declare -A R=()
  case $1 in FAILED*) echo "$1"; return ;; esac
  for kv in $1; do R[${kv%%=*}]=${kv#*=}; done
  echo "${R[deliveries_per_s]} deliveries/s, answer→receipt p50 ${R[ack_p50_ms]} ms p99 ${R[ack_p99_ms]} ms (send→receipt p99 ${R[send_p99_ms]} ms), ~${R[cpu_us]} µs CPU per delivery (3 nodes + PostgreSQL)"
}

run_cluster() {
  local db=veltrix_cluster n r rounds players
  if [ "$QUICK" = 1 ]; then
    rounds=${BENCH_CLUSTER_ROUNDS:-3}; players=${BENCH_CLUSTER_PLAYERS:-500}; CL_PRE=0.3
    CL_LIVE_CLIENTS=${BENCH_CLUSTER_LIVE_CLIENTS:-1000}; CL_LIVE_SECS=${BENCH_LIVE_SECONDS:-2}
  else
    rounds=${BENCH_CLUSTER_ROUNDS:-10}; players=${BENCH_CLUSTER_PLAYERS:-$PLAYERS}; CL_PRE=1
    CL_LIVE_CLIENTS=${BENCH_CLUSTER_LIVE_CLIENTS:-${BENCH_LIVE_CLIENTS:-10000}}; CL_LIVE_SECS=${BENCH_LIVE_SECONDS:-10}
  fi
  CL_LIVE_RATE=${BENCH_LIVE_RATE:-25}
  CL_MAXCONN=$((CL_LIVE_CLIENTS + 1000))
  CL_SETUP=$TMPD/cl-setup CL_SECRET=$TMPD/cl-secret CL_STORE=$(pg_url $db)
  CL_LB=$BDIR/bench_livebench
  log "cluster: three nodes on $(pg_url $db) (a database of its own in run.sh's PostgreSQL)"
  pg_psql -c "CREATE DATABASE $db" || { check "CLUSTER: cannot create database $db"; return 0; }
  python3 -c 'import secrets; print(secrets.token_hex(32))' >"$CL_SECRET"
  for n in "${CL_NODES[@]}"; do
    CL_PORT[$n]=$($PY freeport); CL_URL[$n]=http://127.0.0.1:${CL_PORT[$n]}
  done
  for n in "${CL_NODES[@]}"; do cl_start "$n" nowait; done
  for n in "${CL_NODES[@]}"; do cl_ready "$n" || { check "CLUSTER: node $n did not start"; cl_stop_all; return 0; }; done
  echo "  nodes ready: n1 ${CL_URL[n1]} n2 ${CL_URL[n2]} n3 ${CL_URL[n3]} (PIDs ${CL_PID[*]}); all alive in every view after $(cl_settle "" 30 || echo '?') s"

  # Hunt names by placement: scans hunts on n1; failover hunts on the node killed in that round.
  local whunts lh fo=() k=$(((rounds + 2) / 3)) lists=() arr=()
  { read -r whunts; read -r lh; read -r "lists[0]"; read -r "lists[1]"; read -r "lists[2]"; } < <(
    $CL_PY place n1 $((3 * RUNS + 1)) bclw n1 3 bcll n1 "$k" bclfn1- n2 "$k" bclfn2- n3 "$k" bclfn3-)
  for ((r = 0; r < rounds; r++)); do
    IFS=, read -r -a arr <<<"${lists[r % 3]}"; fo+=("${arr[r / 3]}")
  done
  local all="$whunts,$(IFS=,; echo "${fo[*]}")"
  log "cluster: setup through n1 ($players players; hunts of $CODES codes: $all)"
  local t0=$SECONDS
  if ! timeout -k 5 600 $PY setup --url "${CL_URL[n1]}" --key "$KEY" --dir "$CL_SETUP" --players "$players" \
       --codes "$CODES" --scan-hunts "$all" >/dev/null; then
    cl_alive setup; check "CLUSTER: SETUP FAILED (see above)"; cl_stop_all; return 0
  fi
  echo "  setup took $((SECONDS - t0)) s; every hunt with its placement in every view after $(cl_settle "$all" 30 || echo '?') s"

  # 1 + 2: forwarded writes, the replica lag sampled during the direct runs
  log "cluster: durable scans, $RUNS × ${DUR}s each: owner direct, through a non-owner, over 3 nodes"
  local wh=(); IFS=, read -r -a wh <<<"$whunts"
  : >"$TMPD/cl-lag.jsonl"
  for ((r = 1; r <= RUNS; r++)); do
    cl_wrk cl_direct "$r" "${wh[3 * r - 3]}" n1 || break
    cl_wrk cl_forward "$r" "${wh[3 * r - 2]}" n2 || break
    cl_wrk cl_spread "$r" "${wh[3 * r - 1]}" n1 n2 n3 || break
  done
  check "$($CL_PY writes-report "$RESULTS")"
  check "$($CL_PY lag-report "$TMPD/cl-lag.jsonl" --label "replicas fed by the owner's push (--replica-feed push, the default)")"

  # 3: live, one node then three
  if [ -x "$CL_LB" ] && cl_alive live; then
    log "cluster live: $CL_LIVE_CLIENTS WebSocket clients, $CL_LIVE_RATE scans/s for ${CL_LIVE_SECS}s, writers on n1 (the owner)"
    local one three lhs=(); IFS=, read -r -a lhs <<<"$lh"
    echo "  clients all on n1:"
    one=$(cl_live one "${lhs[0]}")
    echo "  clients round robin over n1, n2, n3:"
    three=$(cl_live three "${lhs[1]}" --client-ports "${CL_PORT[n1]},${CL_PORT[n2]},${CL_PORT[n3]}")
    check "live over 3 nodes ($CL_LIVE_CLIENTS clients, a third on each node, writers on the owner n1): $(cl_live_fmt "$(tail -n 1 <<<"$three")"); beside the same with every client on the owner n1: $(cl_live_fmt "$(tail -n 1 <<<"$one")")"
  elif [ ! -x "$CL_LB" ]; then
    check "CLUSTER live: $CL_LB not built (make $BUILD/bench_livebench)"
  fi

  # 4: the replicas fed by the store alone (--replica-feed poll: every 20 ms, on the tail
  # thread), against the push above: the lag under one owner-direct run, live over 3 nodes.
  if cl_alive "feed poll"; then
    log "cluster: replicas fed by polling the store alone (--replica-feed poll), beside the push above"
    cl_stop_all
    CL_FEED=poll
    for n in "${CL_NODES[@]}"; do cl_start "$n" nowait; done
    for n in "${CL_NODES[@]}"; do cl_ready "$n" || { check "CLUSTER: node $n did not restart (poll)"; CL_FEED=; cl_stop_all; return 0; }; done
    echo "  restarted with --replica-feed poll; settled after $(cl_settle "$all" 30 || echo '?') s"
    : >"$TMPD/cl-lag.jsonl"
    cl_wrk cl_direct_poll 1 "${wh[3 * RUNS]}" n1 &&
      check "$($CL_PY lag-report "$TMPD/cl-lag.jsonl" --label "replicas fed by polling the store alone (--replica-feed poll)")"
    if [ -x "$CL_LB" ] && cl_alive "live poll"; then
      local lhs=(); IFS=, read -r -a lhs <<<"$lh"
      echo "  clients round robin over n1, n2, n3 (--replica-feed poll):"
      local three; three=$(cl_live three-poll "${lhs[2]}" --client-ports "${CL_PORT[n1]},${CL_PORT[n2]},${CL_PORT[n3]}")
      check "live over 3 nodes with --replica-feed poll: $(cl_live_fmt "$(tail -n 1 <<<"$three")")"
    fi
    cl_stop_all
    CL_FEED=
    for n in "${CL_NODES[@]}"; do cl_start "$n" nowait; done
    for n in "${CL_NODES[@]}"; do cl_ready "$n" || { check "CLUSTER: node $n did not restart"; cl_stop_all; return 0; }; done
    echo "  restarted with the push again; settled after $(cl_settle "$all" 30 || echo '?') s"
  fi

  # 5: failover, last (it kills nodes)
  cl_alive failover && cl_failover "$rounds" "$all" "${fo[@]}"
  cl_stop_all
  echo "  cluster: $((SECONDS - t0)) s from setup to here"
  pg_psql -c "DROP DATABASE $db" >/dev/null 2>&1 || true
}

# cl_failover ROUNDS ALL_HUNTS HUNT...: round r kills the owner of its hunt, n1, n2, n3 in
# turn, while clusterbench.py failover-round sends scans through the next node.
cl_failover() {
  local rounds=$1 all=$2 r victim via hunt line out=$TMPD/cl-failover.jsonl
  shift 2
  log "cluster failover: $rounds rounds of kill -9 of a hunt's owner under scans through another node"
  : >"$out"
  for ((r = 1; r <= rounds; r++)); do
    victim=${CL_NODES[(r - 1) % 3]} via=${CL_NODES[r % 3]} hunt=${!r}
    quiet
    line=$(timeout -k 5 60 $CL_PY failover-round --url "${CL_URL[$via]}" --pid "${CL_PID[$victim]}" \
      --victim "$victim" --via "$via" --hunt "$hunt" --tokens "$CL_SETUP/tokens.txt" \
      --payloads "$CL_SETUP/payloads_$hunt.txt" --pre "$CL_PRE" --timeout 20)
    [ -n "$line" ] && echo "$line" >>"$out"
    echo "  round $r: $line"
    kill -0 "${CL_PID[$victim]}" 2>/dev/null && { echo "  $victim was not killed: stopped"; stop_pid "${CL_PID[$victim]}"; }
    wait "${CL_PID[$victim]}" 2>/dev/null; forget "${CL_PID[$victim]}"
    cl_start "$victim" || { check "CLUSTER FAILOVER: $victim did not restart (round $r)"; break; }
    local s; s=$(cl_settle "$all" 30) || { check "CLUSTER FAILOVER: the cluster did not settle after round $r"; break; }
    echo "  $victim restarted; settled (three alive, every hunt with its placement) after $s s"
  done
  check "$($CL_PY failover-report "$out")"
}

cl_stop_all() {
  local n
  for n in "${CL_NODES[@]}"; do
    [ -n "${CL_PID[$n]:-}" ] || continue
    stop_pid "${CL_PID[$n]}" 30; forget "${CL_PID[$n]}"
  done
}
