#!/usr/bin/env bash
# Runs every built fuzz target (build/fuzz/fuzz_*) over its checked-in corpus
# (tests/fuzz/<t>/corpus/, read only) and then fuzzes it for FUZZ_SECONDS. New inputs go
# to build/fuzz/corpus/<t>/, crashes to build/fuzz/crashes/<t>/. One line per target with
# the executions run; the last line is "N passed, N failed" (a target that crashes,
# leaks or times out fails). Exit status non-zero when any failed.
set -u
DIR=${FUZZ_DIR:-build/fuzz}
SECS=${FUZZ_SECONDS:-60}
passed=0; failed=0; total_execs=0
for bin in "$DIR"/fuzz_*; do
  [ -x "$bin" ] || continue
  t=$(basename "$bin"); t=${t#fuzz_}
  seeds=tests/fuzz/$t/corpus
  work=$DIR/corpus/$t; crashes=$DIR/crashes/$t
  mkdir -p "$work" "$crashes"
  dict=(); [ -f "tests/fuzz/$t/$t.dict" ] && dict=(-dict="tests/fuzz/$t/$t.dict")
  dirs=("$work"); [ -d "$seeds" ] && dirs+=("$seeds")
  log=$DIR/$t.log
  "$bin" -max_total_time="$SECS" -timeout=10 -rss_limit_mb=1024 -print_final_stats=1 \
    -artifact_prefix="$crashes/" "${dict[@]}" "${dirs[@]}" >"$log" 2>&1
  rc=$?
  execs=$(grep -E '^stat::number_of_executed_units:' "$log" | awk '{print $2}' | tail -n 1)
  execs=${execs:-0}
  if [ "$rc" -eq 0 ]; then
    passed=$((passed + 1)); total_execs=$((total_execs + execs))
    echo "fuzz_$t: $execs executions in ${SECS}s, corpus $(ls "$work" | wc -l) new + $(ls "$seeds" 2>/dev/null | wc -l) seeds"
  else
    failed=$((failed + 1))
    echo "not ok fuzz_$t: exit $rc after $execs executions; log $log, artifacts in $crashes/"
    grep -E 'ERROR|SUMMARY|artifact|==[0-9]+==' "$log" | head -n 20 | sed 's/^/   /'
  fi
done
echo "fuzz: $total_execs executions in all"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
