#!/usr/bin/env bash
# Runs the deterministic simulation (build/sim) over a fixed set of seeds, then a short
# sweep of random ones. Each run prints its seed and figures; a failing run prints the
# command that reproduces it. Last line: "N passed, N failed" (one run = one test).
#   SIM_SEEDS="1 2 3"  fixed seeds (default 1..5), SIM_STEPS steps each (default 20000)
#   SIM_SWEEP=3        random seeds after them, SIM_SWEEP_STEPS steps each (default 5000)
set -u
BIN=${BUILD:-build}/sim
passed=0; failed=0
run() {  # steps, seed ("" = random)
  local out rc
  if [ -n "$2" ]; then out=$(SIM_SEED=$2 SIM_STEPS=$1 "$BIN" 2>&1); rc=$?
  else out=$(env -u SIM_SEED SIM_STEPS=$1 "$BIN" 2>&1); rc=$?; fi
  if [ "$rc" -eq 0 ] && echo "$out" | grep -q '^1 passed, 0 failed$'; then
    passed=$((passed + 1)); echo "$(echo "$out" | grep -E '^sim: seed [0-9]+:' | tail -n 1)"
  else
    failed=$((failed + 1)); echo "not ok (exit $rc)"; echo "$out" | grep -v 'passed, ' | tail -n 20
  fi
}
for s in ${SIM_SEEDS:-1 2 3 4 5}; do run "${SIM_STEPS:-20000}" "$s"; done
for _ in $(seq 1 "${SIM_SWEEP:-3}"); do run "${SIM_SWEEP_STEPS:-5000}" ""; done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
