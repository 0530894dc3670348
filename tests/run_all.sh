#!/usr/bin/env bash
# Runs every unit test binary, the black-box suite (on SQLite, then on PostgreSQL), the
# simulation seeds (tests/sim/run.sh),
# the browser tests (tests/browser/run.mjs)
# and a short run of every fuzz target (tests/fuzz/run.sh; NO_FUZZ=1 skips it); sums their
# "N passed, N failed" lines into one closing line of the same shape. Exit status:
# non-zero if anything failed.
set -u
BUILD=${BUILD:-build}
ONLY=${ONLY:-}
total_p=0; total_f=0
run_suite() {  # name, command...
  local name=$1; shift
  echo "== $name"
  local t0=$SECONDS
  local out; out=$("$@" 2>&1); local rc=$?
  echo "   ($((SECONDS - t0)) s)"
  echo "$out" | grep -v '^ok ' | tail -n 40
  local line; line=$(echo "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed' | tail -n 1)
  if [ -z "$line" ]; then
    echo "   $name: no summary line (exit $rc): counted as 1 failure"
    total_f=$((total_f + 1)); return
  fi
  local p f; p=$(echo "$line" | sed -E 's/^([0-9]+) passed.*/\1/'); f=$(echo "$line" | sed -E 's/.* ([0-9]+) failed.*/\1/')
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; echo "   $name exited $rc"; fi
  echo "   $name: $line"
  total_p=$((total_p + p)); total_f=$((total_f + f))
}
# The postgres store's tests (test_store, test_store_pg, test_pg.py) need a server: a
# throwaway one for this run (tests/pg/pgtmp.sh, stopped at the end or when this script
# is gone), unless VELTRIX_TEST_PG_URL names one. One that does not start is a failure.
# (test_pg_faults.py starts a PostgreSQL of its own, tests/pg/pgctl.py: it kills it -9.)
PG_PID=""
if [ -z "${VELTRIX_TEST_PG_URL:-}" ] && { [ -z "$ONLY" ] || [ "$ONLY" = unit ] || [ "$ONLY" = blackbox ] || [ "$ONLY" = blackbox-pg ]; }; then
  pg_out=$(mktemp /tmp/veltrix-pgtmp.XXXXXX)
  bash tests/pg/pgtmp.sh --watch $$ >"$pg_out" 2>"$pg_out.err" &
  PG_PID=$!
  for _ in $(seq 1200); do
    { [ -s "$pg_out" ] || ! kill -0 "$PG_PID" 2>/dev/null; } && break
    sleep 0.1
  done
  if [ -s "$pg_out" ]; then
    export VELTRIX_TEST_PG_URL; VELTRIX_TEST_PG_URL=$(head -n 1 "$pg_out")
    echo "== pg: $(tail -n 1 "$pg_out.err")"
  else
    echo "== pg: FAILED, the postgres store is not tested: $(tail -n 2 "$pg_out.err" | tr '\n' ' ')"
    echo "   counted as 1 failure"
    total_f=$((total_f + 1))
  fi
  rm -f "$pg_out" "$pg_out.err"
fi
# Under TSan, test_engine and test_leaderboard (single-threaded: engine.c and
# leaderboard.c start no thread, and neither test does; ~80 s each under TSan) are left to
# the plain and ASan+UBSan passes.
TSAN_NOT_UNIT="test_engine test_leaderboard"
if [ -z "$ONLY" ] || [ "$ONLY" = unit ]; then
  for t in "$BUILD"/test_*; do
    case "${SANITIZE:-} $(echo $TSAN_NOT_UNIT) " in
      *thread*" $(basename "$t") "*)
        echo "== unit/$(basename "$t"): not under TSan (no thread; plain and ASan passes run it)"; continue ;;
    esac
    [ -x "$t" ] && run_suite "unit/$(basename "$t")" "$t"
  done
fi
# SAN_PASS=1 (the sanitizer passes of `make test`): the suites that exercise no C code of
# their own beyond what the others do are left to the plain pass (the browser tests drive
# the same routes as test_*.py; the cross-verifier compares two verifiers' verdicts on logs
# test_fairness.py also audits), to keep CI well under 20 minutes.
# Under ThreadSanitizer (SANITIZE=thread, exported by the Makefile) only the black-box
# suites that drive a second thread beyond the log writer's ordinary hand-off run (TSAN_BB:
# the snapshotter, the live frames, tile manifests, the PostgreSQL reconnect thread, the
# migration checker, the node thread, replicas and forwarding, `veltrix audit`'s reader and
# applier threads in test_fairness.py; test_game.py for the
# write path with many players at once). The others (bad input, abuse, limits, security,
# hunts, players) exercise the event loop's own thread, which the plain and
# ASan+UBSan passes cover; every unit test and the simulation still run under TSan.
TSAN_BB="test_crash.py test_live.py test_snapshot.py test_tiles.py test_game.py test_pg.py
  test_pg_faults.py test_migrate.py test_cluster.py test_forward.py test_replica.py
  test_fairness.py"
in_tsan_set() {  # suite file name -> 0 when it runs in this pass
  case ${SANITIZE:-} in *thread*) ;; *) return 0 ;; esac
  case " $(echo $TSAN_BB) " in *" $1 "*) return 0 ;; esac
  return 1
}
if [ -z "$ONLY" ] || [ "$ONLY" = blackbox ]; then
  for t in tests/blackbox/test_*.py; do
    [ -n "${SAN_PASS:-}" ] && [ "$(basename "$t")" = test_fairness_cross.py ] && continue
    if [ -n "${SAN_PASS:-}" ] && ! in_tsan_set "$(basename "$t")"; then
      echo "== blackbox/$(basename "$t"): not under TSan (plain and ASan passes run it)"; continue
    fi
    [ -f "$t" ] && run_suite "blackbox/$(basename "$t")" python3 "$t" --bin "$BUILD/veltrix"
  done
fi
# The black-box suite once more with every server on PostgreSQL (VELTRIX_TEST_STORE=pg, a
# fresh database per server: vx.py), plain pass only; the suites that run on PostgreSQL
# already (they start their own stores) are not repeated, nor test_abuse.py (sockets,
# headers and bodies refused before any store is read) and test_fairness_cross.py (two
# verifiers on logs taken from /log, which test_fairness.py audits on PostgreSQL too):
# both run in the SQLite pass above; this saves ~50 s.
if { [ -z "$ONLY" ] && [ -z "${SAN_PASS:-}" ]; } || [ "$ONLY" = blackbox-pg ]; then
  for t in tests/blackbox/test_*.py; do
    case $(basename "$t") in
      test_pg.py|test_pg_faults.py|test_migrate.py|test_cluster.py|test_forward.py|test_replica.py|test_failover.py) continue ;;
      test_abuse.py|test_fairness_cross.py) continue ;;
    esac
    run_suite "blackbox-pg/$(basename "$t")" env VELTRIX_TEST_STORE=pg python3 "$t" --bin "$BUILD/veltrix"
  done
fi
# The independent verifier of a hunt's public log (docs/FAIRNESS.md), on generated logs.
if [ -z "$ONLY" ] || [ "$ONLY" = fairness ]; then
  run_suite "fairness/test_verify.py" python3 tests/fairness/test_verify.py
fi
# The simulator starts no thread (the log in manual mode, no snapshotter): it is left out
# of the TSan pass; the ASan+UBSan pass runs three of its five seeds and two random ones
# (the plain pass runs them all), to keep CI well under 20 minutes.
if { [ -z "$ONLY" ] || [ "$ONLY" = sim ]; } && [ -x "$BUILD/sim" ]; then
  case "${SANITIZE:-}" in
    *thread*) echo "== sim: not under TSan (the simulator starts no thread)" ;;
    *)
      if [ -n "${SAN_PASS:-}" ]; then seeds=${SIM_SEEDS:-1 2 3} sweep=${SIM_SWEEP:-2}
      else seeds=${SIM_SEEDS:-1 2 3 4 5} sweep=${SIM_SWEEP:-3}; fi
      run_suite "sim (seeds $seeds + $sweep random)" \
        env BUILD="$BUILD" SIM_SEEDS="$seeds" SIM_SWEEP="$sweep" bash tests/sim/run.sh ;;
  esac
fi
# Browser tests (tests/browser/run.mjs): the web pages in headless chromium against the binary.
if { [ -z "$ONLY" ] && [ -z "${SAN_PASS:-}" ]; } || [ "$ONLY" = browser ]; then
  run_suite "browser (tests/browser, chromium)" node tests/browser/run.mjs --bin "$BUILD/veltrix"
fi
# Fuzz targets (build/fuzz, made by `make fuzz-build`): corpus + FUZZ_CI_SECONDS each.
if { [ -z "$ONLY" ] || [ "$ONLY" = fuzz ]; } && [ -z "${NO_FUZZ:-}" ]; then
  if ls build/fuzz/fuzz_* >/dev/null 2>&1; then
    run_suite "fuzz (${FUZZ_CI_SECONDS:-5} s per target)" \
      env FUZZ_SECONDS="${FUZZ_CI_SECONDS:-5}" bash tests/fuzz/run.sh
  else
    echo "== fuzz: no targets built (make fuzz-build): counted as 1 failure"; total_f=$((total_f + 1))
  fi
fi
if [ -n "$PG_PID" ]; then kill -TERM "$PG_PID" 2>/dev/null; wait "$PG_PID" 2>/dev/null; fi
echo "$total_p passed, $total_f failed"
[ "$total_f" -eq 0 ]
